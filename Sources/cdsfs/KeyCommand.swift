import ArgumentParser
import Condensation
import CondensationFS

struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Show or export the device's key pair.",
        subcommands: [Show.self, Export.self]
    )

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the device's actor id.")
        @OptionGroup var home: HomeOption

        func run() throws { print(home.open().keyPair.actor.hex) }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the key pair as a Condensation key pair file (mode 0600).",
            discussion: "The file is readable by other Condensation tools, e.g. `cds use key pair FILE`. Keep it secret: it opens everything this device can read.")
        @OptionGroup var home: HomeOption
        @Argument(help: "Where to write the key pair file (must not exist).") var file: String

        func run() throws {
            let h = home.open()
            if FileSystem.exists(file) { fail("\(file) exists; choose a new file name") }
            orFail("writing \(file)") { try FileSystem.writeAtomically(file, h.keyPair.fileBytes, mode: 0o600, durable: true) }
        }
    }
}
