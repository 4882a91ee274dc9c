import Condensation
import Foundation
import Glibc
import StoreServer
import XCTest

/// A signed request is accepted once: the same request sent again within the date window (captured
/// on the network, or from a log) is refused with 403, as a bad signature is, and changes nothing.
/// Requests signed anew — what the client sends when it retries — still pass.
final class ReplayTests: XCTestCase {
    var server: TestServer!
    var alice: Hash { Actors.alice.actor }

    override func setUpWithError() throws {
        try start(limits: .init())
    }

    override func tearDown() { server?.stop() }

    func start(limits: StoreServer.Limits, wrap: ((FolderStore) -> any Store)? = nil) throws {
        server?.stop()
        server = try TestServer(limits: limits, wrap: wrap)
        try server.publish(Actors.alice)
    }

    func entryPath(_ box: BoxLabel, _ hash: Hash) -> String { "/accounts/\(alice.hex)/\(box.rawValue)/\(hash.hex)" }

    /// The bytes of one signed request, as a client would put them on the wire.
    func signedRequest(_ method: String, _ path: String, date: Int64 = HTTPSigning.now(), body: [UInt8]? = nil,
                       signBody: Bool = false) -> [UInt8] {
        let signature = server.signature(Actors.alice, method, path, body: signBody ? body : nil, date: date)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(server.authority)\r\nConnection: close\r\n"
        for (name, value) in signature { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(body?.count ?? 0)\r\n\r\n"
        return Array(head.utf8) + (body ?? [])
    }

    /// Sends `bytes` on a new connection; the status code of the answer.
    func status(of bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let c = try RawConnection(port: server.port)
        c.write(bytes)
        let head = c.readHead()
        guard let code = head.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
            XCTFail("no answer: \(head.debugDescription)", file: file, line: line)
            return 0
        }
        return code
    }

    /// The attack SECURITY.md described: an entry the owner removed is put back by replaying the
    /// signed request that added it.
    func testReplayedAdditionIsRefusedAfterARemoval() throws {
        let e = try server.store.put(TestObjects.random())
        let add = signedRequest("PUT", entryPath(.private, e))
        XCTAssertEqual(try status(of: add), 204)
        XCTAssertEqual(try server.store.list(alice, .private), [e])
        XCTAssertEqual(try status(of: signedRequest("DELETE", entryPath(.private, e))), 204)
        XCTAssertEqual(try server.store.list(alice, .private), [])

        XCTAssertEqual(try status(of: add), 403, "the same bytes again")
        XCTAssertEqual(try server.store.list(alice, .private), [], "the removed entry stays removed")
        // The same request signed anew (a later date) is a new request.
        XCTAssertEqual(try status(of: signedRequest("PUT", entryPath(.private, e), date: HTTPSigning.now() + 1)), 204)
        XCTAssertEqual(try server.store.list(alice, .private), [e])
    }

    /// Two threads of a device may send the same request in the same millisecond: each signing
    /// gives other bytes (PSS is salted), so both pass.
    func testTheSameRequestSignedTwiceIsTwoRequests() throws {
        let date = HTTPSigning.now()
        let path = "/accounts/\(alice.hex)/private"
        let first = signedRequest("GET", path, date: date), second = signedRequest("GET", path, date: date)
        XCTAssertNotEqual(first, second)
        XCTAssertEqual(try status(of: first), 204)
        XCTAssertEqual(try status(of: second), 204)
        XCTAssertEqual(try status(of: second), 403)
    }

    func testEveryKindOfSignedRequestIsAcceptedOnce() throws {
        let o = TestObjects.random()
        let h = o.calculateHash()
        var m = Modifications()
        let e = m.put(TestObjects.random())
        m.additions = [BoxChange(alice, .public, e)]
        let modify = m.record.serialized
        let requests: [(String, [UInt8], Int)] = [
            ("object put", signedRequest("PUT", "/objects/" + h.hex, body: o.bytes), 204),
            ("booking", signedRequest("POST", "/objects/" + h.hex), 204),
            ("modify", signedRequest("POST", "/accounts", body: modify, signBody: true), 204),
            ("private box listing", signedRequest("GET", "/accounts/\(alice.hex)/private"), 204),
            ("in-queue listing", signedRequest("GET", "/accounts/\(alice.hex)/messages"), 204),
            ("removal", signedRequest("DELETE", entryPath(.public, e)), 204),
        ]
        for (name, bytes, expected) in requests {
            XCTAssertEqual(try status(of: bytes), expected, "\(name), first time")
            XCTAssertEqual(try status(of: bytes), 403, "\(name), replayed")
        }
    }

