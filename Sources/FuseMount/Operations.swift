import CFuse
import Condensation
import CondensationFS
import Glibc

// The low-level request handlers: each decodes its arguments, calls the volume, and sends exactly one
// reply (FSError.code becomes fuse_reply_err). They are non-capturing closures, so they convert to the
// C function pointers of `struct fuse_lowlevel_ops`; they live in this library, not in main.swift, so
// they are not inferred @MainActor (a FUSE worker thread calling a @MainActor closure traps).
// Operations left nil are answered ENOSYS by libfuse (locks, ioctl, poll, bmap, copy_file_range, lseek):
// the kernel then falls back to its generic behaviour.

func makeLowLevelOperations() -> fuse_lowlevel_ops {
    var ops = fuse_lowlevel_ops()

    ops.`init` = { userdata, conn in
        guard let userdata, let conn else { return }
        let ctx = Unmanaged<FuseContext>.fromOpaque(userdata).takeUnretainedValue()
        configureConnection(conn, ctx)
    }

    ops.destroy = { userdata in
        guard let userdata else { return }
        let ctx = Unmanaged<FuseContext>.fromOpaque(userdata).takeUnretainedValue()
        ctx.closeVolume("the kernel ended the session")
    }

    ops.lookup = { req, parent, name in
        let ctx = context(req)
        guard let name = decodeName(name) else { return replyError(req, ENOENT) }
        do throws(FSError) {
            let attributes = try ctx.volume.lookup(parent, name)
            replyEntry(req, ctx, attributes)
        } catch where error.code == ENOENT {
            // A negative entry: the kernel remembers the name is absent (until it creates it itself).
            var entry = fuse_entry_param()
            entry.ino = 0
            entry.entry_timeout = KernelCache.negativeTimeout
            fuse_reply_entry(req, &entry)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.forget = { req, ino, count in
        context(req).volume.forget(ino, count)
        fuse_reply_none(req)
    }

    ops.forget_multi = { req, count, forgets in
        let volume = context(req).volume
        if let forgets {
            for i in 0..<count {
                volume.forget(forgets[i].ino, forgets[i].nlookup)
            }
        }
        fuse_reply_none(req)
    }

    ops.getattr = { req, ino, _ in
        do throws(FSError) {
            var st = makeStat(try context(req).volume.getattr(ino))
            fuse_reply_attr(req, &st, KernelCache.attributeTimeout)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.setattr = { req, ino, attr, toSet, fi in
        guard let attr else { return replyError(req, EINVAL) }
        let changes = attributeChanges(attr.pointee, toSet)
        do throws(FSError) {
            var st = makeStat(try context(req).volume.setattr(ino, changes, handle: fi?.pointee.fh))
            fuse_reply_attr(req, &st, KernelCache.attributeTimeout)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.readlink = { req, ino in
        do throws(FSError) {
            let target = try context(req).volume.readlink(ino)
            target.withCString { _ = fuse_reply_readlink(req, $0) }
        } catch {
            replyError(req, error.code)
        }
    }

    ops.mknod = { req, parent, name, mode, rdev in
        let ctx = context(req)
        guard let name = decodeName(name) else { return replyError(req, EINVAL) }
        let caller = fuse_req_ctx(req)!.pointee
        do throws(FSError) {
            let attributes = try ctx.volume.mknod(parent, name, mode: mode, rdev: UInt64(rdev),
                                                  uid: caller.uid, gid: caller.gid)
            replyEntry(req, ctx, attributes)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.mkdir = { req, parent, name, mode in
        let ctx = context(req)
        guard let name = decodeName(name) else { return replyError(req, EINVAL) }
        let caller = fuse_req_ctx(req)!.pointee
        do throws(FSError) {
            let attributes = try ctx.volume.mkdir(parent, name, mode: mode, uid: caller.uid, gid: caller.gid)
            replyEntry(req, ctx, attributes)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.unlink = { req, parent, name in
        guard let name = decodeName(name) else { return replyError(req, ENOENT) }
        do throws(FSError) {
            try context(req).volume.unlink(parent, name)
            replyError(req, 0)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.rmdir = { req, parent, name in
        guard let name = decodeName(name) else { return replyError(req, ENOENT) }
        do throws(FSError) {
            try context(req).volume.rmdir(parent, name)
            replyError(req, 0)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.symlink = { req, link, parent, name in
        let ctx = context(req)
        guard let name = decodeName(name) else { return replyError(req, EINVAL) }
        guard let link, let target = String(validatingCString: link) else { return replyError(req, EINVAL) }
        let caller = fuse_req_ctx(req)!.pointee
        do throws(FSError) {
            let attributes = try ctx.volume.symlink(target, parent, name, uid: caller.uid, gid: caller.gid)
            replyEntry(req, ctx, attributes)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.rename = { req, parent, name, newParent, newName, flags in
        guard let name = decodeName(name) else { return replyError(req, ENOENT) }
        guard let newName = decodeName(newName) else { return replyError(req, EINVAL) }
        do throws(FSError) {
            try context(req).volume.rename(parent, name, newParent, newName, flags: UInt32(flags))
            replyError(req, 0)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.link = { req, ino, newParent, newName in
        let ctx = context(req)
        guard let newName = decodeName(newName) else { return replyError(req, EINVAL) }
        do throws(FSError) {
            let attributes = try ctx.volume.link(ino, newParent, newName)
            replyEntry(req, ctx, attributes)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.open = { req, ino, fi in
        guard let fi else { return replyError(req, EINVAL) }
        let ctx = context(req)
        do throws(FSError) {
            let handle = try ctx.volume.open(ino, flags: openFlags(fi.pointee.flags, ctx))
            fi.pointee.fh = handle
            fi.pointee.keep_cache = 1
            fi.pointee.direct_io = 0
            if fuse_reply_open(req, fi) != 0 {
                ctx.volume.release(ino, handle: handle)  // the opener was interrupted: no release will come
            }
        } catch {
            replyError(req, error.code)
        }
    }

    ops.create = { req, parent, name, mode, fi in
        guard let fi else { return replyError(req, EINVAL) }
        let ctx = context(req)
        guard let name = decodeName(name) else { return replyError(req, EINVAL) }
        let caller = fuse_req_ctx(req)!.pointee
        do throws(FSError) {
            let (attributes, handle) = try ctx.volume.create(parent, name, mode: mode,
                                                             flags: openFlags(fi.pointee.flags, ctx),
                                                             uid: caller.uid, gid: caller.gid)
            fi.pointee.fh = handle
            fi.pointee.keep_cache = 1
            fi.pointee.direct_io = 0
            var entry = makeEntry(attributes)
            if fuse_reply_create(req, &entry, fi) != 0 {
                ctx.volume.release(attributes.ino, handle: handle)
                ctx.volume.forget(attributes.ino, 1)
            }
        } catch {
            replyError(req, error.code)
        }
    }

    ops.read = { req, ino, size, offset, fi in
        guard let fi else { return replyError(req, EBADF) }
        let ctx = context(req)
        let buffer = threadBuffer(size)
        var total = 0
        do throws(FSError) {
            // A short read means end of file to the kernel (it zero-fills the rest of the page), so
            // keep asking until the request is full or the volume says 0.
            while total < size {
                let n = try ctx.volume.read(ino, handle: fi.pointee.fh, offset: UInt64(offset) + UInt64(total),
                                            into: UnsafeMutableRawBufferPointer(start: buffer + total,
                                                                                count: size - total))
                if n <= 0 { break }
                total += n
            }
        } catch {
            if total == 0 { return replyError(req, error.code) }
        }
        fuse_reply_buf(req, buffer, total)
    }

    ops.write = { req, ino, data, size, offset, fi in
        guard let fi else { return replyError(req, EBADF) }
        do throws(FSError) {
            let n = try context(req).volume.write(ino, handle: fi.pointee.fh, offset: UInt64(offset),
                                                  UnsafeRawBufferPointer(start: data, count: size))
            fuse_reply_write(req, n)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.flush = { req, ino, fi in
        guard let fi else { return replyError(req, EBADF) }
        do throws(FSError) {
            try context(req).volume.flush(ino, handle: fi.pointee.fh)
            replyError(req, 0)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.release = { req, ino, fi in
        if let fi { context(req).volume.release(ino, handle: fi.pointee.fh) }
        replyError(req, 0)
    }

    ops.fsync = { req, ino, dataOnly, _ in
        do throws(FSError) {
            try context(req).volume.fsync(ino, dataOnly: dataOnly != 0)
            replyError(req, 0)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.opendir = { req, ino, fi in
        guard let fi else { return replyError(req, EINVAL) }
        let ctx = context(req)
        do throws(FSError) {
            let handle = try ctx.volume.opendir(ino)
            fi.pointee.fh = handle
            if fuse_reply_open(req, fi) != 0 {
                ctx.volume.releasedir(ino, handle: handle)
            }
        } catch {
            replyError(req, error.code)
        }
    }

    ops.readdir = { req, ino, size, offset, fi in
        readDirectory(req, ino, size, offset, fi, plus: false)
    }

    ops.readdirplus = { req, ino, size, offset, fi in
        readDirectory(req, ino, size, offset, fi, plus: true)
    }

    ops.releasedir = { req, ino, fi in
        if let fi { context(req).volume.releasedir(ino, handle: fi.pointee.fh) }
        replyError(req, 0)
    }

    ops.fsyncdir = { req, ino, dataOnly, _ in
        do throws(FSError) {
            try context(req).volume.fsync(ino, dataOnly: dataOnly != 0)
            replyError(req, 0)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.statfs = { req, _ in
        let statistics = context(req).volume.statfs()
        var result = statvfs()
        result.f_bsize = numericCast(statistics.blockSize)
        result.f_frsize = numericCast(statistics.blockSize)
        result.f_blocks = numericCast(statistics.blocks)
        result.f_bfree = numericCast(statistics.freeBlocks)
        result.f_bavail = numericCast(statistics.availableBlocks)
        result.f_files = numericCast(statistics.files)
        result.f_ffree = numericCast(statistics.freeFiles)
        result.f_favail = numericCast(statistics.freeFiles)
        result.f_namemax = numericCast(statistics.nameMaximum)
        fuse_reply_statfs(req, &result)
    }

    ops.setxattr = { req, ino, name, value, size, flags in
        guard let name = decodeName(name) else { return replyError(req, EINVAL) }
        let bytes = size == 0 || value == nil ? [] : [UInt8](UnsafeRawBufferPointer(start: value, count: size))
        do throws(FSError) {
            try context(req).volume.setxattr(ino, name, bytes, flags: flags)
            replyError(req, 0)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.getxattr = { req, ino, name, size in
        guard let name = decodeName(name) else { return replyError(req, ENODATA) }
        do throws(FSError) {
            let value = try context(req).volume.getxattr(ino, name)
            replySized(req, value, size)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.listxattr = { req, ino, size in
        do throws(FSError) {
            var list: [UInt8] = []
            for name in try context(req).volume.listxattr(ino) {
                list.append(contentsOf: name.utf8)
                list.append(0)
            }
            replySized(req, list, size)
        } catch {
            replyError(req, error.code)
        }
    }

    ops.removexattr = { req, ino, name in
        guard let name = decodeName(name) else { return replyError(req, ENODATA) }
        do throws(FSError) {
            try context(req).volume.removexattr(ino, name)
            replyError(req, 0)
        } catch {
            replyError(req, error.code)
        }
    }

    // Mounted with default_permissions, the kernel checks modes itself; access(2) needs no more.
    ops.access = { req, _, _ in
        replyError(req, 0)
    }

    ops.fallocate = { req, ino, mode, offset, length, fi in
        guard let fi else { return replyError(req, EBADF) }
        guard offset >= 0, length > 0 else { return replyError(req, EINVAL) }
        do throws(FSError) {
            try context(req).volume.fallocate(ino, handle: fi.pointee.fh, mode: mode, offset: UInt64(offset),
                                              length: UInt64(length))
            replyError(req, 0)
        } catch {
            replyError(req, error.code)
        }
    }

    return ops
}

// MARK: - Connection setup

/// Negotiates the kernel features (the `init` request): big writes, the writeback cache, readdirplus,
/// asynchronous reads; and leaves out what the volume does not implement (truncation inside open,
/// clearing set-uid bits itself, locks).
func configureConnection(_ conn: UnsafeMutablePointer<fuse_conn_info>, _ ctx: FuseContext) {
    let capable = conn.pointee.capable
    var want = conn.pointee.want
    func enable(_ flag: Int32) {
        if capable & UInt32(flag) != 0 { want |= UInt32(flag) }
    }
    func disable(_ flag: Int32) { want &= ~UInt32(flag) }

    enable(FUSE_CAP_ASYNC_READ)
    enable(FUSE_CAP_READDIRPLUS)
    enable(FUSE_CAP_READDIRPLUS_AUTO)
    enable(FUSE_CAP_PARALLEL_DIROPS)
    enable(FUSE_CAP_CACHE_SYMLINKS)
    if !ctx.readOnly {
        enable(FUSE_CAP_WRITEBACK_CACHE)
    }
    // O_TRUNC arrives as a setattr(size 0), not inside open.
    disable(FUSE_CAP_ATOMIC_O_TRUNC)
    // The kernel clears set-uid/set-gid bits on write and chown itself (with a setattr).
    disable(FUSE_CAP_HANDLE_KILLPRIV)
    // Cached pages stay valid until the volume says otherwise (keep_cache); an attribute refresh whose
    // mtime differs (the writeback cache owns mtime) must not throw them away.
    disable(FUSE_CAP_AUTO_INVAL_DATA)
    disable(FUSE_CAP_SPLICE_READ)
    disable(FUSE_CAP_SPLICE_WRITE)
    disable(FUSE_CAP_SPLICE_MOVE)
    conn.pointee.want = want & capable

    conn.pointee.max_write = KernelCache.maxWrite
    // libfuse lowers this to what the kernel offered (the device's read-ahead at mount time); the real
    // knob is /sys/class/bdi/<dev>/read_ahead_kb, raised after the INIT reply (see FuseSession).
    conn.pointee.max_readahead = UInt32.max
    ctx.writeback.store(want & capable & UInt32(FUSE_CAP_WRITEBACK_CACHE) != 0, ordering: .releasing)
    ctx.volume.kernelCachesWrites(ctx.writeback.load(ordering: .relaxed))

    ctx.note("FUSE \(conn.pointee.proto_major).\(conn.pointee.proto_minor) session started"
             + (ctx.writeback.load(ordering: .relaxed) ? ", writeback cache on" : ""))
}

/// With the writeback cache the kernel may read through any open file and decides the offsets of
/// appending writes itself (passthrough_ll does the same).
@inline(__always)
func openFlags(_ flags: Int32, _ ctx: FuseContext) -> Int32 {
    guard ctx.writeback.load(ordering: .relaxed) else { return flags }
    var result = flags
    if result & O_ACCMODE == O_WRONLY { result = (result & ~O_ACCMODE) | O_RDWR }
    result &= ~O_APPEND
    return result
}

// MARK: - Replies

@inline(__always)
func replyError(_ req: fuse_req_t?, _ code: Int32) {
    fuse_reply_err(req, code)
}

func makeEntry(_ attributes: Attributes) -> fuse_entry_param {
    var entry = fuse_entry_param()
    entry.ino = attributes.ino
    entry.generation = KernelCache.generation
    entry.attr = makeStat(attributes)
    entry.attr_timeout = KernelCache.attributeTimeout
    entry.entry_timeout = KernelCache.entryTimeout
    return entry
}

/// Replies an entry (lookup, mknod, mkdir, symlink, link): each adds one to the inode's lookup count,
/// so an entry the kernel never received (the caller was interrupted) is forgotten again.
func replyEntry(_ req: fuse_req_t?, _ ctx: FuseContext, _ attributes: Attributes) {
    var entry = makeEntry(attributes)
    if fuse_reply_entry(req, &entry) != 0 {
        ctx.volume.forget(attributes.ino, 1)
    }
}

/// getxattr/listxattr: a size-0 request asks how big the value is; a too small buffer is ERANGE.
func replySized(_ req: fuse_req_t?, _ value: [UInt8], _ size: Int) {
    if size == 0 {
        fuse_reply_xattr(req, value.count)
    } else if value.count > size {
        replyError(req, ERANGE)
    } else {
        value.withUnsafeBytes { _ = fuse_reply_buf(req, $0.baseAddress, $0.count) }
    }
}

// MARK: - Directories

func readDirectory(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int, _ offset: off_t,
                   _ fi: UnsafeMutablePointer<fuse_file_info>?, plus: Bool) {
    guard let fi else { return replyError(req, EBADF) }
    let ctx = context(req)
    let buffer = threadBuffer(size)
    var used = 0
    do throws(FSError) {
        try ctx.volume.readdir(ino, handle: fi.pointee.fh, offset: Int(offset), plus: plus) { entry, next in
            let room = size - used
            let added: Int
            if plus {
                var param = fuse_entry_param()
                if let attributes = entry.attributes {
                    param = makeEntry(attributes)
                    // The kernel takes no reference on "." and ".." (nor does the volume count them).
                    if entry.name == "." || entry.name == ".." { param.ino = 0 }
                } else {
                    param.attr.st_ino = numericCast(entry.ino)
                    param.attr.st_mode = entry.mode
                }
                added = entry.name.withCString {
                    fuse_add_direntry_plus(req, buffer + used, room, $0, &param, off_t(next))
                }
            } else {
                var st = stat()
                st.st_ino = numericCast(entry.ino)
                st.st_mode = entry.mode
                added = entry.name.withCString { fuse_add_direntry(req, buffer + used, room, $0, &st, off_t(next)) }
            }
            // fuse_add_direntry* add nothing and return the size needed when the entry does not fit.
            if added > room { return false }
            used += added
            return true
        }
    } catch {
        // Entries already placed (and, with plus, counted as lookups) must reach the kernel; the error
        // comes again at the next offset.
        if used == 0 { return replyError(req, error.code) }
    }
    fuse_reply_buf(req, buffer, used)
}

// MARK: - Conversions

/// A name from the kernel. Names are bytes; the volume's are Unicode strings, so a name that is not
/// UTF-8 cannot exist (lookup: ENOENT) nor be created (EINVAL).
@inline(__always)
func decodeName(_ name: UnsafePointer<CChar>?) -> String? {
    guard let name else { return nil }
    return String(validatingCString: name)
}

func makeStat(_ a: Attributes) -> stat {
    var st = stat()
    st.st_ino = numericCast(a.ino)
    st.st_mode = a.mode
    st.st_nlink = numericCast(a.nlink)
    st.st_uid = a.uid
    st.st_gid = a.gid
    st.st_size = numericCast(a.size)
    st.st_rdev = numericCast(a.rdev)
    st.st_blksize = numericCast(KernelCache.preferredIOSize)
    st.st_blocks = numericCast(a.blocks)
    st.st_atim = timespec(a.atime)
    st.st_mtim = timespec(a.mtime)
    st.st_ctim = timespec(a.ctime)
    return st
}

extension timespec {
    init(_ t: Timestamp) {
        self.init(tv_sec: numericCast(t.seconds), tv_nsec: numericCast(t.nanoseconds))
    }
}

extension Timestamp {
    init(_ t: timespec) {
        self.init(seconds: Int64(t.tv_sec), nanoseconds: Int64(t.tv_nsec))
    }
}

/// The fields of a setattr request that `toSet` marks (FUSE_SET_ATTR_*).
func attributeChanges(_ attr: stat, _ toSet: Int32) -> AttributeChanges {
    var changes = AttributeChanges()
    if toSet & FUSE_SET_ATTR_MODE != 0 { changes.mode = attr.st_mode }
    if toSet & FUSE_SET_ATTR_UID != 0 { changes.uid = attr.st_uid }
    if toSet & FUSE_SET_ATTR_GID != 0 { changes.gid = attr.st_gid }
    if toSet & FUSE_SET_ATTR_SIZE != 0 { changes.size = UInt64(max(0, attr.st_size)) }
    if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 {
        changes.atime = .now
    } else if toSet & FUSE_SET_ATTR_ATIME != 0 {
        changes.atime = .set(Timestamp(attr.st_atim))
    }
    if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 {
        changes.mtime = .now
    } else if toSet & FUSE_SET_ATTR_MTIME != 0 {
        changes.mtime = .set(Timestamp(attr.st_mtim))
    }
    if toSet & FUSE_SET_ATTR_CTIME != 0 { changes.ctime = Timestamp(attr.st_ctim) }
    return changes
}

// MARK: - Per-thread reply buffer

/// Each FUSE worker thread keeps one buffer for read and readdir replies (fuse_reply_buf copies it to
/// the device before returning).
private let replyBuffer = ThreadBuffer()

func threadBuffer(_ size: Int) -> UnsafeMutableRawPointer { replyBuffer.get(size) }
