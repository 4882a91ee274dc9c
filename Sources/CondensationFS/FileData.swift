import Condensation
import Glibc

/// A regular file's content: the stored chunks (the base) overlaid with unsaved pages.
///
/// Writes land in 4 KiB pages in memory; reads see pages first, then the base. `materialize`
/// turns the dirty pages into chunks in the store: it re-chunks only the chunks the pages touch
/// (their old boundaries on either side stay, so the rest of the file keeps its objects), and
/// all-zero chunks become holes that take no object at all. The volume materializes a file when
/// its unsaved bytes pass a bound, so a 10 GB write never holds 10 GB in memory.
final class FileData {
    /// 4 KiB, the kernel's page: a random 4 KiB write holds 4 KiB in memory (with 64 KiB pages,
    /// filled from the stored chunk, random writes filled the write buffer sixteen times as fast,
    /// and each time it filled, every chunk they touched was cut and sealed again).
    static let pageSize = 4096
    /// Files up to this size live inside their directory entry.
    static let inlineLimit = 4096
    /// Chunk lists longer than this become an object of their own.
    static let inlineChunkLimit = 32

    private(set) var size: UInt64
    /// Stored chunks, covering [0, baseEnd).
    private var base: [ChunkRef] = []
    private var baseOffsets: [UInt64] = []
    private var baseEnd: UInt64 = 0
    /// Bytes of the base past this were truncated away (they read as zeros until rewritten).
    private var baseLimit: UInt64 = 0
    /// Where the stored bytes that still count end.
    private var storedEnd: UInt64 { min(baseEnd, baseLimit) }
    private var unloadedList: HashAndKey?
    private var inline: [UInt8]?
    private var pages: [UInt64: [UInt8]] = [:]
    /// The encoded content as last committed or loaded; nil once anything changed.
    private(set) var stored: StoredContent?

    /// Bytes held in unsaved pages (pages hold only what was written or filled, not always 4 KiB).
    private(set) var dirtyBytes = 0
    /// Changed by everything a background compaction's result cannot be merged with: new chunks
    /// (a commit or a compaction got there first) and truncation.
    private(set) var generation: UInt64 = 0
    /// The lowest offset written since the last snapshot.
    private var lowestWrite = UInt64.max
    /// Where the unsaved pages lie (kept as writes come, recomputed when pages are taken away).
    private var dirtyLow = UInt64.max
    private var dirtyHigh: UInt64 = 0
    var isDirty: Bool { stored == nil }

    init() {
        size = 0
        stored = .inline([])
        inline = []
    }

    init(stored content: StoredContent?, size: UInt64) {
        self.size = size
        self.stored = content ?? .inline([])
        switch content {
        case .inline(let bytes)?:
            inline = bytes
            self.size = UInt64(bytes.count)
        case .chunks(let chunks)?: setBase(chunks)
        case .chunkList(let link, _)?: unloadedList = link
        case nil: inline = []
        }
        baseLimit = max(baseEnd, self.size)
    }

    private func setBase(_ chunks: [ChunkRef]) {
        generation &+= 1
        base = chunks
        baseOffsets = []
        baseOffsets.reserveCapacity(chunks.count)
        var offset: UInt64 = 0
        for c in chunks {
            baseOffsets.append(offset)
            offset += c.length
        }
        baseEnd = offset
        baseLimit = offset
    }

    private func loadList(_ ctx: ContentContext) throws(FSError) {
        guard let link = unloadedList else { return }
        guard let chunks = ChunkRef.list(in: try ctx.reader.record(link)) else {
            Log.error("chunk list \(link.hash.hex) has a malformed entry")
            throw .io
        }
        let savedLimit = baseLimit
        setBase(chunks)
        baseLimit = min(savedLimit, baseEnd)
        unloadedList = nil
    }

