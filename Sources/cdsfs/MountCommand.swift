import ArgumentParser
import CLinux
import Condensation
import CondensationFS
import FuseMount
import Glibc

/// `cdsfs mount`: serves the home's folder at a mount point.
///
/// Without --foreground the command starts the mount as a fresh process (posix_spawn of /proc/self/exe
/// with --foreground and a hidden --ready-fd; never fork, which breaks Swift concurrency) and returns
/// once that process reports the folder mounted and answering, or prints the one line it reported. The
/// mount process detaches (setsid), logs to HOME/mount.log, and records its pid in HOME/mount.pid
/// (writable mounts: one writer per home) and HOME/mounts/<mount point>.pid (every mount; `cdsfs
/// unmount` waits on it).
struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount the encrypted folder at a directory.",
        discussion: """
        Returns once the folder is mounted; the mount runs in the background and logs to HOME/mount.log. \
        With --foreground it stays in front, logs to standard error, and unmounts on Ctrl-C, SIGTERM or \
        SIGHUP. Changes are committed at most commit_interval seconds after they happen, on fsync, and \
        at unmount (`cdsfs unmount MOUNTPOINT` or `fusermount3 -u MOUNTPOINT`).

        Options (-o, comma-separated):
          ro                 read-only
          allow_other        let other users in (needs root or user_allow_other)
          commit_interval=S  seconds from a change to its commit (default 5)
          debug              log every FUSE request
          nosuid, nodev, noexec, noatime, sync, dirsync, and their opposites
                             kernel mount flags
        """
    )

    @OptionGroup var home: HomeOption

    @Flag(name: [.customShort("f"), .long], help: "Stay in the foreground (log to standard error).")
    var foreground = false

    @Option(name: .customShort("o"), parsing: .singleValue,
            help: ArgumentHelp("Mount options, comma-separated (see above).", valueName: "options"))
    var options: [String] = []

    @Option(help: ArgumentHelp("Mount a past version read-only: a hash (or unique prefix) from `cdsfs log`, or a time (YYYY-MM-DD[THH:MM[:SS]] UTC).",
                               valueName: "version"))
    var at: String?

    @Option(help: .hidden) var readyFd: Int32?
    /// The key pair's passphrase, from the parent (never on a command line, nor in the environment).
    @Option(help: .hidden) var passphraseFd: Int32?

    @Argument(help: "An empty directory to mount the folder at.") var mountpoint: String

    func run() throws {
        let settings: MountSettings
        do { settings = try MountSettings(options) } catch { fail(error.description) }
        let homePath = home.path
        let mountpointPath = absolutePath(mountpoint)

        if foreground {
            // Two malloc arenas, not one per FUSE thread: page buffers are allocated by whichever
            // thread the kernel picked and freed by the committer, and per-thread arenas kept
            // that memory (peak RSS writing 1 GiB: 252 MB with the default, 146 MB with two).
            _ = clinux_limit_malloc_arenas(2)
            // A fixed mmap threshold: glibc otherwise raises it to the largest block freed so far,
            // then serves the 5 MiB chunking windows from arenas that keep them once freed.
            // Extracting a source tree peaked at 330-400 MB resident that way, 270-278 MB with
            // 512 KiB (128 KiB also mmapped every 256 KiB read buffer: page faults and TLB
            // shootdowns cost a sequential read 10% more CPU).
            _ = clinux_fix_mmap_threshold(512 * 1024)
            let reporter = Reporter(readyFd: readyFd)
            if readyFd != nil { detach() }
            serve(homePath: homePath, mountpoint: mountpointPath, settings: settings, reporter: reporter)
        }

        // Quick checks here, so that the common mistakes need no second process.
        do {
            try FuseSession.checkFuseDevice()
            _ = try FuseSession.checkMountpoint(mountpointPath)
        } catch { fail(error.description) }
        guard FileSystem.isDirectory(homePath), FileSystem.exists(homePath + "/key-pair") else {
            fail(Home.Problem.missing(homePath).description)
        }
        startInBackground(homePath: homePath, mountpoint: mountpointPath)
    }

    // MARK: - The parent: start the mount process and wait for its word

    /// Seconds to wait for the mount process to report.
    static let readyTimeout: Int32 = 120

    func startInBackground(homePath: String, mountpoint: String) -> Never {
        var fds: [Int32] = [0, 0]
        guard makePipe(&fds) else { fail("cannot create a pipe: \(String(cString: strerror(errno)))") }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        let childFd: Int32 = 3
        // A wrapped key pair: the passphrase is asked here (the mount process has no terminal) and
        // handed over through a pipe on descriptor 4; the child's environment goes without it.
        let passphraseFd: Int32 = 4
        var passphrasePipe: Int32?
        if let file = try? FileSystem.read(homePath + "/key-pair", limit: 1 << 20), WrappedKeyPair.isWrapped(file) {
            guard let secret = home.passphrase() else { fail(Home.Problem.passphraseNeeded(homePath + "/key-pair").description) }
            var p: [Int32] = [0, 0]
            guard makePipe(&p) else { fail("cannot create a pipe: \(String(cString: strerror(errno)))") }
            // At most 4 KiB: it fits in the pipe at once, so this cannot block.
            _ = secret.withUnsafeBytes { write(p[1], $0.baseAddress, $0.count) }
            close(p[1])
            passphrasePipe = p[0]
        }
        defer { if let passphrasePipe { close(passphrasePipe) } }

        var arguments = ["cdsfs", "mount", "--home", homePath, "--foreground", "--ready-fd", String(childFd)]
        if !options.isEmpty { arguments += ["-o", options.joined(separator: ",")] }
        if let at { arguments += ["--at", at] }
        if passphrasePipe != nil { arguments += ["--passphrase-fd", String(passphraseFd)] }
        arguments += ["--", mountpoint]

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, childFd)  // dup2 clears close-on-exec
        if let passphrasePipe { posix_spawn_file_actions_adddup2(&actions, passphrasePipe, passphraseFd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The child starts with default signal actions and nothing blocked, whatever the caller set.
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var environment: [UnsafeMutablePointer<CChar>?] = []
        var e = environ
        while let entry = e.pointee {
            if passphrasePipe == nil || strncmp(entry, "CDSFS_PASSPHRASE=", 17) != 0 { environment.append(entry) }
            e += 1
        }
        environment.append(nil)
        var pid = pid_t()
        let spawned = posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, argv, environment)
        close(writeEnd)
        guard spawned == 0 else { fail("cannot start the mount process: \(String(cString: strerror(spawned)))") }

        let message = readReport(readEnd, timeoutSeconds: Self.readyTimeout)
        close(readEnd)
        switch message {
        case .ready:
            Glibc.exit(0)
        case .failed(let line):
            reap(pid)
            fail(line)
        case .ended:
            reap(pid)
            fail("the mount process ended without mounting; see \(homePath)/mount.log")
        case .timedOut:
            fail("the folder was not mounted within \(Self.readyTimeout) s; the mount process \(pid) may still be "
                 + "starting: see \(homePath)/mount.log")
        }
    }

    enum Report { case ready, failed(String), ended, timedOut }

    /// Reads the child's one line: "ok", or "error <message>".
    func readReport(_ fd: Int32, timeoutSeconds: Int32) -> Report {
        var bytes: [UInt8] = []
        let deadline = monotonicSeconds() + Double(timeoutSeconds)
        while true {
            let left = deadline - monotonicSeconds()
            if left <= 0 { return .timedOut }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let polled = poll(&poller, 1, Int32(min(left * 1000, 1000)))
            if polled < 0 && errno != EINTR { return .ended }
            if polled <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .ended
            }
            if n > 0 { bytes += chunk[0..<n] }
            if let newline = bytes.firstIndex(of: 10) ?? (n == 0 && !bytes.isEmpty ? bytes.endIndex : nil) {
                let line = String(decoding: bytes[..<newline], as: UTF8.self)
                if line == "ok" { return .ready }
                if line.hasPrefix("error ") { return .failed(String(line.dropFirst(6))) }
                return .failed(line)
            }
            if n == 0 { return .ended }
        }
    }

    /// Collects a child that reported failure (it exits right after), so no zombie remains.
    func reap(_ pid: pid_t) {
        var status: Int32 = 0
        for _ in 0..<100 {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno != EINTR) { return }
            usleep(20_000)
        }
    }

    // MARK: - The mount process

    /// The passphrase the parent wrote into the pipe at `fd` (which is closed then).
    func readPassphrase(_ fd: Int32) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= Passphrase.maximumLength {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        close(fd)
        return bytes
    }

    /// A background mount process leaves the caller's session and working directory.
    func detach() {
        signal(SIGPIPE, SIG_IGN)  // the parent may have given up waiting
        _ = setsid()
        _ = chdir("/")
    }

    func serve(homePath: String, mountpoint: String, settings: MountSettings, reporter: Reporter) -> Never {
        FolderStore.raiseOpenFileLimit()
        let h: Home
        do { h = try Home.open(path: homePath, passphrase: { passphraseFd.map(readPassphrase) ?? home.passphrase() }) } catch {
            reporter.fail(error.description)
        }

        // From here on the home exists: a background mount logs to HOME/mount.log.
        if reporter.isBackground {
            let log = open(homePath + "/mount.log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            if log >= 0 {
                dup2(log, 1)
                dup2(log, 2)
                close(log)
            }
        }
        if settings.debug { Log.setLevel(.debug) }

        let readOnly = settings.readOnly || at != nil
        do {
            try FuseSession.checkFuseDevice()
            _ = try FuseSession.checkMountpoint(mountpoint)
        } catch { reporter.fail(error.description) }

        // One writer per home: two writable mounts would race on the private box.
        var pidFiles: [Int32] = []
        if !readOnly {
            switch PidFile.acquire(homePath + "/mount.pid") {
            case .acquired(let fd): pidFiles.append(fd)
            case .busy:
                let other = MountTable.current().entries.first { $0.source == homePath && $0.type == "fuse.cdsfs" }
                reporter.fail("\(homePath) is already mounted read-write" + (other.map { " at \($0.mountPoint)" } ?? "")
                              + ": one writable mount per home (add -o ro for another, read-only one)")
            case .failed(let why): reporter.fail("cannot write \(homePath)/mount.pid: \(why)")
            }
        }
        try? FileSystem.makeDirectories(homePath + "/mounts", mode: 0o700)
        switch PidFile.acquire(PidFile.path(home: homePath, mountpoint: mountpoint)) {
        case .acquired(let fd): pidFiles.append(fd)
        case .busy: reporter.fail(MountError.alreadyMounted(mountpoint, type: "fuse.cdsfs").description)
        case .failed(let why): reporter.fail("cannot write the pid file in \(homePath)/mounts: \(why)")
        }

        var volumeOptions = VolumeOptions()
        volumeOptions.readOnly = readOnly
        if let interval = settings.commitInterval { volumeOptions.commitInterval = interval }
        if let at {
            do { volumeOptions.version = try h.resolveVersion(at) } catch { reporter.fail("--at \(at): \(error)") }
        }
        if !readOnly, (try? h.currentVersion()) == nil, let url = h.remotes.first {
            // A device that joined a group and has not received its folder yet: pull it first.
            Log.info("no filesystem yet; pulling the group's from \(url)")
            do {
                let syncer = Syncer(home: h, remote: try openRemote(url, h), volume: nil)
                for _ in 0..<3 where (try? h.currentVersion()) == nil { _ = try syncer.pull(wait: 5_000) }
            } catch { reporter.fail("cannot reach \(url) to receive the group's folder: \(error)") }
            if (try? h.currentVersion()) == nil {
                reporter.fail("this device has not been added to a group yet: on a device of the group run `cdsfs group add \(h.keyPair.actor.hex)`, then mount again")
            }
        }
        let volume: Volume
        do { volume = try h.openVolume(options: volumeOptions) } catch { reporter.fail("\(error)") }

        var mountOptions = MountOptions()
        mountOptions.readOnly = readOnly
        mountOptions.allowOther = settings.allowOther
        mountOptions.debug = settings.debug
        mountOptions.kernelFlags = settings.kernelFlags
        // The source column names the home, so that `mount` shows it and `cdsfs unmount` finds it.
        mountOptions.fsname = homePath
        mountOptions.log = { Log.info($0) }

        let session: FuseSession
        do {
            session = try FuseSession(volume: volume, mountpoint: mountpoint, options: mountOptions)
        } catch {
            try? volume.close()
            reporter.fail(error.description)
        }

        // The syncer, when the home has a remote and the mount may change the folder.
        let background = readOnly ? nil : startSync(h, volume, session)
        let description = "\(homePath) at \(session.mountpoint)"
            + (at.map { " (version \($0), read-only)" } ?? (readOnly ? " (read-only)" : ""))
        do {
            try session.run(onReady: {
                Log.info("ready: \(description)")
                background?.sync.start()
                reporter.ready()
            }, onStop: {
                background?.sync.stop()
            })
        } catch {
            Log.error("\(error)")
            reporter.fail(error.description)
        }
        if let background {
            // The last commit goes out now rather than at the next mount or `cdsfs sync`.
            do { _ = try background.syncer.push() } catch { Log.warning("final push failed (\(error))") }
        }
        _ = pidFiles  // held (locked) until the process exits
        Log.info("done: \(description)")
        Glibc.exit(0)
    }
}

