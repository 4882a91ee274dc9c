import Condensation
import Foundation
import Glibc
import XCTest

// Snapshots of directory trees (what `ls -l`, `stat`, `getfattr` and reading every file would show) and
// their comparison: contents, sizes, modes, symlink targets, hard link structure, xattrs, mtimes.

/// The xattr calls of <sys/xattr.h>, which the Glibc module does not export.
public enum Xattr {
    public typealias List = @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int) -> Int
    public typealias Get = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?, Int) -> Int
    public typealias Set = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeRawPointer?, Int, Int32) -> Int32

    private static func symbol<T>(_ name: String, _ type: T.Type) -> T {
        guard let p = dlsym(dlopen(nil, RTLD_NOW), name) else { fatalError("no \(name) in libc") }
        return unsafeBitCast(p, to: type)
    }

    nonisolated(unsafe) public static let llistxattr = symbol("llistxattr", List.self)
    nonisolated(unsafe) public static let lgetxattr = symbol("lgetxattr", Get.self)
    nonisolated(unsafe) public static let lsetxattr = symbol("lsetxattr", Set.self)
    nonisolated(unsafe) public static let setxattr = symbol("setxattr", Set.self)
    public typealias Remove = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Int32
    nonisolated(unsafe) public static let lremovexattr = symbol("lremovexattr", Remove.self)
    /// renameat2(2) (glibc 2.28), for RENAME_NOREPLACE and RENAME_EXCHANGE.
    public typealias Rename2 = @convention(c) (Int32, UnsafePointer<CChar>?, Int32, UnsafePointer<CChar>?, UInt32) -> Int32
    nonisolated(unsafe) public static let renameat2 = symbol("renameat2", Rename2.self)
}

public struct TreeEntry: Equatable, CustomStringConvertible {
    public enum Kind: String { case file, directory, symlink, other }

    public var kind: Kind
    /// st_mode & 07777.
    public var permissions: UInt32
    public var size: UInt64
    /// SHA-256 of a file's bytes; empty for others (or when not read).
    public var digest: String
    /// A symbolic link's target.
    public var target: String
    /// st_mtim in nanoseconds.
    public var mtime: Int64
    public var nlink: UInt64
    public var inode: UInt64
    /// user.* extended attributes.
    public var xattrs: [String: [UInt8]]

    public var description: String {
        var s = "\(kind.rawValue) \(String(permissions, radix: 8)) size \(size) nlink \(nlink) mtime \(mtime)"
        if !digest.isEmpty { s += " sha \(digest.prefix(12))" }
        if kind == .symlink { s += " -> \(target)" }
        if !xattrs.isEmpty { s += " xattrs \(xattrs.keys.sorted())" }
        return s
    }
}

public struct TreeSnapshot {
    public let root: String
    /// Relative path → entry; the root itself is not included.
    public var entries: [String: TreeEntry] = [:]
    /// Anything that could not be read (path: errno).
    public var errors: [String] = []

    public init(_ root: String, readContents: Bool = true) {
        self.root = root
        walk("", readContents: readContents)
    }

