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

    /// A quarter of the descriptors the process may open, between 128 and 8192: a 1 GiB file is
    /// about 3,300 chunks, and with 128 open a random read opened and closed a file nearly every
    /// time (an open of a path seven names deep costs about as much as the read).
    init(capacity: Int = OpenObjectFiles.defaultCapacity()) { files = Mutex(RecentlyUsed(limit: capacity)) }

    static func defaultCapacity() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 128 }
        return Int(min(8192, max(128, limit.rlim_cur / 4)))
    }

    /// Raises this process's soft limit on open files to its hard limit (typically 1,024 of 524,288),
    /// as servers do. Call before opening stores: their capacity follows the limit.
    static func raiseLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    func get(_ hash: Hash) -> File? { files.withLock { $0.get(hash) } }

    func put(_ hash: Hash, _ file: File) { files.withLock { $0.insert(hash, file) } }

    func forget(_ hash: Hash) { files.withLock { $0.remove(hash) } }
}
