import Condensation
import Glibc

/// The mounted filesystem: a tree of nodes over the store, with the inode table the kernel sees,
/// unsaved changes, and commits that turn them into a new version.
///
/// One lock serialises the operations. They are short: file data is buffered in pages and only
/// chunked into the store when a file's unsaved bytes pass a bound or at a commit.
public final class Volume: VolumeOperations, @unchecked Sendable {
    public let isReadOnly: Bool
    let lock = Lock()
    /// Held through a whole commit, taken before `lock` (see `commit`).
    let commits = Lock()
    let ctx: ContentContext
    let home: Home
    let options: VolumeOptions

    // Guarded by `lock`:
    var root: Node!
    var inodes: [Inode: Node] = [:]
    var nextInode: Inode = 2
    var hardLinks: [UInt64: Node] = [:]
    var storedHardLinks: [UInt64: (StoredEntry, UInt32)] = [:]
    var linkTableDirty = false
    var linkTableLink: HashAndKey?
    var directoryHandles: [UInt64: [(String, Node)]] = [:]
    var nextHandle: UInt64 = 1
    var head: Head
    var summary = ChangeSummary()
    /// When the oldest unsaved change was made (for the commit interval), nil when all is saved.
    var firstUnsavedChange: Timestamp?
    var closed = false
    /// See `kernelCachesWrites`.
    var kernelOwnsWriteTimes = false
    /// Files holding unsaved pages, and how many bytes those pages hold in all.
    var buffered: [Inode: Node] = [:]
    var bufferedBytes = 0
    /// A file being chunked in the background (see `compactInBackground`), and its end.
    var backgroundCompaction: Node?
    let backgroundCompactionDone = Condition()
    /// Background compactions whose chunks were taken, and those overtaken by other changes.
    var backgroundCompactions = (adopted: 0, discarded: 0)
    var committer: Committer?
    /// Called (under the volume's lock) after each commit: the syncer's cue to push.
    var onCommit: (@Sendable () -> Void)?

    public func setOnCommit(_ callback: (@Sendable () -> Void)?) { lock.withLock { onCommit = callback } }

    init(home: Home, head: Head, secrets: Secrets, options: VolumeOptions) throws(FSError) {
        self.home = home
        self.head = head
        self.options = options
        self.isReadOnly = options.readOnly || options.version != nil
        self.ctx = ContentContext(store: home.store, secrets: secrets)
        let version = head.version
        let rootNode = Node(ino: 1, meta: version.rootEntry.metadata)
        rootNode.directoryLink = version.rootEntry.directory
        rootNode.storedSubdirectories = version.rootEntry.subdirectories
        rootNode.lookups = 1
        root = rootNode
        inodes[1] = rootNode
        linkTableLink = version.links
        if let links = version.links { try loadLinkTable(links) }
        if !isReadOnly { committer = Committer(volume: self, interval: options.commitInterval) }
    }

    // MARK: Nodes and the inode table

    func node(_ ino: Inode) throws(FSError) -> Node {
        guard let n = inodes[ino] else { throw .notFound }
        return n
    }

    func directory(_ ino: Inode) throws(FSError) -> Node {
        let n = try node(ino)
        guard n.isDirectory else { throw .notDirectory }
        try load(n)
        return n
    }

    /// Loads a directory's entries from its object (once).
    func load(_ dir: Node) throws(FSError) {
        guard dir.children == nil else { return }
        guard let link = dir.directoryLink else {
            dir.children = [:]
            return
        }
        let entries = try DirectoryFormat.decode(link, reader: ctx.reader)
        var children = DirectoryEntries()
        children.reserveCapacity(entries.count)
        for e in entries {
            let name = e.text
            guard let stored = StoredEntry(record: e), Self.isValidName(name) else {
                Log.error("directory \(link.hash.hex) has a malformed entry")
                throw .io
            }
            children[name] = try makeNode(stored, parent: dir)
        }
        dir.children = children
    }

    /// A node for a stored entry; hard-linked entries share one node.
    func makeNode(_ stored: StoredEntry, parent: Node) throws(FSError) -> Node {
        if let id = stored.hardLink {
            if let n = hardLinks[id] { return n }
            guard let (entry, nlink) = storedHardLinks[id] else {
                Log.error("hard link \(id) is missing from the link table \(linkTableLink?.hash.hex ?? "-")")
                throw .io
            }
            let n = newNode(entry, parent: parent)
            n.hardLinkID = id
            n.nlink = nlink
            hardLinks[id] = n
            return n
        }
        if stored.container != nil { return try makeContainerNode(stored, parent: parent) }
        return newNode(stored, parent: parent)
    }

    func newNode(_ stored: StoredEntry, parent: Node) -> Node {
        let n = Node(ino: allocateInode(), meta: stored.metadata)
        n.parent = parent
        n.directoryLink = stored.directory
        n.storedSubdirectories = stored.subdirectories
        n.storedContent = stored.content
        n.storedSize = stored.size
        n.symlinkTarget = stored.symlink
        if stored.metadata.isDirectory && stored.directory == nil { n.children = [:] }
        return n
    }

    func allocateInode() -> Inode {
        defer { nextInode += 1 }
        return nextInode
    }

    /// Hands a node to the kernel: counts the reference and enters it in the table.
    func reference(_ n: Node) -> Attributes {
        n.lookups += 1
        inodes[n.ino] = n
        return attributes(n)
    }

    func attributes(_ n: Node) -> Attributes {
        if n.isDirectory { return n.attributes(nlink: 2 + UInt32(clamping: n.subdirectoryCount)) }
        return n.attributes(nlink: n.nlink)
    }

    func fileData(_ n: Node) -> FileData {
        if let f = n.file { return f }
        let f = FileData(stored: n.storedContent, size: n.storedSize)
        n.file = f
        n.storedContent = nil
        return f
    }

    public func kernelCachesWrites(_ on: Bool) { lock.withLock { kernelOwnsWriteTimes = on } }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(0x2f) && !name.utf8.contains(0)
    }

    func checkName(_ name: String) throws(FSError) {
        guard name.utf8.count <= 255 else { throw .nameTooLong }
        guard Self.isValidName(name) else { throw .invalid }
    }

    func checkWritable() throws(FSError) {
        if isReadOnly { throw .readOnly }
        if closed { throw .io }
    }

    /// Records that `n` changed: its encoding, its directory's, and so on up to the root.
    func changed(_ n: Node) {
        if n.hardLinkID != nil {
            n.dirty = true
            linkTableDirty = true
            root.dirty = true
        } else {
            n.markDirty()
        }
        if firstUnsavedChange == nil {
            firstUnsavedChange = .now()
            committer?.wake()
        }
    }

    static func map(_ error: StoreError) -> FSError {
        switch error {
        case .noSpace, .readOnly: return StoreTrouble.report(error)
        default:
            Log.error("store: \(error)")
            return .io
        }
    }
}

/// Counts shown by `cdsfs log` for each version.
struct ChangeSummary {
    var added = 0
    var changed = 0
    var removed = 0
    var bytes: UInt64 = 0

    mutating func add(_ other: ChangeSummary) {
        added += other.added
        changed += other.changed
        removed += other.removed
        bytes += other.bytes
    }
}
