#include "cfuse.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fuse_args *cfuse_args_new(void) {
    struct fuse_args *args = malloc(sizeof *args);
    if (args == NULL) return NULL;
    *args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
    return args;
}

int cfuse_args_add(struct fuse_args *args, const char *arg) {
    return fuse_opt_add_arg(args, arg);
}

void cfuse_args_free(struct fuse_args *args) {
    if (args == NULL) return;
    fuse_opt_free_args(args);
    free(args);
}

int cfuse_session_loop_mt(struct fuse_session *se, struct fuse_loop_config *config) {
    return fuse_session_loop_mt(se, config);
}

static cfuse_log_handler current_handler;

static void cfuse_log_trampoline(enum fuse_log_level level, const char *fmt, va_list ap) {
    char message[1024];
    vsnprintf(message, sizeof message, fmt, ap);
    cfuse_log_handler handler = __atomic_load_n(&current_handler, __ATOMIC_ACQUIRE);
    if (handler != NULL) handler(level, message);
}

void cfuse_set_log_handler(cfuse_log_handler handler) {
    __atomic_store_n(&current_handler, handler, __ATOMIC_RELEASE);
    fuse_set_log_func(handler != NULL ? cfuse_log_trampoline : NULL);
}

static struct fuse_session *volatile signal_session;
static pthread_t signal_loop_thread;
static volatile sig_atomic_t signal_received;

static void cfuse_exit_handler(int sig) {
    signal_received = sig;
    struct fuse_session *se = signal_session;
    if (se != NULL) fuse_session_exit(se);
    if (!pthread_equal(pthread_self(), signal_loop_thread)) pthread_kill(signal_loop_thread, sig);
}

static int set_handler(int sig, void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: the loop thread's sem_wait must see EINTR
    return sigaction(sig, &sa, NULL);
}

int cfuse_set_signal_handlers(struct fuse_session *se, pthread_t loop_thread) {
    signal_loop_thread = loop_thread;
    signal_session = se;
    signal_received = 0;
    if (set_handler(SIGHUP, cfuse_exit_handler) == -1 || set_handler(SIGINT, cfuse_exit_handler) == -1 ||
        set_handler(SIGTERM, cfuse_exit_handler) == -1 || set_handler(SIGPIPE, SIG_IGN) == -1)
        return -1;
    return 0;
}

void cfuse_ignore_signals(void) {
    set_handler(SIGHUP, SIG_IGN);
    set_handler(SIGINT, SIG_IGN);
    set_handler(SIGTERM, SIG_IGN);
    signal_session = NULL;
}

void cfuse_remove_signal_handlers(void) {
    signal_session = NULL;
    set_handler(SIGHUP, SIG_DFL);
    set_handler(SIGINT, SIG_DFL);
    set_handler(SIGTERM, SIG_DFL);
}

int cfuse_exit_signal(void) {
    return signal_received;
}

void cfuse_session_exit_and_wake(struct fuse_session *se) {
    fuse_session_exit(se);
    if (signal_session != NULL) pthread_kill(signal_loop_thread, SIGTERM);
}
