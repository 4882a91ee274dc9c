import ArgumentParser

struct CDSFS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cdsfs",
        abstract: "An end-to-end encrypted folder on a Condensation store.",
        discussion: """
        cdsfs mounts a Condensation store as an ordinary folder. Everything it writes to the store is \
        encrypted and content-addressed; every change becomes a new version of the folder.

        Every command takes --home DIR (else $CDSFS_HOME, else ~/.local/share/cdsfs): the device's key \
        pair, settings and local store.
        """,
        version: "0.1.0",
        subcommands: [
            InitCommand.self, Mount.self, Unmount.self, LogCommand.self, FsckCommand.self, GCCommand.self,
            KeyCommand.self, RemoteCommand.self, GroupCommand.self, SyncCommand.self, StatusCommand.self, ServeCommand.self,
        ]
    )
}

/// The `--home` option every command shares.
struct HomeOption: ParsableArguments {
    @Option(name: .long, help: "The device's home directory (default: $CDSFS_HOME or ~/.local/share/cdsfs).")
    var home: String?

    var path: String { Home.resolvePath(home) }

    /// Opens the home or ends the command with one line saying what to do.
    func open() -> Home {
        do { return try Home.open(path: path) } catch { fail(error.description) }
    }
}

import CondensationFS
