import Condensation
@testable import CondensationFS
import XCTest

/// The keyed convergent encryption that SECURITY.md describes: insiders (holders of the group
/// secret) get the same object for the same bytes, and can confirm a guess; outsiders cannot, and
/// chunk sizes depend on the secret too.
final class ConvergenceTests: XCTestCase {
    let plain = Object(hashes: [], data: Array("a file everyone has: the same bytes on every machine".utf8))

    func testSameSecretSameBytesGiveTheSameObject() {
        let secrets = Secrets(groupSecret: [UInt8](repeating: 1, count: 32))
        let (o1, l1) = secrets.seal(plain)
        let (o2, l2) = Secrets(groupSecret: [UInt8](repeating: 1, count: 32)).seal(plain)
        XCTAssertEqual(o1, o2)
        XCTAssertEqual(l1, l2)
        // An insider confirms a guess: seal the guess, look for its hash on the store.
        XCTAssertEqual(secrets.seal(plain).1.hash, l1.hash)
        XCTAssertEqual(o1.crypted(with: l1.key).data, plain.data)
    }

    func testAnotherSecretGivesAnUnrelatedObject() {
        let ours = Secrets(groupSecret: [UInt8](repeating: 1, count: 32)).seal(plain)
        let theirs = Secrets(groupSecret: [UInt8](repeating: 2, count: 32)).seal(plain)
        XCTAssertNotEqual(ours.1.hash, theirs.1.hash)
        XCTAssertNotEqual(ours.1.key, theirs.1.key)
        XCTAssertEqual(ours.0.bytes.count, theirs.0.bytes.count, "only the size is the same")
        // Plain convergent encryption (key = SHA-256 of the plaintext), which an outsider could
        // compute from a guess, does not give our object either.
        let guessKey = try! AESKey(bytes: Hash.of(plain.bytes).bytes)
        XCTAssertNotEqual(plain.crypted(with: guessKey).calculateHash(), ours.1.hash)
    }

    func testChunkBoundariesDependOnTheSecret() {
        var g = SystemRandomNumberGenerator()
        let data = (0..<(8 << 20)).map { _ in UInt8.random(in: 0...255, using: &g) }
        let a = data.withUnsafeBytes { Chunker(secrets: Secrets(groupSecret: [UInt8](repeating: 1, count: 32))).split($0) }
        let again = data.withUnsafeBytes { Chunker(secrets: Secrets(groupSecret: [UInt8](repeating: 1, count: 32))).split($0) }
        let b = data.withUnsafeBytes { Chunker(secrets: Secrets(groupSecret: [UInt8](repeating: 2, count: 32))).split($0) }
        XCTAssertEqual(a, again)
        XCTAssertGreaterThan(a.count, 8)
        func cuts(_ lengths: [Int]) -> Set<Int> { Set(lengths.reduce(into: [Int]()) { $0.append(($0.last ?? 0) + $1) }.dropLast()) }
        // Another secret cuts elsewhere: (almost) no boundary in common.
        XCTAssertLessThanOrEqual(cuts(a).intersection(cuts(b)).count, 1)
    }
}
