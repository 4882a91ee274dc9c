import Condensation
import XCTest

final class SealedBlocksTests: XCTestCase {
    private let blocks = SealedBlocks(blockSize: 1024)

    /// Plaintext laid out with room for the tags, as the sealer expects it.
    private func layout(_ plain: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for i in 0..<blocks.blockCount(plaintext: plain.count) {
            let n = blocks.plaintextCount(block: i, of: plain.count)
            out += plain[(i * 1024)..<(i * 1024 + n)]
            out += [UInt8](repeating: 0, count: 16)
        }
        return out
    }

    private func plaintext(of sealed: [UInt8], count: Int) -> [UInt8] {
        var out: [UInt8] = []
        for i in 0..<blocks.blockCount(plaintext: count) {
            let at = blocks.sealedOffset(block: i)
            out += sealed[at..<(at + blocks.plaintextCount(block: i, of: count))]
        }
        return out
    }

    func testRoundTripsAtEverySizeAroundABlock() {
        let key = AESKey.random()
        for count in [1, 15, 16, 1023, 1024, 1025, 2048, 5000] {
            let plain = Random.bytes(count)
            var sealed = layout(plain)
            XCTAssertEqual(sealed.count, blocks.sealedSize(plaintext: count))
            sealed.withUnsafeMutableBytes { blocks.seal($0, plaintext: count, key: key) }
            XCTAssertNotEqual(plaintext(of: sealed, count: count), plain, "not encrypted at \(count)")
            XCTAssert(sealed.withUnsafeMutableBytes { blocks.open($0, plaintext: count, key: key) }, "\(count)")
            XCTAssertEqual(plaintext(of: sealed, count: count), plain, "\(count)")
        }
    }

    /// A block opens on its own, given its index: what a 4 KiB read of a large chunk relies on.
    func testABlockOpensOnItsOwnAtItsIndexOnly() {
        let key = AESKey.random()
        let plain = Random.bytes(3500)
        var sealed = layout(plain)
        sealed.withUnsafeMutableBytes { blocks.seal($0, plaintext: 3500, key: key) }
        let at = blocks.sealedOffset(block: 2)
        var third = Array(sealed[at..<(at + 1024 + 16)])
        var copy = third
        XCTAssert(third.withUnsafeMutableBytes { blocks.open($0, plaintext: 1024, key: key, firstBlock: 2) })
        XCTAssertEqual(Array(third[..<1024]), Array(plain[2048..<3072]))
        // The same bytes at another index (a block moved) fail.
        XCTAssertFalse(copy.withUnsafeMutableBytes { blocks.open($0, plaintext: 1024, key: key, firstBlock: 1) })
        // The last, short block.
        let lastAt = blocks.sealedOffset(block: 3)
        var last = Array(sealed[lastAt...])
        XCTAssertEqual(last.count, 3500 - 3072 + 16)
        XCTAssert(last.withUnsafeMutableBytes { blocks.open($0, plaintext: 3500 - 3072, key: key, firstBlock: 3) })
        XCTAssertEqual(Array(last[..<(3500 - 3072)]), Array(plain[3072...]))
    }

    /// Opening into a buffer of its own gives the plaintext packed, from any block on, and fails
    /// as opening in place does.
    func testOpensPackedIntoAnotherBuffer() {
        let key = AESKey.random()
        let plain = Random.bytes(3500)
        var sealed = layout(plain)
        sealed.withUnsafeMutableBytes { blocks.seal($0, plaintext: 3500, key: key) }
        func packed(_ from: Int, _ bytes: [UInt8]) -> [UInt8]? {
            let count = 3500 - from * 1024
            var out = [UInt8](repeating: 0, count: count)
            let ok = bytes.withUnsafeBytes { s in
                out.withUnsafeMutableBytes {
                    blocks.open(UnsafeRawBufferPointer(rebasing: s[blocks.sealedOffset(block: from)...]), into: $0,
                                plaintext: count, key: key, firstBlock: from)
                }
            }
            return ok ? out : nil
        }
        XCTAssertEqual(packed(0, sealed), plain)
        XCTAssertEqual(packed(1, sealed), Array(plain[1024...]))
        var damaged = sealed
        damaged[blocks.sealedOffset(block: 3) + 1024 / 4] ^= 1
        XCTAssertNil(packed(1, damaged))
        XCTAssertNotNil(packed(0, sealed), "the sealed bytes are left as they were")
    }

