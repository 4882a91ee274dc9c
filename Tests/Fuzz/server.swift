// Fuzz target: the store server's request handling — routing, signature checks, permissions, bodies —
// as StoreService.handle sees a request once the HTTP layer (SwiftNIO's parser) has read it. A fresh
// MemoryStore per input holds the vector actor's public key, an object, a private envelope and
// messages, so that every route has something to find.
//
// Input: one flags byte, then `METHOD PATH\n`, header lines `name: value\n`, an empty line, the body.
// Flags bit 0: the harness signs the request itself as the vector actor, with the current date (so
// the code behind a valid signature — permissions, modify, remove — stays reachable however old the
// corpus is); bit 1: the signature covers the body (as a modify's does).
import Condensation
import Glibc

struct Fixture {
    let alice = Fuzz.alice
    let object = Fuzz.sampleRecord().object()
    let privateEnvelope: Object
    let message: Object
    let stranger = Hash(bytes: [UInt8](repeating: 0x5a, count: 32))!

    init() {
        privateEnvelope = Envelope.privateEnvelope(content: HashAndKey(hash: object.calculateHash(), key: try! AESKey(bytes: Array(0..<32))),
                                                   recipients: [], signer: alice)
        message = Envelope.message(fields: [Record(text: "hello")], senderStoreURL: "http://fuzz", recipients: [],
                                   signer: alice, expires: nil)
    }

    func store() -> MemoryStore {
        let s = MemoryStore()
        for o in [alice.publicKey.object, object, privateEnvelope, message] { _ = try! s.put(o) }
        try! s.add(alice.actor, .private, privateEnvelope.calculateHash())
        try! s.add(alice.actor, .messages, message.calculateHash())
        try! s.add(stranger, .messages, message.calculateHash())
        return s
    }
}

nonisolated(unsafe) var fixture: Fixture!
/// CDSFS_FUZZ_DEBUG=1: each input's request and answer on standard error (for reading a crash).
let debug = getenv("CDSFS_FUZZ_DEBUG") != nil
let methods = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "get"]

/// The wire-ish text of a request (flags byte first).
func encode(flags: UInt8, _ method: String, _ path: String, _ headers: [(String, String)], _ body: [UInt8]) -> [UInt8] {
    var text = "\(method) \(path)\n"
    for (n, v) in headers { text += "\(n): \(v)\n" }
    text += "\n"
    return [flags] + Array(text.utf8) + body
}

