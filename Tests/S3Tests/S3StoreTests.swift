@testable import Condensation
import Foundation
import Glibc
import TestSupport
import XCTest

/// `S3Store` itself against the cluster: round trips, listings longer than one page, booking that
/// refreshes an old object's time, many threads at once, garbage collection's view of the bucket.
final class S3StoreTests: S3TestCase {
    private func object(_ i: Int, size: Int = 100) -> Object {
        Object(hashes: [], data: randomBytes(size, seed: UInt64(i) &+ 0x5eed))
    }

    func testRoundTripsAndListingsLongerThanOnePage() throws {
        let store = try s3Store()
        let account = KeyPair.generate().actor
        var m = Modifications()
        let hashes = (0..<40).map { m.put(object($0, size: 1000 + $0 * 997)) }
        m.additions = hashes.map { BoxChange(account, .private, $0) }
        try store.modify(m)
        for (i, h) in hashes.enumerated() { XCTAssertEqual(try store.get(h)?.bytes, object(i, size: 1000 + i * 997).bytes) }
        XCTAssertEqual(Set(try store.list(account, .private)), Set(hashes))
        XCTAssertNil(try store.get(Hash.of([1, 2, 3])), "absent")
        XCTAssertFalse(try store.book(Hash.of([1, 2, 3])))
        XCTAssertTrue(try store.book(hashes[0]))

        // 2100 entries: three pages of ListObjectsV2.
        let many = (0..<2100).map { Hash.of(Array("entry \($0)".utf8)) }
        try parallelForEach(many.count, width: 16) { i throws(StoreError) in try store.add(account, .messages, many[i]) }
        XCTAssertEqual(Set(try store.list(account, .messages)), Set(many))
        try parallelForEach(many.count, width: 16) { i throws(StoreError) in try store.remove(account, .messages, many[i]) }
        XCTAssertEqual(try store.list(account, .messages), [])
        XCTAssertEqual(try store.accounts(), [account])
        XCTAssertEqual(Set(try store.allObjects()), Set(hashes))
        XCTAssertEqual(try store.objectPrefix(hashes[3], count: 10), Array(object(3, size: 1000 + 3 * 997).bytes.prefix(10)))
    }

    func testBookRefreshesAnOldObjectsTime() throws {
        var configuration = S3Store.Configuration()
        configuration.refreshAfter = 0  // every book of an object older than a second refreshes it
        let store = S3Store(location: try S3Location(url: s3URL),
                            credentials: S3Credentials(accessKeyId: Self.accessKey, secretAccessKey: Self.secretKey),
                            configuration: configuration)
        let o = object(1)
        let h = try store.put(o)
        let before = try XCTUnwrap(try store.objectInfo(h)).modified
        sleep(2)
        XCTAssertTrue(try store.book(h))
        let after = try XCTUnwrap(try store.objectInfo(h)).modified
        XCTAssertGreaterThan(after, before, "book refreshed LastModified (copy onto itself)")
        XCTAssertEqual(try store.get(h)?.bytes, o.bytes, "the object is unchanged")
    }

    func testManyThreadsAtOnce() throws {
        let store = try s3Store()
        let objects = (0..<200).map { object($0, size: 5000) }
        let start = now()
        try parallelForEach(objects.count, width: 24) { i throws(StoreError) in
            let h = try store.put(objects[i])
            guard try store.get(h)?.bytes == objects[i].bytes else { throw .corrupt(h) }
        }
        metric("200 put+get pairs from 24 threads", seconds(now() - start))
        XCTAssertEqual(try store.allObjects().count, 200)
    }

    func testGarbageCollectionOfABucket() throws {
        let store = try s3Store()
        let account = KeyPair.generate().actor
        let leaf = object(1)
        let kept = Object(hashes: [leaf.calculateHash()], data: [1])
        let dropped = object(2)
        var m = Modifications()
        for o in [leaf, kept, dropped] { _ = m.put(o) }
        m.additions = [BoxChange(account, .private, kept.calculateHash())]
        try store.modify(m)
        let dry = try GarbageCollector.collect(store, gracePeriod: 0, dryRun: true, now: Int(time(nil)) + 5)
        XCTAssertEqual([dry.reachable, dry.deleted], [2, 1])
        XCTAssertEqual(try GarbageCollector.collect(store, gracePeriod: 3600).deleted, 0, "recent: kept")
        let report = try GarbageCollector.collect(store, gracePeriod: 0, now: Int(time(nil)) + 5)
        XCTAssertEqual([report.reachable, report.deleted, report.bytesFreed], [2, 1, dropped.bytes.count])
        XCTAssertEqual(Set(try store.allObjects()), [leaf.calculateHash(), kept.calculateHash()])
    }

    /// Several batches of reads in flight: a tree of 400 reachable objects (a root over 20 pages over
    /// 380 leaves) and 300 unreachable ones.
    func testGarbageCollectionOfManyObjects() throws {
        let store = try s3Store()
        let account = KeyPair.generate().actor
        let leaves = (0..<380).map { object($0, size: 200) }
        let pages = (0..<19).map { p in Object(hashes: leaves[(p * 20)..<(p * 20 + 20)].map { $0.calculateHash() }, data: [UInt8(p)]) }
        let root = Object(hashes: pages.map { $0.calculateHash() }, data: [0xff])
        let garbage = (0..<300).map { object(10_000 + $0, size: 100) }
        var m = Modifications()
        for o in leaves + pages + [root] + garbage { _ = m.put(o) }
        m.additions = [BoxChange(account, .private, root.calculateHash())]
        try store.modify(m)
        let start = now()
        var phases: [GarbageCollector.Phase] = []
        let report = try GarbageCollector.collect(store, gracePeriod: 0, now: Int(time(nil)) + 5) { phases.append($0.phase) }
        metric("gc of 700 objects on the bucket", seconds(now() - start))
        XCTAssertEqual([report.reachable, report.examined, report.deleted], [400, 700, 300])
        XCTAssertEqual(Set(try store.allObjects()), Set((leaves + pages + [root]).map { $0.calculateHash() }))
        XCTAssertEqual(phases.first, .marking)
        XCTAssertEqual(phases.last, .sweeping)
    }
}
