import Condensation
import Glibc

/// How a directory entry is written in a directory object (docs/format.md has the whole layout).
/// Labels are single letters: a directory of 100k entries repeats each label 100k times.
///
///     <name>
///       m → mode (unsigned, type and permission bits)     u → uid      g → gid
///       a / t / c → atime / mtime / ctime (ns, integer)   r → rdev (devices)
///       x → { <attribute name> → <value> }
///       s → size (files)
///       i → inline content (small files)
///       k → { <length> → <key> #chunk, <length> (a hole) … }   chunk list, inline (`ChunkRef`)
///       K → <key> #chunk-list-object                              chunk list, as an object of `k` children
///       d → <key> #directory-object      n → number of subdirectories (for nlink without loading it)
///       l → symlink target
///       h → hard link id (content and metadata live in the version's link table)
///       C → <key> #container-head (instead of d: the directory is a container, see `ContainerHead`)
///       R → { <actor id> → { w, t, s } }   the container's recipients (see `Recipient`)
///       O → { a, c, w }                     a container received from a contact (see `ContainerOwner`)
enum EntryLabel {
    static let mode = "m", uid = "u", gid = "g", atime = "a", mtime = "t", ctime = "c", rdev = "r"
    static let xattrs = "x", size = "s", inline = "i", chunks = "k", chunkList = "K", directory = "d"
    static let symlink = "l", hardLink = "h", subdirectories = "n"
    static let container = "C", recipients = "R", owner = "O"
    /// A chunk sealed in 16 KiB AES-256-GCM blocks (see `ContentContext`), not AES-256-CTR as a
    /// whole; and in 4 KiB blocks, as chunks are sealed now.
    static let sealedBlocks = "g", sealedSmallBlocks = "g4"
    /// A part of a patch object (see `ChunkRef`), in 16 KiB and in 4 KiB blocks.
    static let patch = "p", patchSmallBlocks = "p4"

    /// The marker that follows a sealed chunk's link.
    static func marker(patch: Bool, _ sealing: SealedBlocks) -> String {
        let small = sealing.blockSize == ContentContext.smallBlocks.blockSize
        return patch ? (small ? patchSmallBlocks : self.patch) : (small ? sealedSmallBlocks : sealedBlocks)
    }

    /// What a marker says: whether the object is a patch, and its blocks; nil for any other text.
    static func sealing(marker: String?) -> (patch: Bool, SealedBlocks)? {
        switch marker {
        case sealedBlocks: (false, ContentContext.largeBlocks)
        case sealedSmallBlocks: (false, ContentContext.smallBlocks)
        case patch: (true, ContentContext.largeBlocks)
        case patchSmallBlocks: (true, ContentContext.smallBlocks)
        default: nil
        }
    }
}

/// Metadata every node has.
struct Metadata: Equatable, Sendable {
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32
    var rdev: UInt64 = 0
    var atime: Timestamp
    var mtime: Timestamp
    var ctime: Timestamp
    var xattrs: [String: [UInt8]] = [:]

    init(mode: UInt32, uid: UInt32, gid: UInt32, time: Timestamp = .now()) {
        self.mode = mode
        self.uid = uid
        self.gid = gid
        atime = time
        mtime = time
        ctime = time
    }

    var type: UInt32 { mode & UInt32(S_IFMT) }
    var isDirectory: Bool { type == UInt32(S_IFDIR) }
    var isRegular: Bool { type == UInt32(S_IFREG) }
    var isSymlink: Bool { type == UInt32(S_IFLNK) }

    func write(to node: inout Record) {
        node.add(EntryLabel.mode, unsigned: UInt64(mode))
        if uid != 0 { node.add(EntryLabel.uid, unsigned: UInt64(uid)) }
        if gid != 0 { node.add(EntryLabel.gid, unsigned: UInt64(gid)) }
        if rdev != 0 { node.add(EntryLabel.rdev, unsigned: rdev) }
        node.add(EntryLabel.atime, integer: atime.totalNanoseconds)
        node.add(EntryLabel.mtime, integer: mtime.totalNanoseconds)
        node.add(EntryLabel.ctime, integer: ctime.totalNanoseconds)
        if !xattrs.isEmpty {
            var x = Record(text: EntryLabel.xattrs)
            for name in xattrs.keys.sorted(by: Self.byteOrder) { x.add(name, bytes: xattrs[name]!) }
            node.add(x)
        }
    }

