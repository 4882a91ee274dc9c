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
            InitCommand.self, MountCommand.self, UnmountCommand.self, LogCommand.self, FsckCommand.self, GCCommand.self,
            KeyCommand.self, ContactCommand.self, ShareCommand.self, UnshareCommand.self, SharesCommand.self, TrustCommand.self, RemoteCommand.self, GroupCommand.self, SyncCommand.self, StatusCommand.self, ServeCommand.self,
        ]
    )
}

/// The `--home` option every command shares, and where the key pair's passphrase comes from.
struct HomeOption: ParsableArguments {
    @Option(name: .long, help: "The device's home directory (default: $CDSFS_HOME or ~/.local/share/cdsfs).")
    var home: String?

    @Option(name: .long, help: ArgumentHelp(
        "If the key pair is protected by a passphrase: read it from the first line of FILE (else $CDSFS_PASSPHRASE is used, else it is asked for on the terminal).",
        valueName: "file"))
    var passphraseFile: String?

    var path: String { Home.resolvePath(home) }

    /// Opens the home or ends the command with one line saying what to do.
    func open() -> Home {
        do { return try Home.open(path: path, passphrase: { passphrase() }) } catch { fail(error.description) }
    }

    /// The passphrase of the home's key pair: $CDSFS_PASSPHRASE, else --passphrase-file, else asked on
    /// the terminal when standard input is one; nil if none of them.
    func passphrase() -> [UInt8]? {
        Passphrase.fromEnvironment() ?? passphraseFile.map(Passphrase.read(file:))
            ?? Passphrase.ask("Passphrase for \(path)/key-pair: ")
    }
}

import CondensationFS