    /// Index of the base chunk holding `offset` (< baseEnd).
    private func chunkIndex(_ offset: UInt64) -> Int {
        var lo = 0, hi = baseOffsets.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if baseOffsets[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// Copies base bytes [offset, offset + out.count) into `out`; zeros past the base.
    private func readBase(_ offset: UInt64, _ out: UnsafeMutableRawBufferPointer, _ ctx: ContentContext) throws(FSError) {
        var done = 0
        let limit = min(baseLimit, inline.map { UInt64($0.count) } ?? baseEnd)
        while done < out.count {
            let pos = offset + UInt64(done)
            if pos >= limit {
                memset(out.baseAddress! + done, 0, out.count - done)
                return
            }
            if let inline {
                let n = min(out.count - done, Int(limit - pos))
                inline.withUnsafeBytes { src in
                    (out.baseAddress! + done).copyMemory(from: src.baseAddress! + Int(pos), byteCount: n)
                }
                done += n
                continue
            }
            let i = chunkIndex(pos)
            let chunkStart = baseOffsets[i]
            let within = Int(pos - chunkStart)
            let n = min(out.count - done, Int(min(base[i].length, limit - chunkStart)) - within)
            let ref = base[i]
            if ref.link == nil {
                memset(out.baseAddress! + done, 0, n)
            } else if ref.sealedInBlocks {
                let ps = ContentContext.pieceSize
                var copied = 0
                while copied < n {
                    let at = Int(ref.offset) + within + copied
                    let piece = try ctx.piece(ref, at / ps)
                    let from = at % ps
                    let m = min(n - copied, piece.count - from)
                    guard m > 0 else {
                        Log.error("chunk \(ref.link!.hash.hex) is shorter than its list says")
                        throw .io
                    }
                    piece.withUnsafeBytes { src in
                        (out.baseAddress! + done + copied).copyMemory(from: src.baseAddress! + from, byteCount: m)
                    }
                    copied += m
                }
            } else {
                let bytes = try ctx.piece(ref, 0)
                guard bytes.count == Int(ref.length) else {
                    Log.error("chunk \(ref.link!.hash.hex) holds \(bytes.count) bytes, the list says \(ref.length)")
                    throw .io
                }
                bytes.withUnsafeBytes { src in
                    (out.baseAddress! + done).copyMemory(from: src.baseAddress! + within, byteCount: n)
                }
            }
            done += n
        }
    }

    /// The stored pieces a read of `length` bytes at `offset` needs that are not in the cache, so
    /// that the caller can fetch them (disk, check, decryption) without holding the volume lock.
    func uncachedChunks(_ offset: UInt64, _ length: Int, _ ctx: ContentContext) throws(FSError) -> [ChunkRead] {
        guard offset < size, inline == nil else { return [] }
        try loadList(ctx)
        let end = min(offset + UInt64(length), size, storedEnd)
        guard offset < end else { return [] }
        var out: [ChunkRead] = []
        let ps = UInt64(ContentContext.pieceSize)
        var i = chunkIndex(offset)
        while i < base.count && baseOffsets[i] < end {
            let start = max(baseOffsets[i], offset), stop = min(baseOffsets[i] + base[i].length, end)
            defer { i += 1 }
            guard let link = base[i].link, !coveredByPages(start, stop) else { continue }
            if let sealing = base[i].sealing {
                let at = base[i].offset &- baseOffsets[i]  // chunk position = file position + at
                var first = Int((start &+ at) / ps), last = Int((stop - 1 &+ at) / ps)
                while first <= last && ctx.isCached(link, piece: first) { first += 1 }
                while last >= first && ctx.isCached(link, piece: last) { last -= 1 }
                if first <= last {
                    out.append(ChunkRead(link: link, length: Int(base[i].chunkLength), sealing: sealing, pieces: first..<(last + 1)))
                }
            } else if !ctx.isCached(link, piece: nil) {
                out.append(ChunkRead(link: link, length: Int(base[i].length), sealing: nil, pieces: 0..<1))
            }
        }
        return out
    }

    /// Where the bytes of a read lie when they are all in sealed chunks and holes (none in pages,
    /// none past the stored end): the caller then reads them outside the volume's lock straight
    /// from the chunks' objects, which never change. Nil when any byte needs the general path.
    func directReads(_ offset: UInt64, _ count: Int, _ ctx: ContentContext) throws(FSError) -> [DirectRead]? {
        guard offset < size, inline == nil else { return nil }
        try loadList(ctx)
        let end = min(offset + UInt64(count), size)
        guard end <= storedEnd else { return nil }
        if !pages.isEmpty {
            let ps = UInt64(Self.pageSize)
            for p in (offset / ps)...((end - 1) / ps) where pages[p] != nil { return nil }
        }
        var out: [DirectRead] = []
        var pos = offset
        while pos < end {
            let i = chunkIndex(pos)
            let ref = base[i]
            let n = Int(min(end, baseOffsets[i] + ref.length) - pos)
            if ref.link != nil && ref.sealing == nil { return nil }
            out.append(DirectRead(at: Int(pos - offset), count: n, chunk: ref, offset: Int(ref.offset + pos - baseOffsets[i])))
            pos += UInt64(n)
        }
        return out
    }

    private func coveredByPages(_ start: UInt64, _ end: UInt64) -> Bool {
        let ps = UInt64(Self.pageSize)
        var p = start / ps
        while p * ps < end {
            guard let page = pages[p], UInt64(page.count) >= min(ps, end - p * ps) else { return false }
            p += 1
        }
        return true
    }

    /// Reads up to `out.count` bytes at `offset`; returns the count (0 at or past the end).
    func read(_ offset: UInt64, into out: UnsafeMutableRawBufferPointer, _ ctx: ContentContext) throws(FSError) -> Int {
        guard offset < size else { return 0 }
        try loadList(ctx)
        let total = Int(min(UInt64(out.count), size - offset))
        var done = 0
        while done < total {
            let pos = offset + UInt64(done)
            let page = pos / UInt64(Self.pageSize)
            let within = Int(pos % UInt64(Self.pageSize))
            let n = min(total - done, Self.pageSize - within)
            let dst = UnsafeMutableRawBufferPointer(rebasing: out[done..<(done + n)])
            if let p = pages[page] {
                // A page holds the bytes up to its length; past that, up to the size, zeros.
                let have = max(0, min(n, p.count - within))
                if have > 0 {
                    p.withUnsafeBytes { dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[within..<(within + have)])) }
                }
                if have < n { memset(dst.baseAddress! + have, 0, n - have) }
            } else {
                try readBase(pos, dst, ctx)
            }
            done += n
        }
        return total
    }

