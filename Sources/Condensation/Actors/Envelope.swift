/// Why an envelope could not be opened. Each is a reason to skip the entry, never to crash.
public enum EnvelopeError: Error, Equatable, Sendable {
    case notARecord
    case missingContent
    case notEncryptedForUs
    case badKey
    case badSignature
    case tooLarge
}

/// Envelopes: the signed records that box entries point to (see the format spec, "Envelopes").
public enum Envelope {
    /// Messages are small by protocol: a larger envelope is refused before any RSA work.
    public static let maximumMessageSize = 16 * 1024

    // MARK: Private box entries

    /// `content → #hash, encrypted for → {prefix → OAEP(key)}, signature → PSS(hash)`.
    /// The writer is always among the recipients.
    public static func privateEnvelope(content: HashAndKey, recipients: [PublicKey], signer: KeyPair) -> Object {
        var record = Record()
        record.add("content", hash: content.hash)
        record.add(encryptedFor(key: content.key, recipients: recipients, writer: signer.publicKey))
        record.add("signature", bytes: signer.sign(content.hash))
        return record.object()
    }

    /// Opens a private box entry; `signer` is the box owner's public key. Returns the content link.
    public static func openPrivate(_ envelope: Object, signer: PublicKey, keyPair: KeyPair) throws(EnvelopeError) -> HashAndKey {
        let record = try parse(envelope)
        guard let contentHash = record.hash("content") else { throw .missingContent }
        try verify(record, hash: contentHash, signer: signer)
        return HashAndKey(hash: contentHash, key: try decryptKey(record, keyPair: keyPair))
    }

    // MARK: Public cards

    /// `content → #cardHash, signature → PSS(cardHash)`.
    public static func publicEnvelope(cardHash: Hash, signer: KeyPair) -> Object {
        var record = Record()
        record.add("content", hash: cardHash)
        record.add("signature", bytes: signer.sign(cardHash))
        return record.object()
    }

    /// Returns the card's hash if the envelope is signed by `signer`.
    public static func openPublic(_ envelope: Object, signer: PublicKey) throws(EnvelopeError) -> Hash {
        let record = try parse(envelope)
        guard let cardHash = record.hash("content") else { throw .missingContent }
        try verify(record, hash: cardHash, signer: signer)
        return cardHash
    }

    // MARK: Messages

    /// A message: the whole content object (`store`, `sender`, then the fields) encrypted with a fresh
    /// key and embedded; the signature covers the hash of the encrypted bytes. `references` are named
    /// by hash in the envelope (`tree → #…`) so that the recipient's store keeps the trees the message
    /// is about while it waits in the in-queue (garbage collection follows hash lists).
    public static func message(fields: [Record], senderStoreURL: String, recipients: [PublicKey], signer: KeyPair,
                               expires: Int64?, references: [Hash] = []) -> Object {
        var content = Record()
        content.add("store", text: senderStoreURL)
        content.add("sender", hash: signer.actor)
        content.children.append(contentsOf: fields)
        let key = AESKey.random()
        let encrypted = key.applied(content.serialized)
        var record = Record()
        record.add("content", bytes: encrypted)
        record.add(encryptedFor(key: key, recipients: recipients, writer: signer.publicKey))
        record.add("updated by", bytes: Array(signer.publicKey.prefix24))
        if let expires { record.add("expires", integer: expires) }
        if !references.isEmpty { record.add(Record(text: "tree", children: references.map { Record([], hash: $0) })) }
        record.add("signature", bytes: signer.sign(Hash.of(encrypted)))
        return record.object()
    }

    /// An opened message: who sent it (claimed until verified), and its content record.
    public struct Message: Sendable {
        public let sender: Hash
        public let senderStoreURL: String
        public let content: Record
        public let contentObject: Object
        public let expires: Int64?
    }

    /// Decrypts a message; the caller fetches the sender's public key (named inside) and calls
    /// `verifyMessage` before trusting anything.
    public static func openMessage(_ envelope: Object, keyPair: KeyPair) throws(EnvelopeError) -> Message {
        guard envelope.bytes.count <= maximumMessageSize else { throw .tooLarge }
        let record = try parse(envelope)
        guard let encrypted = record.bytes("content"), !encrypted.isEmpty else { throw .missingContent }
        let key = try decryptKey(record, keyPair: keyPair)
        let plain = key.applied(Array(encrypted))
        guard let object = try? Object(bytes: plain), let content = try? Record(object: object) else {
            throw .notARecord
        }
        guard let sender = content.hash("sender") else { throw .missingContent }
        return Message(sender: sender, senderStoreURL: content.text("store") ?? "", content: content,
                       contentObject: object, expires: record.integer("expires"))
    }

    public static func verifyMessage(_ envelope: Object, signer: PublicKey) throws(EnvelopeError) {
        let record = try parse(envelope)
        guard let encrypted = record.bytes("content") else { throw .missingContent }
        try verify(record, hash: Hash.of(encrypted), signer: signer)
    }

    // MARK: Parts

    private static func encryptedFor(key: AESKey, recipients: [PublicKey], writer: PublicKey) -> Record {
        var list = Record(text: "encrypted for")
        var seen = Set<Hash>()
        for recipient in [writer] + recipients where seen.insert(recipient.hash).inserted {
            let encrypted: [UInt8]
            do { encrypted = try recipient.rsa.encrypt(key.bytes) } catch { fatalError("OAEP of a 32-byte key failed") }
            list.add(Record(bytes: recipient.prefix24, children: [Record(encrypted)]))
        }
        return list
    }

    private static func parse(_ envelope: Object) throws(EnvelopeError) -> Record {
        guard let record = try? Record(object: envelope) else { throw .notARecord }
        return record
    }

    private static func verify(_ record: Record, hash: Hash, signer: PublicKey) throws(EnvelopeError) {
        guard let signature = record.bytes("signature"), signer.rsa.verify(hash, signature: Array(signature)) else {
            throw .badSignature
        }
    }

    private static func decryptKey(_ record: Record, keyPair: KeyPair) throws(EnvelopeError) -> AESKey {
        guard let list = record.child("encrypted for") else { throw .notEncryptedForUs }
        let entry = list.child(bytes: keyPair.publicKey.prefix24) ?? list.child(bytes: keyPair.actor.bytes)
        guard let encrypted = entry?.firstChild?.bytes else { throw .notEncryptedForUs }
        guard let key = keyPair.decryptKey(Array(encrypted)) else { throw .badKey }
        return key
    }
}
