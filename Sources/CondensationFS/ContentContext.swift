import Condensation
import Dispatch
import Synchronization

/// Part of a stored chunk a read needs: pieces `pieces` of a chunk sealed in blocks, or the whole
/// chunk of the first format (`sealing` nil, `pieces` 0..<1).
struct ChunkRead: Sendable {
    let link: HashAndKey
    let length: Int
    let sealing: SealedBlocks?
    let pieces: Range<Int>

    /// The blocks that hold the pieces.
    var blocks: Range<Int> {
        guard let sealing else { return 0..<1 }
        let k = ContentContext.pieceSize / sealing.blockSize
        return (pieces.lowerBound * k)..<min(pieces.upperBound * k, sealing.blockCount(plaintext: length))
    }
}

/// `count` bytes of a read, `at` bytes into its buffer, that lie at `offset` of a sealed chunk's
/// plaintext (or in a hole, when the chunk has no link).
struct DirectRead: Sendable {
    let at: Int
    let count: Int
    let chunk: ChunkRef
    let offset: Int
}

/// Everything file contents need from the volume: the store, the keys, the chunker, the cache,
/// and the chunk formats.
///
/// Chunks are sealed in blocks: `header (4 zero bytes) ‖ for each block of plaintext: AES-256-GCM
/// ciphertext ‖ 16-byte tag`, nonce = block index, key = HMAC(chunk key secret, plaintext). A
/// read checks and decrypts only the blocks it needs, from a range read of the object file, so a
/// 4 KiB random read costs one or two 4 KiB blocks, not a hash of the whole chunk; and a
/// sequential read checks with GCM, several times cheaper than SHA-256. The object is still an
/// ordinary Condensation object (its hash covers every byte; stores and sync see no difference).
/// Chunks written before are sealed in 16 KiB blocks, or (the first format) encrypted with
/// AES-256-CTR as a whole and checked by the object's hash; both are still read.
final class ContentContext: Sendable {
    /// New chunks and patches are sealed in 4 KiB blocks: a random 4 KiB read then reads about
    /// 8 KiB of the object file, where 16 KiB blocks made it read 20–40 KiB (on this machine's
    /// disk a cold 20 KiB read takes twice as long as a 4 KiB one).
    static let smallBlocks = SealedBlocks(blockSize: 4 * 1024)
    /// Chunks written before 4 KiB blocks (marked `g` and `p`).
    static let largeBlocks = SealedBlocks(blockSize: 16 * 1024)
    static let sealing = smallBlocks
    /// The cache and the loads deal in pieces of plaintext of this size (four small blocks or one
    /// large one): a sequential read then costs one cache entry per 16 KiB whatever the blocks.
    static let pieceSize = 16 * 1024
    /// A load of more pieces than this is split, so that one large read runs on both cores.
    static let piecesPerLoad = 16

    let store: any Store
    let reader: ObjectReader
    let secrets: Secrets
    let chunker: Chunker
    let cache = ChunkCache()
    private let loads = ChunkLoads()
    /// Read-ahead runs here, off the threads that answer the kernel.
    private let readAhead = DispatchQueue(label: "cdsfs.read-ahead", attributes: .concurrent)

    init(store: any Store, secrets: Secrets) {
        self.store = store
        self.reader = ObjectReader(store: store)
        self.secrets = secrets
        self.chunker = Chunker(secrets: secrets)
    }

    // MARK: Reading

    /// The plaintext of piece `index` of a chunk (of the whole chunk, for the first format).
    func piece(_ ref: ChunkRef, _ index: Int) throws(FSError) -> ArraySlice<UInt8> {
        guard let link = ref.link else { throw .io }
        guard let sealing = ref.sealing else { return try wholeChunk(link) }
        let key = PieceKey(link.hash, piece: index)
        if let bytes = cache.get(key) { return bytes }
        let read = ChunkRead(link: link, length: Int(ref.chunkLength), sealing: sealing, pieces: index..<(index + 1))
        try load(read)
        if let bytes = cache.get(key) { return bytes }
        // Evicted at once by other loads: rare; read it again and keep it out of the cache.
        return try readPieces(read, cacheThem: false)[0]
    }

    /// Whether a piece is decrypted in the cache.
    func isCached(_ link: HashAndKey, piece: Int?) -> Bool {
        cache.contains(piece.map { PieceKey(link.hash, piece: $0) } ?? PieceKey(whole: link.hash))
    }