    /// Before the first change: inline content (at most 4 KiB) moves into page 0, so that changes
    /// only ever deal with pages over chunks.
    private func prepareForChange(_ ctx: ContentContext) throws(FSError) {
        try loadList(ctx)
        stored = nil
        guard let bytes = inline else { return }
        inline = nil
        setBase([])
        if !bytes.isEmpty {
            let p = Array(bytes.prefix(Int(min(size, UInt64(bytes.count)))))
            pages[0] = p
            dirtyBytes = p.count
            recomputeDirtyRange()
        }
    }

    /// Writes `data` at `offset`, extending the file as needed.
    func write(_ offset: UInt64, _ data: UnsafeRawBufferPointer, _ ctx: ContentContext) throws(FSError) {
        try prepareForChange(ctx)
        lowestWrite = min(lowestWrite, offset)
        dirtyLow = min(dirtyLow, offset)
        dirtyHigh = max(dirtyHigh, offset + UInt64(data.count))
        var done = 0
        let end = offset + UInt64(data.count)
        while done < data.count {
            let pos = offset + UInt64(done)
            let page = pos / UInt64(Self.pageSize)
            let within = Int(pos % UInt64(Self.pageSize))
            let n = min(data.count - done, Self.pageSize - within)
            let coversPage = within == 0 && (n == Self.pageSize || pos + UInt64(n) >= max(size, end))
            try withPage(page, fill: !coversPage, ctx) { p in
                if p.isEmpty && within == 0 {
                    p = Array(UnsafeRawBufferPointer(rebasing: data[done..<(done + n)]))
                    return
                }
                if p.count < within + n { p.append(contentsOf: repeatElement(0, count: within + n - p.count)) }
                p.withUnsafeMutableBytes {
                    ($0.baseAddress! + within).copyMemory(from: data.baseAddress! + done, byteCount: n)
                }
            }
            done += n
        }
        if end > size { size = end }
    }

    private func withPage(_ index: UInt64, fill: Bool, _ ctx: ContentContext,
                          _ body: (inout [UInt8]) -> Void) throws(FSError) {
        if pages[index] == nil {
            var p: [UInt8] = []
            let start = index * UInt64(Self.pageSize)
            if fill && start < size {
                let n = Int(min(UInt64(Self.pageSize), size - start))
                p = [UInt8](repeating: 0, count: n)
                try p.withMutableBytes { (b) throws(FSError) in try readBase(start, b, ctx) }
            }
            pages[index] = p
        }
        let before = pages[index]!.count
        body(&pages[index]!)
        dirtyBytes += pages[index]!.count - before
    }

