import CFuse
import CondensationFS
import Glibc
import Synchronization

/// A volume mounted at a folder through libfuse's low-level API.
///
///     let session = try FuseSession(volume: volume, mountpoint: "/mnt/x", options: options)  // mounts
///     try session.run(onReady: { … })   // serves requests until unmounted or signalled
///
/// `init` checks the mount point and mounts; `run` serves requests on up to `maxThreads` threads and
/// returns when the folder is unmounted from outside (`fusermount3 -u`, `umount`), when SIGTERM, SIGINT or
/// SIGHUP arrives, or when `exit()` is called. In every case the volume is closed (its final commit)
/// while the folder is still mounted, then the folder is unmounted: once the mount is gone, the data is
/// committed. Call `run` once, from a thread that may block (not a Swift concurrency thread).
public final class FuseSession: @unchecked Sendable {
    /// The mount point, absolute and without symbolic links.
    public let mountpoint: String
    public let options: MountOptions

    let context: FuseContext
    private let contextPointer: UnsafeMutableRawPointer
    /// `struct fuse_session *`; nil once destroyed.
    private var session: OpaquePointer?
    private var mounted = false
    private let state = Mutex<State>(.mounted)

    private enum State { case mounted, running, exiting, finished }

    public init(volume: any VolumeOperations, mountpoint: String, options: MountOptions = MountOptions())
        throws(MountError)
    {
        self.options = options
        let readOnly = options.readOnly || volume.isReadOnly
        self.mountpoint = try FuseSession.checkMountpoint(mountpoint)
        try FuseSession.checkFuseDevice()

        context = FuseContext(volume: volume, readOnly: readOnly, log: options.log)
        contextPointer = Unmanaged.passRetained(context).toOpaque()
        // From here on every property is set: if init throws, deinit runs and releases the context.
        LibfuseLog.install(options.log)

        var kernelOptions = ["fsname=" + FuseSession.escapeOption(options.fsname),
                             "subtype=" + FuseSession.escapeOption(options.subtype),
                             "default_permissions"]
        if options.allowOther { kernelOptions.append("allow_other") }
        kernelOptions.append(contentsOf: options.kernelFlags.filter { $0 != "ro" && $0 != "rw" })
        if readOnly { kernelOptions.append("ro") }

        guard let args = cfuse_args_new() else {
            throw .session("out of memory")
        }
        defer { cfuse_args_free(args) }
        var arguments = ["cdsfs", "-o", kernelOptions.joined(separator: ",")]
        if options.debug { arguments.append("-d") }
        for argument in arguments where cfuse_args_add(args, argument) != 0 {
            throw .session("out of memory")
        }

        var ops = makeLowLevelOperations()
        LibfuseLog.clearLastError()
        guard let session = fuse_session_new(args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, contextPointer) else {
            throw .session(LibfuseLog.lastError() ?? "fuse_session_new failed")
        }
        self.session = session

        LibfuseLog.clearLastError()
        guard fuse_session_mount(session, self.mountpoint) == 0 else {
            fuse_session_destroy(session)
            self.session = nil
            throw .mountFailed(self.mountpoint, LibfuseLog.lastError() ?? "fuse_session_mount failed")
        }
        mounted = true
        context.note("mounted at \(self.mountpoint)" + (readOnly ? " (read-only)" : ""))
    }

    deinit {
        if let session {
            // run() was never called: nothing was served, but the volume still gets its close.
            context.closeVolume("the session ended before it ran")
            if mounted { fuse_session_unmount(session) }
            fuse_session_destroy(session)
        }
        Unmanaged<FuseContext>.fromOpaque(contextPointer).release()
    }

