/// A node of a Condensation record: bytes, an optional hash, and children.
/// The root of a record is a node whose bytes are never written: the object's data is its children.
/// Values read from an object share the object's storage (slices), so parsing copies nothing.
public struct Record: Sendable, Equatable {
    public var bytes: ArraySlice<UInt8>
    public var hash: Hash?
    public var children: [Record]

    public init(bytes: ArraySlice<UInt8> = [], hash: Hash? = nil, children: [Record] = []) {
        self.bytes = bytes
        self.hash = hash
        self.children = children
    }

    public init(_ bytes: [UInt8], hash: Hash? = nil, children: [Record] = []) {
        self.init(bytes: bytes[...], hash: hash, children: children)
    }

    public init(text: String, children: [Record] = []) {
        self.init(Array(text.utf8), children: children)
    }

    // MARK: Building

    /// Appends a child and returns its index path for further building.
    @discardableResult
    public mutating func add(_ child: Record) -> Int {
        children.append(child)
        return children.count - 1
    }

    /// Appends a child labelled with text, holding one value child. The usual `label → value` pair.
    public mutating func add(_ label: String, _ value: Record) {
        children.append(Record(text: label, children: [value]))
    }

    public mutating func add(_ label: String, bytes: [UInt8]) { add(label, Record(bytes)) }
    public mutating func add(_ label: String, text: String) { add(label, Record(text: text)) }
    public mutating func add(_ label: String, integer: Int64) { add(label, Record(Values.integer(integer))) }
    public mutating func add(_ label: String, unsigned: UInt64) { add(label, Record(Values.unsigned(unsigned))) }
    public mutating func add(_ label: String, bool: Bool) { add(label, Record(Values.bool(bool))) }
    public mutating func add(_ label: String, hash: Hash) { add(label, Record([], hash: hash)) }
    public mutating func add(_ label: String, link: HashAndKey) { add(label, link.record) }

    // MARK: Reading

    /// The first child whose bytes equal the label's UTF-8.
    public func child(_ label: String) -> Record? {
        let l = label.utf8
        return children.first { $0.bytes.count == l.count && $0.bytes.elementsEqual(l) }
    }

    public func child(bytes label: some Collection<UInt8>) -> Record? {
        children.first { $0.bytes.count == label.count && $0.bytes.elementsEqual(label) }
    }

    public func contains(_ label: String) -> Bool { child(label) != nil }

    /// The first child: the value of a `label → value` pair.
    public var firstChild: Record? { children.first }

    public var text: String { String(decoding: bytes, as: UTF8.self) }
    public var integer: Int64? { Values.readInteger(bytes) }
    public var unsigned: UInt64? { Values.readUnsigned(bytes) }
    public var bool: Bool { !bytes.isEmpty }

    /// The value child of `label`, if present.
    public func value(_ label: String) -> Record? { child(label)?.firstChild }
    public func text(_ label: String) -> String? { value(label)?.text }
    public func integer(_ label: String) -> Int64? { value(label)?.integer }
    public func unsigned(_ label: String) -> UInt64? { value(label)?.unsigned }
    public func bytes(_ label: String) -> ArraySlice<UInt8>? { value(label)?.bytes }
    public func hash(_ label: String) -> Hash? { value(label)?.hash }
    public func link(_ label: String) -> HashAndKey? { value(label).flatMap(HashAndKey.init(record:)) }
}
