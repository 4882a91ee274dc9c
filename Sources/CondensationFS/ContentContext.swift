import Condensation
import Dispatch
import Synchronization

/// Part of a stored chunk a read needs: blocks `blocks` of a chunk sealed in blocks, or the whole
/// chunk of the first format (`blocks` is then 0..<1).
struct ChunkRead: Sendable {
    let link: HashAndKey
    let length: Int
    let sealedInBlocks: Bool
    let blocks: Range<Int>
}

/// Everything file contents need from the volume: the store, the keys, the chunker, the cache,
/// and the two chunk formats.
///
/// New chunks are sealed in blocks: `header (4 zero bytes) ‖ for each 16 KiB of plaintext:
/// AES-256-GCM ciphertext ‖ 16-byte tag`, nonce = block index, key = HMAC(chunk key secret,
/// plaintext). A read checks and decrypts only the blocks it needs, from a range read of the
/// object file, so a 4 KiB random read costs one 16 KiB block, not a hash of the whole chunk; and
/// a sequential read checks with GCM, several times cheaper than SHA-256. The object is still an
/// ordinary Condensation object (its hash covers every byte; stores and sync see no difference).
/// Chunks of the first format (AES-256-CTR over the whole data, checked by the object's hash)
/// are still read.
final class ContentContext: Sendable {
    static let blocks = SealedBlocks(blockSize: 16 * 1024)
    /// A load of more blocks than this is split, so that one large read runs on both cores.
    static let blocksPerLoad = 16

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

    /// The plaintext of block `block` of a chunk (of the whole chunk, for the first format).
    func piece(_ ref: ChunkRef, block: Int) throws(FSError) -> ArraySlice<UInt8> {
        guard let link = ref.link else { throw .io }
        guard ref.sealedInBlocks else { return try wholeChunk(link) }
        let key = PieceKey(link.hash, block: block)
        if let bytes = cache.get(key) { return bytes }
        try load(ChunkRead(link: link, length: Int(ref.chunkLength), sealedInBlocks: true, blocks: block..<(block + 1)))
        if let bytes = cache.get(key) { return bytes }
        // Evicted at once by other loads: rare; read it again and keep it out of the cache.
        return try readBlocks(link, length: Int(ref.chunkLength), block..<(block + 1), cacheThem: false)[0]
    }

