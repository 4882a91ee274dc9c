import Condensation

/// Another user, as this user's devices know them: a name of the user's choosing, the actor id
/// the other person handed over, and the store where that actor receives messages.
///
/// Contacts live in the private root (`contacts → { <name> → { actor, store, status, revision } }`),
/// so every device of the user has them, encrypted like the rest, and they travel with the group's
/// sync messages. They merge forward by revision as group members do; a removed contact stays as a
/// `removed` entry with a newer revision so that a device that has not seen the removal cannot
/// bring the contact back.
public struct Contact: Sendable, Equatable {
    public enum Status: String, Sendable {
        case active, removed
    }

    public var name: String
    public var actor: Hash
    /// Where the contact's actor receives messages (the URL their `cdsfs key show` printed).
    public var store: String
    public var status: Status
    public var revision: Int64

    public init(name: String, actor: Hash, store: String, status: Status = .active, revision: Int64) {
        self.name = name
        self.actor = actor
        self.store = store
        self.status = status
        self.revision = revision
    }

    /// Why a name cannot be a contact's: it becomes part of a folder name (`Shared/<folder> (<name>)`)
    /// and of command lines, so it must be one short path component without surprises. Nil if fine.
    public static func problem(withName name: String) -> String? {
        if name.isEmpty { return "a contact's name cannot be empty" }
        if name.utf8.count > 64 { return "a contact's name is at most 64 bytes" }
        if name.hasPrefix("-") { return "a contact's name cannot start with '-'" }
        if name.unicodeScalars.contains(where: { $0 == "/" || $0 == "(" || $0 == ")" || $0.value < 0x20 || $0.value == 0x7f }) {
            return "a contact's name cannot hold '/', parentheses or control characters"
        }
        if name.trimmingCharacters(in: " \t") != name { return "a contact's name cannot start or end with a space" }
        return nil
    }

    // MARK: In the private root

    static let label = "contacts"

    /// The `contacts` node of a private root; nil when there are none.
    static func record(_ contacts: [String: Contact]) -> Record? {
        guard !contacts.isEmpty else { return nil }
        var list = Record(text: label)
        for name in contacts.keys.sorted(by: Metadata.byteOrder) {
            let c = contacts[name]!
            var node = Record(text: name)
            node.add("actor", bytes: c.actor.bytes)
            node.add("store", text: c.store)
            node.add("status", text: c.status.rawValue)
            node.add("revision", integer: c.revision)
            list.add(node)
        }
        return list
    }

    /// The contacts of a private root's record; malformed entries are skipped.
    static func read(_ root: Record) -> [String: Contact] {
        var out: [String: Contact] = [:]
        for node in root.child(label)?.children ?? [] {
            guard let actor = node.value("actor").flatMap({ Hash(bytes: $0.bytes) }),
                  let status = Status(rawValue: node.text("status") ?? ""), problem(withName: node.text) == nil else { continue }
            out[node.text] = Contact(name: node.text, actor: actor, store: node.text("store") ?? "", status: status,
                                     revision: node.integer("revision") ?? 0)
        }
        return out
    }
}

extension PrivateRoot {
    /// Takes the other root's contacts where they are newer (forward merge, as for members).
    mutating func mergeContacts(_ other: [String: Contact]) {
        for (name, c) in other where contacts[name].map({ c.revision > $0.revision }) ?? true {
            contacts[name] = c
        }
    }
}
