import ArgumentParser
import Condensation
import CondensationFS
import Glibc

struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Show or export the device's key pair, change its passphrase, or make a backup key.",
        subcommands: [Show.self, Export.self, Passwd.self, Backup.self]
    )

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the device's actor id, and the line another person pastes to add you as a contact.",
            discussion: """
            The first line is the actor id alone. When the home has a remote store, a second line is the \
            command to hand to another person: `cdsfs contact add NAME ACTOR_ID --store URL`, with your \
            name (--name, else $USER) and the store where this device receives messages.
            """)
        @OptionGroup var home: HomeOption
        @Option(help: "The name to suggest in the contact line (default: $USER).") var name: String?

        func run() throws {
            let h = home.open()
            print(h.keyPair.actor.hex)
            guard let url = h.remotes.first else { return }
            let suggested = name ?? (getenv("USER").map { String(cString: $0) }).flatMap { $0.isEmpty ? nil : $0 } ?? "me"
            if let why = Contact.problem(withName: suggested) { fail("--name \(suggested): \(why)") }
            print("cdsfs contact add \(shellQuoted(suggested)) \(h.keyPair.actor.hex) --store \(shellQuoted(url))")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the key pair as a Condensation key pair file (mode 0600).",
            discussion: """
            The file is readable by other Condensation tools, e.g. `cds use key pair FILE`. It is written \
            without a passphrase, even if the home's key pair has one (which is asked for first). Keep it \
            secret: it opens everything this device can read.
            """)
        @OptionGroup var home: HomeOption
        @Argument(help: "Where to write the key pair file (must not exist).") var file: String

        func run() throws {
            let h = home.open()
            if FileSystem.exists(file) { fail("\(file) exists; choose a new file name") }
            orFail("writing \(file)") { try FileSystem.writeAtomically(file, h.keyPair.fileBytes, mode: 0o600, durable: true) }
        }
    }

    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an offline backup key that can read everything, and entrust it.",
            discussion: """
            Writes a new key pair to FILE (mode 0600), protected by a passphrase from \
            $CDSFS_BACKUP_PASSPHRASE, --backup-passphrase-file, or the terminal (asked twice). Every \
            envelope of this folder is from now on also encrypted for it, and each push leaves the \
            current version in its in-queue on the remote. Keep FILE away from the devices: with it and the \
            remote, `cdsfs init --restore FILE --remote URL` makes a new device with the whole folder \
            and its history.
            """)
        @OptionGroup var home: HomeOption
        @Option(help: ArgumentHelp("Read the backup key's passphrase from the first line of FILE.", valueName: "file"))
        var backupPassphraseFile: String?
        @Argument(help: "Where to write the backup key pair (must not exist).") var file: String

        func run() throws {
            let h = home.open()
            if FileSystem.exists(file) { fail("\(file) exists; choose a new file name") }
            let (url, remote) = firstRemote(h)
            let secret = Passphrase.new(environment: "CDSFS_BACKUP_PASSPHRASE", file: backupPassphraseFile,
                                        prompt: "Passphrase for the backup key \(file): ",
                                        missing: "no passphrase for the backup key: set CDSFS_BACKUP_PASSPHRASE, give --backup-passphrase-file FILE, or run on a terminal")
            let backup = KeyPair.generate()
            let bytes = orFail("protecting the backup key") { try WrappedKeyPair.wrap(backup, passphrase: secret) }
            orFail("writing \(file)") { try FileSystem.writeAtomically(file, bytes, mode: 0o600, durable: true) }
            orFail("putting the backup key's public key on \(url)") { try remote.put(backup.actor, backup.publicKey.object) }
            orFail { try h.trust(backup.actor, remote: remote, publicKey: backup.publicKey) }
            let report = sendCurrentVersion(h, remote, "sending the current version to the backup key")
            print("wrote \(file): backup key \(backup.actor.hex), entrusted; \(report.messagesSent) message(s) sent")
        }
    }

    struct Passwd: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "passwd",
            abstract: "Change, add or (--remove) remove the passphrase of the device's key pair file.",
            discussion: """
            Rewrites HOME/key-pair only (atomically, mode 0600): the key pair, the actor id and all data stay \
            as they are. The current passphrase comes from $CDSFS_PASSPHRASE, --passphrase-file or the \
            terminal; the new one from $CDSFS_NEW_PASSPHRASE, --new-passphrase-file, or the terminal (asked \
            twice). A running mount is not affected.
            """)
        @OptionGroup var home: HomeOption
        @Option(help: ArgumentHelp("Read the new passphrase from the first line of FILE.", valueName: "file"))
        var newPassphraseFile: String?
        @Flag(help: "Remove the passphrase: write the key pair file in the clear.") var remove = false

        func run() throws {
            if remove && newPassphraseFile != nil { fail("--remove takes no new passphrase") }
            let h = home.open()
            let wrapped = (try? FileSystem.read(h.keyPairPath, limit: 1 << 20)).flatMap { $0 }.map(WrappedKeyPair.isWrapped) ?? false
            let bytes: [UInt8]
            if remove {
                guard wrapped else { fail("\(h.keyPairPath) has no passphrase") }
                bytes = h.keyPair.fileBytes
            } else {
                let new = Passphrase.new(environment: "CDSFS_NEW_PASSPHRASE", file: newPassphraseFile,
                                         prompt: "New passphrase for \(h.keyPairPath): ",
                                         missing: "no new passphrase: set CDSFS_NEW_PASSPHRASE, give --new-passphrase-file FILE, or run on a terminal")
                bytes = orFail("protecting the key pair") { try WrappedKeyPair.wrap(h.keyPair, passphrase: new) }
            }
            orFail("writing \(h.keyPairPath)") { try FileSystem.writeAtomically(h.keyPairPath, bytes, mode: 0o600, durable: true) }
            print(remove ? "\(h.keyPairPath) has no passphrase now"
                  : wrapped ? "passphrase of \(h.keyPairPath) changed" : "\(h.keyPairPath) is protected by a passphrase now")
        }
    }
}

