import Condensation
import Foundation
import Glibc
import StoreServer
import XCTest

/// HTTPStore against a real StoreServer on 127.0.0.1: every store operation, long polls, transfers.
final class RoundTripTests: XCTestCase {
    var server: TestServer!

    override func setUpWithError() throws { server = try TestServer() }
    override func tearDown() { server.stop() }

    func testPutGetBookWithOwnKeyInFirstPut() throws {
        let alice = server.client(Actors.alice)
        // The actor's first put is its own public key: the signature is checked against that very object.
        try alice.put(Actors.alice.actor, Actors.alice.publicKey.object)
        let object = TestObjects.random(1000)
        let hash = try alice.put(object)
        XCTAssertEqual(try server.store.get(hash), object, "the object is on the folder store")
        XCTAssertEqual(try alice.get(hash), object)
        XCTAssertEqual(try server.client().get(hash), object, "anyone may read objects")
        XCTAssertTrue(try alice.book(hash))
        XCTAssertFalse(try alice.book(TestObjects.random().calculateHash()))
        XCTAssertNil(try alice.get(TestObjects.random().calculateHash()))
        // Putting again is fine (idempotent).
        try alice.put(hash, object)
    }

    func testFirstSignedRequestPublishesTheKey() throws {
        // A device new to the store lists its in-queue first: the server does not know its key yet.
        let carol = server.client(Actors.carol)
        XCTAssertNil(try server.store.get(Actors.carol.actor))
        XCTAssertEqual(try carol.list(Actors.carol.actor, .messages), [])
        XCTAssertEqual(try server.store.get(Actors.carol.actor), Actors.carol.publicKey.object)
        XCTAssertTrue(try carol.book(Actors.carol.actor))
    }

    func testEmptyAndLargeObjects() throws {
        try server.publish(Actors.alice)
        let alice = server.client(Actors.alice)
        let empty = Object.empty
        XCTAssertEqual(try alice.put(empty), Hash.emptyObject)
        XCTAssertEqual(try alice.get(Hash.emptyObject), empty)
        let large = TestObjects.random(5 * 1024 * 1024 + 17)
        let h = try alice.put(large)
        XCTAssertEqual(try alice.get(h), large)
    }

    func testBoxesAddListRemove() throws {
        try server.publish(Actors.alice)
        let alice = server.client(Actors.alice)
        let a = Actors.alice.actor
        let e1 = try alice.put(TestObjects.random()), e2 = try alice.put(TestObjects.random())
        for box in BoxLabel.allCases {
            XCTAssertEqual(try alice.list(a, box), [], "\(box) starts empty")
            try alice.add(a, box, e1)
            try alice.add(a, box, e2)
            XCTAssertEqual(Set(try alice.list(a, box)), [e1, e2], "\(box)")
            XCTAssertEqual(Set(try server.store.list(a, box)), [e1, e2])
            try alice.remove(a, box, e1)
            XCTAssertEqual(try alice.list(a, box), [e2])
            // Removing what is not there succeeds.
            try alice.remove(a, box, e1)
        }
        // Public boxes are readable by anyone.
        XCTAssertEqual(try server.client().list(a, .public), [e2])
    }

    func testModify() throws {
        let alice = server.client(Actors.alice)
        let a = Actors.alice.actor
        let old = try server.store.put(TestObjects.random())
        try server.store.add(a, .private, old)
        var m = Modifications()
        // The public key rides along: the first request of a new actor can be a modify.
        _ = m.put(Actors.alice.publicKey.object)
        let envelope = m.put(TestObjects.random(300))
        let card = m.put(TestObjects.random(200))
        m.additions = [BoxChange(a, .private, envelope), BoxChange(a, .public, card)]
        m.removals = [BoxChange(a, .private, old)]
        try alice.modify(m)
        XCTAssertEqual(try server.store.list(a, .private), [envelope])
        XCTAssertEqual(try server.store.list(a, .public), [card])
        XCTAssertNotNil(try server.store.get(envelope))
        XCTAssertNotNil(try server.store.get(Actors.alice.actor))
    }

