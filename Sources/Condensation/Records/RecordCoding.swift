/// Why object data is not a record.
public enum RecordError: Error, Equatable, Sendable {
    /// A node's flags, length, bytes or hash index run past the end of the data.
    case truncated(at: Int)
    /// A node's hash index is not in the object's hash list.
    case hashIndexOutOfRange(index: UInt32, count: Int)
    /// Nesting deeper than `RecordDecoder.maximumDepth`: no record we read is that deep, and
    /// refusing it keeps a hostile object from exhausting the stack.
    case tooDeep
}

extension Record {
    /// Serialises the record's children as object data and returns the whole object.
    /// One hash-list entry per hash-carrying node, depth first, as the reference writers do.
    public func object() -> Object {
        var hashes = [Hash]()
        var data = [UInt8]()
        data.reserveCapacity(encodedSize)
        Record.write(children, to: &data, hashes: &hashes)
        return Object(hashes: hashes, data: data)
    }

    /// Object bytes of the record (unencrypted).
    public var serialized: [UInt8] { object().bytes }

    /// An upper bound of the data size, to allocate once.
    var encodedSize: Int {
        var size = 0
        var stack = children
        while let node = stack.popLast() {
            size += 13 + node.bytes.count
            stack.append(contentsOf: node.children)
        }
        return size
    }

    private static func write(_ nodes: [Record], to data: inout [UInt8], hashes: inout [Hash]) {
        for (i, node) in nodes.enumerated() {
            let length = node.bytes.count
            var flags: UInt8 = length < 30 ? UInt8(length) : length < 286 ? 30 : 31
            if node.hash != nil { flags |= 0x20 }
            if !node.children.isEmpty { flags |= 0x40 }
            if i < nodes.count - 1 { flags |= 0x80 }
            data.append(flags)
            if flags & 0x1f == 30 {
                data.append(UInt8(length - 30))
            } else if flags & 0x1f == 31 {
                appendBigEndian(UInt64(length), bytes: 8, to: &data)
            }
            data.append(contentsOf: node.bytes)
            if let h = node.hash {
                appendBigEndian(UInt64(hashes.count), bytes: 4, to: &data)
                hashes.append(h)
            }
            if !node.children.isEmpty { write(node.children, to: &data, hashes: &hashes) }
        }
    }

    /// Reads a record from an (unencrypted) object.
    public init(object: Object) throws(RecordError) {
        var decoder = RecordDecoder(object: object)
        self = try decoder.decode()
    }

    /// Reads a record from object bytes (unencrypted).
    public init(objectBytes: [UInt8]) throws {
        try self.init(object: Object(bytes: objectBytes))
    }
}

func appendBigEndian(_ value: UInt64, bytes: Int, to data: inout [UInt8]) {
    for i in stride(from: bytes - 1, through: 0, by: -1) { data.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
}

/// Reads the node stream iteratively: recursion would let a hostile object choose the stack depth.
/// Every length is checked against what is left before it is used.
struct RecordDecoder {
    static let maximumDepth = 256

    let object: Object
    let end: Int
    var pos: Int
    /// Per open level: whether the node that opened it has more siblings.
    init(object: Object) {
        self.object = object
        self.pos = object.dataStart
        self.end = object.bytes.count
    }

    mutating func decode() throws(RecordError) -> Record {
        var stack = [Record()]
        if pos == end { return stack[0] }
        let bytes = object.bytes
        while true {
            guard pos < end else { throw .truncated(at: pos) }
            let flags = bytes[pos]
            pos += 1
            var length = UInt64(flags & 0x1f)
            if length == 30 {
                guard pos < end else { throw .truncated(at: pos) }
                length = 30 + UInt64(bytes[pos])
                pos += 1
            } else if length == 31 {
                length = try readBigEndian(8)
            }
            guard length <= UInt64(end - pos) else { throw .truncated(at: pos) }
            var node = Record(bytes: bytes[pos..<(pos + Int(length))])
            pos += Int(length)
            if flags & 0x20 != 0 {
                let index = UInt32(try readBigEndian(4))
                guard Int(index) < object.hashCount else {
                    throw .hashIndexOutOfRange(index: index, count: object.hashCount)
                }
                node.hash = object.hash(at: Int(index))
            }
            if flags & 0x40 != 0 {
                // Its children follow; this node is finished when they are.
                guard stack.count <= Self.maximumDepth else { throw .tooDeep }
                stack.append(node)
                pendingMore.append(flags & 0x80 != 0)
                continue
            }
            stack[stack.count - 1].children.append(node)
            var more = flags & 0x80 != 0
            // Close every level whose last child this was. The "more siblings" bit of a parent was
            // read with the parent's flags, so remember it per level.
            while !more {
                if stack.count == 1 { return stack[0] }
                let finished = stack.removeLast()
                stack[stack.count - 1].children.append(finished)
                more = pendingMore.removeLast()
            }
        }
    }

    private var pendingMore: [Bool] = []

    private mutating func readBigEndian(_ count: Int) throws(RecordError) -> UInt64 {
        guard end - pos >= count else { throw .truncated(at: pos) }
        var v: UInt64 = 0
        for i in 0..<count { v = v << 8 | UInt64(object.bytes[pos + i]) }
        pos += count
        return v
    }
}
