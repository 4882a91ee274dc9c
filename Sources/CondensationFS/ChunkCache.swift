import Condensation
import Dispatch
import Glibc
import Synchronization

/// A piece of a chunk as the cache holds it: 16 KiB of its plaintext (`ContentContext.pieceSize`),
/// or a whole chunk of the first (AES-CTR) format.
struct PieceKey: Hashable, Sendable {
    let hash: Hash
    let index: UInt32
    static let whole = UInt32.max

    init(_ hash: Hash, piece: Int) {
        self.hash = hash
        self.index = UInt32(piece)
    }

    init(whole hash: Hash) {
        self.hash = hash
        self.index = Self.whole
    }
}

/// Decrypted chunk pieces, most recently used kept, bounded in bytes. Reads of neighbouring ranges
/// hit the same pieces many times (the kernel reads 128 KiB at a time).
///
/// Sharded by hash: the threads answering the kernel and the read-ahead all go through the cache,
/// and with one lock a profile of sequential reads spent a tenth of its time waiting for it.
final class ChunkCache: Sendable {
    private static let shardCount = 16
    private final class Shard: Sendable {
        let pieces: Mutex<RecentlyUsed<PieceKey, ArraySlice<UInt8>>>
        init(limit: Int) { pieces = Mutex(RecentlyUsed(limit: limit)) }
    }
    private let shards: [Shard]
    let limit: Int

    init(limit: Int = 32 * 1024 * 1024) {
        self.limit = limit
        shards = (0..<Self.shardCount).map { _ in Shard(limit: limit / Self.shardCount) }
    }

    private func shard(_ key: PieceKey) -> Shard {
        shards[Int((key.hash.w3 &+ UInt64(key.index)) % UInt64(Self.shardCount))]
    }

    func get(_ key: PieceKey) -> ArraySlice<UInt8>? { shard(key).pieces.withLock { $0.get(key) } }

    func contains(_ key: PieceKey) -> Bool { shard(key).pieces.withLock { $0.contains(key) } }

    func put(_ key: PieceKey, _ bytes: ArraySlice<UInt8>) {
        shard(key).pieces.withLock { $0.insert(key, bytes, cost: bytes.count) }
    }
}

/// Chunk pieces being fetched, so that a read that needs a piece the read-ahead is already
/// fetching waits for it instead of reading, checking and decrypting it a second time.
final class ChunkLoads: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var done = pthread_cond_t()
    private var loading: Set<PieceKey> = []

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&done, nil)
    }

    deinit {
        pthread_cond_destroy(&done)
        pthread_mutex_destroy(&mutex)
    }

    /// Claims the keys no other thread is loading (never waits, so two threads claiming
    /// overlapping runs cannot deadlock); returns which of `keys` the caller now loads.
    func claim(_ keys: [PieceKey]) -> [Bool] {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return keys.map { loading.insert($0).inserted }
    }

    /// Waits until no thread is loading `key`.
    func wait(_ key: PieceKey) {
        pthread_mutex_lock(&mutex)
        while loading.contains(key) { pthread_cond_wait(&done, &mutex) }
        pthread_mutex_unlock(&mutex)
    }

    func isLoading(_ key: PieceKey) -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return loading.contains(key)
    }

    func end(_ keys: some Sequence<PieceKey>) {
        pthread_mutex_lock(&mutex)
        for k in keys { loading.remove(k) }
        pthread_cond_broadcast(&done)
        pthread_mutex_unlock(&mutex)
    }
}
