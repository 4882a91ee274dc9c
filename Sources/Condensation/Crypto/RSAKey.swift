import CCrypto

/// An RSA key held by libcrypto: public only, or with its private half. Keys are immutable;
/// libcrypto allows concurrent use of one EVP_PKEY for signing, verifying and OAEP.
public final class RSAKey: @unchecked Sendable {
    fileprivate let key: OpaquePointer
    public let isPrivate: Bool

    private init(_ key: OpaquePointer, isPrivate: Bool) {
        self.key = key
        self.isPrivate = isPrivate
    }

    deinit { ccrypto_rsa_free(key) }

    /// A new 2048-bit key pair with e = 65537.
    public static func generate(bits: UInt32 = 2048) -> RSAKey {
        guard let k = ccrypto_rsa_generate(bits) else { fatalError("libcrypto could not generate an RSA key") }
        return RSAKey(k, isPrivate: true)
    }

    /// A private key from its public exponent and primes, as a key pair file stores it.
    public static func `private`(e: [UInt8], p: [UInt8], q: [UInt8]) throws(CryptoError) -> RSAKey {
        guard !e.isEmpty, !p.isEmpty, !q.isEmpty, e.count <= 8, p.count <= 1024, q.count <= 1024,
              let k = ccrypto_rsa_private(e, e.count, p, p.count, q, q.count) else { throw .invalidRSAKey }
        return RSAKey(k, isPrivate: true)
    }

    public static func `public`(e: [UInt8], n: [UInt8]) throws(CryptoError) -> RSAKey {
        guard !e.isEmpty, !n.isEmpty, e.count <= 8, n.count <= 2048,
              let k = ccrypto_rsa_public(e, e.count, n, n.count) else { throw .invalidRSAKey }
        return RSAKey(k, isPrivate: false)
    }

    /// The modulus size in bytes (256 for RSA-2048).
    public var size: Int { Int(ccrypto_rsa_size(key)) }

    private func component(_ which: Int32) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 1024)
        let n = ccrypto_rsa_component(key, which, &out, out.count)
        return n < 0 ? [] : Array(out[..<Int(n)])
    }

    public var e: [UInt8] { component(Int32(CCRYPTO_RSA_E)) }
    public var n: [UInt8] { component(Int32(CCRYPTO_RSA_N)) }
    public var p: [UInt8] { component(Int32(CCRYPTO_RSA_P)) }
    public var q: [UInt8] { component(Int32(CCRYPTO_RSA_Q)) }

    /// PSS-SHA-256 signature of a 32-byte digest, written as `size` bytes.
    public func sign(_ digest: Hash) throws(CryptoError) -> [UInt8] {
        guard isPrivate else { throw .signatureFailed }
        var sig = [UInt8](repeating: 0, count: size)
        let d = digest.bytes
        let n = ccrypto_rsa_sign_pss(key, d, &sig, sig.count)
        guard n > 0 else { throw .signatureFailed }
        return Self.fixedWidth(Array(sig[..<Int(n)]), size)
    }

    /// Verifies a PSS signature with any salt length. Signatures are read as unsigned big-endian
    /// integers, as the format says: leading zero bytes (some writers emit 257 bytes) do not change
    /// the value, and an integer that does not fit in the modulus size is refused before libcrypto.
    public func verify(_ digest: Hash, signature: [UInt8]) -> Bool {
        guard let sig = Self.normalized(signature, size) else { return false }
        return ccrypto_rsa_verify_pss(key, digest.bytes, sig, sig.count) == 1
    }

    /// OAEP-SHA-256 encryption of a short secret (an AES key).
    public func encrypt(_ plaintext: [UInt8]) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        let n = ccrypto_rsa_encrypt_oaep(key, plaintext, plaintext.count, &out, out.count)
        guard n > 0 else { throw .encryptionFailed }
        return Self.fixedWidth(Array(out[..<Int(n)]), size)
    }

    public func decrypt(_ ciphertext: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard isPrivate, let c = Self.normalized(ciphertext, size) else { throw .decryptionFailed }
        var out = [UInt8](repeating: 0, count: size)
        let n = ccrypto_rsa_decrypt_oaep(key, c, c.count, &out, out.count)
        guard n >= 0 else { throw .decryptionFailed }
        return Array(out[..<Int(n)])
    }

    private static func fixedWidth(_ bytes: [UInt8], _ width: Int) -> [UInt8] {
        bytes.count >= width ? bytes : [UInt8](repeating: 0, count: width - bytes.count) + bytes
    }

    /// The integer as exactly `width` bytes, or nil if it does not fit.
    private static func normalized(_ bytes: [UInt8], _ width: Int) -> [UInt8]? {
        var start = 0
        while bytes.count - start > width, bytes[start] == 0 { start += 1 }
        guard bytes.count - start <= width, bytes.count > 0 else { return nil }
        return fixedWidth(Array(bytes[start...]), width)
    }
}
