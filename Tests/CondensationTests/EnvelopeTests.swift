import Condensation
import XCTest

final class EnvelopeTests: XCTestCase {
    private let alice = TestKeys.alice
    private let bob = TestKeys.bob
    private let carol = TestKeys.carol

    private func content() -> (HashAndKey, Object) {
        var record = Record()
        record.add("data", text: "private root")
        let key = AESKey.random()
        let object = record.object().crypted(with: key)
        return (HashAndKey(hash: object.calculateHash(), key: key), object)
    }

    /// The envelope's record with `transform` applied, as a new object.
    private func rewrite(_ envelope: Object, _ transform: (inout Record) -> Void) throws -> Object {
        var record = try Record(object: envelope)
        transform(&record)
        return record.object()
    }

    // MARK: Private box entries

    func testPrivateEnvelope() throws {
        let (link, _) = content()
        let envelope = Envelope.privateEnvelope(content: link, recipients: [bob.publicKey], signer: alice)
        // The writer can open it, and so can each recipient.
        XCTAssertEqual(try Envelope.openPrivate(envelope, signer: alice.publicKey, keyPair: alice), link)
        XCTAssertEqual(try Envelope.openPrivate(envelope, signer: alice.publicKey, keyPair: bob), link)

        // Its shape: content is a bare hash, the key is only under `encrypted for`.
        let record = try Record(object: envelope)
        XCTAssertEqual(record.hash("content"), link.hash)
        XCTAssertEqual(record.value("content")?.bytes.isEmpty, true, "no key next to the content hash")
        XCTAssertEqual(envelope.hashes, [link.hash], "stores can follow the envelope to its content")
        let recipients = record.child("encrypted for")?.children.map { Array($0.bytes) }
        XCTAssertEqual(recipients, [Array(alice.publicKey.prefix24), Array(bob.publicKey.prefix24)])
        XCTAssertEqual(record.bytes("signature")?.count, 256)
    }

    func testWriterIsListedOnce() throws {
        let (link, _) = content()
        let envelope = Envelope.privateEnvelope(content: link, recipients: [alice.publicKey, bob.publicKey, bob.publicKey], signer: alice)
        let record = try Record(object: envelope)
        XCTAssertEqual(record.child("encrypted for")?.children.count, 2)
    }

    func testPrivateEnvelopeForAStranger() throws {
        let (link, _) = content()
        let envelope = Envelope.privateEnvelope(content: link, recipients: [bob.publicKey], signer: alice)
        XCTAssertThrowsError(try Envelope.openPrivate(envelope, signer: alice.publicKey, keyPair: carol)) {
            XCTAssertEqual($0 as? EnvelopeError, .notEncryptedForUs)
        }
    }

    func testPrivateEnvelopeTamperedSignature() throws {
        let (link, _) = content()
        let envelope = Envelope.privateEnvelope(content: link, recipients: [bob.publicKey], signer: alice)
        let tampered = try rewrite(envelope) { record in
            let i = record.children.firstIndex { $0.text == "signature" }!
            var signature = Array(record.children[i].children[0].bytes)
            signature[17] ^= 0x40
            record.children[i].children[0].bytes = signature[...]
        }
        XCTAssertThrowsError(try Envelope.openPrivate(tampered, signer: alice.publicKey, keyPair: bob)) {
            XCTAssertEqual($0 as? EnvelopeError, .badSignature)
        }
    }

    func testPrivateEnvelopeFromSomeoneElse() throws {
        let (link, _) = content()
        let envelope = Envelope.privateEnvelope(content: link, recipients: [bob.publicKey], signer: carol)
        XCTAssertThrowsError(try Envelope.openPrivate(envelope, signer: alice.publicKey, keyPair: bob)) {
            XCTAssertEqual($0 as? EnvelopeError, .badSignature, "signed by carol, not by the box owner")
        }
    }

    func testPrivateEnvelopeWithAnotherContentHash() throws {
        let (link, _) = content()
        let envelope = Envelope.privateEnvelope(content: link, recipients: [], signer: alice)
        let swapped = try rewrite(envelope) { record in
            let i = record.children.firstIndex { $0.text == "content" }!
            record.children[i].children[0].hash = .emptyObject
        }
        XCTAssertThrowsError(try Envelope.openPrivate(swapped, signer: alice.publicKey, keyPair: alice)) {
            XCTAssertEqual($0 as? EnvelopeError, .badSignature, "the signature covers the content hash")
        }
    }

