import Condensation
import Foundation
import Glibc
import StoreServer
import XCTest

/// Requests the server must refuse: each gets the reference's status code, and the store is left as
/// it was. Requests are crafted by hand (HTTPStore.send adds nothing but Host and Content-Length).
final class SecurityTests: XCTestCase {
    var server: TestServer!
    var alice: Hash { Actors.alice.actor }
    var bob: Hash { Actors.bob.actor }
    /// An envelope already on the store and in Alice's boxes.
    var envelope: Hash!

    override func setUpWithError() throws {
        server = try TestServer()
        try server.publish(Actors.alice)
        try server.publish(Actors.bob)
        envelope = try server.store.put(TestObjects.random())
        for box in BoxLabel.allCases { try server.store.add(alice, box, envelope) }
    }

    override func tearDown() { server.stop() }

    /// Everything the store holds: objects, and every box of every account.
    func snapshot() throws -> [String] {
        var lines = try server.store.allObjects().map { "object \($0.hex)" }
        for account in try server.store.accounts() {
            for box in BoxLabel.allCases {
                lines += try server.store.list(account, box).map { "\(account.hex) \(box.rawValue) \($0.hex)" }
            }
        }
        return lines.sorted()
    }

    /// Sends the request and checks the status, and that the store did not change.
    func expect(_ status: Int, _ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
                file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try snapshot()
        let r = try server.send(method, path, headers: headers, body: body)
        XCTAssertEqual(r.status, status, "\(method) \(path): \(r.text)", file: file, line: line)
        XCTAssertEqual(try snapshot(), before, "the store changed", file: file, line: line)
    }

    func entryPath(_ account: Hash, _ box: BoxLabel, _ hash: Hash) -> String {
        "/accounts/\(account.hex)/\(box.rawValue)/\(hash.hex)"
    }

    // MARK: Puts

    func testUnsignedPutIsForbidden() throws {
        let o = TestObjects.random()
        try expect(403, "PUT", "/objects/\(o.calculateHash().hex)", body: o.bytes)
        // HTTPStore without a key pair gets the same answer, typed.
        XCTAssertThrowsError(try server.client().put(o)) { error in
            guard case .refused(403, _)? = error as? StoreError else { return XCTFail("\(error)") }
        }
    }

    func testPutByAnActorWithoutPublishedKeyIsForbidden() throws {
        let o = TestObjects.random()
        let path = "/objects/\(o.calculateHash().hex)"
        try expect(403, "PUT", path, headers: server.signature(Actors.carol, "PUT", path), body: o.bytes)
    }

    func testPutWhoseBytesDoNotMatchItsHash() throws {
        let o = TestObjects.random()
        let other = TestObjects.random().calculateHash()
        let path = "/objects/\(other.hex)"
        // 400 even when validly signed: the hash is checked first, as in the reference.
        try expect(400, "PUT", path, headers: server.signature(Actors.alice, "PUT", path), body: o.bytes)
        try expect(400, "PUT", path, body: o.bytes)
    }

    func testPutOfBytesThatAreNotAnObject() throws {
        let garbage: [UInt8] = [0xff, 0xff, 0xff, 0xff, 1, 2, 3]
        let path = "/objects/\(Hash.of(garbage).hex)"
        try expect(400, "PUT", path, headers: server.signature(Actors.alice, "PUT", path), body: garbage)
        try expect(400, "PUT", "/objects/\(Hash.of([]).hex)", headers: server.signature(Actors.alice, "PUT", "/objects/\(Hash.of([]).hex)"), body: [])
    }

