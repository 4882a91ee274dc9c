import Condensation
@testable import CondensationFS
import Glibc
import XCTest

/// The write buffer is chunked on another thread while writes go on; what it chunked is taken only
/// when nothing changed the bytes under it, and the chunks are the ones a synchronous chunking makes.
final class BackgroundCompactionTests: XCTestCase {
    private func waitForBackground(_ v: Volume) {
        v.lock.withLock { while v.backgroundCompaction != nil { v.lock.wait(v.backgroundCompactionDone) } }
    }

    private func volume(_ home: Home, buffer: Int) throws -> Volume {
        var options = VolumeOptions()
        options.writeBufferLimit = buffer
        return try home.openVolume(options: options)
    }

    /// Creates file `name` and writes `data` from `start` on, 64 KiB at a time, in order.
    private func writeInOrder(_ v: Volume, _ name: String, _ data: [UInt8], from start: Int = 0) throws -> Inode {
        let ino = try v.create(1, name, mode: 0o644, flags: O_WRONLY, uid: 0, gid: 0).0.ino
        for offset in stride(from: start, to: data.count, by: 64 * 1024) {
            let n = min(64 * 1024, data.count - offset)
            _ = try data[offset..<(offset + n)].withUnsafeBytes { try v.write(ino, handle: ino, offset: UInt64(offset), $0) }
        }
        return ino
    }

    /// Checks that file `name` reads as `data`, closes it and `v`, then writes `data` at once in a
    /// volume whose buffer never fills (chunked at the commit only) and checks that it gets the
    /// chunks file `name` got.
    private func assertSameChunksAsAtCommit(_ v: Volume, _ home: Home, _ ino: Inode, _ name: String, _ data: [UInt8],
                                            line: UInt = #line) throws {
        XCTAssertEqual(try v.readFile(ino), data, line: line)
        v.release(ino, handle: ino)
        let chunks = try v.committedChunkHashes(name)
        try v.close()
        let v2 = try volume(home, buffer: 1 << 30)
        try v2.writeFile(1, "copy", data)
        XCTAssertEqual(v2.lock.withLock { v2.backgroundCompactions.adopted }, 0, line: line)
        XCTAssertEqual(try v2.committedChunkHashes("copy"), chunks, "background chunking cut other chunks", line: line)
    }

    func testASequentialWriteIsChunkedInTheBackgroundIntoTheSameChunks() throws {
        let home = try temporaryHome(self)
        let v = try volume(home, buffer: 4 << 20)
        var rng = SeededRandom(41)
        let data = rng.bytes(24 << 20)
        let ino = try writeInOrder(v, "seq", data)
        waitForBackground(v)
        let counts = v.lock.withLock { v.backgroundCompactions }
        XCTAssertGreaterThan(counts.adopted, 2, "a 24 MiB write through a 4 MiB buffer: \(counts)")
        try assertSameChunksAsAtCommit(v, home, ino, "seq", data)
    }

