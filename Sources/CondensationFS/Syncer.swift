import Condensation
import Glibc

/// Carries this device's versions to a remote store and brings in the other devices'.
///
/// Push: the private box's tree goes to the remote (book first, children before parents), the
/// remote private box is swapped to the new envelope, and every other active member gets a message
/// naming the private root (replacing the previous one). Pull: each message in this device's
/// in-queue on the remote is opened, checked (sender is an active member of this group, signature
/// verifies with the sender's public key), its tree is transferred into the local store, merged,
/// and the message removed. Unreadable or unverifiable messages are discarded.
public final class Syncer: @unchecked Sendable {
    public let home: Home
    public let remote: any Store
    /// The mounted volume, when there is one: merges go through it so the kernel learns of them.
    let volume: Volume?
    private let lock = Lock()

    public struct Report: Sendable {
        public var objects = 0
        public var bytes: UInt64 = 0
        public var messagesSent = 0
        public var merged: [String] = []
        public var discarded = 0
        /// Share messages sent to contacts (containers shared with them).
        public var sharesSent = 0
    }

    public init(home: Home, remote: any Store, volume: Volume?) {
        self.home = home
        self.remote = remote
        self.volume = volume
    }

    private var actor: Hash { home.keyPair.actor }

    // MARK: Push

    /// Sends the current private box entry and messages to the other members.
    public func push(progress: ((TransferProgress) -> Void)? = nil) throws -> Report {
        try lock.withLock { () throws in try pushLocked(progress: progress) }
    }

    private func pushLocked(progress: ((TransferProgress) -> Void)?) throws -> Report {
        var report = Report()
        try announce()
        let local = home.store
        let entries = try local.list(actor, .private)
        guard !entries.isEmpty else { return report }
        var state = home.syncState
        // Nothing new since the last push: no transfer, no messages. (Pushing anyway made two idle
        // devices answer each other's messages forever.)
        if state.value("pushed") == entries.map(\.hex).sorted().joined(separator: ","),
           Set(try remote.list(actor, .private)) == Set(entries) {
            return report
        }
        for e in entries {
            let t = try TreeTransfer.transfer(e, from: local, to: remote, progress: progress)
            report.objects += t.objectsTransferred
            report.bytes += UInt64(t.bytesTransferred)
        }
        var m = Modifications()
        for e in entries { m.additions.append(BoxChange(actor, .private, e)) }
        for old in try remote.list(actor, .private) where !entries.contains(old) {
            m.removals.append(BoxChange(actor, .private, old))
        }
        // Messages: one per other active member, naming the private root.
        let (head, _) = try home.readHead()
        let rootLink = try home.openPrivateRoot(head.envelopes.first!).0
        for (member, info) in head.root.members where member != actor && (info.status == .active || info.status == .entrusted) {
            guard let key = try publicKey(of: member) else {
                Log.warning("no public key of member \(member.hex); not sending it the new version")
                continue
            }
            var field = Record(text: "private root")
            field.add(rootLink.record)
            let message = Envelope.message(fields: [field], senderStoreURL: remote.url, recipients: [key],
                                           signer: home.keyPair, expires: nowMilliseconds() + 30 * 86_400_000)
            let h = m.put(message)
            m.additions.append(BoxChange(member, .messages, h))
            if let previous = state.value("sent." + member.hex).flatMap(Hash.init(hex:)), previous != h {
                m.removals.append(BoxChange(member, .messages, previous))
            }
            state.set("sent." + member.hex, h.hex)
            report.messagesSent += 1
        }
        try remote.modify(m)
        sendShares(head, &state, &report)
        state.set("pushed", entries.map(\.hex).sorted().joined(separator: ","))
        state.set("pushed-version", head.version.link.hash.hex)
        state.set("last-push", String(nowMilliseconds()))
        try state.save()
        return report
    }

    /// The public key object and the current public card go to the remote, so that others can
    /// verify this device and see its group.
    private func announce() throws {
        let local = Set(try home.store.list(actor, .public))
        let there = Set(try remote.list(actor, .public))
        let hasKey = try remote.book(actor)
        guard local != there || !hasKey else { return }
        var m = Modifications()
        m.puts.append((actor, home.keyPair.publicKey.object))
        for e in local.subtracting(there) {
            _ = try TreeTransfer.transfer(e, from: home.store, to: remote)
            m.additions.append(BoxChange(actor, .public, e))
        }
        for e in there.subtracting(local) { m.removals.append(BoxChange(actor, .public, e)) }
        try remote.modify(m)
    }

    /// A member's public key, from the local store or else the remote (then kept locally); nil if
    /// neither has it. Throws when the remote cannot be asked now (see `isTransient`).
    func publicKey(of member: Hash) throws(StoreError) -> PublicKey? {
        if let o = try? home.store.get(member), let k = try? PublicKey(object: o) { return k }
        let fetched: Object?
        do { fetched = try remote.get(member) } catch {
            if error.isTransient { throw error }
            return nil
        }
        guard let o = fetched, let k = try? PublicKey(object: o), k.hash == member else { return nil }
        try? home.store.put(member, o)
        return k
    }

    // MARK: Pull

