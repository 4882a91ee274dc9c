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

    private struct State {
        var files: [Hash: (file: File, stamp: UInt64)] = [:]
        var clock: UInt64 = 0
    }
    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int = 128) { self.capacity = capacity }

    func get(_ hash: Hash) -> File? {
        state.withLock { s in
            guard s.files[hash] != nil else { return nil }
            s.clock += 1
            s.files[hash]!.stamp = s.clock
            return s.files[hash]!.file
        }
    }

    func put(_ hash: Hash, _ file: File) {
        state.withLock { s in
            s.clock += 1
            s.files[hash] = (file, s.clock)
            if s.files.count > capacity {
                // Let go of the oldest quarter at once (a scan per insertion would be O(n) each).
                for (h, _) in s.files.sorted(by: { $0.value.stamp < $1.value.stamp }).prefix(capacity / 4) {
                    s.files[h] = nil
                }
            }
        }
    }

    func forget(_ hash: Hash) { _ = state.withLock { $0.files.removeValue(forKey: hash) } }
}