    /// Sets the size; bytes past a shrink read as zeros if the file grows again.
    func truncate(_ newSize: UInt64, _ ctx: ContentContext) throws(FSError) {
        guard newSize != size else { return }
        try prepareForChange(ctx)
        generation &+= 1
        if newSize < size {
            let ps = UInt64(Self.pageSize)
            for key in pages.keys where key * ps >= newSize {
                dirtyBytes -= pages[key]!.count
                pages[key] = nil
            }
            recomputeDirtyRange()
            let within = Int(newSize % ps)
            if within != 0 {
                // The page keeps its bytes below the new size (filled from the base if needed);
                // past its length it reads as zeros.
                try withPage(newSize / ps, fill: true, ctx) { p in
                    if p.count > within { p.removeLast(p.count - within) }
                }
            }
            baseLimit = min(baseLimit, newSize)
        }
        size = newSize
    }

    /// A copy to chunk off the volume's lock (`materialize` on it), while writes go on here, or nil
    /// if it would hold fewer than `minimum` unsaved bytes. Pages are shared copy-on-write, so the
    /// copy costs a dictionary, not the data.
    ///
    /// The copy ends where the written bytes stop being contiguous (`contiguousRun`): past the
    /// stored chunks, a page never written reads as zeros, and with the kernel's write-back cache a
    /// sequential writer's pages arrive slightly out of order, so the pages just below the newest
    /// are usually still on their way. Chunking them as zeros made nearly every background
    /// compaction of a 1 GiB `dd` garbage (the missing pages arrived below its end), and the
    /// writer then chunked everything again under the lock.
    func snapshot(holdingAtLeast minimum: Int) -> FileData? {
        let (end, bytes) = contiguousRun()
        guard bytes >= minimum else { return nil }
        let copy = FileData(stored: nil, size: 0)
        copy.size = end
        copy.base = base
        copy.baseOffsets = baseOffsets
        copy.baseEnd = baseEnd
        copy.baseLimit = baseLimit
        copy.unloadedList = unloadedList
        copy.inline = inline
        copy.pages = pages
        copy.stored = stored
        copy.dirtyBytes = dirtyBytes
        copy.generation = generation
        lowestWrite = .max
        return copy
    }

    /// Where the run of written bytes that starts at the lowest unsaved page ends, and the unsaved
    /// bytes in it. Over the stored chunks the run goes on whether or not a page holds the bytes;
    /// past them it stops at the first page never written (a hole before the lowest unsaved page
    /// is taken as one). Only the run is walked, not every page: this is asked on writes while the
    /// buffer is half full.
    private func contiguousRun() -> (end: UInt64, bytes: Int) {
        let ps = UInt64(Self.pageSize), stored = storedEnd
        guard dirtyLow != .max else { return (size, 0) }
        var page = dirtyLow / ps
        var bytes = 0
        while page * ps < size {
            if let p = pages[page] {
                bytes += p.count
                if p.count < Self.pageSize { return (min(size, max(stored, page * ps + UInt64(p.count))), bytes) }
            } else if (page + 1) * ps > stored {
                return (max(stored, page * ps), bytes)
            }
            page += 1
        }
        return (size, bytes)
    }

    private func recomputeDirtyRange() {
        let ps = UInt64(Self.pageSize)
        dirtyLow = pages.keys.min().map { $0 * ps } ?? .max
        dirtyHigh = pages.keys.max().map { ($0 + 1) * ps } ?? 0
    }

    /// Whether the unsaved pages fill at least half the range they lie in: a writer going along
    /// the file (appending, or rewriting it in order), not here and there. Chunking scattered
    /// pages rewrites every stored chunk they touch, and the next scattered write below would
    /// throw the result away: 64 MiB of random 4 KiB writes into a 1 GiB file had the background
    /// re-chunk the whole file for nothing, then the writer do it again.
    var writesAreDense: Bool { dirtyBytes > 0 && UInt64(dirtyBytes) * 2 >= dirtyHigh &- dirtyLow }

    /// Takes the chunks a snapshot made (see `snapshot`), if nothing since could have changed
    /// the bytes they hold: no new chunks, no truncation, and no write below where they end (a
    /// sequential writer only ever writes past them). Returns false, changing nothing, otherwise;
    /// the chunks are then garbage for `gc`.
    func adopt(_ chunked: FileData, snapshotGeneration: UInt64) -> Bool {
        let end = chunked.baseEnd
        // Chunks that end below the stored end would drop stored bytes the copy kept in its pages.
        guard generation == snapshotGeneration, chunked.inline == nil, inline == nil, lowestWrite >= end,
              end >= storedEnd else { return false }
        let ps = UInt64(Self.pageSize)
        // The pages below `end` are unchanged since the snapshot, and now in chunks.
        pages = pages.filter { ($0.key + 1) * ps > end }
        dirtyBytes = pages.values.reduce(0) { $0 + $1.count }
        recomputeDirtyRange()
        setBase(chunked.base)
        return true
    }

