import Synchronization

/// A store in memory: for tests, and as a staging area.
public final class MemoryStore: Store {
    public let url: String
    private struct State {
        var objects: [Hash: Object] = [:]
        var boxes: [BoxChange.Key: Set<Hash>] = [:]
    }
    private let state = Mutex(State())

    public init(url: String = "memory:") { self.url = url }

    public func get(_ hash: Hash) throws(StoreError) -> Object? { state.withLock { $0.objects[hash] } }

    public func put(_ hash: Hash, _ object: Object) throws(StoreError) {
        state.withLock { $0.objects[hash] = object }
    }

    public func book(_ hash: Hash) throws(StoreError) -> Bool { state.withLock { $0.objects[hash] != nil } }

    public func list(_ account: Hash, _ box: BoxLabel) throws(StoreError) -> [Hash] {
        state.withLock { Array($0.boxes[.init(account, box)] ?? []).sorted() }
    }

    public func add(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) {
        state.withLock { _ = $0.boxes[.init(account, box), default: []].insert(hash) }
    }

    public func remove(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) {
        state.withLock { _ = $0.boxes[.init(account, box)]?.remove(hash) }
    }

    public func modify(_ m: Modifications) throws(StoreError) {
        state.withLock { s in
            for (h, o) in m.puts { s.objects[h] = o }
            for c in m.additions { s.boxes[.init(c.account, c.box), default: []].insert(c.hash) }
            for c in m.removals { s.boxes[.init(c.account, c.box)]?.remove(c.hash) }
        }
    }

    public func flush() throws(StoreError) {}

    /// Every object hash held (for tests and garbage collection checks).
    public var objectHashes: [Hash] { state.withLock { Array($0.objects.keys) } }
}

extension BoxChange {
    struct Key: Hashable {
        let account: Hash
        let box: BoxLabel
        init(_ account: Hash, _ box: BoxLabel) {
            self.account = account
            self.box = box
        }
    }
}
