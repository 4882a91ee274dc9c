import Condensation

/// Sending containers to the contacts they are shared with, and receiving containers shared with
/// this user (docs/design.md, "Sharing a container").
extension Syncer {
    // MARK: Sending

    /// After a push: every container of this user whose head changed since it was last sent to a
    /// recipient goes to that recipient's store, with a share message in their in-queue there that
    /// replaces the previous one. A recipient that cannot be reached now is tried again at the next
    /// push that has something new.
    func sendShares(_ head: Head, _ state: inout KeyValueFile, _ report: inout Report) {
        let contacts = head.root.contacts.values.filter { $0.status == .active }
        // Shares go to contacts only, and finding the containers walks every directory of the
        // version: a user without contacts (most pushes) pays nothing for sharing.
        guard !contacts.isEmpty else { return }
        for c in ContainerListing.all(in: head.version, reader: ObjectReader(store: home.store)) {
            // A container received with write permission goes back to its owner; one's own to its recipients.
            let targets: [Recipient]
            if let owner = c.owner {
                targets = owner.mayWrite ? [Recipient(actor: owner.actor, mayWrite: true, revision: 0, active: true)] : []
            } else {
                targets = c.recipients.values.sorted(by: { $0.actor < $1.actor })
            }
            for r in targets where r.active {
                let sentKey = "share.\(c.head.idHex).\(r.actor.hex)"
                if state.value(sentKey) == c.headLink.hash.hex { continue }
                guard let contact = contacts.first(where: { $0.actor == r.actor }) else {
                    Log.warning("\(c.path) is shared with \(r.actor.shortHex), who is not a contact any more; not sent")
                    continue
                }
                do {
                    try sendShare(c, to: contact, mayWrite: r.mayWrite, state: &state)
                    state.set(sentKey, c.headLink.hash.hex)
                    report.sharesSent += 1
                } catch {
                    Log.warning("could not send \(c.path) to \(contact.name) at \(contact.store): \(error); trying again at the next push")
                }
            }
        }
    }

    private func sendShare(_ c: ContainerListing, to contact: Contact, mayWrite: Bool, state: inout KeyValueFile) throws {
        let store = try openContactStore(contact.store, keyPair: home.keyPair)
        // The device that added the contact kept the key; the user's other devices fetch it once.
        var key = (try? home.store.get(contact.actor)).flatMap { $0 }.flatMap { try? PublicKey(object: $0) }
        if key == nil, let o = try store.get(contact.actor), let k = try? PublicKey(object: o), k.hash == contact.actor {
            try home.store.put(contact.actor, o)
            key = k
        }
        guard let key, key.hash == contact.actor else {
            throw Home.Problem.store("\(contact.store) does not have the public key of \(contact.name)")
        }
        _ = try TreeTransfer.transfer(c.headLink.hash, from: home.store, to: store)
        var share = Record(text: "share")
        share.add("container", bytes: c.head.id)
        share.add("name", text: c.name)
        share.add("head", link: c.headLink)
        if mayWrite { share.add("w", bool: true) }
        let message = Envelope.message(fields: [share], senderStoreURL: remote.url, recipients: [key], signer: home.keyPair,
                                       expires: nowMilliseconds() + 30 * 86_400_000, references: [c.headLink.hash])
        var m = Modifications()
        m.puts.append((home.keyPair.actor, home.keyPair.publicKey.object))
        let h = m.put(message)
        m.additions.append(BoxChange(contact.actor, .messages, h))
        let messageKey = "share-message.\(c.head.idHex).\(contact.actor.hex)"
        if let previous = state.value(messageKey).flatMap(Hash.init(hex:)), previous != h {
            m.removals.append(BoxChange(contact.actor, .messages, previous))
        }
        try store.modify(m)
        state.set(messageKey, h.hex)
        Log.info("sent \(c.path) (\(c.headLink.hash.shortHex)) to \(contact.name)")
    }

    // MARK: Receiving

    /// A share message: accepted from a contact, or from a device that the contact's public card
    /// announces as an active member of its group; its container is transferred and shown under
    /// `Shared/<folder> (<contact>)`. Anything else is discarded.
    func receiveShare(_ envelope: Object, _ message: Envelope.Message, _ share: Record) throws -> (String, [Invalidation]) {
        guard let current = try? home.readHead().0 else { throw Discard(reason: "a share, but this device has no folder yet") }
        guard let contact = contact(sending: message.sender, among: current.root.contacts) else {
            throw Discard(reason: "a share from \(message.sender.shortHex), who is not a contact")
        }
        guard let key = try publicKey(of: message.sender) else { throw Discard(reason: "sender's public key is unknown") }
        do { try Envelope.verifyMessage(envelope, signer: key) } catch { throw Discard(reason: "bad signature") }
        guard let id = share.bytes("container"), id.count == 32, let name = share.text("name"),
              Volume.isValidName(name), name.utf8.count <= 200, let headLink = share.link("head") else {
            throw Discard(reason: "a malformed share")
        }
        do { _ = try TreeTransfer.transfer(headLink.hash, from: remote, to: home.store) } catch {
            if error.isTransient { throw error }
            throw Discard(reason: "the shared folder's objects cannot be transferred (\(error))")
        }
        let reader = ObjectReader(store: home.store)
        guard let head = (try? reader.record(headLink)).flatMap(ContainerHead.init(record:)), head.id == Array(id),
              (try? Version.load(head.version, reader: reader)) != nil else {
            throw Discard(reason: "the shared folder does not open")
        }
        let owner = ContainerOwner(actor: contact.actor, contact: contact.name, mayWrite: share.value("w") != nil)
        let result: (String, [Invalidation])
        do {
            if let volume {
                result = try volume.receiveShare(head: headLink, id: head.id, name: name, owner: owner)
            } else {
                let v = try home.openVolume(options: VolumeOptions())
                defer { try? v.close() }
                result = (try v.receiveShare(head: headLink, id: head.id, name: name, owner: owner).outcome, [])
            }
        } catch let e as FSError where e == .notPermitted {
            throw Discard(reason: "changes from \(contact.name) to a folder not shared with them for writing")
        }
        // What came from the contact need not go back to them.
        var state = home.syncState
        state.set("share.\(head.idHex).\(contact.actor.hex)", headLink.hash.hex)
        try state.save()
        return result
    }

    /// The active contact that `sender` is, or whose public card lists `sender` as an active member
    /// of its group; nil if none.
    func contact(sending sender: Hash, among contacts: [String: Contact]) -> Contact? {
        let active = contacts.values.filter { $0.status == .active }.sorted { $0.name < $1.name }
        if let c = active.first(where: { $0.actor == sender }) { return c }
        for c in active {
            guard let store = try? openContactStore(c.store, keyPair: home.keyPair),
                  let card = try? PublicCard.read(c.actor, on: store) else { continue }
            for storeNode in card.card.child("actor group")?.children ?? [] {
                let members = storeNode.child("active")?.children.compactMap { Hash(bytes: $0.bytes) } ?? []
                if members.contains(sender) { return c }
            }
        }
        return nil
    }
}
