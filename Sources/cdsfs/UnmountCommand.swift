import ArgumentParser
import CLinux
import CondensationFS
import FuseMount
import Glibc

/// `cdsfs unmount`: commits through the mount, unmounts with fusermount3 (the mount process then
/// commits what came since and exits) and returns once the mount process has ended, so that the final
/// commit is done when the command returns.
///
/// If the changes cannot be committed (the store's disk full or read-only), it does not unmount: the
/// mount keeps them in memory and keeps serving, and the command says why in one line and fails, as
/// `umount` does for a busy filesystem. Unmounting anyway (`fusermount3 -u`) would lose them.
struct UnmountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unmount",
        abstract: "Unmount the folder; returns once its last changes are committed.",
        discussion: """
        Fails if a program still uses the folder (its working directory or an open file is inside), \
        or if its changes cannot be committed (the store's disk full or read-only): the folder then \
        stays mounted with the changes in memory; free space (or make the store writable) and run it \
        again.
        """
    )

    @Option(name: .long, help: "The home of the mount, if the mount table does not name it.")
    var home: String?

    @Option(help: "Seconds to wait for the final commit.") var timeout: Double = 600

    @Argument(help: "Where the folder is mounted.") var mountpoint: String

    func run() throws {
        let path = canonicalMountpoint(mountpoint)
        guard let entry = MountTable.current().entry(at: path) else { fail("\(path) is not mounted") }
        guard entry.type == "fuse.cdsfs" else { fail("\(path) is not a cdsfs mount (it is \(entry.type))") }

        let homePath = home.map { Home.resolvePath($0) } ?? (entry.source.hasPrefix("/") ? entry.source : nil)
        // Opened before unmounting: the mount process holds it locked until it exits.
        let pidFile = homePath.map { open(PidFile.path(home: $0, mountpoint: path), O_RDONLY | O_CLOEXEC) } ?? -1

        if let problem = commitThroughMount(path) { fail(problem) }
        if let problem = unmount(path) { fail(problem) }
        guard pidFile >= 0 else { return }
        defer { close(pidFile) }
        let deadline = monotonicSeconds() + timeout
        while flock(pidFile, LOCK_SH | LOCK_NB) != 0 {
            if errno != EWOULDBLOCK && errno != EINTR { return }
            if monotonicSeconds() > deadline {
                fail("unmounted, but the mount process is still committing after \(Int(timeout)) s; "
                     + "it finishes in the background (see \(homePath ?? "HOME")/mount.log)")
            }
            usleep(20_000)
        }
    }

    /// The mount point as the mount table spells it: absolute and, where it can be resolved, without
    /// symbolic links (a dead mount cannot be resolved: then the path as given).
    func canonicalMountpoint(_ path: String) -> String {
        let absolute = absolutePath(path)
        guard let resolved = realpath(absolute, nil) else { return absolute }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Commits the folder's changes while it is still mounted: the kernel's cached writes go to the
    /// mount process (syncfs), then an fsync of the root directory commits them. Nil when they are
    /// committed (or when the mount process is gone, so nothing can be); else the reason not to unmount.
    func commitThroughMount(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return nil }  // a dead mount (ENOTCONN): nothing to commit, clean it up
        defer { close(fd) }
        // The kernel's cached writes first: a write-back error was told to the writer already, and
        // what the mount answered to it is in the commit that follows (or is the reason it fails).
        _ = clinux_syncfs(fd)
        let failure = fsync(fd) == 0 ? 0 : errno
        switch failure {
        case 0, ENOTCONN, ECONNABORTED: return nil
        case ENOSPC, EDQUOT:
            return "cannot unmount \(path): its changes cannot be committed, the store's disk is full; they are kept "
                + "in memory and the folder stays mounted: free space on the store's disk and unmount again"
        case EROFS:
            return "cannot unmount \(path): its changes cannot be committed, the store is read-only; they are kept "
                + "in memory and the folder stays mounted: make the store writable and unmount again"
        default:
            return "cannot unmount \(path): its changes cannot be committed (\(String(cString: strerror(failure)))); "
                + "they are kept in memory and the folder stays mounted: see the mount log, then unmount again"
        }
    }

    /// Runs `fusermount3 -u` (or umount(2) without it); nil on success, else the reason in one line.
    func unmount(_ path: String) -> String? {
        var fds: [Int32] = [0, 0]
        guard makePipe(&fds) else { return "cannot create a pipe: \(String(cString: strerror(errno)))" }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        let arguments: [String] = ["fusermount3", "-u", "--", path]
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawnp(&pid, "fusermount3", &actions, nil, argv, environ)
        close(fds[1])
        defer { close(fds[0]) }
        if spawned != 0 {
            // No fusermount3: root can unmount directly.
            if umount2(path, 0) == 0 { return nil }
            return "cannot unmount \(path): \(String(cString: strerror(errno)))"
        }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            output += chunk[0..<n]
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if status == 0 { return nil }
        // "fusermount3: failed to unmount /x: Device or resource busy" → the reason.
        let message = String(decoding: output, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        let reason = message.split(separator: ":").last.map { $0.trimmingPrefix(" ") }.map(String.init) ?? "fusermount3 failed"
        if reason.contains("busy") {
            return "cannot unmount \(path): it is busy (a program has its working directory or a file open there)"
        }
        return "cannot unmount \(path): \(reason.isEmpty ? message : reason)"
    }
}