    func testMessagesFromAnotherActor() throws {
        try server.publish(Actors.alice)
        try server.publish(Actors.bob)
        let bob = server.client(Actors.bob)
        let alice = server.client(Actors.alice)
        // Bob delivers a message into Alice's in-queue: a message envelope names him under "updated by".
        let message = Envelope.message(fields: [Record(text: "hello")], senderStoreURL: server.url,
                                       recipients: [Actors.alice.publicKey], signer: Actors.bob, expires: nil)
        var m = Modifications()
        let h = m.put(message)
        m.additions = [BoxChange(Actors.alice.actor, .messages, h)]
        try bob.modify(m)
        XCTAssertEqual(try alice.list(Actors.alice.actor, .messages), [h])
        // The sender may replace (remove) its own message.
        try bob.remove(Actors.alice.actor, .messages, h)
        XCTAssertEqual(try alice.list(Actors.alice.actor, .messages), [])
        // Anonymous delivery: an unsigned add to an in-queue.
        try server.client().add(Actors.alice.actor, .messages, h)
        XCTAssertEqual(try alice.list(Actors.alice.actor, .messages), [h])
        try alice.remove(Actors.alice.actor, .messages, h)
    }

    func testLongPollWakesOnAdd() throws {
        try server.publish(Actors.alice)
        let alice = server.client(Actors.alice)
        let a = Actors.alice.actor
        let entry = try alice.put(TestObjects.random())
        let anonymous = server.client()
        Thread {
            usleep(300_000)
            try? anonymous.add(a, .messages, entry)
        }.start()
        var listed: [Hash] = []
        let t = try seconds { listed = try alice.list(a, .messages, watch: 10_000) }
        XCTAssertEqual(listed, [entry])
        XCTAssertLessThan(t, 5, "answered as soon as the entry came, not at the end of the wait")
        XCTAssertEqual(server.server.heldWatchCount, 0)
    }

    func testHeldPollsHoldNoThread() throws {
        // Two store threads, twenty polls held at once: a poll that held a thread would starve the rest.
        server.stop()
        var limits = StoreServer.Limits()
        limits.storeThreads = 2
        limits.watchRecheckMilliseconds = 300
        server = try TestServer(limits: limits)
        let accounts = (0..<20).map { _ in TestObjects.random().calculateHash() }
        let entry = try server.store.put(TestObjects.random())
        let results = Shared<[Hash: [Hash]]>([:])
        let client = server.client()
        for a in accounts {
            Thread {
                let listed = (try? client.list(a, .public, watch: 15_000)) ?? []
                results.withLock { $0[a] = listed }
            }.start()
        }
        for _ in 0..<300 where server.server.heldWatchCount < accounts.count { usleep(10_000) }
        XCTAssertEqual(server.server.heldWatchCount, accounts.count)
        // Requests still go through while the polls wait.
        XCTAssertNotNil(try server.client().get(entry))
        let t = seconds {
            // Written behind the server's back: the polls' periodic look finds them.
            for a in accounts { try? self.server.store.add(a, .public, entry) }
            for _ in 0..<500 where results.value.count < accounts.count { usleep(10_000) }
        }
        XCTAssertEqual(results.value.count, accounts.count)
        XCTAssertTrue(results.value.values.allSatisfy { $0 == [entry] })
        XCTAssertLessThan(t, 5)
    }

    func testLongPollTimesOutOnEmptyBox() throws {
        let a = Actors.carol.actor
        var listed: [Hash] = [TestObjects.random().calculateHash()]
        let t = try seconds { listed = try server.client().list(a, .public, watch: 700) }
        XCTAssertEqual(listed, [])
        XCTAssertGreaterThanOrEqual(t, 0.6)
        XCTAssertLessThan(t, 5)
    }

