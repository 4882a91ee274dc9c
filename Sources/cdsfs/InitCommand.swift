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

    func run() throws {
        let path = home.path
        if join != nil && remote == nil { fail("--join needs --remote URL") }
        if let join, Hash(hex: join) == nil { fail("--join \(join) is not an actor id (64 hex digits)") }
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
}