    func testAnyFlippedBitOrWrongKeyOrShortBufferFails() {
        let key = AESKey.random()
        let plain = Random.bytes(2100)
        var sealed = layout(plain)
        sealed.withUnsafeMutableBytes { blocks.seal($0, plaintext: 2100, key: key) }
        for position in [0, 500, 1023, 1024, 1039, 1040, 2000, sealed.count - 1] {
            var damaged = sealed
            damaged[position] ^= 0x01
            XCTAssertFalse(damaged.withUnsafeMutableBytes { blocks.open($0, plaintext: 2100, key: key) },
                           "a flipped bit at \(position) went unnoticed")
        }
        var other = sealed
        XCTAssertFalse(other.withUnsafeMutableBytes { blocks.open($0, plaintext: 2100, key: AESKey.random()) })
        var short = Array(sealed.dropLast())
        XCTAssertFalse(short.withUnsafeMutableBytes { blocks.open($0, plaintext: 2100, key: key) })
    }

    /// Range reads: the folder store reads the file's bytes; any store can (from the whole object).
    func testRangeReadsOfFolderAndMemoryStores() throws {
        var template = Array("/tmp/cdsfs-range-XXXXXX".utf8CString)
        let dir = String(cString: mkdtemp(&template)!)
        defer { _ = system("rm -rf '\(dir)'") }
        let folder = try FolderStore.create(dir)
        let memory = MemoryStore()
        let object = try Object(bytes: [0, 0, 0, 0] + Random.bytes(10_000))
        for store in [folder as any Store, memory] {
            let h = try store.put(object)
            XCTAssertEqual(try store.read(h, offset: 0, count: 10), Array(object.bytes[0..<10]))
            XCTAssertEqual(try store.read(h, offset: 4000, count: 3000), Array(object.bytes[4000..<7000]))
            XCTAssertEqual(try store.read(h, offset: 9000, count: 5000), Array(object.bytes[9000...]), "short at the end")
            XCTAssertEqual(try store.read(h, offset: 20_000, count: 10), [], "past the end")
            XCTAssertNil(try store.read(Hash.of([1, 2, 3]), offset: 0, count: 10), "missing")
        }
    }

    /// The folder store keeps files open between range reads; a deleted or replaced object is
    /// never read from a stale descriptor.
    func testRangeReadsAfterDeletionAndReplacement() throws {
        var template = Array("/tmp/cdsfs-range-XXXXXX".utf8CString)
        let dir = String(cString: mkdtemp(&template)!)
        defer { _ = system("rm -rf '\(dir)'") }
        let store = try FolderStore.create(dir)
        let object = try Object(bytes: [0, 0, 0, 0] + Random.bytes(5000))
        let h = try store.put(object)
        XCTAssertEqual(try store.read(h, offset: 100, count: 10), Array(object.bytes[100..<110]))
        try store.delete(h)
        XCTAssertNil(try store.read(h, offset: 100, count: 10), "a deleted object is gone, open or not")
        // A damaged copy (another size) is read, then replaced by a put: reads see the new file.
        try store.put(h, object)
        _ = try store.read(h, offset: 0, count: 10)
        truncate(store.objectPath(h), 50)
        XCTAssertEqual(try store.read(h, offset: 40, count: 20)?.count, 10)
        try store.put(h, object)
        XCTAssertEqual(try store.read(h, offset: 40, count: 20), Array(object.bytes[40..<60]))
        // Many objects: more than the files kept open.
        var hashes: [Hash] = []
        for _ in 0..<300 { hashes.append(try store.put(try Object(bytes: [0, 0, 0, 0] + Random.bytes(64)))) }
        for _ in 0..<2 { for h in hashes { XCTAssertEqual(try store.read(h, offset: 4, count: 64)?.count, 64) } }
    }
}