/// A background syncer for a writable mount whose home has a remote; merges from other devices reach
/// the kernel through `session.invalidate`.
func startSync(_ h: Home, _ volume: Volume, _ session: FuseSession) -> (sync: BackgroundSync, syncer: Syncer)? {
    guard let url = h.remotes.first else { return nil }
    do {
        let syncer = Syncer(home: h, remote: try openRemote(url, h), volume: volume)
        let sync = BackgroundSync(syncer: syncer) { [session] in session.invalidate($0) }
        return (sync, syncer)
    } catch {
        Log.warning("remote \(url) cannot be used (\(error)); mounted without syncing")
        return nil
    }
}

/// The mount options of -o.
struct MountSettings {
    var readOnly = false
    var allowOther = false
    var debug = false
    var commitInterval: Double? = nil
    var kernelFlags: [String] = []

    struct Problem: Error, CustomStringConvertible { let description: String }

    init(_ lists: [String]) throws(Problem) {
        for option in lists.flatMap({ $0.split(separator: ",").map(String.init) }) where !option.isEmpty {
            let (name, value) = option.firstIndex(of: "=").map {
                (String(option[..<$0]), String(option[option.index(after: $0)...]))
            } ?? (option, nil)
            switch (name, value) {
            case ("ro", nil): readOnly = true
            case ("rw", nil): readOnly = false
            case ("allow_other", nil): allowOther = true
            case ("debug", nil): debug = true
            case ("default_permissions", nil): break  // always on
            case ("commit_interval", let value?):
                guard let seconds = Double(value), seconds > 0, seconds.isFinite else {
                    throw Problem(description: "-o commit_interval=\(value): give a number of seconds above 0")
                }
                commitInterval = seconds
            case (let flag, nil) where MountOptions.kernelFlags.contains(flag):
                kernelFlags.append(flag)
            default:
                throw Problem(description: "unknown mount option `\(option)`: use ro, allow_other, "
                              + "commit_interval=SECONDS, debug, or a kernel flag (nosuid, nodev, noexec, noatime, sync, dirsync)")
            }
        }
    }
}

