import Condensation
import Glibc

/// Lookup, listing and the operations that change names.
extension Volume {
    public func lookup(_ parent: Inode, _ name: String) throws(FSError) -> Attributes {
        try lock.withLock { () throws(FSError) in
            let dir = try directory(parent)
            guard let n = dir.children![name] else { throw .notFound }
            return reference(n)
        }
    }

    public func forget(_ ino: Inode, _ count: UInt64) {
        lock.withLock {
            guard ino != 1, let n = inodes[ino] else { return }
            n.lookups = n.lookups > count ? n.lookups - count : 0
            if n.lookups == 0 { inodes[ino] = nil }
        }
    }

    public func getattr(_ ino: Inode) throws(FSError) -> Attributes {
        try lock.withLock { () throws(FSError) in attributes(try node(ino)) }
    }

    public func opendir(_ ino: Inode) throws(FSError) -> UInt64 {
        try lock.withLock { () throws(FSError) in
            let dir = try directory(ino)
            let entries = dir.children!.sorted { Metadata.byteOrder($0.key, $1.key) }.map { ($0.key, $0.value) }
            let h = nextHandle
            nextHandle += 1
            directoryHandles[h] = entries
            return h
        }
    }

    public func readdir(_ ino: Inode, handle: UInt64, offset: Int, plus: Bool,
                        _ emit: (DirectoryListingEntry, Int) -> Bool) throws(FSError) {
        try lock.withLock { () throws(FSError) in
            let dir = try directory(ino)
            guard let entries = directoryHandles[handle] else { throw .badHandle }
            var position = offset
            while true {
                let entry: DirectoryListingEntry
                switch position {
                case 0:
                    entry = DirectoryListingEntry(name: ".", ino: dir.ino, mode: dir.meta.mode,
                                                  attributes: plus ? attributes(dir) : nil)
                case 1:
                    let p = dir.parent ?? dir
                    entry = DirectoryListingEntry(name: "..", ino: p.ino, mode: p.meta.mode,
                                                  attributes: plus ? attributes(p) : nil)
                default:
                    let i = position - 2
                    guard i < entries.count else { return }
                    let (name, n) = entries[i]
                    entry = DirectoryListingEntry(name: name, ino: n.ino, mode: n.meta.mode,
                                                  attributes: plus ? attributes(n) : nil)
                    guard emit(entry, position + 1) else { return }
                    if plus {
                        n.lookups += 1
                        inodes[n.ino] = n
                    }
                    position += 1
                    continue
                }
                guard emit(entry, position + 1) else { return }
                position += 1
            }
        }
    }

    public func releasedir(_ ino: Inode, handle: UInt64) {
        lock.withLock { directoryHandles[handle] = nil }
    }

    /// Makes a new node in `parent` (which must not have `name`), counted as a kernel reference.
    func insertNew(_ parent: Inode, _ name: String, meta: Metadata) throws(FSError) -> Node {
        try checkWritable(parent)
        try checkName(name)
        let dir = try directory(parent)
        guard dir.children![name] == nil else { throw .exists }
        let n = Node(ino: allocateInode(), meta: meta)
        n.parent = dir
        if meta.isDirectory { n.children = [:] }
        if meta.isRegular { n.file = FileData() }
        dir.children![name] = n
        touchDirectory(dir)
        changed(n)
        summary.added += 1
        return n
    }

    /// A directory's contents changed: new mtime and ctime.
    func touchDirectory(_ dir: Node) {
        let now = Timestamp.now()
        dir.meta.mtime = now
        dir.meta.ctime = now
        changed(dir)
    }

    public func mkdir(_ parent: Inode, _ name: String, mode: UInt32, uid: UInt32, gid: UInt32) throws(FSError) -> Attributes {
        try lock.withLock { () throws(FSError) in
            let meta = Metadata(mode: UInt32(S_IFDIR) | (mode & 0o7777), uid: uid, gid: gid)
            return reference(try insertNew(parent, name, meta: meta))
        }
    }

    public func mknod(_ parent: Inode, _ name: String, mode: UInt32, rdev: UInt64, uid: UInt32, gid: UInt32) throws(FSError) -> Attributes {
        try lock.withLock { () throws(FSError) in
            var meta = Metadata(mode: mode, uid: uid, gid: gid)
            let type = mode & UInt32(S_IFMT)
            if type == 0 { meta.mode |= UInt32(S_IFREG) }
            let allowed: [mode_t] = [S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK]
            guard allowed.contains(mode_t(meta.type)) else { throw .invalid }
            meta.rdev = rdev
            return reference(try insertNew(parent, name, meta: meta))
        }
    }

    public func symlink(_ target: String, _ parent: Inode, _ name: String, uid: UInt32, gid: UInt32) throws(FSError) -> Attributes {
        try lock.withLock { () throws(FSError) in
            guard target.utf8.count < 4096 else { throw .nameTooLong }
            let meta = Metadata(mode: UInt32(S_IFLNK) | 0o777, uid: uid, gid: gid)
            let n = try insertNew(parent, name, meta: meta)
            n.symlinkTarget = target
            return reference(n)
        }
    }

    public func readlink(_ ino: Inode) throws(FSError) -> String {
        try lock.withLock { () throws(FSError) in
            guard let target = try node(ino).symlinkTarget else { throw .invalid }
            return target
        }
    }

