import Glibc

/// A plain mutex around the volume's object graph. The graph is classes (not Sendable values), and
/// operations hold the lock for microseconds: `Mutex<State>` would make every access a closure
/// with `sending` constraints for no gain.
final class Lock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()

    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }

    /// Waits for `condition` (the lock is released while waiting); call with the lock held.
    func wait(_ condition: Condition) { pthread_cond_wait(&condition.cond, &mutex) }

    @inline(__always)
    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

/// A condition to wait for under a `Lock`.
final class Condition: @unchecked Sendable {
    fileprivate var cond = pthread_cond_t()

    init() { pthread_cond_init(&cond, nil) }
    deinit { pthread_cond_destroy(&cond) }

    func broadcast() { pthread_cond_broadcast(&cond) }
}