    /// Processes the messages in this device's in-queue. With `wait`, a long poll: waits up to
    /// that many milliseconds for a message to arrive (stores that cannot watch return at once).
    public func pull(wait: Int = 0) throws -> (Report, [Invalidation]) {
        let hashes = try remote.list(actor, .messages, watch: wait)
        return try lock.withLock { () throws in
            var report = Report()
            var invalidations: [Invalidation] = []
            for h in hashes {
                do {
                    let (outcome, inv) = try receive(h)
                    report.merged.append(outcome)
                    invalidations += inv
                } catch let why as Discard {
                    Log.warning("discarded message \(h.shortHex): \(why.reason)")
                    report.discarded += 1
                }
                try remote.remove(actor, .messages, h)
            }
            var state = home.syncState
            state.set("last-pull", String(nowMilliseconds()))
            try state.save()
            return (report, invalidations)
        }
    }

    struct Discard: Error {
        let reason: String
    }

    /// Opens, verifies, transfers and merges one message.
    private func receive(_ h: Hash) throws -> (String, [Invalidation]) {
        guard let envelope = try remote.get(h) else { throw Discard(reason: "gone") }
        let message: Envelope.Message
        do { message = try Envelope.openMessage(envelope, keyPair: home.keyPair) } catch {
            throw Discard(reason: "cannot be opened (\(error))")
        }
        if let share = message.content.child("share") { return try receiveShare(envelope, message, share) }
        let current = try? home.readHead().0
        let members = current?.root.members ?? [:]
        if let current {
            guard members[message.sender]?.status == .active else {
                throw Discard(reason: "sender \(message.sender.shortHex) is not an active member of this group")
            }
            _ = current
        } else if let join = home.settings.value("join").flatMap(Hash.init(hex:)), join != message.sender {
            throw Discard(reason: "sender \(message.sender.shortHex) is not the device this one joins (\(join.shortHex))")
        }
        guard let key = try publicKey(of: message.sender) else { throw Discard(reason: "sender's public key is unknown") }
        do { try Envelope.verifyMessage(envelope, signer: key) } catch { throw Discard(reason: "bad signature") }
        guard let link = message.content.child("private root")?.firstChild.flatMap(HashAndKey.init(record:)) else {
            throw Discard(reason: "names no private root")
        }
        do { _ = try TreeTransfer.transfer(link.hash, from: remote, to: home.store) } catch {
            // The network, the remote's server or the local disk failing is no reason to throw the
            // message away: it stays in the in-queue and the pull is retried with backoff. (Discarded,
            // the sender's version would not come again until the sender changed something.)
            if error.isTransient { throw error }
            throw Discard(reason: "its tree cannot be transferred (\(error))")
        }
        let reader = ObjectReader(store: home.store)
        guard let theirs = try? PrivateRoot(record: reader.record(link)),
              let version = try? Version.load(theirs.filesystem, reader: reader) else {
            throw Discard(reason: "its private root does not open")
        }
        guard theirs.members[actor]?.status == .active else {
            throw Discard(reason: "its group does not list this device as an active member")
        }
        for member in theirs.members.keys where member != actor { _ = try? publicKey(of: member) }
        guard let current else {
            // A new device: take the group's filesystem as it is.
            var root = theirs
            root.created = nowMilliseconds()
            _ = try home.publish(root: root, objects: [], replacing: [])
            return ("joined the group of \(message.sender.shortHex)", [])
        }
        guard theirs.secret == current.root.secret else { throw Discard(reason: "it belongs to another group") }
        // Rollback and fork detection: a member's versions only move forward, and every version
        // of one group descends from its first. An older version than this sender already sent
        // (a replayed message, a store serving stale data) or an unrelated history is refused.
        var state = home.syncState
        let seenKey = "seen." + message.sender.hex
        if let last = state.value(seenKey).flatMap({ Int64($0) }), version.revision < last {
            Log.error("rollback: \(message.sender.shortHex) sent version \(version.link.hash.shortHex) of \(version.revision), older than \(last) it sent before")
            throw Discard(reason: "rollback: older than a version this device already received from its sender")
        }
        if try Merger.nearestCommonAncestor(current.version, version, reader: reader) == nil {
            Log.error("fork: version \(version.link.hash.shortHex) from \(message.sender.shortHex) shares no history with \(current.version.link.hash.shortHex)")
            throw Discard(reason: "fork: its history shares no version with this device's")
        }
        state.set(seenKey, String(version.revision))
        try state.save()
        if let volume {
            let (outcome, inv) = try volume.merge(version, members: theirs.members, contacts: theirs.contacts)
            return (outcome, inv)
        }
        let v = try home.openVolume(options: VolumeOptions())
        defer { try? v.close() }
        return (try v.merge(version, members: theirs.members, contacts: theirs.contacts).outcome, [])
    }
}

extension StoreError {
    /// A failure that may pass (unreachable, 5xx, a disk error), as opposed to one of the data
    /// itself (a corrupt object) or a refusal (4xx): a sync step that meets it is retried later.
    var isTransient: Bool {
        switch self {
        case .corrupt: return false
        case .refused(let status, _): return status >= 500
        case .unreachable, .io, .noSpace, .readOnly: return true
        }
    }
}

extension TransferError {
    /// Reading from the source or writing to the destination failed for a passing reason; an object
    /// missing from the source, or a corrupt one, is a fault of the tree.
    var isTransient: Bool {
        switch self {
        case .missing: return false
        case .source(let e): return e.isTransient
        case .destination: return true
        }
    }
}
