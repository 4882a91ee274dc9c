import Condensation
@testable import CondensationFS
import Glibc
import XCTest

final class VolumeTests: XCTestCase {
    func testEmptyFilesystemAfterInit() throws {
        let home = try temporaryHome(self)
        let volume = try home.openVolume(options: VolumeOptions())
        XCTAssertEqual(try volume.names(1), [])
        let attr = try volume.getattr(1)
        XCTAssertEqual(attr.mode & UInt32(S_IFMT), UInt32(S_IFDIR))
        try volume.close()
    }

    func testFilesSurviveCommitAndReopen() throws {
        let home = try temporaryHome(self)
        var rng = SeededRandom(1)
        let small = Array("hello".utf8)
        let large = rng.bytes(3 * 1024 * 1024 + 17)
        do {
            let v = try home.openVolume(options: VolumeOptions())
            try v.writeFile(1, "small.txt", small)
            let dir = try v.mkdir(1, "docs", mode: 0o750, uid: 0, gid: 0).ino
            try v.writeFile(dir, "large.bin", large)
            _ = try v.symlink("docs/large.bin", 1, "link", uid: 0, gid: 0)
            try v.setxattr(dir, "user.note", Array("x".utf8), flags: 0)
            try v.close()
        }
        let v = try home.openVolume(options: VolumeOptions())
        XCTAssertEqual(Set(try v.names(1)), ["small.txt", "docs", "link"])
        XCTAssertEqual(try v.readFile(try v.lookup(1, "small.txt").ino), small)
        let dir = try v.lookup(1, "docs")
        XCTAssertEqual(dir.mode & 0o7777, 0o750)
        XCTAssertEqual(try v.getxattr(dir.ino, "user.note"), Array("x".utf8))
        XCTAssertEqual(try v.readFile(try v.lookup(dir.ino, "large.bin").ino), large)
        XCTAssertEqual(try v.readlink(try v.lookup(1, "link").ino), "docs/large.bin")
    }

    func testRandomWritesTruncateAndHolesMatchAModel() throws {
        let home = try temporaryHome(self)
        var rng = SeededRandom(2)
        var options = VolumeOptions()
        options.writeBufferLimit = 1 << 20  // small, so that materialisation happens often
        var v = try home.openVolume(options: options)
        var model: [UInt8] = []
        var ino = try v.writeFile(1, "f", [])
        for step in 0..<300 {
            switch rng.next() % 10 {
            case 0:
                let size = Int(rng.next() % (3 << 20))
                _ = try v.setattr(ino, AttributeChanges(size: UInt64(size)), handle: nil)
                if size < model.count { model.removeLast(model.count - size) } else { model += [UInt8](repeating: 0, count: size - model.count) }
            case 1:
                try v.commit()
            case 2:
                try v.close()
                v = try home.openVolume(options: options)
                ino = try v.lookup(1, "f").ino
            default:
                let offset = Int(rng.next() % (4 << 20))
                let data = rng.bytes(Int(rng.next() % 200_000) + 1)
                _ = try data.withUnsafeBytes { try v.write(ino, handle: ino, offset: UInt64(offset), $0) }
                if model.count < offset + data.count { model += [UInt8](repeating: 0, count: offset + data.count - model.count) }
                model.replaceSubrange(offset..<(offset + data.count), with: data)
            }
            if step % 25 == 0 { XCTAssertEqual(try v.readFile(ino), model, "step \(step)") }
        }
        XCTAssertEqual(try v.readFile(ino), model)
        try v.close()
        let again = try home.openVolume(options: options)
        XCTAssertEqual(try again.readFile(try again.lookup(1, "f").ino), model)
    }

