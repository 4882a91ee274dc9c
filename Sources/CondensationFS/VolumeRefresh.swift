import Condensation
import Glibc

/// What the kernel must forget after the tree changed under it (a merge from another device).
public enum Invalidation: Sendable, Equatable {
    /// The inode's attributes or content changed.
    case inode(Inode)
    /// A name in a directory appeared, disappeared or points elsewhere now.
    case entry(parent: Inode, name: String)
    /// An open file grew to this size (the writeback cache otherwise keeps the old size).
    case size(Inode, UInt64)
}

extension Volume {
    /// The version the volume shows now.
    public var currentVersion: Version { lock.withLock { head.version } }

    /// Merges another device's version into this volume: commits local changes first, merges
    /// (or fast-forwards), publishes the result and updates the tree in place, keeping inode
    /// numbers of everything that still exists. Returns what the kernel must invalidate.
    public func merge(_ theirs: Version, members: [Hash: Member] = [:],
                      contacts: [String: Contact] = [:]) throws(FSError) -> (outcome: String, invalidations: [Invalidation]) {
        try commits.withLock { () throws(FSError) in try lock.withLock { () throws(FSError) in
            try checkWritable()
            try commitLocked()
            let outcome = try Merger.merge(ours: head.version, theirs: theirs, reader: ctx.reader,
                                           secrets: ctx.secrets, device: home.keyPair.actor)
            let version: Version
            var objects: [(Hash, Object)] = []
            let description: String
            switch outcome {
            case .upToDate:
                var merged = head.root
                merged.mergeMembers(members)
                merged.mergeContacts(contacts)
                if merged.members == head.root.members && merged.contacts == head.root.contacts { return ("up to date", []) }
                version = head.version
                description = "up to date; group members or contacts updated"
            case .fastForward(let v):
                version = v
                description = "fast-forward to \(v.link.hash.shortHex)"
            case .merged(let record, let made, let conflicts):
                let (object, link) = ctx.secrets.seal(record.object())
                objects = made
                objects.append((link.hash, object))
                version = try Version(link: link, record: record)
                description = "merged into \(link.hash.shortHex)" + (conflicts.isEmpty ? "" : ", conflict copies: \(conflicts.joined(separator: ", "))")
            }
            var root = head.root
            root.filesystem = version.link
            root.mergeMembers(members)
            root.mergeContacts(contacts)
            let (envelope, written) = try home.publish(root: root, objects: objects, replacing: head.envelopes)
            head = Head(version: version, envelopes: [envelope], root: written)
            var invalidations: [Invalidation] = []
            try adopt(version, &invalidations)
            Log.info(description)
            return (description, invalidations)
        } }
    }

    /// Makes the in-memory tree show `version` (which the committed tree was merged into).
    func adopt(_ version: Version, _ out: inout [Invalidation]) throws(FSError) {
        storedHardLinks = [:]
        linkTableLink = version.links
        if let links = version.links { try loadLinkTable(links) }
        for (id, n) in hardLinks {
            guard let (entry, nlink) = storedHardLinks[id] else { continue }
            update(n, to: entry, &out)
            n.nlink = nlink
        }
        if root.meta != version.rootEntry.metadata {
            root.meta = version.rootEntry.metadata
            out.append(.inode(1))
        }
        try refresh(root, to: version.rootEntry.directory, &out)
        root.dirty = false
        linkTableDirty = false
    }

    func refresh(_ dir: Node, to link: HashAndKey?, _ out: inout [Invalidation]) throws(FSError) {
        defer {
            dir.directoryLink = link
            dir.dirty = false
        }
        guard let children = dir.children, link != dir.directoryLink || link == nil else { return }
        var entries: [Name: StoredEntry] = [:]
        var containers: [Name: ContainerState] = [:]
        if let link {
            for e in try DirectoryFormat.decode(link, reader: ctx.reader) {
                guard var stored = StoredEntry(record: e) else {
                    Log.error("directory \(link.hash.hex) has a malformed entry")
                    throw .io
                }
                containers[Name(e.text)] = try resolveContainer(&stored)
                entries[Name(e.text)] = stored
            }
        }
        var updated = DirectoryEntries()
        updated.reserveCapacity(entries.count)
        for (name, old) in children {
            guard let entry = entries[Name(name)], sameKind(old, entry) else {
                drop(old)
                out.append(.entry(parent: dir.ino, name: name))
                continue
            }
            if let id = entry.hardLink {
                if old.hardLinkID == id { updated[name] = old } else {
                    out.append(.entry(parent: dir.ino, name: name))
                    updated[name] = try makeNode(entry, parent: dir)
                }
                continue
            }
            if old.hardLinkID != nil {
                out.append(.entry(parent: dir.ino, name: name))
                updated[name] = try makeNode(entry, parent: dir)
                continue
            }
            if old.isRegular && old.openCount == 0 && differs(old, entry) {
                // With the writeback cache the kernel keeps its own size and mtime of a regular
                // file and ignores ours, even after an invalidation. A changed file that nobody has
                // open becomes a new inode; the kernel looks the name up again and sees it whole.
                old.nlink = 0
                updated[name] = try makeNode(entry, parent: dir)
                out.append(.entry(parent: dir.ino, name: name))
                continue
            }
            update(old, to: entry, &out)
            if old.isDirectory {
                old.container = containers[Name(name)]
                old.storedSubdirectories = entry.subdirectories
                if old.children == nil { old.directoryLink = entry.directory } else { try refresh(old, to: entry.directory, &out) }
            }
            updated[name] = old
        }
        for (name, entry) in entries where updated[name.string] == nil {
            updated[name.string] = try makeNode(entry, parent: dir)
            out.append(.entry(parent: dir.ino, name: name.string))
        }
        dir.children = updated
    }

    private func sameKind(_ n: Node, _ e: StoredEntry) -> Bool {
        e.hardLink != nil ? n.isRegular : n.meta.type == e.metadata.type
    }

    private func differs(_ n: Node, _ entry: StoredEntry) -> Bool {
        n.meta != entry.metadata || (n.file?.stored ?? n.storedContent) != entry.content || n.size != entry.size
    }

    /// Updates a node's metadata and content to a stored entry; notes an inode invalidation if
    /// anything differs. An open file keeps its inode: its size in the kernel can grow (`.size`)
    /// but not shrink until the file is closed and its inode evicted.
    private func update(_ n: Node, to entry: StoredEntry, _ out: inout [Invalidation]) {
        var changed = n.meta != entry.metadata
        n.meta = entry.metadata
        if n.isRegular {
            let current = n.file?.stored ?? n.storedContent
            if current != entry.content || n.size != entry.size { changed = true }
            if entry.size > n.size { out.append(.size(n.ino, entry.size)) }
            n.storedContent = entry.content
            n.storedSize = entry.size
            n.file = nil
        }
        if n.symlinkTarget != entry.symlink {
            n.symlinkTarget = entry.symlink
            changed = true
        }
        n.dirty = false
        if changed { out.append(.inode(n.ino)) }
    }
}
