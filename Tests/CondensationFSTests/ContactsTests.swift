import Condensation
@testable import CondensationFS
import Glibc
import XCTest

/// Contacts: kept in the private root, checked against the contact's public card, merged forward
/// between the devices of a group.
final class ContactsTests: XCTestCase {
    private func temporaryDirectory() -> String {
        var template = Array("/tmp/cdsfs-contacts-XXXXXX".utf8CString)
        let path = String(cString: mkdtemp(&template)!)
        addTeardownBlock { _ = system("rm -rf '\(path)'") }
        return path
    }

    /// Bob's own store has his public card (a new home announces itself there).
    func testAContactIsKeptInThePrivateRootAfterItsCardIsChecked() throws {
        let dir = temporaryDirectory()
        let alice = try Home.create(path: dir + "/alice")
        let bob = try Home.create(path: dir + "/bob")
        let contact = try alice.addContact(name: "bob", actor: bob.keyPair.actor, store: bob.store)
        XCTAssertEqual(contact.store, bob.store.url)
        XCTAssertNotNil(try alice.store.get(bob.keyPair.actor), "Bob's public key is kept for encrypting to him")

        // Reopened: read from the private box, not from memory.
        let again = try Home.open(path: dir + "/alice")
        XCTAssertEqual(try again.contacts().map(\.name), ["bob"])
        XCTAssertEqual(try again.contact(named: "bob")?.actor, bob.keyPair.actor)
        // The private root is what holds it: the envelope's content names the contact.
        let root = try alice.readHead().0.root
        XCTAssertEqual(root.contacts["bob"]?.status, .active)

        // A mount of the same home commits after the contact was added: the contact survives.
        let volume = try alice.openVolume(options: VolumeOptions())
        try volume.writeFile(1, "after", [1])
        try volume.close()
        XCTAssertEqual(try alice.contacts().map(\.name), ["bob"])
    }

    func testAVolumeOpenedBeforeTheContactWasAddedKeepsIt() throws {
        let dir = temporaryDirectory()
        let alice = try Home.create(path: dir + "/alice")
        let bob = try Home.create(path: dir + "/bob")
        let volume = try alice.openVolume(options: VolumeOptions())  // as a mount would hold it
        _ = try alice.addContact(name: "bob", actor: bob.keyPair.actor, store: bob.store)
        try volume.writeFile(1, "later", [2])
        try volume.commit()
        try volume.close()
        XCTAssertEqual(try alice.contacts().map(\.name), ["bob"], "the mount's commit merged the contact in")
        XCTAssertEqual(try alice.store.list(alice.keyPair.actor, .private).count, 1)
    }

    func testUnreachableActorsAndBadNamesAreRefused() throws {
        let dir = temporaryDirectory()
        let alice = try Home.create(path: dir + "/alice")
        let bob = try Home.create(path: dir + "/bob")
        let empty = try FolderStore.create(dir + "/empty")

        // An actor the store does not know.
        XCTAssertThrowsError(try alice.addContact(name: "bob", actor: bob.keyPair.actor, store: empty)) { e in
            XCTAssertEqual(e as? Home.ContactProblem, .card(.noPublicKey(bob.keyPair.actor, empty.url)))
        }
        // The key is there but no card signed by it: a card signed by someone else does not count.
        try empty.put(bob.keyPair.actor, bob.keyPair.publicKey.object)
        var card = Record()
        card.add("public key", hash: bob.keyPair.actor)
        let cardHash = try empty.put(card.object())
        let forged = try empty.put(Envelope.publicEnvelope(cardHash: cardHash, signer: alice.keyPair))
        try empty.add(bob.keyPair.actor, .public, forged)
        XCTAssertThrowsError(try alice.addContact(name: "bob", actor: bob.keyPair.actor, store: empty)) { e in
            XCTAssertEqual(e as? Home.ContactProblem, .card(.noCard(bob.keyPair.actor, empty.url)))
        }
        // A random id.
        let nobody = Hash.of(Array("nobody".utf8))
        XCTAssertThrowsError(try alice.addContact(name: "x", actor: nobody, store: bob.store))
        // Names that cannot be a folder name's part.
        for bad in ["", "a/b", "-x", " bob", "bo(b)", "tab\there", String(repeating: "n", count: 65)] {
            XCTAssertThrowsError(try alice.addContact(name: bad, actor: bob.keyPair.actor, store: bob.store), bad) { e in
                guard case .badName? = e as? Home.ContactProblem else { return XCTFail("\(bad): \(e)") }
            }
        }
        XCTAssertThrowsError(try alice.addContact(name: "me", actor: alice.keyPair.actor, store: alice.store)) { e in
            XCTAssertEqual(e as? Home.ContactProblem, .ownActor)
        }
        XCTAssertEqual(try alice.contacts(), [])

        _ = try alice.addContact(name: "bob", actor: bob.keyPair.actor, store: bob.store)
        XCTAssertThrowsError(try alice.addContact(name: "bob", actor: bob.keyPair.actor, store: bob.store)) { e in
            XCTAssertEqual(e as? Home.ContactProblem, .nameTaken("bob", bob.keyPair.actor))
        }
        XCTAssertThrowsError(try alice.addContact(name: "robert", actor: bob.keyPair.actor, store: bob.store)) { e in
            XCTAssertEqual(e as? Home.ContactProblem, .actorTaken(bob.keyPair.actor, "bob"))
        }
        XCTAssertThrowsError(try alice.removeContact(name: "carol")) { e in
            XCTAssertEqual(e as? Home.ContactProblem, .unknown("carol"))
        }
    }