    /// Turns unsaved pages into stored chunks. Afterwards the file has no pages, except with
    /// `keepTail` (a file still being written, chunked to bound memory): the bytes after the last
    /// content-defined boundary stay in pages.
    ///
    /// Chunking stays canonical: a rewritten region starts at the start of the first chunk it
    /// touches (for an append, the old last chunk), and goes on past its end until a cut falls on
    /// an old boundary again. So no chunk ends where a buffer happened to fill up, and the same bytes
    /// written in any block sizes, in any order, give the same chunks.
    ///
    /// Except where the pages are scattered thinly over the chunks they touch (a database, `fio`'s
    /// random writes): re-chunking would seal every touched chunk again, 300 KiB for each 4 KiB
    /// page (a commit after 64 MiB of random writes into a 1 GiB file re-sealed the whole file).
    /// Those pages are *patched* instead: sealed together into patch objects, the list naming
    /// them as pieces between what is left of the chunks around them (see `decidePatching`). The
    /// next dense rewrite of the region, or a chunk cut into too many pieces, chunks it canonically
    /// again.
    @discardableResult
    func materialize(_ ctx: ContentContext, keepTail: Bool = false) throws(FSError) -> Bool {
        try loadList(ctx)
        if inline != nil { return true }  // inline content is only ever clean: writes turn it into pages
        var regions = pageRuns()
        if baseLimit < baseEnd && baseLimit > 0 {
            // Truncated into a chunk: rewrite what is left of it.
            regions.append(Region(start: baseLimit - 1, end: baseLimit, truncated: true))
            regions.sort { $0.start < $1.start }
        }
        var groups = widen(regions)
        for g in groups.indices { decidePatching(&groups[g]) }
        if groups.isEmpty && baseEnd == size && baseLimit >= baseEnd { return true }
        let patches = try storePatches(groups, ctx)

        let limit = storedEnd
        var newChunks: [ChunkRef] = []
        var cover: UInt64 = 0
        var i = 0  // next base chunk to consider
        func keepBase(until end: UInt64) {
            while i < base.count && baseOffsets[i] + base[i].length <= min(end, limit) {
                if baseOffsets[i] >= cover {
                    newChunks.append(base[i])
                    cover = baseOffsets[i] + base[i].length
                }
                i += 1
            }
        }
        var tail: UInt64?
        for (g, group) in groups.enumerated() where group.end > cover {
            if group.isPatched && group.start >= cover {
                keepBase(until: group.start)
                newChunks += patchedPieces(group, patches[g])
                cover = group.end
                while i < base.count && baseOffsets[i] < cover { i += 1 }
                continue
            }
            let start = max(group.start, cover)
            keepBase(until: start)
            if start > cover { newChunks.append(ChunkRef(length: start - cover, link: nil)) }
            let (stop, open) = try chunkRegion(start, group.end, keepTail: keepTail, ctx) { newChunks.append($0) }
            cover = stop
            if open {
                tail = stop
                break
            }
            while i < base.count && baseOffsets[i] < cover { i += 1 }
        }
        let ps = UInt64(Self.pageSize)
        if let tail {
            // The tail can start below the old stored end: the re-read region found no cut after
            // its start. Those stored bytes go into pages, or they would go with the old chunks.
            try keepInPages(tail, min(limit, size), ctx)
            // Keep the pages holding the tail; the base now ends where the tail starts.
            pages = pages.filter { ($0.key + 1) * ps > tail }
            dirtyBytes = pages.values.reduce(0) { $0 + $1.count }
            recomputeDirtyRange()
            setBase(Self.mergeHoles(newChunks))
            return true
        }
        keepBase(until: size)
        if size > cover { newChunks.append(ChunkRef(length: size - cover, link: nil)) }
        pages = [:]
        dirtyBytes = 0
        recomputeDirtyRange()
        setBase(Self.mergeHoles(newChunks))
        return true
    }

    /// Makes sure pages hold every byte of [from, to), filling missing pages from the base.
    private func keepInPages(_ from: UInt64, _ to: UInt64, _ ctx: ContentContext) throws(FSError) {
        guard from < to else { return }
        let ps = UInt64(Self.pageSize)
        for p in (from / ps)...((to - 1) / ps) where pages[p] == nil {
            try withPage(p, fill: true, ctx) { _ in }
        }
    }

