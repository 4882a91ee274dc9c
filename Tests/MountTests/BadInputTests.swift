import Foundation
import Glibc
import TestSupport
import XCTest

/// Bad input: a corrupted object costs one file (EIO, the hash in the log), never the mount; commands
/// given something unusable say so in one line and exit non-zero.
final class MountBadInputTests: MountTestCase {
    func testCorruptChunkFailsThatFileOnlyAndFsckNamesIt() throws {
        try initHome()
        try mount()
        sh("""
        head -c 4194304 /dev/urandom > '\(mnt)/large.bin'
        head -c 40000 /dev/urandom > '\(mnt)/other.bin'
        echo 'small and fine' > '\(mnt)/small.txt'
        mkdir '\(mnt)/dir' && echo inner > '\(mnt)/dir/inner.txt'
        """)
        let otherSum = sh("sha256sum < '\(mnt)/other.bin'")
        unmount()
        XCTAssert(cdsfs(["fsck", "--home", home]).succeeded, "fsck before the damage")

        // The biggest object is a chunk of large.bin (other.bin is one 40 kB chunk, the rest is smaller).
        let objects = home + "/store/objects"
        var biggest: (path: String, size: Int) = ("", 0)
        let enumerator = FileManager.default.enumerator(atPath: objects)
        while let rel = enumerator?.nextObject() as? String {
            let attrs = try? FileManager.default.attributesOfItem(atPath: objects + "/" + rel)
            if attrs?[.type] as? FileAttributeType == .typeRegular, let size = attrs?[.size] as? Int, size > biggest.size {
                biggest = (objects + "/" + rel, size)
            }
        }
        XCTAssertGreaterThan(biggest.size, 64 * 1024, "no object larger than 64 KiB: where did the 4 MiB file go?")
        let parts = biggest.path.split(separator: "/").suffix(2)
        let hash = parts.joined()
        XCTAssert(isHex64(hash), "object path \(biggest.path) does not name a hash")
        // Flip one byte in the middle (objects may be read-only files).
        chmod(biggest.path, 0o644)
        let fd = open(biggest.path, O_RDWR)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var byte: UInt8 = 0
        let middle = off_t(biggest.size / 2)
        XCTAssertEqual(pread(fd, &byte, 1, middle), 1)
        byte ^= 0x5a
        XCTAssertEqual(pwrite(fd, &byte, 1, middle), 1)
        close(fd)

        let fsck = cdsfs(["fsck", "--home", home])
        XCTAssertFalse(fsck.succeeded, "fsck passed a corrupted store: \(fsck)")
        XCTAssert(fsck.stdout.contains("bad object \(hash)"), "fsck does not name \(hash): \(fsck)")

        try mount()
        let read = bash("cat '\(mnt)/large.bin' > /dev/null")
        XCTAssertFalse(read.succeeded, "reading a file with a corrupt chunk succeeded")
        XCTAssert(read.stderr.contains("Input/output error"), "expected EIO: \(read)")
        // Other files and the mount itself are fine.
        XCTAssertEqual(sh("sha256sum < '\(mnt)/other.bin'"), otherSum)
        XCTAssertEqual(Files.readText(mnt + "/small.txt"), "small and fine\n")
        XCTAssertEqual(Files.readText(mnt + "/dir/inner.txt"), "inner\n")
        XCTAssertEqual(sh("ls '\(mnt)'"), "dir\nlarge.bin\nother.bin\nsmall.txt\n")
        // Reading around the bad chunk: the start of the file may well be readable; a second attempt
        // fails the same way (no crash, no hang).
        let again = bash("cat '\(mnt)/large.bin' > /dev/null")
        XCTAssert(again.stderr.contains("Input/output error"), "second read: \(again)")
        let log = Files.readText(home + "/mount.log") ?? ""
        XCTAssert(log.contains(hash), "mount.log does not name the bad object \(hash):\n\(log.suffix(3000))")
        // The mount still takes writes.
        Files.write(mnt + "/after.txt", "still writable\n")
        XCTAssertEqual(Files.readText(mnt + "/after.txt"), "still writable\n")
    }

    func testMountFailuresSayOneLine() throws {
        try initHome()
        // A home that does not exist.
        var r = cdsfs(["mount", "--home", root + "/no-such-home", mnt], timeout: 60)
        assertOneLineFailure(r, "a missing home")
        XCTAssertFalse(Mounts.isMounted(mnt))
        // A mount point that is a regular file.
        let fileMountpoint = root + "/a-file"
        Files.write(fileMountpoint, "x")
        r = cdsfs(["mount", "--home", home, fileMountpoint], timeout: 60)
        assertOneLineFailure(r, "a mount point that is a file")
        XCTAssertFalse(Mounts.isMounted(fileMountpoint))
        // A mount point that does not exist.
        r = cdsfs(["mount", "--home", home, root + "/no-such-dir"], timeout: 60)
        assertOneLineFailure(r, "a missing mount point")
        // An already mounted (busy) mount point, with another home and with the same one.
        try mount()
        let home2 = root + "/home2"
        try initHome(home2)
        r = cdsfs(["mount", "--home", home2, mnt], timeout: 60)
        assertOneLineFailure(r, "a busy mount point (another home)")
        r = cdsfs(["mount", "--home", home, mnt], timeout: 60)
        assertOneLineFailure(r, "a busy mount point (the same home)")
        // The same home at a second mount point: one writer per home.
        let mnt2 = root + "/mnt2"
        Files.mkdirs(mnt2)
        r = cdsfs(["mount", "--home", home, mnt2], timeout: 60)
        if r.succeeded {
            Mounts.forceUnmount(mnt2)
            XCTFail("the same home mounted twice read-write (two writers on one private box)")
        } else {
            assertOneLineFailure(r, "the same home mounted twice")
        }
        // Unmounting while a program works inside: refused in one line, the mount stays.
        let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        let user = try ChildProcess("sleep", ["30"], cwd: mnt, stdout: devNull, stderr: devNull)
        usleep(300_000)
        r = cdsfs(["unmount", mnt], timeout: 60)
        assertOneLineFailure(r, "unmounting a busy folder")
        XCTAssert(Mounts.isMounted(mnt), "a refused unmount unmounted anyway")
        user.killGroup()
        close(devNull)
        // The first mount still works.
        Files.write(mnt + "/ok", "ok")
        XCTAssertEqual(Files.readText(mnt + "/ok"), "ok")
        // `cdsfs unmount` of something that is not mounted.
        r = cdsfs(["unmount", mnt2], timeout: 60)
        assertOneLineFailure(r, "unmounting a folder that is not mounted")
    }

    func testInitTwiceFails() throws {
        let first = cdsfs(["init", "--home", home])
        XCTAssert(first.succeeded, "\(first)")
        XCTAssert(first.stdoutLines.contains { isHex64($0) }, "init printed no actor id line: \(first)")
        let keyBefore = Files.read(home + "/key-pair")
        let second = cdsfs(["init", "--home", home])
        assertOneLineFailure(second, "init on an existing home")
        XCTAssertEqual(Files.read(home + "/key-pair"), keyBefore, "a second init changed the key pair")
    }

    func assertOneLineFailure(_ r: ProcessResult, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.succeeded, "\(what): succeeded: \(r)", file: file, line: line)
        XCTAssertFalse(r.timedOut, "\(what): hung", file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, "\(what): expected exactly one line on stderr: \(r)", file: file, line: line)
    }
}
