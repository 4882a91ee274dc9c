import Synchronization

/// One remote reached through several URLs (server instances on one bucket, say): requests go to the
/// current store, and when it is unreachable (or answers 5xx after its own retries) the same request
/// goes to the next, which becomes the current one. Every request of the protocol is idempotent, so
/// repeating one on another instance is safe.
///
/// `url` is the first store's (it is what messages name as the sender's store).
public final class FailoverStore: Store {
    public let stores: [any Store]
    private let current = Atomic<Int>(0)

    public init(_ stores: [any Store]) {
        precondition(!stores.isEmpty, "a failover store needs at least one store")
        self.stores = stores
    }

    public var url: String { stores[0].url }

    /// The store requests go to now.
    public var active: any Store { stores[current.load(ordering: .relaxed) % stores.count] }

    /// Runs `body` on the current store, then on each other one in turn while the failure is one that
    /// another instance may not have.
    private func attempt<T>(_ body: (any Store) throws(StoreError) -> T) throws(StoreError) -> T {
        let start = current.load(ordering: .relaxed)
        var last: StoreError?
        for offset in 0..<stores.count {
            let index = (start + offset) % stores.count
            do {
                let result = try body(stores[index])
                if offset > 0 {
                    current.store(index, ordering: .relaxed)
                    Log.warning("remote: now using \(stores[index].url)")
                }
                return result
            } catch {
                guard Self.worthAnotherStore(error) else { throw error }
                if offset + 1 < stores.count { Log.warning("remote \(stores[index].url) failed (\(error)); trying the next") }
                last = error
            }
        }
        throw last!
    }

    static func worthAnotherStore(_ error: StoreError) -> Bool {
        switch error {
        case .unreachable: return true
        case .refused(let status, _): return status >= 500
        default: return false
        }
    }

    public func get(_ hash: Hash) throws(StoreError) -> Object? { try attempt { s throws(StoreError) in try s.get(hash) } }
    public func put(_ hash: Hash, _ object: Object) throws(StoreError) { try attempt { s throws(StoreError) in try s.put(hash, object) } }
    public func book(_ hash: Hash) throws(StoreError) -> Bool { try attempt { s throws(StoreError) in try s.book(hash) } }
    public func list(_ account: Hash, _ box: BoxLabel) throws(StoreError) -> [Hash] {
        try attempt { s throws(StoreError) in try s.list(account, box) }
    }
    public func list(_ account: Hash, _ box: BoxLabel, watch milliseconds: Int) throws(StoreError) -> [Hash] {
        try attempt { s throws(StoreError) in try s.list(account, box, watch: milliseconds) }
    }
    public func add(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) {
        try attempt { s throws(StoreError) in try s.add(account, box, hash) }
    }
    public func remove(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) {
        try attempt { s throws(StoreError) in try s.remove(account, box, hash) }
    }
    public func modify(_ modifications: Modifications) throws(StoreError) {
        try attempt { s throws(StoreError) in try s.modify(modifications) }
    }
    public func flush() throws(StoreError) { try attempt { s throws(StoreError) in try s.flush() } }
}