    public func link(_ ino: Inode, _ newParent: Inode, _ newName: String) throws(FSError) -> Attributes {
        try lock.withLock { () throws(FSError) in
            try checkWritable(ino)
            try checkWritable(newParent)
            try checkName(newName)
            let n = try node(ino)
            guard !n.isDirectory else { throw .notPermitted }
            let dir = try directory(newParent)
            guard dir.children![newName] == nil else { throw .exists }
            guard n.nlink < 65000 else { throw .tooManyLinks }
            // Hard links live in the volume's link table, which containers do not take along.
            if isInContainer(dir) || isInContainer(n.parent) { throw FSError(EXDEV) }
            if n.hardLinkID == nil {
                // The first extra name: the content moves to the link table, and the existing
                // entry becomes a reference to it.
                var id = UInt64.random(in: 1...UInt64.max)
                while hardLinks[id] != nil || storedHardLinks[id] != nil { id = UInt64.random(in: 1...UInt64.max) }
                n.parent?.markDirty()
                n.hardLinkID = id
                hardLinks[id] = n
            }
            n.nlink += 1
            n.meta.ctime = .now()
            dir.children![newName] = n
            touchDirectory(dir)
            changed(n)
            return reference(n)
        }
    }

    public func unlink(_ parent: Inode, _ name: String) throws(FSError) {
        try lock.withLock { () throws(FSError) in
            try checkWritable(parent)
            let dir = try directory(parent)
            guard let n = dir.children![name] else { throw .notFound }
            guard !n.isDirectory else { throw .isDirectory }
            dir.children![name] = nil
            drop(n)
            touchDirectory(dir)
            summary.removed += 1
        }
    }

    /// One name of `n` is gone.
    func drop(_ n: Node) {
        n.nlink = n.nlink > 0 ? n.nlink - 1 : 0
        n.meta.ctime = .now()
        if let id = n.hardLinkID {
            linkTableDirty = true
            root.dirty = true
            if n.nlink == 0 {
                hardLinks[id] = nil
                storedHardLinks[id] = nil
            }
        }
    }

    public func rmdir(_ parent: Inode, _ name: String) throws(FSError) {
        try lock.withLock { () throws(FSError) in
            try checkWritable(parent)
            let dir = try directory(parent)
            guard let n = dir.children![name] else { throw .notFound }
            guard n.isDirectory else { throw .notDirectory }
            try load(n)
            guard n.children!.isEmpty else { throw .notEmpty }
            dir.children![name] = nil
            n.nlink = 0
            touchDirectory(dir)
            summary.removed += 1
        }
    }

    public func rename(_ parent: Inode, _ name: String, _ newParent: Inode, _ newName: String, flags: UInt32) throws(FSError) {
        try lock.withLock { () throws(FSError) in
            try checkWritable(parent)
            try checkWritable(newParent)
            try checkName(newName)
            let noReplace = flags & 1 != 0, exchange = flags & 2 != 0
            guard !(noReplace && exchange), flags & ~3 == 0 else { throw .invalid }
            let from = try directory(parent)
            let to = try directory(newParent)
            guard let n = from.children![name] else { throw .notFound }
            let existing = to.children![newName]
            if noReplace && existing != nil { throw .exists }
            if existing === n { return }
            try checkMove(n, into: to)
            if exchange, let other = existing { try checkMove(other, into: from) }
            // A directory cannot move into itself or below itself.
            if n.isDirectory {
                var p: Node? = to
                while let d = p {
                    if d === n { throw .invalid }
                    p = d.parent
                }
            }
            if exchange {
                guard let other = existing else { throw .notFound }
                if other.isDirectory {
                    var p: Node? = from
                    while let d = p {
                        if d === other { throw .invalid }
                        p = d.parent
                    }
                }
                from.children![name] = other
                to.children![newName] = n
                if other.hardLinkID == nil { other.parent = from }
                if n.hardLinkID == nil { n.parent = to }
                let now = Timestamp.now()
                n.meta.ctime = now
                other.meta.ctime = now
                touchDirectory(from)
                touchDirectory(to)
                return
            }
            if let existing {
                if noReplace { throw .exists }
                if n.isDirectory {
                    guard existing.isDirectory else { throw .notDirectory }
                    try load(existing)
                    guard existing.children!.isEmpty else { throw .notEmpty }
                    existing.nlink = 0
                } else {
                    guard !existing.isDirectory else { throw .isDirectory }
                    drop(existing)
                }
                summary.removed += 1
            }
            from.children![name] = nil
            to.children![newName] = n
            if n.hardLinkID == nil { n.parent = to }
            n.meta.ctime = .now()
            touchDirectory(from)
            touchDirectory(to)
            changed(n)
        }
    }

    public func statfs() -> FilesystemStatistics {
        var st = statvfs()
        _ = statvfs(home.storePath, &st)
        return FilesystemStatistics(
            blockSize: UInt64(st.f_bsize), blocks: UInt64(st.f_blocks), freeBlocks: UInt64(st.f_bfree),
            availableBlocks: UInt64(st.f_bavail), files: UInt64(st.f_files), freeFiles: UInt64(st.f_ffree),
            nameMaximum: 255)
    }
}
