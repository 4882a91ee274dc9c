import Glibc

/// A buffer per thread, kept between calls and freed when the thread ends, so that a request
/// needing a large buffer (a read's reply; the sealed bytes of a read) allocates nothing: a fresh
/// 1 MiB allocation is an mmap, and faulting its pages in cost more than the read's decryption.
/// One instance per use, since a thread may hold several buffers at once.
public final class ThreadBuffer: Sendable {
    private let key: pthread_key_t
    private static let header = 64

    public init() {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        self.key = key
    }

    /// At least `size` bytes (at least 128 KiB), valid on this thread until its next call.
    public func get(_ size: Int) -> UnsafeMutableRawPointer {
        if let block = pthread_getspecific(key) {
            if block.load(as: Int.self) >= size { return block + Self.header }
            free(block)
        }
        let capacity = (max(size, 128 * 1024) + 4095) & ~4095
        guard let block = malloc(capacity + Self.header) else { fatalError("out of memory") }
        block.storeBytes(of: capacity, as: Int.self)
        pthread_setspecific(key, block)
        return block + Self.header
    }
}
