import Condensation
import XCTest

/// Hostile or damaged bytes: every parser answers with a typed error, never a crash or a hang.
final class BadInputTests: XCTestCase {
    private func recordError(_ data: [UInt8], hashes: [Hash] = []) -> RecordError? {
        do {
            _ = try Record(object: Object(hashes: hashes, data: data))
            return nil
        } catch {
            return error
        }
    }

    private func objectError(_ bytes: [UInt8]) -> ObjectError? {
        do {
            _ = try Object(bytes: bytes)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Objects

    func testTruncatedObjects() {
        for length in 0..<4 {
            XCTAssertEqual(objectError([UInt8](repeating: 0, count: length)), .truncatedHeader(length: length))
        }
    }

    func testHashCountsLargerThanTheObject() {
        XCTAssertEqual(objectError([0, 0, 0, 1]), .hashListPastEnd(count: 1, length: 4))
        XCTAssertEqual(objectError([0, 0, 0, 2] + [UInt8](repeating: 7, count: 63)), .hashListPastEnd(count: 2, length: 67))
        XCTAssertEqual(objectError([0xff, 0xff, 0xff, 0xff] + [UInt8](repeating: 0, count: 100)),
                       .hashListPastEnd(count: .max, length: 104))
        XCTAssertEqual(objectError([0x08, 0, 0, 0]), .hashListPastEnd(count: 1 << 27, length: 4))
        XCTAssertNil(objectError([0, 0, 0, 2] + [UInt8](repeating: 7, count: 64)))
    }

    // MARK: Records

    func testRecordLengthsPastTheEnd() {
        XCTAssertEqual(recordError([0x05, 0x61]), .truncated(at: 5))
        XCTAssertEqual(recordError([0x1e]), .truncated(at: 5), "the 30-form's length byte is missing")
        XCTAssertEqual(recordError([0x1e, 0x00] + [UInt8](repeating: 0, count: 29)), .truncated(at: 6))
        XCTAssertEqual(recordError([0x1f, 0, 0, 0]), .truncated(at: 5), "the 31-form's length is cut short")
        XCTAssertEqual(recordError([0x1f, 0, 0, 0, 0, 0, 0, 1, 0x1e] + [UInt8](repeating: 0, count: 285)),
                       .truncated(at: 13))
    }

    func testHugeLengths() {
        // 2^63 and 2^64 − 1: must not overflow, wrap, or allocate.
        XCTAssertEqual(recordError([0x1f, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]), .truncated(at: 13))
        XCTAssertEqual(recordError([0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1]), .truncated(at: 13))
        XCTAssertEqual(recordError([0x1f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), .truncated(at: 13))
        XCTAssertEqual(recordError([0x81, 0x61, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]), .truncated(at: 15))
    }

    func testHashIndexOutOfRange() {
        XCTAssertEqual(recordError([0x20, 0, 0, 0, 0]), .hashIndexOutOfRange(index: 0, count: 0))
        XCTAssertEqual(recordError([0x20, 0, 0, 0, 1], hashes: [.emptyObject]), .hashIndexOutOfRange(index: 1, count: 1))
        XCTAssertEqual(recordError([0x20, 0xff, 0xff, 0xff, 0xff], hashes: [.emptyObject]),
                       .hashIndexOutOfRange(index: .max, count: 1))
        XCTAssertEqual(recordError([0x20, 0, 0]), .truncated(at: 5), "the index itself is cut short")
        XCTAssertNil(recordError([0x20, 0, 0, 0, 0], hashes: [.emptyObject]))
    }

    func testMissingChildrenAndSiblings() {
        XCTAssertEqual(recordError([0x40]), .truncated(at: 5), "children announced, none follow")
        XCTAssertEqual(recordError([0x80]), .truncated(at: 5), "a sibling announced, none follows")
        XCTAssertEqual(recordError([0xc1, 0x61, 0x01, 0x62]), .truncated(at: 8), "the parent's sibling is missing")
        XCTAssertNil(recordError([0xc1, 0x61, 0x01, 0x62, 0x01, 0x63]))
    }

    func testVeryDeepNesting() {
        // A million levels: refused with an error long before the stack (or memory) runs out.
        XCTAssertEqual(recordError([UInt8](repeating: 0x40, count: 1_000_000) + [0]), .tooDeep)
        XCTAssertEqual(recordError([UInt8](repeating: 0xc0, count: 1_000_000) + [0]), .tooDeep)
        // 256 nested levels plus a leaf is the deepest accepted.
        XCTAssertNil(recordError([UInt8](repeating: 0x40, count: 256) + [0]))
        XCTAssertEqual(recordError([UInt8](repeating: 0x40, count: 257) + [0]), .tooDeep)
    }

    func testWideFlatRecordIsNotSlow() {
        // Half a million empty siblings: linear, no quadratic behaviour.
        XCTAssertNil(recordError([UInt8](repeating: 0x80, count: 500_000) + [0]))
    }

    // MARK: Crypto

    func testWrongAESKeySizes() {
        for size in [0, 16, 31, 33] {
            XCTAssertThrowsError(try AESKey(bytes: Random.bytes(size))) {
                XCTAssertEqual($0 as? CryptoError, .wrongKeySize(expected: 32, got: size))
            }
        }
        var record = Record()
        record.add(Record(Random.bytes(31), hash: .emptyObject))
        XCTAssertNil(HashAndKey(record: record.children[0]), "a 31-byte key is not a link")
        XCTAssertNil(HashAndKey(record: Record(Random.bytes(32))), "a key without a hash is not a link")
    }

    func testSignaturesOfTheWrongLength() {
        let key = TestKeys.alice.publicKey.rsa
        for length in [0, 1, 128, 255, 257, 258, 512, 4096] {
            XCTAssertFalse(key.verify(.emptyObject, signature: Random.bytes(length)), "\(length) bytes")
        }
    }

    // MARK: Key pair files

    func testKeyPairFilesThatAreNotOne() throws {
        var g = SeededGenerator(seed: 51)
        for _ in 0..<200 {
            XCTAssertThrowsError(try KeyPair(fileBytes: g.bytes(Int.random(in: 0...600, using: &g))))
        }
        var missing = Record()
        missing.add("public key object", bytes: TestKeys.bob.publicKey.object.bytes)
        XCTAssertThrowsError(try KeyPair(fileBytes: missing.serialized)) {
            XCTAssertEqual($0 as? KeyPair.Invalid, .missingField("rsa key"))
        }
        var mismatched = missing
        var rsa = Record(text: "rsa key")
        rsa.add("e", bytes: [1, 0, 1])
        rsa.add("p", bytes: TestKeys.bob.rsa.p)
        rsa.add("q", bytes: TestKeys.carol.rsa.q)
        mismatched.add(rsa)
        XCTAssertThrowsError(try KeyPair(fileBytes: mismatched.serialized)) {
            XCTAssertEqual($0 as? KeyPair.Invalid, .keysDoNotMatch)
        }
    }

    // MARK: Random and mutated input

    /// Random bytes, and random bytes behind a plausible header, through every parser.
    func testRandomBytes() {
        var g = SeededGenerator(seed: 0xBAD)
        for round in 0..<4000 {
            var bytes: [UInt8]
            switch round % 4 {
            case 0:
                bytes = g.bytes(Int.random(in: 0...64, using: &g))
            case 1:
                bytes = g.bytes(Int.random(in: 0...2048, using: &g))
            default:
                // A valid header and hash list, so that the record decoder sees the random data.
                let count = Int.random(in: 0...3, using: &g)
                bytes = Object(hashes: (0..<count).map { _ in g.hash() }, data: g.bytes(Int.random(in: 0...512, using: &g))).bytes
            }
            parseEverything(bytes, rsa: round % 40 == 0)
        }
    }

    func testMutatedRecords() {
        var g = SeededGenerator(seed: 0xFEED)
        for round in 0..<1500 {
            let original = RandomRecords.tree(&g).object().bytes
            let mutated = mutate(original, &g)
            parseEverything(mutated, rsa: false)
            // A mutation of the data alone keeps the header valid: whatever parses must re-serialise.
            if let object = try? Object(bytes: mutated), let record = try? Record(object: object) {
                XCTAssertNoThrow(try Record(object: record.object()), "round \(round)")
            }
        }
    }

    func testMutatedModifications() {
        var g = SeededGenerator(seed: 0xD1FF)
        var m = Modifications()
        _ = m.put(Object(hashes: [g.hash()], data: g.bytes(40)))
        _ = m.put(Object.empty)
        m.additions = [BoxChange(g.hash(), .public, g.hash()), BoxChange(g.hash(), .messages, g.hash())]
        m.removals = [BoxChange(g.hash(), .private, g.hash())]
        let bytes = m.record.serialized
        for _ in 0..<1500 { parseEverything(mutate(bytes, &g), rsa: false) }
    }

    func testMutatedKeyPairFiles() {
        var g = SeededGenerator(seed: 0xC0DE)
        let file = TestKeys.alice.fileBytes
        var accepted = 0
        for _ in 0..<600 {
            let mutated = mutate(file, &g)
            if let keyPair = try? KeyPair(fileBytes: mutated) {
                // Only mutations that leave the key intact (e.g. in ignored trailing data) may pass.
                XCTAssertEqual(keyPair.actor, TestKeys.alice.actor)
                accepted += 1
            }
        }
        XCTAssertLessThan(accepted, 600)
    }

    func testMutatedEnvelopes() {
        var g = SeededGenerator(seed: 0xE7E7)
        let alice = TestKeys.alice, bob = TestKeys.bob
        let link = HashAndKey(hash: g.hash(), key: AESKey.random())
        let privateEnvelope = Envelope.privateEnvelope(content: link, recipients: [bob.publicKey], signer: alice).bytes
        let publicEnvelope = Envelope.publicEnvelope(cardHash: g.hash(), signer: alice).bytes
        let message = Envelope.message(fields: [Record(text: "x", children: [Record(text: "y")])],
                                       senderStoreURL: "file:///s", recipients: [bob.publicKey], signer: alice, expires: 5).bytes
        for _ in 0..<250 {
            for original in [privateEnvelope, publicEnvelope, message] {
                let mutated = mutate(original, &g)
                guard let object = try? Object(bytes: mutated) else { continue }
                if let opened = try? Envelope.openPrivate(object, signer: alice.publicKey, keyPair: bob) {
                    XCTAssertEqual(opened.hash, link.hash, "a mutated envelope opened to something else")
                }
                _ = try? Envelope.openPublic(object, signer: alice.publicKey)
                if let opened = try? Envelope.openMessage(object, keyPair: bob),
                   (try? Envelope.verifyMessage(object, signer: alice.publicKey)) != nil {
                    XCTAssertEqual(opened.sender, alice.actor)
                }
            }
        }
    }

    // MARK: Helpers

    /// Runs bytes through every parser; only typed errors may come out. RSA work (opening envelopes)
    /// only when asked: it costs about a millisecond per private-key operation.
    private func parseEverything(_ bytes: [UInt8], rsa: Bool) {
        _ = try? KeyPair(fileBytes: bytes)
        guard let object = try? Object(bytes: bytes) else { return }
        _ = object.hashes
        _ = try? PublicKey(object: object)
        if let record = try? Record(object: object) {
            _ = try? Modifications(record: record)
            _ = record.serialized
        }
        _ = try? Envelope.openPublic(object, signer: TestKeys.alice.publicKey)
        if rsa {
            _ = try? Envelope.openPrivate(object, signer: TestKeys.alice.publicKey, keyPair: TestKeys.bob)
            _ = try? Envelope.openMessage(object, keyPair: TestKeys.bob)
        }
    }

    /// One to four random edits: bit flips, byte overwrites, truncation, insertion, duplication.
    private func mutate(_ input: [UInt8], _ g: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &g) {
            guard !bytes.isEmpty else { break }
            let at = Int.random(in: 0..<bytes.count, using: &g)
            switch Int.random(in: 0..<6, using: &g) {
            case 0: bytes[at] ^= 1 << UInt8.random(in: 0..<8, using: &g)
            case 1: bytes[at] = UInt8.random(in: 0...255, using: &g)
            case 2: bytes.removeSubrange(at...)
            case 3: bytes.insert(contentsOf: g.bytes(Int.random(in: 1...16, using: &g)), at: at)
            case 4:
                let end = min(bytes.count, at + Int.random(in: 1...64, using: &g))
                bytes.insert(contentsOf: bytes[at..<end], at: at)
            default:
                // Flags bytes matter most: set the high bits of one.
                bytes[at] |= [0x20, 0x40, 0x80, 0x1f][Int.random(in: 0..<4, using: &g)]
            }
        }
        return bytes
    }
}