/// How the mount process reports: through the pipe to the waiting parent (background), or on standard
/// error (foreground).
final class Reporter: @unchecked Sendable {
    private let fd: Int32?
    private var reported = false
    private var mutex = pthread_mutex_t()

    init(readyFd: Int32?) {
        fd = readyFd
        pthread_mutex_init(&mutex, nil)
    }

    var isBackground: Bool { fd != nil }

    func ready() { send("ok") }

    /// Ends the process with one line for the person who ran `cdsfs mount`.
    func fail(_ message: String) -> Never {
        let line = message.split(separator: "\n").first.map(String.init) ?? message
        if fd != nil {
            Log.error(line)
            send("error " + line)
            Glibc.exit(1)
        }
        cdsfs.fail(line)
    }

    private func send(_ line: String) {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard let fd, !reported else { return }
        reported = true
        let text = line + "\n"
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }
}

/// A pid file held with flock for the life of the mount process: the lock says the process lives
/// (it goes when the process ends, however it ends), and `cdsfs unmount` waits for it.
enum PidFile {
    enum Outcome { case acquired(Int32), busy, failed(String) }

    static func acquire(_ path: String) -> Outcome {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return .failed(String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            return code == EWOULDBLOCK ? .busy : .failed(String(cString: strerror(code)))
        }
        let text = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        return .acquired(fd)
    }

