import Condensation

/// Adding, listing and removing contacts (see `Contact`). Like group changes, each is a new private
/// root published next to the current version: a mount of the same home merges it in at its next
/// commit (`Home.publish` merges contacts forward), and sync carries it to the other devices.
extension Home {
    /// Why a contact cannot be added or removed; one line each.
    public enum ContactProblem: Error, CustomStringConvertible, Equatable {
        case badName(String)
        case nameTaken(String, Hash)
        case actorTaken(Hash, String)
        case ownActor
        case unknown(String)
        case card(PublicCard.Failure)

        public var description: String {
            switch self {
            case .badName(let why): return why
            case .nameTaken(let name, let actor): return "\(name) is already a contact (\(actor.hex)); remove it first with `cdsfs contact remove \(name)`"
            case .actorTaken(let actor, let name): return "\(actor.hex) is already the contact \(name)"
            case .ownActor: return "that is this device's own actor id; add another person's"
            case .unknown(let name): return "\(name) is not a contact; see `cdsfs contact list`"
            case .card(let failure): return failure.description
            }
        }
    }

    /// The active contacts, by name.
    public func contacts() throws -> [Contact] {
        try readHead().0.root.contacts.values.filter { $0.status == .active }
            .sorted { Metadata.byteOrder($0.name, $1.name) }
    }

    /// The active contact of that name, or nil.
    public func contact(named name: String) throws -> Contact? {
        try contacts().first { $0.name == name }
    }

    /// Adds a contact after reading their public card on `store` (where they receive messages): the
    /// actor must be reachable there. Their public key is kept in the local store, for the envelopes
    /// that will be encrypted for them.
    public func addContact(name: String, actor: Hash, store: any Store) throws -> Contact {
        if let why = Contact.problem(withName: name) { throw ContactProblem.badName(why) }
        guard actor != keyPair.actor else { throw ContactProblem.ownActor }
        let (head, _) = try readHead()
        if let existing = head.root.contacts[name], existing.status == .active {
            throw ContactProblem.nameTaken(name, existing.actor)
        }
        if let other = head.root.contacts.values.first(where: { $0.actor == actor && $0.status == .active }) {
            throw ContactProblem.actorTaken(actor, other.name)
        }
        let verified: PublicCard.Verified
        do { verified = try PublicCard.read(actor, on: store) } catch { throw ContactProblem.card(error) }
        try self.store.put(actor, verified.publicKey.object)
        let contact = Contact(name: name, actor: actor, store: store.url,
                              revision: nextRevision(after: head.root.contacts[name]?.revision))
        try changeContacts { $0[name] = contact }
        return contact
    }

    /// Removes a contact (kept as `removed`, so that merges do not bring it back).
    public func removeContact(name: String) throws {
        let (head, _) = try readHead()
        guard var c = head.root.contacts[name], c.status == .active else { throw ContactProblem.unknown(name) }
        c.status = .removed
        c.revision = nextRevision(after: c.revision)
        try changeContacts { $0[name] = c }
    }

    /// Now, or just after `previous` if the clock is behind it: a change must win the forward merge.
    private func nextRevision(after previous: Int64?) -> Int64 {
        max(nowMilliseconds(), (previous ?? 0) + 1)
    }

    private func changeContacts(_ change: (inout [String: Contact]) -> Void) throws {
        let (head, _) = try readHead()
        var root = head.root
        change(&root.contacts)
        _ = try publish(root: root, objects: [], replacing: head.envelopes)
    }
}

extension Home {
    /// What `cdsfs shares` prints: one line per container shared with a contact and per container
    /// received from one, read from the newest committed version (the same on every device).
    public func shareLines() throws -> [String] {
        let (head, _) = try readHead()
        let names = Dictionary(head.root.contacts.values.filter { $0.status == .active }.map { ($0.actor, $0.name) },
                               uniquingKeysWith: { a, _ in a })
        var lines: [String] = []
        for c in ContainerListing.all(in: head.version, reader: ObjectReader(store: store)) {
            if let owner = c.owner {
                lines.append("\(c.path)  from \(owner.contact) (\(owner.mayWrite ? "read and write" : "read-only"))")
            }
            for r in c.recipients.values.sorted(by: { $0.actor < $1.actor }) where r.active {
                let who = names[r.actor] ?? r.actor.hex
                lines.append("\(c.path)  shared with \(who) (\(r.mayWrite ? "read and write" : "read-only"))")
            }
        }
        return lines
    }
}
