@testable import Condensation
import Foundation
import Glibc
import TestSupport
import XCTest

/// Wrong endpoint, wrong credentials, a missing bucket, a bucket another tool wrote junk into: one
/// clear line each and a non-zero exit, or (junk) working around it; nothing corrupt.
final class S3BadInputTests: S3TestCase {
    private var keys: [String: String] { ["AWS_ACCESS_KEY_ID": Self.accessKey, "AWS_SECRET_ACCESS_KEY": Self.secretKey] }

    /// Runs `arguments` and expects a failure whose standard error is one `cdsfs: …` line containing
    /// every one of `words`.
    private func expectOneLine(_ arguments: [String], environment: [String: String], _ words: [String],
                               file: StaticString = #filePath, line: UInt = #line) {
        let r = cdsfs(arguments, environment: environment, timeout: 60)
        XCTAssertFalse(r.succeeded, "\(r)", file: file, line: line)
        XCTAssertFalse(r.timedOut, "\(r)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one line: \(r)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("cdsfs: "), "\(r)", file: file, line: line)
        for w in words { XCTAssertTrue(r.stderr.contains(w), "'\(w)' in: \(r.stderr)", file: file, line: line) }
        if arguments.first == "serve" { metric("error", r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    private var endpoint: String { Self.endpoint }

    func testServeAndRemoteAddSayWhatIsWrong() throws {
        let home = root + "/home"
        try must(["init", "--home", home])
        let missing = "s3://no-such-bucket-\(UInt32.random(in: 0...UInt32.max))?endpoint=\(endpoint)"
        let cases: [(url: String, env: [String: String], words: [String])] = [
            (missing, keys, ["does not exist", "create it"]),
            (s3URL, ["AWS_ACCESS_KEY_ID": Self.accessKey, "AWS_SECRET_ACCESS_KEY": "wrong"], ["signature", "AWS_SECRET_ACCESS_KEY"]),
            (s3URL, ["AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "wrong"], ["access key nobody", "AWS_ACCESS_KEY_ID"]),
            ("s3://\(bucket)?endpoint=http://127.0.0.1:1", keys, ["cannot reach", "endpoint"]),
            ("s3://\(bucket)?endpoint=https://s3.amazonaws.com", keys, ["https is not supported", "stunnel"]),
            ("s3://\(bucket)", keys, ["no endpoint"]),
            ("s3://B?endpoint=\(endpoint)", keys, ["bucket name"]),
            (s3URL, ["HOME": root], ["no S3 credentials", "AWS_ACCESS_KEY_ID"]),
        ]
        for c in cases {
            expectOneLine(["serve", "--store", c.url, "--listen", "127.0.0.1:0"], environment: c.env, c.words)
            expectOneLine(["remote", "add", "--home", home, c.url], environment: c.env, c.words)
            expectOneLine(["gc", "--store", c.url], environment: c.env, c.words)
        }
        // A server that is not S3 (a cdsfs serve) as the endpoint.
        expectOneLine(["serve", "--store", "s3://\(bucket)?endpoint=\(server.url)", "--listen", "127.0.0.1:0"],
                      environment: keys, ["does not answer like an S3 service"])
        XCTAssertEqual(try must(["remote", "list", "--home", home]), "", "no remote was added")
    }

    /// With no AWS variables but a profile in ~/.aws/credentials (chosen by AWS_PROFILE), the keys
    /// come from the file; a profile that is not there is one clear line.
    func testCredentialsFromTheCredentialsFile() throws {
        let home = root + "/credentials-home"
        Files.mkdirs(home + "/.aws")
        _ = Files.write(home + "/.aws/credentials", """
            [default]
            aws_access_key_id = nobody
            aws_secret_access_key = wrong

            [cdsfs-tests]
            aws_access_key_id = \(Self.accessKey)
            aws_secret_access_key = \(Self.secretKey)
            """)
        let ok = cdsfs(["gc", "--store", s3URL, "--dry-run"], environment: ["HOME": home, "AWS_PROFILE": "cdsfs-tests"])
        XCTAssert(ok.succeeded, "\(ok)")
        expectOneLine(["gc", "--store", s3URL, "--dry-run"], environment: ["HOME": home], ["access key nobody"])
        expectOneLine(["gc", "--store", s3URL, "--dry-run"], environment: ["HOME": home, "AWS_PROFILE": "absent"],
                      ["no S3 credentials", "[absent]"])
    }

    /// Another tool's files in the bucket, in and out of the store's layout: a server on it serves, two
    /// devices sync through it, gc keeps what is not the store's, and nothing is corrupt.
    func testABucketWithJunkFromAnotherTool() throws {
        let store = try s3Store()
        let junkObject = "objects/ab/" + String(repeating: "c", count: 62)
        let stranger = Hash.of(Array("stranger".utf8)).hex
        let foreign = ["README.txt", "objects/zz/not-hex", "objects/ab/short", "accounts/garbage/x",
                       "accounts/\(stranger)/private/not-a-hash", "backup/2024/db.dump"]
        for key in foreign + [junkObject, "accounts/\(stranger)/messages/\(String(repeating: "d", count: 64))"] {
            let r = try store.request("PUT", key: key, body: Array("junk written by another tool\n".utf8))
            XCTAssertEqual(r.status, 200, "PUT \(key)")
        }
        // The junk under an object's name is reported as corrupt, not returned.
        XCTAssertThrowsError(try store.get(Hash(hex: "ab" + String(repeating: "c", count: 62))!)) {
            XCTAssertEqual($0 as? StoreError, .corrupt(Hash(hex: "ab" + String(repeating: "c", count: 62))!))
        }
        XCTAssertEqual(try store.list(Hash(hex: stranger)!, .private), [], "keys that are not hashes are not entries")

        let (a, b) = try makePair()
        try sh("printf 'through junk\\n' > note.txt", cwd: a.mnt)
        XCTAssertNotNil(waitUntil(15) { Files.readText(b.mnt + "/note.txt") == "through junk\n" }, "note.txt reached B")

        let gc = cdsfs(["gc", "--store", s3URL, "--grace", "0"], timeout: 300)
        XCTAssert(gc.succeeded, "\(gc)")
        metric("gc over junk", gc.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertTrue(gc.stdout.contains("1 reachable objects missing"), "the stranger's entry names a missing object: \(gc.stdout)")
        var left: [String] = []
        try store.listKeys(prefix: "") { key, _, _ in left.append(key) }
        for key in foreign { XCTAssertTrue(left.contains(key), "gc deleted \(key), which is not the store's") }
        XCTAssertFalse(left.contains(junkObject), "the unreachable junk under an object's name is collected")

        try sh("printf 'after gc\\n' > after.txt", cwd: b.mnt)
        XCTAssertNotNil(waitUntil(15) { Files.readText(a.mnt + "/after.txt") == "after gc\n" }, "after.txt reached A")
        XCTAssertEqual(try badObjectsInBucket(), [])
        for d in [a, b] {
            unmount(d)
            let r = cdsfs(["fsck", "--home", d.home], timeout: 600)
            XCTAssert(r.succeeded, "fsck of \(d): \(r)")
        }

        // fsck of the bucket itself: the stranger's entry names a missing object (one line); then
        // another tool overwrites one of the store's objects, and that is one line more.
        let missing = String(repeating: "d", count: 64)
        var r = cdsfs(["fsck", "--store", s3URL], timeout: 300)
        XCTAssertEqual(r.status, 2, "\(r)")
        XCTAssertEqual(r.stdoutLines.filter { $0.hasPrefix("missing object ") }, ["missing object \(missing) (named by a box entry or another object)"])
        // The victim must be one fsck reaches: the envelope in A's private box (the first object in
        // the bucket's order may be an old version's, which nothing names any more).
        let victim = try XCTUnwrap(try store.list(Hash(hex: a.id)!, .private).first, "A's private box is empty")
        XCTAssertEqual(try store.request("PUT", key: store.objectKey(victim), body: Array("overwritten\n".utf8)).status, 200)
        r = cdsfs(["fsck", "--store", s3URL], timeout: 300)
        XCTAssertEqual(r.status, 2, "\(r)")
        XCTAssertTrue(r.stdout.contains("bad object \(victim.hex): its bytes do not match its hash"), "\(r)")
        metric("fsck --store", r.stdoutLines.last ?? "")
    }

    /// `connect=` sends the requests to a relay (as to a local TLS tunnel in front of AWS) while they
    /// are signed for, and name, the endpoint: through a plain TCP relay to the cluster, a device
    /// syncs and gc works, and every request went through the relay.
    func testConnectThroughARelay() throws {
        let relay = try startRelay()
        let viaRelay = s3URL + "&connect=127.0.0.1:\(relay.port)"
        server.stop(SIGKILL)
        remoteOverride = viaRelay
        let (a, b) = try makePair()
        try sh("printf 'via relay\\n' > relayed.txt", cwd: a.mnt)
        XCTAssertNotNil(waitUntil(15) { Files.readText(b.mnt + "/relayed.txt") == "via relay\n" }, "relayed.txt reached B")
        let gc = cdsfs(["gc", "--store", viaRelay, "--dry-run"], timeout: 120)
        XCTAssert(gc.succeeded, "\(gc)")
        let connections = (Files.readText(relay.log) ?? "").components(separatedBy: "connection").count - 1
        metric("connections through the relay", "\(connections)")
        XCTAssertGreaterThan(connections, 2, "the devices and gc connected through the relay")
        unmount(a)
        unmount(b)
    }

    /// A throttled and failing S3: every 4th connection is answered 503 SlowDown, 500 InternalError
    /// or reset. Devices straight through the bucket and a server on it retry with backoff and
    /// converge; nothing in the bucket is damaged and fsck passes.
    func testThrottlingErrorsAndResetsAreRetried() throws {
        let relay = try startRelay(faultEvery: 4)
        let faulty = s3URL + "&connect=127.0.0.1:\(relay.port)"
        server.stop(SIGKILL)
        let faultyServer = Server(store: faulty, logDirectory: root + "/logs")
        var started = false
        for _ in 0..<5 where !started {  // its own first check may meet a fault after its retries
            started = (try? faultyServer.start()) != nil
        }
        XCTAssertTrue(started, "a server on the faulty bucket started")
        defer { faultyServer.stop(SIGKILL) }
        remoteOverride = faulty
        let (a, b) = try makePair()
        let c = try makeDevice("C", joining: true)
        try must(["remote", "remove", "--home", c.home, faulty])
        try must(["remote", "add", "--home", c.home, faultyServer.url])
        try must(["group", "add", "--home", a.home, c.id])
        try mount(c)
        try sh("head -c 3000000 /dev/urandom > data.bin && printf 'one\\n' > one.txt", cwd: a.mnt)
        let sum = try sh("sha256sum < data.bin", cwd: a.mnt)
        for d in [b, c] {
            XCTAssertNotNil(waitUntil(60) { bash("sha256sum < data.bin", cwd: d.mnt).stdout == sum }, "data.bin reached \(d)")
        }
        try sh("printf 'two\\n' > two.txt", cwd: c.mnt)
        XCTAssertNotNil(waitUntil(60) { Files.readText(a.mnt + "/two.txt") == "two\n" && Files.readText(b.mnt + "/two.txt") == "two\n" },
                        "two.txt from C (through the server) reached A and B (straight through the bucket)")
        let faults = (Files.readText(relay.log) ?? "").split(separator: "\n").filter { $0.hasPrefix("fault") }
        metric("faults injected", "\(faults.count) (\(Set(faults).sorted().joined(separator: ", ")))")
        XCTAssertGreaterThanOrEqual(faults.count, 6, "faults were injected")
        XCTAssertEqual(try badObjectsInBucket(), [])
        for d in [a, b, c] {
            unmount(d)
            let r = cdsfs(["fsck", "--home", d.home], timeout: 600)
            XCTAssert(r.succeeded, "fsck of \(d): \(r)")
        }
    }
}
