import Condensation
import Foundation
import XCTest

/// HTTPStore against another Condensation HTTP server, e.g. the reference implementation's:
///
///     cds create store /tmp/refstore
///     cds start http server for file:///tmp/refstore on port 18123 &
///     CDSFS_INTEROP_URL=http://127.0.0.1:18123 swift test --skip-build --filter InteropTests
///
/// Skipped unless CDSFS_INTEROP_URL is set (CI has no reference server).
final class InteropTests: XCTestCase {
    func testAgainstAnotherServer() throws {
        guard let url = ProcessInfo.processInfo.environment["CDSFS_INTEROP_URL"], !url.isEmpty else {
            throw XCTSkip("set CDSFS_INTEROP_URL to the URL of another Condensation HTTP store")
        }
        let keyPair = KeyPair.generate()
        let me = keyPair.actor
        let store = try HTTPStore(url: url, keyPair: keyPair)
        // First request of a new actor: its own public key, signed with it.
        try store.put(me, keyPair.publicKey.object)
        let o = TestObjects.random(5000)
        let h = try store.put(o)
        XCTAssertEqual(try store.get(h), o)
        XCTAssertTrue(try store.book(h))
        XCTAssertFalse(try store.book(TestObjects.random().calculateHash()))
        XCTAssertNil(try store.get(TestObjects.random().calculateHash()))

        // Signed add, list of the private box, signed remove.
        try store.add(me, .private, h)
        XCTAssertEqual(try store.list(me, .private), [h])
        try store.remove(me, .private, h)
        XCTAssertEqual(try store.list(me, .private), [])

        // A signed modify (the body is signed too).
        var m = Modifications()
        let card = m.put(TestObjects.random(300))
        m.additions = [BoxChange(me, .public, card), BoxChange(me, .messages, h)]
        try store.modify(m)
        XCTAssertEqual(try HTTPStore(url: url).list(me, .public), [card], "public: readable anonymously")
        XCTAssertEqual(try store.list(me, .messages, watch: 500), [h])

        // Someone else may not read the in-queue.
        XCTAssertThrowsError(try HTTPStore(url: url, keyPair: Actors.bob).list(me, .messages))
    }
}
