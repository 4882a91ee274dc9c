@testable import Condensation
import Foundation
import Glibc
import TestSupport
import XCTest

/// Devices syncing through `cdsfs serve` on a real Ceph cluster (radosgw), through two instances on
/// one bucket, through the bucket directly with no server; an instance killed mid-push.
final class S3SyncTests: S3TestCase {

    /// Runs `script` in `writer`'s mount, then waits until `check` in `reader`'s mount prints `expect`;
    /// the seconds it took (asserted ≤ `limit`).
    @discardableResult
    private func propagate(_ name: String, _ script: String, from writer: Device, to reader: Device,
                           check: String, expect: String, limit: Double = 5) throws -> Double {
        try sh(script, cwd: writer.mnt)
        var last = ""
        let took = try waitUntil(15, interval: 0.05) {
            last = bash(check, cwd: reader.mnt).stdout
            return last == expect
        }
        guard let took else {
            try requireAlive(writer, reader)
            throw StopTest("\(name): `\(script)` on \(writer) did not reach \(reader) within 15 s; `\(check)` printed:\n\(last)")
        }
        metric("\(name) \(writer.name)→\(reader.name)", seconds(took))
        XCTAssertLessThanOrEqual(took, limit, "\(name) took \(seconds(took))")
        return took
    }

    /// The propagation steps of the sync tests: create, change, rename, delete one way, create back.
    private func propagationBothWays(_ a: Device, _ b: Device) throws {
        try propagate("create", "mkdir docs && printf 'first\\n' > note.txt && printf 'inner\\n' > docs/inner.txt", from: a, to: b,
                      check: "ls -1A; cat note.txt docs/inner.txt", expect: "docs\nnote.txt\nfirst\ninner\n")
        try propagate("change", "printf 'second\\n' > note.txt", from: a, to: b, check: "cat note.txt", expect: "second\n")
        try propagate("rename", "sleep 1.2 && mv note.txt renamed.txt", from: a, to: b,
                      check: "ls -1A; cat renamed.txt", expect: "docs\nrenamed.txt\nsecond\n")
        try propagate("delete", "rm renamed.txt docs/inner.txt", from: a, to: b, check: "ls -1A . docs", expect: ".:\ndocs\n\ndocs:\n")
        try propagate("create", "printf 'from B\\n' > docs/back.txt", from: b, to: a, check: "cat docs/back.txt", expect: "from B\n")
        XCTAssertEqual(tree(a.mnt), tree(b.mnt), "both mounts show the same tree")
    }

    /// With the remote unreachable (`pause`), both devices change: different files, the same file; when
    /// it is back (`resume`) they converge on one tree that holds every edit.
    private func concurrentChangesConverge(_ a: Device, _ b: Device, pause: () throws -> Void, resume: () throws -> Void) throws {
        try sh("printf 'base\\n' > same.txt && mkdir -p shared", cwd: a.mnt)
        guard waitUntil(30, { bash("test -d shared && cat same.txt", cwd: b.mnt).stdout == "base\n" }) != nil,
              try waitForSameHead(a, b, timeout: 30) != nil else { throw StopTest("A and B did not agree on the base") }
        try pause()
        try sh("printf 'A\\n' > same.txt && printf 'a\\n' > shared/only-A.txt", cwd: a.mnt)
        try sh("printf 'B\\n' > same.txt && printf 'b\\n' > shared/only-B.txt", cwd: b.mnt)
        sleep(3)  // both commit locally
        try resume()
        let took = try waitForSameHead(a, b, timeout: 90)
        guard let took else { throw StopTest("A and B did not converge within 90 s") }
        metric("converged after the remote came back", seconds(took))
        _ = waitUntil(10) { tree(a.mnt) == tree(b.mnt) }
        let listing = try sh("ls -1 shared; cat same.txt; ls -1 | grep -c '^same.txt' || true", cwd: b.mnt)
        XCTAssertTrue(listing.hasPrefix("only-A.txt\nonly-B.txt\n"), "both new files are there: \(listing)")
        let both = try sh("cat same.txt* | sort | tr -d '\\n'", cwd: b.mnt)
        XCTAssertEqual(both, "AB", "both edits of same.txt are kept (one as a conflict copy)")
        XCTAssertEqual(tree(a.mnt), tree(b.mnt))
    }

    private func fsckBoth(_ a: Device, _ b: Device) {
        unmount(a)
        unmount(b)
        for d in [a, b] {
            let r = cdsfs(["fsck", "--home", d.home], timeout: 600)
            XCTAssert(r.succeeded, "fsck of \(d): \(r)")
        }
    }

    // MARK: One server on Ceph

    func testTwoDevicesThroughAServerOnCeph() throws {
        let (a, b) = try makePair()
        try propagationBothWays(a, b)
        try concurrentChangesConverge(a, b, pause: { server.stop(SIGTERM) }, resume: { try server.start() })
        XCTAssertEqual(try badObjectsInBucket(), [])
        fsckBoth(a, b)
    }

    // MARK: Two instances on one bucket

