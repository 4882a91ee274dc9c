// Copied from Tests/MountTests/MountTestSupport.swift (test targets cannot share code): processes
// through posix_spawn, mounts in /proc, files, errno names. Keep in step by hand if those change.
import Foundation
import Glibc
import XCTest

// MARK: - Where things are

enum Paths {
    /// The cdsfs binary: $CDSFS_BIN, else `cdsfs` next to the test bundle (the package's build directory).
    static let cdsfs: String = {
        if let p = ProcessInfo.processInfo.environment["CDSFS_BIN"], !p.isEmpty { return p }
        var exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        // Linux: <builddir>/cdsfsPackageTests.xctest is the executable. macOS: …/X.xctest/Contents/MacOS/X.
        while exe.contains(".xctest") { exe = (exe as NSString).deletingLastPathComponent }
        if exe.hasSuffix("/debug") || exe.hasSuffix("/release") || FileManager.default.fileExists(atPath: exe + "/cdsfs") {
            return exe + "/cdsfs"
        }
        return (exe as NSString).deletingLastPathComponent + "/cdsfs"
    }()

    static let bash = "/bin/bash"
    static let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
}

// MARK: - Running processes

struct ProcessResult: CustomStringConvertible {
    var command: String
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut = false
    /// Seconds the process ran.
    var seconds: Double = 0

    var succeeded: Bool { status == 0 && !timedOut }
    var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
    var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }

    var description: String {
        func clip(_ s: String) -> String { s.count > 6000 ? String(s.prefix(3000)) + "\n…\n" + String(s.suffix(3000)) : s }
        return "`\(command)` exited \(status)\(timedOut ? " (TIMED OUT)" : "") after \(String(format: "%.1f", seconds)) s\n"
            + "--- stdout:\n\(clip(stdout))--- stderr:\n\(clip(stderr))---"
    }
}

/// A new temporary file (close-on-exec): its descriptor and path.
private func temporaryFile(_ prefix: String) -> (Int32, String) {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    precondition(fd >= 0, "mkstemp: \(errnoName(errno))")
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    return (fd, String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self))
}

/// A child process started with posix_spawn. (Not Foundation's Process: on Linux it hands the child a
/// socket that every grandchild inherits, and reports termination only when the last holder closes it,
/// so a command that leaves a daemon behind, like `cdsfs mount`, would seem to run until the daemon ends.)
final class ChildProcess {
    let pid: pid_t
    private(set) var status: Int32?

