import Foundation
import Glibc
import TestSupport
import XCTest

/// Ordinary tools on the mount, each compared with the same steps on a native directory.
final class OrdinaryToolsTests: MountTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        try initHome()
        try mount()
    }

    /// `cp -a` of a varied tree: `diff -r` finds nothing, and the copy matches a native `cp -a` in every
    /// aspect (modes, times, links, xattrs); still so after unmount and mount.
    func testCopyArchiveMatchesNativeCopy() throws {
        SampleTree.make(at: src)
        sh("cp -a '\(src)/.' '\(mnt)/copy' && cp -a '\(src)/.' '\(native)/copy'")
        sh("diff -r --no-dereference '\(src)' '\(mnt)/copy'")
        assertSameTree(native + "/copy", mnt + "/copy", .all)
        assertSameTree(src, mnt + "/copy", [.contents, .modes, .times, .xattrs])
        try remount()
        assertSameTree(native + "/copy", mnt + "/copy", .all, "after remount:")
    }

    /// cp -a (coreutils) sets permissions by writing the ACL xattr system.posix_acl_access when the
    /// source filesystem has ACLs. The mount must either apply it to the mode, as native filesystems do,
    /// or refuse it (EOPNOTSUPP), so that cp falls back to chmod. Accepting it and ignoring it loses modes.
    func testPosixACLXattrSetsTheModeOrIsRefused() throws {
        // A minimal ACL: user::rw-, group::r--, other::r-- (= 0644).
        let program = """
        import os, sys, errno
        p = sys.argv[1]
        open(p, "w").close()
        os.chmod(p, 0o600)
        acl = bytes.fromhex("02000000" "01000600ffffffff" "04000400ffffffff" "20000400ffffffff")
        try:
            os.setxattr(p, "system.posix_acl_access", acl)
            print("accepted", oct(os.stat(p).st_mode & 0o7777))
        except OSError as e:
            print("refused", errno.errorcode[e.errno])
        """
        let native = py(program, [self.native + "/f"])
        XCTAssertEqual(native, "accepted 0o644\n", "test setup: the native filesystem should apply the ACL")
        let mounted = py(program, [mnt + "/f"])
        XCTAssert(mounted == "accepted 0o644\n" || mounted.hasPrefix("refused EOPNOTSUPP") || mounted.hasPrefix("refused ENOTSUP"),
                  "system.posix_acl_access: \(mounted.trimmingCharacters(in: .whitespacesAndNewlines)) (cp -a loses modes)")
    }

    /// `tar x` onto the mount and `tar c` back: the listings and the contents round-trip.
    func testTarRoundTrip() throws {
        SampleTree.make(at: src)
        let tarball = root + "/in.tar"
        sh("tar --xattrs --xattrs-include='user.*' --sort=name -cf '\(tarball)' -C '\(src)' .")
        for dir in [mnt, native] {
            sh("""
            mkdir '\(dir)/x'
            tar --xattrs --xattrs-include='user.*' -xpf '\(tarball)' -C '\(dir)/x'
            tar --xattrs --xattrs-include='user.*' --sort=name -cf '\(dir == mnt ? root + "/back-mnt.tar" : root + "/back-native.tar")' -C '\(dir)/x' .
            """)
        }
        assertSameTree(native + "/x", mnt + "/x", .all)
        // The listings (names, modes, owners, sizes, times, link targets, hard links) are identical.
        let listing = "tar --full-time -tvf"
        let original = sh("\(listing) '\(tarball)'")
        let fromMount = sh("\(listing) '\(root)/back-mnt.tar'")
        let fromNative = sh("\(listing) '\(root)/back-native.tar'")
        XCTAssertEqual(fromNative, original, "tar c of a native extraction should list what went in (test setup)")
        XCTAssertEqual(fromMount, original, "tar c from the mount lists something else than went in")
        // And the bytes: extract the mount's tar natively and compare with the source.
        sh("mkdir '\(root)/y' && tar --xattrs --xattrs-include='user.*' -xpf '\(root)/back-mnt.tar' -C '\(root)/y'")
        assertSameTree(src, root + "/y", .all)
    }

    /// `rsync -a` into the mount; a second, checksumming dry run finds nothing to change.
    func testRsyncThenChecksumDryRunIsEmpty() throws {
        SampleTree.make(at: src)
        for dir in [mnt, native] { sh("rsync -aHX '\(src)/' '\(dir)/r/'") }
        let check = "rsync -aHX --checksum --dry-run --itemize-changes '\(src)/' "
        XCTAssertEqual(sh(check + "'\(native)/r/'"), "", "test setup: native rsync is not idempotent")
        XCTAssertEqual(sh(check + "'\(mnt)/r/'"), "", "rsync wants to change files it has just copied into the mount")
        assertSameTree(native + "/r", mnt + "/r", .all)
        // An update: change a few files, rsync again, compare.
        sh("echo changed >> '\(src)/hello.txt' && rm '\(src)/one' && mkdir '\(src)/new' && echo n > '\(src)/new/n'")
        for dir in [mnt, native] { sh("rsync -aHX --delete '\(src)/' '\(dir)/r/'") }
        XCTAssertEqual(sh(check + "--delete '\(mnt)/r/'"), "")
        // (rsync leaves a new directory's mtime at "now", natively too: not compared.)
        assertSameTree(native + "/r", mnt + "/r", [.contents, .modes, .fileTimes, .symlinkTimes, .links, .xattrs])
    }

    /// git init / add / commit / log / status / gc / fsck on a small repository; with fixed dates the
    /// commit hashes are the same as in a native repository.
    func testGitRepository() throws {
        let env = ["GIT_AUTHOR_DATE": "2024-01-02T03:04:05Z", "GIT_COMMITTER_DATE": "2024-01-02T03:04:05Z",
                   "GIT_CONFIG_NOSYSTEM": "1", "HOME": root]
        let steps = """
        g() { git -c user.name=Tester -c user.email=tester@example.com -c init.defaultBranch=main -c core.fsync=all "$@"; }
        g init -q repo
        cd repo
        mkdir -p src docs
        for i in $(seq 1 40); do echo "line $i of file $i" > src/file$i.txt; done
        printf '#!/bin/sh\\necho hi\\n' > run.sh; chmod +x run.sh
        ln -s src/file1.txt link
        g add -A && g commit -q -m "first"
        for i in $(seq 1 10); do echo "more $i" >> src/file$i.txt; done
        git rm -q src/file40.txt
        git mv src/file39.txt docs/moved.txt
        g add -A && g commit -q -m "second"
        g checkout -q -b topic
        echo topic > topic.txt && g add topic.txt && g commit -q -m "topic"
        g checkout -q main
        g merge -q --no-edit topic
        g gc -q
        g fsck --full --strict 2>&1
        g log --format='%H %s'
        g status --porcelain
        g ls-files -s | sha256sum
        """
        sameSteps(steps, in: mnt, and: native, environment: env)
        let status = sh("git status --porcelain", cwd: mnt + "/repo", environment: env)
        XCTAssertEqual(status, "", "git status is not clean on the mount")
        try remount()
        sameSteps("cd repo && git fsck --full --strict 2>&1 && git log --format='%H %s' && git status --porcelain",
                  in: mnt, and: native, environment: env)
        // Everything but the index, which records inode numbers and ctimes.
        var a = TreeSnapshot(native + "/repo"), b = TreeSnapshot(mnt + "/repo")
        a.entries[".git/index"] = nil
        b.entries[".git/index"] = nil
        assertSameTree(a, b, [.contents, .modes, .links])
    }

    /// sqlite3: 3000 inserts in 30 transactions (rollback journal and WAL); integrity_check is ok, and the
    /// dump equals the native database's.
    func testSqliteTransactions() throws {
        var sql = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, value REAL, blob BLOB);\nCREATE INDEX t_name ON t(name);\n"
        for tx in 0..<30 {
            sql += "BEGIN;\n"
            for i in 0..<100 {
                let n = tx * 100 + i
                sql += "INSERT INTO t (name, value, blob) VALUES ('name-\(n % 97)-\(n)', \(n).5, zeroblob(\(n % 700)));\n"
            }
            if tx % 7 == 3 { sql += "UPDATE t SET value = value * 2 WHERE id % 5 = 0;\n" }
            if tx % 11 == 5 { sql += "DELETE FROM t WHERE id % 13 = 0;\n" }
            sql += "COMMIT;\n"
        }
        try sql.write(toFile: root + "/inserts.sql", atomically: true, encoding: .utf8)
        let steps = """
        sqlite3 journal.db < '\(root)/inserts.sql'
        sqlite3 wal.db 'PRAGMA journal_mode=WAL;' > /dev/null
        sqlite3 wal.db < '\(root)/inserts.sql'
        for db in journal.db wal.db; do
          sqlite3 $db 'PRAGMA integrity_check;'
          sqlite3 $db 'SELECT count(*), sum(value), sum(length(blob)) FROM t;'
          sqlite3 $db .dump | sha256sum
        done
        """
        sameSteps(steps, in: mnt, and: native)
        let check = sh("sqlite3 journal.db 'PRAGMA integrity_check;'", cwd: mnt)
        XCTAssertEqual(check, "ok\n")
        try remount()
        sameSteps("for db in journal.db wal.db; do sqlite3 $db 'PRAGMA integrity_check;' 'SELECT count(*) FROM t;'; sqlite3 $db .dump | sha256sum; done",
                  in: mnt, and: native)
    }

    /// An editor's save: write a temporary file, fsync it, rename it over the original, fsync the
    /// directory. Readers see the new contents at once and after a remount; the old inode is gone.
    func testEditorStyleSave() throws {
        let program = """
        import os, sys
        d = sys.argv[1]
        p = os.path.join(d, "document.txt")
        with open(p, "w") as f: f.write("version 1\\n" * 100)
        os.chmod(p, 0o640)
        for v in range(2, 6):
            tmp = os.path.join(d, ".document.txt.swp")
            with open(tmp, "w") as f:
                f.write(("version %d\\n" % v) * (100 + v))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o640)
            tmp_ino = os.stat(tmp).st_ino
            os.rename(tmp, p)
            assert os.stat(p).st_ino == tmp_ino, "rename did not carry the new file's inode"
            dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(dfd)
            os.close(dfd)
            with open(p) as f: assert f.read() == ("version %d\\n" % v) * (100 + v), "read after rename"
        assert sorted(os.listdir(d)) == ["document.txt"], os.listdir(d)
        print(open(p).read().count("version 5"))
        """
        XCTAssertEqual(py(program, [mnt]), "105\n")
        XCTAssertEqual(py(program, [native]), "105\n")
        assertSameTree(native, mnt, [.contents, .modes, .links, .xattrs])
        try remount()
        assertSameTree(native, mnt, [.contents, .modes, .links, .xattrs], "after remount:")
    }

    /// ln -s, ln, mv across directories, chmod, touch -d, setfattr/getfattr: the same steps natively and on
    /// the mount give the same tree (times included) and the same tool output.
    func testLinksMovesModesTimesAndXattrs() throws {
        let steps = """
        mkdir -p d1/sub d2
        echo "first file" > d1/f
        echo "second" > d1/sub/g
        ln -s /nonexistent/target d2/dangling
        ln d1/f d2/hard
        mv d1/sub d2/sub-moved
        mv d1/f d2/sub-moved/f-moved
        ln -s sub-moved/f-moved d2/sym
        chmod 600 d2/hard
        chmod 751 d2
        chmod u+s,g+s d2/sub-moved/g 2>/dev/null || chmod 755 d2/sub-moved/g
        touch -d '2001-02-03 04:05:06.123456789' d2/sub-moved/g
        touch -h -d '2002-02-02 02:02:02' d2/sym
        setfattr -n user.color -v red d2/hard
        setfattr -n user.tag -v 0x00ff10 d2/sub-moved/g
        setfattr -n user.dirattr -v on d2
        setfattr -n user.gone -v x d2/hard && setfattr -x user.gone d2/hard
        cat d2/sym
        readlink d2/sym d2/dangling
        stat -c '%n %h %a %s' d2/hard d2/sub-moved/f-moved d2/sub-moved/g
        stat -c '%n %Y' d2/sub-moved/g
        getfattr -d -m 'user\\.' --absolute-names d2/hard d2/sub-moved/f-moved d2/sub-moved/g d2 | sort
        [ "$(stat -c %i d2/hard)" = "$(stat -c %i d2/sub-moved/f-moved)" ] && echo same-inode
        mv d2/sub-moved d1/back
        touch -d '1999-12-31 23:59:59' d1 d2
        ls -lA --time-style=+%s d1 d1/back d2 | awk 'NF > 3 {print $1, $2, $7, $8, $9}'
        """
        sameSteps(steps, in: native, and: mnt)
        // Times of what the steps did not set are "now" and differ between the two runs (the output above
        // shows only times that touch set); compare the rest, and the times that touch set.
        assertSameTree(native, mnt, .allButTimes)
        let touched = ["d1", "d2", "d1/back/g", "d2/sym"]
        func times(_ s: TreeSnapshot) -> [Int64?] { touched.map { s.entries[$0]?.mtime } }
        XCTAssertEqual(times(TreeSnapshot(mnt)), times(TreeSnapshot(native)))
        let before = TreeSnapshot(mnt)
        try remount()
        assertSameTree(native, mnt, .allButTimes, "after remount:")
        assertSameTree(before, TreeSnapshot(mnt), .all, "the mount before and after remount:")
    }

    /// Writes at random offsets, overwrites, truncates, and a sparse file with a 64 MiB hole.
    func testRandomOffsetWritesAndSparseFile() throws {
        let program = """
        import os, random, hashlib, sys
        d = sys.argv[1]
        rnd = random.Random(1234)
        p = os.path.join(d, "random-offsets.bin")
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
        for i in range(400):
            off = rnd.randrange(0, 3 * 1024 * 1024)
            n = rnd.choice([1, 7, 512, 4096, 4097, 65536, 200000])
            os.pwrite(fd, rnd.randbytes(n), off)
            if i % 97 == 0:
                os.ftruncate(fd, rnd.randrange(0, 4 * 1024 * 1024))
        os.close(fd)
        sp = os.path.join(d, "sparse.bin")
        with open(sp, "wb") as f:
            f.write(b"start")
            f.seek(64 * 1024 * 1024)
            f.write(b"end")
        with open(os.path.join(d, "extended.bin"), "wb") as f:
            f.write(b"abc")
            f.truncate(5 * 1024 * 1024 + 3)
        with open(sp, "rb") as f:
            assert f.read(5) == b"start"
            f.seek(64 * 1024 * 1024 - 4)
            assert f.read(7) == b"\\0\\0\\0\\0end"
        for name in sorted(os.listdir(d)):
            q = os.path.join(d, name)
            h = hashlib.sha256()
            with open(q, "rb") as f:
                while True:
                    b = f.read(1 << 20)
                    if not b: break
                    h.update(b)
            print(name, os.stat(q).st_size, h.hexdigest())
        """
        let fromMount = py(program, [mnt])
        let fromNative = py(program, [native])
        XCTAssertEqual(fromMount, fromNative)
        XCTAssert(fromMount.contains("sparse.bin 67108867 "), fromMount)
        try remount()
        assertSameTree(native, mnt, [.contents, .modes], "after remount:")
    }

    /// mmap: map a file shared, change it in place, flush, close, read it back (also after a remount).
    func testMmapWrites() throws {
        let program = """
        import mmap, os, sys, hashlib
        d = sys.argv[1]
        p = os.path.join(d, "mapped.bin")
        with open(p, "wb") as f:
            f.write(bytes(range(256)) * 4096)     # 1 MiB
        with open(p, "r+b") as f:
            m = mmap.mmap(f.fileno(), 0)
            for off in (0, 4095, 4096, 123457, 1048575):
                m[off] = (m[off] + 1) % 256
            m[500000:500016] = b"MMAP WAS HERE!!!"
            m.flush()
            m.close()
        with open(p, "rb") as f:
            data = f.read()
        assert data[500000:500016] == b"MMAP WAS HERE!!!", "mmap write not visible to read()"
        assert data[4095] == (4095 % 256 + 1) % 256
        # Grow the file, then map the new part.
        with open(p, "r+b") as f:
            f.truncate(2 * 1024 * 1024)
            m = mmap.mmap(f.fileno(), 0)
            m[2 * 1024 * 1024 - 5:] = b"tail!"
            m.flush()
            m.close()
        with open(p, "rb") as f:
            data = f.read()
        print(len(data), hashlib.sha256(data).hexdigest())
        """
        let fromMount = py(program, [mnt])
        XCTAssertEqual(fromMount, py(program, [native]))
        try remount()
        XCTAssertEqual(py("import hashlib,sys; d=open(sys.argv[1],'rb').read(); print(len(d), hashlib.sha256(d).hexdigest())",
                          [mnt + "/mapped.bin"]), fromMount, "after remount")
    }
}