    /// A talks to instance 1, B to instance 2: changes cross within the sync tests' 5 s both ways.
    func testTwoInstancesOnOneBucket() throws {
        let second = try startAnotherServer("second")
        let a = try makeDevice("A", joining: false)
        remoteOverride = second.url
        let b = try makeDevice("B", joining: true)
        try must(["group", "add", "--home", a.home, b.id])
        guard try must(["sync", "--home", b.home]).contains("joined") else { throw StopTest("B did not join") }
        try mount(a)
        try mount(b)
        try propagationBothWays(a, b)
        try concurrentChangesConverge(a, b, pause: { server.stop(SIGTERM); second.stop(SIGTERM) },
                                      resume: { try server.start(); try second.start() })
        fsckBoth(a, b)
    }

    /// More of the sync scenarios across two instances: a one-byte change in a 32 MiB file sends under
    /// 2 MiB through both together, and a third device on instance 2 joins by mounting.
    func testOneByteChangeAndAJoinAcrossInstances() throws {
        let second = try startAnotherServer("second")
        let a = try makeDevice("A", joining: false)
        remoteOverride = second.url
        let b = try makeDevice("B", joining: true)
        try must(["group", "add", "--home", a.home, b.id])
        guard try must(["sync", "--home", b.home]).contains("joined") else { throw StopTest("B did not join") }
        try mount(a)
        try mount(b)
        try sh("head -c \(32 << 20) /dev/urandom > big.bin", cwd: a.mnt, timeout: 120)
        sleep(2)
        guard try waitForSameHead(a, b, timeout: 120) != nil else { throw StopTest("B did not reach A's version") }
        sleep(2)
        let marks = (server.requestLines().count, second.requestLines().count)
        let offset = 20 * 1024 * 1024 + 777
        let newByte = try py("""
            import os, sys
            with open(sys.argv[1], 'r+b') as f:
                f.seek(\(offset)); new = f.read(1)[0] ^ 0xff
                f.seek(\(offset)); f.write(bytes([new])); f.flush(); os.fsync(f.fileno())
            print(new)
            """, [a.mnt + "/big.bin"]).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNotNil(waitUntil(30, interval: 0.1) {
            python("import sys\nf = open(sys.argv[1], 'rb'); f.seek(\(offset)); print(f.read(1)[0])", [b.mnt + "/big.bin"])
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines) == newByte
        }, "B's mount did not show the one-byte change")
        XCTAssertNotNil(try waitForSameHead(a, b, timeout: 30))
        sleep(2)
        let received = Server.bytesIn(server.requestLines().dropFirst(marks.0)) + Server.bytesIn(second.requestLines().dropFirst(marks.1))
        metric("1-byte change in 32 MiB across two instances: received", "\(received) B")
        XCTAssertLessThan(received, 2 * 1024 * 1024)