    private mutating func walk(_ relative: String, readContents: Bool) {
        let dir = relative.isEmpty ? root : root + "/" + relative
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
            errors.append("\(relative.isEmpty ? "." : relative): cannot list: \(error)")
            return
        }
        for name in names.sorted() {
            let rel = relative.isEmpty ? name : relative + "/" + name
            let path = root + "/" + rel
            var st = stat()
            guard lstat(path, &st) == 0 else {
                errors.append("\(rel): lstat: \(errnoName(errno))")
                continue
            }
            var e = TreeEntry(kind: .other, permissions: UInt32(st.st_mode) & 0o7777, size: UInt64(st.st_size),
                              digest: "", target: "", mtime: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                              nlink: UInt64(st.st_nlink), inode: UInt64(st.st_ino), xattrs: [:])
            switch UInt32(st.st_mode) & UInt32(S_IFMT) {
            case UInt32(S_IFREG):
                e.kind = .file
                if readContents {
                    switch TreeSnapshot.digest(path) {
                    case .success(let d): e.digest = d
                    case .failure(let e): errors.append("\(rel): read: \(errnoName(e.code))")
                    }
                }
            case UInt32(S_IFDIR): e.kind = .directory
            case UInt32(S_IFLNK):
                e.kind = .symlink
                e.target = TreeSnapshot.readLink(path) ?? "<unreadable: \(errnoName(errno))>"
            default: e.kind = .other
            }
            e.xattrs = TreeSnapshot.userXattrs(path)
            entries[rel] = e
            if e.kind == .directory { walk(rel, readContents: readContents) }
        }
    }

    public struct Errno: Error {
        public var code: Int32
        public init(code: Int32) { self.code = code }
    }

    public static func digest(_ path: String) -> Result<String, Errno> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(Errno(code: errno)) }
        defer { close(fd) }
        let sha = SHA256Stream()
        let size = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress, size)
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Errno(code: errno))
            }
            if n == 0 { break }
            sha.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return .success(sha.finish().hex)
    }

    public static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func userXattrs(_ path: String) -> [String: [UInt8]] {
        let size = Xattr.llistxattr(path, nil, 0)
        guard size > 0 else { return [:] }
        var names = [CChar](repeating: 0, count: size)
        let n = Xattr.llistxattr(path, &names, size)
        guard n > 0 else { return [:] }
        var out: [String: [UInt8]] = [:]
        for raw in names[0..<n].split(separator: 0) {
            let name = String(decoding: raw.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard name.hasPrefix("user.") else { continue }
            let vsize = Xattr.lgetxattr(path, name, nil, 0)
            guard vsize >= 0 else { out[name] = Array("<\(errnoName(errno))>".utf8); continue }
            var value = [UInt8](repeating: 0, count: vsize)
            let got = value.withUnsafeMutableBytes { Xattr.lgetxattr(path, name, $0.baseAddress, vsize) }
            out[name] = got >= 0 ? Array(value[0..<got]) : Array("<\(errnoName(errno))>".utf8)
        }
        return out
    }

    /// For every non-directory: the sorted paths in this tree that share its inode (itself included).
    public func linkGroups() -> [String: [String]] {
        var byInode: [UInt64: [String]] = [:]
        for (path, e) in entries where e.kind != .directory { byInode[e.inode, default: []].append(path) }
        var out: [String: [String]] = [:]
        for (_, paths) in byInode {
            let sorted = paths.sorted()
            for p in paths { out[p] = sorted }
        }
        return out
    }
}

/// What to compare.
public struct TreeAspects: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public static let contents = TreeAspects(rawValue: 1)
    public static let modes = TreeAspects(rawValue: 2)
    public static let fileTimes = TreeAspects(rawValue: 4)
    public static let directoryTimes = TreeAspects(rawValue: 8)
    public static let symlinkTimes = TreeAspects(rawValue: 16)
    /// Hard link structure (which paths share an inode) and link counts.
    public static let links = TreeAspects(rawValue: 32)
    public static let xattrs = TreeAspects(rawValue: 64)

    public static let times: TreeAspects = [.fileTimes, .directoryTimes, .symlinkTimes]
    public static let all: TreeAspects = [.contents, .modes, .times, .links, .xattrs]
    public static let allButTimes: TreeAspects = [.contents, .modes, .links, .xattrs]
}