    /// The client signs each sending anew: a request that failed with 500 after the server had
    /// checked (and remembered) its signature is retried and passes. (The client has made a signed
    /// request before, so a 403 would not be hidden by its publish-the-key-and-retry step.)
    func testClientRetriesAreSignedAnew() throws {
        let failing = Shared(0)
        try start(limits: .init(), wrap: { FailingAdds($0, failuresLeft: failing) })
        let client = server.client(Actors.alice, retries: 3)
        XCTAssertEqual(try client.list(alice, .private), [])
        let e = try server.store.put(TestObjects.random())
        failing.value = 2
        try client.add(alice, .private, e)
        XCTAssertEqual(failing.value, 0, "both failures happened")
        XCTAssertEqual(try server.store.list(alice, .private), [e])
        // And an ordinary round of requests, each signed once, goes through as before.
        try client.remove(alice, .private, e)
        try client.add(alice, .private, e)
        XCTAssertEqual(try client.list(alice, .private), [e])
    }

    /// A full cache drops its oldest entries and refuses everything dated at or before them, so a
    /// dropped request still cannot be replayed; fresh requests pass.
    func testAFullCacheRefusesWhatItNoLongerCovers() throws {
        var limits = StoreServer.Limits()
        limits.replayCacheEntries = 4
        try start(limits: limits)
        let now = HTTPSigning.now()
        var sent: [[UInt8]] = []
        for i in 0..<6 {
            let e = try server.store.put(TestObjects.random())
            let bytes = signedRequest("PUT", entryPath(.private, e), date: now - 60_000 + Int64(i) * 1000)
            XCTAssertEqual(try status(of: bytes), 204, "request \(i)")
            sent.append(bytes)
        }
        for (i, bytes) in sent.enumerated() { XCTAssertEqual(try status(of: bytes), 403, "replay of request \(i)") }
        // Dated before what the cache still holds (requests 0 and 1 were dropped): refused though new.
        let old = try server.store.put(TestObjects.random())
        XCTAssertEqual(try status(of: signedRequest("PUT", entryPath(.private, old), date: now - 59_500)), 403)
        XCTAssertFalse(try server.store.list(alice, .private).contains(old))
        // Fresh: accepted.
        XCTAssertEqual(try status(of: signedRequest("PUT", entryPath(.private, old))), 204)
    }
}

/// A store whose next `failuresLeft` additions fail with an I/O error (the server answers 500 after it
/// has checked the request's signature).
final class FailingAdds: Store, @unchecked Sendable {
    let inner: any Store
    let failuresLeft: Shared<Int>

    init(_ inner: any Store, failuresLeft: Shared<Int>) {
        self.inner = inner
        self.failuresLeft = failuresLeft
    }

    var url: String { inner.url }
    func get(_ hash: Hash) throws(StoreError) -> Object? { try inner.get(hash) }
    func put(_ hash: Hash, _ object: Object) throws(StoreError) { try inner.put(hash, object) }
    func book(_ hash: Hash) throws(StoreError) -> Bool { try inner.book(hash) }
    func list(_ account: Hash, _ box: BoxLabel) throws(StoreError) -> [Hash] { try inner.list(account, box) }
    func add(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) {
        let fail = failuresLeft.withLock { left -> Bool in
            guard left > 0 else { return false }
            left -= 1
            return true
        }
        if fail { throw .io(path: "failing", errno: EIO) }
        try inner.add(account, box, hash)
    }
    func remove(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) { try inner.remove(account, box, hash) }
    func modify(_ m: Modifications) throws(StoreError) { try inner.modify(m) }
    func flush() throws(StoreError) { try inner.flush() }
}