    /// Whether a piece is decrypted in the cache.
    func isCached(_ link: HashAndKey, block: Int?) -> Bool {
        cache.contains(block.map { PieceKey(link.hash, block: $0) } ?? PieceKey(whole: link.hash))
    }

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
            !loads.isLoading(part.sealedInBlocks ? PieceKey(part.link.hash, block: part.blocks.lowerBound) : PieceKey(whole: part.link.hash))
        }
        willLoad(parts)
        for part in parts { readAhead.async { try? self.load(part) } }
    }

    /// Has the store start the disk reads of these loads now, all at once; the loads then mostly
    /// find the bytes in memory (without it, a cold sequential read waited on one chunk file's
    /// disk read after the other).
    func willLoad(_ reads: [ChunkRead]) {
        for read in reads where read.sealedInBlocks {
            let b = Self.blocks, first = read.blocks.lowerBound, last = read.blocks.upperBound - 1
            let start = 4 + b.sealedOffset(block: first)
            let end = 4 + b.sealedOffset(block: last) + b.plaintextCount(block: last, of: read.length) + SealedBlocks.tagSize
            store.willRead(read.link.hash, offset: start, count: end - start)
        }
    }

    private static func split(_ read: ChunkRead) -> [ChunkRead] {
        guard read.sealedInBlocks, read.blocks.count > blocksPerLoad else { return [read] }
        return stride(from: read.blocks.lowerBound, to: read.blocks.upperBound, by: blocksPerLoad).map {
            ChunkRead(link: read.link, length: read.length, sealedInBlocks: true,
                      blocks: $0..<min($0 + blocksPerLoad, read.blocks.upperBound))
        }
    }

    private func load(_ read: ChunkRead) throws(FSError) {
        guard read.sealedInBlocks else {
            _ = try wholeChunk(read.link)
            return
        }
        let keys = read.blocks.map { PieceKey(read.link.hash, block: $0) }
        let claimed = loads.claim(keys)
        // Load the claimed blocks that are not cached, in contiguous runs; then wait for the ones
        // another thread was loading.
        var mine: [PieceKey] = []
        var others: [PieceKey] = []
        var run: Range<Int>?
        func flush() throws(FSError) {
            if let r = run { _ = try readBlocks(read.link, length: read.length, r, cacheThem: true) }
            run = nil
        }
        do {
            for (i, key) in keys.enumerated() {
                if !claimed[i] { others.append(key); try flush(); continue }
                mine.append(key)
                if cache.contains(key) { try flush(); continue }
                let b = read.blocks.lowerBound + i
                run = run.map { $0.lowerBound..<(b + 1) } ?? b..<(b + 1)
            }
            try flush()
        } catch {
            loads.end(mine)
            throw error
        }
        loads.end(mine)
        for key in others { loads.wait(key) }
    }

    /// Reads, checks and decrypts blocks of a chunk with one range read of its object.
    private func readBlocks(_ link: HashAndKey, length: Int, _ blocks: Range<Int>,
                            cacheThem: Bool) throws(FSError) -> [ArraySlice<UInt8>] {
        let b = Self.blocks
        let plaintext = blocks.reduce(0) { $0 + b.plaintextCount(block: $1, of: length) }
        let sealed = plaintext + SealedBlocks.tagSize * blocks.count
        guard plaintext > 0 else {
            Log.error("chunk \(link.hash.hex): a read past its end (its list says \(length) bytes)")
            throw .io
        }
        let read: [UInt8]?
        do throws(StoreError) {
            read = try store.read(link.hash, offset: 4 + b.sealedOffset(block: blocks.lowerBound), count: sealed)
        } catch {
            Log.error("reading object \(link.hash.hex): \(error)")
            throw .io
        }
        guard var bytes = read else {
            Log.error("object \(link.hash.hex) is missing from the store")
            throw .io
        }
        guard bytes.count == sealed else {
            Log.error("chunk \(link.hash.hex) is shorter than its list says (corrupt or truncated)")
            throw .io
        }
        let ok = bytes.withUnsafeMutableBytes {
            b.open($0, plaintext: plaintext, key: link.key, firstBlock: blocks.lowerBound)
        }
        guard ok else {
            Log.error("chunk \(link.hash.hex) is corrupt: a block of \(blocks) fails its check")
            throw .io
        }
        if blocks.count == 1 {
            // One block (a random read): the read buffer itself, no copy.
            let piece = bytes[0..<plaintext]
            if cacheThem { cache.put(PieceKey(link.hash, block: blocks.lowerBound), piece) }
            return [piece]
        }
        // Each block gets its own buffer: the cache then frees exactly what it evicts.
        var out: [ArraySlice<UInt8>] = []
        out.reserveCapacity(blocks.count)
        bytes.withUnsafeBytes { all in
            var at = 0
            for index in blocks {
                let n = b.plaintextCount(block: index, of: length)
                let piece = ArraySlice(UnsafeRawBufferPointer(rebasing: all[at..<(at + n)]))
                if cacheThem { cache.put(PieceKey(link.hash, block: index), piece) }
                out.append(piece)
                at += n + SealedBlocks.tagSize
            }
        }
        return out
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

    /// Seals and stores one chunk in blocks; nil (nothing stored) for all zeros. The object is laid
    /// out, sealed and hashed in one buffer.
    func storeChunk(_ plaintext: UnsafeRawBufferPointer) throws(FSError) -> HashAndKey? {
        if Self.isZero(plaintext) { return nil }
        let b = Self.blocks
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
