import CLinux
import Glibc

/// Thin wrappers over the POSIX calls the folder store needs, with errno kept in typed errors.
/// No Foundation: this is the store's hot path.
public enum FileSystem {
    /// The file's bytes, nil if it does not exist. Reads the size first, then exactly that much,
    /// up to `limit` bytes.
    public static func read(_ path: String, limit: Int = Int.max) throws(StoreError) -> [UInt8]? {
        guard let fd = try openForReading(path) else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io(path: path, errno: errno) }
        let size = Int(st.st_size)
        guard size <= limit else { throw .io(path: path, errno: EFBIG) }
        return try read(fd, path, count: size)
    }

    /// At most the first `count` bytes of the file (fewer if it is shorter); nil if it does not
    /// exist. Garbage collection reads an object's header and hash list this way, not its data.
    public static func readPrefix(_ path: String, count: Int) throws(StoreError) -> [UInt8]? {
        guard let fd = try openForReading(path) else { return nil }
        defer { close(fd) }
        return try read(fd, path, count: count)
    }

    /// Up to `count` bytes from `offset`; fewer if the file is shorter; nil if it does not exist.
    public static func read(_ path: String, offset: Int, count: Int) throws(StoreError) -> [UInt8]? {
        guard let fd = try openForReading(path) else { return nil }
        defer { close(fd) }
        return try read(fd, path, count: count, offset: offset)
    }

    static func openForReading(_ path: String) throws(StoreError) -> Int32? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw .io(path: path, errno: errno)
        }
        return fd
    }

    /// Up to `count` bytes of `fd` from `offset`; fewer if the file ends first. The buffer is not
    /// zeroed first: reads of objects are on every path of the mount, and zeroing cost a tenth of
    /// reading.
    static func read(_ fd: Int32, _ path: @autoclosure () -> String, count: Int, offset: Int = 0) throws(StoreError) -> [UInt8] {
        var failure: Int32 = 0
        let out = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            initialized = read(fd, into: UnsafeMutableRawBufferPointer(buffer), offset: offset, failure: &failure)
        }
        if failure != 0 { throw .io(path: path(), errno: failure) }
        return out
    }

    /// Fills `buffer` from `offset` of `fd`; the count read, fewer if the file ends first.
    static func read(_ fd: Int32, _ path: @autoclosure () -> String, into buffer: UnsafeMutableRawBufferPointer,
                     offset: Int) throws(StoreError) -> Int {
        var failure: Int32 = 0
        let n = read(fd, into: buffer, offset: offset, failure: &failure)
        if failure != 0 { throw .io(path: path(), errno: failure) }
        return n
    }

    private static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: Int, failure: inout Int32) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                failure = errno
                break
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes through a temporary file and renames it into place, so readers see the old bytes or the
    /// new ones. With `durable`, the file is fsync'd before the rename.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644,
                                       durable: Bool = false) throws(StoreError) {
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw error(tmp) }
        var ok = true
        var failure: Int32 = 0
        bytes.withUnsafeBytes { p in
            var done = 0
            while done < p.count {
                let n = write(fd, p.baseAddress! + done, p.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    ok = false; failure = errno; return
                }
                done += n
            }
        }
        if ok && durable && fsync(fd) != 0 { ok = false; failure = errno }
        close(fd)
        if ok && rename(tmp, path) != 0 { ok = false; failure = errno }
        if !ok {
            unlink(tmp)
            errno = failure
            throw error(path)
        }
    }

    /// The typed error for the current errno, with ENOSPC and EROFS told apart: the filesystem
    /// answers them differently.
    public static func error(_ path: String) -> StoreError {
        let e = errno
        switch e {
        case ENOSPC, EDQUOT: return .noSpace(path)
        case EROFS: return .readOnly(path)
        default: return .io(path: path, errno: e)
        }
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Creates the directory and its parents (mkdir -p).
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(StoreError) {
        if mkdir(path, mode) == 0 || errno == EEXIST { return }
        guard errno == ENOENT else { throw error(path) }
        let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !parent.isEmpty { try makeDirectories(parent, mode: mode) }
        if mkdir(path, mode) != 0 && errno != EEXIST { throw error(path) }
    }

    /// Names in a directory (without . and ..); empty if it does not exist.
    public static func list(_ path: String) throws(StoreError) -> [String] {
        guard let dir = opendir(path) else {
            if errno == ENOENT || errno == ENOTDIR { return [] }
            throw error(path)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Sets the modification time to now; false if the file does not exist.
    public static func touch(_ path: String) throws(StoreError) -> Bool {
        if utimensat(AT_FDCWD, path, nil, 0) == 0 { return true }
        if errno == ENOENT { return false }
        throw error(path)
    }

    /// Creates an empty file if it is not there.
    public static func createEmpty(_ path: String) throws(StoreError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw error(path) }
        close(fd)
    }

    public static func remove(_ path: String) throws(StoreError) {
        if unlink(path) != 0 && errno != ENOENT { throw error(path) }
    }

    /// Modification time in seconds since the epoch, nil if absent.
    public static func modificationTime(_ path: String) -> Int? { sizeAndModificationTime(path)?.modified }

    /// Size in bytes and modification time in seconds since the epoch from one `stat`; nil if absent.
    public static func sizeAndModificationTime(_ path: String) -> (size: Int, modified: Int)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (Int(st.st_size), Int(st.st_mtim.tv_sec))
    }

    /// Flushes the whole filesystem holding `path` (syncfs): one call makes a batch of writes durable.
    public static func syncFilesystem(_ path: String) throws(StoreError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw error(path) }
        defer { close(fd) }
        guard clinux_syncfs(fd) == 0 else { throw error(path) }
    }
}