/// Every difference between two snapshots, one line each (empty when they match).
public func treeDifferences(_ a: TreeSnapshot, _ b: TreeSnapshot, _ aspects: TreeAspects = .all) -> [String] {
    var out: [String] = []
    out += a.errors.map { "\(a.root): \($0)" }
    out += b.errors.map { "\(b.root): \($0)" }
    for path in Set(a.entries.keys).subtracting(b.entries.keys).sorted() { out.append("only in \(a.root): \(path)") }
    for path in Set(b.entries.keys).subtracting(a.entries.keys).sorted() { out.append("only in \(b.root): \(path)") }
    let groupsA = aspects.contains(.links) ? a.linkGroups() : [:]
    let groupsB = aspects.contains(.links) ? b.linkGroups() : [:]
    for path in Set(a.entries.keys).intersection(b.entries.keys).sorted() {
        let x = a.entries[path]!, y = b.entries[path]!
        func differ(_ what: String, _ p: Any, _ q: Any) { out.append("\(path): \(what) \(p) ≠ \(q)") }
        guard x.kind == y.kind else {
            differ("type", x.kind.rawValue, y.kind.rawValue)
            continue
        }
        if aspects.contains(.modes), x.permissions != y.permissions {
            differ("mode", String(x.permissions, radix: 8), String(y.permissions, radix: 8))
        }
        switch x.kind {
        case .file:
            if x.size != y.size { differ("size", x.size, y.size) }
            if aspects.contains(.contents), x.digest != y.digest { differ("contents (sha256)", x.digest, y.digest) }
            if aspects.contains(.fileTimes), x.mtime != y.mtime { differ("mtime", x.mtime, y.mtime) }
        case .symlink:
            if x.target != y.target { differ("symlink target", x.target, y.target) }
            if x.size != y.size { differ("symlink size", x.size, y.size) }
            if aspects.contains(.symlinkTimes), x.mtime != y.mtime { differ("mtime", x.mtime, y.mtime) }
        case .directory:
            if aspects.contains(.directoryTimes), x.mtime != y.mtime { differ("mtime", x.mtime, y.mtime) }
            if aspects.contains(.links), x.nlink != y.nlink { differ("directory link count", x.nlink, y.nlink) }
        case .other:
            if aspects.contains(.fileTimes), x.mtime != y.mtime { differ("mtime", x.mtime, y.mtime) }
        }
        if aspects.contains(.links), x.kind != .directory {
            if x.nlink != y.nlink { differ("link count", x.nlink, y.nlink) }
            if groupsA[path] != groupsB[path] { differ("hard links", groupsA[path] ?? [], groupsB[path] ?? []) }
        }
        if aspects.contains(.xattrs), x.xattrs != y.xattrs {
            func show(_ d: [String: [UInt8]]) -> String {
                d.keys.sorted().map { "\($0)=\(String(decoding: d[$0]!, as: UTF8.self).debugDescription)" }.joined(separator: ",")
            }
            differ("xattrs", show(x.xattrs), show(y.xattrs))
        }
    }
    return out
}

extension XCTestCase {
    /// Asserts that two trees look the same to a person (in the chosen aspects).
    public func assertSameTree(_ a: String, _ b: String, _ aspects: TreeAspects = .all, _ message: @autoclosure () -> String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
        assertSameTree(TreeSnapshot(a), TreeSnapshot(b), aspects, message(), file: file, line: line)
    }

    public func assertSameTree(_ a: TreeSnapshot, _ b: TreeSnapshot, _ aspects: TreeAspects = .all,
                        _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
        let diffs = treeDifferences(a, b, aspects)
        if !diffs.isEmpty {
            let shown = diffs.prefix(40).joined(separator: "\n  ")
            XCTFail("\(message()) \(a.root) and \(b.root) differ in \(diffs.count) ways:\n  \(shown)", file: file, line: line)
        }
    }
}

// MARK: - A sample tree with every feature a person's folder has

