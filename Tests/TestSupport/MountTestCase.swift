import Foundation
import Glibc
import XCTest

// The base of the tests that mount one home: they drive the real `cdsfs` binary and ordinary tools (cp,
// tar, rsync, git, sqlite3, python) against a real FUSE mount, the way a person would, and compare with
// the same steps on a native directory. Every mount a test makes is unmounted in teardown, whatever
// happened. (Several devices and a server: SyncTestCase.)

/// Whether this build has `cdsfs mount` (the FUSE layer may not have landed yet).
public let mountCommandAvailable: Bool = {
    guard FileManager.default.isExecutableFile(atPath: Paths.cdsfs) else { return false }
    // An unknown subcommand with --help prints the top-level help and exits 0: look for mount's own usage.
    let r = runProcess(Paths.cdsfs, ["mount", "--help"], timeout: 30)
    return r.succeeded && r.stdout.contains("USAGE: cdsfs mount")
}()

/// A fresh directory, home and mount point per test, always unmounted in teardown.
open class MountTestCase: XCTestCase {
    /// This test's temporary directory (removed in teardown unless $CDSFS_KEEP is set).
    public var root = ""
    /// The cdsfs home: <root>/home (created by `initHome`).
    public var home = ""
    /// The mount point: <root>/mnt (an empty directory).
    public var mnt = ""
    /// A native directory for doing the same steps outside the mount: <root>/native.
    public var native = ""
    /// Inputs: <root>/src.
    public var src = ""

    /// The name of `root` under /tmp (then -XXXXXX).
    open class var directoryPrefix: String { "cdsfs-mt" }

    /// Every mount point this test mounted; teardown unmounts each one still mounted.
    private var mountpoints: [String] = []
    private var homesUsed: [String] = []

    open override func setUpWithError() throws {
        try super.setUpWithError()
        guard FileManager.default.isExecutableFile(atPath: Paths.cdsfs) else {
            throw XCTSkip("no cdsfs binary at \(Paths.cdsfs) (build it, or set CDSFS_BIN)")
        }
        guard mountCommandAvailable else { throw XCTSkip("`cdsfs mount` is not available in this build yet") }
        guard FileManager.default.fileExists(atPath: "/dev/fuse") else { throw XCTSkip("no /dev/fuse") }
        root = Files.makeTemporaryDirectory(Self.directoryPrefix)
        home = root + "/home"
        mnt = root + "/mnt"
        native = root + "/native"
        src = root + "/src"
        for d in [mnt, native, src] { Files.mkdirs(d) }
    }

    open override func tearDown() {
        defer { super.tearDown() }
        guard !root.isEmpty else { return }  // setUp skipped the test before making anything
        for m in mountpoints.reversed() { Mounts.forceUnmount(m) }
        unmountOtherFilesystems()
        let failed = (testRun?.totalFailureCount ?? 0) > 0
        if failed {
            for h in Set(homesUsed) {
                if let log = Files.readText(h + "/mount.log") {
                    print("--- \(h)/mount.log (last 40 lines):\n" + log.split(separator: "\n").suffix(40).joined(separator: "\n"))
                }
            }
        }
        removeTestDirectory(root)
        mountpoints = []
        homesUsed = []
    }

    /// Called by teardown after the FUSE mounts `mount` made are gone, before it checks that nothing is
    /// left mounted under `root`: a subclass unmounts what else its tests mounted there.
    open func unmountOtherFilesystems() {}

    // MARK: cdsfs commands

    public func cdsfs(_ arguments: [String], timeout: Double = 180) -> ProcessResult {
        runProcess(Paths.cdsfs, arguments, timeout: timeout)
    }

    /// `cdsfs init --home H`; returns the actor id.
    @discardableResult
    public func initHome(_ h: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = cdsfs(["init", "--home", h ?? home])
        guard r.succeeded else { throw StopTest("init failed: \(r)") }
        guard let id = r.stdoutLines.first(where: { isHex64($0) }) else { throw StopTest("init printed no actor id: \(r)") }
        return id
    }

    /// `cdsfs mount --home H [-o options] [extra…] MOUNTPOINT`; throws unless it returned 0 with the
    /// folder mounted. The mount point is registered for teardown before anything runs.
    @discardableResult
    public func mount(home h: String? = nil, at mountpoint: String? = nil, options: [String] = [], extra: [String] = [],
                      file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
        let h = h ?? home
        let m = mountpoint ?? mnt
        mountpoints.append(m)
        homesUsed.append(h)
        return try Mounts.mountFolder(home: h, at: m, options: options, extra: extra)
    }

