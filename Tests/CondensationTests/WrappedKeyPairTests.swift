@testable import Condensation
import XCTest

/// Key pair files wrapped with a passphrase (docs/format.md, "Wrapped key pair file").
final class WrappedKeyPairTests: XCTestCase {
    /// Cheap scrypt for the tests that derive hundreds of times; one test uses the real cost.
    let cheap = WrappedKeyPair.Parameters(logN: 10, r: 8, p: 1)
    let passphrase = Array("correct horse battery staple".utf8)

    func testRoundTrip() throws {
        let keyPair = TestKeys.alice
        let file = try WrappedKeyPair.wrap(keyPair, passphrase: passphrase, parameters: cheap)
        XCTAssertTrue(WrappedKeyPair.isWrapped(file))
        XCTAssertFalse(WrappedKeyPair.isWrapped(keyPair.fileBytes))
        XCTAssertFalse(WrappedKeyPair.isWrapped([1, 2, 3]))
        XCTAssertEqual(WrappedKeyPair.parameters(of: file), cheap)
        XCTAssertNil(WrappedKeyPair.parameters(of: keyPair.fileBytes))

        let back = try WrappedKeyPair.unwrap(file, passphrase: passphrase)
        XCTAssertEqual(back.actor, keyPair.actor)
        XCTAssertEqual(back.fileBytes, keyPair.fileBytes)
        XCTAssertEqual(try WrappedKeyPair.unwrapPlain(file, passphrase: passphrase), keyPair.fileBytes)

        // The file is the record the format describes, and nothing in it is the key in the clear.
        let record = try Record(object: Object(bytes: file))
        XCTAssertEqual(record.children.map(\.text), ["wrapped key pair", "scrypt", "check", "ciphertext", "mac"])
        XCTAssertEqual(record.unsigned("wrapped key pair"), 1)
        XCTAssertEqual(record.child("scrypt")?.children.map(\.text), ["log n", "r", "p", "salt"])
        XCTAssertEqual(record.child("scrypt")?.bytes("salt")?.count, 32)
        XCTAssertEqual(record.bytes("ciphertext")?.count, keyPair.fileBytes.count)
        XCTAssertEqual(record.bytes("mac")?.count, 32)
        XCTAssertEqual(record.bytes("check")?.count, 32)
        XCTAssertFalse(contains(file, keyPair.rsa.p), "the prime p is not in the file")
        XCTAssertFalse(contains(file, keyPair.publicKey.object.bytes), "nor the public key object")

        // A fresh salt each time: the same key pair and passphrase never give the same ciphertext.
        let again = try WrappedKeyPair.wrap(keyPair, passphrase: passphrase, parameters: cheap)
        XCTAssertNotEqual(again, file)
        XCTAssertNotEqual(try Record(object: Object(bytes: again)).bytes("ciphertext"), record.bytes("ciphertext"))
    }

    /// The cost the command line writes, once, end to end.
    func testStandardCost() throws {
        XCTAssertEqual(WrappedKeyPair.Parameters.standard, .init(logN: 17, r: 8, p: 1))
        XCTAssertEqual(WrappedKeyPair.Parameters.standard.memory, 128 << 20)
        XCTAssertTrue(WrappedKeyPair.Parameters.standard.isAcceptable)
        let file = try WrappedKeyPair.wrap(TestKeys.bob, passphrase: passphrase)
        XCTAssertEqual(WrappedKeyPair.parameters(of: file), .standard)
        XCTAssertEqual(try WrappedKeyPair.unwrap(file, passphrase: passphrase).actor, TestKeys.bob.actor)
    }

    func testWrongPassphrase() throws {
        let file = try WrappedKeyPair.wrap(TestKeys.alice, passphrase: passphrase, parameters: cheap)
        for wrong in ["", "correct horse battery stapl", "Correct horse battery staple", "correct horse battery staple\n"] {
            XCTAssertThrowsError(try WrappedKeyPair.unwrap(file, passphrase: Array(wrong.utf8))) {
                XCTAssertEqual($0 as? WrappedKeyPair.Failure, .wrongPassphrase, wrong)
            }
        }
        XCTAssertEqual(WrappedKeyPair.Failure.wrongPassphrase.description, "wrong passphrase")
    }

    /// Every one-byte change is refused; a change to the ciphertext or its MAC reads as tampering,
    /// not as a wrong passphrase, and one to the check value or salt as a wrong passphrase.
    func testTamperedFile() throws {
        let file = try WrappedKeyPair.wrap(TestKeys.alice, passphrase: passphrase, parameters: cheap)
        let object = try Object(bytes: file)
        func range(of label: String) throws -> Range<Int> {
            let record = try Record(object: object)
            let node = label == "salt" ? record.child("scrypt")!.value("salt")! : record.value(label)!
            return node.bytes.startIndex..<node.bytes.endIndex
        }
        let ciphertext = try range(of: "ciphertext"), mac = try range(of: "mac")
        let check = try range(of: "check"), salt = try range(of: "salt")
        var outcomes: [String: Int] = [:]
        for i in file.indices {
            var changed = file
            changed[i] ^= 0x01
            do {
                _ = try WrappedKeyPair.unwrap(changed, passphrase: passphrase)
                XCTFail("a change at byte \(i) went unnoticed")
            } catch {
                if ciphertext.contains(i) || mac.contains(i) { XCTAssertEqual(error, .tampered, "byte \(i)") }
                if check.contains(i) || salt.contains(i) { XCTAssertEqual(error, .wrongPassphrase, "byte \(i)") }
                let name = switch error {
                case .tampered: "tampered"
                case .wrongPassphrase: "wrongPassphrase"
                default: "other"
                }
                outcomes[name, default: 0] += 1
            }
        }
        XCTAssertEqual(outcomes["tampered"], ciphertext.count + mac.count)
        XCTAssertGreaterThanOrEqual(outcomes["wrongPassphrase"] ?? 0, check.count + salt.count)
    }