    func testRecipientsNamedByTheFullHash() throws {
        // Readers fall back to the whole 32-byte actor hash.
        let (link, _) = content()
        let envelope = Envelope.privateEnvelope(content: link, recipients: [], signer: alice)
        let full = try rewrite(envelope) { record in
            let i = record.children.firstIndex { $0.text == "encrypted for" }!
            record.children[i].children[0].bytes = alice.actor.bytes[...]
        }
        XCTAssertEqual(try Envelope.openPrivate(full, signer: alice.publicKey, keyPair: alice), link)
    }

    func testKeyThatIsNotThirtyTwoBytes() throws {
        let (link, _) = content()
        let envelope = Envelope.privateEnvelope(content: link, recipients: [], signer: alice)
        let shortKey = try rewrite(envelope) { record in
            let i = record.children.firstIndex { $0.text == "encrypted for" }!
            let encrypted = try! alice.publicKey.rsa.encrypt(Random.bytes(31))
            record.children[i].children[0].children = [Record(encrypted)]
        }
        XCTAssertThrowsError(try Envelope.openPrivate(shortKey, signer: alice.publicKey, keyPair: alice)) {
            XCTAssertEqual($0 as? EnvelopeError, .badKey)
        }
        let garbage = try rewrite(envelope) { record in
            let i = record.children.firstIndex { $0.text == "encrypted for" }!
            record.children[i].children[0].children = [Record(Random.bytes(256))]
        }
        XCTAssertThrowsError(try Envelope.openPrivate(garbage, signer: alice.publicKey, keyPair: alice)) {
            XCTAssertEqual($0 as? EnvelopeError, .badKey)
        }
    }

    func testEnvelopesMissingParts() throws {
        let (link, _) = content()
        let envelope = Envelope.privateEnvelope(content: link, recipients: [], signer: alice)
        for (label, expected) in [("content", EnvelopeError.missingContent), ("signature", .badSignature),
                                  ("encrypted for", .notEncryptedForUs)] {
            let without = try rewrite(envelope) { $0.children.removeAll { $0.text == label } }
            XCTAssertThrowsError(try Envelope.openPrivate(without, signer: alice.publicKey, keyPair: alice)) {
                XCTAssertEqual($0 as? EnvelopeError, expected, "without \(label)")
            }
        }
        XCTAssertThrowsError(try Envelope.openPrivate(Object(hashes: [], data: [0xff]), signer: alice.publicKey,
                                                      keyPair: alice)) {
            XCTAssertEqual($0 as? EnvelopeError, .notARecord)
        }
    }

    // MARK: Public cards

    func testPublicEnvelope() throws {
        var card = Record()
        card.add("public key", hash: alice.actor)
        let cardHash = card.object().calculateHash()
        let envelope = Envelope.publicEnvelope(cardHash: cardHash, signer: alice)
        XCTAssertEqual(try Envelope.openPublic(envelope, signer: alice.publicKey), cardHash)
        XCTAssertEqual(envelope.hashes, [cardHash])
        XCTAssertNil(try Record(object: envelope).child("encrypted for"), "public: no keys")
        XCTAssertThrowsError(try Envelope.openPublic(envelope, signer: bob.publicKey)) {
            XCTAssertEqual($0 as? EnvelopeError, .badSignature)
        }
        let noContent = try rewrite(envelope) { $0.children.removeAll { $0.text == "content" } }
        XCTAssertThrowsError(try Envelope.openPublic(noContent, signer: alice.publicKey)) {
            XCTAssertEqual($0 as? EnvelopeError, .missingContent)
        }
    }

    // MARK: Messages

