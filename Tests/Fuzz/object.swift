// Fuzz target: Object(bytes:) and what an object offers (hash list, data, encryption in place).
import Condensation

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer, _ argv: UnsafeMutableRawPointer) -> Int32 {
    Fuzz.writeSeeds(Fuzz.vectorBlobs + [Fuzz.sampleRecord().serialized, Object(hashes: [.emptyObject, .emptyObject], data: [1, 2, 3]).bytes])
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Fuzz.bytes(data, size)
    guard let object = try? Object(bytes: bytes) else { return 0 }
    let hashes = object.hashes
    require(hashes.count == object.hashCount, "hash count")
    require(object.dataStart + object.dataCount == bytes.count, "data bounds")
    require(Object(hashes: hashes, data: Array(object.data)).bytes == bytes, "rebuilt object differs")
    require((try? Object(bytes: bytes, expecting: Hash.of(bytes))) != nil, "hash check")
    let key = try! AESKey(bytes: [UInt8](repeating: 7, count: 32))
    var crypted = object.crypted(with: key)
    require(crypted.hashes == hashes, "encryption touched the hash list")
    crypted.crypt(with: key)
    require(crypted == object, "decryption did not give the object back")
    return 0
}
