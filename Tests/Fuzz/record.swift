// Fuzz target: Record(object:), the value accessors, and the writer: parse(serialize(r)) == r.
import Condensation

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer, _ argv: UnsafeMutableRawPointer) -> Int32 {
    Fuzz.writeSeeds(Fuzz.vectorBlobs + [Fuzz.sampleRecord().serialized])
    return 0
}

func visit(_ record: Record, depth: Int) {
    _ = record.text
    _ = record.integer
    _ = record.unsigned
    _ = record.bool
    _ = Values.readFloat(record.bytes)
    _ = HashAndKey(record: record)
    _ = record.firstChild
    if let v = record.integer { require(Values.readInteger(Values.integer(v)[...]) == v, "integer round trip") }
    if let v = record.unsigned { require(Values.readUnsigned(Values.unsigned(v)[...]) == v, "unsigned round trip") }
    for child in record.children { visit(child, depth: depth + 1) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let object = try? Object(bytes: Fuzz.bytes(data, size)), let record = try? Record(object: object) else { return 0 }
    visit(record, depth: 0)
    _ = record.child("content")
    _ = record.text("store")
    _ = record.link("filesystem")
    let written = record.object()
    guard let again = try? Record(object: written) else {
        require(false, "a record we wrote does not parse")
        return 0
    }
    require(again == record, "parse(serialize(record)) differs")
    require(written.bytes == again.serialized, "serialising twice differs")
    return 0
}
