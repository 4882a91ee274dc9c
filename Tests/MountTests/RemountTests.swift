import Foundation
import Glibc
import TestSupport
import XCTest

/// Everything a person can see survives unmount and mount: contents, sizes, modes, mtimes, hard links
/// (link counts, one inode per link group within a mount), symbolic links, xattrs, large directories.
final class RemountTests: MountTestCase {
    func testEverythingSurvivesUnmountAndMount() throws {
        try initHome()
        try mount()
        SampleTree.make(at: src, seed: 7)
        // Copied with tar, not cp -a (which loses modes here: see testPosixACLXattrSetsTheModeOrIsRefused).
        sh("mkdir '\(mnt)/tree' && tar --xattrs --xattrs-include='user.*' -C '\(src)' -cf - . | tar --xattrs --xattrs-include='user.*' -C '\(mnt)/tree' -xpf -")
        // Built directly on the mount as well: a large directory (paged), xattrs on a directory and a
        // symlink target with odd characters, and times set on the mount itself.
        py("""
        import os, sys
        d = os.path.join(sys.argv[1], "big-dir")
        os.mkdir(d)
        for i in range(3000):
            with open(os.path.join(d, "entry-%05d" % i), "w") as f:
                f.write("x" * (i % 50))
        os.setxattr(d, "user.count", b"3000")
        os.symlink("target with spaces/and ünïcødé", os.path.join(sys.argv[1], "odd-link"))
        os.utime(os.path.join(d, "entry-00042"), ns=(1_234_567_890_123_456_789, 1_234_567_890_987_654_321))
        os.link(os.path.join(d, "entry-00007"), os.path.join(sys.argv[1], "outside-link"))
        os.chmod(os.path.join(d, "entry-00008"), 0o4751)
        os.utime(d, ns=(1_000_000_000_000_000_001, 1_000_000_000_000_000_001))
        """, [mnt])
        let before = TreeSnapshot(mnt)
        XCTAssert(before.errors.isEmpty, "\(before.errors)")
        assertSameTree(src, mnt + "/tree", [.contents, .modes, .times, .xattrs])
        checkLinks(before)

        try remount()
        let after = TreeSnapshot(mnt)
        assertSameTree(before, after, .all, "before and after remount:")
        checkLinks(after)
        XCTAssertEqual(after.entries["big-dir/entry-00042"]?.mtime, 1_234_567_890_987_654_321)
        XCTAssertEqual(after.entries["big-dir"]?.mtime, 1_000_000_000_000_000_001)
        XCTAssertEqual(after.entries["big-dir/entry-00008"]?.permissions, 0o4751)
        XCTAssertEqual(after.entries["odd-link"]?.target, "target with spaces/and ünïcødé")
        XCTAssertEqual(after.entries["big-dir"]?.xattrs["user.count"], Array("3000".utf8))
        XCTAssertEqual(after.entries.keys.filter { $0.hasPrefix("big-dir/") }.count, 3000)

        // A second round: change things, remount again.
        sh("""
        rm -r '\(mnt)/tree/many'
        mv '\(mnt)/tree/a' '\(mnt)/big-dir/a-moved'
        echo appended >> '\(mnt)/outside-link'
        setfattr -x user.color '\(mnt)/tree/hello.txt'
        rm '\(mnt)/big-dir/entry-0100'*
        """)
        let before2 = TreeSnapshot(mnt)
        try remount()
        assertSameTree(before2, TreeSnapshot(mnt), .all, "second remount:")
        XCTAssertEqual(Files.readText(mnt + "/big-dir/entry-00007"), "xxxxxxx" + "appended\n")
    }

    /// A file changed in place (not just created) keeps the mtime that stat showed while mounted. With the
    /// writeback cache the kernel owns mtime; if the daemon also stamps "now" on the WRITE that the kernel
    /// sends at close, the committed time is later than the one the kernel reported.
    func testRewrittenFileKeepsItsMtimeAcrossRemount() throws {
        try initHome()
        try mount()
        sh("""
        cd '\(mnt)'
        for i in $(seq 1 10); do
          printf 'xxxxxxxxxx' > f$i
          printf 'y' | dd of=f$i bs=1 seek=3 conv=notrunc status=none
          printf 'first' > g$i && printf 'second' > g$i
        done
        """)
        let before = TreeSnapshot(mnt)
        try remount()
        let after = TreeSnapshot(mnt)
        assertSameTree(before, after, .all, "files written twice:")
        XCTAssertEqual(Files.readText(mnt + "/f1"), "xxxyxxxxxx")
    }

    /// A write by root (CAP_FSETID) keeps set-user-ID and set-group-ID bits, as on native filesystems; the
    /// kernel clears them itself for other writers. Checked after remount, since the kernel's cached
    /// attributes hide what the daemon recorded.
    func testSetuidBitSurvivesAWriteByRoot() throws {
        try initHome()
        try mount()
        let steps = """
        printf 'hello' > prog && chmod 4755 prog && printf 'more' >> prog
        printf 'hello' > sgid && chmod 2775 sgid && printf 'x' | dd of=sgid bs=1 seek=1 conv=notrunc status=none
        stat -c '%n %a' prog sgid
        """
        sameSteps(steps, in: native, and: mnt)
        try remount()
        XCTAssertEqual(sh("stat -c '%n %a' prog sgid", cwd: mnt), "prog 4755\nsgid 2775\n", "after remount")
    }

    /// Within one mount, the paths of a hard link group share one inode and report the group's size as
    /// their link count; different files have different inodes.
    func checkLinks(_ s: TreeSnapshot, file: StaticString = #filePath, line: UInt = #line) {
        let groups = s.linkGroups()
        XCTAssertEqual(groups["tree/hello.txt"], ["tree/a/b/hard2", "tree/a/hard1", "tree/hello.txt"], file: file, line: line)
        XCTAssertEqual(groups["outside-link"], ["big-dir/entry-00007", "outside-link"], file: file, line: line)
        XCTAssertEqual(s.entries["tree/hello.txt"]?.nlink, 3, file: file, line: line)
        XCTAssertEqual(s.entries["outside-link"]?.nlink, 2, file: file, line: line)
        XCTAssertEqual(s.entries["tree/one"]?.nlink, 1, file: file, line: line)
        var inodes: [UInt64: String] = [:]
        for (path, e) in s.entries {
            if let other = inodes[e.inode], groups[path] != groups[other] || e.kind == .directory {
                XCTFail("\(path) and \(other) share inode \(e.inode) but are not hard links", file: file, line: line)
            }
            inodes[e.inode] = path
        }
    }
}
