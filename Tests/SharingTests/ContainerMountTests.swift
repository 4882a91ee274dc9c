import Foundation
import Glibc
import TestSupport
import XCTest

/// Containers through a real mount: `setfattr -n user.cdsfs.container` and `cdsfs share` make a
/// folder a container, its contents and history stay, and it can be made an ordinary folder again.
final class ContainerMountTests: MountTestCase {
    override class var directoryPrefix: String { "cdsfs-container" }

    /// The tree under a directory as a sorted listing with content hashes (nil if unreadable).
    private func tree(_ directory: String) -> String? {
        let r = treeListing(directory)
        return r.succeeded ? r.stdout : nil
    }

    private func containerID(_ path: String) -> String? {
        let r = bash("getfattr --only-values -n user.cdsfs.container '\(path)'")
        return r.succeeded ? r.stdout : nil
    }

    func testAFolderBecomesAContainerAndBackKeepingContentsAndHistory() throws {
        try initHome()
        try mount()
        sh("""
        cd '\(mnt)' && mkdir -p Projects/src Other && echo plan > Projects/plan.txt && ln -s plan.txt Projects/link
        head -c 3000000 /dev/urandom > Projects/src/big.bin && echo private > Other/secret.txt
        """)
        unmount()
        let plainVersion = try XCTUnwrap(versions().first)
        try mount()
        let original = try XCTUnwrap(tree(mnt + "/Projects"))
        XCTAssertNil(containerID(mnt + "/Projects"))

        sh("setfattr -n user.cdsfs.container -v 1 '\(mnt)/Projects'")
        let id = try XCTUnwrap(containerID(mnt + "/Projects"))
        XCTAssertTrue(isHex64(id), id)
        XCTAssertFalse(sh("getfattr -d -m - '\(mnt)/Projects'").contains("cdsfs"), "control names are not listed")
        // A copy is an ordinary folder: the control attribute is neither listed nor copied.
        sh("cp -a '\(mnt)/Projects' '\(mnt)/Copy'")
        XCTAssertNil(containerID(mnt + "/Copy"))
        XCTAssertEqual(tree(mnt + "/Copy"), original)
        // Refused: a file, the top, a second time, a bad value.
        XCTAssertFalse(bash("setfattr -n user.cdsfs.container -v 1 '\(mnt)/Projects/plan.txt'").succeeded)
        XCTAssertFalse(bash("setfattr -n user.cdsfs.container -v 1 '\(mnt)'").succeeded)
        XCTAssertFalse(bash("setfattr -n user.cdsfs.container -v 1 '\(mnt)/Projects'").succeeded)
        XCTAssertFalse(bash("setfattr -n user.cdsfs.container -v 2 '\(mnt)/Other'").succeeded)
        XCTAssertNil(containerID(mnt + "/Other"))

        // Survives a remount, then changes inside it are committed as before.
        try remount()
        XCTAssertEqual(containerID(mnt + "/Projects"), id)
        XCTAssertEqual(tree(mnt + "/Projects"), original)
        sh("echo more >> '\(mnt)/Projects/plan.txt' && echo new > '\(mnt)/Projects/src/new.txt'")
        try remount()
        XCTAssertEqual(Files.readText(mnt + "/Projects/plan.txt"), "plan\nmore\n")
        XCTAssertEqual(Files.readText(mnt + "/Projects/src/new.txt"), "new\n")
        let changed = try XCTUnwrap(tree(mnt + "/Projects"))
        unmount()
        let r = fsck()
        XCTAssert(r.succeeded, "fsck follows the container: \(r)")

        // The past: before the container, the folder as it was and no container.
        try mount(extra: ["--at", plainVersion])
        XCTAssertEqual(tree(mnt + "/Projects"), original)
        XCTAssertNil(containerID(mnt + "/Projects"))
        unmount()

        // Dissolved: an ordinary folder with the same contents, also after a remount.
        try mount()
        sh("setfattr -x user.cdsfs.container '\(mnt)/Projects'")
        XCTAssertNil(containerID(mnt + "/Projects"))
        try remount()
        XCTAssertNil(containerID(mnt + "/Projects"))
        XCTAssertEqual(tree(mnt + "/Projects"), changed)
        XCTAssertEqual(Files.readText(mnt + "/Other/secret.txt"), "private\n")
        unmount()
        XCTAssert(fsck().succeeded)
    }

    /// `cdsfs share PATH CONTACT` makes the container and records the contact as its recipient.
    func testShareMakesAContainerAndRecordsTheRecipient() throws {
        let bobHome = root + "/bob"
        let bob = try initHome(bobHome)
        try initHome()
        let contact = cdsfs(["contact", "add", "--home", home, "bob", bob, "--store", "file://\(bobHome)/store"])
        XCTAssert(contact.succeeded, "\(contact)")

        // Not mounted: one line saying so.
        sh("mkdir -p '\(root)/plain'")
        var r = cdsfs(["share", "--home", home, root + "/plain", "bob"])
        XCTAssertFalse(r.succeeded)
        XCTAssert(r.stderr.contains("is not inside a mounted cdsfs folder"), r.stderr)

        try mount()
        sh("mkdir -p '\(mnt)/Projects' && echo x > '\(mnt)/Projects/x' && echo y > '\(mnt)/file'")
        r = cdsfs(["share", "--home", home, mnt + "/Projects", "carol"])
        XCTAssertFalse(r.succeeded)
        XCTAssert(r.stderr.contains("carol is not a contact"), r.stderr)
        r = cdsfs(["share", "--home", home, mnt + "/Nothing", "bob"])
        XCTAssert(r.stderr.contains("does not exist"), r.stderr)
        r = cdsfs(["share", "--home", home, mnt + "/file", "bob"])
        XCTAssert(r.stderr.contains("is not a folder"), r.stderr)
        r = cdsfs(["share", "--home", home, mnt, "bob"])
        XCTAssert(r.stderr.contains("top cannot be shared"), r.stderr)
        r = cdsfs(["share", "--home", bobHome, mnt + "/Projects", "bob"])
        XCTAssertFalse(r.succeeded, "\(r)")

        r = cdsfs(["share", "--home", home, mnt + "/Projects", "bob"])
        XCTAssert(r.succeeded, "\(r)")
        XCTAssertNotNil(containerID(mnt + "/Projects"))
        XCTAssertEqual(sh("getfattr --only-values -n user.cdsfs.recipients '\(mnt)/Projects'"), "\(bob) r\n")
        try remount()
        XCTAssertEqual(sh("getfattr --only-values -n user.cdsfs.recipients '\(mnt)/Projects'"), "\(bob) r\n")
        XCTAssert(cdsfs(["share", "--home", home, mnt + "/Projects", "bob", "--write"]).succeeded)
        XCTAssertEqual(sh("getfattr --only-values -n user.cdsfs.recipients '\(mnt)/Projects'"), "\(bob) w\n")
        XCTAssertEqual(Files.readText(mnt + "/Projects/x"), "x\n")
    }
}
