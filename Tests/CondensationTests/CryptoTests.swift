import Condensation
import XCTest

final class CryptoTests: XCTestCase {
    // MARK: SHA-256

    func testSHA256KnownAnswers() {
        // FIPS 180-2 examples.
        XCTAssertEqual(Hash.of(Array("abc".utf8)).hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(Hash.of(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)).hex,
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    func testStreamingEqualsOneShot() {
        var g = SeededGenerator(seed: 31)
        let data = g.bytes(100_000)
        let stream = SHA256Stream()
        var at = 0
        while at < data.count {
            let n = min(Int.random(in: 0...5000, using: &g), data.count - at)
            stream.update(Array(data[at..<(at + n)]))
            at += n
        }
        XCTAssertEqual(stream.finish(), Hash.of(data))
        // The stream starts over after finish.
        stream.update(Array("abc".utf8))
        XCTAssertEqual(stream.finish(), Hash.of(Array("abc".utf8)))
        XCTAssertEqual(Hash.of(data[10..<20]), Hash.of(Array(data[10..<20])))
    }

    func testHMAC() {
        // RFC 4231, test case 2.
        let mac = HMAC.sha256(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8))
        XCTAssertEqual(Hex.encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    func testScrypt() throws {
        // RFC 7914, section 12, first vector.
        let out = try Scrypt.derive(passphrase: [], salt: [], n: 16, r: 1, p: 1, length: 64)
        XCTAssertEqual(Hex.encode(out), "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
                                      + "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906")
        XCTAssertThrowsError(try Scrypt.derive(passphrase: [], salt: [], n: 15, r: 1, p: 1, length: 32)) {
            XCTAssertEqual($0 as? CryptoError, .keyDerivationFailed, "n must be a power of two")
        }
    }

    func testRandomBytes() {
        XCTAssertEqual(Random.bytes(0), [])
        XCTAssertEqual(Random.bytes(33).count, 33)
        XCTAssertNotEqual(Random.bytes(32), Random.bytes(32))
        XCTAssertNotEqual(AESKey.random(), AESKey.random())
    }

    // MARK: AES-256-CTR

    func testAESKeySizes() {
        for size in [0, 1, 16, 24, 31, 33, 64] {
            XCTAssertThrowsError(try AESKey(bytes: [UInt8](repeating: 0, count: size))) {
                XCTAssertEqual($0 as? CryptoError, .wrongKeySize(expected: 32, got: size))
            }
        }
        XCTAssertNoThrow(try AESKey(bytes: [UInt8](repeating: 0, count: 32)))
    }

    func testCTRIsItsOwnInverse() {
        var g = SeededGenerator(seed: 32)
        let key = AESKey.random()
        for length in [0, 1, 15, 16, 17, 1000, 65_537] {
            let plain = g.bytes(length)
            let cipher = key.applied(plain)
            XCTAssertEqual(cipher.count, length)
            if length > 16 { XCTAssertNotEqual(cipher, plain) }
            XCTAssertEqual(key.applied(cipher), plain)
        }
    }

    /// Encrypting from any byte offset equals encrypting the whole stream from zero and slicing it.
    func testCTRAtAnyOffsetEqualsSlicingTheStream() throws {
        var g = SeededGenerator(seed: 33)
        let key = try AESKey(bytes: g.bytes(32))
        let plain = g.bytes(70_000)
        let whole = key.applied(plain)
        for _ in 0..<1500 {
            let start = Int.random(in: 0..<plain.count, using: &g)
            let length = Int.random(in: 0...min(plain.count - start, g.chance(0.8) ? 100 : 20_000), using: &g)
            var part = Array(plain[start..<(start + length)])
            key.apply(&part, offset: UInt64(start))
            XCTAssertEqual(part[...], whole[start..<(start + length)], "offset \(start), length \(length)")
        }
    }

    func testCTROffsetsInEveryForm() throws {
        let key = try AESKey(bytes: Array(0...31))
        let plain = [UInt8](repeating: 0x5a, count: 100)
        let whole = key.applied(plain)
        // `from`: the buffer's own start; `offset`: where that start is in the stream.
        var buffer = [UInt8](repeating: 0xee, count: 7) + plain[40...]
        key.apply(&buffer, from: 7, offset: 40)
        XCTAssertEqual(buffer[7...], whole[40...])
        XCTAssertEqual(buffer[..<7], [UInt8](repeating: 0xee, count: 7)[...], "bytes before `from` stay as they are")
        // Through a raw buffer.
        var raw = Array(plain[33..<90])
        raw.withUnsafeMutableBytes { key.apply($0, offset: 33) }
        XCTAssertEqual(raw[...], whole[33..<90])
        // An empty buffer is fine at any offset.
        var empty: [UInt8] = []
        key.apply(&empty, offset: 12345)
        XCTAssertEqual(empty, [])
    }

    func testCTRAtLargeOffsets() throws {
        // Offsets far beyond any buffer: the block number fills the counter's low 64 bits.
        let key = try AESKey(bytes: Array(0...31))
        for offset: UInt64 in [1 << 40, (1 << 40) + 5, UInt64.max - 100] {
            var whole = [UInt8](repeating: 0, count: 64)
            key.apply(&whole, offset: offset)
            var tail = [UInt8](repeating: 0, count: 41)
            key.apply(&tail, offset: offset + 23)
            XCTAssertEqual(tail[...], whole[23...], "offset \(offset)")
            var first = [UInt8](repeating: 0, count: 64)
            key.apply(&first, offset: 0)
            XCTAssertNotEqual(first, whole)
        }
    }

    // MARK: RSA

    func testSignAndVerify() throws {
        let key = TestKeys.alice.rsa
        XCTAssertEqual(key.size, 256)
        XCTAssertTrue(key.isPrivate)
        let digest = Hash.of(Array("message".utf8))
        let signature = try key.sign(digest)
        XCTAssertEqual(signature.count, 256)
        XCTAssertTrue(key.verify(digest, signature: signature))
        XCTAssertTrue(TestKeys.alice.publicKey.rsa.verify(digest, signature: signature))
        XCTAssertFalse(key.verify(Hash.of(Array("other".utf8)), signature: signature))
        XCTAssertFalse(TestKeys.bob.rsa.verify(digest, signature: signature), "another key")
        // PSS is randomised: two signatures differ and both verify.
        let second = try key.sign(digest)
        XCTAssertNotEqual(second, signature)
        XCTAssertTrue(key.verify(digest, signature: second))
    }

    func testTamperedSignaturesFail() throws {
        let key = TestKeys.alice.rsa
        let digest = Hash.of(Array("message".utf8))
        let signature = try key.sign(digest)
        for position in [0, 1, 100, 255] {
            var bad = signature
            bad[position] ^= 0x01
            XCTAssertFalse(key.verify(digest, signature: bad), "bit flipped at \(position)")
        }
    }

    func testSignatureWithALeadingZeroVerifies() throws {
        let key = TestKeys.alice.rsa
        let digest = Hash.of(Array("message".utf8))
        let signature = try key.sign(digest)
        XCTAssertTrue(key.verify(digest, signature: [0] + signature), "257 bytes with a leading zero")
    }

    func testSignaturesOfTheWrongLengthFail() throws {
        let key = TestKeys.alice.rsa
        let digest = Hash.of(Array("message".utf8))
        let signature = try key.sign(digest)
        XCTAssertFalse(key.verify(digest, signature: []))
        XCTAssertFalse(key.verify(digest, signature: Array(signature.dropLast())))
        XCTAssertFalse(key.verify(digest, signature: Array(signature.dropFirst())))
        XCTAssertFalse(key.verify(digest, signature: [1] + signature), "257 bytes, the first not zero")
        XCTAssertFalse(key.verify(digest, signature: signature + [0]))
        XCTAssertFalse(key.verify(digest, signature: signature + signature))
        XCTAssertFalse(key.verify(digest, signature: [UInt8](repeating: 0xff, count: 256)), "larger than the modulus")
        XCTAssertFalse(key.verify(digest, signature: [UInt8](repeating: 0, count: 256)))
    }

    func testOAEPRoundTrip() throws {
        let secret = Random.bytes(32)
        let encrypted = try TestKeys.alice.publicKey.rsa.encrypt(secret)
        XCTAssertEqual(encrypted.count, 256)
        XCTAssertEqual(try TestKeys.alice.rsa.decrypt(encrypted), secret)
        XCTAssertEqual(try TestKeys.alice.rsa.decrypt([0] + encrypted), secret, "as an integer, a leading zero is fine")
        XCTAssertNotEqual(try TestKeys.alice.publicKey.rsa.encrypt(secret), encrypted, "OAEP is randomised")
        // Empty and longer secrets work too, up to the OAEP limit (256 - 2·32 - 2 = 190 bytes).
        XCTAssertEqual(try TestKeys.alice.rsa.decrypt(TestKeys.alice.rsa.encrypt([])), [])
        let long = Random.bytes(190)
        XCTAssertEqual(try TestKeys.alice.rsa.decrypt(TestKeys.alice.rsa.encrypt(long)), long)
        XCTAssertThrowsError(try TestKeys.alice.rsa.encrypt(Random.bytes(191))) {
            XCTAssertEqual($0 as? CryptoError, .encryptionFailed)
        }
    }

    func testOAEPFailures() throws {
        let encrypted = try TestKeys.alice.publicKey.rsa.encrypt(Random.bytes(32))
        XCTAssertThrowsError(try TestKeys.bob.rsa.decrypt(encrypted)) {
            XCTAssertEqual($0 as? CryptoError, .decryptionFailed, "someone else's key")
        }
        XCTAssertThrowsError(try TestKeys.alice.publicKey.rsa.decrypt(encrypted)) {
            XCTAssertEqual($0 as? CryptoError, .decryptionFailed, "a public key cannot decrypt")
        }
        var tampered = encrypted
        tampered[128] ^= 1
        XCTAssertThrowsError(try TestKeys.alice.rsa.decrypt(tampered))
        XCTAssertThrowsError(try TestKeys.alice.rsa.decrypt(Array(encrypted.dropFirst())))
        XCTAssertThrowsError(try TestKeys.alice.rsa.decrypt([1] + encrypted))
        XCTAssertThrowsError(try TestKeys.alice.rsa.decrypt([]))
    }

    func testPublicKeysCannotSign() {
        XCTAssertThrowsError(try TestKeys.alice.publicKey.rsa.sign(.emptyObject)) {
            XCTAssertEqual($0 as? CryptoError, .signatureFailed)
        }
    }

    func testKeyComponents() throws {
        let rsa = TestKeys.bob.rsa
        XCTAssertEqual(rsa.e, [1, 0, 1])
        XCTAssertEqual(rsa.n.count, 256)
        XCTAssertEqual(rsa.p.count, 128)
        XCTAssertEqual(rsa.q.count, 128)
        let rebuilt = try RSAKey.private(e: rsa.e, p: rsa.p, q: rsa.q)
        XCTAssertEqual(rebuilt.n, rsa.n)
        let signature = try rebuilt.sign(.emptyObject)
        XCTAssertTrue(TestKeys.bob.publicKey.rsa.verify(.emptyObject, signature: signature))
        let publicOnly = try RSAKey.public(e: rsa.e, n: rsa.n)
        XCTAssertFalse(publicOnly.isPrivate)
        XCTAssertEqual(publicOnly.p, [], "a public key has no primes")
    }

    func testWrongRSAKeySizesThrow() {
        let rsa = TestKeys.alice.rsa
        func invalid(_ body: () throws -> RSAKey, _ message: String) {
            XCTAssertThrowsError(try body(), message) { XCTAssertEqual($0 as? CryptoError, .invalidRSAKey, message) }
        }
        invalid({ try RSAKey.public(e: [], n: rsa.n) }, "empty e")
        invalid({ try RSAKey.public(e: rsa.e, n: []) }, "empty n")
        invalid({ try RSAKey.public(e: [0], n: rsa.n) }, "e = 0")
        invalid({ try RSAKey.public(e: [UInt8](repeating: 1, count: 9), n: rsa.n) }, "e longer than 8 bytes")
        invalid({ try RSAKey.public(e: rsa.e, n: [UInt8](repeating: 0xff, count: 32)) }, "a 256-bit modulus")
        invalid({ try RSAKey.public(e: rsa.e, n: [UInt8](repeating: 0xff, count: 2049)) }, "a modulus over 16384 bits")
        invalid({ try RSAKey.private(e: rsa.e, p: [], q: rsa.q) }, "empty p")
        invalid({ try RSAKey.private(e: rsa.e, p: rsa.p, q: []) }, "empty q")
        invalid({ try RSAKey.private(e: [], p: rsa.p, q: rsa.q) }, "empty e")
        invalid({ try RSAKey.private(e: rsa.e, p: [1], q: rsa.q) }, "p = 1")
        invalid({ try RSAKey.private(e: rsa.e, p: rsa.p, q: [UInt8](repeating: 0xff, count: 1025)) }, "q too long")
    }
}
