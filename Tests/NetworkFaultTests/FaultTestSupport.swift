import Foundation
import Glibc
import XCTest

// Support for the network fault tests: a real `cdsfs serve`, a fault-injecting proxy in front of it
// (FaultProxy.swift), two homes ("devices") with their own mounts that reach the server only through
// the proxy, all driven through the real `cdsfs` binary. The process, server and mount helpers are
// copied from Tests/SyncTests (test targets cannot share code).
//
// Every test gets a fresh directory, server, proxy and homes; teardown puts the proxy back to `pass`,
// unmounts every mount, stops the proxy and the server, whatever happened, and prints the mount logs,
// the proxy's events and the end of the server log when the test failed. Measurements are printed as
// lines starting with "FAULT-METRIC".

// MARK: - Where things are

enum Paths {
    /// The cdsfs binary: $CDSFS_BIN, else `cdsfs` next to the test bundle (the package's build directory).
    static let cdsfs: String = {
        if let p = ProcessInfo.processInfo.environment["CDSFS_BIN"], !p.isEmpty { return p }
        var exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        while exe.contains(".xctest") { exe = (exe as NSString).deletingLastPathComponent }
        if exe.hasSuffix("/debug") || exe.hasSuffix("/release") || FileManager.default.fileExists(atPath: exe + "/cdsfs") {
            return exe + "/cdsfs"
        }
        return (exe as NSString).deletingLastPathComponent + "/cdsfs"
    }()

    static let bash = "/bin/bash"
    static let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
}

/// Prints one measurement in a form that is easy to grep from the test output.
func metric(_ name: String, _ value: String) {
    print("FAULT-METRIC \(name): \(value)")
}

func seconds(_ s: Double) -> String { String(format: "%.2f s", s) }

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Polls `condition` every `interval` seconds until it holds; the seconds it took, or nil after `timeout`.
func waitUntil(_ timeout: Double, interval: Double = 0.1, _ condition: () throws -> Bool) rethrows -> Double? {
    let start = now()
    while true {
        if try condition() { return now() - start }
        if now() - start > timeout { return nil }
        usleep(UInt32(interval * 1e6))
    }
}

// MARK: - Running processes

struct ProcessResult: CustomStringConvertible {
    var command: String
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut = false
    var seconds: Double = 0

    var succeeded: Bool { status == 0 && !timedOut }
    var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }

    var description: String {
        func clip(_ s: String) -> String { s.count > 6000 ? String(s.prefix(3000)) + "\n…\n" + String(s.suffix(3000)) : s }
        return "`\(command)` exited \(status)\(timedOut ? " (TIMED OUT)" : "") after \(String(format: "%.1f", seconds)) s\n"
            + "--- stdout:\n\(clip(stdout))--- stderr:\n\(clip(stderr))---"
    }
}

private func temporaryFile(_ prefix: String) -> (Int32, String) {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    precondition(fd >= 0, "mkstemp: \(errno)")
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    return (fd, String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self))
}

/// A child process started with posix_spawn (not Foundation's Process: on Linux it hands the child a
/// socket every grandchild inherits, so a command that leaves a daemon behind would seem to run on).
/// It runs in its own process group.
final class ChildProcess {
    let pid: pid_t
    private(set) var status: Int32?

    init(_ executable: String, _ arguments: [String], cwd: String? = nil, stdin: Int32? = nil,
         stdout: Int32, stderr: Int32) throws {
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

        var argv = [executable] + arguments
        var program = executable
        if let cwd {
            argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", cwd] + argv
            program = "/bin/sh"
        }
        var env = ProcessInfo.processInfo.environment
        env["LC_ALL"] = "C.UTF-8"
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in cArgs { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, program, &actions, &attributes, cArgs, cEnv)
        guard rc == 0 else { throw StopTest("cannot start \(program): errno \(rc)") }
        self.pid = pid
    }

    var hasExited: Bool {
        if status != nil { return true }
        var raw: Int32 = 0
        let r = waitpid(pid, &raw, WNOHANG)
        if r == pid {
            status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            return true
        }
        if r < 0 && errno == ECHILD { status = -1; return true }
        return false
    }

