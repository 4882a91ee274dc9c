import Condensation
@testable import CondensationFS
import Glibc
import XCTest

/// Containers: a folder with its own secret and version chain, made and dissolved through the
/// mount's control attribute, keeping its contents and its history.
final class ContainerTests: XCTestCase {
    private let control = Volume.containerAttribute

    /// `Projects/` with a file, a subfolder and a large file; committed.
    /// Two devices of one group through a folder store, B joined and up to date with A.
    private func twoDevices() throws -> (FolderStore, Home, Home) {
        let dir = try temporaryDirectory(self)
        let remote = try FolderStore.create(dir + "/remote")
        let a = try Home.create(path: dir + "/a")
        let b = try Home.create(path: dir + "/b", joining: true)
        _ = try Syncer(home: b, remote: remote, volume: nil).push()
        try a.addMember(b.keyPair.actor, remote: remote)
        _ = try Syncer(home: a, remote: remote, volume: nil).push()
        _ = try Syncer(home: b, remote: remote, volume: nil).pull()
        return (remote, a, b)
    }

    private func projects(_ v: Volume) throws -> Inode {
        let p = try v.mkdir(1, "Projects", mode: 0o755, uid: 0, gid: 0).ino
        try v.writeFile(p, "plan.txt", Array("the plan".utf8))
        let sub = try v.mkdir(p, "src", mode: 0o755, uid: 0, gid: 0).ino
        var random = SeededRandom(7)
        try v.writeFile(sub, "big.bin", (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &random) })
        try v.writeFile(1, "outside.txt", Array("not shared".utf8))
        try v.commit()
        return p
    }

    /// The root directory's stored entry for `name`, as the newest version has it.
    private func storedEntry(_ home: Home, _ name: String, version: Version? = nil) throws -> StoredEntry {
        let v = try version ?? home.currentVersion()
        let reader = ObjectReader(store: home.store)
        let records = try DirectoryFormat.decode(XCTUnwrap(v.rootEntry.directory), reader: reader)
        return try XCTUnwrap(records.first { $0.text == name }.flatMap(StoredEntry.init(record:)))
    }

    private func head(_ home: Home, _ link: HashAndKey) throws -> ContainerHead {
        try XCTUnwrap(ContainerHead(record: ObjectReader(store: home.store).record(link)))
    }

    private func contents(_ v: Volume, _ dir: Inode) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for name in try v.names(dir) {
            let a = try v.lookup(dir, name)
            if a.mode & UInt32(S_IFMT) == UInt32(S_IFDIR) {
                for (k, bytes) in try contents(v, a.ino) { out[name + "/" + k] = bytes }
            } else {
                out[name] = try v.readFile(a.ino)
            }
        }
        return out
    }

    func testMakingAContainerKeepsContentsAndHistoryAndDissolvingItToo() throws {
        let home = try temporaryHome(self)
        var v = try home.openVolume(options: VolumeOptions())
        let p = try projects(v)
        let before = try contents(v, p)
        let plainVersion = try home.currentVersion()
        XCTAssertThrowsError(try v.getxattr(p, control)) { XCTAssertEqual($0 as? FSError, .noAttribute) }

        try v.setxattr(p, control, Array("1".utf8), flags: 0)
        let id = String(decoding: try v.getxattr(p, control), as: UTF8.self)
        XCTAssertEqual(id.count, 64)
        XCTAssertFalse(try v.listxattr(p).contains(control), "control names are not listed")
        XCTAssertEqual(try contents(v, p), before)
        try v.commit()

        // On the store: the entry links a head instead of the directory; the head opens the
        // container's first version, which has no parents and the folder's directory as its root.
        let entry = try storedEntry(home, "Projects")
        let headLink = try XCTUnwrap(entry.container)
        XCTAssertNil(entry.directory)
        let first = try head(home, headLink)
        XCTAssertEqual(Hash(bytes: first.id)?.hex, id)
        let firstVersion = try Version.load(first.version, reader: ObjectReader(store: home.store))
        XCTAssertEqual(firstVersion.parents.count, 0)
        XCTAssertEqual(firstVersion.rootEntry.directory, try storedEntry(home, "Projects", version: plainVersion).directory,
                       "the folder's objects are linked as they are, not rewritten")
        // Sealed with the container's secret, not the group's: the group key of the same plaintext differs.
        let (_, groupSealed) = try home.readHead().1.seal(first.record.object())
        XCTAssertNotEqual(groupSealed.key, headLink.key)
        XCTAssertEqual(Secrets(groupSecret: first.secret).seal(first.record.object()).1, headLink)

        // Reopened: the same contents and id.
        try v.close()
        v = try home.openVolume(options: VolumeOptions())
        var projects = try v.lookup(1, "Projects").ino
        XCTAssertEqual(try contents(v, projects), before)
        XCTAssertEqual(String(decoding: try v.getxattr(projects, control), as: UTF8.self), id)

        // A change inside makes a second container version whose parent is the first; a change
        // outside leaves the head as it is.
        try v.writeFile(projects, "notes.txt", Array("more".utf8))
        try v.commit()
        let secondLink = try XCTUnwrap(try storedEntry(home, "Projects").container)
        XCTAssertNotEqual(secondLink, headLink)
        let second = try head(home, secondLink)
        XCTAssertEqual(second.id, first.id)
        XCTAssertEqual(second.secret, first.secret)
        let secondVersion = try Version.load(second.version, reader: ObjectReader(store: home.store))
        XCTAssertEqual(secondVersion.parents, [first.version])
        try v.writeFile(1, "outside.txt", Array("changed outside".utf8))
        try v.commit()
        XCTAssertEqual(try storedEntry(home, "Projects").container, secondLink)

        // Dissolved: an ordinary directory entry again, the same contents.
        let withNotes = try contents(v, projects)
        try v.removexattr(projects, control)
        XCTAssertThrowsError(try v.getxattr(projects, control)) { XCTAssertEqual($0 as? FSError, .noAttribute) }
        try v.commit()
        let dissolved = try storedEntry(home, "Projects")
        XCTAssertNil(dissolved.container)
        XCTAssertEqual(dissolved.directory, secondVersion.rootEntry.directory)
        try v.close()
        v = try home.openVolume(options: VolumeOptions())
        projects = try v.lookup(1, "Projects").ino
        XCTAssertEqual(try contents(v, projects), withNotes)
        try v.close()

        // History: every version still opens, before, during and after the container.
        let history = try History(home: home).versions(from: home.currentVersion())
        XCTAssertGreaterThanOrEqual(history.count, 5)
        var seenContainer = false
        for version in history {
            var options = VolumeOptions()
            options.version = version.link.hash
            let old = try home.openVolume(options: options)
            if let p = try? old.lookup(1, "Projects").ino {
                let c = try contents(old, p)
                XCTAssertEqual(c["plan.txt"], Array("the plan".utf8))
                if (try? old.getxattr(p, control)) != nil { seenContainer = true }
            }
            try old.close()
        }
        XCTAssertTrue(seenContainer, "the versions made while it was a container show it as one")
        let checker = Checker(home: home, progress: { _, _ in })
        checker.run()
        XCTAssertEqual(checker.problems.map(\.description), [])
        XCTAssertGreaterThan(checker.checked, 10)
    }

    func testBadRequestsAreRefused() throws {
        let home = try temporaryHome(self)
        let v = try home.openVolume(options: VolumeOptions())
        let p = try projects(v)
        let file = try v.lookup(p, "plan.txt").ino
        XCTAssertThrowsError(try v.setxattr(file, control, Array("1".utf8), flags: 0)) { XCTAssertEqual($0 as? FSError, .notDirectory) }
        XCTAssertThrowsError(try v.setxattr(1, control, Array("1".utf8), flags: 0)) { XCTAssertEqual($0 as? FSError, .invalid) }
        XCTAssertThrowsError(try v.setxattr(p, control, Array("yes".utf8), flags: 0)) { XCTAssertEqual($0 as? FSError, .invalid) }
        XCTAssertThrowsError(try v.setxattr(p, "user.cdsfs.other", Array("1".utf8), flags: 0)) { XCTAssertEqual($0 as? FSError, .notSupported) }
        XCTAssertThrowsError(try v.removexattr(p, control)) { XCTAssertEqual($0 as? FSError, .noAttribute) }
        // Hard-linked files inside cannot go along (their content is in the volume's link table).
        let sub = try v.lookup(p, "src").ino
        _ = try v.link(try v.lookup(sub, "big.bin").ino, p, "big-again.bin")
        XCTAssertThrowsError(try v.setxattr(p, control, Array("1".utf8), flags: 0)) { XCTAssertEqual($0 as? FSError, FSError(EXDEV)) }
        // (A file that once had two names keeps its content in the table: both names go.)
        try v.unlink(p, "big-again.bin")
        try v.unlink(sub, "big.bin")
        try v.setxattr(p, control, Array("1".utf8), flags: 0)
        XCTAssertThrowsError(try v.setxattr(p, control, Array("1".utf8), flags: 0)) { XCTAssertEqual($0 as? FSError, .exists) }
        // No hard link into, out of or within a container; no hard-linked file moves in.
        let exdev = FSError(EXDEV)
        let inside = try v.lookup(p, "plan.txt").ino
        let outside = try v.lookup(1, "outside.txt").ino
        XCTAssertThrowsError(try v.link(inside, p, "plan-again.txt")) { XCTAssertEqual($0 as? FSError, exdev) }
        XCTAssertThrowsError(try v.link(inside, 1, "plan-out.txt")) { XCTAssertEqual($0 as? FSError, exdev) }
        XCTAssertThrowsError(try v.link(outside, p, "outside-in.txt")) { XCTAssertEqual($0 as? FSError, exdev) }
        _ = try v.link(outside, 1, "outside-2.txt")
        XCTAssertThrowsError(try v.rename(1, "outside.txt", p, "moved.txt", flags: 0)) { XCTAssertEqual($0 as? FSError, exdev) }
        let holder = try v.mkdir(1, "holder", mode: 0o755, uid: 0, gid: 0).ino
        try v.rename(1, "outside-2.txt", holder, "linked.txt", flags: 0)
        XCTAssertThrowsError(try v.rename(1, "holder", p, "holder", flags: 0)) { XCTAssertEqual($0 as? FSError, exdev) }
        try v.writeFile(1, "plain.txt", [1])
        try v.rename(1, "plain.txt", p, "plain.txt", flags: 0)  // an ordinary file moves in
        XCTAssertEqual(try v.readFile(try v.lookup(p, "plain.txt").ino), [1])
        try v.close()

        // A read-only (past) version refuses.
        var options = VolumeOptions()
        options.readOnly = true
        let ro = try home.openVolume(options: options)
        let q = try ro.lookup(1, "Projects").ino
        XCTAssertThrowsError(try ro.removexattr(q, control)) { XCTAssertEqual($0 as? FSError, .readOnly) }
        try ro.close()
    }

    /// The other device of the group gets the container with the ordinary sync, and a change inside
    /// it made there comes back as the container's next version.
    func testAContainerTravelsToTheOtherDevice() throws {
        let (remote, a, b) = try twoDevices()
        let sa = Syncer(home: a, remote: remote, volume: nil)

        let va = try a.openVolume(options: VolumeOptions())
        let vb = try b.openVolume(options: VolumeOptions())  // mounted on B meanwhile: the merge refreshes it
        let sb = Syncer(home: b, remote: remote, volume: vb)
        let p = try projects(va)
        try va.setxattr(p, control, Array("1".utf8), flags: 0)
        try va.commit()
        let id = try va.getxattr(p, control)
        _ = try sa.push()
        _ = try sb.pull()
        let pb = try vb.lookup(1, "Projects").ino
        XCTAssertEqual(try vb.getxattr(pb, control), id)
        XCTAssertEqual(try contents(vb, pb), try contents(va, p))

        try vb.writeFile(pb, "from-b.txt", Array("b".utf8))
        try vb.commit()
        _ = try sb.push()
        let sa2 = Syncer(home: a, remote: remote, volume: va)
        _ = try sa2.pull()
        XCTAssertEqual(try va.readFile(try va.lookup(p, "from-b.txt").ino), Array("b".utf8))
        let headLink = try XCTUnwrap(try storedEntry(a, "Projects").container)
        let h = try head(a, headLink)
        XCTAssertEqual(h.id, Array(Hash(hex: String(decoding: id, as: UTF8.self))!.bytes))
        let version = try Version.load(h.version, reader: ObjectReader(store: a.store))
        XCTAssertEqual(version.device, b.keyPair.actor, "B wrote the container's newest version")
        XCTAssertEqual(version.parents.count, 1)
        try va.close()
        try vb.close()
    }

    /// Both devices change the container at once: the two states merge over the container's chain
    /// (no conflict copy of the whole folder), both devices reach the same head, and a removal of a
    /// recipient on one side with its new secret survives the merge.
    func testAContainerChangedOnTwoDevicesMerges() throws {
        let (remote, a, b) = try twoDevices()
        let va = try a.openVolume(options: VolumeOptions())
        let vb = try b.openVolume(options: VolumeOptions())
        let sa = Syncer(home: a, remote: remote, volume: va), sb = Syncer(home: b, remote: remote, volume: vb)
        let p = try projects(va)
        let someone = Hash.of(Array("someone".utf8))
        try va.setxattr(p, Volume.shareAttribute, Array(someone.hex.utf8), flags: 0)
        try va.commit()
        _ = try sa.push()
        _ = try sb.pull()
        let pb = try vb.lookup(1, "Projects").ino
        let before = try head(a, try XCTUnwrap(try storedEntry(a, "Projects").container))

        // At once: A changes plan.txt and removes the recipient; B adds a file and changes src.
        try va.writeFile(p, "plan.txt", Array("A's plan".utf8))
        try va.setxattr(p, Volume.unshareAttribute, Array(someone.hex.utf8), flags: 0)
        try va.commit()
        try vb.writeFile(pb, "from-b.txt", Array("B".utf8))
        try vb.writeFile(try vb.lookup(pb, "src").ino, "b.txt", Array("B too".utf8))
        try vb.commit()
        for _ in 0..<2 {
            _ = try sa.push()
            _ = try sb.push()
            _ = try sa.pull()
            _ = try sb.pull()
        }
        XCTAssertEqual(va.currentVersion.rootEntry.directory, vb.currentVersion.rootEntry.directory, "the same tree")
        XCTAssertEqual(try va.names(1).filter { $0.contains("conflict") }, [], "no conflict copy of the folder")
        let c = try contents(va, p)
        XCTAssertEqual(c["plan.txt"], Array("A's plan".utf8))
        XCTAssertEqual(c["from-b.txt"], Array("B".utf8))
        XCTAssertEqual(c["src/b.txt"], Array("B too".utf8))
        XCTAssertEqual(try contents(vb, try vb.lookup(1, "Projects").ino), c)

        let entry = try storedEntry(a, "Projects")
        let merged = try head(a, try XCTUnwrap(entry.container))
        XCTAssertEqual(merged.id, before.id)
        XCTAssertNotEqual(merged.secret, before.secret, "the unshare's new key is not undone by the merge")
        let mergedVersion = try Version.load(merged.version, reader: ObjectReader(store: a.store))
        XCTAssertEqual(mergedVersion.parents.count, 2)
        XCTAssertEqual(Recipient.read(entry.recipients)[someone]?.active, false, "the removal stays")
        XCTAssertEqual(try va.getxattr(try va.lookup(1, "Projects").ino, Volume.recipientsAttribute), [])
        try va.close()
        try vb.close()
    }
}
