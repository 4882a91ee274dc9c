import Foundation
import Glibc
import XCTest

/// Files and directories, with errno rather than exceptions.
public enum Files {
    /// A new directory /tmp/PREFIX-XXXXXX.
    public static func makeTemporaryDirectory(_ prefix: String = "cdsfs-test") -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { fatalError("mkdtemp: \(errnoName(errno))") }
        return String(cString: p)
    }

    public static func read(_ path: String) -> [UInt8]? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        return [UInt8](d)
    }

    public static func readText(_ path: String) -> String? { read(path).map { String(decoding: $0, as: UTF8.self) } }

    /// Writes bytes with open/write/close (no fsync); returns errno or 0.
    @discardableResult
    public static func write(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) -> Int32 {
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
    public static func write(_ path: String, _ text: String, mode: mode_t = 0o644) -> Int32 {
        write(path, Array(text.utf8), mode: mode)
    }

    public static func mkdirs(_ path: String) {
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
}

/// Teardown's last step: a test fails if anything is still mounted at or under `root` (which is then
/// left in place); otherwise `root` is removed, unless $CDSFS_KEEP is set.
public func removeTestDirectory(_ root: String, file: StaticString = #filePath, line: UInt = #line) {
    let stillMounted = Mounts.table().filter { $0.mountPoint.hasPrefix(root + "/") || $0.mountPoint == root }
    if !stillMounted.isEmpty {
        XCTFail("still mounted after teardown: \(stillMounted.map(\.mountPoint)); leaving \(root) in place",
                file: file, line: line)
    } else if ProcessInfo.processInfo.environment["CDSFS_KEEP"] != nil {
        print("keeping \(root)")
    } else {
        _ = runProcess("/bin/rm", ["-rf", root], timeout: 120)
    }
}

/// `du -sb`: bytes of the files under a folder.
public func storeBytes(_ path: String) -> Int {
    let r = runProcess("/usr/bin/du", ["-sb", path], timeout: 60)
    return Int(r.stdout.split(separator: "\t").first ?? "") ?? 0
}

/// The symbolic name of an errno value ("ENOSPC"), for messages.
public func errnoName(_ code: Int32) -> String {
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
public struct StopTest: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Whether `s` looks like a hash or actor id: 64 lowercase hex digits.
public func isHex64(_ s: some StringProtocol) -> Bool {
    s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
}
