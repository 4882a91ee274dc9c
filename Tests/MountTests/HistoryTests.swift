import Foundation
import Glibc
import TestSupport
import XCTest

/// `cdsfs log` lists the commits; `cdsfs mount --at` shows a past state, read-only.
final class HistoryTests: MountTestCase {
    func testLogListsCommitsAndPastVersionsMountReadOnly() throws {
        try initHome()
        let initial = versions()
        XCTAssertGreaterThanOrEqual(initial.count, 1, "init should leave one version")

        // Commit 1 (by unmount), commit 2 (by fsync), commit 3 (by unmount).
        try mount()
        sh("echo one > '\(mnt)/a.txt' && mkdir '\(mnt)/dir' && echo first > '\(mnt)/dir/f'")
        unmount()
        let v1 = versions()
        try mount()
        sh("echo two > '\(mnt)/a.txt' && echo second > '\(mnt)/b.txt' && rm -r '\(mnt)/dir'")
        py("import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)", [mnt + "/b.txt"])
        let v2 = versions()
        sh("echo three > '\(mnt)/a.txt' && ln -s a.txt '\(mnt)/link'")
        unmount()
        let v3 = versions()

        XCTAssertGreaterThan(v1.count, initial.count, "unmount after changes made no version")
        XCTAssertGreaterThan(v2.count, v1.count, "fsync made no version")
        XCTAssertGreaterThan(v3.count, v2.count, "unmount after more changes made no version")
        XCTAssertGreaterThanOrEqual(v3.count, initial.count + 3)
        XCTAssertEqual(Set(v3).count, v3.count, "a version is listed twice")
        // Newest first: the heads we saw are in order.
        let heads = [v1.first, v2.first, v3.first].compactMap { $0 }
        let positions = heads.compactMap { v3.firstIndex(of: $0) }
        XCTAssertEqual(positions.count, 3, "an earlier head is missing from the log")
        XCTAssertEqual(positions, positions.sorted(by: >), "log is not newest first")
        XCTAssertEqual(Array(v3.suffix(initial.count)), initial, "the first version should stay last")

        // The past, mounted read-only.
        try mount(extra: ["--at", v1[0]])
        XCTAssertEqual(Files.readText(mnt + "/a.txt"), "one\n")
        XCTAssertEqual(Files.readText(mnt + "/dir/f"), "first\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: mnt + "/b.txt"))
        assertReadOnly(mnt)
        unmount()
        XCTAssertEqual(versions(), v3, "mounting a past version changed the history")

        try mount(extra: ["--at", v2[0]])
        XCTAssertEqual(Files.readText(mnt + "/a.txt"), "two\n")
        XCTAssertEqual(Files.readText(mnt + "/b.txt"), "second\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: mnt + "/dir"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: mnt + "/link"))
        unmount()

        // The present is untouched.
        try mount()
        XCTAssertEqual(Files.readText(mnt + "/a.txt"), "three\n")
        XCTAssertEqual(TreeSnapshot.readLink(mnt + "/link"), "a.txt")
    }

    /// `--at` also takes a time: the newest version at or before it.
    func testMountAtATime() throws {
        try initHome()
        try mount()
        sh("echo early > '\(mnt)/t.txt'")
        unmount()
        sleep(2)
        let between = sh("date -u +%Y-%m-%dT%H:%M:%S").trimmingCharacters(in: .whitespacesAndNewlines)
        sleep(2)
        try mount()
        sh("echo late > '\(mnt)/t.txt'")
        unmount()
        try mount(extra: ["--at", between])
        XCTAssertEqual(Files.readText(mnt + "/t.txt"), "early\n", "--at \(between) did not pick the version before it")
        assertReadOnly(mnt)
    }

    /// `-o ro` refuses every change with EROFS.
    func testReadOnlyOption() throws {
        try initHome()
        try mount()
        sh("echo x > '\(mnt)/existing' && mkdir '\(mnt)/d'")
        unmount()
        let before = versions()
        try mount(options: ["ro"])
        XCTAssertEqual(Files.readText(mnt + "/existing"), "x\n")
        assertReadOnly(mnt)
        unmount()
        XCTAssertEqual(versions(), before, "a read-only mount made a version")
    }

    /// Every kind of change fails with EROFS ("Read-only file system"); nothing changes.
    func assertReadOnly(_ m: String, file: StaticString = #filePath, line: UInt = #line) {
        let before = TreeSnapshot(m)
        let r = bash("echo new > '\(m)/new-file'", cwd: m)
        XCTAssertFalse(r.succeeded, "writing to a read-only mount succeeded", file: file, line: line)
        XCTAssert(r.stderr.contains("Read-only file system"), "expected EROFS: \(r)", file: file, line: line)
        var probes: [(String, Int32)] = []
        let existing = before.entries.first { $0.value.kind == .file }?.key
        let dir = before.entries.first { $0.value.kind == .directory }?.key
        probes.append(("create", { let fd = open(m + "/created", O_WRONLY | O_CREAT, 0o644); if fd >= 0 { close(fd); return 0 }; return errno }()))
        probes.append(("mkdir", mkdir(m + "/newdir", 0o755) == 0 ? 0 : errno))
        probes.append(("symlink", symlink("x", m + "/newlink") == 0 ? 0 : errno))
        probes.append(("setxattr", Xattr.setxattr(m, "user.x", "v", 1, 0) == 0 ? 0 : errno))
        probes.append(("chmod root", chmod(m, 0o700) == 0 ? 0 : errno))
        if let existing {
            probes.append(("open for writing", { let fd = open(m + "/" + existing, O_WRONLY); if fd >= 0 { close(fd); return 0 }; return errno }()))
            probes.append(("truncate", truncate(m + "/" + existing, 0) == 0 ? 0 : errno))
            probes.append(("unlink", unlink(m + "/" + existing) == 0 ? 0 : errno))
            probes.append(("rename", rename(m + "/" + existing, m + "/renamed") == 0 ? 0 : errno))
            probes.append(("link", link(m + "/" + existing, m + "/hard") == 0 ? 0 : errno))
            probes.append(("chmod", chmod(m + "/" + existing, 0o600) == 0 ? 0 : errno))
            probes.append(("utimes", utimes(m + "/" + existing, nil) == 0 ? 0 : errno))
        }
        if let dir { probes.append(("rmdir", rmdir(m + "/" + dir) == 0 ? 0 : errno)) }
        for (what, code) in probes {
            XCTAssertEqual(errnoName(code), "EROFS", "\(what) on a read-only mount", file: file, line: line)
        }
        assertSameTree(before, TreeSnapshot(m), .all, "a read-only mount changed:", file: file, line: line)
    }
}
