// Fuzz target: opening envelopes — private box entries, public cards, messages — with the vector key
// pair as reader and signer.
import Condensation

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer, _ argv: UnsafeMutableRawPointer) -> Int32 {
    let alice = Fuzz.alice
    let link = HashAndKey(hash: .emptyObject, key: try! AESKey(bytes: Array(0..<32)))
    var field = Record(text: "version")
    field.add(link.record)
    Fuzz.writeSeeds(Fuzz.vectorBlobs + [
        Envelope.privateEnvelope(content: link, recipients: [], signer: alice).bytes,
        Envelope.publicEnvelope(cardHash: .emptyObject, signer: alice).bytes,
        Envelope.message(fields: [field], senderStoreURL: "http://127.0.0.1:8080", recipients: [], signer: alice,
                         expires: 1_700_000_000_000).bytes,
    ])
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let envelope = try? Object(bytes: Fuzz.bytes(data, size)) else { return 0 }
    let alice = Fuzz.alice
    if let link = try? Envelope.openPrivate(envelope, signer: alice.publicKey, keyPair: alice) {
        require(alice.publicKey.rsa.verify(link.hash, signature: Array((try! Record(object: envelope)).bytes("signature")!)),
                "opened a private envelope whose signature does not verify")
    }
    _ = try? Envelope.openPublic(envelope, signer: alice.publicKey)
    if let message = try? Envelope.openMessage(envelope, keyPair: alice) {
        require(envelope.bytes.count <= Envelope.maximumMessageSize, "opened an oversized message")
        _ = message.content.text("store")
        _ = try? Envelope.verifyMessage(envelope, signer: alice.publicKey)
    }
    return 0
}
