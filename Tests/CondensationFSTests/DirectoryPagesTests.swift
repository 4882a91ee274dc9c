import Condensation
@testable import CondensationFS
import Glibc
import XCTest

/// A commit re-encodes only the pages of a large directory whose entries changed, and the result is
/// always exactly what encoding the whole directory gives (devices must agree on its objects).
final class DirectoryPagesTests: XCTestCase {
    /// Encodes `dir` from scratch (no pages to reuse); returns its link.
    private func fullEncoding(_ v: Volume, _ dir: Node) throws -> HashAndKey {
        try v.lock.withLock { () throws(FSError) -> HashAndKey in
            let (saved, savedPages) = (dir.directoryLink, dir.pages)
            dir.pages = nil
            dir.dirty = true
            var objects: [(Hash, Object)] = []
            var encoded: [(Node, HashAndKey?)] = []
            let link = try v.encodeDirectory(dir, &objects, &encoded)
            dir.directoryLink = saved
            dir.pages = savedPages
            dir.dirty = false
            return link
        }
    }

    func testReencodingMatchesAFullEncodingAndTouchesOnlyChangedPages() throws {
        let home = try temporaryHome(self)
        let v = try home.openVolume(options: VolumeOptions())
        let d = try v.mkdir(1, "big", mode: 0o755, uid: 0, gid: 0).ino
        var rng = SeededRandom(21)
        var names: [String] = []
        for i in 0..<20_000 {
            let name = "entry-\(UInt32.random(in: 0...UInt32.max, using: &rng))-\(i)"
            _ = try v.create(d, name, mode: 0o644, flags: O_WRONLY, uid: 0, gid: 0)
            names.append(name)
        }
        try v.commit()
        let dir = try XCTUnwrap(v.lock.withLock { v.root.children?["big"] })
        let pageCount = try XCTUnwrap(dir.pages).pages.count
        XCTAssertGreaterThan(pageCount, 10, "20k entries should need many pages")

        for round in 0..<12 {
            // A few changes of every kind: new entries, removals, renames, a changed file.
            for _ in 0..<3 {
                let name = "new-\(round)-\(UInt32.random(in: 0...UInt32.max, using: &rng))"
                _ = try v.create(d, name, mode: 0o644, flags: O_WRONLY, uid: 0, gid: 0)
                names.append(name)
            }
            let victim = names.remove(at: Int.random(in: 0..<names.count, using: &rng))
            try v.unlink(d, victim)
            let old = names.remove(at: Int.random(in: 0..<names.count, using: &rng))
            let renamed = old + "-renamed"
            try v.rename(d, old, d, renamed, flags: 0)
            names.append(renamed)
            let changed = names[Int.random(in: 0..<names.count, using: &rng)]
            try v.writeFile(d, changed, Array("round \(round)".utf8))

            var objects: [(Hash, Object)] = []
            var encoded: [(Node, HashAndKey?)] = []
            let link = try v.lock.withLock { () throws(FSError) in try v.encodeDirectory(dir, &objects, &encoded) }
            XCTAssertLessThan(objects.count, pageCount / 2, "round \(round): \(objects.count) objects for 6 changes")
            XCTAssertEqual(link, try fullEncoding(v, dir), "round \(round): re-encoding differs from a full encoding")
            // The directory is now encoded: its objects go to the store, as a commit would put them.
            for (h, o) in objects { try v.home.store.put(h, o) }
            try v.commit()
        }
        // The directory reads back as written after a remount.
        let v2 = try home.openVolume(options: VolumeOptions())
        let d2 = try v2.lookup(1, "big").ino
        XCTAssertEqual(Set(try v2.names(d2)), Set(names))
    }

    /// A large directory that shrinks below one object's worth of entries is encoded whole again.
    func testADirectoryThatShrinksBecomesOneObject() throws {
        let home = try temporaryHome(self)
        let v = try home.openVolume(options: VolumeOptions())
        let d = try v.mkdir(1, "d", mode: 0o755, uid: 0, gid: 0).ino
        for i in 0..<3000 { _ = try v.create(d, "file-\(i)", mode: 0o644, flags: O_WRONLY, uid: 0, gid: 0) }
        try v.commit()
        let dir = try XCTUnwrap(v.lock.withLock { v.root.children?["d"] })
        XCTAssertNotNil(dir.pages)
        for i in 0..<2900 { try v.unlink(d, "file-\(i)") }
        try v.commit()
        XCTAssertNil(dir.pages, "100 entries fit one object")
        XCTAssertEqual(try v.names(d).count, 100)
        XCTAssertEqual(dir.directoryLink, try fullEncoding(v, dir))
    }
}
