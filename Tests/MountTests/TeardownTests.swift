import Foundation
import Glibc
import TestSupport
import XCTest

/// The teardown's promise: whatever state a test leaves its mount in, nothing stays mounted (teardown
/// fails the test otherwise).
final class TeardownTests: MountTestCase {
    /// A test that stops with its folder still mounted (an assertion failed halfway).
    func testAMountLeftMountedIsUnmounted() throws {
        try initHome()
        try mount()
        Files.write(mnt + "/file", "x")
    }

    /// A test whose daemon died: the mount is dead (ENOTCONN) and only fusermount3 -u / umount -l help.
    func testADeadMountIsCleanedUp() throws {
        try initHome()
        try mount()
        guard let pid = daemonPID() else { throw StopTest("no daemon pid") }
        kill(pid, SIGKILL)
        XCTAssert(Mounts.waitForExit(pid, seconds: 10))
        XCTAssert(Mounts.isMounted(mnt), "a killed daemon leaves a dead mount in the table")
        var st = stat()
        XCTAssertEqual(stat(mnt, &st), -1)
        // "Transport endpoint is not connected", or "Software caused connection abort" when the kernel
        // has marked the connection aborted.
        XCTAssert(["ENOTCONN", "ECONNABORTED"].contains(errnoName(errno)), "stat on a dead mount: \(errnoName(errno))")
    }
}
