import Foundation
import Glibc
import TestSupport
import XCTest

/// An entrusted backup key (`cdsfs key backup`) and `cdsfs init --restore` on a fresh home, against
/// a real `cdsfs serve`: the whole tree and its history come back.
final class EntrustedTests: SyncTestCase {
    override class var directoryPrefix: String { "cdsfs-entrust" }

    private func withPassphrase(_ arguments: [String], _ passphrase: String = "backup secret") -> ProcessResult {
        bash(([Paths.cdsfs] + arguments).map { "'\($0)'" }.joined(separator: " "),
             environment: ["CDSFS_BACKUP_PASSPHRASE": passphrase])
    }

    func testRestoringFromTheBackupKeyGivesTheWholeTreeAndHistory() throws {
        let a = try makeDevice("alice", joining: false)
        try mount(a)
        try sh("cd '\(a.mnt)' && mkdir -p docs && echo one > docs/a.txt && head -c 700000 /dev/urandom > big.bin && ln -s docs/a.txt link")
        unmount(a)
        let backupFile = root + "/backup-key"
        let made = withPassphrase(["key", "backup", "--home", a.home, backupFile])
        XCTAssert(made.succeeded && made.stdout.contains("entrusted"), "\(made)")
        XCTAssertEqual(String(format: "%o", (try FileManager.default.attributesOfItem(atPath: backupFile)[.posixPermissions] as? Int) ?? 0), "600")
        // Changes after the backup was made reach it too (the mount pushes them).
        try mount(a)
        try sh("cd '\(a.mnt)' && echo two >> docs/a.txt && echo later > later.txt")
        unmount(a)
        let expected = try XCTUnwrap(treeAfterMount(a))
        let history = try versions(a)
        XCTAssertGreaterThanOrEqual(history.count, 3)

        // Wrong passphrase, and a key nothing was sent to: one line each, no home made.
        let wrong = withPassphrase(["init", "--home", root + "/x", "--restore", backupFile, "--remote", server.url], "nope")
        XCTAssertFalse(wrong.succeeded)
        XCTAssert(wrong.stderr.contains("wrong passphrase for \(backupFile)"), wrong.stderr)
        let stranger = root + "/stranger-key"
        try must(["init", "--home", root + "/stranger"])
        try must(["key", "export", "--home", root + "/stranger", stranger])
        let nothing = cdsfs(["init", "--home", root + "/y", "--restore", stranger, "--remote", server.url])
        XCTAssertFalse(nothing.succeeded)
        XCTAssert(nothing.stderr.contains("no backup of"), nothing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/y/key-pair"))

        // The restore: a new device with the same versions and the same tree.
        let fresh = Device(name: "restored", home: root + "/home-restored", mnt: root + "/mnt-restored")
        Files.mkdirs(fresh.mnt)
        let restored = withPassphrase(["init", "--home", fresh.home, "--restore", backupFile, "--remote", server.url])
        XCTAssert(restored.succeeded && restored.stdout.contains("restored version \(history[0])"), "\(restored)")
        XCTAssertEqual(try versions(fresh), history, "the whole history")
        XCTAssert(cdsfs(["fsck", "--home", fresh.home], timeout: 300).succeeded)
        try mount(fresh)
        XCTAssertEqual(tree(fresh.mnt), expected)
        XCTAssertEqual(Files.readText(fresh.mnt + "/docs/a.txt"), "one\ntwo\n")
        // The restored device goes on: it can commit on top.
        try sh("echo new > '\(fresh.mnt)/after-restore.txt'")
        unmount(fresh)
        XCTAssertEqual(try versions(fresh).dropFirst().first, history[0])
    }

    /// The tree of a device's folder, read through a mount.
    private func treeAfterMount(_ d: Device) throws -> String? {
        try mount(d)
        defer { unmount(d) }
        return tree(d.mnt)
    }
}