    func testLongPollOnNonEmptyBoxAnswersAtOnce() throws {
        let a = Actors.carol.actor
        let e = try server.store.put(TestObjects.random())
        try server.store.add(a, .public, e)
        var listed: [Hash] = []
        let t = try seconds { listed = try server.client().list(a, .public, watch: 10_000) }
        XCTAssertEqual(listed, [e])
        XCTAssertLessThan(t, 2)
    }

    func testLongPollSeesWritersOutsideTheServer() throws {
        // Another process writing the folder directly: no notification, but the periodic look finds it.
        server.stop()
        var limits = StoreServer.Limits()
        limits.watchRecheckMilliseconds = 200
        server = try TestServer(limits: limits)
        let a = Actors.carol.actor
        let e = try server.store.put(TestObjects.random())
        let store = server.store
        let writer = Thread {
            usleep(300_000)
            try? store.add(a, .public, e)
        }
        writer.start()
        var listed: [Hash] = []
        let t = try seconds { listed = try server.client().list(a, .public, watch: 10_000) }
        XCTAssertEqual(listed, [e])
        XCTAssertLessThan(t, 5)
    }

    func testWatchIsCappedByTheServer() throws {
        server.stop()
        var limits = StoreServer.Limits()
        limits.maximumWatchMilliseconds = 300
        server = try TestServer(limits: limits)
        let t = try seconds { XCTAssertEqual(try server.client().list(Actors.carol.actor, .public, watch: 30_000), []) }
        XCTAssertLessThan(t, 3)
    }

    func testTreeTransferToServerAndBack() throws {
        try server.publish(Actors.alice)
        let local = try FolderStore.create(server.directory.path + "/local")
        let (root, objects) = TestObjects.tree(depth: 3, fanout: 4)
        for (h, o) in objects { try local.put(h, o) }
        let remote = server.client(Actors.alice)

        let up = try TreeTransfer.transfer(root, from: local, to: remote)
        XCTAssertEqual(up.objectsTransferred, objects.count)
        for h in objects.keys { XCTAssertTrue(FileSystem.exists(server.store.objectPath(h))) }

        // A second transfer books the root and stops there: one small request, no object bytes.
        let before = remote.bytesSent + remote.bytesReceived
        let again = try TreeTransfer.transfer(root, from: local, to: remote)
        XCTAssertEqual(again.objectsTransferred, 0)
        XCTAssertEqual(again.subtreesPresent, 1)
        XCTAssertLessThan(remote.bytesSent + remote.bytesReceived - before, 2000)

        let back = try FolderStore.create(server.directory.path + "/back")
        let down = try TreeTransfer.transfer(root, from: server.client(), to: back)
        XCTAssertEqual(down.objectsTransferred, objects.count)
        for (h, o) in objects { XCTAssertEqual(try back.get(h), o) }
    }

