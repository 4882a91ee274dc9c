import Condensation
@testable import CondensationFS
import Glibc
import XCTest

/// A fresh temporary folder, removed by the test's teardown.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    var template = Array("/tmp/cdsfs-test-XXXXXX".utf8CString)
    guard let dir = mkdtemp(&template) else { throw FSError.io }
    let path = String(cString: dir)
    test.addTeardownBlock { _ = system("rm -rf '\(path)'") }
    return path
}

/// A fresh home in a temporary folder, removed by the test's teardown.
func temporaryHome(_ test: XCTestCase) throws -> Home {
    try Home.create(path: try temporaryDirectory(test) + "/home")
}

extension Volume {
    /// Creates (or truncates) a file with `bytes`; returns its inode.
    @discardableResult
    func writeFile(_ parent: Inode, _ name: String, _ bytes: [UInt8], at offset: UInt64 = 0) throws -> Inode {
        let ino: Inode
        if let attr = try? lookup(parent, name) {
            ino = attr.ino
        } else {
            ino = try create(parent, name, mode: 0o644, flags: O_WRONLY, uid: 0, gid: 0).0.ino
        }
        _ = try bytes.withUnsafeBytes { try write(ino, handle: ino, offset: offset, $0) }
        return ino
    }

    func readFile(_ ino: Inode) throws -> [UInt8] {
        let size = Int(try getattr(ino).size)
        var out = [UInt8](repeating: 0, count: size)
        let n = try out.withUnsafeMutableBytes { try read(ino, handle: ino, offset: 0, into: $0) }
        XCTAssertEqual(n, size)
        return out
    }

    /// Commits, then lists the chunks of the file `name` in the root directory.
    func committedChunkHashes(_ name: String) throws -> [Hash] {
        try committedChunks(name).compactMap { $0.link?.hash }
    }

    /// Commits, then lists the pieces (chunks, parts of chunks, holes) of the file `name` in the root.
    func committedChunks(_ name: String) throws -> [ChunkRef] {
        try commit()
        let content = lock.withLock { () -> StoredContent? in
            let n = root.children?[name]
            return n?.file?.stored ?? n?.storedContent
        }
        switch content {
        case .chunks(let c)?: return c
        case .chunkList(let link, _)?:
            let r = try ObjectReader(store: home.store).record(link)
            return try XCTUnwrap(ChunkRef.list(in: r))
        default: return []
        }
    }

    func names(_ dir: Inode) throws -> [String] {
        let h = try opendir(dir)
        defer { releasedir(dir, handle: h) }
        var names: [String] = []
        try readdir(dir, handle: h, offset: 0, plus: false) { e, _ in
            if e.name != "." && e.name != ".." { names.append(e.name) }
            return true
        }
        return names
    }
}

/// Deterministic pseudo-random bytes (tests must be repeatable).
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &+ 0x9e37_79b9_7f4a_7c15 }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    mutating func bytes(_ n: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        var i = 0
        while i < n {
            let v = next()
            for k in 0..<min(8, n - i) { out[i + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
            i += 8
        }
        return out
    }
}
