/// Why bytes are not an object.
public enum ObjectError: Error, Equatable, Sendable {
    /// Fewer than the 4 bytes of the hash count.
    case truncatedHeader(length: Int)
    /// The header announces more hashes than the bytes hold.
    case hashListPastEnd(count: UInt32, length: Int)
    /// The bytes do not hash to the name they were asked for or stored under.
    case hashMismatch(expected: Hash, actual: Hash)
}

/// A Condensation object: a u32 hash count, that many 32-byte hashes, then data.
/// The bytes are kept whole: that is what gets hashed, stored and sent; the hash list and the data
/// are views into them, and encryption works on the data part in place.
public struct Object: Sendable, Equatable {
    public private(set) var bytes: [UInt8]
    public let hashCount: Int

    /// The empty object (no hashes, no data).
    public static let empty = Object(hashes: [], data: [])

    public init(hashes: [Hash], data: [UInt8]) {
        var bytes = [UInt8]()
        bytes.reserveCapacity(4 + 32 * hashes.count + data.count)
        Object.appendHeader(count: hashes.count, to: &bytes)
        for h in hashes { h.append(to: &bytes) }
        bytes.append(contentsOf: data)
        self.bytes = bytes
        self.hashCount = hashes.count
    }

    /// Parses object bytes. Only the header is checked: the data part is opaque (it may be encrypted).
    public init(bytes: [UInt8]) throws(ObjectError) {
        guard bytes.count >= 4 else { throw .truncatedHeader(length: bytes.count) }
        let count = UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])
        // 64-bit arithmetic: 4 + 32·count cannot overflow for a u32 count.
        guard 4 + 32 * UInt64(count) <= UInt64(bytes.count) else {
            throw .hashListPastEnd(count: count, length: bytes.count)
        }
        self.bytes = bytes
        self.hashCount = Int(count)
    }

    /// Bytes this module wrote itself, with a header it knows to be right (the record writer).
    init(bytes: [UInt8], validatedHashCount: Int) {
        assert(bytes.count >= 4 + 32 * validatedHashCount)
        self.bytes = bytes
        self.hashCount = validatedHashCount
    }

    /// Parses bytes that were asked for by hash, and checks they are what was asked for.
    public init(bytes: [UInt8], expecting hash: Hash) throws(ObjectError) {
        let actual = Hash.of(bytes)
        guard actual == hash else { throw .hashMismatch(expected: hash, actual: actual) }
        try self.init(bytes: bytes)
    }

    static func appendHeader(count: Int, to bytes: inout [UInt8]) {
        let c = UInt32(count)
        bytes.append(UInt8(c >> 24)); bytes.append(UInt8(c >> 16 & 0xff))
        bytes.append(UInt8(c >> 8 & 0xff)); bytes.append(UInt8(c & 0xff))
    }

    public var dataStart: Int { 4 + 32 * hashCount }
    public var data: ArraySlice<UInt8> { bytes[dataStart...] }
    public var dataCount: Int { bytes.count - dataStart }

    public func hash(at index: Int) -> Hash {
        bytes.withUnsafeBytes { Hash(raw: UnsafeRawBufferPointer(rebasing: $0[(4 + 32 * index)..<(36 + 32 * index)])) }
    }

    public var hashes: [Hash] { (0..<hashCount).map(hash(at:)) }

    /// SHA-256 of all bytes: the object's name.
    public func calculateHash() -> Hash { Hash.of(bytes) }

    /// Encrypts or decrypts the data part in place; the header and hash list stay in the clear so
    /// that stores can follow trees without reading them.
    public mutating func crypt(with key: AESKey) {
        key.apply(&bytes, from: dataStart)
    }

    public func crypted(with key: AESKey) -> Object {
        var copy = self
        copy.crypt(with: key)
        return copy
    }
}
