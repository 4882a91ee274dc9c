// cfuse: the parts of libfuse3's low-level API that Swift cannot import directly (macros, variadic
// functions, symbol-versioned functions), each wrapped by one thin function. Everything else in
// <fuse3/fuse_lowlevel.h> (fuse_session_new, fuse_reply_*, fuse_add_direntry*, struct
// fuse_lowlevel_ops, ...) is imported as is through this header.
#ifndef CFUSE_H
#define CFUSE_H

#define FUSE_USE_VERSION 314
#include <fuse3/fuse_lowlevel.h>

#include <pthread.h>
#include <stddef.h>

/// `struct fuse_args args = FUSE_ARGS_INIT(0, NULL)` on the heap, so that its argv outlives every call
/// that uses it. Returns NULL when out of memory. Free with `cfuse_args_free`.
struct fuse_args *cfuse_args_new(void);

/// `fuse_opt_add_arg(args, arg)`: appends a copy of `arg`. Returns 0, or -1 when out of memory.
int cfuse_args_add(struct fuse_args *args, const char *arg);

/// `fuse_opt_free_args(args)`, then frees what `cfuse_args_new` allocated.
void cfuse_args_free(struct fuse_args *args);

/// `fuse_session_loop_mt(se, config)`: a versioned symbol (fuse_session_loop_mt_312) on some builds and a
/// macro on others. Blocks until the session ends; returns 0, or a negative errno.
int cfuse_session_loop_mt(struct fuse_session *se, struct fuse_loop_config *config);

/// A handler for libfuse's own log messages, already formatted (one message, usually ending in a newline).
typedef void (*cfuse_log_handler)(enum fuse_log_level level, const char *message);

/// `fuse_set_log_func(...)` with a function that formats each message (`vsnprintf`) and passes it to
/// `handler`; NULL restores libfuse's default (standard error).
void cfuse_set_log_handler(cfuse_log_handler handler);

/// `fuse_set_signal_handlers(se)`, with a handler that also forwards the signal to `loop_thread`.
/// libfuse 3.14's multi-threaded loop waits in sem_wait() on the thread that called it and notices
/// fuse_session_exit() only when a signal interrupts that wait; its own handler does not forward, so a
/// SIGTERM delivered to any other thread (a Swift concurrency thread, say) would leave the loop running.
/// Handles SIGHUP, SIGINT and SIGTERM (end the loop) and ignores SIGPIPE. Returns 0, or -1 (errno set).
int cfuse_set_signal_handlers(struct fuse_session *se, pthread_t loop_thread);

/// After the loop has ended: ignores SIGHUP, SIGINT and SIGTERM (so that a second signal does not
/// interrupt the final commit with EINTR) and forgets the session.
void cfuse_ignore_signals(void);

/// `fuse_remove_signal_handlers(se)` for the handlers above: restores the default actions.
void cfuse_remove_signal_handlers(void);

/// The last signal that ended the loop through the handlers above, or 0.
int cfuse_exit_signal(void);

/// `fuse_session_exit(se)`, then wakes the loop thread (pthread_kill with SIGTERM, which the handler above
/// catches) so that the multi-threaded loop returns. Requires `cfuse_set_signal_handlers`.
void cfuse_session_exit_and_wake(struct fuse_session *se);

#endif
