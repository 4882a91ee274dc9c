import Condensation
import Glibc

/// A file, directory, symlink or special file in memory. Nodes are created when their directory
/// is loaded, and carry what is needed to encode them again: unchanged subtrees keep their stored
/// links and are never re-encoded.
final class Node {
    let ino: Inode
    var meta: Metadata
    /// Names that refer to this node (files). Directories compute theirs.
    var nlink: UInt32 = 1
    /// References the kernel holds (lookup count); the node leaves the inode table at zero.
    var lookups: UInt64 = 0
    var openCount = 0
    /// Where the furthest read of a sequential run ended, and where its read-ahead reaches.
    var readEnd: UInt64 = 0
    var readAheadEnd: UInt64 = 0
    /// The directory holding this node (for hard-linked files: one of them; they are not encoded
    /// by their directories).
    weak var parent: Node?

    // Directories
    /// Loaded entries; nil until first needed.
    var children: DirectoryEntries?
    /// The stored directory object as last loaded or committed; valid as the encoding while not dirty.
    var directoryLink: HashAndKey?
    /// The pages of a large directory as last encoded, so that a commit re-encodes only the pages
    /// whose entries changed (valid while `directoryLink` is the link they made).
    var pages: DirectoryPages?
    /// Set when the directory is a container (its own secret and version chain).
    var container: ContainerState?
    /// Subdirectories of a directory not yet loaded, as its entry recorded them.
    var storedSubdirectories: UInt64 = 0

    /// Subdirectories, for the directory's link count.
    var subdirectoryCount: UInt64 {
        children?.directoryCount ?? storedSubdirectories
    }

    // Regular files
    var file: FileData?
    /// Stored content of a regular file not yet opened (FileData is made on first use).
    var storedContent: StoredContent?
    var storedSize: UInt64 = 0

    // Others
    var symlinkTarget: String?
    /// Set when the file has (or had) several names: its content lives in the version's link table.
    var hardLinkID: UInt64?

    /// The node's encoding changed since the last commit. Ancestors of a dirty node are dirty.
    var dirty = false

    init(ino: Inode, meta: Metadata) {
        self.ino = ino
        self.meta = meta
    }

    var isDirectory: Bool { meta.isDirectory }
    var isRegular: Bool { meta.isRegular }

    var size: UInt64 {
        if let file { return file.size }
        if isRegular { return storedSize }
        if let symlinkTarget { return UInt64(symlinkTarget.utf8.count) }
        if isDirectory { return 4096 }
        return 0
    }

    func attributes(nlink: UInt32) -> Attributes {
        Attributes(ino: ino, mode: meta.mode, nlink: nlink, uid: meta.uid, gid: meta.gid, size: size,
                   rdev: meta.rdev, atime: meta.atime, mtime: meta.mtime, ctime: meta.ctime)
    }

    /// Marks this node changed, and every ancestor (their entries for it change too).
    func markDirty() {
        dirty = true
        var p = parent
        while let d = p, !d.dirty {
            d.dirty = true
            p = d.parent
        }
    }
}