    /// A range of the file that changed: written pages, or the end of a chunk truncated into.
    private struct Region {
        var start: UInt64
        var end: UInt64
        var truncated = false
    }

    /// The changed regions widened to the chunks they touch: what one re-chunking (or one patching)
    /// covers.
    private struct Group {
        var start: UInt64
        var end: UInt64
        var runs: [Region]
        /// Patched rather than re-chunked (decided by `decidePatching`).
        var isPatched = false
    }

    /// The unsaved pages as runs of consecutive pages, up to the size.
    private func pageRuns() -> [Region] {
        let ps = UInt64(Self.pageSize)
        var runs: [Region] = []
        for k in pages.keys.sorted() {
            let s = k * ps
            guard s < size else { break }
            let e = min(s + ps, size)
            if let last = runs.last, last.end == s {
                runs[runs.count - 1].end = e
            } else {
                runs.append(Region(start: s, end: e))
            }
        }
        return runs
    }

    /// A patch object holds at most this much (like the largest chunk): what a piece keeps alive
    /// after the rest of its patch was overwritten stays bounded.
    static let patchSize = 1 << 20

    /// Whether a group is patched: it lies within the stored chunks (sealed in blocks, or holes);
    /// its pages fill at most half of it (else re-chunking it seals at most twice what patching
    /// would), in runs shorter than the smallest chunk (a longer run is content written in order,
    /// which chunks as any copy of it would); and its chunks would hold few pieces: at most 32 per
    /// chunk, or one per 16 KiB block of a larger chunk or hole. A chunk that would go past that is
    /// chunked again, canonically, so that a file written at random for ever (a database) does not
    /// fall apart into 4 KiB pieces, each read from another patch object.
    private func decidePatching(_ group: inout Group) {
        guard !group.runs.contains(where: \.truncated), group.end <= storedEnd else { return }
        let length = group.end - group.start
        let dirty = group.runs.reduce(0) { $0 + ($1.end - $1.start) }
        guard dirty * 2 <= length, group.runs.allSatisfy({ $0.end - $0.start < UInt64(Chunker.minimumSize) }) else { return }
        let first = chunkIndex(group.start), last = chunkIndex(group.end - 1)
        guard base[first...last].allSatisfy({ $0.link == nil || $0.sealedInBlocks }) else { return }
        let pieces = UInt64(last - first + 1 + 2 * group.runs.count)
        let chunks = UInt64(base[first...last].lazy.filter(\.startsAtCut).count)
        group.isPatched = pieces <= max(32 * chunks, length / UInt64(ContentContext.pieceSize))
    }

    /// Seals the pages of the patched groups into patch objects, a few at a time on the sealing
    /// threads; returns for each group the pieces that name its pages, in the order of its runs
    /// (holes where a patch object was all zeros).
    private func storePatches(_ groups: [Group], _ ctx: ContentContext) throws(FSError) -> [[ChunkRef]] {
        // Where each run's bytes go: patch objects of up to `patchSize`, filled in file order.
        struct Segment { var group: Int; var fileOffset: UInt64; var length: Int; var patch: Int; var at: Int }
        var segments: [Segment] = []
        var patchLengths: [Int] = []
        for (g, group) in groups.enumerated() where group.isPatched {
            for run in group.runs {
                var pos = run.start
                while pos < run.end {
                    if patchLengths.isEmpty || patchLengths[patchLengths.count - 1] == Self.patchSize { patchLengths.append(0) }
                    let p = patchLengths.count - 1
                    let n = min(Int(run.end - pos), Self.patchSize - patchLengths[p])
                    segments.append(Segment(group: g, fileOffset: pos, length: n, patch: p, at: patchLengths[p]))
                    patchLengths[p] += n
                    pos += UInt64(n)
                }
            }
        }
        var out = [[ChunkRef]](repeating: [], count: groups.count)
        guard !segments.isEmpty else { return out }
        // Eight at a time: 8 MiB of memory, whatever the pages hold.
        var links: [HashAndKey?] = []
        let batch = 8
        var next = 0
        for first in stride(from: 0, to: patchLengths.count, by: batch) {
            let range = first..<min(first + batch, patchLengths.count)
            let buffers = range.map { UnsafeMutableRawBufferPointer.allocate(byteCount: patchLengths[$0], alignment: 64) }
            defer { buffers.forEach { $0.deallocate() } }
            while next < segments.count && segments[next].patch < range.upperBound {
                let s = segments[next]
                let b = buffers[s.patch - first]
                _ = try read(s.fileOffset, into: UnsafeMutableRawBufferPointer(rebasing: b[s.at..<(s.at + s.length)]), ctx)
                next += 1
            }
            links += try SealingBatch(buffers.map { UnsafeRawBufferPointer($0) }, ctx).wait()
        }
        for s in segments {
            if let link = links[s.patch] {
                out[s.group].append(ChunkRef(length: UInt64(s.length), link: link, offset: UInt64(s.at),
                                             chunkLength: UInt64(patchLengths[s.patch]), isPatch: true))
            } else {
                out[s.group].append(ChunkRef(length: UInt64(s.length), link: nil))
            }
        }
        return out
    }

