/// An actor's public key as Condensation stores it: the record `e → …, n → …` with no hashes.
/// The actor id is the hash of this object, so it must be written byte for byte as the reference does.
public struct PublicKey: Sendable {
    public let rsa: RSAKey
    public let object: Object
    /// The actor id: SHA-256 of the public key object.
    public let hash: Hash

    public init(rsa: RSAKey) {
        var record = Record()
        record.add("e", bytes: rsa.e)
        record.add("n", bytes: rsa.n)
        self.rsa = rsa
        self.object = record.object()
        self.hash = object.calculateHash()
    }

    public enum Invalid: Error, Equatable, Sendable {
        case notARecord
        case missingField(String)
        case badKey
    }

    /// Reads a public key object (from a store, or from a key pair file).
    public init(object: Object) throws(Invalid) {
        guard let record = try? Record(object: object) else { throw .notARecord }
        guard let e = record.bytes("e") else { throw .missingField("e") }
        guard let n = record.bytes("n") else { throw .missingField("n") }
        guard let rsa = try? RSAKey.public(e: Array(e), n: Array(n)) else { throw .badKey }
        self.rsa = rsa
        self.object = object
        self.hash = object.calculateHash()
    }

    /// The first 24 bytes of the actor id: how envelopes name their recipients.
    public var prefix24: ArraySlice<UInt8> { hash.bytes[0..<24] }
}
