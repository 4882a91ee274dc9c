import ArgumentParser
import Condensation
import CondensationFS

struct ContactCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contact",
        abstract: "Manage the people you can share folders with.",
        discussion: """
        A contact is another cdsfs user: a name you choose, their actor id and the store where they \
        receive messages. They get the line to give you from their `cdsfs key show`. Contacts are kept \
        encrypted in the folder's private root, so every device of yours has them.
        """,
        subcommands: [Add.self, List.self, Remove.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a contact, after checking their public card on their store.",
            discussion: "Paste the line their `cdsfs key show` printed, choosing the name.")
        @OptionGroup var home: HomeOption
        @Argument(help: "The name to call them by (used in Shared/<folder> (<name>)).") var name: String
        @Argument(help: "Their actor id (64 hex digits).") var actor: String
        @Option(help: ArgumentHelp("Where they receive messages (http://HOST:PORT, s3://…, file:///PATH).", valueName: "url"))
        var store: String

        func run() throws {
            if let why = Contact.problem(withName: name) { fail(why) }
            let id = actorID(actor)
            let h = home.open()
            let remote = orFail { try openRemote(store, h) }
            let contact = orFail { try h.addContact(name: name, actor: id, store: remote) }
            print("added \(contact.name): \(contact.actor.hex) at \(contact.store)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the contacts: name, actor id, store.")
        @OptionGroup var home: HomeOption

        func run() throws {
            let h = home.open()
            let contacts = orFail { try h.contacts() }
            for c in contacts { print("\(c.name)  \(c.actor.hex)  \(c.store)") }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a contact.",
            discussion: "Folders already shared with them stay shared until `cdsfs unshare`.")
        @OptionGroup var home: HomeOption
        @Argument(help: "The contact's name, as `cdsfs contact list` shows it.") var name: String

        func run() throws {
            orFail { try home.open().removeContact(name: name) }
            print("removed \(name)")
        }
    }
}

/// A word as a POSIX shell reads it back unchanged: bare when it holds only safe characters, else in
/// single quotes (a line meant to be pasted into a terminal).
func shellQuoted(_ word: String) -> String {
    let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/@%+=")
    if !word.isEmpty && word.allSatisfy({ safe.contains($0) }) { return word }
    return "'" + word.replacingAll("'", with: "'\\''") + "'"
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
