import Condensation
import Glibc

/// One version of the filesystem (one commit):
///
///     revision → <ms>     device → <actor id bytes>
///     parents → { <key> #version … }        (none for the first, two or more after a merge)
///     root → { fields of the root directory's entry, d → <key> #directory }
///     links → <key> #link-table             (hard-linked files; optional)
///     changes → { added → n, changed → n, removed → n, bytes → n }
public struct Version: Sendable {
    public let link: HashAndKey
    public let revision: Int64
    public let device: Hash?
    public let parents: [HashAndKey]
    let rootEntry: StoredEntry
    let links: HashAndKey?
    public let added, changed, removed: Int
    public let bytes: UInt64

    init(link: HashAndKey, record: Record) throws(FSError) {
        self.link = link
        revision = record.integer("revision") ?? 0
        device = record.value("device").flatMap { Hash(bytes: $0.bytes) }
        var parents: [HashAndKey] = []
        for p in record.child("parents")?.children ?? [] {
            guard let l = HashAndKey(record: p) else { throw Self.malformed(link, "a bad parent link") }
            parents.append(l)
        }
        self.parents = parents
        guard let rootRecord = record.child("root"), let root = StoredEntry(record: rootRecord),
              root.metadata.isDirectory else { throw Self.malformed(link, "no root directory") }
        rootEntry = root
        links = record.link("links")
        let changes = record.child("changes")
        added = Int(changes?.unsigned("added") ?? 0)
        changed = Int(changes?.unsigned("changed") ?? 0)
        removed = Int(changes?.unsigned("removed") ?? 0)
        bytes = changes?.unsigned("bytes") ?? 0
    }

    static func record(revision: Int64, device: Hash, parents: [HashAndKey], root: StoredEntry,
                       links: HashAndKey?, summary: ChangeSummary) -> Record {
        var r = Record()
        r.add("revision", integer: revision)
        r.add("device", bytes: device.bytes)
        r.add(Record(text: "parents", children: parents.map(\.record)))
        var rootRecord = Record(text: "root")
        root.write(to: &rootRecord)
        r.add(rootRecord)
        if let links { r.add("links", link: links) }
        var changes = Record(text: "changes")
        changes.add("added", unsigned: UInt64(summary.added))
        changes.add("changed", unsigned: UInt64(summary.changed))
        changes.add("removed", unsigned: UInt64(summary.removed))
        changes.add("bytes", unsigned: summary.bytes)
        r.add(changes)
        return r
    }

    static func load(_ link: HashAndKey, reader: ObjectReader) throws(FSError) -> Version {
        try Version(link: link, record: reader.record(link))
    }

    private static func malformed(_ link: HashAndKey, _ why: String) -> FSError {
        Log.error("version \(link.hash.hex) is malformed: \(why)")
        return .io
    }
}

/// The private root, the record a private box envelope opens:
///
///     created → <ms>   client → "cdsfs …"   secret → <32 bytes>   filesystem → <key> #version
///     members → { <actor id> → { store → <url>, status → active|revoked, revision → <ms> } … }
///     contacts → { <name> → { actor, store, status, revision } … }     (see `Contact`)
///
/// Every device of the group writes the same kind of root, encrypted for every active member.
struct PrivateRoot: Sendable {
    static let client = "cdsfs 0.1.0"

    var created: Int64
    var secret: [UInt8]
    var filesystem: HashAndKey
    var members: [Hash: Member] = [:]
    var contacts: [String: Contact] = [:]

    var record: Record {
        var r = Record()
        r.add("created", integer: created)
        r.add("client", text: Self.client)
        r.add("secret", bytes: secret)
        r.add("filesystem", link: filesystem)
        if !members.isEmpty {
            var m = Record(text: "members")
            for actor in members.keys.sorted() {
                let member = members[actor]!
                var node = Record(actor.bytes)
                node.add("store", text: member.store)
                node.add("status", text: member.status.rawValue)
                node.add("revision", integer: member.revision)
                m.add(node)
            }
            r.add(m)
        }
        if let c = Contact.record(contacts) { r.add(c) }
        return r
    }

    init(created: Int64, secret: [UInt8], filesystem: HashAndKey, members: [Hash: Member] = [:]) {
        self.created = created
        self.secret = secret
        self.filesystem = filesystem
        self.members = members
    }

    init?(record: Record) {
        guard let secret = record.bytes("secret"), secret.count == 32,
              let fs = record.link("filesystem") else { return nil }
        self.created = record.integer("created") ?? 0
        self.secret = Array(secret)
        self.filesystem = fs
        for node in record.child("members")?.children ?? [] {
            guard let actor = Hash(bytes: node.bytes),
                  let status = Member.Status(rawValue: node.text("status") ?? "") else { continue }
            members[actor] = Member(store: node.text("store") ?? "", status: status, revision: node.integer("revision") ?? 0)
        }
        contacts = Contact.read(record)
    }

    /// Takes the other root's members where they are newer (forward merge, as Condensation's
    /// private data merges).
    mutating func mergeMembers(_ other: [Hash: Member]) {
        for (actor, m) in other where members[actor].map({ m.revision > $0.revision }) ?? true {
            members[actor] = m
        }
    }
}

/// A device of the user's group, as the private root records it.
public struct Member: Sendable, Equatable {
    public enum Status: String, Sendable {
        case active, revoked
        /// Not a device: an actor that can read everything (every envelope is also encrypted for
        /// it, and it gets each new private root as a message), e.g. an offline backup key.
        case entrusted
    }

    /// Where the device receives messages (its remote store's URL).
    public var store: String
    public var status: Status
    public var revision: Int64
}

/// What the device's private box currently says: the newest version, the private root it came
/// in, and every envelope that the next commit replaces.
struct Head {
    var version: Version
    var envelopes: [Hash]
    var root: PrivateRoot
}

func nowMilliseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
