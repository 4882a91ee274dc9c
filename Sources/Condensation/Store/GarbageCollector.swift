import Glibc
import Synchronization

/// A store that garbage collection can walk: a folder store or an S3 store.
public protocol CollectableStore: Store {
    /// Accounts that have boxes.
    func accounts() throws(StoreError) -> [Hash]
    /// Every object in the store.
    func allObjects() throws(StoreError) -> [Hash]
    /// The first `count` bytes of an object (fewer if it is shorter); nil if absent.
    func objectPrefix(_ hash: Hash, count: Int) throws(StoreError) -> [UInt8]?
    /// Size and time of last put or book (seconds since the epoch); nil if absent.
    func objectInfo(_ hash: Hash) throws(StoreError) -> (size: Int, modified: Int)?
    func delete(_ hash: Hash) throws(StoreError)
}

extension FolderStore: CollectableStore {
    public func objectPrefix(_ hash: Hash, count: Int) throws(StoreError) -> [UInt8]? {
        try FileSystem.readPrefix(objectPath(hash), count: count)
    }

    public func objectInfo(_ hash: Hash) throws(StoreError) -> (size: Int, modified: Int)? {
        FileSystem.sizeAndModificationTime(objectPath(hash)).map { ($0.size, $0.modified) }
    }
}

extension S3Store: CollectableStore {}

/// Garbage collection of a store: mark what the boxes reach, sweep what they do not.
///
/// The protocol lets a store delete any object that is neither reachable from a box entry nor recently
/// put or booked. "Recently" is the grace period: a writer puts a tree's objects first and adds the
/// box entry that names it last (a transfer books what is already there, which refreshes the time), so
/// an object that is unreachable *now* may be reachable a moment later. Sweeping only objects older
/// than the grace period keeps every tree that a writer is still assembling, without any lock between
/// the collector and the writers. The default hour is the protocol's minimum for general-purpose stores.
///
/// Both phases are iterative (a tree's depth is chosen by whoever wrote it) and hold one `Hash` per
/// reachable object in memory, never the objects themselves.
public enum GarbageCollector {
    /// One hour, in seconds.
    public static let defaultGracePeriod = 3600

    /// What is reachable from the boxes of a folder store.
    public struct Marking: Sendable {
        /// Every object reachable from a box entry (the envelopes themselves included) and present.
        public var reachable: Set<Hash> = []
        /// Named by a box entry or a hash list, but not in the store: a tree that is incomplete here.
        public var missing: Set<Hash> = []
        /// Present but damaged: a header or hash list that runs past the end of the file, or (when
        /// marking with `verify`) bytes that do not hash to the object's name. As much of their hash
        /// lists as could be read was still followed, so that a damaged object does not cost its
        /// subtree.
        public var corrupt: Set<Hash> = []
        /// Box entries read, over every account and box.
        public var boxEntries = 0

        public init() {}
    }

    public enum Phase: Sendable { case marking, sweeping }

    /// Handed to the progress callback every `progressInterval` objects and at the end of each phase.
    public struct Progress: Sendable {
        public var phase: Phase
        /// Objects found reachable so far.
        public var marked: Int
        /// Objects of the store looked at by the sweep so far.
        public var examined: Int
        /// Objects deleted (or, in a dry run, that would be) so far.
        public var deleted: Int
    }

    public static let progressInterval = 1024

    /// The outcome of a collection.
    public struct Report: Sendable, Equatable {
        /// Objects reachable from the boxes.
        public var reachable = 0
        /// Objects in the store before the sweep.
        public var examined = 0
        /// Unreachable objects older than the grace period: deleted, or in a dry run, to be deleted.
        public var deleted = 0
        /// Their total size.
        public var bytesFreed = 0
        /// Unreachable objects kept because they were put or booked within the grace period.
        public var keptRecent = 0
        /// Reachable but absent (sorted); see `Marking.missing`.
        public var missing: [Hash] = []
        /// Reachable but corrupt (sorted); see `Marking.corrupt`.
        public var corrupt: [Hash] = []
        public var dryRun = false