    /// Serves requests until the folder is unmounted, a termination signal arrives, or `exit()`.
    /// `onReady` runs once, on another thread, when the mount answers requests (after the kernel's INIT).
    /// When the loop has ended, `onStop` runs (on this thread: stop background work that would touch the
    /// volume or call `invalidate`), then the volume is closed (final commit) and the folder unmounted.
    /// Throws if the loop or the commit failed.
    public func run(onReady: (@Sendable () -> Void)? = nil, onStop: (() -> Void)? = nil) throws(MountError) {
        guard let session else { return }
        let proceed = state.withLock { state -> Bool in
            guard state == .mounted else { return false }
            state = .running
            return true
        }
        guard proceed else { return }

        if cfuse_set_signal_handlers(session, pthread_self()) != 0 {
            context.note("cannot install signal handlers: \(errnoText(errno))")
        }
        ReadyWatch(session: self, onReady: onReady).start()

        guard let config = fuse_loop_cfg_create() else { fatalError("out of memory") }
        fuse_loop_cfg_set_max_threads(config, UInt32(max(1, options.maxThreads)))
        let result = cfuse_session_loop_mt(session, config)
        fuse_loop_cfg_destroy(config)
        cfuse_ignore_signals()
        let requested = state.withLock { state -> Bool in
            defer { state = .finished }
            return state == .exiting
        }

        let signal = cfuse_exit_signal()
        if requested {
            context.note("exit requested: unmounting")
        } else if signal != 0 {
            context.note("received \(signalName(signal)): unmounting")
        } else if result < 0 {
            context.note("the request loop failed: \(errnoText(-result))")
        } else {
            context.note("the folder was unmounted")
        }

        onStop?()
        // Commit while still mounted, so that the mount disappears only once the data is safe.
        let closeError = context.closeVolume(requested ? "exit" : signal != 0 ? signalName(signal) : "unmount")
        if mounted {
            fuse_session_unmount(session)
            mounted = false
        }
        fuse_session_destroy(session)  // calls the destroy op: the volume is already closed
        self.session = nil
        cfuse_remove_signal_handlers()
        context.note("unmounted \(mountpoint)")

        if result < 0 { throw .loop(errnoText(-result)) }
        if let closeError { throw .close(closeError.description) }
    }

    /// Ends `run` from another thread (as SIGTERM would): the volume is closed, then unmounted.
    public func exit() {
        state.withLock { state in
            guard state == .running, let session else { return }
            state = .exiting
            cfuse_session_exit_and_wake(session)
        }
    }

    /// Tells the kernel to forget what changed behind its back (a merge from another device): cached
    /// attributes and pages of an inode, or a name in a directory. Call it from a background thread,
    /// never from inside a request handler (libfuse: that can deadlock), and only while `run` serves
    /// requests (stop the caller in `onStop`).
    public func invalidate(_ items: [Invalidation]) {
        guard let session = state.withLock({ $0 == .running ? self.session : nil }) else { return }
        for item in items {
            switch item {
            case .inode(let ino):
                _ = fuse_lowlevel_notify_inval_inode(session, ino, 0, 0)
            case .entry(let parent, let name):
                _ = name.withCString { fuse_lowlevel_notify_inval_entry(session, parent, $0, strlen($0)) }
            case .size(let ino, let size):
                // A zero-byte store at the new end: the kernel extends the file's size, stores nothing.
                var empty = fuse_bufvec()
                empty.count = 1
                _ = fuse_lowlevel_notify_store(session, ino, off_t(size), &empty, fuse_buf_copy_flags(rawValue: 0))
            }
        }
    }

    // MARK: - Checks

    /// The mount point made absolute and canonical, or why it cannot be used: missing, not a
    /// directory, a dead FUSE mount, or already a mount point.
    public static func checkMountpoint(_ path: String) throws(MountError) -> String {
        var st = stat()
        if stat(path, &st) != 0 {
            let code = errno
            switch code {
            case ENOENT: throw .mountpointMissing(path)
            case ENOTDIR: throw .notADirectory(path)
            case ENOTCONN: throw .deadMount(path)
            default: throw .mountFailed(path, errnoText(code))
            }
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw .notADirectory(path) }
        guard let resolved = realpath(path, nil) else { throw .mountFailed(path, errnoText(errno)) }
        let canonical = String(cString: resolved)
        free(resolved)
        if let existing = MountTable.current().entry(at: canonical) {
            // A FUSE mount whose process died may still answer stat from the kernel's cache; statfs
            // always asks the process.
            var info = statvfs()
            if existing.type.hasPrefix("fuse"), statvfs(canonical, &info) != 0, errno == ENOTCONN {
                throw .deadMount(canonical)
            }
            throw .alreadyMounted(canonical, type: existing.type)
        }
        return canonical
    }

    /// Whether /dev/fuse can be opened.
    public static func checkFuseDevice() throws(MountError) {
        let fd = open("/dev/fuse", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw .noFuseDevice(errnoText(errno)) }
        close(fd)
    }

