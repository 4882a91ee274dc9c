import Condensation
@testable import CondensationFS
import Glibc
import XCTest

/// A read-only share from Alice (two devices) to Bob (one), all syncing through one store: what Bob
/// gets, what he cannot do, and what he never gets. (SharingTests does the same through the binary
/// and a real server.)
final class ShareFlowTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/cdsfs-shareflow-XXXXXX".utf8CString)
        dir = String(cString: mkdtemp(&template)!)
        let d = dir
        addTeardownBlock { _ = system("rm -rf '\(d)'") }
    }

    private struct World {
        let remote: FolderStore
        let a1: Home, a2: Home, bob: Home
        let va1: Volume, va2: Volume, vb: Volume
        var s1: Syncer { Syncer(home: a1, remote: remote, volume: va1) }
        var s2: Syncer { Syncer(home: a2, remote: remote, volume: va2) }
        var sb: Syncer { Syncer(home: bob, remote: remote, volume: vb) }
        func close() throws {
            try va1.close()
            try va2.close()
            try vb.close()
        }
    }

    /// Alice's two devices in one group, Bob alone; each has the other as a contact; all mounted.
    private func world() throws -> World {
        let remote = try FolderStore.create(dir + "/remote")
        let a1 = try Home.create(path: dir + "/a1")
        let a2 = try Home.create(path: dir + "/a2", joining: true)
        let bob = try Home.create(path: dir + "/bob")
        _ = try Syncer(home: a2, remote: remote, volume: nil).push()
        try a1.addMember(a2.keyPair.actor, remote: remote)
        _ = try Syncer(home: a1, remote: remote, volume: nil).push()
        _ = try Syncer(home: a2, remote: remote, volume: nil).pull()
        _ = try Syncer(home: bob, remote: remote, volume: nil).push()
        _ = try a1.addContact(name: "bob", actor: bob.keyPair.actor, store: remote)
        _ = try bob.addContact(name: "alice", actor: a1.keyPair.actor, store: remote)
        _ = try Syncer(home: a1, remote: remote, volume: nil).push()
        _ = try Syncer(home: a2, remote: remote, volume: nil).pull()
        return World(remote: remote, a1: a1, a2: a2, bob: bob,
                     va1: try a1.openVolume(options: VolumeOptions()), va2: try a2.openVolume(options: VolumeOptions()),
                     vb: try bob.openVolume(options: VolumeOptions()))
    }

    func testBobSeesTheSharedFolderAndItsLaterVersionsAndNothingElse() throws {
        let w = try world()
        let p = try w.va1.mkdir(1, "Projects", mode: 0o755, uid: 0, gid: 0).ino
        try w.va1.writeFile(p, "plan.txt", Array("the plan".utf8))
        let other = try w.va1.mkdir(1, "Other", mode: 0o755, uid: 0, gid: 0).ino
        try w.va1.writeFile(other, "secret.txt", Array("not for bob".utf8))
        try w.va1.setxattr(p, Volume.shareAttribute, Array(w.bob.keyPair.actor.hex.utf8), flags: 0)
        try w.va1.commit()
        XCTAssertEqual(try w.s1.push().sharesSent, 1)
        XCTAssertEqual(try w.s1.push().sharesSent, 0, "nothing new: nothing sent again")

        let (got, _) = try w.sb.pull()
        XCTAssertEqual(got.merged, ["received Shared/Projects (alice)"], "\(got)")
        let shared = try w.vb.lookup(1, "Shared").ino
        XCTAssertEqual(try w.vb.names(shared), ["Projects (alice)"])
        let bp = try w.vb.lookup(shared, "Projects (alice)").ino
        XCTAssertEqual(try w.vb.readFile(try w.vb.lookup(bp, "plan.txt").ino), Array("the plan".utf8))
        XCTAssertEqual(Set(try w.vb.names(1)), ["Shared"], "nothing else of Alice's")

        // Read-only for Bob.
        let plan = try w.vb.lookup(bp, "plan.txt").ino
        let readOnly = FSError.readOnly
        XCTAssertThrowsError(try w.vb.open(plan, flags: O_WRONLY)) { XCTAssertEqual($0 as? FSError, readOnly) }
        XCTAssertThrowsError(try w.vb.create(bp, "new.txt", mode: 0o644, flags: O_WRONLY, uid: 0, gid: 0)) { XCTAssertEqual($0 as? FSError, readOnly) }
        XCTAssertThrowsError(try w.vb.mkdir(bp, "d", mode: 0o755, uid: 0, gid: 0)) { XCTAssertEqual($0 as? FSError, readOnly) }
        XCTAssertThrowsError(try w.vb.unlink(bp, "plan.txt")) { XCTAssertEqual($0 as? FSError, readOnly) }
        XCTAssertThrowsError(try w.vb.rename(bp, "plan.txt", 1, "mine.txt", flags: 0)) { XCTAssertEqual($0 as? FSError, readOnly) }
        XCTAssertThrowsError(try w.vb.setxattr(plan, "user.x", [1], flags: 0)) { XCTAssertEqual($0 as? FSError, readOnly) }
        XCTAssertThrowsError(try w.vb.setxattr(bp, "user.x", [1], flags: 0)) { XCTAssertEqual($0 as? FSError, readOnly) }

        // Bob never holds Alice's other objects: not her top directory, not Other.
        let aliceTop = try XCTUnwrap(w.va1.currentVersion.rootEntry.directory)
        XCTAssertNil(try w.bob.store.get(aliceTop.hash))
        let otherLink = try XCTUnwrap(w.va1.storedDirectoryLink(other))
        XCTAssertNotNil(try w.a1.store.get(otherLink.hash))
        XCTAssertNil(try w.bob.store.get(otherLink.hash))

        // A later change by Alice reaches Bob; the entry stays where it was.
        try w.va1.writeFile(p, "plan.txt", Array("the plan, v2".utf8))
        try w.va1.commit()
        XCTAssertEqual(try w.s1.push().sharesSent, 1)
        let update = try w.sb.pull().0.merged
        XCTAssertEqual(update.count, 1)
        XCTAssert(update.first?.hasPrefix("Shared/Projects (alice): fast-forward to ") == true, "\(update)")
        let bp2 = try w.vb.lookup(shared, "Projects (alice)").ino
        XCTAssertEqual(bp2, bp, "updated in place: the same inode")
        XCTAssertEqual(try w.vb.readFile(try w.vb.lookup(bp2, "plan.txt").ino), Array("the plan, v2".utf8))

        // Alice's second device has the share too, and its change reaches Bob from that device.
        _ = try w.s2.pull()
        let p2 = try w.va2.lookup(1, "Projects").ino
        XCTAssertEqual(String(decoding: try w.va2.getxattr(p2, Volume.recipientsAttribute), as: UTF8.self),
                       "\(w.bob.keyPair.actor.hex) r\n")
        try w.va2.writeFile(p2, "from-a2.txt", Array("second device".utf8))
        try w.va2.commit()
        XCTAssertEqual(try w.s2.push().sharesSent, 1)
        let fromA2 = try w.sb.pull().0.merged
        XCTAssert(fromA2.first?.hasPrefix("Shared/Projects (alice): fast-forward to ") == true,
                  "accepted: the card of Alice lists her second device; \(fromA2)")
        let bp3 = try w.vb.lookup(shared, "Projects (alice)").ino
        XCTAssertEqual(try w.vb.readFile(try w.vb.lookup(bp3, "from-a2.txt").ino), Array("second device".utf8))

        // Bob's other commits keep the share, and a reopened volume shows it.
        try w.vb.writeFile(1, "bobs.txt", [1])
        try w.vb.commit()
        try w.close()
        let again = try w.bob.openVolume(options: VolumeOptions())
        let s = try again.lookup(1, "Shared").ino
        let q = try again.lookup(s, "Projects (alice)").ino
        XCTAssertEqual(Set(try again.names(q)), ["plan.txt", "from-a2.txt"])
        XCTAssertThrowsError(try again.unlink(q, "plan.txt")) { XCTAssertEqual($0 as? FSError, readOnly) }
        try again.close()
    }

    /// After an unshare, Alice's new versions never reach Bob and cannot be opened with what he holds.
    func testAfterUnshareNewVersionsNeverReachBob() throws {
        let w = try world()
        let p = try w.va1.mkdir(1, "Projects", mode: 0o755, uid: 0, gid: 0).ino
        try w.va1.writeFile(p, "plan.txt", Array("shared once".utf8))
        try w.va1.setxattr(p, Volume.shareAttribute, Array(w.bob.keyPair.actor.hex.utf8), flags: 0)
        try w.va1.commit()
        XCTAssertEqual(try w.s1.push().sharesSent, 1)
        _ = try w.sb.pull()
        let oldHeadLink = try XCTUnwrap(w.va1.containerHead(p))
        let oldHead = try XCTUnwrap(ContainerHead(record: ObjectReader(store: w.bob.store).record(oldHeadLink)))

        try w.va1.setxattr(p, Volume.unshareAttribute, Array(w.bob.keyPair.actor.hex.utf8), flags: 0)
        XCTAssertEqual(try w.va1.getxattr(p, Volume.recipientsAttribute), [])
        XCTAssertThrowsError(try w.va1.setxattr(p, Volume.unshareAttribute, Array(w.bob.keyPair.actor.hex.utf8), flags: 0)) {
            XCTAssertEqual($0 as? FSError, .noAttribute)
        }
        try w.va1.writeFile(p, "plan.txt", Array("after the unshare".utf8))
        try w.va1.commit()
        let report = try w.s1.push()
        XCTAssertEqual(report.sharesSent, 0)
        XCTAssertEqual(try w.sb.pull().0.merged, [], "nothing new for Bob")
        let shared = try w.vb.lookup(1, "Shared").ino
        let bp = try w.vb.lookup(shared, "Projects (alice)").ino
        XCTAssertEqual(try w.vb.readFile(try w.vb.lookup(bp, "plan.txt").ino), Array("shared once".utf8),
                       "what Bob had stays readable")

        // The new head is sealed with a new secret: the keys Bob holds do not open it, nor does a key
        // derived from the old secret for any plaintext he could form.
        let newHeadLink = try XCTUnwrap(w.va1.containerHead(p))
        XCTAssertNil(try w.bob.store.get(newHeadLink.hash), "the new head was not sent to Bob")
        var sealed = try XCTUnwrap(try w.a1.store.get(newHeadLink.hash))
        sealed.crypt(with: oldHeadLink.key)
        XCTAssertNil((try? Record(object: sealed)).flatMap(ContainerHead.init(record:)))
        let newHead = try XCTUnwrap(ContainerHead(record: ObjectReader(store: w.a1.store).record(newHeadLink)))
        XCTAssertEqual(newHead.id, oldHead.id)
        XCTAssertNotEqual(newHead.secret, oldHead.secret)
        let reSealedWithOld = Secrets(groupSecret: oldHead.secret).seal(newHead.record.object()).1
        XCTAssertNotEqual(reSealedWithOld, newHeadLink)
        let newVersion = try Version.load(newHead.version, reader: ObjectReader(store: w.a1.store))
        XCTAssertEqual(newVersion.parents, [oldHead.version], "the history goes on from what Bob had")

        // The second device of Alice learns of it with the ordinary sync and sends nothing to Bob either.
        _ = try w.s2.pull()
        let p2 = try w.va2.lookup(1, "Projects").ino
        try w.va2.writeFile(p2, "more.txt", [1])
        try w.va2.commit()
        XCTAssertEqual(try w.s2.push().sharesSent, 0)
        XCTAssertEqual(try w.sb.pull().0.merged, [])
        try w.close()
    }

    /// Shared with write: Bob's edit reaches both of Alice's devices, and edits made at once on both
    /// sides keep both (a conflict copy for the one file both changed).
    func testWithWriteBobsChangesReachBothOfAlicesDevicesAndConcurrentEditsKeepBoth() throws {
        let w = try world()
        let p = try w.va1.mkdir(1, "Projects", mode: 0o755, uid: 0, gid: 0).ino
        try w.va1.writeFile(p, "plan.txt", Array("the plan".utf8))
        try w.va1.setxattr(p, Volume.shareAttribute, Array((w.bob.keyPair.actor.hex + " w").utf8), flags: 0)
        try w.va1.commit()
        XCTAssertEqual(try w.s1.push().sharesSent, 1)
        _ = try w.sb.pull()
        let shared = try w.vb.lookup(1, "Shared").ino
        let bp = try w.vb.lookup(shared, "Projects (alice)").ino

        // Bob writes; it goes back to Alice's store and into her tree, then to her second device.
        try w.vb.writeFile(bp, "from-bob.txt", Array("hello from bob".utf8))
        try w.vb.commit()
        XCTAssertEqual(try w.sb.push().sharesSent, 1, "Bob's change goes back to the owner")
        let (back, _) = try w.s1.pull()
        XCTAssertEqual(back.discarded, 0, "\(back)")
        XCTAssertEqual(try w.va1.readFile(try w.va1.lookup(p, "from-bob.txt").ino), Array("hello from bob".utf8))
        XCTAssertEqual(try w.s1.push().sharesSent, 0, "what came from Bob is not sent back to him")
        _ = try w.s2.pull()
        let p2 = try w.va2.lookup(1, "Projects").ino
        XCTAssertEqual(try w.va2.readFile(try w.va2.lookup(p2, "from-bob.txt").ino), Array("hello from bob".utf8))

        // At once: Alice changes plan.txt and adds a file, Bob changes plan.txt and adds another.
        try w.va1.writeFile(p, "plan.txt", Array("Alice's plan".utf8))
        try w.va1.writeFile(p, "alice.txt", Array("a".utf8))
        try w.va1.commit()
        try w.vb.writeFile(bp, "plan.txt", Array("Bob's plan".utf8))
        try w.vb.writeFile(bp, "bob.txt", Array("b".utf8))
        try w.vb.commit()
        for _ in 0..<3 {
            _ = try w.s1.push()
            _ = try w.sb.push()
            _ = try w.s1.pull()
            _ = try w.sb.pull()
        }
        _ = try w.s2.pull()
        let alice = Set(try w.va1.names(p)), bobs = Set(try w.vb.names(try w.vb.lookup(shared, "Projects (alice)").ino))
        XCTAssertTrue(alice.isSuperset(of: ["plan.txt", "alice.txt", "bob.txt", "from-bob.txt"]), "\(alice)")
        XCTAssertEqual(alice.filter { $0.hasPrefix("plan.txt (conflict ") }.count, 1, "\(alice)")
        XCTAssertEqual(alice, bobs, "both sides show the same folder")
        XCTAssertEqual(Set(try w.va2.names(try w.va2.lookup(1, "Projects").ino)), alice)
        XCTAssertEqual(try w.va1.containerHead(p), try w.vb.containerHead(try w.vb.lookup(shared, "Projects (alice)").ino),
                       "the same head on both sides: no more rounds")
        try w.close()
    }

    func testSharesFromStrangersAndBrokenSharesAreDiscarded() throws {
        let w = try world()
        // A stranger, whom Bob does not know, shares a folder with him.
        let stranger = try Home.create(path: dir + "/stranger")
        _ = try Syncer(home: stranger, remote: w.remote, volume: nil).push()
        _ = try stranger.addContact(name: "bob", actor: w.bob.keyPair.actor, store: w.remote)
        let vs = try stranger.openVolume(options: VolumeOptions())
        let sp = try vs.mkdir(1, "Gift", mode: 0o755, uid: 0, gid: 0).ino
        try vs.setxattr(sp, Volume.shareAttribute, Array(w.bob.keyPair.actor.hex.utf8), flags: 0)
        try vs.commit()
        XCTAssertEqual(try Syncer(home: stranger, remote: w.remote, volume: vs).push().sharesSent, 1)
        try vs.close()
        let (report, _) = try w.sb.pull()
        XCTAssertEqual(report.discarded, 1)
        XCTAssertNil(try? w.vb.lookup(1, "Shared"))

        // Alice shares, but the head's objects are gone from Bob's store before he pulls.
        let p = try w.va1.mkdir(1, "Projects", mode: 0o755, uid: 0, gid: 0).ino
        try w.va1.writeFile(p, "plan.txt", Array("the plan".utf8))
        try w.va1.setxattr(p, Volume.shareAttribute, Array(w.bob.keyPair.actor.hex.utf8), flags: 0)
        try w.va1.commit()
        XCTAssertEqual(try w.s1.push().sharesSent, 1)
        let headLink = try XCTUnwrap(w.va1.containerHead(p))
        // (The remote is shared with Alice's own sync, so only the head goes: the head is the share's.)
        _ = system("rm -f '\(w.remote.path)/objects/\(headLink.hash.hex.prefix(2))/\(headLink.hash.hex.dropFirst(2))'")
        let (broken, _) = try w.sb.pull()
        XCTAssertEqual(broken.discarded, 1, "\(broken)")
        XCTAssertNil(try? w.vb.lookup(1, "Shared"))
        try w.close()
    }
}

extension Volume {
    /// The directory object a directory was last committed as (for tests).
    func storedDirectoryLink(_ ino: Inode) throws -> HashAndKey? { try lock.withLock { try node(ino).directoryLink } }
    /// The head link of a container directory as last committed (for tests).
    func containerHead(_ ino: Inode) throws -> HashAndKey? { try lock.withLock { try node(ino).container?.head } }
}
