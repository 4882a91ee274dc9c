import Foundation
import Glibc
import TestSupport
import XCTest

/// Data that was fsync'd survives the mount process being killed outright (SIGKILL: no unmount, no final
/// commit), and the store stays consistent.
final class DurabilityTests: MountTestCase {
    func testFsyncedDataSurvivesSIGKILL() throws {
        try initHome()
        try mount()
        // Something committed by an unmount first, so the kill happens on a store with history.
        Files.write(mnt + "/before.txt", "committed at unmount\n")
        try remount()

        let expected = py("""
        import os, sys, hashlib, random
        d = sys.argv[1]
        os.mkdir(os.path.join(d, "docs"))
        rnd = random.Random(99)
        big = rnd.randbytes(3 * 1024 * 1024 + 11)
        with open(os.path.join(d, "docs", "fsynced.bin"), "wb") as f:
            f.write(big)
            f.flush()
            os.fsync(f.fileno())
        with open(os.path.join(d, "small-fsynced.txt"), "w") as f:
            f.write("small and durable\\n")
            f.flush()
            os.fdatasync(f.fileno())
        # An update in place, fsync'd.
        with open(os.path.join(d, "before.txt"), "r+b") as f:
            f.seek(0)
            f.write(b"COMMITTED")
            os.fsync(f.fileno())
        print(hashlib.sha256(big).hexdigest())
        """, [mnt])
        sh("head -c 200000 /dev/urandom > '\(root)/dd-src' && dd if='\(root)/dd-src' of='\(mnt)/dd.bin' bs=64k conv=fsync status=none")
        // Unsynced writes right before the kill: may be lost, must not damage anything.
        Files.write(mnt + "/unsynced.txt", "maybe lost\n")

        guard let pid = daemonPID() else {
            throw StopTest("cannot find the mount daemon's pid (no \(home)/mount.pid, no process naming \(mnt))")
        }
        XCTAssertEqual(kill(pid, SIGKILL), 0)
        XCTAssert(Mounts.waitForExit(pid, seconds: 10), "the daemon did not die from SIGKILL")
        // The dead mount answers ENOTCONN; clean it up as a person would.
        if Mounts.isMounted(mnt) { _ = runProcess("fusermount3", ["-u", mnt], timeout: 30) }
        if Mounts.isMounted(mnt) { _ = runProcess("umount", ["-l", mnt], timeout: 30) }
        XCTAssertFalse(Mounts.isMounted(mnt))

        let fsck1 = cdsfs(["fsck", "--home", home])
        XCTAssert(fsck1.succeeded, "fsck after SIGKILL: \(fsck1)")
        try mount()
        let got = sh("sha256sum < '\(mnt)/docs/fsynced.bin' | cut -d' ' -f1")
        XCTAssertEqual(got, expected, "the fsync'd file changed after SIGKILL")
        XCTAssertEqual(Files.readText(mnt + "/small-fsynced.txt"), "small and durable\n")
        XCTAssertEqual(Files.readText(mnt + "/before.txt"), "COMMITTED at unmount\n")
        sh("cmp '\(root)/dd-src' '\(mnt)/dd.bin'")
        if let unsynced = Files.readText(mnt + "/unsynced.txt") {
            XCTAssert(["", "maybe lost\n"].contains(unsynced), "an unsynced file that survived is torn: \(unsynced.debugDescription)")
        }
        unmount()
        let fsck2 = cdsfs(["fsck", "--home", home])
        XCTAssert(fsck2.succeeded, "fsck after remount: \(fsck2)")
    }
}
