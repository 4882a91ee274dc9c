import ArgumentParser
import Condensation
import CondensationFS

struct TrustCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust",
        abstract: "Entrust an actor that can read everything (for example a backup key).",
        discussion: """
        Every envelope of this folder is from now on also encrypted for the actor, and each push leaves \
        the current version in its in-queue on the remote. Its public key must be on the remote. \
        `cdsfs key backup FILE` makes such a key and entrusts it in one step.
        """)
    @OptionGroup var home: HomeOption
    @Argument(help: "The actor id (64 hex digits).") var actor: String

    func run() throws {
        let h = home.open()
        let id = actorID(actor)
        let (_, remote) = firstRemote(h)
        orFail { try h.trust(id, remote: remote) }
        let report = sendCurrentVersion(h, remote)
        print("entrusted \(id.hex); \(report.messagesSent) message(s) sent")
    }
}
