import Condensation
@testable import CondensationFS
import Glibc
import XCTest

/// Pages written here and there in a large file are sealed together into patch objects at a commit,
/// and the chunks around them stay as they are (re-chunking sealed every touched chunk again: a
/// 4 KiB write cost a ~300 KiB chunk). A dense rewrite, or a chunk cut into too many pieces, is
/// chunked canonically again.
final class PatchTests: XCTestCase {
    private func volume(_ home: Home) throws -> Volume {
        var options = VolumeOptions()
        options.writeBufferLimit = 64 << 20
        return try home.openVolume(options: options)
    }

    /// A volume holding the committed file `name` of `size` random bytes.
    private struct StoredFile {
        let home: Home
        let v: Volume
        let ino: Inode
        var model: [UInt8]
        let chunks: [ChunkRef]
        var rng: SeededRandom
    }

    private func storedFile(_ name: String, size: Int, seed: UInt64) throws -> StoredFile {
        let home = try temporaryHome(self)
        let v = try volume(home)
        var rng = SeededRandom(seed)
        let model = rng.bytes(size)
        let ino = try v.writeFile(1, name, model)
        return StoredFile(home: home, v: v, ino: ino, model: model, chunks: try v.committedChunks(name), rng: rng)
    }

    /// Writes `count` random pieces of up to 4 KiB at random offsets below `limit` into the file and
    /// the model.
    private func scatter(_ v: Volume, _ ino: Inode, _ model: inout [UInt8], count: Int, below limit: Int,
                         _ rng: inout SeededRandom) throws {
        for _ in 0..<count {
            let n = Int.random(in: 1...4096, using: &rng)
            let at = Int.random(in: 0..<(limit - n), using: &rng)
            let bytes = rng.bytes(n)
            model.replaceSubrange(at..<(at + n), with: bytes)
            _ = try bytes.withUnsafeBytes { try v.write(ino, handle: ino, offset: UInt64(at), $0) }
        }
    }

    private func assertStoreChecks(_ home: Home, line: UInt = #line) {
        let checker = Checker(home: home, progress: { _, _ in })
        checker.run()
        XCTAssertEqual(checker.problems.map(\.description), [], line: line)
    }

    func testScatteredWritesArePatchedAndTheChunksAroundThemKept() throws {
        var f = try storedFile("db", size: 8 << 20, seed: 61)
        let (home, v, ino, before) = (f.home, f.v, f.ino, f.chunks)
        XCTAssert(before.allSatisfy(\.isWholeChunk))

        try scatter(v, ino, &f.model, count: 40, below: f.model.count, &f.rng)
        let model = f.model
        let after = try v.committedChunks("db")
        XCTAssertEqual(Set(after.filter { !$0.isPatch }.compactMap(\.link?.hash)), Set(before.compactMap(\.link?.hash)),
                       "every chunk is kept (as pieces around the patches), and no chunk is cut anew")
        let patches = Set(after.filter(\.isPatch).compactMap(\.link?.hash))
        XCTAssertEqual(patches.count, 1, "40 pages make one patch object")
        XCTAssertEqual(after.reduce(0) { $0 + $1.length }, UInt64(model.count))
        XCTAssertEqual(try v.readFile(ino), model)
        v.release(ino, handle: ino)
        try v.close()

        let v2 = try volume(home)
        XCTAssertEqual(try v2.readFile(try v2.lookup(1, "db").ino), model, "reads back from the store")
        try v2.close()
        assertStoreChecks(home)
    }

    func testARewriteInOrderChunksAPatchedFileCanonicallyAgain() throws {
        var f = try storedFile("file", size: 6 << 20, seed: 62)
        let (v, ino) = (f.v, f.ino)
        try scatter(v, ino, &f.model, count: 30, below: f.model.count, &f.rng)
        let model = f.model
        XCTAssert(try v.committedChunks("file").contains(where: \.isPatch))

        // An editor's save: the whole content again, in order.
        try v.writeFile(1, "file", model)
        let rewritten = try v.committedChunks("file")
        try v.writeFile(1, "copy", model)
        XCTAssertEqual(rewritten, try v.committedChunks("copy"), "the same chunks as a copy written in order")
        XCTAssert(rewritten.allSatisfy(\.isWholeChunk))
        XCTAssertEqual(try v.readFile(ino), model)
    }

