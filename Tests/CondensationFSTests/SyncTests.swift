import Condensation
@testable import CondensationFS
import Glibc
import XCTest

/// Two devices syncing through a remote folder store (the HTTP server has its own tests; the
/// syncer only needs a `Store`).
final class SyncTests: XCTestCase {
    private func temporaryDirectory() -> String {
        var template = Array("/tmp/cdsfs-sync-XXXXXX".utf8CString)
        let path = String(cString: mkdtemp(&template)!)
        addTeardownBlock { _ = system("rm -rf '\(path)'") }
        return path
    }

    /// Device A with a filesystem, device B joined to it, both syncing through `remote`.
    private func pair() throws -> (Home, Home, FolderStore) {
        let dir = temporaryDirectory()
        let remote = try FolderStore.create(dir + "/remote")
        let a = try Home.create(path: dir + "/a")
        let b = try Home.create(path: dir + "/b", joining: true)
        _ = try Syncer(home: b, remote: remote, volume: nil).push()  // B announces its key
        try a.addMember(b.keyPair.actor, remote: remote)
        let sent = try Syncer(home: a, remote: remote, volume: nil).push()
        XCTAssertEqual(sent.messagesSent, 1)
        let (report, _) = try Syncer(home: b, remote: remote, volume: nil).pull()
        XCTAssertEqual(report.merged.count, 1, "\(report)")
        return (a, b, remote)
    }

    func testJoinedDeviceSeesTheSameTreeAndLaterChanges() throws {
        let (a, b, remote) = try pair()
        XCTAssertEqual(try b.currentVersion().link.hash, try a.currentVersion().link.hash)
        let va = try a.openVolume(options: VolumeOptions())
        try va.writeFile(1, "hello.txt", Array("from A".utf8))
        try va.close()
        _ = try Syncer(home: a, remote: remote, volume: nil).push()
        _ = try Syncer(home: b, remote: remote, volume: nil).pull()
        let vb = try b.openVolume(options: VolumeOptions())
        XCTAssertEqual(try vb.readFile(try vb.lookup(1, "hello.txt").ino), Array("from A".utf8))
        XCTAssertEqual(Set(try b.members().keys), [a.keyPair.actor, b.keyPair.actor])
    }

    func testConcurrentChangesConverge() throws {
        let (a, b, remote) = try pair()
        let va = try a.openVolume(options: VolumeOptions())
        let vb = try b.openVolume(options: VolumeOptions())
        try va.writeFile(1, "only-a", Array("a".utf8))
        try va.writeFile(1, "both", Array("A".utf8))
        try vb.writeFile(1, "only-b", Array("b".utf8))
        try vb.writeFile(1, "both", Array("B".utf8))
        try va.commit()
        try vb.commit()
        let sa = Syncer(home: a, remote: remote, volume: va), sb = Syncer(home: b, remote: remote, volume: vb)
        _ = try sa.push()
        _ = try sb.push()
        _ = try sa.pull()
        _ = try sb.pull()
        // Each merged the other's version; pushing the merges and pulling again converges.
        _ = try sa.push()
        _ = try sb.push()
        _ = try sa.pull()
        _ = try sb.pull()
        let rootA = va.currentVersion.rootEntry.directory, rootB = vb.currentVersion.rootEntry.directory
        XCTAssertEqual(rootA, rootB, "both devices show the same tree")
        let names = Set(try va.names(1))
        XCTAssertTrue(names.isSuperset(of: ["only-a", "only-b", "both"]))
        XCTAssertEqual(names.filter { $0.hasPrefix("both (conflict ") }.count, 1)
    }

    func testMessagesFromStrangersAndRevokedDevicesAreDiscarded() throws {
        let (a, b, remote) = try pair()
        let dir = temporaryDirectory()
        let stranger = try Home.create(path: dir + "/stranger")
        // The stranger lists A in its own group and sends A its filesystem.
        _ = try Syncer(home: a, remote: remote, volume: nil).push()
        try stranger.addMember(a.keyPair.actor, remote: remote)
        _ = try Syncer(home: stranger, remote: remote, volume: nil).push()
        let (report, _) = try Syncer(home: a, remote: remote, volume: nil).pull()
        XCTAssertEqual(report.discarded, 1)
        XCTAssertEqual(report.merged.count, 0)

        // Revoked: B's messages are refused and new versions are not encrypted for B.
        try a.removeMember(b.keyPair.actor)
        let vb = try b.openVolume(options: VolumeOptions())
        try vb.writeFile(1, "from-b", [1])
        try vb.close()
        _ = try Syncer(home: b, remote: remote, volume: nil).push()
        let (after, _) = try Syncer(home: a, remote: remote, volume: nil).pull()
        XCTAssertEqual(after.discarded, 1)
        let sent = try Syncer(home: a, remote: remote, volume: nil).push()
        XCTAssertEqual(sent.messagesSent, 0)
        let envelope = try XCTUnwrap(try a.store.get(try a.store.list(a.keyPair.actor, .private)[0]))
        XCTAssertThrowsError(try Envelope.openPrivate(envelope, signer: a.keyPair.publicKey, keyPair: b.keyPair))
    }
}

extension SyncTests {
    func testRolledBackAndForkedHistoriesAreRefused() throws {
        let (a, b, remote) = try pair()
        let sa = Syncer(home: a, remote: remote, volume: nil), sb = Syncer(home: b, remote: remote, volume: nil)
        let va = try a.openVolume(options: VolumeOptions())
        try va.writeFile(1, "one", [1])
        try va.commit()
        _ = try sa.push()
        // Keep the message A sent for this version: a store could serve it again later.
        let old = try remote.list(b.keyPair.actor, .messages)
        let oldObjects = try old.map { try XCTUnwrap(try remote.get($0)) }
        XCTAssertEqual(try sb.pull().0.merged.count, 1)
        try va.writeFile(1, "two", [2])
        try va.close()
        _ = try sa.push()
        XCTAssertEqual(try sb.pull().0.merged.count, 1)
        // Replay: the older message comes back.
        for (h, o) in zip(old, oldObjects) {
            try remote.put(h, o)
            try remote.add(b.keyPair.actor, .messages, h)
        }
        let (replayed, _) = try sb.pull()
        XCTAssertEqual(replayed.discarded, 1, "a rolled-back version is refused")
        let vb = try b.openVolume(options: VolumeOptions())
        XCTAssertNotNil(try? vb.lookup(1, "two"))
        try vb.close()

        // Fork: A's box suddenly names a version with no history in common with B's.
        let (head, secrets) = try a.readHead()
        var objects: [(Hash, Object)] = []
        var rootEntry = head.version.rootEntry
        rootEntry.directory = DirectoryFormat.encode([], secrets: secrets, into: &objects)
        let record = Version.record(revision: head.version.revision + 10, device: a.keyPair.actor, parents: [],
                                    root: rootEntry, links: nil, summary: ChangeSummary())
        let (object, link) = secrets.seal(record.object())
        objects.append((link.hash, object))
        var root = head.root
        root.filesystem = link
        _ = try a.publish(root: root, objects: objects, replacing: head.envelopes)
        _ = try sa.push()
        let (forked, _) = try sb.pull()
        XCTAssertEqual(forked.discarded, 1, "an unrelated history is refused")
    }
}
