import ArgumentParser
import Condensation
import CondensationFS
import Glibc

/// Opens a remote store by URL: `file:///path` (a folder store, e.g. a shared disk),
/// `http://host:port` (a `cdsfs serve` or any Condensation HTTP store) or
/// `s3://bucket/prefix?endpoint=…` (a bucket, with no server in between). A remote written as several
/// URLs separated by spaces is one store reached through any of them (`FailoverStore`): the next is
/// used when one is unreachable.
func openRemote(_ url: String, _ home: Home) throws -> any Store {
    let urls = url.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    if urls.count > 1 { return FailoverStore(try urls.map { try openRemote($0, home) }) }
    if url.hasPrefix("s3://") {
        do { return try S3Store(url: url) } catch { throw CLIError(error.description) }
    }
    if url.hasPrefix("file://") {
        let path = String(url.dropFirst(7))
        guard let store = FolderStore.open(path) else {
            throw CLIError("\(url) is not a folder store (it needs objects/ and accounts/)")
        }
        return store
    }
    if url.hasPrefix("http://") {
        return try openHTTPStore(url, keyPair: home.keyPair)
    }
    throw CLIError("\(url): remote URLs start with http://, s3:// or file://")
}

/// An error whose description is the whole message.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// The home's first remote, or a clear line saying how to add one.
func firstRemote(_ home: Home) -> (String, any Store) {
    guard let url = home.remotes.first else {
        fail("no remote store: add one with `cdsfs remote add URL`")
    }
    return (url, orFail { try openRemote(url, home) })
}

/// Pushes the current version right after a change of who may read it (a device, an entrusted
/// key), so that the new reader has it without waiting for the next commit; fails in one line.
func sendCurrentVersion(_ home: Home, _ remote: any Store, _ what: String = "sending the current version") -> Syncer.Report {
    orFail(what) { try Syncer(home: home, remote: remote, volume: nil).push() }
}

struct RemoteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remote",
        abstract: "Manage the remote stores this device syncs through.",
        subcommands: [Add.self, List.self, Remove.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a remote store (http://HOST:PORT, s3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT, or file:///PATH).",
            discussion: """
            Several URLs make one remote reached through any of them: server instances that serve one \
            store (e.g. one S3 bucket). Requests go to the first; when it cannot be reached, to the next. \
            An s3:// remote is checked now (endpoint, credentials from AWS_ACCESS_KEY_ID and \
            AWS_SECRET_ACCESS_KEY or ~/.aws/credentials, bucket); the devices then sync through the bucket \
            with no server, and each needs the credentials.
            """)
        @OptionGroup var home: HomeOption
        @Argument(help: "The store's URL; several for one store served by several instances.") var urls: [String]

        func validate() throws {
            if urls.isEmpty { throw ValidationError("give the remote's URL") }
        }

        func run() throws {
            let h = home.open()
            for u in urls where u.hasPrefix("s3://") { _ = openS3Store(u) }
            let url = urls.joined(separator: " ")
            _ = orFail { try openRemote(url, h) }
            var settings = h.settings
            if settings.values("remote").contains(url) { fail("\(url) is already a remote") }
            settings.add("remote", url)
            orFail { try settings.save() }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the remote stores.")
        @OptionGroup var home: HomeOption
        func run() throws { for url in home.open().remotes { print(url) } }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a remote store (nothing is deleted on it).")
        @OptionGroup var home: HomeOption
        @Argument(help: "The store's URL (all of them, if it has several), as `cdsfs remote list` shows it.") var urls: [String]

        func run() throws {
            let url = urls.joined(separator: " ")
            var settings = home.open().settings
            guard settings.values("remote").contains(url) else {
                if let line = settings.values("remote").first(where: { $0.split(separator: " ").map(String.init).contains(url) }) {
                    fail("\(url) is one URL of the remote `\(line)`: give all of them, `cdsfs remote remove \(line)`")
                }
                fail("\(url) is not a remote; see `cdsfs remote list`")
            }
            settings.remove("remote", url)
            orFail { try settings.save() }
        }
    }
}