    func testRenameUnlinkHardLinks() throws {
        let home = try temporaryHome(self)
        do {
            let v = try home.openVolume(options: VolumeOptions())
            let a = try v.mkdir(1, "a", mode: 0o755, uid: 0, gid: 0).ino
            let b = try v.mkdir(1, "b", mode: 0o755, uid: 0, gid: 0).ino
            let f = try v.writeFile(a, "f", Array("one".utf8))
            _ = try v.link(f, b, "g")
            XCTAssertEqual(try v.getattr(f).nlink, 2)
            try v.rename(a, "f", b, "h", flags: 0)
            XCTAssertThrowsError(try v.rename(b, "h", b, "g", flags: 1))  // RENAME_NOREPLACE
            try v.writeFile(b, "g", Array("two".utf8))
            XCTAssertEqual(try v.readFile(try v.lookup(b, "h").ino), Array("two".utf8))
            XCTAssertThrowsError(try v.rmdir(1, "b")) { XCTAssertEqual($0 as? FSError, .notEmpty) }
            try v.rename(1, "a", b, "a2", flags: 0)
            XCTAssertThrowsError(try v.rename(1, "b", b, "x", flags: 0)) { XCTAssertEqual($0 as? FSError, .invalid) }
            try v.close()
        }
        let v = try home.openVolume(options: VolumeOptions())
        let b = try v.lookup(1, "b").ino
        XCTAssertEqual(Set(try v.names(b)), ["g", "h", "a2"])
        let g = try v.lookup(b, "g"), h = try v.lookup(b, "h")
        XCTAssertEqual(g.ino, h.ino)
        XCTAssertEqual(g.nlink, 2)
        XCTAssertEqual(try v.readFile(g.ino), Array("two".utf8))
        try v.unlink(b, "g")
        XCTAssertEqual(try v.getattr(h.ino).nlink, 1)
        try v.close()
        let v2 = try home.openVolume(options: VolumeOptions())
        let b2 = try v2.lookup(1, "b").ino
        XCTAssertEqual(try v2.readFile(try v2.lookup(b2, "h").ino), Array("two".utf8))
    }

    func testLargeDirectoryIsPagedAndReloads() throws {
        let home = try temporaryHome(self)
        do {
            let v = try home.openVolume(options: VolumeOptions())
            for i in 0..<3000 { _ = try v.create(1, "file-\(i)", mode: 0o644, flags: O_WRONLY, uid: 0, gid: 0) }
            try v.close()
        }
        let v = try home.openVolume(options: VolumeOptions())
        XCTAssertEqual(try v.names(1).count, 3000)
        XCTAssertNotNil(try? v.lookup(1, "file-2999"))
    }

    func testHistoryAndPastVersions() throws {
        let home = try temporaryHome(self)
        let v = try home.openVolume(options: VolumeOptions())
        try v.writeFile(1, "f", Array("v1".utf8))
        try v.commit()
        let first = try home.currentVersion()
        try v.writeFile(1, "f", Array("v2".utf8))
        try v.commit()
        try v.close()
        let versions = try History(home: home).versions(from: home.currentVersion())
        XCTAssertEqual(versions.count, 3)  // init + two commits
        var options = VolumeOptions()
        options.version = first.link.hash
        let past = try home.openVolume(options: options)
        XCTAssertTrue(past.isReadOnly)
        XCTAssertEqual(try past.readFile(try past.lookup(1, "f").ino), Array("v1".utf8))
        XCTAssertThrowsError(try past.writeFile(1, "g", [1])) { XCTAssertEqual($0 as? FSError, .readOnly) }
        XCTAssertEqual(try History(home: home).prune(keepVersions: 1, keepSince: nil), 2)
        XCTAssertEqual(try History(home: home).versions(from: home.currentVersion()).count, 1)
    }
}

extension VolumeTests {
    /// Linux compares names as bytes: two spellings of "é" are two files, and stay two after a
    /// commit and a merge.
    func testNamesAreComparedAsBytes() throws {
        let home = try temporaryHome(self)
        let composed = "caf\u{e9}", decomposed = "cafe\u{301}"
        XCTAssertEqual(composed, decomposed, "Swift calls them equal; the filesystem must not")
        do {
            let v = try home.openVolume(options: VolumeOptions())
            try v.writeFile(1, composed, [1])
            try v.writeFile(1, decomposed, [2])
            XCTAssertEqual(try v.names(1).count, 2)
            try v.close()
        }
        let v = try home.openVolume(options: VolumeOptions())
        XCTAssertEqual(try v.names(1).count, 2)
        XCTAssertEqual(try v.readFile(try v.lookup(1, composed).ino), [1])
        XCTAssertEqual(try v.readFile(try v.lookup(1, decomposed).ino), [2])
    }
}
