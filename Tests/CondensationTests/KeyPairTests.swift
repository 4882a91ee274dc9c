import Condensation
import XCTest

final class KeyPairTests: XCTestCase {
    func testFileRoundTrip() throws {
        let keyPair = TestKeys.bob
        let file = keyPair.fileBytes
        let back = try KeyPair(fileBytes: file)
        XCTAssertEqual(back.actor, keyPair.actor)
        XCTAssertEqual(back.publicKey.object, keyPair.publicKey.object)
        XCTAssertEqual(back.rsa.n, keyPair.rsa.n)
        XCTAssertEqual(back.fileBytes, file)
        // The file is the record the format describes.
        let record = try Record(object: Object(bytes: file))
        XCTAssertEqual(record.children.map(\.text), ["public key object", "rsa key"])
        XCTAssertEqual(record.child("rsa key")?.children.map(\.text), ["e", "p", "q"])
        XCTAssertEqual(Array(record.bytes("public key object") ?? []), keyPair.publicKey.object.bytes)
    }

    func testPublicKeyObject() throws {
        let publicKey = TestKeys.bob.publicKey
        XCTAssertEqual(publicKey.object.bytes.count, 270)
        XCTAssertEqual(publicKey.object.hashCount, 0)
        let record = try Record(object: publicKey.object)
        XCTAssertEqual(record.children.map(\.text), ["e", "n"])
        XCTAssertEqual(record.bytes("e").map(Array.init), [1, 0, 1])
        XCTAssertEqual(record.bytes("n")?.first.map { $0 != 0 }, true, "leading zeros stripped")
        XCTAssertEqual(publicKey.hash, Hash.of(publicKey.object.bytes))
        XCTAssertEqual(Array(publicKey.prefix24), Array(publicKey.hash.bytes[..<24]))

        // Read back from the store's bytes.
        let parsed = try PublicKey(object: Object(bytes: publicKey.object.bytes))
        XCTAssertEqual(parsed.hash, publicKey.hash)
        XCTAssertEqual(parsed.rsa.n, TestKeys.bob.rsa.n)
        let signature = TestKeys.bob.sign(.emptyObject)
        XCTAssertTrue(parsed.rsa.verify(.emptyObject, signature: signature))
    }

    func testPublicKeyObjectErrors() {
        func invalid(_ record: Record, _ expected: PublicKey.Invalid) {
            XCTAssertThrowsError(try PublicKey(object: record.object())) { XCTAssertEqual($0 as? PublicKey.Invalid, expected) }
        }
        var onlyE = Record()
        onlyE.add("e", bytes: [1, 0, 1])
        invalid(onlyE, .missingField("n"))
        var onlyN = Record()
        onlyN.add("n", bytes: TestKeys.bob.rsa.n)
        invalid(onlyN, .missingField("e"))
        var small = onlyE
        small.add("n", bytes: [0xff, 0xff])
        invalid(small, .badKey)
        XCTAssertThrowsError(try PublicKey(object: Object(hashes: [], data: [0x41]))) {
            XCTAssertEqual($0 as? PublicKey.Invalid, .notARecord)
        }
    }

    func testSignAndDecryptKey() throws {
        let keyPair = TestKeys.alice
        XCTAssertTrue(keyPair.publicKey.rsa.verify(.emptyObject, signature: keyPair.sign(.emptyObject)))
        let key = AESKey.random()
        let encrypted = try keyPair.publicKey.rsa.encrypt(key.bytes)
        XCTAssertEqual(keyPair.decryptKey(encrypted), key)
        XCTAssertNil(TestKeys.bob.decryptKey(encrypted), "not for bob")
        XCTAssertNil(keyPair.decryptKey(try keyPair.publicKey.rsa.encrypt(Random.bytes(16))), "not a 32-byte key")
        XCTAssertNil(keyPair.decryptKey([1, 2, 3]))
    }

    func testGeneratedKeysDiffer() {
        XCTAssertNotEqual(TestKeys.bob.actor, TestKeys.carol.actor)
        XCTAssertNotEqual(TestKeys.alice.actor, TestKeys.bob.actor)
    }

    func testWrappingTheSameRSAKey() throws {
        let again = KeyPair(rsa: TestKeys.bob.rsa)
        XCTAssertEqual(again.actor, TestKeys.bob.actor, "the actor id depends on the key alone")
    }

    func testFileErrors() throws {
        func invalid(_ bytes: [UInt8], _ expected: KeyPair.Invalid, _ message: String) {
            XCTAssertThrowsError(try KeyPair(fileBytes: bytes), message) {
                XCTAssertEqual($0 as? KeyPair.Invalid, expected, message)
            }
        }
        invalid([0, 0], .notAnObject(.truncatedHeader(length: 2)), "two bytes")
        invalid([0, 0, 0, 1], .notAnObject(.hashListPastEnd(count: 1, length: 4)), "a hash count past the end")
        invalid([0, 0, 0, 0, 0x45], .notARecord(.truncated(at: 5)), "a node without its bytes")
        invalid(Record().serialized, .missingField("public key object"), "the empty record")

        let good = try Record(object: Object(bytes: TestKeys.bob.fileBytes))
        let publicKeyObject = good.child("public key object")!
        let rsaKey = good.child("rsa key")!
        invalid(Record(children: [rsaKey]).serialized, .missingField("public key object"), "no public key")
        invalid(Record(children: [publicKeyObject]).serialized, .missingField("rsa key"), "no rsa key")
        for missing in ["e", "p", "q"] {
            var partial = Record(text: "rsa key")
            partial.children = rsaKey.children.filter { $0.text != missing }
            invalid(Record(children: [publicKeyObject, partial]).serialized, .missingField(missing), "no \(missing)")
        }

        // A public key object that is not one.
        var broken = Record()
        broken.add("public key object", bytes: [0, 0, 0, 0, 0x01, 0x65])
        broken.add(rsaKey)
        invalid(broken.serialized, .badPublicKey, "a public key object without n")

        // Primes that are not a key.
        var badPrimes = Record(text: "rsa key")
        badPrimes.add("e", bytes: [1, 0, 1])
        badPrimes.add("p", bytes: [1])
        badPrimes.add("q", bytes: TestKeys.bob.rsa.q)
        invalid(Record(children: [publicKeyObject, badPrimes]).serialized, .badPrivateKey, "p = 1")

        // Bob's public key with Carol's primes.
        let carol = try Record(object: Object(bytes: TestKeys.carol.fileBytes))
        invalid(Record(children: [publicKeyObject, carol.child("rsa key")!]).serialized, .keysDoNotMatch,
                "someone else's primes")

        // p and q of two different keys: a key, but not the one named.
        var mixed = Record(text: "rsa key")
        mixed.add("e", bytes: [1, 0, 1])
        mixed.add("p", bytes: TestKeys.bob.rsa.p)
        mixed.add("q", bytes: TestKeys.carol.rsa.q)
        invalid(Record(children: [publicKeyObject, mixed]).serialized, .keysDoNotMatch, "mismatched p and q")
    }
}
