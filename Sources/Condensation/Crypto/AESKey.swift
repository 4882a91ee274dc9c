import CCrypto

/// A 256-bit AES key used in CTR mode with Condensation's zero-based counter.
/// The counter always starts at zero, so a key must never encrypt two different plaintexts:
/// keys are fresh random bytes or derived from the plaintext itself (`convergent`).
///
/// The 32 bytes are held inline, in memory order, not in an array: a key travels in every chunk
/// reference, and each copy of an array-backed key retained and released it (a tenth of a
/// sequential read's CPU went to those reference counts).
public struct AESKey: Hashable, Sendable {
    private let k0, k1, k2, k3: UInt64

    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == 32 else { throw .wrongKeySize(expected: 32, got: bytes.count) }
        (k0, k1, k2, k3) = bytes.withUnsafeBytes {
            ($0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
             $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        }
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The 32 bytes, for the C calls that take a key.
    private func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: (k0, k1, k2, k3), body)
    }

    func withKeyPointer<R>(_ body: (UnsafePointer<UInt8>) -> R) -> R {
        withUnsafeBytes { body($0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
    }

    public static func random() -> AESKey { try! AESKey(bytes: Random.bytes(32)) }

    /// Encrypts or decrypts in place. `offset` is where `buffer` starts in the whole stream, so a
    /// part of a ciphertext can be read on its own.
    public func apply(_ buffer: UnsafeMutableRawBufferPointer, offset: UInt64 = 0) {
        guard buffer.count > 0 else { return }
        let p = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let ok = withKeyPointer { ccrypto_aes256ctr($0, offset, p, p, buffer.count) }
        precondition(ok == 1, "libcrypto refused AES-256-CTR with a 32-byte key")
    }

    public func apply(_ buffer: inout [UInt8], from start: Int = 0, offset: UInt64 = 0) {
        buffer.withUnsafeMutableBytes { apply(UnsafeMutableRawBufferPointer(rebasing: $0[start...]), offset: offset) }
    }

    /// A copy of `input`, encrypted (or decrypted).
    public func applied(_ input: [UInt8]) -> [UInt8] {
        var out = input
        apply(&out)
        return out
    }
}

public enum Random {
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard count > 0 else { return out }
        precondition(ccrypto_random(&out, count) == 1, "libcrypto: the random generator failed")
        return out
    }
}

public enum Scrypt {
    /// scrypt with the given cost; used to wrap key pair files with a passphrase.
    public static func derive(passphrase: [UInt8], salt: [UInt8], n: UInt64, r: UInt64, p: UInt64,
                              length: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        let ok = ccrypto_scrypt(passphrase, passphrase.count, salt, salt.count, n, r, p, &out, length)
        guard ok == 1 else { throw .keyDerivationFailed }
        return out
    }
}
