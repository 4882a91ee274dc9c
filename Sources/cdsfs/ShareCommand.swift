import ArgumentParser
import CLinux
import Condensation
import CondensationFS
import FuseMount
import Glibc

struct ShareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "share",
        abstract: "Share a folder of a mounted cdsfs folder with a contact.",
        discussion: """
        PATH must be a folder inside a mounted cdsfs folder (the mount does the change). It becomes a \
        container, a folder with its own key and history, and the contact is recorded as its recipient, \
        read-only unless --write. `getfattr -n user.cdsfs.recipients PATH` lists the recipients.

        The mount's syncer then sends the folder to the contact's store with a message; their mount \
        shows it as Shared/<folder> (<your name>), and later versions follow as you commit them. \
        With --write their changes come back to you and merge with yours as your devices' do \
        (a file changed on both sides keeps both versions).
        """)
    @OptionGroup var home: HomeOption
    @Argument(help: "The folder to share (inside a mounted cdsfs folder).") var path: String
    @Argument(help: "The contact's name, as `cdsfs contact list` shows it.") var contact: String
    @Flag(help: "Let the contact change the folder too.") var write = false

    func run() throws {
        let h = home.open()
        let found = orFail { try h.contact(named: contact) }
        guard let c = found else {
            fail("\(contact) is not a contact: add them with `cdsfs contact add \(contact) ACTOR_ID --store URL`")
        }
        var st = stat()
        guard stat(path, &st) == 0 else { fail("\(path) does not exist") }
        guard st.st_mode & S_IFMT == S_IFDIR else { fail("\(path) is not a folder; share the folder that holds it") }
        try requireMounted(path, home: h.path)
        let value = Array((c.actor.hex + (write ? " w" : "")).utf8)
        if clinux_setxattr(path, Volume.shareAttribute, value, UInt(value.count)) != 0 {
            switch errno {
            case ENOTSUP, EPERM, EACCES: fail("\(path) cannot be shared: the mount refused (\(String(cString: strerror(errno))))")
            case EROFS: fail("\(path) is on a read-only mount")
            case EINVAL: fail("the mounted folder's top cannot be shared; share a folder inside it")
            case EXDEV: fail("\(path) holds files with several names (hard links); a shared folder cannot")
            default: fail("sharing \(path): \(String(cString: strerror(errno)))")
            }
        }
        print("\(path) is shared with \(c.name) (\(write ? "read and write" : "read-only")); it reaches them with the mount's next sync")
    }
}

/// Fails unless `path` is inside a cdsfs mount of the home at `home`: the control attributes are
/// the mount's, and on another filesystem they would be stored as ordinary attributes.
func requireMounted(_ path: String, home: String) throws {
    guard let real = realpath(path, nil) else { fail("\(path) does not exist") }
    let resolved = String(cString: real)
    free(real)
    let containing = MountTable.current().entries.filter {
        resolved == $0.mountPoint || resolved.hasPrefix($0.mountPoint == "/" ? "/" : $0.mountPoint + "/")
    }.max { $0.mountPoint.count < $1.mountPoint.count }
    guard let mount = containing, mount.type == "fuse.cdsfs" else {
        fail("\(path) is not inside a mounted cdsfs folder: mount it with `cdsfs mount` and give a path inside")
    }
    guard mount.source == home else {
        fail("\(path) is in the mount of the home \(mount.source), not \(home): give --home \(mount.source)")
    }
}

struct SharesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shares",
        abstract: "List the folders shared with contacts, and those contacts share with you.",
        discussion: "Read from the newest committed version, so every device of yours lists the same.")
    @OptionGroup var home: HomeOption

    func run() throws {
        let h = home.open()
        let lines = orFail { try h.shareLines() }
        if lines.isEmpty { print("nothing is shared") }
        for l in lines { print(l) }
    }
}

struct UnshareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unshare",
        abstract: "Stop sharing a folder with a contact.",
        discussion: """
        The folder gets a new key for its next versions, and they are not sent to the contact; their \
        mount stops receiving updates. What they already received stays readable to them (as with any \
        copy someone was given): unsharing takes back the future, not the past.
        """)
    @OptionGroup var home: HomeOption
    @Argument(help: "The shared folder (inside a mounted cdsfs folder).") var path: String
    @Argument(help: "The contact's name, as `cdsfs contact list` shows it.") var contact: String

    func run() throws {
        let h = home.open()
        let found = orFail { try h.contact(named: contact) }
        guard let c = found else { fail("\(contact) is not a contact; see `cdsfs contact list`") }
        var st = stat()
        guard stat(path, &st) == 0 else { fail("\(path) does not exist") }
        try requireMounted(path, home: h.path)
        let value = Array(c.actor.hex.utf8)
        if clinux_setxattr(path, Volume.unshareAttribute, value, UInt(value.count)) != 0 {
            switch errno {
            case ENODATA: fail("\(path) is not shared with \(c.name); see `cdsfs shares`")
            case EROFS: fail("\(path) is on a read-only mount")
            default: fail("unsharing \(path): \(String(cString: strerror(errno)))")
            }
        }
        print("\(path) is no longer shared with \(c.name); its next versions have a new key")
    }
}