    /// Each chunk is decided on its own: one mostly rewritten is chunked again while its
    /// neighbours, touched by a page each, are patched (groups that only touch are not merged).
    func testEachChunkIsPatchedOrChunkedAgainOnItsOwn() throws {
        var f = try storedFile("db", size: 8 << 20, seed: 65)
        let (v, ino, chunks) = (f.v, f.ino, f.chunks)
        XCTAssertGreaterThan(chunks.count, 4)
        let starts = chunks.reduce(into: [0]) { $0.append($0.last! + Int($1.length)) }
        func write(_ at: Int, _ n: Int) throws {
            let bytes = f.rng.bytes(n)
            f.model.replaceSubrange(at..<(at + n), with: bytes)
            _ = try bytes.withUnsafeBytes { try v.write(ino, handle: ino, offset: UInt64(at), $0) }
        }
        // Four pages of every five in chunk 2, a page clear of its ends (a page across a boundary
        // touches the next chunk too); one page in the middle of chunk 1.
        let page = FileData.pageSize
        for p in stride(from: (starts[2] / page + 2) * page, to: starts[3] / page * page - 2 * page, by: 5 * page) {
            try write(p, min(4 * page, starts[3] / page * page - page - p))
        }
        try write((starts[1] + starts[2]) / 2, 100)
        let after = try v.committedChunks("db")
        let hashes = Set(after.compactMap(\.link?.hash))
        XCTAssert(hashes.contains(chunks[1].link!.hash) && after.contains(where: \.isPatch), "chunk 1 patched")
        XCTAssertFalse(hashes.contains(chunks[2].link!.hash), "chunk 2 chunked again")
        XCTAssertEqual(try v.readFile(ino), f.model)
    }

    /// A database updating the same pages commit after commit: the chunk it writes into is patched
    /// until it would fall into too many pieces, then chunked again; the list stays bounded.
    func testAChunkCutIntoTooManyPiecesIsChunkedAgain() throws {
        var f = try storedFile("db", size: 4 << 20, seed: 63)
        let (home, v, ino, chunks) = (f.home, f.v, f.ino, f.chunks)
        var rechunked = 0
        var mostPieces = 0
        for _ in 0..<120 {
            try scatter(v, ino, &f.model, count: 1, below: Int(chunks[0].length), &f.rng)
            let list = try v.committedChunks("db")
            mostPieces = max(mostPieces, list.count - chunks.count)
            if list.allSatisfy(\.isWholeChunk) { rechunked += 1 }
        }
        XCTAssertGreaterThan(rechunked, 0, "the chunk was chunked again at least once")
        // At most 32 pieces in a chunk, or one per 16 KiB of a chunk up to 1 MiB (a re-chunking
        // may also cut the region into a few more chunks than before).
        XCTAssertLessThanOrEqual(mostPieces, 70, "the pieces of the chunk written into")
        XCTAssertEqual(try v.readFile(ino), f.model)
        v.release(ino, handle: ino)
        try v.close()
        assertStoreChecks(home)
    }

    /// A sparse file (a VM image, a torrent): pages written into a hole are patched into it, and
    /// the hole is not chunked (zeros read and cut) around them.
    func testWritesIntoAHoleArePatchedIntoIt() throws {
        let home = try temporaryHome(self)
        let v = try volume(home)
        let ino = try v.create(1, "sparse", mode: 0o644, flags: O_WRONLY, uid: 0, gid: 0).0.ino
        _ = try v.setattr(ino, AttributeChanges(size: 256 << 20), handle: nil)
        try v.commit()
        var model = [UInt8](repeating: 0, count: 256 << 20)
        var rng = SeededRandom(64)
        try scatter(v, ino, &model, count: 100, below: model.count, &rng)
        let list = try v.committedChunks("sparse")
        XCTAssert(list.allSatisfy { $0.link == nil || $0.isPatch }, "holes and patches only")
        XCTAssertEqual(Set(list.compactMap(\.link?.hash)).count, 1)
        XCTAssertEqual(try v.readFile(ino), model)
    }
}
