import Condensation
import NIOCore
import Synchronization

/// Long polls waiting for a box to change, and the in-process notification that wakes them.
///
/// The server notifies after every request that added to a box (an add, or a modify's additions).
/// Writers outside this process (another server on the same folder, a local tool) are not seen
/// here: held polls also look again every `recheckInterval`, so they notice those within seconds.
final class BoxWatchers: Sendable {
    struct Key: Hashable, Sendable {
        let account: Hash
        let box: BoxLabel
    }

    /// One held request. `wake` runs on the request's event loop.
    final class Waiter: Sendable {
        let eventLoop: any EventLoop
        let wake: @Sendable () -> Void

        init(eventLoop: any EventLoop, wake: @escaping @Sendable () -> Void) {
            self.eventLoop = eventLoop
            self.wake = wake
        }
    }

    private let waiters = Mutex<[Key: [ObjectIdentifier: Waiter]]>([:])

    func register(_ key: Key, _ waiter: Waiter) {
        waiters.withLock { $0[key, default: [:]][ObjectIdentifier(waiter)] = waiter }
    }

    func unregister(_ key: Key, _ waiter: Waiter) {
        waiters.withLock { all in
            all[key]?[ObjectIdentifier(waiter)] = nil
            if all[key]?.isEmpty == true { all[key] = nil }
        }
    }

    /// Wakes every poll held on that box.
    func notify(_ account: Hash, _ box: BoxLabel) {
        let woken = waiters.withLock { Array(($0[Key(account: account, box: box)] ?? [:]).values) }
        for w in woken { w.eventLoop.execute(w.wake) }
    }

    /// Wakes every held poll (shutdown: they answer with what their box holds now).
    func notifyAll() {
        let woken = waiters.withLock { $0.values.flatMap(\.values) }
        for w in woken { w.eventLoop.execute(w.wake) }
    }

    var count: Int { waiters.withLock { $0.values.reduce(0) { $0 + $1.count } } }
}