    init?(record node: Record) {
        guard let mode = node.unsigned(EntryLabel.mode), mode <= UInt32.max else { return nil }
        self.mode = UInt32(mode)
        uid = UInt32(truncatingIfNeeded: node.unsigned(EntryLabel.uid) ?? 0)
        gid = UInt32(truncatingIfNeeded: node.unsigned(EntryLabel.gid) ?? 0)
        rdev = node.unsigned(EntryLabel.rdev) ?? 0
        atime = Timestamp(totalNanoseconds: node.integer(EntryLabel.atime) ?? 0)
        mtime = Timestamp(totalNanoseconds: node.integer(EntryLabel.mtime) ?? 0)
        ctime = Timestamp(totalNanoseconds: node.integer(EntryLabel.ctime) ?? 0)
        for x in node.child(EntryLabel.xattrs)?.children ?? [] {
            xattrs[x.text] = Array(x.firstChild?.bytes ?? [])
        }
    }

    /// Names sort by their UTF-8 bytes, as the kernel and other platforms see them.
    static func byteOrder(_ a: String, _ b: String) -> Bool { Name.compare(a, b) < 0 }
}

/// One piece of a file: `length` bytes stored in the chunk `link`, or zeros (a hole) without one.
/// `<length> → <key>#chunk` for a chunk encrypted whole with AES-256-CTR (the first format), and
/// `<length> → (<key>#chunk, "g")` for one sealed in AES-256-GCM blocks, which every new chunk is.
///
/// A piece can be part of a sealed chunk: `<length> → (<key>#chunk, "g", <offset>, <chunk length>)`
/// for a part of a content-defined chunk (what is left of it around a patch), and the same with
/// `"p"` for a part of a patch object (the scattered pages of one commit, sealed together; see
/// `FileData.materialize`). Readers that know only whole chunks refuse both, rather than read the
/// piece as the start of its chunk.
struct ChunkRef: Equatable, Sendable {
    var length: UInt64
    var link: HashAndKey?
    /// The blocks the object is sealed in, read and checked one at a time; nil for a chunk of the
    /// first format (AES-256-CTR over the whole chunk).
    var sealing: SealedBlocks?
    /// Where the piece starts in the chunk's plaintext, and the chunk's plaintext length (the
    /// blocks are the chunk's: block i starts at i · block size of the chunk, not of the piece).
    var offset: UInt64 = 0
    var chunkLength: UInt64
    /// A part of a patch object, not of a content-defined chunk: its start is not a cut.
    var isPatch = false

    var sealedInBlocks: Bool { sealing != nil }
    var isWholeChunk: Bool { offset == 0 && chunkLength == length && !isPatch }
    /// Chunking may start or stop here without changing what a full chunking would cut: a hole,
    /// or the start of a content-defined chunk.
    var startsAtCut: Bool { link == nil || (offset == 0 && !isPatch) }

    var record: Record {
        var r = Record(Values.unsigned(length))
        if let link {
            r.children = [link.record]
            if let sealing {
                r.children.append(Record(text: EntryLabel.marker(patch: isPatch, sealing)))
                if !isWholeChunk {
                    r.children.append(Record(Values.unsigned(offset)))
                    r.children.append(Record(Values.unsigned(chunkLength)))
                }
            }
        }
        return r
    }

    /// A whole chunk (sealed as new chunks are, unless told otherwise), or a hole.
    init(length: UInt64, link: HashAndKey?, sealing: SealedBlocks? = ContentContext.sealing) {
        self.length = length
        self.link = link
        self.sealing = link == nil ? nil : sealing
        chunkLength = length
    }

    /// `length` bytes at `offset` of a sealed chunk or patch object of `chunkLength` bytes.
    init(length: UInt64, link: HashAndKey, offset: UInt64, chunkLength: UInt64, isPatch: Bool,
         sealing: SealedBlocks = ContentContext.sealing) {
        self.length = length
        self.link = link
        self.sealing = sealing
        self.offset = offset
        self.chunkLength = chunkLength
        self.isPatch = isPatch
    }

    /// The pieces of a chunk list (`k`, in an entry or a chunk-list object), or nil if any of them
    /// is malformed (a piece must never be skipped: the bytes after it would move).
    static func list(in record: Record) -> [ChunkRef]? {
        let children = record.child(EntryLabel.chunks)?.children ?? []
        var chunks: [ChunkRef] = []
        chunks.reserveCapacity(children.count)
        for c in children {
            guard let ref = ChunkRef(record: c) else { return nil }
            chunks.append(ref)
        }
        return chunks
    }