struct GroupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group",
        abstract: "Manage the devices that share this folder.",
        discussion: """
        To add a device: on the new device run `cdsfs init --remote URL` (it prints its actor id); \
        on a device of the group run `cdsfs group add ACTOR_ID`; then `cdsfs sync` or mount on the \
        new device.
        """,
        subcommands: [Add.self, List.self, Remove.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a device and send it the current version.")
        @OptionGroup var home: HomeOption
        @Argument(help: "The new device's actor id (64 hex digits, printed by its `cdsfs init`).") var actor: String

        func run() throws {
            let h = home.open()
            let id = actorID(actor)
            let (_, remote) = firstRemote(h)
            orFail { try h.addMember(id, remote: remote) }
            let report = sendCurrentVersion(h, remote)
            print("added \(id.hex); sent the current version (\(report.messagesSent) message(s))")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the group's devices.")
        @OptionGroup var home: HomeOption

        func run() throws {
            let h = home.open()
            let members = orFail { try h.members() }
            for (actor, m) in members.sorted(by: { $0.key < $1.key }) {
                let me = actor == h.keyPair.actor ? "  (this device)" : ""
                print("\(actor.hex)  \(m.status.rawValue)  \(m.store)\(me)")
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a device: its messages are refused and later versions are not encrypted for it.",
            discussion: "What the device already received stays readable to it.")
        @OptionGroup var home: HomeOption
        @Argument(help: "The device's actor id.") var actor: String

        func run() throws {
            let h = home.open()
            let id = actorID(actor)
            orFail { try h.removeMember(id) }
            if let url = h.remotes.first, let remote = try? openRemote(url, h) {
                _ = try? Syncer(home: h, remote: remote, volume: nil).push()
            }
            print("revoked \(id.hex)")
        }
    }
}

struct SyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Push this device's versions and pull the others', once.",
        discussion: "A mounted folder syncs in the background; use this when nothing is mounted."
    )

    @OptionGroup var home: HomeOption

    func run() throws {
        let h = home.open()
        let (url, remote) = firstRemote(h)
        let syncer = Syncer(home: h, remote: remote, volume: nil)
        let interactive = isatty(2) != 0
        let pulled = orFail("pulling from \(url)") { try syncer.pull() }.0
        let pushed = orFail("pushing to \(url)") {
            try syncer.push { p in
                if interactive { progressLine("pushing: \(p.objectsTransferred) objects, \(formatBytes(UInt64(p.bytesTransferred)))") }
            }
        }
        if interactive { progressLine(nil) }
        for line in pulled.merged { print("pulled: \(line)") }
        if pulled.discarded > 0 { print("discarded \(pulled.discarded) message(s) that did not verify (see the log)") }
        print("pushed \(pushed.objects) objects (\(formatBytes(pushed.bytes))) to \(url); \(pushed.messagesSent) message(s) sent")
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the remote, whether it is reachable, what waits to go out, and the last push and pull.")

    @OptionGroup var home: HomeOption

    func run() throws {
        let h = home.open()
        print("device:  \(h.keyPair.actor.hex)")
        let current = try? h.currentVersion()
        print("version: \(current.map { $0.link.hash.hex } ?? "none yet (waiting to join a group: run `cdsfs sync`)")")
        let state = h.syncStatus
        guard let url = h.remotes.first else {
            print("remote:  none (add one with `cdsfs remote add URL`)")
            return
        }
        let reachable: String
        do {
            let remote = try openRemote(url, h)
            _ = try remote.list(h.keyPair.actor, .public)
            reachable = "reachable"
        } catch {
            reachable = "unreachable (\(error))"
        }
        print("remote:  \(url), \(reachable)")
        let waiting = current.map { $0.link.hash.hex != state.pushedVersion } ?? false
        print("to push: \(waiting ? "the current version has not been pushed" : "nothing")")
        print("last push: \(state.lastPush.map(formatTime) ?? "never")")
        print("last pull: \(state.lastPull.map(formatTime) ?? "never")")
    }
}
