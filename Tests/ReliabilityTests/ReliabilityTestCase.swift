import Condensation
import Foundation
import Glibc
import TestSupport
import XCTest

/// The base of the reliability tests: MountTestCase's fresh home and mount points, a store that can be
/// put on a small tmpfs (disk full, read-only disk), direct access to the store's object files, and a
/// teardown that leaves nothing mounted (FUSE mounts first, then the tmpfs under them).
class ReliabilityTestCase: MountTestCase {
    /// A second mount point (read-only mounts of past versions): <root>/at.
    var at = ""

    private var otherMounts: [String] = []

    override class var directoryPrefix: String { "cdsfs-rt" }

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard getuid() == 0 else { throw XCTSkip("the reliability tests mount filesystems: run them as root") }
        at = root + "/at"
        Files.mkdirs(at)
    }

    override func unmountOtherFilesystems() {
        // Any other FUSE mount under root (a test may have mounted by hand), then the tmpfs under them.
        for m in Mounts.table() where m.type.hasPrefix("fuse") && m.mountPoint.hasPrefix(root + "/") { Mounts.forceUnmount(m.mountPoint) }
        for m in otherMounts.reversed() where Mounts.isMounted(m) {
            if !runProcess("/bin/umount", [m], timeout: 60).succeeded { _ = runProcess("/bin/umount", ["-l", m], timeout: 60) }
        }
        otherMounts = []
    }

    // MARK: The store on a tmpfs

    /// Mounts a tmpfs of `size` (e.g. "20m") at <root>/storefs, moves the home's store onto it and
    /// leaves a symbolic link in its place (the home's key pair and log stay on the normal disk).
    /// Returns the tmpfs mount point. The home must exist and not be mounted.
    @discardableResult
    func moveStoreToTmpfs(size: String) throws -> String {
        let fs = root + "/storefs"
        Files.mkdirs(fs)
        otherMounts.append(fs)
        let r = runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size),mode=0755", "tmpfs", fs], timeout: 30)
        guard r.succeeded else { throw StopTest("cannot mount a tmpfs: \(r)") }
        let moved = bash("mv '\(home)/store' '\(fs)/store' && ln -s '\(fs)/store' '\(home)/store'")
        guard moved.succeeded else { throw StopTest("cannot move the store: \(moved)") }
        return fs
    }

    /// `mount -o remount,OPTIONS` of a tmpfs or other mount made by this test.
    func remountFilesystem(_ fs: String, _ options: String, file: StaticString = #filePath, line: UInt = #line) {
        let r = runProcess("/bin/mount", ["-o", "remount," + options, fs], timeout: 30)
        XCTAssert(r.succeeded, "remount \(options) of \(fs): \(r)", file: file, line: line)
    }

    // MARK: Objects in the store

    struct StoredObject {
        var hex: String
        var path: String
        var size: Int
        /// The object's hash count (its first four bytes, big-endian): 0 for chunks and for
        /// directories holding only small files; more for anything that links.
        var hashCount: Int
    }

    /// Every object file of the home's store.
    func storeObjects() -> [String: StoredObject] {
        let objects = home + "/store/objects"
        var out: [String: StoredObject] = [:]
        for prefix in (try? FileManager.default.contentsOfDirectory(atPath: objects)) ?? [] where prefix.count == 2 {
            for rest in (try? FileManager.default.contentsOfDirectory(atPath: objects + "/" + prefix)) ?? [] where rest.count == 62 {
                let path = objects + "/" + prefix + "/" + rest
                guard let bytes = Files.read(path), bytes.count >= 4 else { continue }
                let count = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
                out[prefix + rest] = StoredObject(hex: prefix + rest, path: path, size: bytes.count, hashCount: count)
            }
        }
        return out
    }

    /// Flips one bit of a file in place (the object's data part, past the header and hash list).
    func flipBit(in object: StoredObject, file: StaticString = #filePath, line: UInt = #line) {
        guard var bytes = Files.read(object.path) else { return XCTFail("cannot read \(object.path)", file: file, line: line) }
        let dataStart = 4 + 32 * object.hashCount
        let at = dataStart + (bytes.count - dataStart) / 2
        bytes[at] ^= 0x10
        let fd = open(object.path, O_WRONLY | O_CLOEXEC)
        XCTAssert(fd >= 0, "open \(object.path): \(errnoName(errno))", file: file, line: line)
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + at, 1, off_t(at)) }
        XCTAssertEqual(n, 1, file: file, line: line)
        close(fd)
    }
}

// MARK: - File operations that report errno

enum IO {
    /// Reads a whole file: its bytes, or the errno of the first failing call.
    static func read(_ path: String) -> Result<[UInt8], TreeSnapshot.Errno> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(.init(code: errno)) }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.init(code: errno))
            }
            if n == 0 { return .success(out) }
            out += buffer[0..<n]
        }
    }

    /// The errno of a failed read, or 0.
    static func readErrno(_ path: String) -> Int32 {
        if case .failure(let e) = read(path) { return e.code }
        return 0
    }

    /// fsync of an existing file (or directory): 0 or errno.
    static func fsync(_ path: String) -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        return Glibc.fsync(fd) == 0 ? 0 : errno
    }

    /// What each step of create, write, fsync and close returned (0 or errno).
    struct WriteOutcome: CustomStringConvertible {
        var open: Int32 = 0
        var write: Int32 = 0
        var fsync: Int32 = 0
        var close: Int32 = 0
        /// Bytes write(2) accepted before it failed, if it did.
        var written = 0
        var description: String {
            "open \(errnoName(open)), write \(errnoName(write)) after \(written) bytes, fsync \(errnoName(fsync)), close \(errnoName(close))"
        }
        var succeeded: Bool { open == 0 && write == 0 && fsync == 0 && close == 0 }
        /// The first error, in the order the calls were made.
        var firstError: Int32 { [open, write, fsync, close].first { $0 != 0 } ?? 0 }
    }

    /// Creates (or truncates) `path`, writes `bytes` in `piece`-sized writes, optionally fsyncs, closes.
    /// Stops writing at the first failing write, but still fsyncs and closes.
    static func write(_ path: String, _ bytes: [UInt8], piece: Int = 1 << 20, fsync: Bool = true) -> WriteOutcome {
        var o = WriteOutcome()
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            o.open = errno
            return o
        }
        while o.written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + o.written, min(piece, $0.count - o.written)) }
            if n < 0 {
                if errno == EINTR { continue }
                o.write = errno
                break
            }
            o.written += n
        }
        if fsync && Glibc.fsync(fd) != 0 { o.fsync = errno }
        if close(fd) != 0 { o.close = errno }
        return o
    }

    static func sha(_ bytes: [UInt8]) -> String { Hash.of(bytes).hex }
}
