import Foundation
import Glibc
import XCTest

// The base of the tests with a real `cdsfs serve` and several homes ("devices") with their own mounts,
// and shells that live inside a mount, all driven through the real `cdsfs` binary as a person would.
//
// Every test gets a fresh directory, server and homes; teardown closes the shells, unmounts every mount
// and stops every server, whatever happened, and prints the mount logs and the end of the server log when
// the test failed. Measurements are printed as lines starting with `metricLabel`.

/// One device: a home, a mount point, its actor id.
public struct Device: CustomStringConvertible {
    public let name: String
    public let home: String
    public let mnt: String
    public var id = ""
    public var description: String { name }

    public init(name: String, home: String, mnt: String, id: String = "") {
        self.name = name
        self.home = home
        self.mnt = mnt
        self.id = id
    }
}

/// A tree as a sorted listing: relative path, kind, and for files size and SHA-256 (for links, the target).
/// Read by a fresh python process.
public func treeListing(_ directory: String) -> ProcessResult {
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

/// Whether this build has `cdsfs serve` and `cdsfs group`.
public let cdsfsHasSync: Bool = {
    guard FileManager.default.isExecutableFile(atPath: Paths.cdsfs) else { return false }
    let r = runProcess(Paths.cdsfs, ["serve", "--help"], timeout: 30)
    let m = runProcess(Paths.cdsfs, ["group", "--help"], timeout: 30)
    return r.succeeded && r.stdout.contains("USAGE: cdsfs serve") && m.succeeded && m.stdout.contains("USAGE: cdsfs group")
}()

/// A server started for each test, and devices made with `makeDevice`/`makePair` whose remote is
/// `remoteURL` (the server; a subclass may put something in between).
open class SyncTestCase: XCTestCase {
    /// This test's temporary directory (removed in teardown unless $CDSFS_KEEP is set).
    public var root = ""
    public var server: Server!
    private var mountpoints: [String] = []
    private var devices: [Device] = []
    private var shells: [Shell] = []

    /// Seconds commits wait after a change in the mounts of these tests.
    public let commitInterval = "commit_interval=1"

    /// The name of `root` under /tmp (then -XXXXXX).
    open class var directoryPrefix: String { "cdsfs-sync" }
    /// What `metric` lines start with.
    open class var metricLabel: String { "SYNC-METRIC" }
    /// How much of each mount log a failed test prints.
    open class var logTailLines: Int { 40 }

    /// The URL devices are given as their remote.
    open var remoteURL: String { server.url }

    open override func setUpWithError() throws {
        try super.setUpWithError()
        guard FileManager.default.isExecutableFile(atPath: Paths.cdsfs) else {
            throw XCTSkip("no cdsfs binary at \(Paths.cdsfs) (build with --build-tests, or set CDSFS_BIN)")
        }
        guard cdsfsHasSync else { throw XCTSkip("this cdsfs has no `serve`/`group` commands yet") }
        guard FileManager.default.fileExists(atPath: "/dev/fuse") else { throw XCTSkip("no /dev/fuse") }
        signal(SIGPIPE, SIG_IGN)
        root = Files.makeTemporaryDirectory(Self.directoryPrefix)
        Files.mkdirs(root + "/logs")
        server = Server(store: root + "/server-store", logDirectory: root + "/logs")
        try server.start()
    }

    open override func tearDown() {
        defer { super.tearDown() }
        guard !root.isEmpty else { return }
        closeShells()
        // Unmount while the server still runs (the final push is quick then), then stop the server.
        unmountAll(mountpoints)
        server?.stop(SIGKILL)
        let failed = (testRun?.totalFailureCount ?? 0) > 0
        if failed {
            for d in devices {
                if let log = Files.readText(d.home + "/mount.log") {
                    let lines = log.split(separator: "\n")
                    let fatal = lines.filter { $0.contains("Fatal error") || $0.contains("crashed") }
                    if !fatal.isEmpty { print("--- \(d.name) CRASHED:\n" + fatal.joined(separator: "\n")) }
                    print("--- \(d.name): \(d.home)/mount.log (\(lines.count) lines, last \(Self.logTailLines)):\n"
                          + lines.suffix(Self.logTailLines).joined(separator: "\n"))
                }
            }
            printDiagnostics()
            if let lines = server?.requestLines() {
                print("--- server log (\(lines.count) lines, last 15):\n" + lines.suffix(15).joined(separator: "\n"))
            }
        }
        removeTestDirectory(root)
        mountpoints = []
        devices = []
    }

    /// Called by teardown of a failed test, after the mount logs: a subclass prints what else explains it.
    open func printDiagnostics() {}

    /// Prints one measurement as a line `metricLabel name: value`.
    public func metric(_ name: String, _ value: String) { printMetric(Self.metricLabel, name, value) }

    // MARK: cdsfs

    public func cdsfs(_ arguments: [String], timeout: Double = 180) -> ProcessResult {
        runProcess(Paths.cdsfs, arguments, timeout: timeout)
    }

    /// `cdsfs …` that must succeed; its standard output.
    @discardableResult
    public func must(_ arguments: [String], timeout: Double = 180) throws -> String {
        let r = cdsfs(arguments, timeout: timeout)
        guard r.succeeded else { throw StopTest("\(r)") }
        return r.stdout
    }

    /// A new device: `cdsfs init --home` (with `--remote remoteURL` when `joining`), else init and
    /// `cdsfs remote add`. Its mount point is created but not mounted.
    public func makeDevice(_ name: String, joining: Bool) throws -> Device {
        var d = Device(name: name, home: root + "/home-" + name, mnt: root + "/mnt-" + name)
        Files.mkdirs(d.mnt)
        devices.append(d)
        let out = try must(["init", "--home", d.home] + (joining ? ["--remote", remoteURL] : []))
        guard let id = out.split(separator: "\n").map(String.init).first(where: { isHex64($0) }) else {
            throw StopTest("init printed no actor id: \(out)")
        }
        d.id = id
        devices[devices.count - 1] = d
        if !joining { try must(["remote", "add", "--home", d.home, remoteURL]) }
        return d
    }

    /// Device A (the group's first) and device B, joined: A adds B to its group, B syncs once.
    /// With `mount`, both are mounted with commit_interval=1.
    public func makePair(mount: Bool = true) throws -> (Device, Device) {
        let a = try makeDevice("A", joining: false)
        let b = try makeDevice("B", joining: true)
        try must(["group", "add", "--home", a.home, b.id])
        let synced = try must(["sync", "--home", b.home])
        guard synced.contains("joined") else { throw StopTest("B did not join A's group: \(synced)") }
        if mount {
            try self.mount(a)
            try self.mount(b)
            usleep(500_000)  // each has pulled what waited in its in-queue
            try requireAlive(a, b)
        }
        return (a, b)
    }

    /// `cdsfs mount --home H -o commit_interval=1 MNT`; registered for teardown first.
    public func mount(_ d: Device) throws {
        mountpoints.append(d.mnt)
        try Mounts.mountFolder(home: d.home, at: d.mnt, options: [commitInterval])
    }

    /// `cdsfs unmount`, asserting that it worked.
    public func unmount(_ d: Device, file: StaticString = #filePath, line: UInt = #line) {
        let r = cdsfs(["unmount", d.mnt], timeout: 180)
        XCTAssert(r.succeeded, "unmount of \(d) failed: \(r)", file: file, line: line)
        XCTAssertFalse(Mounts.isMounted(d.mnt), "\(d.mnt) is still mounted", file: file, line: line)
        if Mounts.isMounted(d.mnt) { Mounts.forceUnmount(d.mnt) }
    }

    /// `cdsfs unmount` of every mount point still mounted, all at once (each may wait for its syncer's
    /// long poll), then `Mounts.forceUnmount` of any left.
    public func unmountAll(_ list: [String]) {
        let mounted = Array(Set(list.filter { Mounts.isMounted($0) }))
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(null) }
        let children = mounted.compactMap { try? ChildProcess(Paths.cdsfs, ["unmount", $0], stdout: null, stderr: null) }
        for c in children where !c.wait(timeout: 90) { c.killGroup() }
        for m in list { Mounts.forceUnmount(m) }
    }

    /// A shell with its working directory at `path` (inside a mount); closed before teardown unmounts.
    public func shell(in path: String) throws -> Shell {
        let s = try Shell(cwd: path)
        shells.append(s)
        return s
    }

    public func closeShells() {
        for s in shells { s.close() }
        shells = []
    }

    /// `cdsfs log --home H`: the version hashes, newest first.
    public func versions(_ d: Device) throws -> [String] {
        try must(["log", "--home", d.home]).split(separator: "\n").compactMap { l in
            let first = String(l.prefix(64))
            return isHex64(first) ? first : nil
        }
    }

    /// The newest version in `cdsfs log --home H`, or nil.
    public func head(_ d: Device) -> String? {
        let r = cdsfs(["log", "--home", d.home, "--limit", "1"])
        guard r.succeeded, let first = r.stdoutLines.first, isHex64(first.prefix(64)) else { return nil }
        return String(first.prefix(64))
    }

    /// Whether the daemon serving `d`'s mount still runs (HOME/mount.pid names a live process).
    public func daemonAlive(_ d: Device) -> Bool {
        guard let text = Files.readText(d.home + "/mount.pid"),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return false }
        return Mounts.isAlive(pid)
    }

    /// Throws when the mount daemon of any of `devices` has died (a crash), naming the log's last error.
    public func requireAlive(_ devices: Device...) throws {
        for d in devices where !daemonAlive(d) {
            let fatal = mountLog(d).split(separator: "\n").first { $0.contains("Fatal error") || $0.contains("error:") }
            throw StopTest("the mount daemon of \(d) is gone: \(fatal.map(String.init) ?? "see \(d.home)/mount.log")")
        }
    }

    /// Waits until `b`'s newest version is `a`'s and stays so for a moment (three looks, 0.25 s apart),
    /// without looking into the mounts: what the devices hold, not what the kernel shows. The seconds
    /// until they first agreed (in that last run of agreement), or nil after `timeout`. Throws if a
    /// mount daemon dies meanwhile.
    public func waitForSameHead(_ a: Device, _ b: Device, timeout: Double) throws -> Double? {
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

    public func mountLog(_ d: Device) -> String { Files.readText(d.home + "/mount.log") ?? "" }

    /// Runs a bash snippet that must succeed; its standard output.
    @discardableResult
    public func sh(_ script: String, cwd: String? = nil, timeout: Double = 180) throws -> String {
        let r = bash(script, cwd: cwd, timeout: timeout)
        guard r.succeeded else { throw StopTest("\(r)") }
        return r.stdout
    }

    @discardableResult
    public func py(_ program: String, _ arguments: [String] = [], timeout: Double = 180) throws -> String {
        let r = python(program, arguments, timeout: timeout)
        guard r.succeeded else { throw StopTest("\(r)") }
        return r.stdout
    }

    /// The tree under a directory (see `treeListing`); nil if it could not be read.
    public func tree(_ directory: String) -> String? {
        let r = treeListing(directory)
        return r.succeeded ? r.stdout : nil
    }
}
