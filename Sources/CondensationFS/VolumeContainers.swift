import Condensation
import Glibc

/// Containers in the volume: making a folder one and back, reading their heads, and writing a new
/// container version whenever a commit changes something inside (docs/design.md, "Sharing").
extension Volume {
    /// The extended attribute through which a mount is told to make a folder a container (set to
    /// `1`), to dissolve it (removed), and which reads as the container's id in hex.
    public static let containerAttribute = "user.cdsfs.container"
    /// Set to `<actor id hex>` or `<actor id hex> w` (may write): makes the folder a container if it
    /// is not one and records that actor as a recipient (`cdsfs share`).
    public static let shareAttribute = "user.cdsfs.share"
    /// Set to `<actor id hex>`: that recipient is removed and the container gets a new secret, so that
    /// its next versions cannot be opened with anything the removed recipient holds (`cdsfs unshare`).
    public static let unshareAttribute = "user.cdsfs.unshare"
    /// Reads as the container's active recipients, one `<actor id hex> r|w` line each.
    public static let recipientsAttribute = "user.cdsfs.recipients"
    /// Names under this prefix are the mount's controls: never stored, never listed.
    static let controlPrefix = "user.cdsfs."

    // MARK: Reading

    /// Opens a container entry's head and newest version, and points the entry's `directory` at the
    /// container's root directory. Throws EIO (with a log line naming the object) if they do not open.
    func resolveContainer(_ entry: inout StoredEntry) throws(FSError) -> ContainerState? {
        guard let link = entry.container else { return nil }
        guard let head = ContainerHead(record: try ctx.reader.record(link)) else {
            Log.error("container head \(link.hash.hex) is malformed")
            throw .io
        }
        let record = try ctx.reader.record(head.version)
        let version = try Version(link: head.version, record: record)
        entry.directory = version.rootEntry.directory
        entry.subdirectories = version.rootEntry.subdirectories
        return ContainerState(id: head.id, secrets: Secrets(groupSecret: head.secret), head: link, version: version,
                              versionRecord: record, recipients: Recipient.read(entry.recipients),
                              owner: ContainerOwner(record: entry.owner))
    }

    /// A node for a container entry.
    func makeContainerNode(_ stored: StoredEntry, parent: Node) throws(FSError) -> Node {
        var entry = stored
        let state = try resolveContainer(&entry)
        let n = newNode(entry, parent: parent)
        n.container = state
        return n
    }

    // MARK: Writing

    /// Called by the commit for a container directory whose entry is being encoded, after its
    /// directory: writes a new container version if the container's root changed (its parent is the
    /// previous one; the first has none), and a head; the entry then links the head instead of the
    /// directory. Objects are sealed with the container's own secret.
    func encodeContainer(_ n: Node, _ entry: inout StoredEntry, _ objects: inout [(Hash, Object)]) {
        guard var state = n.container else { return }
        var root = StoredEntry(metadata: n.meta)
        root.directory = entry.directory
        root.subdirectories = entry.subdirectories
        if state.rekeyed || state.version.map({ Self.fields($0.rootEntry) != Self.fields(root) }) ?? true {
            let record = Version.record(
                revision: max(nowMilliseconds(), (state.version?.revision ?? 0) + 1), device: home.keyPair.actor,
                parents: state.version.map { [$0.link] } ?? [], root: root, links: nil, summary: ChangeSummary())
            let (_, link) = state.secrets.seal(record.object())
            // Parsing what was just built cannot fail: it has a root directory entry.
            state.version = try? Version(link: link, record: record)
            state.versionRecord = record
            state.rekeyed = false
        }
        if let record = state.versionRecord, let head = state.headRecord {
            let (versionObject, versionLink) = state.secrets.seal(record.object())
            objects.append((versionLink.hash, versionObject))
            let (headObject, headLink) = state.secrets.seal(head.record.object())
            objects.append((headLink.hash, headObject))
            state.head = headLink
        }
        n.container = state
        entry.container = state.head
        entry.recipients = Recipient.record(state.recipients)
        entry.owner = state.owner?.record
    }

    /// EROFS if `n` is inside (or is) a container received from another user without write
    /// permission. The container's own entry (its name under Shared/) is the recipient's to move or remove.
    func checkWritable(_ n: Node) throws(FSError) {
        try checkWritable()
        var current: Node? = n
        while let c = current {
            if let owner = c.container?.owner, !owner.mayWrite { throw .readOnly }
            current = c.parent
        }
    }

    /// `checkWritable(_:)` for the node of an inode.
    func checkWritable(_ ino: Inode) throws(FSError) {
        try checkWritable(try node(ino))
    }

    /// An entry's fields as a record, for comparing two entries.
    static func fields(_ entry: StoredEntry) -> Record {
        var r = Record()
        entry.write(to: &r)
        return r
    }

    // MARK: Making and dissolving

    /// Makes a directory a container (its first container version is written by the next commit).
    /// EXDEV if the folder holds hard-linked files: their content lives in the volume's link table,
    /// which a container does not take along.
    func makeContainer(_ n: Node) throws(FSError) {
        try checkWritable()
        guard n.isDirectory else { throw .notDirectory }
        guard n.ino != 1 else { throw .invalid }
        guard n.container == nil else { throw .exists }
        try requireNoHardLinks(below: n)
        n.container = .new()
        n.meta.ctime = .now()
        changed(n)
        Log.info("\(path(of: n)) is a container now (\(Hash(bytes: n.container!.id)!.hex))")
    }

