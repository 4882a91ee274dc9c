import Condensation
import Glibc
import XCTest

final class GarbageCollectorTests: XCTestCase {
    private var g = SeededGenerator(seed: 71)

    /// A folder store with trees under several boxes and accounts, plus loose objects.
    private struct Fixture {
        let store: FolderStore
        /// Everything that a box entry reaches.
        var reachable: Set<Hash> = []
        /// Nothing reaches these.
        var garbage: [Hash] = []
    }

    private func putTree(_ store: FolderStore, count: Int) throws -> (root: Hash, all: Set<Hash>) {
        let tree = TestTree.random(&g, count: count)
        try tree.put(into: store)
        return (tree.root, Set(tree.objects.keys))
    }

    private func fixture() throws -> Fixture {
        let store = try FolderStore.create(temporaryDirectory(self) + "/store")
        var f = Fixture(store: store)
        let alice = TestKeys.alice
        // Alice's private box: an envelope over a tree.
        let (root, all) = try putTree(store, count: 40)
        let envelope = try store.put(Envelope.privateEnvelope(content: HashAndKey(hash: root, key: .random()),
                                                              recipients: [], signer: alice))
        try store.add(alice.actor, .private, envelope)
        f.reachable.formUnion(all)
        f.reachable.insert(envelope)
        // Her public box names a card; her public key object is in the store as well.
        let card = try store.put(Object(hashes: [alice.actor], data: Array("card".utf8)))
        let publicEnvelope = try store.put(Envelope.publicEnvelope(cardHash: card, signer: alice))
        try store.add(alice.actor, .public, publicEnvelope)
        try store.put(alice.actor, alice.publicKey.object)
        f.reachable.formUnion([card, publicEnvelope, alice.actor])
        // Another account's in-queue: a message (no hashes) and an entry naming a plain tree.
        let message = try store.put(Envelope.message(fields: [], senderStoreURL: "file:///x", recipients: [],
                                                     signer: alice, expires: nil))
        let (other, otherAll) = try putTree(store, count: 10)
        let account = g.hash()
        try store.add(account, .messages, message)
        try store.add(account, .messages, other)
        f.reachable.formUnion(otherAll)
        f.reachable.insert(message)
        // Garbage: a whole unreachable tree, sharing nothing.
        let (_, loose) = try putTree(store, count: 15)
        f.garbage = Array(loose)
        return f
    }

    private func ageEverything(_ store: FolderStore, by seconds: Int) throws {
        for h in try store.allObjects() { age(store.objectPath(h), by: seconds) }
    }

    func testMarkFindsEverythingReachable() throws {
        let f = try fixture()
        let marking = try GarbageCollector.mark(f.store)
        XCTAssertEqual(marking.reachable, f.reachable)
        XCTAssertEqual(marking.missing, [])
        XCTAssertEqual(marking.corrupt, [])
        XCTAssertEqual(marking.boxEntries, 4)
    }

    func testUnreachableOldObjectsGoAndReachableOnesStay() throws {
        let f = try fixture()
        try ageEverything(f.store, by: 2 * 3600)
        let sizes = f.garbage.map { FileSystem.sizeAndModificationTime(f.store.objectPath($0))!.size }
        var phases: [GarbageCollector.Phase] = []
        let report = try GarbageCollector.collect(f.store) { phases.append($0.phase) }
        XCTAssertEqual(report.deleted, f.garbage.count)
        XCTAssertEqual(report.bytesFreed, sizes.reduce(0, +))
        XCTAssertEqual(report.reachable, f.reachable.count)
        XCTAssertEqual(report.examined, f.reachable.count + f.garbage.count)
        XCTAssertEqual(report.keptRecent, 0)
        XCTAssertFalse(report.dryRun)
        XCTAssertEqual(Set(try f.store.allObjects()), f.reachable)
        for h in f.reachable { XCTAssertNotNil(try f.store.get(h)) }
        XCTAssertEqual(phases.first, .marking)
        XCTAssertEqual(phases.last, .sweeping)

        // A second run finds nothing more to do.
        let again = try GarbageCollector.collect(f.store)
        XCTAssertEqual(again.deleted, 0)
        XCTAssertEqual(again.examined, f.reachable.count)
    }

    func testRecentUnreachableObjectsStay() throws {
        let f = try fixture()
        try ageEverything(f.store, by: 2 * 3600)
        // Half of the garbage was put (or booked) a minute ago: a writer may be about to name it.
        let recent = Array(f.garbage.prefix(f.garbage.count / 2))
        for h in recent { age(f.store.objectPath(h), by: 60) }
        let booked = f.garbage[f.garbage.count / 2]
        XCTAssertTrue(try f.store.book(booked))
        let report = try GarbageCollector.collect(f.store)
        XCTAssertEqual(report.keptRecent, recent.count + 1)
        XCTAssertEqual(report.deleted, f.garbage.count - recent.count - 1)
        XCTAssertEqual(Set(try f.store.allObjects()), f.reachable.union(recent).union([booked]))
    }

