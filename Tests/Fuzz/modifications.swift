// Fuzz target: Modifications(record:), the body of a modify (POST /accounts), and its writer.
import Condensation

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer, _ argv: UnsafeMutableRawPointer) -> Int32 {
    var m = Modifications()
    let o = Fuzz.sampleRecord().object()
    let h = m.put(o)
    _ = m.put(Object.empty)
    m.additions = [BoxChange(.emptyObject, .messages, h), BoxChange(.emptyObject, .private, .emptyObject)]
    m.removals = [BoxChange(h, .public, .emptyObject)]
    Fuzz.writeSeeds(Fuzz.vectorBlobs + [m.record.serialized, Modifications().record.serialized])
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let object = try? Object(bytes: Fuzz.bytes(data, size)), let record = try? Record(object: object),
          let m = try? Modifications(record: record) else { return 0 }
    for (h, o) in m.puts { require(o.calculateHash() == h, "a put that does not hash to its name") }
    guard let again = try? Modifications(record: m.record) else {
        require(false, "modifications we wrote do not read back")
        return 0
    }
    require(again.puts.map(\.0) == m.puts.map(\.0) && again.puts.map(\.1) == m.puts.map(\.1), "puts differ")
    require(Set(again.additions) == Set(m.additions), "additions differ")
    require(Set(again.removals) == Set(m.removals), "removals differ")
    return 0
}
