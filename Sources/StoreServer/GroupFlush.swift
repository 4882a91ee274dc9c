import Condensation
import Glibc

/// Makes writes durable with as few `flush` calls as possible (group commit).
///
/// Each request that wrote calls `flush(store)` after its write and returns once a flush that
/// started after that write has finished. While one flush runs (a `syncfs` on a folder store), the
/// requests that finish writing meanwhile wait for it, then share a single next flush: N concurrent
/// puts cost two syncs, not N.
final class GroupFlush: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Tickets handed out: one per completed write that asked for durability.
    private var issued: UInt64 = 0
    /// Every ticket up to this one is durable.
    private var durable: UInt64 = 0
    private var flushing = false

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    func flush(_ store: any Store) throws(StoreError) {
        pthread_mutex_lock(mutex)
        issued += 1
        let ticket = issued
        while durable < ticket {
            if flushing {
                pthread_cond_wait(condition, mutex)
                continue
            }
            // Covers every write that took a ticket so far (each took it after writing).
            let target = issued
            flushing = true
            pthread_mutex_unlock(mutex)
            var failure: StoreError?
            do { try store.flush() } catch { failure = error }
            pthread_mutex_lock(mutex)
            flushing = false
            if failure == nil { durable = max(durable, target) }
            pthread_cond_broadcast(condition)
            if let failure {
                pthread_mutex_unlock(mutex)
                throw failure
            }
        }
        pthread_mutex_unlock(mutex)
    }
}