    func testGracePeriodIsAParameter() throws {
        let f = try fixture()
        try ageEverything(f.store, by: 600)
        XCTAssertEqual(try GarbageCollector.collect(f.store).deleted, 0, "ten minutes old: within the default hour")
        let report = try GarbageCollector.collect(f.store, gracePeriod: 300)
        XCTAssertEqual(report.deleted, f.garbage.count)
        XCTAssertEqual(GarbageCollector.defaultGracePeriod, 3600)
    }

    func testDryRunDeletesNothing() throws {
        let f = try fixture()
        try ageEverything(f.store, by: 2 * 3600)
        let before = Set(try f.store.allObjects())
        let report = try GarbageCollector.collect(f.store, dryRun: true)
        XCTAssertTrue(report.dryRun)
        XCTAssertEqual(report.deleted, f.garbage.count)
        XCTAssertGreaterThan(report.bytesFreed, 0)
        XCTAssertEqual(Set(try f.store.allObjects()), before)
    }

    func testMissingAndCorruptReachableObjects() throws {
        let f = try fixture()
        let account = g.hash()
        // A box entry whose object is not here (a tree still arriving).
        let absent = g.hash()
        try f.store.add(account, .private, absent)
        // One whose data is damaged: its header still names its children.
        let child = try f.store.put(Object(hashes: [], data: Array("child".utf8)))
        let parent = Object(hashes: [child], data: Array("parent".utf8))
        let parentHash = try f.store.put(parent)
        try f.store.add(account, .private, parentHash)
        var damaged = parent.bytes
        damaged[damaged.count - 1] ^= 1
        try FileSystem.writeAtomically(f.store.objectPath(parentHash), damaged)
        // One cut short in the middle of its hash list: the complete hash before the cut is kept.
        let first = try f.store.put(Object(hashes: [], data: Array("first".utf8)))
        let second = try f.store.put(Object(hashes: [], data: Array("second".utf8)))
        let cut = Object(hashes: [first, second], data: [])
        let cutHash = try f.store.put(cut)
        try f.store.add(account, .public, cutHash)
        try FileSystem.writeAtomically(f.store.objectPath(cutHash), Array(cut.bytes.prefix(4 + 32 + 20)))
        try ageEverything(f.store, by: 2 * 3600)

        let report = try GarbageCollector.collect(f.store)
        XCTAssertEqual(report.missing, [absent])
        XCTAssertEqual(report.corrupt, [cutHash], "without verify, only a broken header or hash list shows")
        XCTAssertEqual(report.deleted, f.garbage.count + 1, "the second hash of the cut object is unreadable")
        XCTAssertNil(try f.store.get(second))
        XCTAssertNotNil(try f.store.get(first))
        XCTAssertNotNil(try f.store.get(child), "the damaged parent's children are kept")
        XCTAssertTrue(FileSystem.exists(f.store.objectPath(parentHash)), "a corrupt object is fsck's to judge")

        // fsck's view: every object read whole and checked.
        let verified = try GarbageCollector.mark(f.store, verify: true)
        XCTAssertEqual(verified.corrupt, [parentHash, cutHash])
        XCTAssertEqual(verified.missing, [absent])
        XCTAssertTrue(verified.reachable.isSuperset(of: f.reachable.union([child, first, parentHash, cutHash])))
    }

    func testMarkReadsOnlyTheHashListUnlessVerifying() throws {
        // A long hash list (more than one 4 KiB read) is followed in full.
        let store = try FolderStore.create(temporaryDirectory(self) + "/store")
        var leaves: [Hash] = []
        for i in 0..<300 { leaves.append(try store.put(Object(hashes: [], data: Array("leaf \(i)".utf8)))) }
        let root = try store.put(Object(hashes: leaves, data: Random.bytes(10_000)))
        try store.add(g.hash(), .private, root)
        XCTAssertEqual(try GarbageCollector.mark(store).reachable, Set(leaves + [root]))
        XCTAssertEqual(try GarbageCollector.mark(store, verify: true).reachable, Set(leaves + [root]))
    }

    func testEmptyStore() throws {
        let store = try FolderStore.create(temporaryDirectory(self) + "/store")
        let report = try GarbageCollector.collect(store)
        XCTAssertEqual(report, GarbageCollector.Report())
    }

    func testProgressIsReportedWhileMarkingAndSweeping() throws {
        let store = try FolderStore.create(temporaryDirectory(self) + "/store")
        let (root, all) = try putTree(store, count: 2500)
        try store.add(g.hash(), .private, root)
        var marking: [Int] = []
        var sweeping: [Int] = []
        _ = try GarbageCollector.collect(store) { p in
            switch p.phase {
            case .marking: marking.append(p.marked)
            case .sweeping: sweeping.append(p.examined)
            }
        }
        XCTAssertEqual(marking, [1024, 2048, all.count])
        XCTAssertEqual(sweeping, [1024, 2048, all.count])
    }

    func testReachableObjectsSurviveAnyAge() throws {
        let f = try fixture()
        try ageEverything(f.store, by: 365 * 24 * 3600)
        _ = try GarbageCollector.collect(f.store, gracePeriod: 0)
        XCTAssertEqual(Set(try f.store.allObjects()), f.reachable)
    }
}
