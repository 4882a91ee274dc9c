import Glibc
import Synchronization

/// Object files a folder store keeps open for range reads. A random 4 KiB read of a file reads one
/// block of a chunk; opening and closing the chunk's file around it (a path walk of seven names)
/// cost about as much as the read. Objects never change once written, so an open file stays right;
/// one that is deleted (garbage collection) or rewritten (a damaged copy replaced) is forgotten.
final class OpenObjectFiles: Sendable {
    /// An open file; closed when the last reader and the cache have let go of it, so that
    /// evicting it never closes a descriptor a read is still using.
    final class File: Sendable {
        let fd: Int32
        init(fd: Int32) { self.fd = fd }
        deinit { close(fd) }
    }

    private let files: Mutex<RecentlyUsed<Hash, File>>

    init(capacity: Int = 128) { files = Mutex(RecentlyUsed(limit: capacity)) }

    func get(_ hash: Hash) -> File? { files.withLock { $0.get(hash) } }

    func put(_ hash: Hash, _ file: File) { files.withLock { $0.insert(hash, file) } }

    func forget(_ hash: Hash) { files.withLock { $0.remove(hash) } }
}