        let c = try makeDevice("C", joining: true)  // its remote: instance 2
        try must(["group", "add", "--home", a.home, c.id])
        try mount(c)
        XCTAssertNotNil(waitUntil(30) { bash("cmp -s big.bin '\(a.mnt)/big.bin' && echo same", cwd: c.mnt).stdout == "same\n" },
                        "C (on instance 2) did not get A's folder by mounting")
    }

    /// A long poll held by one instance wakes within 2 s of an addition made through the other.
    func testLongPollWakesAcrossInstances() throws {
        let second = try startAnotherServer("second")
        let owner = KeyPair.generate()
        let watching = try HTTPStore(url: second.url, keyPair: owner)
        _ = try watching.list(owner.actor, .messages)  // publishes the key (a 403 first)
        let adder = try HTTPStore(url: server.url)
        var waits: [Double] = []
        for round in 0..<5 {
            let entry = Object(hashes: [], data: Array("message \(round)".utf8))
            final class Outcome: @unchecked Sendable {
                var listed: [Hash] = []
                var returnedAt = 0.0
                let done = DispatchSemaphore(value: 0)
            }
            let outcome = Outcome()
            Thread.detachNewThread {
                outcome.listed = (try? watching.list(owner.actor, .messages, watch: 20_000)) ?? []
                outcome.returnedAt = now()
                outcome.done.signal()
            }
            // The poll is held on the second instance by now; a random moment, so that the addition
            // does not fall at the same point of the instance's relisting cycle every round.
            usleep(UInt32.random(in: 1_000_000...1_800_000))
            let added = now()
            try adder.add(owner.actor, .messages, entry.calculateHash())
            XCTAssertEqual(outcome.done.wait(timeout: .now() + 25), .success)
            XCTAssertEqual(outcome.listed, [entry.calculateHash()])
            waits.append(outcome.returnedAt - added)
            try watching.remove(owner.actor, .messages, entry.calculateHash())
        }
        metric("long poll on instance 2 woken by an add through instance 1", waits.map(seconds).joined(separator: ", "))
        for w in waits { XCTAssertLessThanOrEqual(w, 2, "a held poll took \(seconds(w)) to see an addition made through the other instance") }
    }

    /// Instance 1 gets SIGKILL while A pushes a 96 MiB file through it; A's remote lists both instances,
    /// so the push goes on through instance 2: B gets the file intact, every object in the bucket
    /// matches its hash, fsck passes on both homes.
    func testInstanceKilledMidPushFailsOver() throws {
        let second = try startAnotherServer("second")
        remoteOverride = server.url + " " + second.url
        let a = try makeDevice("A", joining: false)
        remoteOverride = second.url
        let b = try makeDevice("B", joining: true)
        try must(["group", "add", "--home", a.home, b.id])
        guard try must(["sync", "--home", b.home]).contains("joined") else { throw StopTest("B did not join") }
        try mount(a)
        try mount(b)
        XCTAssertEqual(try must(["remote", "list", "--home", a.home]), server.url + " " + second.url + "\n")

        let size = 96 * 1024 * 1024
        let source = root + "/big.bin"
        try sh("head -c \(size) /dev/urandom > '\(source)'")
        let sum = try sh("sha256sum < '\(source)' | cut -d' ' -f1").trimmingCharacters(in: .whitespacesAndNewlines)
        let putsBefore = server.requestLines().filter { $0.contains(" PUT /objects/") }.count
        try sh("cp '\(source)' big.bin", cwd: a.mnt, timeout: 300)
        var puts = 0
        let reached = try waitUntil(120, interval: 0.05) {
            try requireAlive(a, b)
            puts = server.requestLines().filter { $0.contains(" PUT /objects/") }.count - putsBefore
            return puts >= 20
        }
        guard reached != nil else { throw StopTest("A pushed only \(puts) objects through instance 1 within 120 s") }
        server.stop(SIGKILL)
        metric("instance 1 killed after", "\(puts) object puts through it")
        let killed = now()
        guard try waitForSameHead(a, b, timeout: 240) != nil else { throw StopTest("B did not get A's version within 240 s") }
        metric("B holds A's version after the kill", seconds(now() - killed))
        XCTAssertTrue(mountLog(a).contains("trying the next") || mountLog(a).contains("now using"),
                      "A's log says it moved to the other instance")
        let onB = try sh("stat -c %s big.bin; sha256sum < big.bin | cut -d' ' -f1", cwd: b.mnt, timeout: 300)
        XCTAssertEqual(onB, "\(size)\n\(sum)\n", "B's copy of big.bin (size, SHA-256)")
        XCTAssertGreaterThan(second.requestLines().filter { $0.contains(" PUT /objects/") }.count, 0, "instance 2 took puts")
        XCTAssertEqual(try badObjectsInBucket(), [])
        fsckBoth(a, b)
    }

    // MARK: Straight through the bucket

    /// No server: both devices' remote is the bucket itself. They converge as through a server.
    func testDevicesSyncStraightThroughTheBucket() throws {
        server.stop(SIGKILL)  // nothing in between
        remoteOverride = s3URL
        let (a, b) = try makePair()
        XCTAssertEqual(try must(["remote", "list", "--home", a.home]), s3URL + "\n")
        // A bucket is polled (once a second), not long-polled; still within the sync tests' 5 s.
        try propagationBothWays(a, b)
        // Both change the same file and each its own at once: the merge keeps every edit.
        try concurrentChangesConverge(a, b, pause: {}, resume: {})
        XCTAssertEqual(try badObjectsInBucket(), [])
        fsckBoth(a, b)
    }

    // MARK: Garbage collection

    /// Old versions' objects become unreachable on the bucket; `cdsfs gc --store s3://…` deletes them
    /// (once past the grace period), keeps everything reachable: the devices still sync and fsck passes.
    func testGarbageCollectionOnTheBucket() throws {
        let (a, b) = try makePair()
        for i in 0..<4 {
            try sh("head -c \(300_000 + i) /dev/urandom > data.bin", cwd: a.mnt)
            sleep(2)
        }
        guard try waitForSameHead(a, b, timeout: 60) != nil else { throw StopTest("B did not catch up") }
        let kept = try must(["gc", "--store", s3URL])
        XCTAssertTrue(kept.contains("deleted 0 "), "nothing is old enough with the default hour: \(kept)")
        let dry = try must(["gc", "--store", s3URL, "--grace", "0", "--dry-run"])
        let real = try must(["gc", "--store", s3URL, "--grace", "0"])
        metric("gc", real.trimmingCharacters(in: .whitespacesAndNewlines))
        func deleted(_ s: String) -> Int? {
            s.range(of: "delete ").flatMap { Int(s[$0.upperBound...].prefix(while: \.isNumber)) }
                ?? s.range(of: "deleted ").flatMap { Int(s[$0.upperBound...].prefix(while: \.isNumber)) }
        }
        XCTAssertGreaterThan(deleted(real) ?? 0, 0, "old versions' objects deleted: \(real)")
        XCTAssertEqual(deleted(dry), deleted(real), "the dry run named what the real run deleted")
        try propagate("after gc", "printf 'after gc\\n' > after.txt", from: b, to: a, check: "cat after.txt", expect: "after gc\n")
        XCTAssertEqual(try badObjectsInBucket(), [])
        fsckBoth(a, b)
    }
}