    func testMessage() throws {
        var field = Record(text: "version")
        field.add(Record(Values.integer(42)))
        let envelope = Envelope.message(fields: [field], senderStoreURL: "http://store.example:8080",
                                        recipients: [bob.publicKey, carol.publicKey], signer: alice, expires: 1_700_000_000_000)
        for reader in [bob, carol, alice] {
            let message = try Envelope.openMessage(envelope, keyPair: reader)
            XCTAssertEqual(message.sender, alice.actor)
            XCTAssertEqual(message.senderStoreURL, "http://store.example:8080")
            XCTAssertEqual(message.expires, 1_700_000_000_000)
            XCTAssertEqual(message.content.integer("version"), 42)
            XCTAssertEqual(message.content.children.map(\.text), ["store", "sender", "version"])
            XCTAssertEqual(try Record(object: message.contentObject), message.content)
        }
        XCTAssertNoThrow(try Envelope.verifyMessage(envelope, signer: alice.publicKey))
        XCTAssertThrowsError(try Envelope.verifyMessage(envelope, signer: bob.publicKey)) {
            XCTAssertEqual($0 as? EnvelopeError, .badSignature)
        }

        // Its shape: the content is embedded, encrypted whole (header included), and there is no hash.
        let record = try Record(object: envelope)
        XCTAssertEqual(envelope.hashCount, 0)
        XCTAssertEqual(record.bytes("updated by").map(Array.init), Array(alice.publicKey.prefix24))
        let entry = record.child("encrypted for")?.child(bytes: alice.publicKey.prefix24)?.firstChild
        let key = try XCTUnwrap(alice.decryptKey(Array(try XCTUnwrap(entry).bytes)))
        let embedded = Array(try XCTUnwrap(record.bytes("content")))
        XCTAssertEqual(key.applied(embedded), try Envelope.openMessage(envelope, keyPair: alice).contentObject.bytes)
        // Signed: the hash of the encrypted bytes.
        XCTAssertTrue(alice.publicKey.rsa.verify(Hash.of(embedded), signature: Array(record.bytes("signature")!)))
        XCTAssertLessThanOrEqual(envelope.bytes.count, Envelope.maximumMessageSize)
    }

    func testMessageWithoutExpiry() throws {
        let envelope = Envelope.message(fields: [], senderStoreURL: "file:///s", recipients: [bob.publicKey], signer: alice,
                                        expires: nil)
        let message = try Envelope.openMessage(envelope, keyPair: bob)
        XCTAssertNil(message.expires)
        XCTAssertNil(try Record(object: envelope).child("expires"))
    }

    func testMessageForAStranger() throws {
        let envelope = Envelope.message(fields: [], senderStoreURL: "file:///s", recipients: [bob.publicKey], signer: alice,
                                        expires: nil)
        XCTAssertThrowsError(try Envelope.openMessage(envelope, keyPair: carol)) {
            XCTAssertEqual($0 as? EnvelopeError, .notEncryptedForUs)
        }
    }

    func testTamperedMessage() throws {
        let envelope = Envelope.message(fields: [], senderStoreURL: "file:///s", recipients: [bob.publicKey], signer: alice,
                                        expires: nil)
        let tampered = try rewrite(envelope) { record in
            let i = record.children.firstIndex { $0.text == "content" }!
            var bytes = Array(record.children[i].children[0].bytes)
            bytes[bytes.count - 1] ^= 1
            record.children[i].children[0].bytes = bytes[...]
        }
        XCTAssertThrowsError(try Envelope.verifyMessage(tampered, signer: alice.publicKey)) {
            XCTAssertEqual($0 as? EnvelopeError, .badSignature)
        }
    }

    func testOversizedMessageIsRefusedBeforeAnyWork() throws {
        var field = Record(text: "padding")
        field.add(Record(Random.bytes(Envelope.maximumMessageSize)))
        let envelope = Envelope.message(fields: [field], senderStoreURL: "file:///s", recipients: [], signer: alice,
                                        expires: nil)
        XCTAssertThrowsError(try Envelope.openMessage(envelope, keyPair: alice)) {
            XCTAssertEqual($0 as? EnvelopeError, .tooLarge)
        }
    }

    func testMessageWhoseContentIsNotARecord() throws {
        // A well-formed envelope around bytes that do not decrypt to a record.
        let key = AESKey.random()
        var record = Record()
        record.add("content", bytes: key.applied([0, 0, 0, 0, 0x45]))
        var list = Record(text: "encrypted for")
        list.add(Record(bytes: alice.publicKey.prefix24, children: [Record(try alice.publicKey.rsa.encrypt(key.bytes))]))
        record.add(list)
        XCTAssertThrowsError(try Envelope.openMessage(record.object(), keyPair: alice)) {
            XCTAssertEqual($0 as? EnvelopeError, .notARecord)
        }
        // Decrypts to a record, but names no sender.
        var noSender = Record()
        noSender.add("content", bytes: key.applied(Record(children: [Record(text: "x")]).serialized))
        noSender.add(list)
        XCTAssertThrowsError(try Envelope.openMessage(noSender.object(), keyPair: alice)) {
            XCTAssertEqual($0 as? EnvelopeError, .missingContent)
        }
    }
}