    /// A value inside libfuse's -o list: commas and backslashes escaped.
    static func escapeOption(_ value: String) -> String {
        var result = ""
        for character in value {
            if character == "," || character == "\\" { result.append("\\") }
            result.append(character)
        }
        return result
    }

    // MARK: - Ready

    /// Waits, on its own thread, until the mount answers (a statfs waits for the kernel's INIT to be
    /// answered), then raises the read-ahead (after INIT: the INIT reply would lower it again) and calls
    /// `onReady`.
    private final class ReadyWatch: @unchecked Sendable {
        let session: FuseSession
        let onReady: (@Sendable () -> Void)?

        init(session: FuseSession, onReady: (@Sendable () -> Void)?) {
            self.session = session
            self.onReady = onReady
        }

        func start() {
            var thread = pthread_t()
            let box = Unmanaged.passRetained(self).toOpaque()
            let created = pthread_create(&thread, nil, { box in
                Unmanaged<ReadyWatch>.fromOpaque(box!).takeRetainedValue().wait()
                return nil
            }, box)
            if created == 0 {
                pthread_detach(thread)
            } else {
                Unmanaged<ReadyWatch>.fromOpaque(box).release()
                session.context.note("cannot start a thread (\(errnoText(created))): not waiting for the mount")
                onReady?()
            }
        }

        func wait() {
            var info = statvfs()
            var result: Int32
            repeat {
                result = statvfs(session.mountpoint, &info)
            } while result != 0 && errno == EINTR
            guard session.state.withLock({ $0 == .running || $0 == .exiting }) else { return }
            if result != 0 {
                session.context.note("the new mount does not answer statfs: \(errnoText(errno))")
            }
            raiseReadAhead()
            onReady?()
        }

        func raiseReadAhead() {
            let kib = session.options.readAheadKiB
            guard kib > 0 else { return }
            guard let entry = MountTable.current().entry(at: session.mountpoint), entry.type.hasPrefix("fuse")
            else { return }
            let path = "/sys/class/bdi/\(entry.device)/read_ahead_kb"
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { return }  // best effort: not writable without root
            defer { close(fd) }
            let text = "\(kib)\n"
            let written = text.withCString { write(fd, $0, strlen($0)) }
            if written < 0 {
                session.context.note("cannot raise \(path): \(errnoText(errno))")
            }
        }
    }
}

func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGTERM: return "SIGTERM"
    case SIGINT: return "SIGINT"
    case SIGHUP: return "SIGHUP"
    default: return "signal \(signal)"
    }
}

// MARK: - libfuse's own messages

/// libfuse prints its errors ("fuse: unknown option(s): …", "fuse: mount failed: …"): they go to the
/// session's log, and the last error is kept for the one-line message of a failed mount.
enum LibfuseLog {
    private struct State {
        var sink: (@Sendable (String) -> Void)?
        var lastError: String?
        var pending = ""
    }

    private static let state = Mutex(State())

    static func install(_ sink: (@Sendable (String) -> Void)?) {
        state.withLock { $0.sink = sink }
        cfuse_set_log_handler { level, message in
            guard let message else { return }
            // libfuse sometimes prints one line in several calls: collect until the newline.
            let (line, sink) = LibfuseLog.state.withLock { state -> (String?, (@Sendable (String) -> Void)?) in
                state.pending += String(cString: message)
                guard state.pending.hasSuffix("\n") else { return (nil, state.sink) }
                var text = state.pending
                state.pending = ""
                while text.hasSuffix("\n") { text.removeLast() }
                if level.rawValue <= FUSE_LOG_ERR.rawValue {
                    state.lastError = text.hasPrefix("fuse: ") ? String(text.dropFirst(6)) : text
                }
                return (text, state.sink)
            }
            guard let line else { return }
            if let sink { sink("libfuse: " + line) } else { writeStandardError(line) }
        }
    }

    static func clearLastError() { state.withLock { $0.lastError = nil } }

    /// The last error line, including one still missing its newline.
    static func lastError() -> String? {
        state.withLock { state in
            if !state.pending.isEmpty {
                let text = state.pending.hasPrefix("fuse: ") ? String(state.pending.dropFirst(6)) : state.pending
                state.pending = ""
                state.lastError = text
            }
            return state.lastError
        }
    }
}