    func testBodyLargerThanTheLimit() throws {
        server.stop()
        var limits = StoreServer.Limits()
        limits.maximumBodySize = 1024 * 1024
        server = try TestServer(limits: limits)
        try server.publish(Actors.alice)
        let o = TestObjects.random(2 * 1024 * 1024)
        let path = "/objects/\(o.calculateHash().hex)"
        try expect(413, "PUT", path, headers: server.signature(Actors.alice, "PUT", path), body: o.bytes)
        XCTAssertThrowsError(try server.client(Actors.alice).put(o)) { error in
            guard case .refused(413, _)? = error as? StoreError else { return XCTFail("\(error)") }
        }
        // A declared length beyond the limit is refused before any body byte is read.
        let raw = try RawConnection(port: server.port)
        raw.write("PUT \(path) HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
        XCTAssertTrue(raw.readHead().hasPrefix("HTTP/1.1 413"))
        // A chunked body is cut off as soon as it passes the limit.
        let chunked = try RawConnection(port: server.port)
        chunked.write("PUT \(path) HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        let chunk = [UInt8](repeating: 7, count: 256 * 1024)
        for _ in 0..<5 { chunked.write(Array("40000\r\n".utf8) + chunk + Array("\r\n".utf8)) }
        chunked.write("0\r\n\r\n")
        XCTAssertTrue(chunked.readHead().hasPrefix("HTTP/1.1 413"))
        // Still serving.
        let small = TestObjects.random()
        XCTAssertNoThrow(try server.client(Actors.alice).put(small))
    }

    func testBookingNeedsASignatureAndNoBody() throws {
        let path = "/objects/\(envelope.hex)"
        try expect(403, "POST", path)
        try expect(400, "POST", path, headers: server.signature(Actors.alice, "POST", path), body: [1, 2, 3])
        XCTAssertEqual(try server.send("POST", path, headers: server.signature(Actors.alice, "POST", path)).status, 204)
        let missing = "/objects/\(TestObjects.random().calculateHash().hex)"
        XCTAssertEqual(try server.send("POST", missing, headers: server.signature(Actors.alice, "POST", missing)).status, 404)
    }

    // MARK: Signatures

    func testSignatureOfAnotherActorForOwnerOnlyOperations() throws {
        let o = try server.store.put(TestObjects.random())
        for box in [BoxLabel.private, .public] {
            let path = entryPath(alice, box, o)
            try expect(403, "PUT", path, headers: server.signature(Actors.bob, "PUT", path))
        }
        for box in BoxLabel.allCases {
            let path = entryPath(alice, box, envelope)
            try expect(403, "DELETE", path, headers: server.signature(Actors.bob, "DELETE", path))
        }
        // Claiming to be Alice with Bob's signature.
        let path = entryPath(alice, .private, o)
        var headers = server.signature(Actors.bob, "PUT", path)
        headers[1] = ("Condensation-Actor", alice.hex)
        try expect(403, "PUT", path, headers: headers)
    }

    func testStaleAndFutureDates() throws {
        let o = try server.store.put(TestObjects.random())
        let path = entryPath(alice, .private, o)
        let now = HTTPSigning.now()
        try expect(403, "PUT", path, headers: server.signature(Actors.alice, "PUT", path, date: now - 121_000))
        try expect(403, "PUT", path, headers: server.signature(Actors.alice, "PUT", path, date: now - 3_600_000))
        try expect(403, "PUT", path, headers: server.signature(Actors.alice, "PUT", path, date: now + 61_000))
        // Inside the window it passes.
        XCTAssertEqual(try server.send("PUT", path, headers: server.signature(Actors.alice, "PUT", path, date: now - 100_000)).status, 204)
        XCTAssertEqual(try server.store.list(alice, .private).contains(o), true)
    }

    func testSignatureOverAnotherPathMethodOrHost() throws {
        let o = try server.store.put(TestObjects.random())
        let path = entryPath(alice, .private, o)
        try expect(403, "PUT", path, headers: server.signature(Actors.alice, "PUT", path, signedPath: entryPath(alice, .private, envelope)))
        try expect(403, "PUT", path, headers: server.signature(Actors.alice, "PUT", path, signedPath: entryPath(alice, .public, o)))
        try expect(403, "PUT", path, headers: server.signature(Actors.alice, "PUT", path, signedMethod: "DELETE"))
        // Signed for another host.
        let foreign = HTTPSigning.headers(keyPair: Actors.alice, method: "PUT", hostAndPath: "example.org" + path, body: nil)
        try expect(403, "PUT", path, headers: foreign)
    }

    func testMalformedSignatureHeaders() throws {
        let o = try server.store.put(TestObjects.random())
        let path = entryPath(alice, .private, o)
        let good = server.signature(Actors.alice, "PUT", path)
        var shortSignature = good
        shortSignature[2].1 = String(good[2].1.dropLast(2))
        try expect(403, "PUT", path, headers: shortSignature)
        var notHex = good
        notHex[2].1 = String(repeating: "z", count: 512)
        try expect(403, "PUT", path, headers: notHex)
        var badDate = good
        badDate[0].1 = "yesterday"
        try expect(403, "PUT", path, headers: badDate)
        var badActor = good
        badActor[1].1 = "1234"
        try expect(403, "PUT", path, headers: badActor)
        try expect(403, "PUT", path, headers: Array(good.prefix(2)))
    }

    func testModifyBodyChangedAfterSigning() throws {
        var m = Modifications()
        let e = m.put(TestObjects.random())
        m.additions = [BoxChange(alice, .private, e)]
        let body = m.record.serialized
        var other = Modifications()
        _ = other.put(TestObjects.random())
        other.additions = [BoxChange(alice, .private, envelope)]
        let signedBody = other.record.serialized
        try expect(403, "POST", "/accounts", headers: server.signature(Actors.alice, "POST", "/accounts", body: body, signedBody: signedBody), body: body)
        // Signed without the body, as if it were not a modify.
        let noBody = HTTPSigning.headers(keyPair: Actors.alice, method: "POST", hostAndPath: server.authority + "/accounts", body: nil)
        try expect(403, "POST", "/accounts", headers: noBody, body: body)
        // The correct signature passes.
        XCTAssertEqual(try server.send("POST", "/accounts", headers: server.signature(Actors.alice, "POST", "/accounts", body: body), body: body).status, 204)
    }

    // MARK: Permissions

    func testListingSomeoneElsesPrivateBoxOrInQueue() throws {
        for box in [BoxLabel.private, .messages] {
            let path = "/accounts/\(alice.hex)/\(box.rawValue)"
            try expect(403, "GET", path)
            try expect(403, "GET", path, headers: server.signature(Actors.bob, "GET", path))
            XCTAssertThrowsError(try server.client(Actors.bob).list(alice, box))
            XCTAssertEqual(try server.client(Actors.alice).list(alice, box), [envelope])
        }
        XCTAssertEqual(try server.send("GET", "/accounts/\(alice.hex)/public").status, 200)
    }

    func testAddingToSomeoneElsesPrivateOrPublicBox() throws {
        let o = try server.store.put(TestObjects.random())
        for box in [BoxLabel.private, .public] {
            try expect(403, "PUT", entryPath(alice, box, o))
            XCTAssertThrowsError(try server.client(Actors.bob).add(alice, box, o))
            var m = Modifications()
            m.additions = [BoxChange(alice, box, o)]
            XCTAssertThrowsError(try server.client(Actors.bob).modify(m))
        }
        XCTAssertFalse(try server.store.list(alice, .private).contains(o))
        // The in-queue takes anyone's additions.
        XCTAssertNoThrow(try server.client().add(alice, .messages, o))
    }

    func testRemovalByTheSenderNamedInTheEnvelope() throws {
        let fromBob = Envelope.message(fields: [], senderStoreURL: server.url, recipients: [Actors.alice.publicKey],
                                       signer: Actors.bob, expires: nil)
        let h = try server.store.put(fromBob)
        try server.store.add(alice, .messages, h)
        // Carol (published, signed) is not the sender.
        try server.publish(Actors.carol)
        let path = entryPath(alice, .messages, h)
        try expect(403, "DELETE", path, headers: server.signature(Actors.carol, "DELETE", path))
        try expect(403, "DELETE", path)
        XCTAssertNoThrow(try server.client(Actors.bob).remove(alice, .messages, h))
        XCTAssertEqual(try server.store.list(alice, .messages), [envelope])
    }

    func testUnsignedModifies() throws {
        // Delivering a message without a signature (as the reference client does): allowed.
        let message = Envelope.message(fields: [], senderStoreURL: server.url, recipients: [Actors.alice.publicKey],
                                       signer: Actors.bob, expires: nil)
        var delivery = Modifications()
        let h = delivery.put(message)
        delivery.additions = [BoxChange(alice, .messages, h)]
        XCTAssertEqual(try server.send("POST", "/accounts", body: delivery.record.serialized).status, 204)
        XCTAssertTrue(try server.store.list(alice, .messages).contains(h))

        // Unsigned puts of anything else: forbidden.
        var puts = Modifications()
        _ = puts.put(TestObjects.random())
        try expect(403, "POST", "/accounts", body: puts.record.serialized)
        var smuggle = delivery
        _ = smuggle.put(TestObjects.random())
        try expect(403, "POST", "/accounts", body: smuggle.record.serialized)
        var toPrivate = Modifications()
        let e = toPrivate.put(TestObjects.random())
        toPrivate.additions = [BoxChange(alice, .private, e)]
        try expect(403, "POST", "/accounts", body: toPrivate.record.serialized)
        var removal = Modifications()
        removal.removals = [BoxChange(alice, .messages, h)]
        try expect(403, "POST", "/accounts", body: removal.record.serialized)
    }

    // MARK: Malformed requests

    func testMalformedPathsAndMethods() throws {
        let h = envelope.hex
        try expect(404, "GET", "/objects/\(h.uppercased())")
        try expect(404, "GET", "/objects/\(h.dropLast())")
        try expect(404, "GET", "/objects/\(h)0")
        try expect(404, "GET", "/objects/\(String(repeating: "g", count: 64))")
        try expect(404, "GET", "/objects/")
        try expect(404, "GET", "/objects")
        try expect(404, "GET", "/accounts/\(alice.hex)/inbox")
        try expect(404, "PUT", "/accounts/\(alice.hex)/inbox/\(h)")
        try expect(404, "GET", "/accounts/xyz/public")
        try expect(404, "PUT", "/accounts/\(alice.hex)/public/xyz")
        try expect(404, "GET", "/accounts/\(alice.hex)/public/\(h)/more")
        try expect(404, "GET", "/nothing/here")
        try expect(404, "GET", "/../objects/\(h)")
        try expect(405, "PATCH", "/objects/\(h)")
        try expect(405, "DELETE", "/objects/\(h)")
        try expect(405, "GET", "/accounts")
        try expect(405, "GET", "/accounts/\(alice.hex)")
        try expect(405, "POST", "/accounts/\(alice.hex)/public")
        try expect(405, "GET", "/accounts/\(alice.hex)/public/\(h)")
        XCTAssertEqual(try server.send("OPTIONS", "/objects/\(h)").status, 200)
        // A query string is not part of the path.
        XCTAssertEqual(try server.send("GET", "/objects/\(h)?x=1").status, 200)
        // HEAD answers without a body.
        let head = try server.send("HEAD", "/objects/\(h)")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.body, [])
    }

    func testGarbageBodiesAndRequests() throws {
        let sign = { (body: [UInt8]) in self.server.signature(Actors.alice, "POST", "/accounts", body: body) }
        for body in [[], [1, 2, 3], Array("hello world".utf8), [0, 0, 0, 0, 0xff], Object(hashes: [], data: [0x5f, 1]).bytes] as [[UInt8]] {
            try expect(400, "POST", "/accounts", headers: sign(body), body: body)
        }
        // A modifications record whose put does not match its hash.
        var record = Record()
        var put = Record(text: "put")
        put.add(Record(TestObjects.random().calculateHash().bytes, children: [Record(TestObjects.random().bytes)]))
        record.add(put)
        try expect(400, "POST", "/accounts", headers: sign(record.serialized), body: record.serialized)
        // An unknown box label in a modification.
        var bad = Record()
        var add = Record(text: "add")
        add.add(Record(alice.bytes, children: [Record(text: "inbox", children: [Record(envelope.bytes)])]))
        bad.add(add)
        try expect(400, "POST", "/accounts", headers: sign(bad.serialized), body: bad.serialized)

        // Not HTTP at all.
        for junk in ["\u{0}\u{1}\u{2}garbage\r\n\r\n", "GET\r\n\r\n", "GET / HTTP/9.9\r\n\r\n",
                     "PUT /objects/\(envelope.hex) HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                     "GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n"] {
            let raw = try RawConnection(port: server.port)
            raw.write(junk)
            let answer = raw.readAll()
            XCTAssertTrue(answer.isEmpty || answer.hasPrefix("HTTP/1.1 400"), "\(junk.debugDescription) → \(answer.prefix(40))")
        }
        // Header block beyond the decoder's limit.
        let raw = try RawConnection(port: server.port)
        raw.write("GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 200_000))\r\n\r\n")
        XCTAssertFalse(raw.readAll().hasPrefix("HTTP/1.1 200"))
        // Still serving.
        XCTAssertEqual(try server.send("GET", "/objects/\(envelope.hex)").status, 200)
    }

    func testConnectionLimit() throws {
        server.stop()
        var limits = StoreServer.Limits()
        limits.maximumConnections = 2
        server = try TestServer(limits: limits)
        let a = try RawConnection(port: server.port), b = try RawConnection(port: server.port)
        for _ in 0..<100 where server.server.connectionCount < 2 { usleep(10_000) }
        let c = try RawConnection(port: server.port)
        XCTAssertTrue(c.isClosedByPeer(), "the third connection is closed at once")
        _ = (a, b)
    }
}
