import Condensation
@testable import CondensationFS
import Glibc
import XCTest

final class DeduplicationTests: XCTestCase {
    /// The same bytes written in different block sizes, with memory pressure chunking them at
    /// different moments, give the same chunks: no chunk ends where a buffer happened to fill up.
    func testCopiesWrittenInOtherBlockSizesShareTheirChunks() throws {
        let home = try temporaryHome(self)
        var options = VolumeOptions()
        options.writeBufferLimit = 2 << 20
        let v = try home.openVolume(options: options)
        var rng = SeededRandom(7)
        let data = rng.bytes(12 << 20)
        for (name, block) in [("one", 1 << 20), ("two", 128 << 10), ("three", 4096 * 3 + 7)] {
            let ino = try v.create(1, name, mode: 0o644, flags: O_WRONLY, uid: 0, gid: 0).0.ino
            var offset = 0
            while offset < data.count {
                let n = min(block, data.count - offset)
                _ = try data[offset..<(offset + n)].withUnsafeBytes { try v.write(ino, handle: ino, offset: UInt64(offset), $0) }
                offset += n
            }
        }
        // Written backwards, as a writeback flush may order it.
        let back = try v.create(1, "backwards", mode: 0o644, flags: O_WRONLY, uid: 0, gid: 0).0.ino
        for k in stride(from: data.count / (1 << 20) - 1, through: 0, by: -1) {
            _ = try data[(k << 20)..<((k + 1) << 20)].withUnsafeBytes { try v.write(back, handle: back, offset: UInt64(k << 20), $0) }
        }
        // Appended with a commit after each piece, as a log grows.
        let log = try v.create(1, "appended", mode: 0o644, flags: O_WRONLY, uid: 0, gid: 0).0.ino
        for k in 0..<4 {
            let piece = data.count / 4
            _ = try data[(k * piece)..<((k + 1) * piece)].withUnsafeBytes { try v.write(log, handle: log, offset: UInt64(k * piece), $0) }
            try v.commit()
        }
        let one = try v.committedChunkHashes("one")
        XCTAssertGreaterThan(one.count, 12)
        XCTAssertEqual(try v.committedChunkHashes("two"), one)
        XCTAssertEqual(try v.committedChunkHashes("three"), one)
        XCTAssertEqual(try v.committedChunkHashes("backwards"), one)
        XCTAssertEqual(try v.committedChunkHashes("appended"), one)
        XCTAssertEqual(try v.readFile(try v.lookup(1, "three").ino), data)
    }
}
