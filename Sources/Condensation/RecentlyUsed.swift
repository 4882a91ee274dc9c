/// Values by key, most recently used kept, bounded by a total cost (bytes, or a count). Not
/// thread-safe: callers keep it under their own lock (the chunk cache shards it).
///
/// Past the bound it drops the oldest quarter at once: dropping one entry at a time would scan
/// every entry at every insertion.
public struct RecentlyUsed<Key: Hashable, Value> {
    private var entries: [Key: (value: Value, cost: Int, stamp: UInt64)] = [:]
    private var clock: UInt64 = 0
    public private(set) var cost = 0
    public let limit: Int

    public init(limit: Int) { self.limit = limit }

    public var count: Int { entries.count }

    public func contains(_ key: Key) -> Bool { entries[key] != nil }

    /// The value, marked as just used.
    public mutating func get(_ key: Key) -> Value? {
        guard entries[key] != nil else { return nil }
        clock += 1
        entries[key]!.stamp = clock
        return entries[key]!.value
    }

    public mutating func insert(_ key: Key, _ value: Value, cost: Int = 1) {
        clock += 1
        if let old = entries.updateValue((value, cost, clock), forKey: key) { self.cost -= old.cost }
        self.cost += cost
        guard self.cost > limit else { return }
        let oldest = entries.sorted { $0.value.stamp < $1.value.stamp }
        for (k, e) in oldest.prefix(max(1, oldest.count / 4)) {
            entries[k] = nil
            self.cost -= e.cost
        }
    }

    public mutating func remove(_ key: Key) {
        if let old = entries.removeValue(forKey: key) { cost -= old.cost }
    }
}

extension RecentlyUsed: Sendable where Key: Sendable, Value: Sendable {}