    /// `cdsfs unmount MOUNTPOINT`; asserts that it succeeded, that the folder is no longer mounted, and
    /// that the daemon has exited.
    public func unmount(_ mountpoint: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
        let m = mountpoint ?? mnt
        let daemons = Mounts.processes(mentioning: m)
        let r = cdsfs(["unmount", m], timeout: 180)
        XCTAssert(r.succeeded, "unmount failed: \(r)", file: file, line: line)
        XCTAssertFalse(Mounts.isMounted(m), "\(m) is still mounted after `cdsfs unmount`", file: file, line: line)
        for pid in daemons {
            // `cdsfs unmount` returns after the daemon exits; allow a moment for the kernel to reap it.
            XCTAssert(Mounts.waitForExit(pid, seconds: 10), "the mount daemon \(pid) is still running after unmount",
                      file: file, line: line)
        }
        if Mounts.isMounted(m) { Mounts.forceUnmount(m) }
    }

    /// Unmount, then mount the same home again with the same options.
    public func remount(options: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        unmount(file: file, line: line)
        try mount(options: options, file: file, line: line)
    }

    /// Cleans up a mount whose daemon is dead, as a person would: fusermount3 -u, else umount -l.
    public func cleanDeadMount(_ m: String, file: StaticString = #filePath, line: UInt = #line) {
        if Mounts.isMounted(m) { _ = runProcess("fusermount3", ["-u", m], timeout: 30) }
        if Mounts.isMounted(m) { _ = runProcess("umount", ["-l", m], timeout: 30) }
        XCTAssertFalse(Mounts.isMounted(m), "the dead mount at \(m) could not be cleaned up", file: file, line: line)
    }

    /// The pid of the daemon serving a mount point: for the writable mount of `home` (no mount point
    /// given), H/mount.pid if it names a live process; else the process whose command line names it.
    public func daemonPID(home h: String? = nil, mountpoint: String? = nil) -> pid_t? {
        if mountpoint == nil, let text = Files.readText((h ?? home) + "/mount.pid"),
           let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), Mounts.isAlive(pid) {
            return pid
        }
        return Mounts.processes(mentioning: mountpoint ?? mnt).first
    }

    /// `cdsfs log --home H`: the version hashes, newest first.
    public func versions(home h: String? = nil, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        let r = cdsfs(["log", "--home", h ?? home])
        XCTAssert(r.succeeded, "log failed: \(r)", file: file, line: line)
        return r.stdoutLines.compactMap { l in
            let first = String(l.prefix(64))
            return isHex64(first) ? first : nil
        }
    }

    /// `cdsfs fsck`: its result (exit 0 iff all is well).
    public func fsck(home h: String? = nil) -> ProcessResult { cdsfs(["fsck", "--home", h ?? home], timeout: 600) }

    /// The hashes fsck names in its "bad object <hash>: …" lines.
    public func badObjects(_ r: ProcessResult) -> [String] {
        r.stdoutLines.compactMap { line in
            guard line.hasPrefix("bad object ") else { return nil }
            return String(line.dropFirst("bad object ".count).prefix(64))
        }
    }

    /// HOME/mount.log, where the daemon logs.
    public func mountLog(home h: String? = nil) -> String { Files.readText((h ?? home) + "/mount.log") ?? "" }

    // MARK: shell

    /// Runs a bash snippet and asserts that it exits 0; returns its standard output.
    @discardableResult
    public func sh(_ script: String, cwd: String? = nil, environment: [String: String] = [:], timeout: Double = 180,
                   file: StaticString = #filePath, line: UInt = #line) -> String {
        let r = bash(script, cwd: cwd, environment: environment, timeout: timeout)
        XCTAssert(r.succeeded, "\(r)", file: file, line: line)
        return r.stdout
    }

    /// Runs a Python program and asserts that it exits 0; returns its standard output.
    @discardableResult
    public func py(_ program: String, _ arguments: [String] = [], cwd: String? = nil, timeout: Double = 180,
                   file: StaticString = #filePath, line: UInt = #line) -> String {
        let r = python(program, arguments, cwd: cwd, timeout: timeout)
        XCTAssert(r.succeeded, "\(r)", file: file, line: line)
        return r.stdout
    }

    /// Runs the same bash snippet in `a` and in `b` (as cwd) and asserts both exit 0 with the same output.
    public func sameSteps(_ script: String, in a: String, and b: String, environment: [String: String] = [:],
                          file: StaticString = #filePath, line: UInt = #line) {
        let ra = bash(script, cwd: a, environment: environment)
        let rb = bash(script, cwd: b, environment: environment)
        XCTAssert(ra.succeeded, "in \(a): \(ra)", file: file, line: line)
        XCTAssert(rb.succeeded, "in \(b): \(rb)", file: file, line: line)
        XCTAssertEqual(ra.stdout, rb.stdout, "the same steps printed different output in \(a) and \(b)",
                       file: file, line: line)
    }
}
