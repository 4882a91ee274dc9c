import Condensation

/// Keys derived from the group secret that every device of the user holds (in the private root).
///
/// Objects are encrypted with keyed convergent keys: key = HMAC(secret, plaintext). Equal bytes give
/// equal objects, so unchanged parts of a tree, copies of a file and data another device already
/// uploaded are stored and sent once; without the secret nobody can confirm a guessed plaintext.
/// The counter of AES-CTR always starts at zero, which is safe here because a key derived from its
/// plaintext never encrypts anything else.
public struct Secrets: Sendable {
    public let groupSecret: [UInt8]
    let objectKeySecret: [UInt8]
    /// Chunks sealed in blocks get keys of their own kind: a key is never used both for AES-CTR
    /// and for AES-GCM, whose counters would overlap.
    let chunkKeySecret: [UInt8]
    /// The chunker's gear table, keyed so that chunk boundaries do not reveal content.
    let gear: [UInt64]

    public init(groupSecret: [UInt8]) {
        precondition(groupSecret.count == 32)
        self.groupSecret = groupSecret
        objectKeySecret = HMAC.sha256(key: groupSecret, Array("cdsfs object keys".utf8))
        chunkKeySecret = HMAC.sha256(key: groupSecret, Array("cdsfs chunk keys".utf8))
        let gearKey = try! AESKey(bytes: HMAC.sha256(key: groupSecret, Array("cdsfs chunker".utf8)))
        let stream = gearKey.applied([UInt8](repeating: 0, count: 256 * 8))
        gear = (0..<256).map { i in
            var v: UInt64 = 0
            for b in stream[(i * 8)..<(i * 8 + 8)] { v = v << 8 | UInt64(b) }
            return v
        }
    }

    public static func random() -> Secrets { Secrets(groupSecret: Random.bytes(32)) }

    /// The convergent key of an object's plaintext bytes (header included, so the hash list is bound too).
    func key(for plaintext: UnsafeRawBufferPointer) -> AESKey {
        try! AESKey(bytes: HMAC.sha256(key: objectKeySecret, plaintext))
    }

    /// The convergent key of a chunk sealed in blocks: HMAC(chunk key secret, plaintext).
    func chunkKey(for plaintext: UnsafeRawBufferPointer) -> AESKey {
        try! AESKey(bytes: HMAC.sha256(key: chunkKeySecret, plaintext))
    }

    /// Encrypts an object with its convergent key and returns it with the link that opens it.
    public func seal(_ plain: Object) -> (Object, HashAndKey) {
        let key = plain.bytes.withUnsafeBytes { self.key(for: $0) }
        let encrypted = plain.crypted(with: key)
        return (encrypted, HashAndKey(hash: encrypted.calculateHash(), key: key))
    }
}
