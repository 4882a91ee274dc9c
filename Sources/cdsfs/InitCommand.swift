import ArgumentParser
import CondensationFS

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a new home: a key pair, a local store, and an empty encrypted folder.",
        discussion: """
        Prints the new device's actor id (64 hex digits) on its own line. Refuses to touch a home \
        that already has a key pair.
        """
    )

    @OptionGroup var home: HomeOption

    func run() throws {
        let path = home.path
        let created: Home
        do { created = try Home.create(path: path) } catch { fail(error.description) }
        print(created.keyPair.actor.hex)
    }
}