    func testTruncatedFile() throws {
        let file = try WrappedKeyPair.wrap(TestKeys.alice, passphrase: passphrase, parameters: cheap)
        for length in 0..<file.count {
            XCTAssertThrowsError(try WrappedKeyPair.unwrap(Array(file[..<length]), passphrase: passphrase), "length \(length)")
        }
        // Cut inside the ciphertext: the record no longer parses; nothing is decrypted.
        XCTAssertThrowsError(try WrappedKeyPair.unwrap(Array(file.dropLast(40)), passphrase: passphrase)) {
            guard case .malformed = $0 as? WrappedKeyPair.Failure else { return XCTFail("\($0)") }
        }
        // A plain key pair file is not a wrapped one.
        XCTAssertThrowsError(try WrappedKeyPair.unwrap(TestKeys.alice.fileBytes, passphrase: passphrase)) {
            guard case .malformed = $0 as? WrappedKeyPair.Failure else { return XCTFail("\($0)") }
        }
    }

    /// Costs beyond the bounds are refused before scrypt runs; a later version is named as such.
    func testUnsupported() throws {
        func file(version: UInt64 = 1, logN: UInt64 = 10, r: UInt64 = 8, p: UInt64 = 1) -> [UInt8] {
            var record = Record()
            record.add("wrapped key pair", unsigned: version)
            var s = Record(text: "scrypt")
            s.add("log n", unsigned: logN)
            s.add("r", unsigned: r)
            s.add("p", unsigned: p)
            s.add("salt", bytes: [UInt8](repeating: 7, count: 32))
            record.add(s)
            record.add("check", bytes: [UInt8](repeating: 0, count: 32))
            record.add("ciphertext", bytes: [1, 2, 3])
            record.add("mac", bytes: [UInt8](repeating: 0, count: 32))
            return record.serialized
        }
        func expectUnsupported(_ bytes: [UInt8], line: UInt = #line) {
            XCTAssertThrowsError(try WrappedKeyPair.unwrap(bytes, passphrase: passphrase), line: line) {
                guard case .unsupported = $0 as? WrappedKeyPair.Failure else { return XCTFail("\($0)", line: line) }
            }
        }
        expectUnsupported(file(version: 2))
        expectUnsupported(file(logN: 40))
        expectUnsupported(file(logN: UInt64.max))
        expectUnsupported(file(logN: 19))  // 512 MiB
        expectUnsupported(file(logN: 4))
        expectUnsupported(file(r: 0))
        expectUnsupported(file(p: 100))
        XCTAssertThrowsError(try WrappedKeyPair.unwrap(file(), passphrase: passphrase)) {
            XCTAssertEqual($0 as? WrappedKeyPair.Failure, .wrongPassphrase)
        }
        XCTAssertThrowsError(try WrappedKeyPair.wrap(TestKeys.alice, passphrase: passphrase, parameters: .init(logN: 30, r: 8, p: 1)))
    }

    /// Changing the passphrase rewrites the file only: the same key pair, so the same actor id.
    func testPasswdKeepsTheActor() throws {
        let keyPair = TestKeys.bob
        let first = try WrappedKeyPair.wrap(keyPair, passphrase: Array("old".utf8), parameters: cheap)
        let opened = try WrappedKeyPair.unwrap(first, passphrase: Array("old".utf8))
        let second = try WrappedKeyPair.wrap(opened, passphrase: Array("new".utf8), parameters: cheap)
        XCTAssertThrowsError(try WrappedKeyPair.unwrap(second, passphrase: Array("old".utf8))) {
            XCTAssertEqual($0 as? WrappedKeyPair.Failure, .wrongPassphrase)
        }
        let reopened = try WrappedKeyPair.unwrap(second, passphrase: Array("new".utf8))
        XCTAssertEqual(reopened.actor, keyPair.actor)
        XCTAssertEqual(reopened.fileBytes, keyPair.fileBytes)
        // It still signs as the same actor, and opens what was encrypted for it.
        XCTAssertTrue(keyPair.publicKey.rsa.verify(.emptyObject, signature: reopened.sign(.emptyObject)))
        let key = AESKey.random()
        XCTAssertEqual(reopened.decryptKey(try keyPair.publicKey.rsa.encrypt(key.bytes)), key)
        // Removing the passphrase gives back the plain file.
        XCTAssertEqual(try KeyPair(fileBytes: reopened.fileBytes).actor, keyPair.actor)
    }

    private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        return (0...(haystack.count - needle.count)).contains { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
    }
}