/// A request header signed by the vector actor now.
func signed(_ method: String, _ path: String, body: [UInt8]? = nil) -> [(String, String)] {
    [("Host", "fuzz:80")] + HTTPSigning.headers(keyPair: fixture.alice, method: method, hostAndPath: "fuzz:80" + path, body: body)
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer, _ argv: UnsafeMutableRawPointer) -> Int32 {
    fixture = Fixture()
    let a = fixture.alice.actor.hex
    let o = fixture.object.calculateHash().hex
    let e = fixture.privateEnvelope.calculateHash().hex
    let m = fixture.message.calculateHash().hex
    let s = fixture.stranger.hex
    let newObject = Fuzz.sampleRecord().object()
    var mods = Modifications()
    let put = mods.put(Object(hashes: [], data: [1, 2, 3]))
    mods.additions = [BoxChange(fixture.alice.actor, .private, put), BoxChange(fixture.stranger, .messages, put)]
    mods.removals = [BoxChange(fixture.alice.actor, .private, fixture.privateEnvelope.calculateHash())]
    let modsBody = mods.record.serialized
    var seeds: [[UInt8]] = [
        encode(flags: 0, "GET", "/", [], []),
        encode(flags: 0, "GET", "/objects/" + o, [], []),
        encode(flags: 0, "HEAD", "/objects/" + o, [], []),
        encode(flags: 0, "OPTIONS", "/objects/" + o, [], []),
        encode(flags: 0, "PUT", "/objects/" + newObject.calculateHash().hex, signed("PUT", "/objects/" + newObject.calculateHash().hex), newObject.bytes),
        encode(flags: 1, "PUT", "/objects/" + newObject.calculateHash().hex, [("Host", "fuzz:80")], newObject.bytes),
        encode(flags: 0, "POST", "/objects/" + o, signed("POST", "/objects/" + o), []),
        encode(flags: 1, "POST", "/objects/" + o, [("Host", "fuzz:80")], []),
        encode(flags: 0, "GET", "/accounts/\(a)/public", [], []),
        encode(flags: 0, "GET", "/accounts/\(a)/private", signed("GET", "/accounts/\(a)/private"), []),
        encode(flags: 1, "GET", "/accounts/\(a)/messages", [("Host", "fuzz:80"), ("Condensation-Watch", "1000 ms")], []),
        encode(flags: 0, "GET", "/accounts/\(s)/public", [("Condensation-Watch", "500 ms")], []),
        encode(flags: 0, "PUT", "/accounts/\(s)/messages/\(m)", [], []),
        encode(flags: 1, "PUT", "/accounts/\(a)/private/\(o)", [("Host", "fuzz:80")], []),
        encode(flags: 1, "DELETE", "/accounts/\(s)/messages/\(m)", [("Host", "fuzz:80")], []),
        encode(flags: 0, "DELETE", "/accounts/\(a)/private/\(e)", signed("DELETE", "/accounts/\(a)/private/\(e)"), []),
        encode(flags: 0, "POST", "/accounts", signed("POST", "/accounts", body: modsBody), modsBody),
        encode(flags: 3, "POST", "/accounts", [("Host", "fuzz:80")], modsBody),
        encode(flags: 0, "OPTIONS", "/accounts/\(a)", [], []),
        encode(flags: 0, "GET", "/accounts/\(a)/nonsense", [], []),
    ]
    seeds += Fuzz.vectorBlobs.map { [0] + Array("POST /accounts\n\n".utf8) + $0 }
    Fuzz.writeSeeds(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = Fuzz.bytes(data, size)
    guard let flags = input.first else { return 0 }
    var rest = input.dropFirst()
    func line() -> String? {
        guard let nl = rest.firstIndex(of: 10) else { return nil }
        let l = String(decoding: rest[..<nl], as: UTF8.self)
        rest = rest[(nl + 1)...]
        return l
    }
    guard let requestLine = line() else { return 0 }
    let parts = requestLine.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
    guard parts.count == 2 else { return 0 }
    let method = String(parts[0])
    let uri = String(parts[1])
    // As HTTPHandler builds the request: the path without the query, the first of each header by
    // lowercased name.
    let path = String(uri[..<(uri.firstIndex(of: "?") ?? uri.endIndex)])
    var headers: [String: String] = [:]
    while let l = line(), !l.isEmpty {
        guard let colon = l.firstIndex(of: ":") else { continue }
        let name = l[..<colon].lowercased()
        let value = String(l[l.index(after: colon)...]).httpTrimmedSpaces
        if headers[name] == nil { headers[name] = value }
    }
    let body = Array(rest)
    let host = headers["host"] ?? ""
    if flags & 1 != 0 {
        for (n, v) in HTTPSigning.headers(keyPair: fixture.alice, method: method, hostAndPath: host + path,
                                          body: flags & 2 != 0 ? body : nil) {
            headers[n.lowercased()] = v
        }
    }
    let store = fixture.store()
    let service = StoreService(store: store, limits: StoreServer.Limits(), watchers: BoxWatchers())
    let request = ServiceRequest(method: method, path: path, host: host, headers: headers, body: body)
    let outcome = service.handle(request)
    if debug { fputs("\(method) \(path) → \(outcome)\n", stderr) }
    switch outcome {
    case .respond(let response):
        require([200, 204, 400, 403, 404, 405].contains(response.status), "status \(response.status)")
        // Only the owner may list a private box or an in-queue.
        if response.status == 200, method == "GET" || method == "HEAD", path.hasPrefix("/accounts/"),
           !path.hasSuffix("/public") {
            require(response.actor != nil && path.hasPrefix("/accounts/" + response.actor!.hex + "/"),
                    "listed \(path) for \(response.actor?.hex ?? "nobody")")
        }
        // Nothing that the vector actor did not sign may change its private box.
        let privateBox = try! store.list(fixture.alice.actor, .private)
        if privateBox != [fixture.privateEnvelope.calculateHash()] {
            require(response.actor == fixture.alice.actor, "the private box changed without the owner's signature")
        }
    case .watch(let account, let box, let milliseconds, let actor):
        require(milliseconds > 0 && milliseconds <= 60_000, "watch \(milliseconds) ms")
        require(box == .public || actor == account, "a watch on a box the actor may not list")
        _ = service.relist(account, box)
    }
    return 0
}