    func wait(timeout: Double) -> Bool {
        let deadline = now() + timeout
        var pause: UInt32 = 1000
        while !hasExited {
            if now() > deadline { return false }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
        return true
    }

    func signal(_ sig: Int32) { if !hasExited { kill(pid, sig) } }

    /// SIGKILL to its whole process group, then reap it.
    func killGroup() {
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        _ = wait(timeout: 30)
    }
}

/// Runs a program and captures its status and output (through temporary files, so that a daemon that
/// inherits them cannot make this wait). After `timeout` seconds the process group is killed.
func runProcess(_ executable: String, _ arguments: [String], cwd: String? = nil, timeout: Double = 180) -> ProcessResult {
    let (outFD, outPath) = temporaryFile("cdsfs-nf-out")
    let (errFD, errPath) = temporaryFile("cdsfs-nf-err")
    defer {
        close(outFD)
        close(errFD)
        unlink(outPath)
        unlink(errPath)
    }
    let command = ([executable] + arguments).map { $0.contains(" ") || $0.contains("\n") ? "'\($0)'" : $0 }
        .joined(separator: " ")
    let start = now()
    let child: ChildProcess
    do {
        child = try ChildProcess(executable, arguments, cwd: cwd, stdout: outFD, stderr: errFD)
    } catch {
        return ProcessResult(command: command, status: -1, stdout: "", stderr: "\(error)")
    }
    var timedOut = false
    if !child.wait(timeout: timeout) {
        timedOut = true
        child.killGroup()
    }
    func contents(_ path: String) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }
    return ProcessResult(command: command, status: child.status ?? -1, stdout: contents(outPath),
                         stderr: contents(errPath), timedOut: timedOut, seconds: now() - start)
}

/// Runs `script` with `bash -c` under `set -euo pipefail`.
func bash(_ script: String, cwd: String? = nil, timeout: Double = 180) -> ProcessResult {
    var r = runProcess(Paths.bash, ["-c", "set -euo pipefail\n" + script], cwd: cwd, timeout: timeout)
    r.command = "bash -c <<EOF\n\(script)\nEOF" + (cwd.map { " (in \($0))" } ?? "")
    return r
}

/// Runs a Python 3 program given as text; `arguments` become sys.argv[1...].
func python(_ program: String, _ arguments: [String] = [], cwd: String? = nil, timeout: Double = 180) -> ProcessResult {
    let (fd, path) = temporaryFile("cdsfs-nf-py")
    _ = program.withCString { write(fd, $0, strlen($0)) }
    close(fd)
    defer { unlink(path) }
    var r = runProcess(Paths.python, [path] + arguments, cwd: cwd, timeout: timeout)
    r.command = "python3 <<EOF\n\(program)\nEOF \(arguments.joined(separator: " "))" + (cwd.map { " (in \($0))" } ?? "")
    return r
}

// MARK: - The server

/// `cdsfs serve` on 127.0.0.1: the first start picks a free port, restarts use the same one.
final class Server {
    let store: String
    let logDirectory: String
    private(set) var port = 0
    private(set) var process: ChildProcess?
    /// The standard error (request log) of each run, in order.
    private(set) var logs: [String] = []

    init(store: String, logDirectory: String) {
        self.store = store
        self.logDirectory = logDirectory
    }

    var url: String { "http://127.0.0.1:\(port)" }
    var isRunning: Bool { process.map { !$0.hasExited } ?? false }

    /// Starts the server and waits for its "serving … on http://…" line. A restart on the same port
    /// is retried for a while (the port may still be held for a moment).
    func start() throws {
        precondition(!isRunning, "the server is already running")
        let deadline = now() + 30
        while true {
            let n = logs.count + 1
            let outPath = "\(logDirectory)/serve-\(n).out", errPath = "\(logDirectory)/serve-\(n).log"
            let out = open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            let err = open(errPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            defer { close(out); close(err) }
            logs.append(errPath)
            let p = try ChildProcess(Paths.cdsfs, ["serve", "--store", store, "--listen", "127.0.0.1:\(port)"],
                                     stdout: out, stderr: err)
            process = p
            var line = ""
            _ = waitUntil(20, interval: 0.02) {
                line = Files.readText(outPath) ?? ""
                return line.contains("\n") || p.hasExited
            }
            if line.hasPrefix("serving "), let colon = line.trimmingCharacters(in: .whitespacesAndNewlines).lastIndex(of: ":"),
               let bound = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)[line.index(after: colon)...]) {
                if port != 0 && bound != port { throw StopTest("the server came back on port \(bound), not \(port)") }
                port = bound
                return
            }
            let why = (Files.readText(errPath) ?? "") + line
            if !p.hasExited { p.killGroup() }
            if port != 0 && why.contains("address already in use") && now() < deadline {
                usleep(200_000)
                continue
            }
            throw StopTest("`cdsfs serve` did not start: \(why)")
        }
    }

    /// Stops the server with `sig` (SIGTERM: a clean stop; SIGKILL: a crash) and waits for it to end.
    func stop(_ sig: Int32 = SIGTERM) {
        guard let p = process else { return }
        p.signal(sig)
        if !p.wait(timeout: 20) {
            print("the server did not end within 20 s of signal \(sig); killing it")
            p.killGroup()
        }
        process = nil
    }

    /// Every request log line so far, over all runs.
    func requestLines() -> [String] {
        logs.flatMap { (Files.readText($0) ?? "").split(separator: "\n").map(String.init) }
    }

    /// Bytes the server received in request bodies/headers ("in N B") over `lines`.
    static func bytesIn(_ lines: some Sequence<String>) -> Int {
        var total = 0
        for line in lines {
            guard let r = line.range(of: " in "), let end = line[r.upperBound...].range(of: " B out") else { continue }
            total += Int(line[r.upperBound..<end.lowerBound]) ?? 0
        }
        return total
    }

    /// Bytes of the files under the store's objects/ folder.
    func objectBytes() -> Int { storeBytes(store + "/objects") }
}