    /// Starts `executable` (searched in PATH unless absolute) with standard input /dev/null and standard
    /// output and error to the given descriptors, in its own process group.
    init(_ executable: String, _ arguments: [String], cwd: String? = nil, environment: [String: String] = [:],
         stdout: Int32, stderr: Int32) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
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
    var hasExited: Bool {
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
    func wait(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var pause: UInt32 = 1000
        while !hasExited {
            if Date() > deadline { return false }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
        return true
    }

    /// SIGKILL to its whole process group (only ever after a timeout), then reap it.
    func killGroup() {
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        _ = wait(timeout: 30)
    }
}

/// Runs a program and captures its exit status, standard output and standard error. Output goes to
/// temporary files, not pipes, so a daemon that inherits them cannot make this wait. Standard input is
/// /dev/null. After `timeout` seconds the process group is killed and the result says so.
func runProcess(_ executable: String, _ arguments: [String], cwd: String? = nil,
                environment: [String: String] = [:], timeout: Double = 180) -> ProcessResult {
    let (outFD, outPath) = temporaryFile("cdsfs-mt-out")
    let (errFD, errPath) = temporaryFile("cdsfs-mt-err")
    defer {
        close(outFD)
        close(errFD)
        unlink(outPath)
        unlink(errPath)
    }
    let command = ([executable] + arguments).map { $0.contains(" ") || $0.contains("\n") ? "'\($0)'" : $0 }
        .joined(separator: " ")
    let start = Date()
    let child: ChildProcess
    do {
        child = try ChildProcess(executable, arguments, cwd: cwd, environment: environment, stdout: outFD, stderr: errFD)
    } catch {
        return ProcessResult(command: command, status: -1, stdout: "", stderr: "\(error)")
    }
    var timedOut = false
    if !child.wait(timeout: timeout) {
        timedOut = true
        child.killGroup()
    }
    let seconds = Date().timeIntervalSince(start)
    func contents(_ path: String) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }
    return ProcessResult(command: command, status: child.status ?? -1, stdout: contents(outPath),
                         stderr: contents(errPath), timedOut: timedOut, seconds: seconds)
}

/// Runs `script` with `bash -c` (under `set -euo pipefail`) in `cwd`.
func bash(_ script: String, cwd: String? = nil, environment: [String: String] = [:], timeout: Double = 180) -> ProcessResult {
    var r = runProcess(Paths.bash, ["-c", "set -euo pipefail\n" + script], cwd: cwd, environment: environment,
                       timeout: timeout)
    r.command = "bash -c <<EOF\n\(script)\nEOF" + (cwd.map { " (in \($0))" } ?? "")
    return r
}

/// Runs a Python 3 program given as text; `arguments` become sys.argv[1...].
func python(_ program: String, _ arguments: [String] = [], cwd: String? = nil, timeout: Double = 180) -> ProcessResult {
    let (fd, path) = temporaryFile("cdsfs-mt-py")
    _ = program.withCString { write(fd, $0, strlen($0)) }
    close(fd)
    defer { unlink(path) }
    var r = runProcess(Paths.python, [path] + arguments, cwd: cwd, timeout: timeout)
    r.command = "python3 <<EOF\n\(program)\nEOF \(arguments.joined(separator: " "))" + (cwd.map { " (in \($0))" } ?? "")
    return r
}

// MARK: - Mounts and processes in /proc

enum Mounts {
    /// Mount points in /proc/self/mountinfo with their filesystem type.
    static func table() -> [(mountPoint: String, type: String)] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: false)
            guard let dash = f.firstIndex(of: "-"), f.count > 4, dash + 1 < f.count else { return nil }
            return (unescape(String(f[4])), String(f[dash + 1]))
        }
    }

    static func unescape(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == 92, i + 3 < b.count, let v = Int(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(UInt8(truncatingIfNeeded: v))
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isMounted(_ path: String) -> Bool { table().contains { $0.mountPoint == path } }

    static func type(_ path: String) -> String? { table().last { $0.mountPoint == path }?.type }

    /// Processes (other than this one) whose command line mentions `needle` as an argument, together
    /// with the word "mount".
    static func processes(mentioning needle: String) -> [pid_t] {
        guard let items = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        let me = getpid()
        var found: [pid_t] = []
        for item in items {
            guard let pid = pid_t(item), pid != me else { continue }
            guard let data = FileManager.default.contents(atPath: "/proc/\(item)/cmdline"), !data.isEmpty else { continue }
            let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if args.contains(where: { $0 == needle || $0.hasSuffix("=" + needle) }) && args.contains("mount") {
                found.append(pid)
            }
        }
        return found
    }

    static func isAlive(_ pid: pid_t) -> Bool {
        // A zombie counts as gone.
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
        return !status.contains("State:\tZ")
    }

    /// Waits up to `seconds` for a process to end.
    @discardableResult
    static func waitForExit(_ pid: pid_t, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while isAlive(pid) {
            if Date() > deadline { return false }
            usleep(20_000)
        }
        return true
    }

    /// VmRSS of a process in bytes, or nil when it is gone.
    static func residentBytes(_ pid: pid_t) -> UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let digits = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first
            return digits.flatMap { UInt64($0) }.map { $0 * 1024 }
        }
        return nil
    }
}

// MARK: - Files

enum Files {
    static func makeTemporaryDirectory(_ prefix: String = "cdsfs-mt") -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { fatalError("mkdtemp: \(errnoName(errno))") }
        return String(cString: p)
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        return [UInt8](d)
    }

    static func readText(_ path: String) -> String? { read(path).map { String(decoding: $0, as: UTF8.self) } }

    /// Writes bytes with open/write/close (no fsync); returns errno or 0.
    @discardableResult
    static func write(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 { return errno }
            done += n
        }
        return 0
    }

    @discardableResult
    static func write(_ path: String, _ text: String, mode: mode_t = 0o644) -> Int32 {
        write(path, Array(text.utf8), mode: mode)
    }

    static func mkdirs(_ path: String) {
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
}

func errnoName(_ code: Int32) -> String {
    let names: [Int32: String] = [
        0: "OK", EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", EBADF: "EBADF", EACCES: "EACCES", EEXIST: "EEXIST",
        EXDEV: "EXDEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL", EFBIG: "EFBIG", ENOSPC: "ENOSPC",
        EROFS: "EROFS", EMLINK: "EMLINK", ENAMETOOLONG: "ENAMETOOLONG", ENOTEMPTY: "ENOTEMPTY", ELOOP: "ELOOP",
        ENOTCONN: "ENOTCONN", ECONNABORTED: "ECONNABORTED", ENODATA: "ENODATA", ENOSYS: "ENOSYS", EOPNOTSUPP: "EOPNOTSUPP", EBUSY: "EBUSY",
        ETXTBSY: "ETXTBSY", EFAULT: "EFAULT", ENOMEM: "ENOMEM", E2BIG: "E2BIG", ERANGE: "ERANGE",
    ]
    return names[code] ?? "errno \(code)"
}

/// Ends a test that cannot go on; XCTest records the message as the failure.
struct StopTest: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func isHex64(_ s: some StringProtocol) -> Bool {
    s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
}

/// A deterministic generator (SplitMix64), so that every random test repeats from its seed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ n: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        out.withUnsafeMutableBytes { buf in
            var i = 0
            while i + 8 <= n {
                buf.storeBytes(of: next(), toByteOffset: i, as: UInt64.self)
                i += 8
            }
            if i < n {
                let v = next()
                for k in 0..<(n - i) { buf[i + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
            }
        }
        return out
    }
}
