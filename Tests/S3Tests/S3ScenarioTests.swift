@testable import Condensation
import Foundation
import Glibc
import TestSupport
import XCTest

/// More of the sync issue's scenarios, with the server on Ceph: a one-byte change in a large file
/// sends only the changed chunk, a new device joins by mounting, a stranger's message is discarded.
final class S3ScenarioTests: S3TestCase {
    /// Bytes of the store's objects in the bucket.
    private func bucketObjectBytes() throws -> Int {
        try s3Store().allObjectsWithInfo().reduce(0) { $0 + $1.size }
    }

    func testOneByteChangeSendsOnlyChangedChunks() throws {
        let (a, b) = try makePair()
        let size = 64 * 1024 * 1024
        let source = root + "/big.bin"
        try sh("head -c \(size) /dev/urandom > '\(source)'")
        try sh("cp '\(source)' '\(a.mnt)/big.bin'", timeout: 300)
        sleep(2)
        guard try waitForSameHead(a, b, timeout: 300) != nil else { throw StopTest("B did not reach A's version within 300 s") }
        sleep(2)

        let mark = server.requestLines().count
        let objectsBefore = try bucketObjectBytes()
        let offset = 40 * 1024 * 1024 + 12345
        let newByte = try py("""
            import os, sys
            with open(sys.argv[1], 'r+b') as f:
                f.seek(\(offset)); old = f.read(1)[0]; new = old ^ 0xff
                f.seek(\(offset)); f.write(bytes([new])); f.flush(); os.fsync(f.fileno())
            print(new)
            """, [a.mnt + "/big.bin"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let seen = waitUntil(30, interval: 0.1) {
            python("import sys\nf = open(sys.argv[1], 'rb'); f.seek(\(offset)); print(f.read(1)[0])", [b.mnt + "/big.bin"])
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines) == newByte
        }
        XCTAssertNotNil(seen, "B's mount did not show the one-byte change within 30 s")
        if let seen { metric("1-byte change: A's fsync → B's mount shows it", seconds(seen)) }
        XCTAssertNotNil(try waitForSameHead(a, b, timeout: 30))
        sleep(2)
        let lines = Array(server.requestLines().dropFirst(mark))
        let received = Server.bytesIn(lines)
        let grown = try bucketObjectBytes() - objectsBefore
        metric("1-byte change in 64 MiB: server received", "\(received) B in \(lines.count) requests; the bucket's objects grew by \(grown) B")
        XCTAssertLessThan(received, 2 * 1024 * 1024)
        XCTAssertLessThan(grown, 2 * 1024 * 1024)
    }

    func testNewDeviceJoinsByMounting() throws {
        let a = try makeDevice("A", joining: false)
        try mount(a)
        try sh("printf 'shared\\n' > shared.txt", cwd: a.mnt)
        let b = try makeDevice("B", joining: true)
        try must(["group", "add", "--home", a.home, b.id])
        try mount(b)
        XCTAssertNotNil(waitUntil(10, interval: 0.1) { Files.readText(b.mnt + "/shared.txt") == "shared\n" },
                        "B's mount does not show A's file")
    }

    func testMessageFromANonMemberIsDiscarded() throws {
        let a = try makeDevice("A", joining: false)
        try mount(a)
        try sh("printf 'mine\\n' > a.txt", cwd: a.mnt)
        var c = Device(name: "C", home: root + "/home-C", mnt: root + "/mnt-C")
        Files.mkdirs(c.mnt)
        c.id = try must(["init", "--home", c.home]).split(separator: "\n").map(String.init).first(where: { isHex64($0) }) ?? ""
        try mount(c)
        try sh("printf 'from a stranger\\n' > from-stranger.txt", cwd: c.mnt)
        unmount(c)
        try must(["remote", "add", "--home", c.home, server.url])
        guard try waitUntil(10, interval: 0.25, { try versions(a).count >= 2 }) != nil else { throw StopTest("A did not commit a.txt") }
        let versionsBefore = try versions(a)
        let before = tree(a.mnt)
        var added: ProcessResult?
        _ = waitUntil(10, interval: 0.25) {
            added = cdsfs(["group", "add", "--home", c.home, a.id])
            return added!.succeeded
        }
        XCTAssert(added?.succeeded == true, "C could not add A to its group: \(added.map { "\($0)" } ?? "")")
        XCTAssertNotNil(waitUntil(15, interval: 0.1) { mountLog(a).contains("discarded message") },
                        "A's mount.log does not say that it discarded C's message")
        sleep(2)
        XCTAssertEqual(tree(a.mnt), before, "A's tree changed after C's message")
        XCTAssertEqual(try versions(a), versionsBefore, "A made a version after C's message")
    }

    /// Names, contents and link targets never reach the bucket in the clear: every key and every
    /// byte in it is searched (and the server's log).
    func testBucketHoldsNoNamesOrContents() throws {
        let (a, b) = try makePair()
        let secrets = ["ZKdirQuokka4711", "ZKnamePangolin2718", "ZKcontentAxolotl1618", "ZKnameNarwhal3141",
                       "ZKbigOkapi1414", "ZKtargetTapir1732", "ZKlinkName9001"]
        try sh("""
            mkdir ZKdirQuokka4711
            for i in 1 2 3 4 5; do printf 'ZKcontentAxolotl1618 line %d\\n' $i; done > ZKdirQuokka4711/ZKnamePangolin2718.txt
            python3 -c "import sys; sys.stdout.write('ZKbigOkapi1414 ' * 70000)" > ZKnameNarwhal3141.bin
            ln -s ZKtargetTapir1732 ZKlinkName9001
            """, cwd: a.mnt)
        sleep(2)
        guard try waitForSameHead(a, b, timeout: 20) != nil else { throw StopTest("B did not reach A's version within 20 s") }
        XCTAssertEqual(tree(b.mnt), tree(a.mnt), "B's mount shows A's files")
        // The whole bucket, keys as file names, into a folder; then grep.
        let store = try s3Store()
        let dump = root + "/bucket-dump"
        var keys: [String] = []
        try store.listKeys(prefix: "") { key, _, _ in keys.append(key) }
        var bytes = 0
        for (i, key) in keys.enumerated() {
            let r = try store.request("GET", key: key)
            XCTAssertEqual(r.status, 200, key)
            bytes += r.body.count
            Files.mkdirs(dump + "/" + String(i))
            _ = Files.write(dump + "/" + String(i) + "/" + key.replacingOccurrences(of: "/", with: "_"), r.body)
        }
        XCTAssertGreaterThan(bytes, 1_000_000, "the bucket holds the data (\(bytes) B in \(keys.count) keys)")
        let r = runProcess("/bin/grep", ["-raFl"] + secrets.flatMap { ["-e", $0] } + [dump])
        XCTAssertEqual(r.status, 1, "grep found secrets in the bucket: \(r)")
        let names = runProcess("/bin/bash", ["-c", "ls -R '\(dump)' | grep -F -e ZK"])
        XCTAssertEqual(names.status, 1, "a key names a secret: \(names)")
        let logs = runProcess("/bin/grep", ["-raFl"] + secrets.flatMap { ["-e", $0] } + server.logs)
        XCTAssertEqual(logs.status, 1, "the server's log names them: \(logs)")
    }

    /// Once two devices agree, they stop talking: no new versions and almost no requests reach the
    /// server (its own relisting of held polls goes to S3, not through its request log).
    func testAnIdlePairGoesQuiet() throws {
        let (a, b) = try makePair()
        try sh("printf 'one\\n' > one.txt", cwd: a.mnt)
        guard waitUntil(10, { Files.readText(b.mnt + "/one.txt") == "one\n" }) != nil else { throw StopTest("one.txt did not reach B") }
        sleep(3)
        let requestsBefore = server.requestLines().count
        let versionsBefore = try versions(a).count + versions(b).count
        let objectsBefore = try s3Store().allObjects().count
        sleep(5)
        let window = server.requestLines().dropFirst(requestsBefore)
        metric("idle pair: requests in 5 s", "\(window.count)")
        XCTAssertEqual(try versions(a).count + versions(b).count, versionsBefore, "versions keep appearing on an idle pair")
        XCTAssertLessThanOrEqual(window.count, 10, "an idle pair made \(window.count) requests in 5 s:\n" + window.suffix(8).joined(separator: "\n"))
        XCTAssertEqual(try s3Store().allObjects().count, objectsBefore, "the bucket grew while nothing changed")
    }

    /// A revoked device's versions are refused and later versions are not sent to it.
    func testRemovedDeviceNoLongerSyncs() throws {
        let (a, b) = try makePair()
        try sh("printf 'before\\n' > before.txt", cwd: a.mnt)
        guard waitUntil(10, { Files.readText(b.mnt + "/before.txt") == "before\n" }) != nil else {
            throw StopTest("before.txt did not reach B")
        }
        XCTAssert(try must(["group", "remove", "--home", a.home, b.id]).contains("revoked"))
        try sh("printf 'secret\\n' > after-removal-A.txt", cwd: a.mnt)
        try sh("printf 'from B\\n' > after-removal-B.txt", cwd: b.mnt)
        sleep(5)
        XCTAssertFalse(FileManager.default.fileExists(atPath: b.mnt + "/after-removal-A.txt"), "A's new file reached B")
        XCTAssertFalse(FileManager.default.fileExists(atPath: a.mnt + "/after-removal-B.txt"), "B's new file reached A")
    }

    /// The bucket has the folder store's layout: copied key by key into a folder it is a folder store
    /// whose trees are all complete and sound, and a device's local folder store copied file by file
    /// under a prefix of the bucket is an S3 store that marks the same objects.
    func testBucketAndFolderStoreHaveOneLayout() throws {
        let (a, b) = try makePair()
        try sh("head -c 2000000 /dev/urandom > data.bin && mkdir d && printf 'x\\n' > d/x.txt", cwd: a.mnt)
        sleep(2)
        guard try waitForSameHead(a, b, timeout: 30) != nil else { throw StopTest("B did not reach A's version") }
        unmount(a)
        unmount(b)
        let bucket = try s3Store()
        let folder = root + "/bucket-as-folder"
        var keys: [String] = []
        try bucket.listKeys(prefix: "") { key, _, _ in keys.append(key) }
        for key in keys {
            let r = try bucket.request("GET", key: key)
            XCTAssertEqual(r.status, 200, key)
            Files.mkdirs((folder + "/" + key as NSString).deletingLastPathComponent)
            XCTAssertEqual(Files.write(folder + "/" + key, r.body), 0, key)
        }
        let asFolder = try XCTUnwrap(FolderStore.open(folder), "the copy is a folder store")
        let fromFolder = try GarbageCollector.mark(asFolder, verify: true)
        let fromBucket = try GarbageCollector.mark(bucket, verify: true)
        XCTAssertEqual(fromFolder.reachable, fromBucket.reachable)
        XCTAssertEqual(fromFolder.missing, [])
        XCTAssertEqual(fromFolder.corrupt, [])
        XCTAssertGreaterThan(fromFolder.reachable.count, 5)

        // A's local store, file by file, under a prefix of the bucket.
        let local = a.home + "/store"
        let copy = try s3Store(url: "s3://\(self.bucket)/copy-of-a?endpoint=\(Self.endpoint)")
        let files = try sh("cd '\(local)' && find objects accounts -type f").split(separator: "\n").map(String.init)
        try parallelForEach(files.count, width: 8) { i throws(StoreError) in
            let body = Files.read(local + "/" + files[i]) ?? []
            let r = try copy.request("PUT", key: copy.location.key(files[i]), body: body)
            guard r.status == 200 else { throw .refused(status: r.status, files[i]) }
        }
        let localMark = try GarbageCollector.mark(try XCTUnwrap(FolderStore.open(local)), verify: true)
        let copyMark = try GarbageCollector.mark(copy, verify: true)
        XCTAssertEqual(copyMark.reachable, localMark.reachable)
        XCTAssertEqual(copyMark.corrupt, [])
        XCTAssertEqual(copyMark.missing, localMark.missing)
    }
}