        public init() {}
    }

    /// Marks every object reachable from every box entry of every account: the envelopes, and
    /// recursively their hash lists. Hash lists are in the clear, so no key is needed. Each account's
    /// own object (the actor's public key object, whose hash is the account id) counts as reachable
    /// too when present: stores look it up to check the actor's signatures.
    ///
    /// By default only each object's header and hash list are read: garbage collection needs the
    /// links, not the data, and a store is mostly file chunks without links. With `verify`, every
    /// object is read whole and checked against its hash, as `fsck` wants; objects that fail are in
    /// `corrupt`. Either way a damaged object's hash list is followed as far as it can be read.
    public static func mark(_ store: some CollectableStore, verify: Bool = false,
                            progress: ((Progress) -> Void)? = nil) throws(StoreError) -> Marking {
        var marking = Marking()
        var seen = Set<Hash>()
        var stack: [Hash] = []
        var reported = 0
        func report() { progress?(Progress(phase: .marking, marked: marking.reachable.count, examined: 0, deleted: 0)) }

        for account in try store.accounts() {
            if !seen.contains(account), try store.objectInfo(account) != nil, seen.insert(account).inserted { stack.append(account) }
            for box in BoxLabel.allCases {
                for entry in try store.list(account, box) {
                    marking.boxEntries += 1
                    if seen.insert(entry).inserted { stack.append(entry) }
                }
            }
        }

        // In batches from the top of the stack, each batch's objects read `width` at a time (each read
        // is a round trip on S3); what they link to is then handled in order, as one at a time would.
        let width = readWidth(store)
        let batchSize = width == 1 ? 1 : 16 * width
        while !stack.isEmpty {
            let batch = Array(stack.suffix(batchSize).reversed())
            stack.removeLast(batch.count)
            let results = try readAll(batch, width: width) { hash throws(StoreError) in try links(of: hash, in: store, verify: verify) }
            for (hash, links) in zip(batch, results) {
                let children: [Hash]
                switch links {
                case .missing:
                    marking.missing.insert(hash)
                    continue
                case .corrupt(let readable):
                    marking.corrupt.insert(hash)
                    children = readable
                case .present(let hashes):
                    children = hashes
                }
                marking.reachable.insert(hash)
                for child in children where seen.insert(child).inserted { stack.append(child) }
            }
            if marking.reachable.count / progressInterval > reported {
                reported = marking.reachable.count / progressInterval
                report()
            }
        }
        report()
        return marking
    }

    /// Reads in flight at once: one for a folder store (a local disk gains nothing), eight for S3.
    static func readWidth(_ store: some CollectableStore) -> Int { store is S3Store ? 8 : 1 }

    /// `read` of every hash, `width` at a time; the results in the order of `hashes`.
    private static func readAll<T>(_ hashes: [Hash], width: Int, _ read: @escaping @Sendable (Hash) throws(StoreError) -> T) throws(StoreError) -> [T] {
        if width == 1 || hashes.count == 1 {
            var out: [T] = []
            out.reserveCapacity(hashes.count)
            for h in hashes { out.append(try read(h)) }
            return out
        }
        let slots = ResultSlots<T>(hashes.count)
        try parallelForEach(hashes.count, width: width) { i throws(StoreError) in slots.set(i, try read(hashes[i])) }
        return slots.values.map { $0! }
    }

    private enum Links {
        case missing
        /// The hashes that could still be read.
        case corrupt([Hash])
        case present([Hash])
    }

    /// The hash list of an object in the store.
    private static func links(of hash: Hash, in store: some CollectableStore, verify: Bool) throws(StoreError) -> Links {
        guard verify else { return try headerLinks(hash, store) }
        do {
            guard let object = try store.get(hash) else { return .missing }
            return .present(object.hashes)
        } catch .corrupt {
        } catch .io(_, EFBIG) {
            // Larger than a store object may be: damaged too.
        }
        switch try headerLinks(hash, store) {
        case .missing: return .missing
        case .corrupt(let hashes), .present(let hashes): return .corrupt(hashes)
        }
    }