/// `du -sb`: bytes of the files under a folder.
func storeBytes(_ path: String) -> Int {
    let r = runProcess("/usr/bin/du", ["-sb", path], timeout: 60)
    return Int(r.stdout.split(separator: "\t").first ?? "") ?? 0
}

// MARK: - Mounts and files

enum Mounts {
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

    /// `cdsfs mount` processes whose command line names `mountPoint`.
    static func processes(mentioning needle: String) -> [pid_t] {
        guard let items = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        let me = getpid()
        var found: [pid_t] = []
        for item in items {
            guard let pid = pid_t(item), pid != me else { continue }
            guard let data = FileManager.default.contents(atPath: "/proc/\(item)/cmdline"), !data.isEmpty else { continue }
            let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if args.contains(where: { $0 == needle }) && args.contains("mount") { found.append(pid) }
        }
        return found
    }

    static func isAlive(_ pid: pid_t) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
        return !status.contains("State:\tZ")
    }

    @discardableResult
    static func waitForExit(_ pid: pid_t, seconds: Double) -> Bool {
        waitUntil(seconds, interval: 0.02) { !isAlive(pid) } != nil
    }
}

enum Files {
    static func makeTemporaryDirectory(_ prefix: String) -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { fatalError("mkdtemp: \(errno)") }
        return String(cString: p)
    }

    static func readText(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    static func mkdirs(_ path: String) {
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
}

/// Ends a test that cannot go on; XCTest records the message as the failure.
struct StopTest: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func isHex64(_ s: some StringProtocol) -> Bool {
    s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
}

// MARK: - Devices

/// One device: a home, a mount point, its actor id.
struct Device: CustomStringConvertible {
    let name: String
    let home: String
    let mnt: String
    var id = ""
    var description: String { name }
}

/// A tree as a sorted listing: relative path, kind, and for files size and SHA-256 (for links, the target).
/// Read by a fresh python process.
func treeListing(_ directory: String) -> ProcessResult {
    python("""
    import hashlib, os, stat, sys
    top = sys.argv[1]
    out = []
    for d, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(dirs + files):
            p = os.path.join(d, name)
            rel = os.path.relpath(p, top)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out.append(f"{rel}\\tlink\\t{os.readlink(p)}")
            elif stat.S_ISDIR(st.st_mode):
                out.append(f"{rel}\\tdir")
            else:
                h = hashlib.sha256()
                with open(p, 'rb') as f:
                    for block in iter(lambda: f.read(1 << 20), b''):
                        h.update(block)
                out.append(f"{rel}\\tfile\\t{st.st_size}\\t{h.hexdigest()}")
    print("\\n".join(sorted(out)))
    """, [directory], timeout: 120)
}

// MARK: - The test case base

let cdsfsHasSync: Bool = {
    guard FileManager.default.isExecutableFile(atPath: Paths.cdsfs) else { return false }
    let r = runProcess(Paths.cdsfs, ["serve", "--help"], timeout: 30)
    let m = runProcess(Paths.cdsfs, ["group", "--help"], timeout: 30)
    return r.succeeded && r.stdout.contains("USAGE: cdsfs serve") && m.succeeded && m.stdout.contains("USAGE: cdsfs group")
}()

/// A server, a fault proxy in front of it, and devices whose remote is the proxy's URL.
class FaultTestCase: XCTestCase {
    /// This test's temporary directory (removed in teardown unless $CDSFS_KEEP is set).
    var root = ""
    var server: Server!
    var proxy: FaultProxy!
    private var mountpoints: [String] = []
    private var devices: [Device] = []

    let commitInterval = "commit_interval=1"

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard FileManager.default.isExecutableFile(atPath: Paths.cdsfs) else {
            throw XCTSkip("no cdsfs binary at \(Paths.cdsfs) (build with --build-tests, or set CDSFS_BIN)")
        }
        guard cdsfsHasSync else { throw XCTSkip("this cdsfs has no `serve`/`group` commands yet") }
        guard FileManager.default.fileExists(atPath: "/dev/fuse") else { throw XCTSkip("no /dev/fuse") }
        signal(SIGPIPE, SIG_IGN)
        root = Files.makeTemporaryDirectory("cdsfs-fault")
        Files.mkdirs(root + "/logs")
        server = Server(store: root + "/server-store", logDirectory: root + "/logs")
        try server.start()
        proxy = try FaultProxy(upstreamPort: server.port, lifetime: 600)
    }

    override func tearDown() {
        defer { super.tearDown() }
        guard !root.isEmpty else { return }
        // Healthy network for the final pushes of the unmounts, then the proxy and the server stop.
        proxy?.setMode(.pass)
        unmountAll(mountpoints)
        proxy?.stop()
        server?.stop(SIGKILL)
        let failed = (testRun?.totalFailureCount ?? 0) > 0
        if failed {
            for d in devices {
                if let log = Files.readText(d.home + "/mount.log") {
                    let lines = log.split(separator: "\n")
                    let fatal = lines.filter { $0.contains("Fatal error") || $0.contains("crashed") }
                    if !fatal.isEmpty { print("--- \(d.name) CRASHED:\n" + fatal.joined(separator: "\n")) }
                    print("--- \(d.name): \(d.home)/mount.log (\(lines.count) lines, last 60):\n"
                          + lines.suffix(60).joined(separator: "\n"))
                }
            }
            if let events = proxy?.events {
                print("--- proxy events (\(events.count), last 60):\n" + events.suffix(60).joined(separator: "\n"))
            }
            if let lines = server?.requestLines() {
                print("--- server log (\(lines.count) lines, last 15):\n" + lines.suffix(15).joined(separator: "\n"))
            }
        }
        proxy = nil
        let stillMounted = Mounts.table().filter { $0.mountPoint.hasPrefix(root + "/") }
        if !stillMounted.isEmpty {
            XCTFail("still mounted after teardown: \(stillMounted.map(\.mountPoint)); leaving \(root) in place")
        } else if ProcessInfo.processInfo.environment["CDSFS_KEEP"] != nil {
            print("keeping \(root)")
        } else {
            _ = runProcess("/bin/rm", ["-rf", root], timeout: 120)
        }
        mountpoints = []
        devices = []
    }

    // MARK: cdsfs

    func cdsfs(_ arguments: [String], timeout: Double = 180) -> ProcessResult {
        runProcess(Paths.cdsfs, arguments, timeout: timeout)
    }

    /// `cdsfs …` that must succeed; its standard output.
    @discardableResult
    func must(_ arguments: [String], timeout: Double = 180) throws -> String {
        let r = cdsfs(arguments, timeout: timeout)
        guard r.succeeded else { throw StopTest("\(r)") }
        return r.stdout
    }

    /// A new device whose remote is the proxy: `cdsfs init --home` (with `--remote URL` when
    /// `joining`), else init and `cdsfs remote add`. Its mount point is created but not mounted.
    func makeDevice(_ name: String, joining: Bool) throws -> Device {
        var d = Device(name: name, home: root + "/home-" + name, mnt: root + "/mnt-" + name)
        Files.mkdirs(d.mnt)
        devices.append(d)
        let out = try must(["init", "--home", d.home] + (joining ? ["--remote", proxy.url] : []))
        guard let id = out.split(separator: "\n").map(String.init).first(where: { isHex64($0) }) else {
            throw StopTest("init printed no actor id: \(out)")
        }
        d.id = id
        devices[devices.count - 1] = d
        if !joining { try must(["remote", "add", "--home", d.home, proxy.url]) }
        return d
    }

    /// Device A (the group's first) and device B, joined through the proxy, both mounted with
    /// commit_interval=1.
    func makePair() throws -> (Device, Device) {
        let a = try makeDevice("A", joining: false)
        let b = try makeDevice("B", joining: true)
        try must(["group", "add", "--home", a.home, b.id])
        let synced = try must(["sync", "--home", b.home])
        guard synced.contains("joined") else { throw StopTest("B did not join A's group: \(synced)") }
        try mount(a)
        try mount(b)
        usleep(500_000)
        try requireAlive(a, b)
        return (a, b)
    }

    func mount(_ d: Device) throws {
        mountpoints.append(d.mnt)
        let r = cdsfs(["mount", "--home", d.home, "-o", commitInterval, d.mnt], timeout: 120)
        guard r.succeeded else { throw StopTest("mount of \(d) failed: \(r)") }
        guard let type = Mounts.type(d.mnt), type.hasPrefix("fuse") else {
            throw StopTest("`cdsfs mount` returned 0 but \(d.mnt) is not a FUSE mount: \(r)")
        }
    }

    func unmount(_ d: Device, file: StaticString = #filePath, line: UInt = #line) {
        let r = cdsfs(["unmount", d.mnt], timeout: 180)
        XCTAssert(r.succeeded, "unmount of \(d) failed: \(r)", file: file, line: line)
        XCTAssertFalse(Mounts.isMounted(d.mnt), "\(d.mnt) is still mounted", file: file, line: line)
        if Mounts.isMounted(d.mnt) { forceUnmount(d.mnt) }
    }

    func unmountAll(_ list: [String]) {
        let mounted = Array(Set(list.filter { Mounts.isMounted($0) }))
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(null) }
        let children = mounted.compactMap { try? ChildProcess(Paths.cdsfs, ["unmount", $0], stdout: null, stderr: null) }
        for c in children where !c.wait(timeout: 90) { c.killGroup() }
        for m in list { forceUnmount(m) }
    }

    func forceUnmount(_ m: String) {
        if Mounts.isMounted(m) { _ = cdsfs(["unmount", m], timeout: 90) }
        if Mounts.isMounted(m) { _ = runProcess("fusermount3", ["-u", m], timeout: 30) }
        if Mounts.isMounted(m) { _ = runProcess("umount", ["-l", m], timeout: 30) }
        if Mounts.isMounted(m) { _ = runProcess("fusermount3", ["-uz", m], timeout: 30) }
        for pid in Mounts.processes(mentioning: m) where !Mounts.waitForExit(pid, seconds: 10) {
            print("killing leftover mount daemon \(pid) for \(m)")
            kill(pid, SIGKILL)
            Mounts.waitForExit(pid, seconds: 5)
        }
    }

    /// `cdsfs log --home H`: the version hashes, newest first.
    func versions(_ d: Device) throws -> [String] {
        try must(["log", "--home", d.home]).split(separator: "\n").compactMap { l in
            let first = String(l.prefix(64))
            return isHex64(first) ? first : nil
        }
    }

    /// The newest version in `cdsfs log --home H`, or nil.
    func head(_ d: Device) -> String? {
        let r = cdsfs(["log", "--home", d.home, "--limit", "1"])
        guard r.succeeded, let first = r.stdoutLines.first, isHex64(first.prefix(64)) else { return nil }
        return String(first.prefix(64))
    }

    func daemonAlive(_ d: Device) -> Bool {
        guard let text = Files.readText(d.home + "/mount.pid"),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return false }
        return Mounts.isAlive(pid)
    }

    func requireAlive(_ devices: Device...) throws {
        for d in devices where !daemonAlive(d) {
            let fatal = mountLog(d).split(separator: "\n").first { $0.contains("Fatal error") || $0.contains("error:") }
            throw StopTest("the mount daemon of \(d) is gone: \(fatal.map(String.init) ?? "see \(d.home)/mount.log")")
        }
    }

    /// Waits until `b`'s newest version is `a`'s and stays so for a moment (three looks, 0.25 s apart).
    /// The seconds until they first agreed (in that last run of agreement), or nil after `timeout`.
    func waitForSameHead(_ a: Device, _ b: Device, timeout: Double) throws -> Double? {
        let start = now()
        var agreedSince: Double?
        var settled = 0
        let done = try waitUntil(timeout, interval: 0.25) {
            try requireAlive(a, b)
            let ha = head(a)
            if ha != nil && ha == head(b) {
                if agreedSince == nil { agreedSince = now() }
                settled += 1
            } else {
                settled = 0
                agreedSince = nil
            }
            return settled >= 3
        }
        guard done != nil, let agreedSince else { return nil }
        return agreedSince - start
    }

    func mountLog(_ d: Device) -> String { Files.readText(d.home + "/mount.log") ?? "" }

    @discardableResult
    func sh(_ script: String, cwd: String? = nil, timeout: Double = 180) throws -> String {
        let r = bash(script, cwd: cwd, timeout: timeout)
        guard r.succeeded else { throw StopTest("\(r)") }
        return r.stdout
    }

    func tree(_ directory: String) -> String? {
        let r = treeListing(directory)
        return r.succeeded ? r.stdout : nil
    }
}
