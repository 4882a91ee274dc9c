import Condensation
@testable import CondensationFS
import Glibc
import XCTest

/// Chunks sealed in 4 KiB AES-GCM blocks: read a piece (16 KiB) or, for random reads, a block at a
/// time, each block checked on its own; and chunks of the earlier formats (16 KiB blocks; AES-CTR
/// checked by the object's hash) still read.
final class ChunkFormatTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/cdsfs-chunks-XXXXXX".utf8CString)
        dir = String(cString: mkdtemp(&template)!)
    }

    override func tearDown() { _ = system("rm -rf '\(dir)'") }

    private func read(_ f: FileData, _ offset: UInt64, _ count: Int, _ ctx: ContentContext) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = try out.withUnsafeMutableBytes { try f.read(offset, into: $0, ctx) }
        return Array(out[..<n])
    }

    /// Writes `data` as a file and returns its stored chunks.
    private func storeFile(_ data: [UInt8], _ ctx: ContentContext) throws -> [ChunkRef] {
        let f = FileData()
        try data.withUnsafeBytes { try f.write(0, $0, ctx) }
        guard case .chunks(let chunks) = try f.encode(ctx) else { XCTFail("expected an inline chunk list"); return [] }
        return chunks
    }

    func testNewChunksAreSealedInBlocksAndReadBackAnyRange() throws {
        let store = try FolderStore.create(dir + "/store")
        let secrets = Secrets.random()
        var rng = SeededRandom(11)
        let data = rng.bytes(3 << 20)
        let chunks = try storeFile(data, ContentContext(store: store, secrets: secrets))
        XCTAssertGreaterThan(chunks.count, 2)
        for c in chunks {
            XCTAssertEqual(c.sealing, ContentContext.smallBlocks)
            XCTAssertEqual(ChunkRef(record: c.record), c, "the record round-trips")
            XCTAssertEqual(c.record.children.last?.text, "g4")
            let object = try XCTUnwrap(try store.get(c.link!.hash))
            let n = Int(c.length), tags = 16 * ((n + 4095) / 4096)
            XCTAssertEqual(object.bytes.count, 4 + n + tags, "a tag per 4 KiB")
        }
        try checkReads(data, chunks, store, secrets, &rng)
    }

    /// Chunks and patches sealed in 16 KiB blocks (as written before 4 KiB blocks), marked `g`
    /// and `p`, read as before.
    func testChunksInSixteenKiBBlocksStillRead() throws {
        let store = try FolderStore.create(dir + "/store")
        let secrets = Secrets.random()
        var rng = SeededRandom(15)
        let data = rng.bytes(700_000)
        let ctx = ContentContext(store: store, secrets: secrets)
        var chunks: [ChunkRef] = []
        for (at, n) in [(0, 300_000), (300_000, 150_000), (450_000, 250_000)] {
            let link = try XCTUnwrap(try data[at..<(at + n)].withUnsafeBytes { try ctx.storeChunk($0, sealing: ContentContext.largeBlocks) })
            XCTAssertEqual(try store.get(link.hash)?.bytes.count, 4 + n + 16 * ((n + 16383) / 16384))
            chunks.append(ChunkRef(length: UInt64(n), link: link, sealing: ContentContext.largeBlocks))
        }
        // The middle chunk named as two pieces of a patch: the same bytes, read from their offsets.
        let middle = chunks[1]
        chunks[1...1] = [ChunkRef(length: 70_000, link: middle.link!, offset: 0, chunkLength: 150_000, isPatch: true, sealing: ContentContext.largeBlocks),
                         ChunkRef(length: 80_000, link: middle.link!, offset: 70_000, chunkLength: 150_000, isPatch: true, sealing: ContentContext.largeBlocks)]
        XCTAssertEqual(chunks.map { $0.record.children[1].text }, ["g", "p", "p", "g"])
        for c in chunks { XCTAssertEqual(ChunkRef(record: c.record), c, "the record round-trips") }
        try checkReads(data, chunks, store, secrets, &rng)
    }

    /// Reads ranges that start and end anywhere, across blocks and chunks: through the cache, as
    /// the volume's loads outside its lock do, and directly from the blocks, as random reads do.
    private func checkReads(_ data: [UInt8], _ chunks: [ChunkRef], _ store: FolderStore, _ secrets: Secrets,
                            _ rng: inout SeededRandom) throws {
        let f = FileData(stored: .chunks(chunks), size: UInt64(data.count))
        let ctx = ContentContext(store: store, secrets: secrets)
        for _ in 0..<200 {
            let offset = Int.random(in: 0..<data.count, using: &rng)
            let count = Int.random(in: 1...300_000, using: &rng)
            let got = try read(f, UInt64(offset), count, ctx)
            XCTAssertEqual(got, Array(data[offset..<min(data.count, offset + count)]), "at \(offset) +\(count)")
        }
        // Direct reads (random ones, and the kernel's large sequential requests) read only the
        // blocks they need and leave the cache as it was.
        let fresh = ContentContext(store: store, secrets: secrets)
        let f2 = FileData(stored: .chunks(chunks), size: UInt64(data.count))
        for i in 0..<300 {
            let offset = Int.random(in: 0..<data.count, using: &rng)
            let count = Int.random(in: i % 2 == 0 ? 1...40_000 : 1...1_200_000, using: &rng)
            var out = [UInt8](repeating: 0xee, count: count)
            let direct = try XCTUnwrap(try f2.directReads(UInt64(offset), count, fresh), "all stored: a direct read")
            try out.withUnsafeMutableBytes { try fresh.read(direct, into: $0) }
            let n = direct.reduce(0) { $0 + $1.count }
            XCTAssertEqual(n, min(count, data.count - offset))
            XCTAssertEqual(Array(out[..<n]), Array(data[offset..<(offset + n)]), "direct at \(offset) +\(count)")
        }
        let pieces = chunks.map { c -> Int in
            let first = Int(c.offset) / 16384, last = Int(c.offset + c.length - 1) / 16384
            return last - first + 1
        }
        let uncached = try f2.uncachedChunks(0, data.count, fresh).map(\.pieces.count)
        XCTAssertEqual(uncached, pieces, "direct reads cached nothing")
        // The loads the volume makes outside its lock (several chunks in parallel) fill the cache.
        let needed = try f2.uncachedChunks(0, data.count, fresh)
        XCTAssertEqual(needed.count, chunks.count)
        try fresh.load(needed)
        XCTAssertEqual(try f2.uncachedChunks(0, data.count, fresh).count, 0, "everything is cached after a load")
        XCTAssertEqual(try read(f2, 0, data.count, fresh), data)
    }

    /// A damaged block fails the reads that need it (EIO) and only those: loads into the cache
    /// fail for the 16 KiB piece that holds it, direct reads only for the block itself.
    func testADamagedBlockFailsOnlyTheReadsThatNeedIt() throws {
        let store = try FolderStore.create(dir + "/store")
        let secrets = Secrets.random()
        var rng = SeededRandom(12)
        let data = rng.bytes(200_000)
        let chunks = try storeFile(data, ContentContext(store: store, secrets: secrets))
        XCTAssertGreaterThanOrEqual(chunks[0].length, 65536, "chunks are at least 64 KiB")
        let path = store.objectPath(chunks[0].link!.hash)
        // Flip a bit in block 13 (plaintext bytes 53248..<57344, in the piece 49152..<65536).
        let blocks = ContentContext.smallBlocks
        let fd = open(path, O_RDWR)
        var byte: UInt8 = 0
        let at = off_t(4 + blocks.sealedOffset(block: 13) + 100)
        XCTAssertEqual(pread(fd, &byte, 1, at), 1)
        byte ^= 0x10
        XCTAssertEqual(pwrite(fd, &byte, 1, at), 1)
        close(fd)

        let ctx = ContentContext(store: store, secrets: secrets)
        let f = FileData(stored: .chunks(chunks), size: UInt64(data.count))
        XCTAssertEqual(try read(f, 0, 49152, ctx), Array(data[0..<49152]))
        XCTAssertEqual(try read(f, 65536, 4096, ctx), Array(data[65536..<69632]))
        XCTAssertThrowsError(try read(f, 50_000, 10, ctx)) { XCTAssertEqual($0 as? FSError, .io) }
        XCTAssertThrowsError(try read(f, 0, data.count, ctx)) { XCTAssertEqual($0 as? FSError, .io) }
        func direct(_ offset: Int, _ count: Int) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: count)
            let parts = try XCTUnwrap(try f.directReads(UInt64(offset), count, ctx))
            try out.withUnsafeMutableBytes { try ctx.read(parts, into: $0) }
            return out
        }
        XCTAssertEqual(try direct(49152, 4096), Array(data[49152..<53248]), "the block before, in the same piece")
        XCTAssertEqual(try direct(57344, 4096), Array(data[57344..<61440]), "the block after")
        XCTAssertThrowsError(try direct(57000, 1000)) { XCTAssertEqual($0 as? FSError, .io) }
        // A truncated object: the blocks past the cut fail, the ones before still read.
        truncate(path, off_t(4 + blocks.sealedOffset(block: 8)))
        let ctx2 = ContentContext(store: store, secrets: secrets)
        XCTAssertEqual(try read(f, 16384, 100, ctx2), Array(data[16384..<16484]))
        XCTAssertThrowsError(try read(f, 40_000, 100, ctx2)) { XCTAssertEqual($0 as? FSError, .io) }
        // A missing object (seen by a store that had not opened it: one that has keeps reading the
        // file it opened, whose bytes are still checked block by block).
        unlink(path)
        let ctx3 = ContentContext(store: FolderStore(path: store.path), secrets: secrets)
        XCTAssertThrowsError(try read(f, 0, 10, ctx3)) { XCTAssertEqual($0 as? FSError, .io) }
    }

    /// A chunk of the first format: AES-256-CTR over the whole data with the object key, no marker.
    func testChunksOfTheFirstFormatStillRead() throws {
        let secrets = Secrets.random()
        var rng = SeededRandom(13)
        let data = rng.bytes(150_000)
        for store in [MemoryStore() as any Store, try FolderStore.create(dir + "/store")] {
            let (sealed, link) = secrets.seal(try Object(bytes: [0, 0, 0, 0] + data))
            try store.put(link.hash, sealed)
            let ref = ChunkRef(length: UInt64(data.count), link: link, sealing: nil)
            XCTAssertEqual(ref.record.children.count, 1, "no marker for the first format")
            XCTAssertEqual(ChunkRef(record: ref.record), ref)
            let ctx = ContentContext(store: store, secrets: secrets)
            let f = FileData(stored: .chunks([ref, ChunkRef(length: 1000, link: nil)]), size: UInt64(data.count + 1000))
            XCTAssertEqual(try read(f, 0, 200_000, ctx), data + [UInt8](repeating: 0, count: 1000))
            XCTAssertEqual(try read(f, 70_000, 10, ctx), Array(data[70_000..<70_010]))
        }
    }

    func testAChunkRecordWithAnUnknownMarkerIsRefused() throws {
        var r = ChunkRef(length: 10, link: HashAndKey(hash: Hash.of([1]), key: AESKey.random())).record
        r.children[1] = Record(text: "x")
        XCTAssertNil(ChunkRef(record: r))
    }
    /// A piece of a sealed chunk reads the chunk's bytes from its offset on, whatever blocks it
    /// starts and ends in (the last block of the chunk is shorter).
    func testAPieceOfAChunkReadsFromItsOffset() throws {
        let store = try FolderStore.create(dir + "/store")
        let secrets = Secrets.random()
        var rng = SeededRandom(14)
        let data = rng.bytes(200_000)
        let link = try XCTUnwrap(try data.withUnsafeBytes { try ContentContext(store: store, secrets: secrets).storeChunk($0) })
        let whole = ChunkRef(length: UInt64(data.count), link: link)
        for (offset, length) in [(0, 5), (1, 16383), (16384, 16384), (30_000, 170_000), (199_999, 1), (5000, 100_000)] {
            let piece = ChunkRef(length: UInt64(length), link: whole.link!, offset: UInt64(offset),
                                 chunkLength: whole.length, isPatch: offset == 5000)
            XCTAssertEqual(ChunkRef(record: piece.record), piece, "the record round-trips")
            XCTAssertEqual(piece.record.children.count, 4)
            XCTAssertEqual(piece.record.children[1].text, offset == 5000 ? "p4" : "g4")
            let f = FileData(stored: .chunks([ChunkRef(length: 3, link: nil), piece]), size: UInt64(3 + length))
            let ctx = ContentContext(store: store, secrets: secrets)
            XCTAssertEqual(try read(f, 0, 3 + length, ctx), [0, 0, 0] + Array(data[offset..<(offset + length)]), "\(offset)+\(length)")
            XCTAssert(try f.uncachedChunks(0, 3 + length, ctx).isEmpty, "the read cached the blocks it needed")
        }
    }

    func testAPieceReachingPastItsChunkIsRefused() throws {
        let link = HashAndKey(hash: Hash.of([1]), key: AESKey.random())
        var r = ChunkRef(length: 10, link: link, offset: 90, chunkLength: 100, isPatch: true).record
        XCTAssertNotNil(ChunkRef(record: r))
        r.children[3] = Record(Values.unsigned(99))
        XCTAssertNil(ChunkRef(record: r), "90 + 10 > 99")
        r.children[3] = Record(Values.unsigned(90))
        XCTAssertNil(ChunkRef(record: r), "starts at the end")
        r.children.removeLast()
        XCTAssertNil(ChunkRef(record: r), "no chunk length")
        r.children.removeLast()
        XCTAssertNil(ChunkRef(record: r), "a patch marker alone")
    }
}
