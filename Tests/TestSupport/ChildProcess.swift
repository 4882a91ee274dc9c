import Foundation
import Glibc

/// A child process started with posix_spawn. (Not Foundation's Process: on Linux it hands the child a
/// socket that every grandchild inherits, and reports termination only when the last holder closes it,
/// so a command that leaves a daemon behind, like `cdsfs mount`, would seem to run until the daemon ends.)
public final class ChildProcess {
    public let pid: pid_t
    public private(set) var status: Int32?

    /// Starts `executable` (searched in PATH unless absolute) in its own process group, with standard
    /// input from `stdin` (else /dev/null) and standard output and error to the given descriptors. The
    /// environment is this process's (without the variables `clearing` names by prefix), with
    /// LC_ALL=C.UTF-8 and `environment` on top.
    public init(_ executable: String, _ arguments: [String], cwd: String? = nil, environment: [String: String] = [:],
                clearing: String? = nil, stdin: Int32? = nil, stdout: Int32, stderr: Int32) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        // A working directory: through the shell, which then execs the program.
        var argv = [executable] + arguments
        var program = executable
        if let cwd {
            argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", cwd] + argv
            program = "/bin/sh"
        }
        var env = ProcessInfo.processInfo.environment
        if let clearing { env = env.filter { !$0.key.hasPrefix(clearing) } }
        env["LC_ALL"] = "C.UTF-8"
        for (k, v) in environment { env[k] = v }
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in cArgs { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, program, &actions, &attributes, cArgs, cEnv)
        guard rc == 0 else { throw StopTest("cannot start \(program): \(errnoName(rc))") }
        self.pid = pid
    }

    /// Whether it has ended (reaps it then).
    public var hasExited: Bool {
        if status != nil { return true }
        var raw: Int32 = 0
        let r = waitpid(pid, &raw, WNOHANG)
        if r == pid {
            // Exit code, or 128 + signal as a shell shows it.
            status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            return true
        }
        if r < 0 && errno == ECHILD { status = -1; return true }
        return false
    }

    /// Waits for the end; false after `timeout` seconds.
    public func wait(timeout: Double) -> Bool {
        let deadline = now() + timeout
        var pause: UInt32 = 1000
        while !hasExited {
            if now() > deadline { return false }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
        return true
    }

    public func signal(_ sig: Int32) { if !hasExited { kill(pid, sig) } }

    /// SIGKILL to its whole process group, then reap it.
    public func killGroup() {
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        _ = wait(timeout: 30)
    }
}
