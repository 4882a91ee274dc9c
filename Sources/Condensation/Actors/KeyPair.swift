/// A device's identity: its RSA key pair. Read and written in Condensation's key pair file format,
/// `public key object → <bytes>, rsa key → {e, p, q}`, so other Condensation tools can use it.
public struct KeyPair: Sendable {
    public let publicKey: PublicKey
    public let rsa: RSAKey

    public var actor: Hash { publicKey.hash }

    public init(rsa: RSAKey) {
        precondition(rsa.isPrivate)
        self.rsa = rsa
        self.publicKey = PublicKey(rsa: rsa)
    }

    public static func generate() -> KeyPair { KeyPair(rsa: .generate()) }

    public enum Invalid: Error, Equatable, Sendable {
        case notAnObject(ObjectError)
        case notARecord(RecordError)
        case missingField(String)
        case badPublicKey
        case badPrivateKey
        /// The primes do not belong to the public key the file names.
        case keysDoNotMatch
    }

    /// Parses a key pair file.
    public init(fileBytes: [UInt8]) throws(Invalid) {
        let object: Object
        do { object = try Object(bytes: fileBytes) } catch { throw .notAnObject(error) }
        let record: Record
        do { record = try Record(object: object) } catch { throw .notARecord(error) }
        guard let pkBytes = record.bytes("public key object") else { throw .missingField("public key object") }
        guard let rsaRecord = record.child("rsa key") else { throw .missingField("rsa key") }
        guard let e = rsaRecord.bytes("e") else { throw .missingField("e") }
        guard let p = rsaRecord.bytes("p") else { throw .missingField("p") }
        guard let q = rsaRecord.bytes("q") else { throw .missingField("q") }
        let publicKey: PublicKey
        do { publicKey = try PublicKey(object: Object(bytes: Array(pkBytes))) } catch { throw .badPublicKey }
        let rsa: RSAKey
        do { rsa = try RSAKey.private(e: Array(e), p: Array(p), q: Array(q)) } catch { throw .badPrivateKey }
        // A modulus too large to read back (`RSAKey.n` is [] beyond 8192 bits) cannot be shown to match.
        let n = rsa.n
        guard !n.isEmpty, n == publicKey.rsa.n, rsa.e == publicKey.rsa.e else { throw .keysDoNotMatch }
        self.rsa = rsa
        self.publicKey = publicKey
    }

    /// The key pair file's bytes.
    public var fileBytes: [UInt8] {
        var record = Record()
        record.add("public key object", bytes: publicKey.object.bytes)
        var rsaRecord = Record(text: "rsa key")
        rsaRecord.add("e", bytes: rsa.e)
        rsaRecord.add("p", bytes: rsa.p)
        rsaRecord.add("q", bytes: rsa.q)
        record.add(rsaRecord)
        return record.serialized
    }

    public func sign(_ hash: Hash) -> [UInt8] {
        do { return try rsa.sign(hash) } catch { fatalError("libcrypto could not sign with a valid private key") }
    }

    /// Opens an AES key encrypted for this actor.
    public func decryptKey(_ encrypted: [UInt8]) -> AESKey? {
        guard let bytes = try? rsa.decrypt(encrypted), bytes.count == 32 else { return nil }
        return try? AESKey(bytes: bytes)
    }
}