    /// The hash list from the start of the file only, without reading or checking the data.
    private static func headerLinks(_ hash: Hash, _ store: some CollectableStore) throws(StoreError) -> Links {
        // One read covers the header and up to 127 hashes; a longer list takes a second read.
        guard var head = try store.objectPrefix(hash, count: 4096) else { return .missing }
        guard head.count >= 4 else { return .corrupt([]) }
        let count = Int(head[0]) << 24 | Int(head[1]) << 16 | Int(head[2]) << 8 | Int(head[3])
        let listEnd = 4 + 32 * count
        if listEnd > head.count && head.count == 4096 && listEnd <= FolderStore.maximumObjectSize {
            guard let whole = try store.objectPrefix(hash, count: listEnd) else { return .missing }
            head = whole
        }
        // Cut short: keep what can be read. Keeping too much is safe, deleting too much is not.
        let complete = min(count, (head.count - 4) / 32)
        let hashes = head.withUnsafeBytes { raw in
            (0..<complete).map { Hash(raw: UnsafeRawBufferPointer(rebasing: raw[(4 + 32 * $0)..<(36 + 32 * $0)])) }
        }
        return complete == count ? .present(hashes) : .corrupt(hashes)
    }

    /// Deletes the objects of `store` that no box entry reaches and that were not put or booked within
    /// `gracePeriod` seconds before `now`. With `dryRun`, deletes nothing and reports what it would
    /// delete.
    ///
    /// The modification time is read right before each deletion, so an object booked during the mark
    /// phase survives. Run it while writers are active if need be: what they put or book is recent.
    public static func collect(_ store: some CollectableStore, gracePeriod: Int = defaultGracePeriod, dryRun: Bool = false,
                               now: Int? = nil, progress: ((Progress) -> Void)? = nil) throws(StoreError) -> Report {
        let marking = try mark(store, progress: progress)
        let now = now ?? Int(time(nil))
        var report = Report()
        report.dryRun = dryRun
        report.reachable = marking.reachable.count
        report.missing = marking.missing.sorted()
        report.corrupt = marking.corrupt.sorted()

        func tell() {
            progress?(Progress(phase: .sweeping, marked: report.reachable, examined: report.examined,
                               deleted: report.deleted))
        }
        let all = try store.allObjects()
        let width = readWidth(store)
        var start = 0
        var told = 0
        while start < all.count {
            let batch = Array(all[start..<min(all.count, start + (width == 1 ? 1 : 16 * width))])
            start += batch.count
            report.examined += batch.count
            let unreachable = batch.filter { !marking.reachable.contains($0) }
            // Each time read again right before deciding (an object booked during the mark is recent).
            let infos = try readAll(unreachable, width: width) { hash throws(StoreError) in try store.objectInfo(hash) }
            var doomed: [Hash] = []
            for (hash, info) in zip(unreachable, infos) {
                // Gone since the listing (another collector): nothing to do.
                guard let info else { continue }
                if now - info.modified < gracePeriod {
                    report.keptRecent += 1
                    continue
                }
                doomed.append(hash)
                report.deleted += 1
                report.bytesFreed += info.size
            }
            if !dryRun { _ = try readAll(doomed, width: width) { hash throws(StoreError) in try store.delete(hash) } }
            if report.examined / progressInterval > told {
                told = report.examined / progressInterval
                tell()
            }
        }
        tell()
        return report
    }
}

/// One result per index, filled by several threads (each index by one of them).
private final class ResultSlots<T>: @unchecked Sendable {
    private let lock = Mutex<Void>(())
    private(set) var values: [T?]

    init(_ count: Int) { values = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: T) { lock.withLock { _ in values[index] = value } }
}
