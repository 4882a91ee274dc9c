import Condensation
import Synchronization

/// The signed requests the server has accepted within the date window, so that a captured request
/// cannot be sent again while its date is still accepted (−`maximumAge`/+`maximumSkew`).
///
/// A request is identified by its actor and its signature. Signatures are RSA-PSS with a random salt,
/// so every signing gives other bytes: a retry signed anew, or two threads of one device sending the
/// same request in the same millisecond, are different requests; the same bytes sent again are the
/// same request. (Another valid signature cannot be made from a captured one without the key: the
/// server takes exactly 256 bytes, and a value at or above the modulus does not verify.) An entry is
/// needed only while its date is accepted at all, so entries expire `maximumAge` after their date.
///
/// Memory is bounded: past `capacity` entries the oldest are dropped, and the date of the newest one
/// dropped becomes a floor under which every request is refused. Nothing dropped can then be
/// replayed; under a flood of signed requests the window only narrows (a client whose clock lags
/// by more than the time the cache spans is refused until it signs again with a fresher date).
/// The cache lives in one server process: several instances in front of one store each keep their
/// own, and a restart forgets it.
final class ReplayCache: Sendable {
    struct Entry {
        var key: Hash
        var date: Int64
    }

    private struct State {
        var seen: Set<Hash> = []
        /// Entries in the order they were accepted (dates are nearly in order), from `head` on.
        var order: [Entry] = []
        var head = 0
        /// Requests dated at or before this were dropped from the cache: they are refused.
        var floor = Int64.min
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int = 1 << 20) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// True the first time a request (its actor and verified signature, dated `date` in milliseconds)
    /// is seen within the window; false for a replay, or a request older than what the cache still
    /// covers. `now` is the current time in milliseconds.
    func firstUse(actor: Hash, signature: [UInt8], date: Int64, now: Int64) -> Bool {
        let key = Hash.of(actor.bytes + signature)
        return state.withLock { s in
            expire(&s, before: now - HTTPSigning.maximumAge)
            guard date > s.floor, !s.seen.contains(key) else { return false }
            while s.seen.count >= capacity {
                let dropped = s.order[s.head]
                s.head += 1
                s.seen.remove(dropped.key)
                s.floor = max(s.floor, dropped.date)
            }
            s.seen.insert(key)
            s.order.append(Entry(key: key, date: date))
            compact(&s)
            return date > s.floor
        }
    }

    /// How many requests are remembered (for tests).
    var count: Int { state.withLock { $0.seen.count } }

    /// Drops the entries whose date is before `cutoff` from the front. (An entry accepted out of date
    /// order waits behind newer ones until they expire: it is kept a little longer, never less.)
    private func expire(_ s: inout State, before cutoff: Int64) {
        while s.head < s.order.count, s.order[s.head].date < cutoff {
            s.seen.remove(s.order[s.head].key)
            s.head += 1
        }
        compact(&s)
    }

    /// Reclaims the dropped front of `order` once it is half of the array.
    private func compact(_ s: inout State) {
        if s.head > 1024, s.head * 2 > s.order.count {
            s.order.removeFirst(s.head)
            s.head = 0
        }
    }
}