    /// Reads the parts of a direct read into `buffer`; a large one (the kernel's sequential
    /// requests, 1–2 MiB) on all cores. The kernel mostly keeps one such request in flight, so its
    /// latency is the reader's throughput: read by one thread, a cold sequential read left the
    /// machine half idle.
    func read(_ parts: [DirectRead], into buffer: UnsafeMutableRawBufferPointer) throws(FSError) {
        let bytes = parts.reduce(0) { $0 + $1.count }
        guard parts.count > 1, bytes >= Self.parallelRead else {
            for part in parts { try read(part, into: buffer) }
            return
        }
        // Parts are chunks (up to 1 MiB): cut them into pieces of about `parallelRead / 2` so that
        // the cores share the work evenly.
        var pieces: [DirectRead] = []
        for part in parts {
            var at = 0
            while at < part.count {
                let n = min(part.count - at, Self.parallelRead / 2)
                pieces.append(DirectRead(at: part.at + at, count: n, chunk: part.chunk, offset: part.offset + at))
                at += n
            }
        }
        let all = pieces
        nonisolated(unsafe) let out = buffer  // each piece writes its own range of it
        try Self.inParallel(all.count) { (i) throws(FSError) in try read(all[i], into: out) }
    }

    /// Direct reads of this many bytes or more run on all cores.
    static let parallelRead = 256 * 1024