/// Where passphrases come from: the environment, a file, or the terminal (without echo).
enum Passphrase {
    /// Longer passphrases are refused (and this much fits in a pipe at once, see `cdsfs mount`).
    static let maximumLength = 4096

    /// $CDSFS_PASSPHRASE (or another variable), nil if unset or empty.
    static func fromEnvironment(_ name: String = "CDSFS_PASSPHRASE") -> [UInt8]? {
        guard let value = getenv(name), value.pointee != 0 else { return nil }
        return checked(Array(String(cString: value).utf8), from: "$" + name)
    }

    /// The first line of a file (without its line end); the command fails if it cannot be read.
    static func read(file: String) -> [UInt8] {
        let bytes: [UInt8]?
        do { bytes = try FileSystem.read(file, limit: 1 << 16) } catch { fail("--passphrase-file \(file): \(error)") }
        guard let bytes else { fail("--passphrase-file \(file): no such file") }
        return checked(firstLine(bytes), from: file)
    }

    /// Bytes up to the first line end.
    static func firstLine(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var line = Array(bytes.prefix { $0 != 10 })
        if line.last == 13 { line.removeLast() }
        return line
    }

    static func checked(_ passphrase: [UInt8], from source: String) -> [UInt8] {
        if passphrase.isEmpty { fail("the passphrase from \(source) is empty") }
        if passphrase.count > maximumLength { fail("the passphrase from \(source) is longer than \(maximumLength) bytes") }
        return passphrase
    }

    /// A new passphrase: from the variable, else the file, else asked twice on the terminal; the
    /// command fails with `missing` if there is no way to get one.
    static func new(environment: String, file: String?, prompt: String, missing: String) -> [UInt8] {
        if let p = fromEnvironment(environment) { return p }
        if let file { return read(file: file) }
        guard let first = ask(prompt) else { fail(missing) }
        guard let second = ask("The same again: ") else { fail(missing) }
        guard first == second else { fail("the two passphrases differ; nothing was changed") }
        return first
    }

    // MARK: The terminal

    /// Asks on the terminal when standard input is one: the prompt on standard error, the answer
    /// read without echo. Nil when standard input is not a terminal.
    static func ask(_ prompt: String) -> [UInt8]? {
        guard isatty(0) == 1 else { return nil }
        var original = termios()
        guard tcgetattr(0, &original) == 0 else { return nil }
        var quiet = original
        quiet.c_lflag &= ~tcflag_t(ECHO)
        quiet.c_lflag |= tcflag_t(ECHONL)
        write(2, prompt)
        // Ctrl-C (or a hang-up) while asking must not leave the terminal without echo.
        savedTerminal = original
        let handlers = [SIGINT, SIGTERM, SIGHUP, SIGQUIT].map { ($0, signal($0, restoreTerminalAndDie)) }
        _ = tcsetattr(0, TCSAFLUSH, &quiet)
        var line: [UInt8] = []
        var byte: UInt8 = 0
        var ended = false
        while true {
            let n = Glibc.read(0, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { ended = line.isEmpty; break }
            if byte == 10 { break }
            if line.count <= maximumLength { line.append(byte) }
        }
        _ = tcsetattr(0, TCSAFLUSH, &original)
        for (sig, handler) in handlers { signal(sig, handler) }
        if ended { write(2, "\n"); return nil }
        if line.last == 13 { line.removeLast() }
        return checked(line, from: "the terminal")
    }

    static func write(_ fd: Int32, _ text: String) {
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
    }
}

/// The terminal settings to put back if a signal ends the process while a passphrase is asked.
nonisolated(unsafe) private var savedTerminal = termios()

private func restoreTerminalAndDie(_ sig: Int32) {
    _ = tcsetattr(0, TCSAFLUSH, &savedTerminal)
    _ = Glibc.write(2, "\n", 1)
    signal(sig, SIG_DFL)
    raise(sig)
}