public enum SampleTree {
    /// Builds a varied tree under `path` (which must exist and be empty): nested directories, empty and
    /// large files, odd names, modes, symbolic links (relative, absolute, dangling, to directories), hard
    /// links, xattrs, and mtimes in the past with nanoseconds. About 2.5 MiB.
    public static func make(at path: String, seed: UInt64 = 1, manyFiles: Int = 120) {
        var rng = SplitMix(seed: seed)
        func p(_ rel: String) -> String { path + "/" + rel }
        func dir(_ rel: String, _ mode: mode_t = 0o755) {
            precondition(mkdir(p(rel), mode) == 0 || errno == EEXIST, "mkdir \(rel): \(errnoName(errno))")
            chmod(p(rel), mode)
        }
        func file(_ rel: String, _ bytes: [UInt8], _ mode: mode_t = 0o644) {
            precondition(Files.write(p(rel), bytes, mode: mode) == 0, "write \(rel)")
            chmod(p(rel), mode)
        }
        func text(_ rel: String, _ s: String, _ mode: mode_t = 0o644) { file(rel, Array(s.utf8), mode) }
        func xattr(_ rel: String, _ name: String, _ value: [UInt8]) {
            let r = value.withUnsafeBytes { Xattr.lsetxattr(p(rel), name, $0.baseAddress, value.count, 0) }
            precondition(r == 0, "setxattr \(rel): \(errnoName(errno))")
        }

        dir("a")
        dir("a/b")
        dir("a/b/c deep")
        dir("empty")
        dir("ünïcødé dir")
        dir("private", 0o700)
        dir("many")
        text("hello.txt", "hello, world\n")
        file("empty.txt", [])
        text("one", "1")
        text("a/notes.md", String(repeating: "# notes\nsome text that repeats\n", count: 200))
        file("a/b/random-4k.bin", rng.bytes(4096))
        file("a/b/c deep/random-100k.bin", rng.bytes(100_000))
        file("big.bin", rng.bytes(1_500_000 + 7))
        text("exec.sh", "#!/bin/sh\necho hi\n", 0o755)
        text("read-only.txt", "do not touch\n", 0o444)
        text("private/secret", "s3cr3t\n", 0o600)
        text("ünïcødé dir/fïlé with spaces.txt", "ünïcødé\n")
        text("name with 'quotes' and \"double\"", "q\n")
        text(String(repeating: "long-name-", count: 24) + "end", "long\n")
        for i in 0..<manyFiles { text(String(format: "many/f%04d.txt", i), "file \(i)\n" + String(repeating: "x", count: i * 13)) }
        // Symbolic links.
        precondition(symlink("hello.txt", p("link-to-hello")) == 0)
        precondition(symlink("../hello.txt", p("a/up")) == 0)
        precondition(symlink("/etc/hostname", p("absolute-link")) == 0)
        precondition(symlink("nowhere/at/all", p("dangling")) == 0)
        precondition(symlink("a/b", p("dirlink")) == 0)
        // Hard links: hello.txt ×3, big.bin ×2.
        precondition(link(p("hello.txt"), p("a/hard1")) == 0)
        precondition(link(p("hello.txt"), p("a/b/hard2")) == 0)
        precondition(link(p("big.bin"), p("empty-dir-neighbour-big-link")) == 0)
        // Extended attributes.
        xattr("hello.txt", "user.color", Array("blue".utf8))
        xattr("a/b/random-4k.bin", "user.binary", [0, 1, 2, 255, 254, 0, 10])
        xattr("a", "user.on-a-directory", Array("yes".utf8))
        xattr("empty.txt", "user.empty", [])
        xattr("big.bin", "user.long", Array(repeating: UInt8(ascii: "v"), count: 3000))
        // Times: files and links first, then directories deepest first (creating entries changes them).
        let all = Array(TreeSnapshot(path, readContents: false).entries.keys)
        var time: Int64 = 1_500_000_000
        func setTime(_ rel: String) {
            time += Int64(rng.next() % 10_000_000)
            let ts = timespec(tv_sec: Int(time), tv_nsec: Int(rng.next() % 1_000_000_000))
            let times = [ts, ts]
            precondition(utimensat(AT_FDCWD, p(rel), times, AT_SYMLINK_NOFOLLOW) == 0, "utimensat \(rel)")
        }
        var dirs: [String] = []
        for rel in all.sorted() {
            var st = stat()
            lstat(p(rel), &st)
            if UInt32(st.st_mode) & UInt32(S_IFMT) == UInt32(S_IFDIR) { dirs.append(rel) } else { setTime(rel) }
        }
        for rel in dirs.sorted(by: { $0.count > $1.count }) { setTime(rel) }
    }
}
