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
        var writer = RecordWriter()
        writer.write(children)
        return writer.finish()
    }

    /// Object bytes of the record (unencrypted).
    public var serialized: [UInt8] { object().bytes }

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

/// Writes the node stream in one walk of the tree: the data into a growing raw buffer, the hashes
/// into a list, then both into the object's bytes. Walking once matters more than the final copy:
/// every visit of a node with children retains and releases its children array, and those atomic
/// operations were most of the cost of serialising a large directory (a first walk that only
/// measured the size doubled them).
private struct RecordWriter: ~Copyable {
    private var data: UnsafeMutableRawPointer
    private var count = 0
    private var capacity: Int
    private var hashes: [Hash] = []

    init() {
        capacity = 4096
        data = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
    }

    deinit { data.deallocate() }

    /// Room for `extra` more bytes.
    private mutating func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        var larger = capacity * 2
        while count + extra > larger { larger *= 2 }
        let grown = UnsafeMutableRawPointer.allocate(byteCount: larger, alignment: 8)
        grown.copyMemory(from: data, byteCount: count)
        data.deallocate()
        data = grown
        capacity = larger
    }

    mutating func write(_ nodes: [Record]) {
        nodes.withUnsafeBufferPointer { nodes in
            let last = nodes.count - 1
            for i in nodes.indices {
                // Read the node in place: copying a `Record` costs a retain and a release per node.
                let length = nodes[i].bytes.count
                // Flags, at most 8 length bytes, the bytes, a hash index.
                reserve(13 + length)
                var flags: UInt8 = length < 30 ? UInt8(length) : length < 286 ? 30 : 31
                let hash = nodes[i].hash
                if hash != nil { flags |= 0x20 }
                let hasChildren = !nodes[i].children.isEmpty
                if hasChildren { flags |= 0x40 }
                if i < last { flags |= 0x80 }
                data.storeBytes(of: flags, toByteOffset: count, as: UInt8.self)
                count += 1
                if length >= 286 {
                    data.storeBytes(of: UInt64(length).bigEndian, toByteOffset: count, as: UInt64.self)
                    count += 8
                } else if length >= 30 {
                    data.storeBytes(of: UInt8(length - 30), toByteOffset: count, as: UInt8.self)
                    count += 1
                }
                if length > 0 {
                    nodes[i].bytes.withUnsafeBytes { (data + count).copyMemory(from: $0.baseAddress!, byteCount: length) }
                    count += length
                }
                if let hash {
                    data.storeBytes(of: UInt32(truncatingIfNeeded: hashes.count).bigEndian, toByteOffset: count,
                                    as: UInt32.self)
                    count += 4
                    hashes.append(hash)
                }
                if hasChildren { write(nodes[i].children) }
            }
        }
    }

    /// The object: header, hash list, data.
    consuming func finish() -> Object {
        let dataStart = 4 + 32 * hashes.count
        let total = dataStart + count
        let bytes = [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            let base = UnsafeMutableRawPointer(buffer.baseAddress!)
            base.storeBytes(of: UInt32(truncatingIfNeeded: hashes.count).bigEndian, as: UInt32.self)
            var at = 4
            for hash in hashes {
                base.storeBytes(of: hash.w0.bigEndian, toByteOffset: at, as: UInt64.self)
                base.storeBytes(of: hash.w1.bigEndian, toByteOffset: at + 8, as: UInt64.self)
                base.storeBytes(of: hash.w2.bigEndian, toByteOffset: at + 16, as: UInt64.self)
                base.storeBytes(of: hash.w3.bigEndian, toByteOffset: at + 24, as: UInt64.self)
                at += 32
            }
            (base + dataStart).copyMemory(from: data, byteCount: count)
            initialized = total
        }
        return Object(bytes: bytes, validatedHashCount: hashes.count)
    }
}

/// Reads the node stream iteratively: recursion would let a hostile object choose the stack depth.
/// Every length is checked against what is left before it is used.
///
/// Two passes. The first scans the bytes into a flat list of nodes (ranges, hash index, number of
/// children), checking everything; the second builds the `Record`s bottom-up, so that every children
/// array is allocated once at its final size and no record is copied on the way. On a directory of
/// thousands of entries this is several times faster than growing the tree while reading it.
struct RecordDecoder {
    static let maximumDepth = 256

