import Glibc

/// A directory entry name, compared and hashed by its UTF-8 bytes.
///
/// Swift's `String ==` follows Unicode canonical equivalence, so "é" and "e" + combining accent are
/// equal strings; Linux filesystems treat them as two names, and so must we.
struct Name: Hashable, Sendable {
    let string: String

    init(_ string: String) { self.string = string }

    static func == (a: Name, b: Name) -> Bool { Name.compare(a.string, b.string) == 0 }

    /// Compares UTF-8 bytes, with memcmp where both strings are stored contiguously (native
    /// strings are): comparing through the UTF-8 views byte by byte was the most of a lookup.
    static func compare(_ a: String, _ b: String) -> Int32 {
        let fast = a.utf8.withContiguousStorageIfAvailable { pa in
            b.utf8.withContiguousStorageIfAvailable { pb -> Int32 in
                let n = min(pa.count, pb.count)
                let c = n == 0 ? 0 : memcmp(pa.baseAddress!, pb.baseAddress!, n)
                return c != 0 ? c : Int32(pa.count < pb.count ? -1 : (pa.count > pb.count ? 1 : 0))
            }
        }
        if let fast = fast ?? nil { return fast }
        if a.utf8.elementsEqual(b.utf8) { return 0 }
        return a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : 1
    }

    func hash(into hasher: inout Hasher) {
        var s = string
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// A directory's entries by byte-exact name; the dictionary API the volume uses, over `Name` keys.
/// Also counts the subdirectories, for the directory's link count: counting them on each getattr
/// made every operation in a directory of 100k entries cost milliseconds.
struct DirectoryEntries: Sequence, ExpressibleByDictionaryLiteral {
    private var storage: [Name: Node] = [:]
    private(set) var directoryCount: UInt64 = 0

    init() {}

    init(dictionaryLiteral elements: (String, Node)...) {
        for (k, v) in elements { self[k] = v }
    }

    subscript(name: String) -> Node? {
        get { storage[Name(name)] }
        set {
            let old: Node?
            if let newValue { old = storage.updateValue(newValue, forKey: Name(name)) } else { old = storage.removeValue(forKey: Name(name)) }
            if old?.isDirectory == true { directoryCount -= 1 }
            if newValue?.isDirectory == true { directoryCount += 1 }
        }
    }

    var count: Int { storage.count }
    var isEmpty: Bool { storage.isEmpty }
    var keys: [String] { storage.keys.map(\.string) }
    var values: Dictionary<Name, Node>.Values { storage.values }

    mutating func reserveCapacity(_ n: Int) { storage.reserveCapacity(n) }

    /// The entries in the order they are stored: by the bytes of their names.
    func sortedByName() -> [(name: String, node: Node)] {
        storage.map { (name: $0.key.string, node: $0.value) }.sorted { Name.compare($0.name, $1.name) < 0 }
    }

    func makeIterator() -> AnyIterator<(key: String, value: Node)> {
        var inner = storage.makeIterator()
        return AnyIterator { inner.next().map { (key: $0.key.string, value: $0.value) } }
    }
}
