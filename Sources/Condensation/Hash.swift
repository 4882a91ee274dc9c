import CCrypto

/// A SHA-256 hash naming an object. Four words instead of an array: hashes are dictionary keys on
/// every hot path, and a fixed-size value hashes and compares without touching the heap.
public struct Hash: Hashable, Comparable, Sendable, CustomStringConvertible {
    // Big-endian words, so that comparing words compares bytes.
    public let w0, w1, w2, w3: UInt64

    public static let byteCount = 32

    /// The hash of the empty object `00000000`.
    public static let emptyObject = Hash(hex: "df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119")!

    /// Reads 32 bytes. Returns nil for any other length.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        guard bytes.count == 32 else { return nil }
        var words = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        var i = 0
        for b in bytes {
            switch i >> 3 {
            case 0: words.0 = words.0 << 8 | UInt64(b)
            case 1: words.1 = words.1 << 8 | UInt64(b)
            case 2: words.2 = words.2 << 8 | UInt64(b)
            default: words.3 = words.3 << 8 | UInt64(b)
            }
            i += 1
        }
        (w0, w1, w2, w3) = words
    }

    init(raw: UnsafeRawBufferPointer) {
        w0 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        w1 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        w2 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        w3 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// Parses 64 hex digits (either case).
    public init?(hex: some StringProtocol) {
        guard hex.utf8.count == 64, let bytes = Hex.decode(hex) else { return nil }
        self.init(bytes: bytes)!
    }

    /// SHA-256 of the bytes.
    public static func of(_ bytes: UnsafeRawBufferPointer) -> Hash {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { out in
            let o = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
            _ = ccrypto_sha256(bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, o)
            return Hash(raw: UnsafeRawBufferPointer(out))
        }
    }

    public static func of(_ bytes: [UInt8]) -> Hash { bytes.withUnsafeBytes { of($0) } }
    public static func of(_ bytes: ArraySlice<UInt8>) -> Hash { bytes.withUnsafeBytes { of($0) } }

    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        write(to: &out, at: 0)
        return out
    }

    /// Writes the 32 bytes at `offset`.
    public func write(to out: inout [UInt8], at offset: Int) {
        out.withUnsafeMutableBytes { p in
            p.storeBytes(of: w0.bigEndian, toByteOffset: offset, as: UInt64.self)
            p.storeBytes(of: w1.bigEndian, toByteOffset: offset + 8, as: UInt64.self)
            p.storeBytes(of: w2.bigEndian, toByteOffset: offset + 16, as: UInt64.self)
            p.storeBytes(of: w3.bigEndian, toByteOffset: offset + 24, as: UInt64.self)
        }
    }

    public func append(to out: inout [UInt8]) {
        let at = out.count
        out.append(contentsOf: repeatElement(0, count: 32))
        write(to: &out, at: at)
    }

    public var hex: String { Hex.encode(bytes) }
    public var shortHex: String { String(hex.prefix(16)) }
    public var description: String { hex }

    public static func < (a: Hash, b: Hash) -> Bool {
        (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3)
    }
}

/// Lowercase hexadecimal, as Condensation writes hashes and keys.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var chars = [UInt8]()
        chars.reserveCapacity(bytes.count * 2)
        for b in bytes {
            chars.append(digits[Int(b >> 4)])
            chars.append(digits[Int(b & 15)])
        }
        return String(decoding: chars, as: UTF8.self)
    }

    /// Nil unless the text is an even number of hex digits.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = value(utf8[i]), let lo = value(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: return nil
        }
    }
}