    let object: Object

    init(object: Object) {
        self.object = object
    }

    /// A node as the first pass finds it, in document (depth-first) order.
    private struct Node {
        var start: Int
        var end: Int
        /// Index into the hash list, or -1.
        var hashIndex: Int64
        var childCount: Int
    }

    mutating func decode() throws(RecordError) -> Record {
        let bytes = object.bytes
        let end = bytes.count
        var pos = object.dataStart
        if pos == end { return Record() }

        // Pass 1: scan and check.
        var nodes: [Node] = []
        // About one node per 12 bytes in directory-like records; a large blob needs far fewer.
        nodes.reserveCapacity(min((end - pos) / 12, 1 << 17))
        var rootChildren = 0
        // Per open level: the node that opened it, and whether that node has more siblings.
        var open: [(index: Int, more: Bool)] = []
        func readBigEndian(_ count: Int) throws(RecordError) -> UInt64 {
            guard end - pos >= count else { throw .truncated(at: pos) }
            var v: UInt64 = 0
            for i in 0..<count { v = v << 8 | UInt64(bytes[pos + i]) }
            pos += count
            return v
        }
        scan: while true {
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
            var node = Node(start: pos, end: pos + Int(length), hashIndex: -1, childCount: 0)
            pos = node.end
            if flags & 0x20 != 0 {
                let index = UInt32(try readBigEndian(4))
                guard Int(index) < object.hashCount else {
                    throw .hashIndexOutOfRange(index: index, count: object.hashCount)
                }
                node.hashIndex = Int64(index)
            }
            if let parent = open.last { nodes[parent.index].childCount += 1 } else { rootChildren += 1 }
            nodes.append(node)
            if flags & 0x40 != 0 {
                // Its children follow; this node is finished when they are.
                guard open.count < Self.maximumDepth else { throw .tooDeep }
                open.append((nodes.count - 1, flags & 0x80 != 0))
                continue
            }
            var more = flags & 0x80 != 0
            // Close every level whose last child this was. The "more siblings" bit of a parent was
            // read with the parent's flags, so it is remembered per level.
            while !more {
                guard let closed = open.popLast() else { break scan }
                more = closed.more
            }
        }

        // Pass 2: build bottom-up. Going backwards through document order, a node comes after all of
        // its descendants; each finished subtree leaves one record on `pending`, so a node's children
        // are the top `childCount` records, its first child on top.
        var pending = PendingRecords(capacity: max(rootChildren, 64))
        defer { pending.release() }
        for node in nodes.reversed() {
            let children = node.childCount == 0 ? [] : pending.pop(node.childCount)
            let hash = node.hashIndex < 0 ? nil : object.hash(at: Int(node.hashIndex))
            pending.push(Record(bytes: bytes[node.start..<node.end], hash: hash, children: children))
        }
        return Record(children: pending.pop(rootChildren))
    }
}

/// The decoder's stack of finished subtrees. Records are moved in and out of raw memory: with an
/// `Array`, the optimiser copies each record in and destroys the original (a retain and a release
/// per node, most of the cost of decoding).
private struct PendingRecords {
    private var base: UnsafeMutablePointer<Record>
    private var count = 0
    private var capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
    }

    mutating func push(_ record: consuming Record) {
        if count == capacity {
            let larger = UnsafeMutablePointer<Record>.allocate(capacity: 2 * capacity)
            larger.moveInitialize(from: base, count: count)
            base.deallocate()
            base = larger
            capacity *= 2
        }
        (base + count).initialize(to: record)
        count += 1
    }

    /// The top `n` records as an array, the topmost first.
    mutating func pop(_ n: Int) -> [Record] {
        precondition(n <= count)
        let top = base + count
        count -= n
        // reserveCapacity + append rather than `init(unsafeUninitializedCapacity:)`: the latter looks
        // up the array's generic metadata on every call, which showed in profiles.
        var records: [Record] = []
        records.reserveCapacity(n)
        for j in 0..<n { records.append((top - 1 - j).move()) }
        return records
    }

    /// Frees the memory (and any records still on the stack).
    mutating func release() {
        base.deinitialize(count: count)
        base.deallocate()
        count = 0
        capacity = 0
    }
}
