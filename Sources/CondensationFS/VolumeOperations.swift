/// The filesystem operations, one per FUSE low-level request, with the kernel's semantics. The FUSE
/// layer (FuseMount) is a thin translation of requests to these calls and of FSError to errno replies.
///
/// Threading: every method may be called from any FUSE worker thread. Hot operations (lookup,
/// getattr, readdir, cached reads, buffered writes) complete synchronously without blocking on the
/// network; commits happen in the background unless an operation asks for durability (fsync).
public protocol VolumeOperations: AnyObject, Sendable {
    var isReadOnly: Bool { get }

    /// Finds `name` in directory `parent`; adds one to the inode's lookup count (the kernel will forget it).
    func lookup(_ parent: Inode, _ name: String) throws(FSError) -> Attributes
    /// The kernel dropped `count` references to the inode.
    func forget(_ ino: Inode, _ count: UInt64)
    func getattr(_ ino: Inode) throws(FSError) -> Attributes
    func setattr(_ ino: Inode, _ changes: AttributeChanges, handle: UInt64?) throws(FSError) -> Attributes

    /// Opens a directory for listing and returns a handle; the listing is a snapshot so that offsets
    /// stay valid while the directory changes.
    func opendir(_ ino: Inode) throws(FSError) -> UInt64
    /// Lists entries from `offset` (0 = start; "." and ".." included). `emit` receives each entry and
    /// the offset of the next one, and returns false when the reply buffer is full. With `plus`, entries
    /// carry attributes and each entry that `emit` accepted counts as a lookup.
    func readdir(_ ino: Inode, handle: UInt64, offset: Int, plus: Bool,
                 _ emit: (DirectoryListingEntry, Int) -> Bool) throws(FSError)
    func releasedir(_ ino: Inode, handle: UInt64)

    func open(_ ino: Inode, flags: Int32) throws(FSError) -> UInt64
    func create(_ parent: Inode, _ name: String, mode: UInt32, flags: Int32, uid: UInt32, gid: UInt32)
        throws(FSError) -> (Attributes, UInt64)
    func mknod(_ parent: Inode, _ name: String, mode: UInt32, rdev: UInt64, uid: UInt32, gid: UInt32)
        throws(FSError) -> Attributes
    /// Reads up to `buffer.count` bytes at `offset`; returns how many (0 at end of file).
    func read(_ ino: Inode, handle: UInt64, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(FSError) -> Int
    func write(_ ino: Inode, handle: UInt64, offset: UInt64, _ data: UnsafeRawBufferPointer) throws(FSError) -> Int
    func flush(_ ino: Inode, handle: UInt64) throws(FSError)
    func release(_ ino: Inode, handle: UInt64)
    /// Commits everything unsaved and returns once it is durable.
    func fsync(_ ino: Inode, dataOnly: Bool) throws(FSError)
    func fallocate(_ ino: Inode, handle: UInt64, mode: Int32, offset: UInt64, length: UInt64) throws(FSError)

    func mkdir(_ parent: Inode, _ name: String, mode: UInt32, uid: UInt32, gid: UInt32) throws(FSError) -> Attributes
    func unlink(_ parent: Inode, _ name: String) throws(FSError)
    func rmdir(_ parent: Inode, _ name: String) throws(FSError)
    /// `flags`: RENAME_NOREPLACE (1), RENAME_EXCHANGE (2).
    func rename(_ parent: Inode, _ name: String, _ newParent: Inode, _ newName: String, flags: UInt32) throws(FSError)
    func symlink(_ target: String, _ parent: Inode, _ name: String, uid: UInt32, gid: UInt32) throws(FSError) -> Attributes
    func readlink(_ ino: Inode) throws(FSError) -> String
    func link(_ ino: Inode, _ newParent: Inode, _ newName: String) throws(FSError) -> Attributes

    func statfs() -> FilesystemStatistics

    /// The kernel's writeback cache is on: it owns mtime and ctime of written files (it sends them
    /// with setattr when it flushes), and it clears set-user-ID bits itself where it must, so writes
    /// must not touch either.
    func kernelCachesWrites(_ on: Bool)

    /// `flags`: XATTR_CREATE (1), XATTR_REPLACE (2).
    func setxattr(_ ino: Inode, _ name: String, _ value: [UInt8], flags: Int32) throws(FSError)
    func getxattr(_ ino: Inode, _ name: String) throws(FSError) -> [UInt8]
    func listxattr(_ ino: Inode) throws(FSError) -> [String]
    func removexattr(_ ino: Inode, _ name: String) throws(FSError)

    /// Commits and stops background work; the volume is unusable afterwards. Called at unmount.
    func close() throws(FSError)
}