    /// The kernel's write-back sends a sequential writer's pages slightly out of order. The
    /// background chunks only the bytes written without a gap, so that the late pages land past
    /// what it chunked and its work is kept (it chunked the gaps as zeros, and nearly every
    /// background compaction of a `dd` was thrown away).
    func testPagesArrivingOutOfOrderDoNotUndoTheBackgroundChunking() throws {
        let home = try temporaryHome(self)
        let v = try volume(home, buffer: 4 << 20)
        var rng = SeededRandom(43)
        let data = rng.bytes(24 << 20)
        let ino = try v.create(1, "late", mode: 0o644, flags: O_WRONLY, uid: 0, gid: 0).0.ino
        let block = 64 * 1024, group = 16
        for start in stride(from: 0, to: data.count / block, by: group) {
            // Each MiB's blocks in a shuffled order, as from several write-back threads.
            var order = Array(start..<min(start + group, data.count / block))
            for i in order.indices.reversed() { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            for b in order {
                _ = try data[(b * block)..<((b + 1) * block)].withUnsafeBytes {
                    try v.write(ino, handle: ino, offset: UInt64(b * block), $0)
                }
            }
        }
        waitForBackground(v)
        let counts = v.lock.withLock { v.backgroundCompactions }
        XCTAssertGreaterThan(counts.adopted, 2, "\(counts)")
        XCTAssertEqual(counts.discarded, 0, "background chunking undone by late pages: \(counts)")
        try assertSameChunksAsAtCommit(v, home, ino, "late", data)
    }

    /// A hole before the first page written is a hole, not a page still on its way: a file written
    /// from 1 MiB on is chunked in the background as soon as half the buffer is full (3 MiB through
    /// a 4 MiB buffer), as a file written from its start is.
    func testAFileWrittenAfterALeadingHoleIsChunkedInTheBackground() throws {
        let home = try temporaryHome(self)
        let v = try volume(home, buffer: 4 << 20)
        var rng = SeededRandom(45)
        let hole = 1 << 20
        let data = [UInt8](repeating: 0, count: hole) + rng.bytes(3 << 20)
        let ino = try writeInOrder(v, "holey", data, from: hole)
        waitForBackground(v)
        let counts = v.lock.withLock { v.backgroundCompactions }
        XCTAssertGreaterThan(counts.adopted, 0, "\(counts)")
        try assertSameChunksAsAtCommit(v, home, ino, "holey", data)
    }

    /// Scattered writes into a stored file are not chunked in the background: that would rewrite
    /// every stored chunk they touch, and the next scattered write below would undo it.
    func testScatteredWritesAreNotChunkedInTheBackground() throws {
        let home = try temporaryHome(self)
        let v = try volume(home, buffer: 2 << 20)
        var rng = SeededRandom(44)
        var model = rng.bytes(16 << 20)
        let ino = try v.writeFile(1, "scattered", model)
        waitForBackground(v)
        let before = v.lock.withLock { v.backgroundCompactions }
        let page = 4096
        for _ in 0..<1024 {
            let at = Int(rng.next() % UInt64(model.count / page)) * page
            let bytes = rng.bytes(page)
            model.replaceSubrange(at..<(at + page), with: bytes)
            _ = try bytes.withUnsafeBytes { try v.write(ino, handle: ino, offset: UInt64(at), $0) }
        }
        waitForBackground(v)
        let counts = v.lock.withLock { v.backgroundCompactions }
        XCTAssertEqual(counts.adopted + counts.discarded, before.adopted + before.discarded, "\(before) → \(counts)")
        XCTAssertEqual(try v.readFile(ino), model)
        v.release(ino, handle: ino)
    }

    /// Overwrites below what the background is chunking, truncations and commits while it runs: its
    /// result is then discarded, and the file always reads as the model says.
    func testChangesUnderABackgroundCompactionWin() throws {
        let home = try temporaryHome(self)
        var options = VolumeOptions()
        options.writeBufferLimit = 2 << 20
        var v = try home.openVolume(options: options)
        var rng = SeededRandom(42)
        var model: [UInt8] = []
        var ino = try v.writeFile(1, "f", [])
        var total = (adopted: 0, discarded: 0)
        func count(_ v: Volume) {
            waitForBackground(v)
            let c = v.lock.withLock { v.backgroundCompactions }
            total.adopted += c.adopted
            total.discarded += c.discarded
        }
        for step in 0..<600 {
            switch rng.next() % 20 {
            case 0:
                let size = Int(rng.next() % UInt64(max(1, model.count + 1)))
                _ = try v.setattr(ino, AttributeChanges(size: UInt64(size)), handle: nil)
                if size < model.count { model.removeLast(model.count - size) } else { model += [UInt8](repeating: 0, count: size - model.count) }
            case 1:
                try v.commit()
            case 2:
                count(v)
                try v.close()
                v = try home.openVolume(options: options)
                ino = try v.lookup(1, "f").ino
            case 3, 4, 5:
                // An overwrite somewhere below the end.
                let offset = Int(rng.next() % UInt64(max(1, model.count)))
                let data = rng.bytes(Int(rng.next() % 50_000) + 1)
                _ = try data.withUnsafeBytes { try v.write(ino, handle: ino, offset: UInt64(offset), $0) }
                if model.count < offset + data.count { model += [UInt8](repeating: 0, count: offset + data.count - model.count) }
                model.replaceSubrange(offset..<(offset + data.count), with: data)
            default:
                // An append, as a sequential writer does.
                let data = rng.bytes(Int(rng.next() % 300_000) + 1)
                let offset = model.count
                _ = try data.withUnsafeBytes { try v.write(ino, handle: ino, offset: UInt64(offset), $0) }
                model += data
            }
            if step % 20 == 0 { XCTAssertEqual(try v.readFile(ino), model, "step \(step)") }
        }
        count(v)
        XCTAssertEqual(try v.readFile(ino), model)
        try v.close()
        let v3 = try home.openVolume(options: options)
        XCTAssertEqual(try v3.readFile(try v3.lookup(1, "f").ino), model)
        // Both ways out were taken: chunks adopted, and chunks overtaken by changes.
        XCTAssertGreaterThan(total.adopted, 0, "\(total)")
        XCTAssertGreaterThan(total.discarded, 0, "\(total)")
    }
    /// A file still open keeps its tail (the bytes after the last cut) in pages. Re-chunking its
    /// last stored chunk can find no cut at all (here: 70 KiB, cuts come only after 64 KiB), so the
    /// tail starts where that chunk did: its stored bytes must move into pages, not vanish with it
    /// (they read as zeros, about one run in eight of the scattered-writes test above).
    func testATailThatStartsBelowTheStoredEndKeepsTheStoredBytes() throws {
        let store = try FolderStore.create(try temporaryDirectory(self) + "/store")
        var rng = SeededRandom(46)
        for _ in 0..<8 {
            let ctx = ContentContext(store: store, secrets: Secrets.random())
            var model = rng.bytes(70 * 1024)
            let f = FileData()
            try model.withUnsafeBytes { try f.write(0, $0, ctx) }
            _ = try f.encode(ctx)
            let dense = rng.bytes(40 * 1024)  // more than half the chunk: chunked again, not patched
            model.replaceSubrange(0..<dense.count, with: dense)
            try dense.withUnsafeBytes { try f.write(0, $0, ctx) }
            try f.materialize(ctx, keepTail: true)
            var out = [UInt8](repeating: 0, count: model.count)
            _ = try out.withUnsafeMutableBytes { try f.read(0, into: $0, ctx) }
            XCTAssertEqual(out, model)
            _ = try f.encode(ctx)
            _ = try out.withUnsafeMutableBytes { try f.read(0, into: $0, ctx) }
            XCTAssertEqual(out, model, "after the commit")
        }
    }
}
