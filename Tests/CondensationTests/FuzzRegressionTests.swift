@testable import Condensation
import XCTest

/// Inputs found while fuzzing (Tests/Fuzz/run.sh) or while writing the fuzz targets' invariants, kept
/// so that what was fixed stays fixed.
final class FuzzRegressionTests: XCTestCase {
    /// A key pair file whose primes do not belong to its public key, both moduli larger than 8192 bits:
    /// `RSAKey.n` reads components into 1024 bytes and gives [] beyond, so `[] == []` passed the
    /// "keys match" check and the file was accepted (it would sign as one actor with another's key).
    /// Found by the keypair target's invariant "a key pair that parses signs verifiably".
    func testMismatchedKeysBeyondEightKilobitsAreRefused() throws {
        var g = SeededGenerator(seed: 0x4B50)
        func big(_ n: Int) -> [UInt8] {
            var b = g.bytes(n)
            b[0] |= 0x80
            b[n - 1] |= 1
            return b
        }
        var publicKey = Record()
        publicKey.add("e", bytes: [1, 0, 1])
        publicKey.add("n", bytes: big(1100))
        var file = Record()
        file.add("public key object", bytes: publicKey.serialized)
        var rsa = Record(text: "rsa key")
        rsa.add("e", bytes: [1, 0, 1])
        rsa.add("p", bytes: big(600))
        rsa.add("q", bytes: big(600))
        file.add(rsa)
        XCTAssertThrowsError(try KeyPair(fileBytes: file.serialized)) {
            XCTAssertEqual($0 as? KeyPair.Invalid, .keysDoNotMatch)
        }
    }
}

extension FuzzRegressionTests {
    /// Found by the keypair target in its first run (crash-8d4d695d…, a crossover of a wrapped file's
    /// first field with the vector key pair file): a plain key pair file that also has a `wrapped key
    /// pair` field was both a key pair and "wrapped", so `Home.open` would have asked for a passphrase
    /// and then called it malformed. A file with `rsa key` is plain now, whatever else it holds.
    func testAPlainFileWithAWrappedFieldIsPlain() throws {
        var record = try Record(object: Object(bytes: TestKeys.vectorFile))
        record.children.insert(Record(text: "wrapped key pair", children: [Record([1])]), at: 0)
        record.children.insert(Record(text: "scr"), at: 1)
        let bytes = record.serialized
        XCTAssertEqual(try KeyPair(fileBytes: bytes).actor, TestKeys.alice.actor)
        XCTAssertFalse(WrappedKeyPair.isWrapped(bytes))
        // The wrapped files we write have no `rsa key`.
        let wrapped = try WrappedKeyPair.wrap(TestKeys.alice, passphrase: [1], parameters: .init(logN: 10, r: 8, p: 1))
        XCTAssertTrue(WrappedKeyPair.isWrapped(wrapped))
        XCTAssertThrowsError(try KeyPair(fileBytes: wrapped))
    }
}