    /// Makes a container an ordinary directory again; its contents stay, the next commit links the
    /// directory from the parent's entry again. Older versions keep the container and its history.
    func dissolveContainer(_ n: Node) throws(FSError) {
        try checkWritable()
        guard n.container != nil else { throw .noAttribute }
        n.container = nil
        n.meta.ctime = .now()
        changed(n)
        Log.info("\(path(of: n)) is an ordinary folder again")
    }

    /// Whether `n` is a container or inside one.
    func isInContainer(_ n: Node?) -> Bool {
        var current = n
        while let c = current {
            if c.container != nil { return true }
            current = c.parent
        }
        return false
    }

    /// EXDEV if moving `n` into `dir` would bring hard-linked content into a container (the link
    /// table is the volume's; a recipient could not read it).
    func checkMove(_ n: Node, into dir: Node) throws(FSError) {
        guard isInContainer(dir) else { return }
        if n.hardLinkID != nil { throw FSError(EXDEV) }
        if n.isDirectory { try requireNoHardLinks(below: n) }
    }

    func requireNoHardLinks(below top: Node) throws(FSError) {
        var queue = [top]
        while let dir = queue.popLast() {
            try load(dir)
            for (_, child) in dir.children! {
                if child.hardLinkID != nil { throw FSError(EXDEV) }
                if child.isDirectory { queue.append(child) }
            }
        }
    }

    func path(of n: Node) -> String {
        var names: [String] = []
        var child = n
        while let parent = child.parent {
            if let name = parent.children?.first(where: { $0.value === child })?.key { names.append(name) }
            child = parent
        }
        return "/" + names.reversed().joined(separator: "/")
    }

    // MARK: Control attributes

    /// Handles `setxattr` of a control name; false if `name` is not one.
    func setControlAttribute(_ n: Node, _ name: String, _ value: [UInt8]) throws(FSError) -> Bool {
        guard name.hasPrefix(Self.controlPrefix) else { return false }
        switch name {
        case Self.containerAttribute:
            guard value == Array("1".utf8) else { throw .invalid }
            try makeContainer(n)
        case Self.shareAttribute:
            let words = String(decoding: value, as: UTF8.self).split(separator: " ")
            guard words.count == 1 || (words.count == 2 && words[1] == "w"), let actor = Hash(hex: words[0]) else {
                throw .invalid
            }
            try addRecipient(n, actor, mayWrite: words.count == 2)
        case Self.unshareAttribute:
            guard let actor = Hash(hex: String(decoding: value, as: UTF8.self)) else { throw .invalid }
            try removeRecipient(n, actor)
        default:
            throw .notSupported
        }
        return true
    }

    /// Removes a recipient and gives the container a new secret: the next version, its head and
    /// everything sealed with the container's secret from then on are out of the old recipient's
    /// reach, and the syncer sends them nothing more. What they already received stays theirs.
    func removeRecipient(_ n: Node, _ actor: Hash) throws(FSError) {
        try checkWritable(n)
        guard var state = n.container, let r = state.recipients[actor], r.active else { throw .noAttribute }
        state.recipients[actor] = Recipient(actor: actor, mayWrite: false, revision: max(nowMilliseconds(), r.revision + 1),
                                            active: false)
        state.secrets = Secrets.random()
        state.rekeyed = true
        n.container = state
        n.meta.ctime = .now()
        changed(n)
        Log.info("\(path(of: n)) is no longer shared with \(actor.shortHex); the container has a new key")
    }

    /// Records a recipient of a container (making the folder one first if needed). Sending the
    /// container to them is the syncer's part (docs/design.md, "Sharing a container").
    func addRecipient(_ n: Node, _ actor: Hash, mayWrite: Bool) throws(FSError) {
        try checkWritable()
        guard n.isDirectory else { throw .notDirectory }
        if n.container == nil { try makeContainer(n) }
        let previous = n.container!.recipients[actor]
        n.container!.recipients[actor] = Recipient(actor: actor, mayWrite: mayWrite,
                                                   revision: max(nowMilliseconds(), (previous?.revision ?? 0) + 1), active: true)
        n.meta.ctime = .now()
        changed(n)
    }

    /// The value of a control name; nil if `name` is not one.
    func controlAttribute(_ n: Node, _ name: String) throws(FSError) -> [UInt8]? {
        guard name.hasPrefix(Self.controlPrefix) else { return nil }
        guard let state = n.container else { throw .noAttribute }
        switch name {
        case Self.containerAttribute:
            return Array(Hash(bytes: state.id)!.hex.utf8)
        case Self.recipientsAttribute:
            let lines = state.recipients.values.filter(\.active).sorted { $0.actor < $1.actor }
                .map { "\($0.actor.hex) \($0.mayWrite ? "w" : "r")\n" }
            return Array(lines.joined().utf8)
        default:
            throw .noAttribute
        }
    }

    /// Handles `removexattr` of a control name; false if `name` is not one.
    func removeControlAttribute(_ n: Node, _ name: String) throws(FSError) -> Bool {
        guard name.hasPrefix(Self.controlPrefix) else { return false }
        guard name == Self.containerAttribute else { throw .noAttribute }
        try dissolveContainer(n)
        return true
    }
}
