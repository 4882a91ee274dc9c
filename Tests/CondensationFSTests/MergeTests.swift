import Condensation
@testable import CondensationFS
import Glibc
import XCTest

final class MergeTests: XCTestCase {
    /// Two writable volumes on one home, both starting from the same version: two devices that
    /// went apart. (Device groups share a store through sync; here they share the home's store.)
    private func diverged() throws -> (Home, Volume, Volume) {
        let home = try temporaryHome(self)
        let ours = try home.openVolume(options: VolumeOptions())
        try ours.writeFile(1, "a", Array("1".utf8))
        try ours.writeFile(1, "b", Array("1".utf8))
        try ours.writeFile(1, "c", Array("1".utf8))
        let d = try ours.mkdir(1, "d", mode: 0o755, uid: 0, gid: 0).ino
        try ours.writeFile(d, "x", Array("x".utf8))
        try ours.commit()
        let (head, secrets) = try home.readHead()
        let theirs = try Volume(home: home, head: head, secrets: secrets, options: VolumeOptions())
        return (home, ours, theirs)
    }

    func testMergeCombinesEditsAndKeepsBothSidesOfAConflict() throws {
        let (_, ours, theirs) = try diverged()
        try ours.writeFile(1, "a", Array("ours".utf8))
        try ours.unlink(1, "b")
        try ours.writeFile(try ours.lookup(1, "d").ino, "y", Array("y".utf8))
        try ours.commit()
        try theirs.setattr(try theirs.lookup(1, "a").ino, AttributeChanges(size: 0), handle: nil)
        try theirs.writeFile(1, "a", Array("theirs".utf8))
        try theirs.writeFile(1, "b", Array("changed".utf8))
        try theirs.setattr(try theirs.lookup(1, "c").ino, AttributeChanges(size: 0), handle: nil)
        try theirs.writeFile(1, "c", Array("theirs-c".utf8))
        try theirs.writeFile(try theirs.lookup(1, "d").ino, "z", Array("z".utf8))
        try theirs.commit()

        let before = try ours.lookup(1, "d").ino
        let (_, invalidations) = try ours.merge(theirs.currentVersion)
        XCTAssertFalse(invalidations.isEmpty)
        let names = Set(try ours.names(1))
        XCTAssertTrue(names.isSuperset(of: ["a", "b", "c", "d"]))
        let conflict = try XCTUnwrap(names.first { $0.hasPrefix("a (conflict ") })
        // Both contents of `a` survive; the newer version (theirs) keeps the name.
        XCTAssertEqual(Set([try ours.readFile(try ours.lookup(1, "a").ino), try ours.readFile(try ours.lookup(1, conflict).ino)]),
                       [Array("ours".utf8), Array("theirs".utf8)])
        XCTAssertEqual(try ours.readFile(try ours.lookup(1, "b").ino), Array("changed".utf8), "a delete loses to a change")
        XCTAssertEqual(try ours.readFile(try ours.lookup(1, "c").ino), Array("theirs-c".utf8))
        let d = try ours.lookup(1, "d").ino
        XCTAssertEqual(d, before, "inode numbers survive a merge")
        XCTAssertEqual(Set(try ours.names(d)), ["x", "y", "z"])
        XCTAssertEqual(ours.currentVersion.parents.count, 2)
    }

    func testMergeIsDeterministic() throws {
        let (home, ours, theirs) = try diverged()
        try ours.writeFile(1, "a", Array("ours".utf8))
        try ours.commit()
        try theirs.writeFile(1, "a", Array("theirs".utf8))
        try theirs.mkdir(1, "new", mode: 0o755, uid: 0, gid: 0)
        try theirs.commit()
        let reader = ObjectReader(store: home.store)
        let (_, secrets) = try home.readHead()
        func root(_ o: Merger.Outcome) throws -> Hash? {
            guard case .merged(let record, _, _) = o else { return nil }
            return StoredEntry(record: try XCTUnwrap(record.child("root")))?.directory?.hash
        }
        let one = try Merger.merge(ours: ours.currentVersion, theirs: theirs.currentVersion, reader: reader,
                                   secrets: secrets, device: home.keyPair.actor)
        let two = try Merger.merge(ours: theirs.currentVersion, theirs: ours.currentVersion, reader: reader,
                                   secrets: secrets, device: home.keyPair.actor)
        XCTAssertNotNil(try root(one))
        XCTAssertEqual(try root(one), try root(two))
        // The whole merge version, not only its tree: otherwise each device merges the other's merge.
        guard case .merged(let r1, _, _) = one, case .merged(let r2, _, _) = two else { return XCTFail("no merge") }
        XCTAssertEqual(r1.serialized, r2.serialized)
    }

    func testFastForwardAndUpToDate() throws {
        let (_, ours, theirs) = try diverged()
        try theirs.writeFile(1, "new", Array("n".utf8))
        try theirs.commit()
        XCTAssertTrue(try ours.merge(theirs.currentVersion).outcome.hasPrefix("fast-forward"))
        XCTAssertEqual(try ours.readFile(try ours.lookup(1, "new").ino), Array("n".utf8))
        XCTAssertEqual(try ours.merge(theirs.currentVersion).outcome, "up to date")
    }
}