    /// `count` bytes of this piece from `start` on (a hole stays a hole).
    func slice(_ start: UInt64, _ count: UInt64) -> ChunkRef {
        guard link != nil else { return ChunkRef(length: count, link: nil) }
        var s = self
        s.length = count
        s.offset += start
        return s
    }

    init?(record: Record) {
        guard let length = record.unsigned, length > 0 else { return nil }
        self.length = length
        chunkLength = length
        guard let child = record.firstChild else {
            link = nil
            return
        }
        guard let link = HashAndKey(record: child) else { return nil }
        self.link = link
        let rest = Array(record.children.dropFirst())
        guard !rest.isEmpty else { return }  // the first format
        guard rest[0].children.isEmpty, let (patch, sealing) = EntryLabel.sealing(marker: rest[0].text) else { return nil }
        self.sealing = sealing
        isPatch = patch
        switch rest.count {
        case 1:
            guard !patch else { return nil }
        case 3:
            guard let offset = rest[1].unsigned, let chunkLength = rest[2].unsigned,
                  offset < chunkLength, length <= chunkLength - offset else { return nil }
            self.offset = offset
            self.chunkLength = chunkLength
        default: return nil
        }
    }
}

/// A file's stored content.
enum StoredContent: Equatable, Sendable {
    case inline([UInt8])
    case chunks([ChunkRef])
    /// The chunk list is an object of its own (long files); loaded when the file is first read.
    case chunkList(HashAndKey, size: UInt64)
}

/// A directory entry as stored: everything needed to list it and to make a node from it.
struct StoredEntry: Sendable {
    var metadata: Metadata
    var size: UInt64 = 0
    var content: StoredContent? = nil
    var directory: HashAndKey? = nil
    var subdirectories: UInt64 = 0
    var symlink: String? = nil
    var hardLink: UInt64? = nil
    /// The head of a container (a directory with its own secret and version chain). Where the volume
    /// resolves it, `directory` is the container's newest root directory.
    var container: HashAndKey? = nil
    var recipients: Record? = nil
    var owner: Record? = nil

    /// Writes the entry's fields as children of `node` (whose bytes are the name).
    func write(to node: inout Record) {
        if let hardLink {
            node.add(EntryLabel.hardLink, unsigned: hardLink)
            return
        }
        metadata.write(to: &node)
        if metadata.isRegular { node.add(EntryLabel.size, unsigned: size) }
        switch content {
        case .inline(let bytes)?: node.add(EntryLabel.inline, bytes: bytes)
        case .chunks(let chunks)?:
            node.add(Record(text: EntryLabel.chunks, children: chunks.map(\.record)))
        case .chunkList(let link, _)?: node.add(EntryLabel.chunkList, link: link)
        case nil: break
        }
        if let container {
            node.add(EntryLabel.container, link: container)
            if let recipients { node.add(recipients) }
            if let owner { node.add(owner) }
        } else if let directory {
            node.add(EntryLabel.directory, link: directory)
        }
        if subdirectories > 0 { node.add(EntryLabel.subdirectories, unsigned: subdirectories) }
        if let symlink { node.add(EntryLabel.symlink, text: symlink) }
    }

    /// Nil if the entry is malformed (missing mode, bad link).
    init?(record node: Record) {
        if let id = node.unsigned(EntryLabel.hardLink) {
            metadata = Metadata(mode: UInt32(S_IFREG), uid: 0, gid: 0, time: Timestamp(seconds: 0))
            hardLink = id
            return
        }
        guard let metadata = Metadata(record: node) else { return nil }
        self.metadata = metadata
        size = node.unsigned(EntryLabel.size) ?? 0
        if let inline = node.bytes(EntryLabel.inline) {
            content = .inline(Array(inline))
        } else if node.contains(EntryLabel.chunks) {
            guard let chunks = ChunkRef.list(in: node) else { return nil }
            content = .chunks(chunks)
        } else if node.contains(EntryLabel.chunkList) {
            guard let link = node.link(EntryLabel.chunkList) else { return nil }
            content = .chunkList(link, size: size)
        }
        if node.contains(EntryLabel.directory) {
            guard let link = node.link(EntryLabel.directory) else { return nil }
            directory = link
        }
        if node.contains(EntryLabel.container) {
            guard metadata.isDirectory, let link = node.link(EntryLabel.container) else { return nil }
            container = link
            recipients = node.child(EntryLabel.recipients)
            owner = node.child(EntryLabel.owner)
        }
        subdirectories = node.unsigned(EntryLabel.subdirectories) ?? 0
        if let target = node.value(EntryLabel.symlink) { symlink = target.text }
    }

    init(metadata: Metadata) { self.metadata = metadata }
}
