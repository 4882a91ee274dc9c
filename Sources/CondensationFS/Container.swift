import Condensation

/// The head of a container: what a directory entry's `C` link opens.
///
///     container → <32-byte id>     secret → <32 bytes>     version → <key> #version
///
/// A container is a folder with a secret and a version chain of its own (docs/design.md, "Sharing"):
/// the head and the container's versions are sealed with keys derived from the container's secret, so
/// handing someone the head's link gives them this folder and nothing of the tree around it.
struct ContainerHead: Sendable, Equatable {
    /// Fixed for the container's life: shares and messages name the container by it.
    var id: [UInt8]
    /// Keys the container's own objects; replaced when a recipient is removed.
    var secret: [UInt8]
    var version: HashAndKey

    var record: Record {
        var r = Record()
        r.add("container", bytes: id)
        r.add("secret", bytes: secret)
        r.add("version", link: version)
        return r
    }

    init(id: [UInt8], secret: [UInt8], version: HashAndKey) {
        self.id = id
        self.secret = secret
        self.version = version
    }

    init?(record: Record) {
        guard let id = record.bytes("container"), id.count == 32,
              let secret = record.bytes("secret"), secret.count == 32,
              let version = record.link("version") else { return nil }
        self.id = Array(id)
        self.secret = Array(secret)
        self.version = version
    }

    var idHex: String { Hash(bytes: id)!.hex }
}

/// Someone a container is shared with, as the owner's tree records it (`R` of the entry):
/// `<actor id> → { w → y, t → <ms>, s → active|removed }`. A removed recipient stays listed so that
/// a merge with an older copy does not bring it back.
struct Recipient: Sendable, Equatable {
    var actor: Hash
    var mayWrite: Bool
    var revision: Int64
    var active: Bool

    static func record(_ recipients: [Hash: Recipient]) -> Record? {
        guard !recipients.isEmpty else { return nil }
        var list = Record(text: EntryLabel.recipients)
        for actor in recipients.keys.sorted() {
            let r = recipients[actor]!
            var node = Record(actor.bytes)
            if r.mayWrite { node.add("w", bool: true) }
            node.add("t", integer: r.revision)
            node.add("s", text: r.active ? "active" : "removed")
            list.add(node)
        }
        return list
    }

    static func read(_ list: Record?) -> [Hash: Recipient] {
        var out: [Hash: Recipient] = [:]
        for node in list?.children ?? [] {
            guard let actor = Hash(bytes: node.bytes) else { continue }
            out[actor] = Recipient(actor: actor, mayWrite: node.value("w").map { !$0.bytes.isEmpty } ?? false,
                                   revision: node.integer("t") ?? 0, active: node.text("s") != "removed")
        }
        return out
    }
}

/// Who a container received from another user belongs to, as the recipient's tree records it (`O`):
/// `{ a → <owner's actor id>, c → <contact name>, w → y }`. Without `w` it is read-only here.
struct ContainerOwner: Sendable, Equatable {
    var actor: Hash
    var contact: String
    var mayWrite: Bool

    var record: Record {
        var r = Record(text: EntryLabel.owner)
        r.add("a", bytes: actor.bytes)
        r.add("c", text: contact)
        if mayWrite { r.add("w", bool: true) }
        return r
    }

    init(actor: Hash, contact: String, mayWrite: Bool) {
        self.actor = actor
        self.contact = contact
        self.mayWrite = mayWrite
    }

    init?(record: Record?) {
        guard let record, let actor = record.value("a").flatMap({ Hash(bytes: $0.bytes) }) else { return nil }
        self.actor = actor
        contact = record.text("c") ?? ""
        mayWrite = record.value("w").map { !$0.bytes.isEmpty } ?? false
    }
}

/// What the volume holds of a container directory: its head as last written, the keys of its own
/// objects, and its newest version (the parent of the next one).
struct ContainerState {
    var id: [UInt8]
    var secrets: Secrets
    /// Nil until the first commit after the folder became a container.
    var head: HashAndKey?
    var version: Version?
    /// The newest version's record, sealed again by each commit that writes the container's entry
    /// (convergent keys: the same object), so that the objects a head names are always in the
    /// commit that links it, even after a failed attempt.
    var versionRecord: Record?
    var recipients: [Hash: Recipient] = [:]
    /// Set for a container received from another user.
    var owner: ContainerOwner? = nil
    /// The secret was replaced (a recipient was removed): the next commit writes a new version
    /// under the new secret even if nothing inside changed.
    var rekeyed = false

    /// A new container: fresh id and secret, no version yet.
    static func new() -> ContainerState {
        ContainerState(id: Random.bytes(32), secrets: Secrets.random())
    }

    var headRecord: ContainerHead? {
        guard let version else { return nil }
        return ContainerHead(id: id, secret: secrets.groupSecret, version: version.link)
    }
}
