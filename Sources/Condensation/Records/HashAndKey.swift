/// A link to an encrypted object: its hash and the AES key that opens it. The key travels only
/// inside the parent's encrypted data, so the store can follow the hash but not read the child.
public struct HashAndKey: Hashable, Sendable {
    public let hash: Hash
    public let key: AESKey

    public init(hash: Hash, key: AESKey) {
        self.hash = hash
        self.key = key
    }

    /// A node whose bytes are the key and whose hash is the object's.
    public var record: Record { Record(key.bytes, hash: hash) }

    /// Nil unless the node has a hash and exactly 32 bytes.
    public init?(record: Record) {
        guard let h = record.hash, let key = try? AESKey(bytes: Array(record.bytes)) else { return nil }
        self.init(hash: h, key: key)
    }
}