    /// Both devices of a group get the contact, and a removal on one is not undone by the other's
    /// older copy.
    func testContactsTravelToTheOtherDeviceAndRemovalsStayRemoved() throws {
        let dir = temporaryDirectory()
        let remote = try FolderStore.create(dir + "/remote")
        let a = try Home.create(path: dir + "/a")
        let b = try Home.create(path: dir + "/b", joining: true)
        let bob = try Home.create(path: dir + "/bob")
        let sa = Syncer(home: a, remote: remote, volume: nil), sb = Syncer(home: b, remote: remote, volume: nil)
        _ = try sb.push()
        try a.addMember(b.keyPair.actor, remote: remote)
        _ = try sa.push()
        _ = try sb.pull()

        _ = try a.addContact(name: "bob", actor: bob.keyPair.actor, store: bob.store)
        _ = try sa.push()
        let (pulled, _) = try sb.pull()
        XCTAssertEqual(pulled.merged.count, 1, "\(pulled)")
        XCTAssertEqual(try b.contacts().map(\.actor), [bob.keyPair.actor])

        // B removes Bob; A still has the older entry and commits something.
        try b.removeContact(name: "bob")
        XCTAssertEqual(try b.contacts(), [])
        let va = try a.openVolume(options: VolumeOptions())
        try va.writeFile(1, "a-file", [1])
        try va.close()
        _ = try sa.push()
        _ = try sb.pull()
        _ = try sb.push()
        _ = try sa.pull()
        XCTAssertEqual(try b.contacts(), [], "A's older copy does not bring Bob back on B")
        XCTAssertEqual(try a.contacts(), [], "B's removal reached A")
        XCTAssertEqual(try a.readHead().0.root.contacts["bob"]?.status, .removed)

        // Added again later: the newer entry wins everywhere.
        _ = try a.addContact(name: "bob", actor: bob.keyPair.actor, store: bob.store)
        _ = try sa.push()
        _ = try sb.pull()
        XCTAssertEqual(try b.contacts().map(\.name), ["bob"])
    }

    func testForwardMergeTakesTheNewerEntryPerName() {
        let x = Hash.of([1]), y = Hash.of([2])
        var root = PrivateRoot(created: 0, secret: [UInt8](repeating: 0, count: 32), filesystem: HashAndKey(hash: x, key: try! AESKey(bytes: [UInt8](repeating: 1, count: 32))))
        root.contacts = ["bob": Contact(name: "bob", actor: x, store: "s1", revision: 10),
                         "carol": Contact(name: "carol", actor: y, store: "s2", revision: 10)]
        root.mergeContacts(["bob": Contact(name: "bob", actor: x, store: "s1", status: .removed, revision: 11),
                            "carol": Contact(name: "carol", actor: y, store: "old", revision: 9),
                            "dave": Contact(name: "dave", actor: y, store: "s3", revision: 1)])
        XCTAssertEqual(root.contacts["bob"]?.status, .removed)
        XCTAssertEqual(root.contacts["carol"]?.store, "s2")
        XCTAssertEqual(root.contacts["dave"]?.store, "s3")
        // And the record round-trips.
        let back = PrivateRoot(record: root.record)
        XCTAssertEqual(back?.contacts, root.contacts)
    }
}
