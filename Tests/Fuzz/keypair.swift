// Fuzz target: key pair files, plain (KeyPair(fileBytes:)) and wrapped with a passphrase
// (WrappedKeyPair). scrypt runs only for cheap costs (log n ≤ 11): the parser bounds the cost of
// every file, and fuzzing the derivation itself would measure scrypt, not our code.
import Condensation

let passphrase = Array("fuzz".utf8)
let cheap = WrappedKeyPair.Parameters(logN: 10, r: 8, p: 1)

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer, _ argv: UnsafeMutableRawPointer) -> Int32 {
    Fuzz.writeSeeds(Fuzz.vectorBlobs + [
        Fuzz.alice.fileBytes,
        try! WrappedKeyPair.wrap(Fuzz.alice, passphrase: passphrase, parameters: cheap),
        try! WrappedKeyPair.wrap(Fuzz.alice, passphrase: Array("another".utf8), parameters: cheap),
    ])
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Fuzz.bytes(data, size)
    if let keyPair = try? KeyPair(fileBytes: bytes) {
        require(!WrappedKeyPair.isWrapped(bytes), "a file is both plain and wrapped")
        let again = try? KeyPair(fileBytes: keyPair.fileBytes)
        require(again?.actor == keyPair.actor, "a key pair file we wrote does not read back")
        // Its private key belongs to its public key: what it signs, the public key verifies.
        let h = Hash.of(bytes)
        require(keyPair.publicKey.rsa.verify(h, signature: keyPair.sign(h)), "a key pair whose halves do not match")
    }
    guard WrappedKeyPair.isWrapped(bytes) else { return 0 }
    guard let parameters = WrappedKeyPair.parameters(of: bytes) else { return 0 }
    require(parameters.isAcceptable, "accepted a cost beyond the bounds")
    guard parameters.logN <= 11 else { return 0 }
    if let keyPair = try? WrappedKeyPair.unwrap(bytes, passphrase: passphrase) {
        let rewrapped = try! WrappedKeyPair.wrap(keyPair, passphrase: passphrase, parameters: cheap)
        require((try? WrappedKeyPair.unwrap(rewrapped, passphrase: passphrase))?.actor == keyPair.actor, "rewrap")
    }
    return 0
}