    /// Copies the bytes of a direct read into its place in `buffer`: from the cache if it holds
    /// them, else from the blocks that hold them, read into this thread's scratch buffer and
    /// decrypted straight into the reply (the blocks the read covers whole) or through a block on
    /// the stack (a block it covers in part). Nothing is cached: the kernel keeps the plaintext it
    /// asked for, and a random read's neighbours are rarely read next.
    func read(_ direct: DirectRead, into buffer: UnsafeMutableRawBufferPointer) throws(FSError) {
        let out = UnsafeMutableRawBufferPointer(rebasing: buffer[direct.at..<(direct.at + direct.count)])
        guard let link = direct.chunk.link, let sealing = direct.chunk.sealing else {
            out.initializeMemory(as: UInt8.self, repeating: 0)
            return
        }
        let length = Int(direct.chunk.chunkLength), offset = direct.offset
        let ps = Self.pieceSize
        if offset / ps == (offset + out.count - 1) / ps, let piece = cache.get(PieceKey(link.hash, piece: offset / ps)),
           piece.count >= offset % ps + out.count {
            piece.withUnsafeBytes { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[(offset % ps)...].prefix(out.count))) }
            return
        }
        let bs = sealing.blockSize, step = bs + SealedBlocks.tagSize
        let blocks = (offset / bs)..<((offset + out.count - 1) / bs + 1)
        let sealed = try readSealed(link, length: length, sealing: sealing, blocks)
        var done = 0, pos = offset
        while done < out.count {
            let block = pos / bs, within = pos % bs
            let at = (block - blocks.lowerBound) * step
            // The blocks from here on that the reply takes whole are decrypted straight into it.
            var whole = 0, n = 0
            while within == 0 && block + whole < blocks.upperBound {
                let c = sealing.plaintextCount(block: block + whole, of: length)
                guard done + n + c <= out.count else { break }
                n += c
                whole += 1
            }
            if whole > 0 {
                let run = block..<(block + whole)
                try open(UnsafeRawBufferPointer(rebasing: sealed[at...]), into: UnsafeMutableRawBufferPointer(rebasing: out[done..<(done + n)]),
                         link, length: length, sealing: sealing, run)
                done += n
                pos += n
                continue
            }
            let count = sealing.plaintextCount(block: block, of: length)
            let part = min(out.count - done, count - within)
            try withUnsafeTemporaryAllocation(byteCount: count, alignment: 16) { (opened) throws(FSError) in
                try open(UnsafeRawBufferPointer(rebasing: sealed[at...]), into: opened, link, length: length, sealing: sealing, block..<(block + 1))
                (out.baseAddress! + done).copyMemory(from: opened.baseAddress! + within, byteCount: part)
            }
            done += part
            pos += part
        }
    }

    /// Each thread's buffer for the sealed bytes it reads (`readSealed`).
    private static let scratch = ThreadBuffer()

    /// Fetches what reads need into the cache, in parallel: a read that needs several pieces from
    /// disk spreads the reading, checking and decryption over the cores.
    func load(_ reads: [ChunkRead]) throws(FSError) {
        let parts = reads.flatMap(Self.split)
        if parts.isEmpty { return }
        if parts.count == 1 { return try load(parts[0]) }
        try Self.inParallel(parts.count) { (i) throws(FSError) in try load(parts[i]) }
    }

    /// Runs `body` for 0..<count on all cores; throws the first error any of them threw.
    private static func inParallel(_ count: Int, _ body: @Sendable (Int) throws(FSError) -> Void) throws(FSError) {
        let failure = Mutex<FSError?>(nil)
        DispatchQueue.concurrentPerform(iterations: count) { i in
            do throws(FSError) { try body(i) } catch { failure.withLock { $0 = $0 ?? error } }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// Starts fetching what a sequential reader will want next; returns at once. Errors are left
    /// for the read that needs the piece to report.
    func prefetch(_ reads: [ChunkRead]) {
        let parts = reads.flatMap(Self.split).filter { part in
            !loads.isLoading(part.sealing != nil ? PieceKey(part.link.hash, piece: part.pieces.lowerBound) : PieceKey(whole: part.link.hash))
        }
        willLoad(parts)
        for part in parts { readAhead.async { try? self.load(part) } }
    }

    /// `willLoad` on a read-ahead thread: opening a cold object file takes about 90 µs, a dozen of
    /// them in a request's path held it up more than its decryption.
    func willLoadInBackground(_ reads: [ChunkRead]) {
        readAhead.async { self.willLoad(reads) }
    }

    /// Has the store start the disk reads of these loads now, all at once; the loads then mostly
    /// find the bytes in memory (without it, a cold sequential read waited on one chunk file's
    /// disk read after the other).
    func willLoad(_ reads: [ChunkRead]) {
        for read in reads {
            guard let sealing = read.sealing else { continue }
            let range = Self.sealedRange(sealing, read.blocks, of: read.length)
            store.willRead(read.link.hash, offset: range.lowerBound, count: range.count)
        }
    }

    /// Where blocks `blocks` lie in the object of a chunk of `length` bytes (after its 4-byte header).
    private static func sealedRange(_ sealing: SealedBlocks, _ blocks: Range<Int>, of length: Int) -> Range<Int> {
        let last = blocks.upperBound - 1
        let start = 4 + sealing.sealedOffset(block: blocks.lowerBound)
        return start..<(4 + sealing.sealedOffset(block: last) + sealing.plaintextCount(block: last, of: length) + SealedBlocks.tagSize)
    }

    private static func split(_ read: ChunkRead) -> [ChunkRead] {
        guard read.sealing != nil, read.pieces.count > piecesPerLoad else { return [read] }
        return stride(from: read.pieces.lowerBound, to: read.pieces.upperBound, by: piecesPerLoad).map {
            ChunkRead(link: read.link, length: read.length, sealing: read.sealing,
                      pieces: $0..<min($0 + piecesPerLoad, read.pieces.upperBound))
        }
    }

    private func load(_ read: ChunkRead) throws(FSError) {
        guard read.sealing != nil else {
            _ = try wholeChunk(read.link)
            return
        }
        let keys = read.pieces.map { PieceKey(read.link.hash, piece: $0) }
        let claimed = loads.claim(keys)
        // Load the claimed pieces that are not cached, in contiguous runs; then wait for the ones
        // another thread was loading.
        var mine: [PieceKey] = []
        var others: [PieceKey] = []
        var run: Range<Int>?
        func flush() throws(FSError) {
            if let r = run {
                _ = try readPieces(ChunkRead(link: read.link, length: read.length, sealing: read.sealing, pieces: r), cacheThem: true)
            }
            run = nil
        }
        do {
            for (i, key) in keys.enumerated() {
                if !claimed[i] { others.append(key); try flush(); continue }
                mine.append(key)
                if cache.contains(key) { try flush(); continue }
                let p = read.pieces.lowerBound + i
                run = run.map { $0.lowerBound..<(p + 1) } ?? p..<(p + 1)
            }
            try flush()
        } catch {
            loads.end(mine)
            throw error
        }
        loads.end(mine)
        for key in others { loads.wait(key) }
    }

    /// Reads, checks and decrypts the pieces of a sealed chunk with one range read of its object,
    /// each piece straight into a buffer of its own (the cache then frees exactly what it evicts).
    private func readPieces(_ read: ChunkRead, cacheThem: Bool) throws(FSError) -> [ArraySlice<UInt8>] {
        let sealing = read.sealing!, blocks = read.blocks
        let sealed = try readSealed(read.link, length: read.length, sealing: sealing, blocks)
        let k = Self.pieceSize / sealing.blockSize
        var out: [ArraySlice<UInt8>] = []
        out.reserveCapacity(read.pieces.count)
        for index in read.pieces {
            let first = max(index * k, blocks.lowerBound), pieceBlocks = first..<min(first + k, blocks.upperBound)
            let n = pieceBlocks.reduce(0) { $0 + sealing.plaintextCount(block: $1, of: read.length) }
            let at = sealing.sealedOffset(block: first) - sealing.sealedOffset(block: blocks.lowerBound)
            var failure: FSError?
            let piece = [UInt8](unsafeUninitializedCapacity: n) { buffer, count in
                do throws(FSError) {
                    try open(UnsafeRawBufferPointer(rebasing: sealed[at...]), into: UnsafeMutableRawBufferPointer(buffer),
                             read.link, length: read.length, sealing: sealing, pieceBlocks)
                } catch { failure = error }
                count = n
            }
            if let failure { throw failure }
            if cacheThem { cache.put(PieceKey(read.link.hash, piece: index), piece[...]) }
            out.append(piece[...])
        }
        return out
    }

    /// Opens blocks `blocks` of a chunk from their sealed bytes into `out`, packed.
    private func open(_ sealed: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, _ link: HashAndKey,
                      length: Int, sealing: SealedBlocks, _ blocks: Range<Int>) throws(FSError) {
        let plaintext = blocks.reduce(0) { $0 + sealing.plaintextCount(block: $1, of: length) }
        guard sealing.open(sealed, into: out, plaintext: plaintext, key: link.key, firstBlock: blocks.lowerBound) else {
            Log.error("chunk \(link.hash.hex) is corrupt: a block of \(blocks) fails its check")
            throw .io
        }
    }

    /// The sealed bytes of blocks of a chunk, read with one range read of its object into this
    /// thread's scratch buffer (valid until the thread's next call); not yet checked.
    private func readSealed(_ link: HashAndKey, length: Int, sealing: SealedBlocks, _ blocks: Range<Int>)
        throws(FSError) -> UnsafeRawBufferPointer {
        guard sealing.plaintextCount(block: blocks.lowerBound, of: length) > 0 else {
            Log.error("chunk \(link.hash.hex): a read past its end (its list says \(length) bytes)")
            throw .io
        }
        let range = Self.sealedRange(sealing, blocks, of: length)
        let buffer = UnsafeMutableRawBufferPointer(start: Self.scratch.get(range.count), count: range.count)
        let read: Int?
        do throws(StoreError) {
            read = try store.read(link.hash, offset: range.lowerBound, into: buffer)
        } catch {
            Log.error("reading object \(link.hash.hex): \(error)")
            throw .io
        }
        guard let read else {
            Log.error("object \(link.hash.hex) is missing from the store")
            throw .io
        }
        guard read == range.count else {
            Log.error("chunk \(link.hash.hex) is shorter than its list says (corrupt or truncated)")
            throw .io
        }
        return UnsafeRawBufferPointer(buffer)
    }

    /// A chunk of the first format: the object's data, decrypted (checked by the object's hash).
    private func wholeChunk(_ link: HashAndKey) throws(FSError) -> ArraySlice<UInt8> {
        let key = PieceKey(whole: link.hash)
        if let bytes = cache.get(key) { return bytes }
        if !loads.claim([key])[0] {
            loads.wait(key)
            return try wholeChunk(link)
        }
        defer { loads.end([key]) }
        let object = try reader.object(link)
        guard object.hashCount == 0 else {
            Log.error("chunk \(link.hash.hex) has a hash list; not a chunk")
            throw .io
        }
        let bytes = object.data
        cache.put(key, bytes)
        return bytes
    }

    // MARK: Writing

    /// Seals and stores one chunk in blocks (older blocks only for tests of what older versions
    /// wrote); nil (nothing stored) for all zeros. The object is laid out, sealed and hashed in one
    /// buffer.
    func storeChunk(_ plaintext: UnsafeRawBufferPointer, sealing b: SealedBlocks = sealing) throws(FSError) -> HashAndKey? {
        if Self.isZero(plaintext) { return nil }
        let n = plaintext.count
        let key = secrets.chunkKey(for: plaintext)
        var bytes = [UInt8](unsafeUninitializedCapacity: 4 + b.sealedSize(plaintext: n)) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            raw.storeBytes(of: 0, toByteOffset: 0, as: UInt32.self)  // no hashes
            for index in 0..<b.blockCount(plaintext: n) {
                let from = index * b.blockSize, m = b.plaintextCount(block: index, of: n)
                (raw.baseAddress! + 4 + b.sealedOffset(block: index)).copyMemory(from: plaintext.baseAddress! + from, byteCount: m)
            }
            count = buffer.count
        }
        bytes.withUnsafeMutableBytes { b.seal(UnsafeMutableRawBufferPointer(rebasing: $0[4...]), plaintext: n, key: key) }
        let object = try! Object(bytes: bytes)
        let link = HashAndKey(hash: object.calculateHash(), key: key)
        do throws(StoreError) { try store.put(link.hash, object) } catch { throw Volume.map(error) }
        return link
    }

    static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let words = bytes.count / 8
        let w = bytes.baseAddress!
        for k in 0..<words where w.loadUnaligned(fromByteOffset: k * 8, as: UInt64.self) != 0 { return false }
        for k in (words * 8)..<bytes.count where bytes[k] != 0 { return false }
        return true
    }
}
