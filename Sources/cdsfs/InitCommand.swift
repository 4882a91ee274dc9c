import ArgumentParser
import Condensation
import CondensationFS

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a new home: a key pair, a local store, and an empty encrypted folder.",
        discussion: """
        Prints the new device's actor id (64 hex digits) on its own line. Refuses to touch a home \
        that already has a key pair.

        With --remote URL the device is to join an existing group: it announces itself on that store \
        and waits; on a device of the group run `cdsfs group add <printed id>`, then `cdsfs sync` (or \
        mount) here. --join ACTOR_ID accepts the group of that device only.
        """
    )

    @OptionGroup var home: HomeOption
    @Option(help: "A remote store to join a group through (http://HOST:PORT or file:///PATH).") var remote: String?
    @Option(help: "Only join the group of this device (its actor id).") var join: String?
    @Flag(help: "Protect the key pair file with a passphrase: $CDSFS_PASSPHRASE, --passphrase-file, or asked twice on the terminal.")
    var passphrase = false
    @Option(help: ArgumentHelp("Restore the folder and its history from --remote with this backup key (from `cdsfs key backup`); its passphrase comes from $CDSFS_BACKUP_PASSPHRASE, --backup-passphrase-file or the terminal.", valueName: "file"))
    var restore: String?
    @Option(help: ArgumentHelp("Read the backup key's passphrase from the first line of FILE.", valueName: "file"))
    var backupPassphraseFile: String?

    func run() throws {
        let path = home.path
        if join != nil && remote == nil { fail("--join needs --remote URL") }
        if let join, Hash(hex: join) == nil { fail("--join \(join) is not an actor id (64 hex digits)") }
        if let restore {
            guard let remote else { fail("--restore needs --remote URL: where the backup key's messages wait") }
            if join != nil { fail("--restore and --join do not go together") }
            runRestore(restore, remote: remote)
            return
        }
        let created: Home
        var secret: [UInt8]?
        if passphrase || home.passphraseFile != nil {
            if FileSystem.exists(path + "/key-pair") { fail(Home.Problem.alreadyInitialized(path).description) }
            secret = Passphrase.new(environment: "CDSFS_PASSPHRASE", file: home.passphraseFile,
                                    prompt: "Passphrase for \(path)/key-pair: ",
                                    missing: "--passphrase: set CDSFS_PASSPHRASE, give --passphrase-file FILE, or run on a terminal")
        }
        do { created = try Home.create(path: path, joining: remote != nil, passphrase: secret) } catch { fail(error.description) }
        if let remote {
            let store = orFail("the remote \(remote)") { try openRemote(remote, created) }
            var settings = created.settings
            settings.add("remote", remote)
            if let join { settings.set("join", join) }
            orFail { try settings.save() }
            orFail("announcing this device on \(remote)") { _ = try Syncer(home: created, remote: store, volume: nil).push() }
        }
        print(created.keyPair.actor.hex)
    }

    /// `--restore FILE --remote URL`: a new device with the folder the backup key was sent.
    private func runRestore(_ file: String, remote url: String) {
        let path = home.path
        if FileSystem.exists(path + "/key-pair") { fail(Home.Problem.alreadyInitialized(path).description) }
        let read: [UInt8]?
        do { read = try FileSystem.read(file, limit: 1 << 20) } catch { fail("\(file): \(error)") }
        guard let bytes = read else { fail("\(file) does not exist") }
        let backup: KeyPair
        if WrappedKeyPair.isWrapped(bytes) {
            let secret = Passphrase.fromEnvironment("CDSFS_BACKUP_PASSPHRASE") ?? backupPassphraseFile.map(Passphrase.read(file:))
                ?? Passphrase.ask("Passphrase for the backup key \(file): ")
            guard let secret else { fail("\(file) is protected by a passphrase: set CDSFS_BACKUP_PASSPHRASE, give --backup-passphrase-file FILE, or run on a terminal") }
            do { backup = try WrappedKeyPair.unwrap(bytes, passphrase: secret) } catch {
                fail(error == .wrongPassphrase ? "wrong passphrase for \(file)" : "\(file) is not a usable backup key (\(error))")
            }
        } else {
            do { backup = try KeyPair(fileBytes: bytes) } catch { fail("\(file) is not a key pair file (\(error))") }
        }
        let store: any Store
        do {
            if url.hasPrefix("http://") { store = try openHTTPStore(url, keyPair: backup) }
            else if url.hasPrefix("file://"), let s = FolderStore.open(String(url.dropFirst(7))) { store = s }
            else if url.hasPrefix("s3://") { store = try S3Store(url: url) }
            else { fail("\(url): remote URLs start with http://, s3:// or file://") }
        } catch { fail("the remote \(url): \(error)") }
        var secret: [UInt8]?
        if passphrase || home.passphraseFile != nil {
            secret = Passphrase.new(environment: "CDSFS_PASSPHRASE", file: home.passphraseFile,
                                    prompt: "Passphrase for \(path)/key-pair: ",
                                    missing: "--passphrase: set CDSFS_PASSPHRASE, give --passphrase-file FILE, or run on a terminal")
        }
        let (created, what) = orFail { try Home.restore(path: path, backup: backup, remote: store, passphrase: secret) }
        var settings = created.settings
        settings.add("remote", url)
        orFail { try settings.save() }
        print(what)
        print(created.keyPair.actor.hex)
    }
}
