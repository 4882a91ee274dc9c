import Glibc

/// The three boxes of an account. Each holds hashes of envelope objects.
public enum BoxLabel: String, CaseIterable, Sendable {
    case `public`, `private`, messages
}

/// Why a store operation failed. A missing object is not an error (`get` returns nil).
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed on a folder store.
    case io(path: String, errno: Int32)
    /// The store holds bytes under a name they do not hash to.
    case corrupt(Hash)
    /// A remote store could not be reached (after retries).
    case unreachable(String)
    /// A remote store answered with an unexpected status.
    case refused(status: Int, String)
    /// The store's disk is full.
    case noSpace(String)
    /// The store is read-only.
    case readOnly(String)

    public var description: String {
        switch self {
        case .io(let path, let e): return "\(path): \(String(cString: strerror(e)))"
        case .corrupt(let h): return "object \(h.hex) is corrupt (its bytes do not match its hash)"
        case .unreachable(let what): return "store unreachable: \(what)"
        case .refused(let status, let what): return "store refused (\(status)): \(what)"
        case .noSpace(let path): return "no space left on the store's disk (\(path))"
        case .readOnly(let path): return "the store is read-only (\(path))"
        }
    }
}

/// A Condensation store: content-addressed objects plus per-account boxes.
/// Synchronous by design: the local folder store is the hot path of every mount, and remote stores
/// are driven from the syncer's own threads.
public protocol Store: AnyObject, Sendable {
    /// The store's URL (`file:///path`, `http://host:port`).
    var url: String { get }
    /// The object, checked against its hash; nil if the store does not have it.
    func get(_ hash: Hash) throws(StoreError) -> Object?
    func put(_ hash: Hash, _ object: Object) throws(StoreError)
    /// Bytes `offset..<offset + count` of an object, **not** checked against its hash: for callers
    /// that check them another way (sealed blocks carry their own tags). Fewer bytes if the object
    /// is shorter; nil if the store does not have it. The default gets (and checks) the whole object.
    func read(_ hash: Hash, offset: Int, count: Int) throws(StoreError) -> [UInt8]?
    /// As `read`, into `buffer` (its count is the count asked for): the count read, fewer if the
    /// object is shorter; nil if the store does not have it. The default copies from `read`.
    func read(_ hash: Hash, offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(StoreError) -> Int?
    /// A hint that `read(hash, offset:, count:)` comes soon: a folder store has the kernel start
    /// reading the bytes from disk now. The default does nothing.
    func willRead(_ hash: Hash, offset: Int, count: Int)
    /// True (and the object's timestamp refreshed) if the store has the object.
    func book(_ hash: Hash) throws(StoreError) -> Bool
    func list(_ account: Hash, _ box: BoxLabel) throws(StoreError) -> [Hash]
    /// Lists a box; stores that can watch (HTTP) wait up to `milliseconds` for it to be non-empty
    /// or to change. The default lists at once.
    func list(_ account: Hash, _ box: BoxLabel, watch milliseconds: Int) throws(StoreError) -> [Hash]
    func add(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError)
    func remove(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError)
    /// Puts all objects, makes them durable, then applies the additions, then the removals.
    func modify(_ modifications: Modifications) throws(StoreError)
    /// Makes every put so far durable (one sync for a batch, not one per object).
    func flush() throws(StoreError)
}

extension Store {
    public func read(_ hash: Hash, offset: Int, count: Int) throws(StoreError) -> [UInt8]? {
        guard let object = try get(hash) else { return nil }
        let bytes = object.bytes
        let start = min(max(0, offset), bytes.count)
        return Array(bytes[start..<min(bytes.count, start + max(0, count))])
    }

    public func read(_ hash: Hash, offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(StoreError) -> Int? {
        guard let bytes = try read(hash, offset: offset, count: buffer.count) else { return nil }
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
        return bytes.count
    }

    public func willRead(_ hash: Hash, offset: Int, count: Int) {}

    public func list(_ account: Hash, _ box: BoxLabel, watch milliseconds: Int) throws(StoreError) -> [Hash] {
        try list(account, box)
    }

    public func put(_ object: Object) throws(StoreError) -> Hash {
        let h = object.calculateHash()
        try put(h, object)
        return h
    }
}

/// One box entry to add or remove.
public struct BoxChange: Hashable, Sendable {
    public let account: Hash
    public let box: BoxLabel
    public let hash: Hash

    public init(_ account: Hash, _ box: BoxLabel, _ hash: Hash) {
        self.account = account
        self.box = box
        self.hash = hash
    }
}

/// A batch of store changes, applied as `modify` does: puts, then additions, then removals.
public struct Modifications: Sendable {
    public var puts: [(Hash, Object)] = []
    public var additions: [BoxChange] = []
    public var removals: [BoxChange] = []

    public init() {}

    public mutating func put(_ object: Object) -> Hash {
        let h = object.calculateHash()
        puts.append((h, object))
        return h
    }

    public var isEmpty: Bool { puts.isEmpty && additions.isEmpty && removals.isEmpty }

    /// The modifications record, as sent in an HTTP `POST /accounts` body:
    /// `put → {hash → bytes}, add → {account → {box → {hash…}}}, remove → (like add)`.
    public var record: Record {
        var record = Record()
        var put = Record(text: "put")
        for (h, o) in puts { put.add(Record(h.bytes, children: [Record(o.bytes)])) }
        record.add(put)
        record.add(Self.changesRecord("add", additions))
        record.add(Self.changesRecord("remove", removals))
        return record
    }

    private static func changesRecord(_ label: String, _ changes: [BoxChange]) -> Record {
        var record = Record(text: label)
        var accounts: [Hash] = []
        var byAccount: [Hash: [BoxLabel: [Hash]]] = [:]
        for c in changes {
            if byAccount[c.account] == nil { accounts.append(c.account) }
            byAccount[c.account, default: [:]][c.box, default: []].append(c.hash)
        }
        for account in accounts {
            var a = Record(account.bytes)
            for box in BoxLabel.allCases {
                guard let hashes = byAccount[account]?[box] else { continue }
                a.add(Record(text: box.rawValue, children: hashes.map { Record($0.bytes) }))
            }
            record.add(a)
        }
        return record
    }

    public enum Invalid: Error, Equatable, Sendable {
        case badObject(Hash)
        case badHash
        case badBox(String)
    }

    /// Reads a modifications record; every put is checked against its hash.
    public init(record: Record) throws(Invalid) {
        for entry in record.child("put")?.children ?? [] {
            guard let h = Hash(bytes: entry.bytes) else { throw .badHash }
            guard let bytes = entry.firstChild?.bytes, let o = try? Object(bytes: Array(bytes)),
                  o.calculateHash() == h else { throw .badObject(h) }
            puts.append((h, o))
        }
        additions = try Self.changes(record.child("add"))
        removals = try Self.changes(record.child("remove"))
    }

    private static func changes(_ record: Record?) throws(Invalid) -> [BoxChange] {
        var out: [BoxChange] = []
        for a in record?.children ?? [] {
            guard let account = Hash(bytes: a.bytes) else { throw .badHash }
            for b in a.children {
                guard let box = BoxLabel(rawValue: b.text) else { throw .badBox(b.text) }
                for e in b.children {
                    guard let h = Hash(bytes: e.bytes) else { throw .badHash }
                    out.append(BoxChange(account, box, h))
                }
            }
        }
        return out
    }
}