    func testSeveralThreadsShareTheClient() throws {
        try server.publish(Actors.alice)
        let alice = server.client(Actors.alice)
        let objects = (0..<80).map { _ in TestObjects.random(2000) }
        let failures = Shared<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            for o in objects[(i * 10)..<(i * 10 + 10)] {
                do {
                    let h = try alice.put(o)
                    guard try alice.get(h) == o else { throw StoreError.corrupt(h) }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        XCTAssertEqual(failures.value, [])
        for o in objects { XCTAssertNotNil(try server.store.get(o.calculateHash())) }
        XCTAssertLessThanOrEqual(server.server.connectionCount, 8, "connections are pooled, not one per request")
    }

    func testKeepAliveReusesOneConnection() throws {
        let c = server.client()
        for _ in 0..<20 { _ = try c.list(Actors.carol.actor, .public) }
        XCTAssertEqual(server.server.connectionCount, 1)
        XCTAssertGreaterThan(c.bytesSent, 20 * 60)
        XCTAssertGreaterThan(c.bytesReceived, 20 * 25)
    }

    func testStaleKeepAliveConnectionIsReplaced() throws {
        server.stop()
        var limits = StoreServer.Limits()
        limits.idleTimeoutSeconds = 1
        server = try TestServer(limits: limits)
        let c = server.client()
        _ = try c.list(Actors.carol.actor, .public)
        sleep(3)  // the server closes the idle connection
        XCTAssertEqual(try c.list(Actors.carol.actor, .public), [])
    }

    func testCorruptObjectFromServerIsRefused() throws {
        server.stop()
        server = try TestServer(wrap: { LyingStore($0) })
        let o = TestObjects.random()
        let h = try server.store.put(o)
        XCTAssertThrowsError(try server.client().get(h)) { XCTAssertEqual($0 as? StoreError, .corrupt(h)) }
    }

    func testServerErrorsAreRetried() throws {
        server.stop()
        var flaky: FlakyStore!
        server = try TestServer(wrap: { flaky = FlakyStore($0, failures: 2); return flaky })
        let h = try server.store.put(TestObjects.random())
        XCTAssertNotNil(try server.client(retries: 3).get(h), "two 500s, then success")
        XCTAssertEqual(flaky.calls, 3)
    }

    func testServerErrorsGiveUpAfterRetries() throws {
        server.stop()
        server = try TestServer(wrap: { FlakyStore($0, failures: 100) })
        let h = TestObjects.random().calculateHash()
        XCTAssertThrowsError(try server.client(retries: 1).get(h)) { error in
            guard case .refused(500, _)? = error as? StoreError else { return XCTFail("\(error)") }
        }
    }

    func testClientErrorsAreNotRetried() throws {
        server.stop()
        var flaky: FlakyStore!
        server = try TestServer(wrap: { flaky = FlakyStore($0, failures: 0); return flaky })
        try server.publish(Actors.bob)
        // Bob lists Alice's private box: 403, not retried. (The client puts its key once, in case the
        // 403 was for a key the server did not have, and asks once more.)
        XCTAssertThrowsError(try server.client(Actors.bob, retries: 5).list(Actors.alice.actor, .private)) { error in
            guard case .refused(403, _)? = error as? StoreError else { return XCTFail("\(error)") }
        }
        XCTAssertLessThanOrEqual(flaky.calls, 2, "the key lookup and the key put, not six tries")
    }

    func testUnreachableServer() throws {
        let port = server.port
        server.stop()
        var c = HTTPStore.Configuration()
        c.retries = 2
        c.initialBackoff = 0.01
        let store = try HTTPStore(url: "http://127.0.0.1:\(port)", configuration: c)
        let t = try seconds {
            XCTAssertThrowsError(try store.get(Hash.emptyObject)) { error in
                guard case .unreachable? = error as? StoreError else { return XCTFail("\(error)") }
            }
        }
        XCTAssertLessThan(t, 5)
        server = try TestServer()
    }

    func testURLs() throws {
        XCTAssertThrowsError(try HTTPStore(url: "https://example.org")) { XCTAssertEqual($0 as? HTTPStoreURLError, .notHTTP("https://example.org")) }
        XCTAssertThrowsError(try HTTPStore(url: "http://"))
        XCTAssertThrowsError(try HTTPStore(url: "http://host:99999"))
        XCTAssertThrowsError(try HTTPStore(url: "http://host:x"))
        XCTAssertEqual(try HTTPStore(url: "http://127.0.0.1:8080/").url, "http://127.0.0.1:8080")
        XCTAssertEqual(try HTTPStore(url: "http://[::1]:8080").authority, "[::1]:8080")
    }

    func testGracefulStopAnswersHeldPolls() throws {
        let a = Actors.carol.actor
        let c = server.client()
        let listed = Shared<[Hash]?>(nil)
        Thread { listed.value = try? c.list(a, .public, watch: 20_000) }.start()
        // Wait until the poll is held.
        for _ in 0..<200 where server.server.heldWatchCount == 0 { usleep(10_000) }
        XCTAssertEqual(server.server.heldWatchCount, 1)
        let t = seconds { server.server.stop() }
        XCTAssertLessThan(t, 5, "stop does not wait for the poll's full 20 s")
        for _ in 0..<200 where listed.value == nil { usleep(10_000) }
        XCTAssertEqual(listed.value, [])
        server = try TestServer()
    }
}

