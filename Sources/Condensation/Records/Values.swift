/// Condensation's value encodings, byte-exact with the reference writers.
public enum Values {
    /// Shortest two's complement, big-endian; 0 is empty.
    public static func integer(_ value: Int64) -> [UInt8] {
        if value == 0 { return [] }
        var bytes = withUnsafeBytes(of: value.bigEndian) { Array($0) }
        // Drop a leading byte while the next one still carries the sign.
        while bytes.count > 1 {
            if bytes[0] == 0x00 && bytes[1] & 0x80 == 0 { bytes.removeFirst() }
            else if bytes[0] == 0xff && bytes[1] & 0x80 != 0 { bytes.removeFirst() }
            else { break }
        }
        return bytes
    }

    /// Shortest big-endian; 0 is empty.
    public static func unsigned(_ value: UInt64) -> [UInt8] {
        var bytes = withUnsafeBytes(of: value.bigEndian) { Array($0) }
        while let first = bytes.first, first == 0 { bytes.removeFirst() }
        return bytes
    }

    public static func bool(_ value: Bool) -> [UInt8] { value ? [0x79] : [] }

    /// Nil if longer than 8 bytes.
    public static func readInteger(_ bytes: ArraySlice<UInt8>) -> Int64? {
        guard bytes.count <= 8 else { return nil }
        guard let first = bytes.first else { return 0 }
        var v: Int64 = first & 0x80 != 0 ? -1 : 0
        for b in bytes { v = v << 8 | Int64(b) }
        return v
    }

    public static func readUnsigned(_ bytes: ArraySlice<UInt8>) -> UInt64? {
        guard bytes.count <= 8 else { return nil }
        var v: UInt64 = 0
        for b in bytes { v = v << 8 | UInt64(b) }
        return v
    }

    public static func float64(_ value: Double) -> [UInt8] {
        withUnsafeBytes(of: value.bitPattern.bigEndian) { Array($0) }
    }

    public static func readFloat(_ bytes: ArraySlice<UInt8>) -> Double? {
        switch bytes.count {
        case 4: return Double(Float(bitPattern: UInt32(truncatingIfNeeded: readUnsigned(bytes)!)))
        case 8: return Double(bitPattern: readUnsigned(bytes)!)
        default: return nil
        }
    }
}
