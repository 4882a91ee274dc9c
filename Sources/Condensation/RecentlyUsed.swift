/// Values by key, most recently used kept, bounded by a total cost (bytes, or a count). Not
/// thread-safe: callers keep it under their own lock (the chunk cache shards it).
///
/// A list threaded through an array, newest first: `get`, `insert` and eviction are O(1). The first
/// version sorted every entry by age whenever it was over its bound; unspecialised across the module
/// boundary, that sort (tuple metadata looked up under the runtime's lock at every comparison) was
/// a third of a cold sequential read's CPU and serialised the reading threads.
/// `@inlinable` so that callers in other modules get it specialised for their key and value.
public struct RecentlyUsed<Key: Hashable, Value> {
    @usableFromInline struct Slot {
        @usableFromInline var key: Key
        @usableFromInline var value: Value?
        @usableFromInline var cost: Int
        @usableFromInline var newer: Int
        @usableFromInline var older: Int

        @inlinable init(key: Key, value: Value, cost: Int) {
            self.key = key
            self.value = value
            self.cost = cost
            newer = -1
            older = -1
        }
    }

    @usableFromInline var slots: [Slot] = []
    @usableFromInline var index: [Key: Int] = [:]
    @usableFromInline var unused: [Int] = []
    @usableFromInline var newest = -1
    @usableFromInline var oldest = -1
    @usableFromInline var _cost = 0
    public var cost: Int { _cost }
    public let limit: Int

    @inlinable public init(limit: Int) { self.limit = limit }

    @inlinable public var count: Int { index.count }

    @inlinable public func contains(_ key: Key) -> Bool { index[key] != nil }

    /// The value, marked as just used.
    @inlinable public mutating func get(_ key: Key) -> Value? {
        guard let i = index[key] else { return nil }
        moveToFront(i)
        return slots[i].value
    }

    /// Adds or replaces a value, then drops the least recently used until the total cost is
    /// within the limit (the new value too, if it alone is over it).
    @inlinable public mutating func insert(_ key: Key, _ value: Value, cost: Int = 1) {
        if let i = index[key] {
            _cost += cost - slots[i].cost
            slots[i].value = value
            slots[i].cost = cost
            moveToFront(i)
        } else {
            let i: Int
            if let reused = unused.popLast() {
                i = reused
                slots[i] = Slot(key: key, value: value, cost: cost)
            } else {
                i = slots.count
                slots.append(Slot(key: key, value: value, cost: cost))
            }
            index[key] = i
            linkAtFront(i)
            _cost += cost
        }
        while _cost > limit && oldest >= 0 { drop(oldest) }
    }

    @inlinable public mutating func remove(_ key: Key) {
        if let i = index[key] { drop(i) }
    }

    @inlinable mutating func drop(_ i: Int) {
        unlink(i)
        index[slots[i].key] = nil
        _cost -= slots[i].cost
        slots[i].value = nil
        unused.append(i)
    }

    @inlinable mutating func moveToFront(_ i: Int) {
        guard newest != i else { return }
        unlink(i)
        linkAtFront(i)
    }

    @inlinable mutating func linkAtFront(_ i: Int) {
        slots[i].newer = -1
        slots[i].older = newest
        if newest >= 0 { slots[newest].newer = i }
        newest = i
        if oldest < 0 { oldest = i }
    }

    @inlinable mutating func unlink(_ i: Int) {
        let (newer, older) = (slots[i].newer, slots[i].older)
        if newer >= 0 { slots[newer].older = older } else { newest = older }
        if older >= 0 { slots[older].newer = newer } else { oldest = newer }
        slots[i].newer = -1
        slots[i].older = -1
    }
}

extension RecentlyUsed: Sendable where Key: Sendable, Value: Sendable {}
extension RecentlyUsed.Slot: Sendable where Key: Sendable, Value: Sendable {}
