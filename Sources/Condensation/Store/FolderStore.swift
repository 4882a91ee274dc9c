import Glibc

/// A store in a folder, in the reference layout: `objects/<2 hex>/<62 hex>` and
/// `accounts/<actor hex>/<box>/<hash hex>` (empty files). Writes go through a temporary file and a
/// rename. Puts are not synced one by one: `flush` (and `modify`) make a batch durable with one
/// `syncfs`, and `modify` syncs the objects before any box entry names them.
public final class FolderStore: Store {
    public let path: String
    public var url: String { "file://" + path }

    /// Refuses objects larger than this when reading (a corrupt or hostile store cannot make us
    /// allocate without bound).
    public static let maximumObjectSize = 64 * 1024 * 1024
    /// Kept open for range reads (see `OpenObjectFiles`).
    private let openFiles = OpenObjectFiles()

    /// For a long-lived process reading many objects (the mount): lets it keep more object files
    /// open. Call before opening the store.
    public static func raiseOpenFileLimit() { OpenObjectFiles.raiseLimit() }

    public init(path: String) {
        self.path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    /// Opens an existing folder store; nil unless `path` has both `objects` and `accounts`.
    public static func open(_ path: String) -> FolderStore? {
        guard FileSystem.isDirectory(path + "/objects"), FileSystem.isDirectory(path + "/accounts") else { return nil }
        return FolderStore(path: path)
    }

    /// Creates the folders of an empty store.
    public static func create(_ path: String) throws(StoreError) -> FolderStore {
        try FileSystem.makeDirectories(path + "/objects")
        try FileSystem.makeDirectories(path + "/accounts")
        return FolderStore(path: path)
    }

    public func objectPath(_ hash: Hash) -> String {
        let hex = hash.hex
        return path + "/objects/" + hex.prefix(2) + "/" + hex.dropFirst(2)
    }

    func boxPath(_ account: Hash, _ box: BoxLabel) -> String {
        path + "/accounts/" + account.hex + "/" + box.rawValue
    }

    public func get(_ hash: Hash) throws(StoreError) -> Object? {
        guard let bytes = try FileSystem.read(objectPath(hash), limit: Self.maximumObjectSize) else { return nil }
        do { return try Object(bytes: bytes, expecting: hash) } catch { throw .corrupt(hash) }
    }

    /// A range read straight from the file: a 4 KiB read of a file reads one sealed block of its
    /// chunk, not the whole chunk.
    public func read(_ hash: Hash, offset: Int, count: Int) throws(StoreError) -> [UInt8]? {
        guard offset >= 0, count >= 0, count <= Self.maximumObjectSize else { throw .io(path: objectPath(hash), errno: EINVAL) }
        guard let file = try openFile(hash) else { return nil }
        return try FileSystem.read(file.fd, objectPath(hash), count: count, offset: offset)
    }

    public func read(_ hash: Hash, offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(StoreError) -> Int? {
        guard offset >= 0 else { throw .io(path: objectPath(hash), errno: EINVAL) }
        guard let file = try openFile(hash) else { return nil }
        return try FileSystem.read(file.fd, objectPath(hash), into: buffer, offset: offset)
    }

    /// Starts the disk reads at once (posix_fadvise WILLNEED queues them and returns): a reader
    /// that knows the next few MiB of a file lie in a dozen objects gets them read in parallel,
    /// rather than one object file's cold read after the other.
    public func willRead(_ hash: Hash, offset: Int, count: Int) {
        guard offset >= 0, count > 0, let file = try? openFile(hash) else { return }
        _ = posix_fadvise(file.fd, off_t(offset), off_t(count), POSIX_FADV_WILLNEED)
    }

    private func openFile(_ hash: Hash) throws(StoreError) -> OpenObjectFiles.File? {
        if let open = openFiles.get(hash) { return open }
        guard let fd = try FileSystem.openForReading(objectPath(hash)) else { return nil }
        // Range reads ask for what they need (a sequential reader says so with `willRead`): the
        // kernel's read-ahead on a cold object file read 8 to 32 times a random read's 16 KiB.
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM)
        let file = OpenObjectFiles.File(fd: fd)
        openFiles.put(hash, file)
        return file
    }

    public func put(_ hash: Hash, _ object: Object) throws(StoreError) {
        let p = objectPath(hash)
        // Present already: refresh its time so garbage collection sees it as recently used. A file of
        // another size is not the object (puts are not synced one by one, so a crash can leave an
        // empty file under the final name): write it again rather than keep it forever.
        if let existing = FileSystem.sizeAndModificationTime(p), existing.size == object.bytes.count,
           try FileSystem.touch(p) { return }
        openFiles.forget(hash)  // a file of another size is replaced: never read the old one again
        do {
            try FileSystem.writeAtomically(p, object.bytes)
        } catch .io(_, ENOENT) {
            try FileSystem.makeDirectories(String(p.dropLast(63)))
            try FileSystem.writeAtomically(p, object.bytes)
        }
    }

    public func book(_ hash: Hash) throws(StoreError) -> Bool { try FileSystem.touch(objectPath(hash)) }

    public func list(_ account: Hash, _ box: BoxLabel) throws(StoreError) -> [Hash] {
        try FileSystem.list(boxPath(account, box)).compactMap(Self.hash(name:))
    }

    public func add(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) {
        let dir = boxPath(account, box)
        let p = dir + "/" + hash.hex
        do {
            try FileSystem.createEmpty(p)
        } catch .io(_, ENOENT) {
            try FileSystem.makeDirectories(dir)
            try FileSystem.createEmpty(p)
        }
    }

    public func remove(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) {
        try FileSystem.remove(boxPath(account, box) + "/" + hash.hex)
    }

    public func modify(_ m: Modifications) throws(StoreError) {
        for (h, o) in m.puts { try put(h, o) }
        try flush()
        for c in m.additions { try add(c.account, c.box, c.hash) }
        if !m.additions.isEmpty { try flush() }
        for c in m.removals { try? remove(c.account, c.box, c.hash) }
    }

    public func flush() throws(StoreError) { try FileSystem.syncFilesystem(path) }

    /// Every object in the store, by walking `objects/` (garbage collection, fsck).
    public func allObjects() throws(StoreError) -> [Hash] {
        var out: [Hash] = []
        for prefix in try FileSystem.list(path + "/objects") where prefix.utf8.count == 2 {
            for rest in try FileSystem.list(path + "/objects/" + prefix) where rest.utf8.count == 62 {
                if let h = Self.hash(name: prefix + rest) { out.append(h) }
            }
        }
        return out
    }

    /// Accounts that have a folder under `accounts/`.
    public func accounts() throws(StoreError) -> [Hash] {
        try FileSystem.list(path + "/accounts").compactMap(Self.hash(name:))
    }

    /// The hash a file or folder is named after: exactly 64 lowercase hex digits, as the store writes
    /// them. Anything else (temporary files, an uppercase copy that `remove` would never delete) is
    /// not an entry.
    static func hash(name: String) -> Hash? {
        guard name.utf8.count == 64, name.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            return nil
        }
        return Hash(hex: name)
    }

    /// Deletes an object (garbage collection only).
    public func delete(_ hash: Hash) throws(StoreError) {
        openFiles.forget(hash)
        try FileSystem.remove(objectPath(hash))
    }

    public func modificationTime(_ hash: Hash) -> Int? { FileSystem.modificationTime(objectPath(hash)) }
}
