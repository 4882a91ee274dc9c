import Foundation
import Glibc
import TestSupport
import XCTest

/// Unsaved changes are committed a few seconds after they happen, without fsync or unmount.
final class CommitIntervalTests: MountTestCase {
    func testCommitIntervalCommitsWithoutFsync() throws {
        try initHome()
        try mount(options: ["commit_interval=1"])
        let before = versions()
        // Nothing changed: no new versions appear while the mount sits idle.
        sleep(2)
        XCTAssertEqual(versions(), before, "an idle mount made versions")

        Files.write(mnt + "/unsynced.txt", "written without fsync\n")
        var after = before
        let deadline = Date().addingTimeInterval(3)
        while after.count <= before.count && Date() < deadline {
            usleep(200_000)
            after = versions()
        }
        XCTAssertGreaterThan(after.count, before.count, "no new version 3 s after a write with commit_interval=1")

        // A second change, again committed on its own.
        mkdir(mnt + "/dir", 0o755)
        Files.write(mnt + "/dir/second.txt", "second\n")
        sleep(3)
        let later = versions()
        XCTAssertGreaterThan(later.count, after.count, "the second change was not committed within 3 s")

        // The committed state is what a crash would leave: kill the daemon and look.
        if let pid = daemonPID() {
            kill(pid, SIGKILL)
            Mounts.waitForExit(pid, seconds: 10)
            if Mounts.isMounted(mnt) { _ = runProcess("fusermount3", ["-u", mnt], timeout: 30) }
            if Mounts.isMounted(mnt) { _ = runProcess("umount", ["-l", mnt], timeout: 30) }
            try mount()
            XCTAssertEqual(Files.readText(mnt + "/unsynced.txt"), "written without fsync\n")
            XCTAssertEqual(Files.readText(mnt + "/dir/second.txt"), "second\n")
        }
    }
}
