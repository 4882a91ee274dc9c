import Condensation
import Foundation
import Glibc
import TestSupport
import XCTest

/// The `cdsfs` binary with a passphrase-protected home: init, key show/passwd/export, and a mount
/// whose passphrase reaches the mount process through the environment of `cdsfs mount`.
final class PassphraseTests: XCTestCase {
    var directory = ""
    var home: String { directory + "/home" }
    var keyPath: String { home + "/key-pair" }

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: Paths.cdsfs) else {
            throw XCTSkip("no cdsfs binary at \(Paths.cdsfs) (build with --build-tests)")
        }
        var template = Array("/tmp/cdsfs-keys-XXXXXX".utf8CString)
        directory = String(cString: mkdtemp(&template)!)
    }

    override func tearDown() {
        if !directory.isEmpty { try? FileManager.default.removeItem(atPath: directory) }
    }

    // MARK: Running the binary

    /// Runs `cdsfs` with standard input /dev/null (no terminal to ask on) and an environment without
    /// any CDSFS_ variable but those given.
    func cdsfs(_ arguments: [String], _ environment: [String: String] = [:], timeout: Double = 120) -> ProcessResult {
        runProcess(Paths.cdsfs, arguments, environment: environment, clearing: "CDSFS_", timeout: timeout)
    }

    /// The command failed with exactly one line on standard error, which is `line`.
    func assertFails(_ r: ProcessResult, _ line: String, file: StaticString = #filePath, lineNumber: UInt = #line) {
        XCTAssertEqual(r.status, 1, "\(r)", file: file, line: lineNumber)
        XCTAssertEqual(r.stderr, "cdsfs: " + line + "\n", file: file, line: lineNumber)
    }

    var needed: String {
        "\(keyPath) is protected by a passphrase: set CDSFS_PASSPHRASE, give --passphrase-file FILE, or run on a terminal"
    }

    func keyFile() -> [UInt8] { [UInt8](FileManager.default.contents(atPath: keyPath) ?? Data()) }

    /// Every file under the store, with its size: passwd must leave them as they are.
    func storeListing() -> [String] {
        let root = home + "/store"
        let items = FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []
        return items.sorted().map { item in
            let attributes = try? FileManager.default.attributesOfItem(atPath: root + "/" + item)
            return "\(item) \((attributes?[.size] as? Int) ?? -1)"
        }
    }

    func mode(_ path: String) -> mode_t {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o7777 : 0
    }

    // MARK: Tests

    func testPassphraseLifecycle() throws {
        let old = ["CDSFS_PASSPHRASE": "old secret"]
        let new = ["CDSFS_PASSPHRASE": "new secret"]

        // init --passphrase with the variable: a wrapped key pair file, mode 0600.
        var r = cdsfs(["init", "--home", home, "--passphrase"], old)
        XCTAssertEqual(r.status, 0, "\(r)")
        let actor = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNotNil(Hash(hex: actor), r.stdout)
        XCTAssertTrue(WrappedKeyPair.isWrapped(keyFile()))
        XCTAssertEqual(mode(keyPath), 0o600)

        // Without a passphrase (no variable, no file, no terminal): one line, exit 1.
        assertFails(cdsfs(["key", "show", "--home", home]), needed)
        // With it: the actor id.
        r = cdsfs(["key", "show", "--home", home], old)
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertEqual(r.stdout, actor + "\n")
        // A wrong one says so.
        assertFails(cdsfs(["key", "show", "--home", home], new), "wrong passphrase for \(keyPath)")
        // From a file: its first line.
        let passphraseFile = directory + "/passphrase"
        FileManager.default.createFile(atPath: passphraseFile, contents: Data("old secret\nignored\n".utf8))
        r = cdsfs(["key", "show", "--home", home, "--passphrase-file", passphraseFile])
        XCTAssertEqual(r.stdout, actor + "\n", "\(r)")
        // The variable comes before the file.
        assertFails(cdsfs(["key", "show", "--home", home, "--passphrase-file", passphraseFile], new),
                    "wrong passphrase for \(keyPath)")
        // Other commands ask too.
        assertFails(cdsfs(["log", "--home", home]), needed)
        XCTAssertEqual(cdsfs(["log", "--home", home], old).status, 0)

        // passwd: the old passphrase no longer opens it, the new one does; the same actor; the store
        // untouched; still mode 0600.
        let storeBefore = storeListing()
        assertFails(cdsfs(["key", "passwd", "--home", home], old),
                    "no new passphrase: set CDSFS_NEW_PASSPHRASE, give --new-passphrase-file FILE, or run on a terminal")
        r = cdsfs(["key", "passwd", "--home", home], ["CDSFS_PASSPHRASE": "new secret", "CDSFS_NEW_PASSPHRASE": "x"])
        assertFails(r, "wrong passphrase for \(keyPath)")
        r = cdsfs(["key", "passwd", "--home", home], ["CDSFS_PASSPHRASE": "old secret", "CDSFS_NEW_PASSPHRASE": "new secret"])
        XCTAssertEqual(r.status, 0, "\(r)")
        assertFails(cdsfs(["key", "show", "--home", home], old), "wrong passphrase for \(keyPath)")
        XCTAssertEqual(cdsfs(["key", "show", "--home", home], new).stdout, actor + "\n")
        XCTAssertEqual(storeListing(), storeBefore, "passwd rewrote only the key pair file")
        XCTAssertEqual(mode(keyPath), 0o600)
        XCTAssertTrue(WrappedKeyPair.isWrapped(keyFile()))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: home).filter { $0.contains(".tmp") }, [],
                       "no temporary file left")

        // export: a plain Condensation key pair file, after the passphrase.
        let exported = directory + "/exported"
        assertFails(cdsfs(["key", "export", exported, "--home", home]), needed)
        XCTAssertFalse(FileManager.default.fileExists(atPath: exported))
        r = cdsfs(["key", "export", exported, "--home", home], new)
        XCTAssertEqual(r.status, 0, "\(r)")
        let plain = [UInt8](FileManager.default.contents(atPath: exported) ?? Data())
        XCTAssertFalse(WrappedKeyPair.isWrapped(plain))
        XCTAssertEqual(try KeyPair(fileBytes: plain).actor.hex, actor)
        XCTAssertEqual(mode(exported), 0o600)

        // --remove: the plain file again; then passwd adds a passphrase to a plain home.
        r = cdsfs(["key", "passwd", "--remove", "--home", home], new)
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertEqual(keyFile(), plain)
        XCTAssertEqual(cdsfs(["key", "show", "--home", home]).stdout, actor + "\n")
        assertFails(cdsfs(["key", "passwd", "--remove", "--home", home]), "\(keyPath) has no passphrase")
        r = cdsfs(["key", "passwd", "--home", home], ["CDSFS_NEW_PASSPHRASE": "third"])
        XCTAssertEqual(r.status, 0, "\(r)")
        assertFails(cdsfs(["key", "show", "--home", home]), needed)
        XCTAssertEqual(cdsfs(["key", "show", "--home", home], ["CDSFS_PASSPHRASE": "third"]).stdout, actor + "\n")
        XCTAssertEqual(storeListing(), storeBefore)
    }

    func testInitNeedsAPassphraseSource() throws {
        assertFails(cdsfs(["init", "--home", home, "--passphrase"]),
                    "--passphrase: set CDSFS_PASSPHRASE, give --passphrase-file FILE, or run on a terminal")
        XCTAssertFalse(FileManager.default.fileExists(atPath: keyPath), "no home was made")
        let empty = directory + "/empty"
        FileManager.default.createFile(atPath: empty, contents: Data("\n".utf8))
        assertFails(cdsfs(["init", "--home", home, "--passphrase-file", empty]), "the passphrase from \(empty) is empty")
        XCTAssertFalse(FileManager.default.fileExists(atPath: keyPath))
        // Without --passphrase the variable does not wrap anything.
        XCTAssertEqual(cdsfs(["init", "--home", home], ["CDSFS_PASSPHRASE": "unused"]).status, 0)
        XCTAssertFalse(WrappedKeyPair.isWrapped(keyFile()))
        XCTAssertEqual(cdsfs(["key", "show", "--home", home]).status, 0)
    }

    /// A wrapped home mounts with the variable set: mount, write, unmount, mount again, read.
    func testMountWrappedHome() throws {
        guard getuid() == 0, access("/dev/fuse", R_OK | W_OK) == 0 else { throw XCTSkip("needs root and /dev/fuse") }
        let env = ["CDSFS_PASSPHRASE": "mount secret"]
        XCTAssertEqual(cdsfs(["init", "--home", home, "--passphrase"], env).status, 0)
        let mountpoint = directory + "/mnt"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        defer { _ = cdsfs(["unmount", mountpoint]) }

        // Without the passphrase, or with a wrong one: one line, nothing mounted.
        assertFails(cdsfs(["mount", "--home", home, mountpoint]), needed)
        assertFails(cdsfs(["mount", "--home", home, mountpoint], ["CDSFS_PASSPHRASE": "nope"]), "wrong passphrase for \(keyPath)")
        XCTAssertFalse(Mounts.isMounted(mountpoint))

        var r = cdsfs(["mount", "--home", home, mountpoint], env)
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(Mounts.isMounted(mountpoint))
        // The mount process has the passphrase neither on its command line nor in its environment.
        if let pid = (try? String(contentsOfFile: home + "/mount.pid", encoding: .utf8)).flatMap({ Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
            let cmdline = (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let environ = (FileManager.default.contents(atPath: "/proc/\(pid)/environ")).map { String(decoding: $0, as: UTF8.self) } ?? ""
            XCTAssertFalse(cmdline.contains("mount secret"), cmdline)
            XCTAssertFalse(environ.contains("mount secret"))
            XCTAssertFalse(environ.contains("CDSFS_PASSPHRASE"))
        } else {
            XCTFail("no mount.pid")
        }
        let content = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        XCTAssertTrue(FileManager.default.createFile(atPath: mountpoint + "/file", contents: content))
        r = cdsfs(["unmount", mountpoint])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertFalse(Mounts.isMounted(mountpoint))

        r = cdsfs(["mount", "--home", home, mountpoint], env)
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertEqual(FileManager.default.contents(atPath: mountpoint + "/file"), content)
        r = cdsfs(["unmount", mountpoint])
        XCTAssertEqual(r.status, 0, "\(r)")
    }
}