    /// HOME/mounts/<mount point, escaped as systemd-escape --path does>.pid
    static func path(home: String, mountpoint: String) -> String {
        home + "/mounts/" + escapePath(mountpoint) + ".pid"
    }

    /// systemd's path escaping: "/mnt/my files" → "mnt-my\x20files"; "/" → "-".
    static func escapePath(_ path: String) -> String {
        let trimmed = path.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
        if trimmed.isEmpty { return "-" }
        var result = ""
        for (i, byte) in trimmed.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "/"):
                result.append("-")
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "."):
                if i == 0 && byte == UInt8(ascii: ".") { fallthrough }
                result.append(Character(UnicodeScalar(byte)))
            default:
                result += "\\x" + String(byte, radix: 16).leftPadded(2)
            }
        }
        return result
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// `path` made absolute (against the working directory) without resolving links.
func absolutePath(_ path: String) -> String {
    var full = path
    if !path.hasPrefix("/") {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        if getcwd(&buffer, buffer.count) != nil {
            let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            full = cwd + "/" + path
        }
    }
    var parts: [Substring] = []
    for part in full.split(separator: "/") {
        if part == "." { continue }
        if part == ".." { _ = parts.popLast(); continue }
        parts.append(part)
    }
    return "/" + parts.joined(separator: "/")
}

/// pipe(2) with both ends close-on-exec (pipe2 needs _GNU_SOURCE, which the Glibc module lacks).
func makePipe(_ fds: inout [Int32]) -> Bool {
    guard pipe(&fds) == 0 else { return false }
    _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
    _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
    return true
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// The names the command list may use.


