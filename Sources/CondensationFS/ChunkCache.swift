import Condensation
import Synchronization

/// Decrypted chunks, most recently used kept, bounded in bytes. Reads of neighbouring ranges hit
/// the same chunk many times (the kernel reads 128 KiB at a time; chunks average 256 KiB).
final class ChunkCache: Sendable {
    private struct State {
        var entries: [Hash: (bytes: [UInt8], stamp: UInt64)] = [:]
        var bytes = 0
        var clock: UInt64 = 0
    }
    private let state = Mutex(State())
    let limit: Int

    init(limit: Int = 32 * 1024 * 1024) { self.limit = limit }

    func get(_ hash: Hash) -> [UInt8]? {
        state.withLock { s in
            guard var e = s.entries[hash] else { return nil }
            s.clock += 1
            e.stamp = s.clock
            s.entries[hash] = e
            return e.bytes
        }
    }

    func contains(_ hash: Hash) -> Bool { state.withLock { $0.entries[hash] != nil } }

    func put(_ hash: Hash, _ bytes: [UInt8]) {
        state.withLock { s in
            s.clock += 1
            if let old = s.entries.updateValue((bytes, s.clock), forKey: hash) { s.bytes -= old.bytes.count }
            s.bytes += bytes.count
            // Evict the oldest tenth at once: a scan per eviction would make every put O(n).
            if s.bytes > limit {
                let sorted = s.entries.sorted { $0.value.stamp < $1.value.stamp }
                for (h, e) in sorted.prefix(max(1, sorted.count / 10)) {
                    s.entries[h] = nil
                    s.bytes -= e.bytes.count
                }
            }
        }
    }
}

/// Everything file contents need from the volume: the store, the keys, the chunker, the cache.
final class ContentContext: Sendable {
    let store: any Store
    let reader: ObjectReader
    let secrets: Secrets
    let chunker: Chunker
    let cache = ChunkCache()

    init(store: any Store, secrets: Secrets) {
        self.store = store
        self.reader = ObjectReader(store: store)
        self.secrets = secrets
        self.chunker = Chunker(secrets: secrets)
    }

    /// A chunk's plaintext (the object's data part, decrypted).
    func chunk(_ link: HashAndKey) throws(FSError) -> [UInt8] {
        if let bytes = cache.get(link.hash) { return bytes }
        let object = try reader.object(link)
        guard object.hashCount == 0 else {
            Log.error("chunk \(link.hash.hex) has a hash list; not a chunk")
            throw .io
        }
        let bytes = Array(object.data)
        cache.put(link.hash, bytes)
        return bytes
    }

    /// Seals and stores one chunk; returns its link.
    func storeChunk(_ plaintext: UnsafeRawBufferPointer) throws(FSError) -> HashAndKey {
        var bytes = [UInt8](repeating: 0, count: 4 + plaintext.count)
        bytes.withUnsafeMutableBytes { dst in
            UnsafeMutableRawBufferPointer(rebasing: dst[4...]).copyMemory(from: plaintext)
        }
        let plain = try! Object(bytes: bytes)
        let (sealed, link) = secrets.seal(plain)
        do { try store.put(link.hash, sealed) } catch { throw Volume.map(error) }
        return link
    }
}
