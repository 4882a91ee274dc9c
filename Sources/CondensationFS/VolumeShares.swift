import Condensation
import Glibc

/// Containers received from other users, shown under `Shared/<folder> (<contact>)`.
extension Volume {
    public static let sharedFolder = "Shared"

    /// Shows a received container (or its newer state) under `Shared/`, and commits. The entry is
    /// part of this user's tree, so the user's other devices get it with the ordinary sync. A state
    /// older than the one shown is refused (a replayed message). The container's own objects are the
    /// owner's and are linked as they are.
    func receiveShare(head headLink: HashAndKey, id: [UInt8], name: String,
                      owner: ContainerOwner) throws(FSError) -> (outcome: String, invalidations: [Invalidation]) {
        try commits.withLock { () throws(FSError) in try lock.withLock { () throws(FSError) in
            try checkWritable()
            try commitLocked()
            try load(root)
            var out: [Invalidation] = []
            // One of this user's own containers, written by a recipient allowed to write: merged in.
            if let path = ContainerListing.all(in: head.version, reader: ctx.reader)
                .first(where: { $0.head.id == id && $0.owner == nil })?.path {
                let n = try node(atPath: path)
                guard let r = n.container?.recipients[owner.actor], r.active, r.mayWrite else {
                    Log.warning("\(owner.contact) sent changes to \(path), which is not shared with them for writing; refused")
                    throw .notPermitted
                }
                let outcome = try mergeIncoming(n, headLink, &out)
                try commitLocked()
                return ("\(path): \(outcome)", out)
            }
            let shared: Node
            if let s = root.children![Self.sharedFolder] {
                guard s.isDirectory, s.container == nil else {
                    Log.error("/\(Self.sharedFolder) is not a folder; a share from \(owner.contact) cannot be shown")
                    throw .exists
                }
                shared = s
            } else {
                shared = try insertNew(1, Self.sharedFolder, meta: Metadata(mode: UInt32(S_IFDIR) | 0o755, uid: getuid(), gid: getgid()))
                out.append(.entry(parent: 1, name: Self.sharedFolder))
            }
            try load(shared)

            var entry = StoredEntry(metadata: Metadata(mode: UInt32(S_IFDIR) | 0o755, uid: 0, gid: 0))
            entry.container = headLink
            entry.owner = owner.record
            guard var state = try resolveContainer(&entry), let version = state.version else { throw .io }
            entry.metadata = version.rootEntry.metadata
            state.owner = owner

            var entryName = "\(name) (\(owner.contact))"
            if let (oldName, old) = shared.children!.first(where: { $0.value.container?.id == id }) {
                // A later state: merged into what is shown (which may hold this user's own changes,
                // with write permission), keeping the entry and its inode.
                let changedPermission = old.container?.owner != owner
                old.container?.owner = owner
                if changedPermission { changed(shared) }
                let outcome = try mergeIncoming(old, headLink, &out)
                try commitLocked()
                return ("\(Self.sharedFolder)/\(oldName): \(outcome)", out)
            } else {
                var k = 2
                while shared.children![entryName] != nil {
                    entryName = "\(name) (\(owner.contact) \(k))"
                    k += 1
                }
            }
            let n = newNode(entry, parent: shared)
            n.container = state
            shared.children![entryName] = n
            touchDirectory(shared)
            changed(shared)
            out.append(.entry(parent: shared.ino, name: entryName))
            try commitLocked()
            Log.info("received \(Self.sharedFolder)/\(entryName) (\(headLink.hash.shortHex))")
            return ("received \(Self.sharedFolder)/\(entryName)", out)
        } }
    }

    /// Merges another state of the container `n` into it (over the container's chain, see
    /// `ContainerMerge`): a newer state is taken, an older one (a replay, or an echo of what was sent)
    /// changes nothing, concurrent ones merge. Updates the node in place and notes what the kernel
    /// must forget; the caller commits.
    func mergeIncoming(_ n: Node, _ incoming: HashAndKey, _ out: inout [Invalidation]) throws(FSError) -> String {
        guard let state = n.container, let ours = state.head, let ourVersion = state.version else { throw .io }
        if ours == incoming { return "up to date" }
        var oursEntry = StoredEntry(metadata: n.meta)
        oursEntry.container = ours
        oursEntry.recipients = Recipient.record(state.recipients)
        oursEntry.owner = state.owner?.record
        var theirsEntry = oursEntry
        theirsEntry.container = incoming
        guard let theirHead = ContainerHead(record: try ctx.reader.record(incoming)) else { throw .io }
        let theirVersion = try Version.load(theirHead.version, reader: ctx.reader)
        let oursWins = (ourVersion.revision, ourVersion.link.hash) > (theirVersion.revision, theirVersion.link.hash)
        var merger = Merger(reader: ctx.reader, secrets: ctx.secrets)
        guard let merged = try merger.mergeContainers(
            winner: oursWins ? oursEntry : theirsEntry, loser: oursWins ? theirsEntry : oursEntry,
            loserLabel: Merger.label(oursWins ? theirVersion : ourVersion)) else { throw .io }
        if merged.container == ours { return "up to date" }
        for (h, o) in merger.objects {
            do { try ctx.store.put(h, o) } catch { throw Volume.map(error) }
        }
        var entry = merged
        guard var newState = try resolveContainer(&entry), let version = newState.version else { throw .io }
        newState.owner = state.owner
        newState.recipients = Recipient.read(merged.recipients)
        n.container = newState
        if n.meta != version.rootEntry.metadata {
            n.meta = version.rootEntry.metadata
            out.append(.inode(n.ino))
        }
        n.storedSubdirectories = entry.subdirectories
        if n.children == nil { n.directoryLink = entry.directory } else { try refresh(n, to: entry.directory, &out) }
        n.dirty = false
        if let parent = n.parent {
            // The container's entry changed although the node is clean (its own objects are as
            // merged): the parent's pages must not be reused as they were.
            parent.pages = nil
            changed(parent)
        }
        if merged.container == incoming { return "fast-forward to \(version.link.hash.shortHex)" }
        return merger.conflicts.isEmpty ? "merged into \(version.link.hash.shortHex)"
            : "merged into \(version.link.hash.shortHex), conflict copies: \(merger.conflicts.joined(separator: ", "))"
    }

    /// The node at a path from the top (`/a/b`), loading directories on the way.
    func node(atPath path: String) throws(FSError) -> Node {
        var n: Node = root
        for name in path.split(separator: "/") {
            try load(n)
            guard let child = n.children![String(name)] else { throw .notFound }
            n = child
        }
        return n
    }
}
