import Condensation

/// Entrusted actors: actors that can read everything without being devices (docs/design.md,
/// "Entrusted actors"). They are kept among the group's members with the status `entrusted`, so
/// they merge and travel like members; every private envelope is encrypted for them, and every push
/// puts the current private root in their in-queue, the one box such an actor can list on a remote.
extension Home {
    /// Entrusts an actor whose public key is on `remote` (or is given).
    public func trust(_ actor: Hash, remote: any Store, publicKey: PublicKey? = nil) throws {
        guard actor != keyPair.actor else { throw Problem.store("that is this device's own actor id") }
        let key: PublicKey
        if let publicKey, publicKey.hash == actor {
            key = publicKey
        } else {
            guard let object = try remote.get(actor), let k = try? PublicKey(object: object), k.hash == actor else {
                throw Problem.store("no public key of \(actor.hex) on \(remote.url): put it there first (`cdsfs key backup` does)")
            }
            key = k
        }
        try store.put(actor, key.object)
        let (head, _) = try readHead()
        if let m = head.root.members[actor], m.status != .entrusted {
            throw Problem.store("\(actor.hex) is a device of this group (\(m.status.rawValue)), not an actor to entrust")
        }
        var root = head.root
        root.members[actor] = Member(store: remote.url, status: .entrusted,
                                     revision: max(nowMilliseconds(), (root.members[actor]?.revision ?? 0) + 1))
        _ = try publish(root: root, objects: [], replacing: head.envelopes)
    }

    /// Makes a new home from an entrusted actor's key: the newest private root waiting in that
    /// actor's in-queue on `remote` (signed by a member of its group, which entrusts this actor) is
    /// transferred with its whole history, and the new device takes it as its own. Returns the home
    /// and what was restored, in one line.
    public static func restore(path: String, backup: KeyPair, remote: any Store,
                               passphrase: [UInt8]? = nil) throws -> (Home, String) {
        let messages: [Hash]
        do { messages = try remote.list(backup.actor, .messages) } catch {
            throw Problem.store("cannot list the backup key's messages on \(remote.url): \(error)")
        }
        var candidates: [(HashAndKey, Hash)] = []
        for h in messages {
            guard let envelope = try? remote.get(h),
                  let message = try? Envelope.openMessage(envelope, keyPair: backup),
                  let keyObject = try? remote.get(message.sender),
                  let key = try? PublicKey(object: keyObject), key.hash == message.sender,
                  (try? Envelope.verifyMessage(envelope, signer: key)) != nil,
                  let link = message.content.child("private root")?.firstChild.flatMap(HashAndKey.init(record:)) else {
                continue
            }
            candidates.append((link, message.sender))
        }
        guard !candidates.isEmpty else {
            throw Problem.store("no backup of \(backup.actor.hex) waits on \(remote.url): on a device of the group run `cdsfs key backup` or `cdsfs sync` first")
        }
        let home = try create(path: path, joining: true, passphrase: passphrase)
        var best: (Version, PrivateRoot)?
        for (link, sender) in candidates {
            guard (try? TreeTransfer.transfer(link.hash, from: remote, to: home.store)) != nil else { continue }
            let reader = ObjectReader(store: home.store)
            guard let root = try? PrivateRoot(record: reader.record(link)),
                  root.members[sender]?.status == .active, root.members[backup.actor]?.status == .entrusted,
                  let version = try? Version.load(root.filesystem, reader: reader) else { continue }
            if best == nil || version.revision > best!.0.revision { best = (version, root) }
        }
        guard let (version, found) = best else {
            throw Problem.store("the backup messages on \(remote.url) do not open to a filesystem that entrusts this key")
        }
        // The members' keys, so that this device's envelopes are encrypted for them too.
        for actor in found.members.keys {
            if let o = try? remote.get(actor), let k = try? PublicKey(object: o), k.hash == actor { try? home.store.put(actor, o) }
        }
        var root = found
        root.created = nowMilliseconds()
        root.members[home.keyPair.actor] = Member(store: remote.url, status: .active, revision: nowMilliseconds())
        _ = try home.publish(root: root, objects: [], replacing: [])
        return (home, "restored version \(version.link.hash.hex) with its history")
    }
}
