/// A directory entry name, compared and hashed by its UTF-8 bytes.
///
/// Swift's `String ==` follows Unicode canonical equivalence, so "é" and "e" + combining accent are
/// equal strings; Linux filesystems treat them as two names, and so must we.
struct Name: Hashable, Sendable {
    let string: String

    init(_ string: String) { self.string = string }

    static func == (a: Name, b: Name) -> Bool { a.string.utf8.elementsEqual(b.string.utf8) }

    func hash(into hasher: inout Hasher) {
        var s = string
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// A directory's entries by byte-exact name; the dictionary API the volume uses, over `Name` keys.
struct DirectoryEntries: Sequence, ExpressibleByDictionaryLiteral {
    private var storage: [Name: Node] = [:]

    init() {}

    init(dictionaryLiteral elements: (String, Node)...) {
        for (k, v) in elements { storage[Name(k)] = v }
    }

    subscript(name: String) -> Node? {
        get { storage[Name(name)] }
        set { storage[Name(name)] = newValue }
    }

    var count: Int { storage.count }
    var isEmpty: Bool { storage.isEmpty }
    var keys: [String] { storage.keys.map(\.string) }
    var values: Dictionary<Name, Node>.Values { storage.values }

    mutating func reserveCapacity(_ n: Int) { storage.reserveCapacity(n) }

    func makeIterator() -> AnyIterator<(key: String, value: Node)> {
        var inner = storage.makeIterator()
        return AnyIterator { inner.next().map { (key: $0.key.string, value: $0.value) } }
    }
}