    /// A patched group's new pieces: the stored pieces between its runs, cut where the runs start
    /// and end, and the patch pieces for the runs.
    private func patchedPieces(_ group: Group, _ patches: [ChunkRef]) -> [ChunkRef] {
        var out: [ChunkRef] = []
        func keep(_ from: UInt64, _ to: UInt64) {
            var pos = from
            while pos < to {
                let j = chunkIndex(pos)
                let n = min(to, baseOffsets[j] + base[j].length) - pos
                out.append(base[j].slice(pos - baseOffsets[j], n))
                pos += n
            }
        }
        var pos = group.start
        var k = 0
        for run in group.runs {
            keep(pos, run.start)
            var left = run.end - run.start
            while left > 0 {
                out.append(patches[k])
                left -= patches[k].length
                k += 1
            }
            pos = run.end
        }
        keep(pos, group.end)
        return out
    }

    /// True if a valid base chunk starts at `offset` at a cut: chunking can stop there and keep the rest.
    private func isBaseBoundary(_ offset: UInt64) -> Bool {
        guard offset < storedEnd, !baseOffsets.isEmpty else { return false }
        let j = chunkIndex(offset)
        return baseOffsets[j] == offset && base[j].startsAtCut
    }

    /// Cuts the current content from `start` into chunks and stores them, a window at a time (a few
    /// MiB of memory, whatever the region's size). Goes past `end` until a cut lands on a base
    /// boundary or the end of the file. Returns where the chunks end, and whether a tail was left
    /// (with `keepTail`, the bytes after the last boundary at the end of the file).
    ///
    /// Two windows take turns: while the chunks cut from one are sealed and stored on the sealing
    /// threads, this thread reads and cuts the next into the other.
    private func chunkRegion(_ start: UInt64, _ end: UInt64, keepTail: Bool, _ ctx: ContentContext,
                             _ emit: (ChunkRef) -> Void) throws(FSError) -> (UInt64, Bool) {
        // A window holds the region and a chunk past it (where the cut usually meets an old
        // boundary again), up to 4 MiB: a 4 MiB window for a 300 KiB region read, decrypted and
        // paged in 4 MiB for each of the chunks a commit re-chunks here and there.
        let wanted = (end - start + UInt64(Chunker.maximumSize) + 65535) & ~65535
        let window = Int(min(4 * 1024 * 1024, wanted))
        let capacity = window + Chunker.maximumSize
        let buffers = [UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 64),
                       UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 64)]
        var current = 0
        var sealing: (batch: SealingBatch, lengths: [Int])?
        func finishSealing() throws(FSError) {
            guard let s = sealing else { return }
            sealing = nil
            let links = try s.batch.wait()
            for (length, link) in zip(s.lengths, links) { emit(ChunkRef(length: UInt64(length), link: link)) }
        }
        defer {
            _ = try? sealing?.batch.wait()  // an error left the last batch running: never free its memory under it
            buffers.forEach { $0.deallocate() }
        }
        var pos = start       // next byte to read
        var filled = 0        // bytes read, not yet cut
        var chunked = start   // where the cut chunks end
        while true {
            let b = buffers[current]
            let n = Int(min(UInt64(window), size - pos))
            if n > 0 {
                // The stored bytes under the window, fetched a range per chunk and in parallel
                // (read block by block, a commit after random writes spent its time in preads).
                try ctx.load(try uncachedChunks(pos, n, ctx))
                // The next window's stored chunks start coming from disk while this one is cut.
                let next = pos + UInt64(n)
                if next < size { ctx.willLoad(try uncachedChunks(next, Int(min(UInt64(window), size - next)), ctx)) }
                _ = try read(pos, into: UnsafeMutableRawBufferPointer(rebasing: b[filled..<(filled + n)]), ctx)
                filled += n
                pos += UInt64(n)
            }
            let isFinal = pos >= size && !keepTail
            var resynced = false
            var pieces: [UnsafeRawBufferPointer] = []
            var consumed = 0
            while consumed < filled {
                let rest = UnsafeRawBufferPointer(rebasing: b[consumed..<filled])
                let length = ctx.chunker.nextBoundary(rest, isFinal: isFinal)
                if !isFinal && length == rest.count { break }  // the boundary depends on bytes not read yet
                pieces.append(UnsafeRawBufferPointer(rebasing: rest[..<length]))
                consumed += length
                let at = chunked + UInt64(consumed)
                if at >= end && isBaseBoundary(at) {
                    resynced = true
                    break
                }
            }
            // The other window's chunks are done with before its memory is reused.
            try finishSealing()
            if !pieces.isEmpty { sealing = (SealingBatch(pieces, ctx), pieces.map(\.count)) }
            chunked += UInt64(consumed)
            if resynced || chunked >= size {
                try finishSealing()
                return (chunked, false)
            }
            if pos >= size && n == 0 && consumed == 0 {
                try finishSealing()
                return (chunked, true)  // the tail stays in pages
            }
            // The bytes not cut yet move to the start of the other window.
            current = 1 - current
            buffers[current].baseAddress!.copyMemory(from: b.baseAddress! + consumed, byteCount: filled - consumed)
            filled -= consumed
        }
    }

    /// Widens each region to the content-defined chunks it touches (an append takes the old last
    /// chunk with it; a piece of a patched chunk takes the whole chunk) and merges overlapping ones.
    private func widen(_ regions: [Region]) -> [Group] {
        var out: [Group] = []
        let limit = storedEnd
        /// The first entry of the chunk entry `j` is a piece of.
        func cutAtOrBefore(_ j: Int) -> Int {
            var j = j
            while j > 0 && !base[j].startsAtCut { j -= 1 }
            return j
        }
        for region in regions {
            var s = region.start, e = region.end
            if s < limit {
                s = baseOffsets[cutAtOrBefore(chunkIndex(s))]
            } else if s == limit && limit == baseEnd && limit > 0 {
                s = baseOffsets[cutAtOrBefore(chunkIndex(limit - 1))]
            }
            if e < limit, e > 0 {
                var j = chunkIndex(e - 1)
                while j + 1 < base.count && !base[j + 1].startsAtCut { j += 1 }
                e = min(baseOffsets[j] + base[j].length, size)
            }
            // Groups that only touch stay apart: merged, the groups of random writes into a file
            // became one, as long as the file, and too many pieces to patch.
            if let last = out.last, s < last.end {
                out[out.count - 1].end = max(last.end, e)
                out[out.count - 1].runs.append(region)
            } else {
                out.append(Group(start: s, end: e, runs: [region]))
            }
        }
        return out
    }

    private static func mergeHoles(_ chunks: [ChunkRef]) -> [ChunkRef] {
        var out: [ChunkRef] = []
        for c in chunks where c.length > 0 {
            if c.link == nil, let last = out.last, last.link == nil {
                out[out.count - 1] = ChunkRef(length: last.length + c.length, link: nil)
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// The content as an entry stores it, writing a chunk-list object if the list is long.
    func encode(_ ctx: ContentContext) throws(FSError) -> StoredContent {
        if let stored { return stored }
        let content: StoredContent
        if size <= UInt64(Self.inlineLimit) {
            var bytes = [UInt8](repeating: 0, count: Int(size))
            _ = try bytes.withMutableBytes { (b) throws(FSError) in try read(0, into: b, ctx) }
            pages = [:]
            dirtyBytes = 0
            recomputeDirtyRange()
            setBase([])
            inline = bytes
            baseLimit = size
            content = .inline(bytes)
        } else if try materialize(ctx), base.count <= Self.inlineChunkLimit {
            content = .chunks(base)
        } else {
            var record = Record()
            record.add(Record(text: EntryLabel.chunks, children: base.map(\.record)))
            let (object, link) = ctx.secrets.seal(record.object())
            do { try ctx.store.put(link.hash, object) } catch { throw Volume.map(error) }
            content = .chunkList(link, size: size)
        }
        stored = content
        return content
    }
}
