import Foundation
import Glibc
import TestSupport
import XCTest

/// Two (or three) devices syncing through a real `cdsfs serve`, each with its own home and mount,
/// driven the way a person would: `init`, `remote add`, `group add`, `sync`, `mount -o commit_interval=1`,
/// then ordinary shell commands in the mounts.
final class SyncTests: SyncTestCase {

    // MARK: 1. Propagation

    /// A file created, changed, renamed and deleted on A shows up within 5 s each in a shell that has
    /// been sitting in B's mount all along (so the kernel's caches have to be told); then once B → A.
    func testChangesReachAShellInsideTheOtherMount() throws {
        let (a, b) = try makePair()
        let inB = try shell(in: b.mnt)
        XCTAssertEqual(try inB.output("ls -1A"), "", "B starts empty")

        var latencies: [String: Double] = [:]
        /// Runs `script` in `writer`'s mount, then polls `check` in `reader` until it prints `expect`.
        func step(_ name: String, _ writer: Device, _ script: String, _ reader: Shell, check: String, expect: String) throws {
            try sh(script, cwd: writer.mnt)
            var last = ""
            let took = try waitUntil(8, interval: 0.05) {
                last = try reader.run(check).output
                return last == expect
            }
            guard let took else {
                try requireAlive(a, b)
                XCTFail("\(name): `\(script)` on \(writer) did not show in the shell in \(reader.cwd) within 8 s; "
                        + "`\(check)` printed:\n\(last)\nexpected:\n\(expect)")
                return
            }
            latencies[name] = took
            metric("propagation \(name) \(writer.name)→\(writer.name == "A" ? "B" : "A")", seconds(took))
            XCTAssertLessThanOrEqual(took, 5, "\(name) took \(seconds(took)) to reach the other mount")
        }

        try step("create", a, "mkdir docs && printf 'first version\\n' > note.txt && printf 'inner\\n' > docs/inner.txt",
                 inB, check: "ls -1A; cat note.txt docs/inner.txt", expect: "docs\nnote.txt\nfirst version\ninner\n")
        // Same size, same second: only the kernel's invalidation can make the new bytes show.
        try step("change (same size)", a, "printf 'other version\\n' > note.txt",
                 inB, check: "cat note.txt", expect: "other version\n")
        try step("change (append)", a, "printf 'appended\\n' >> note.txt",
                 inB, check: "stat -c %s note.txt; cat note.txt", expect: "23\nother version\nappended\n")
        try step("change (shrink)", a, "printf 'short\\n' > note.txt",
                 inB, check: "stat -c %s note.txt; od -An -c note.txt", expect: "6\n   s   h   o   r   t  \\n\n")
        try step("rename", a, "printf 'other version\\nappended\\n' > note.txt && sleep 1.5 && mv note.txt renamed.txt",
                 inB, check: "ls -1A; cat renamed.txt; test -e note.txt && echo STALE-note.txt || true",
                 expect: "docs\nrenamed.txt\nother version\nappended\n")
        try step("delete", a, "rm renamed.txt docs/inner.txt",
                 inB, check: "ls -1A . docs; test -e renamed.txt && echo STALE-renamed.txt || true",
                 expect: ".:\ndocs\n\ndocs:\n")

        let inA = try shell(in: a.mnt)
        try step("create", b, "printf 'from B\\n' > docs/back.txt",
                 inA, check: "ls -1A docs; cat docs/back.txt", expect: "back.txt\nfrom B\n")
        XCTAssertEqual(tree(a.mnt), tree(b.mnt), "both mounts show the same tree")
    }

    /// Once two devices agree, they stop talking: no new versions, and the server sees almost no requests
    /// (a long poll per device now and then), so nothing grows while nobody changes anything.
    func testAnIdlePairGoesQuiet() throws {
        let (a, b) = try makePair()
        try sh("printf 'one\\n' > one.txt", cwd: a.mnt)
        guard waitUntil(10, { Files.readText(b.mnt + "/one.txt") == "one\n" }) != nil else {
            throw StopTest("one.txt did not reach B")
        }
        sleep(3)  // let whatever follows the change settle
        let requestsBefore = server.requestLines().count
        let versionsBefore = try versions(a).count + versions(b).count
        let objectsBefore = server.objectBytes()
        let localBefore = storeBytes(a.home + "/store")
        sleep(5)
        let window = server.requestLines().dropFirst(requestsBefore)
        let versionsAfter = try versions(a).count + versions(b).count
        let grown = server.objectBytes() - objectsBefore
        metric("idle pair: requests in 5 s", "\(window.count)")
        metric("idle pair: server objects grew by", "\(grown) B in 5 s")
        metric("idle pair: A's local store grew by", "\(storeBytes(a.home + "/store") - localBefore) B in 5 s")
        XCTAssertEqual(versionsAfter, versionsBefore, "versions keep appearing on an idle pair")
        XCTAssertLessThanOrEqual(window.count, 10, "an idle pair made \(window.count) requests in 5 s, e.g.:\n"
                                 + window.suffix(8).joined(separator: "\n"))
        XCTAssertLessThan(grown, 64 * 1024, "the server store grew by \(grown) B in 5 s while nothing changed")
        let log = mountLog(a)
        let upToDate = log.components(separatedBy: "pulled: up to date").count - 1
        metric("idle pair: \"pulled: up to date\" lines in A's mount.log", "\(upToDate)")
    }

    // MARK: 2. Concurrent changes while apart

    /// With the server down, both devices change: different files, the same file, delete vs change,
    /// rename vs change, files in the same directory. When the server is back they converge on one tree
    /// holding every edit (the losing side of a conflict as "NAME (conflict …)"), and then stay put.
    func testConcurrentChangesWhileApartConverge() throws {
        let (a, b) = try makePair()
        try sh("""
            printf 'base\\n' > same.txt
            printf 'base\\n' > deleted-on-A.txt
            printf 'base\\n' > deleted-on-B.txt
            printf 'base\\n' > renamed-on-A.txt
            mkdir shared && printf 'base\\n' > shared/keep.txt
            """, cwd: a.mnt)
        guard let baseTree = tree(a.mnt),
              waitUntil(15, interval: 0.25, { tree(b.mnt) == baseTree }) != nil else {
            throw StopTest("the base files did not reach B: A has \(tree(a.mnt) ?? "?"), B has \(tree(b.mnt) ?? "?")")
        }

        server.stop(SIGTERM)
        let apart = now()
        let versionsA = try versions(a).count, versionsB = try versions(b).count
        try sh("""
            printf 'A only\\n' > only-A.txt
            printf 'same from A\\n' > same.txt
            rm deleted-on-A.txt
            printf 'changed on A\\n' > deleted-on-B.txt
            mv renamed-on-A.txt renamed-by-A.txt
            printf 'A in shared\\n' > shared/from-A.txt
            """, cwd: a.mnt)
        try sh("""
            printf 'B only\\n' > only-B.txt
            printf 'same from B\\n' > same.txt
            printf 'changed on B\\n' > deleted-on-A.txt
            rm deleted-on-B.txt
            printf 'changed on B\\n' > renamed-on-A.txt
            printf 'B in shared\\n' > shared/from-B.txt
            """, cwd: b.mnt)
        // Both commit locally while apart.
        for (d, before) in [(a, versionsA), (b, versionsB)] {
            let committed = try waitUntil(10, interval: 0.25) { try versions(d).count > before }
            XCTAssertNotNil(committed, "\(d) did not commit while the server was down")
        }
        sleep(2)  // the last of the changes is committed too (commit_interval=1)
        // Apart for a while, so that both syncers back off.
        if now() - apart < 10 { usleep(UInt32((10 - (now() - apart)) * 1e6)) }

        try server.start()
        metric("server down for", seconds(now() - apart))
        let expected: [String: String] = [
            "only-A.txt": "A only\n", "only-B.txt": "B only\n",
            "deleted-on-A.txt": "changed on B\n",  // a delete loses to a change
            "deleted-on-B.txt": "changed on A\n",
            "renamed-by-A.txt": "base\n", "renamed-on-A.txt": "changed on B\n",
            "shared/keep.txt": "base\n", "shared/from-A.txt": "A in shared\n", "shared/from-B.txt": "B in shared\n",
        ]
        var treeA: String?, treeB: String?
        let took = waitUntil(60, interval: 0.5) {
            treeA = tree(a.mnt)
            treeB = tree(b.mnt)
            guard let treeA, treeA == treeB else { return false }
            return expected.keys.allSatisfy { treeA.contains($0 + "\tfile") }
                && treeA.contains("same.txt (conflict ")
        }
        guard let took else {
            XCTFail("no convergence within 60 s of the server's return.\nA:\n\(treeA ?? "?")\nB:\n\(treeB ?? "?")")
            return
        }
        metric("convergence after the server returned", seconds(took))
        XCTAssertLessThanOrEqual(took, 30, "convergence took \(seconds(took))")

        // Every edit is there, on both.
        for d in [a, b] {
            for (path, content) in expected {
                XCTAssertEqual(Files.readText(d.mnt + "/" + path), content, "\(path) on \(d)")
            }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: d.mnt)) ?? []
            let copies = names.filter { $0.hasPrefix("same.txt (conflict ") }
            XCTAssertEqual(copies.count, 1, "one conflict copy of same.txt on \(d): \(names.sorted())")
            let both = Set([Files.readText(d.mnt + "/same.txt"), copies.first.flatMap { Files.readText(d.mnt + "/" + $0) }])
            XCTAssertEqual(both, ["same from A\n", "same from B\n"], "both sides of same.txt are kept on \(d)")
            let expectedNames = Set(expected.keys.filter { !$0.contains("/") } + ["same.txt", "shared"] + copies)
            XCTAssertEqual(Set(names), expectedNames, "nothing else, nothing missing on \(d)")
        }

        // Converged means settled: no further versions while nothing changes.
        sleep(3)
        let settledA = try versions(a), settledB = try versions(b)
        sleep(5)
        let laterA = try versions(a), laterB = try versions(b)
        metric("versions made in 5 s after convergence", "A \(laterA.count - settledA.count), B \(laterB.count - settledB.count)")
        XCTAssertEqual(laterA.count, settledA.count, "A keeps making versions after convergence")
        XCTAssertEqual(laterB.count, settledB.count, "B keeps making versions after convergence")
        XCTAssertEqual(laterA.first, laterB.first, "A and B end on different versions (same tree, different hashes)")
        XCTAssertEqual(tree(a.mnt), tree(b.mnt))
    }

    // MARK: 3. Only changed chunks travel

    /// A 200 MB file goes to B; then one byte in its middle changes: what the server receives for that is
    /// a few chunks and directories, not the file.
    func testOneByteChangeSendsOnlyChangedChunks() throws {
        let (a, b) = try makePair()
        let size = 200 * 1024 * 1024
        let source = root + "/big.bin"
        try sh("head -c \(size) /dev/urandom > '\(source)'")
        let sum = try sh("sha256sum < '\(source)' | cut -d' ' -f1").trimmingCharacters(in: .whitespacesAndNewlines)
        let start = now()
        try sh("cp '\(source)' '\(a.mnt)/big.bin'", timeout: 300)
        metric("200 MB: cp into A's mount", seconds(now() - start))
        // Wait on the versions, not on B's mount: a look at big.bin while only part of it had arrived
        // would leave the kernel with that size (see testChangesReachAShellInsideTheOtherMount).
        sleep(2)
        guard try waitForSameHead(a, b, timeout: 300) != nil else { throw StopTest("B did not reach A's version within 300 s") }
        metric("200 MB: A's cp start → B holds A's version", seconds(now() - start))
        let onB = try sh("stat -c %s '\(b.mnt)/big.bin'; sha256sum < '\(b.mnt)/big.bin' | cut -d' ' -f1", timeout: 300)
        XCTAssertEqual(onB, "\(size)\n\(sum)\n", "B's copy of big.bin (size, SHA-256)")

        // Quiet first, then the one-byte change.
        sleep(1)
        let idleStart = server.requestLines().count
        sleep(2)
        let idleLines = Array(server.requestLines().dropFirst(idleStart))
        let idleIn = Server.bytesIn(idleLines)
        let idleRate = Double(idleIn) / 2
        metric("before the change: server received", "\(idleIn) B in \(idleLines.count) requests over 2 s (idle)")

        let mark = server.requestLines().count
        let objectsBefore = server.objectBytes()
        let windowStart = now()
        let offset = 100 * 1024 * 1024 + 12345
        let newByte = try py("""
            import os, sys
            with open(sys.argv[1], 'r+b') as f:
                f.seek(\(offset)); old = f.read(1)[0]; new = old ^ 0xff
                f.seek(\(offset)); f.write(bytes([new])); f.flush(); os.fsync(f.fileno())
            with open(sys.argv[2], 'r+b') as f:
                f.seek(\(offset)); f.write(bytes([new]))
            print(new)
            """, [a.mnt + "/big.bin", source]).trimmingCharacters(in: .whitespacesAndNewlines)
        let changed = now()
        let seen = waitUntil(30, interval: 0.1) {
            let r = python("import sys\nf = open(sys.argv[1], 'rb'); f.seek(\(offset)); print(f.read(1)[0])", [b.mnt + "/big.bin"])
            return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == newByte
        }
        if let seen {
            metric("1-byte change: A's fsync → B's mount shows it", seconds(seen))
        } else {
            XCTFail("B's mount did not show the one-byte change within 30 s")
        }
        XCTAssertNotNil(try waitForSameHead(a, b, timeout: 30), "B did not reach A's version after the change")
        sleep(2)  // what follows the change (B's push of its merge, if any) counts too
        let lines = Array(server.requestLines().dropFirst(mark))
        let received = Server.bytesIn(lines)
        let window = now() - windowStart
        metric("1-byte change: received minus the idle rate over the \(seconds(window)) window",
               "\(received - Int(idleRate * window)) B")
        let grown = server.objectBytes() - objectsBefore
        let puts = lines.filter { $0.contains(" PUT /objects/") }
        metric("1-byte change: server received", "\(received) B in \(lines.count) requests (\(puts.count) object puts, "
               + "\(Server.bytesIn(puts)) B of them); objects/ grew by \(grown) B")
        metric("1-byte change: object puts (bytes in)", puts.map { "\(Server.bytesIn([$0]))" }.joined(separator: ", "))
        XCTAssertLessThan(received, 2 * 1024 * 1024, "the server received \(received) B for a one-byte change")
        XCTAssertLessThan(grown, 2 * 1024 * 1024, "the server's objects grew by \(grown) B for a one-byte change")

        let newSum = try sh("sha256sum < '\(source)' | cut -d' ' -f1").trimmingCharacters(in: .whitespacesAndNewlines)
        let onBNow = try sh("sha256sum < '\(b.mnt)/big.bin' | cut -d' ' -f1", timeout: 300)
        XCTAssertEqual(onBNow.trimmingCharacters(in: .whitespacesAndNewlines), newSum, "B's big.bin after the change")
    }

    // MARK: 4. The server dies mid-push

    /// The server gets SIGKILL while A pushes a 300 MB file; restarted on the same store and port, the
    /// push completes, B gets the file intact, fsck passes on both homes, and every object the server
    /// holds matches its hash.
    func testServerKilledMidPushRecovers() throws {
        let (a, b) = try makePair()
        let size = 300 * 1024 * 1024
        let source = root + "/huge.bin"
        try sh("head -c \(size) /dev/urandom > '\(source)'")
        let sum = try sh("sha256sum < '\(source)' | cut -d' ' -f1").trimmingCharacters(in: .whitespacesAndNewlines)

        let before = server.objectBytes()
        let cpLog = open(root + "/logs/cp.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(cpLog) }
        let cp = try ChildProcess("/bin/cp", [source, a.mnt + "/huge.bin"], stdout: cpLog, stderr: cpLog)
        defer { if !cp.hasExited { cp.killGroup() } }
        let start = now()
        var grown = 0
        let reached = try waitUntil(240, interval: 0.1) {
            try requireAlive(a, b)
            grown = server.objectBytes() - before
            return grown >= 50 * 1024 * 1024
        }
        guard reached != nil else { throw StopTest("the server store grew by only \(grown) B within 240 s") }
        server.stop(SIGKILL)
        metric("SIGKILL after the server store grew by", "\(grown / 1024 / 1024) MiB, \(seconds(now() - start)) after cp started; "
               + "cp \(cp.hasExited ? "had finished" : "still running")")
        sleep(1)
        try server.start()
        let restarted = now()
        XCTAssert(cp.wait(timeout: 300), "cp into A's mount did not finish")
        XCTAssertEqual(cp.status, 0, "cp into A's mount: \(Files.readText(root + "/logs/cp.log") ?? "")")

        sleep(2)  // A's last commit
        guard try waitForSameHead(a, b, timeout: 300) != nil else {
            throw StopTest("B did not reach A's version within 300 s of the restart")
        }
        metric("300 MB after the restart: B holds A's version", seconds(now() - restarted))
        let onB = try sh("stat -c %s '\(b.mnt)/huge.bin'; sha256sum < '\(b.mnt)/huge.bin' | cut -d' ' -f1", timeout: 300)
        XCTAssertEqual(onB, "\(size)\n\(sum)\n", "B's copy of huge.bin (size, SHA-256)")

        // The server's objects: each file named by a hash holds exactly the bytes of that hash.
        let check = try py("""
            import hashlib, os, sys
            top = os.path.join(sys.argv[1], 'objects'); bad = []; temp = 0; n = 0
            for d in os.listdir(top):
                for name in os.listdir(os.path.join(top, d)):
                    if len(d) == 2 and len(name) == 62:
                        n += 1
                        h = hashlib.sha256(open(os.path.join(top, d, name), 'rb').read()).hexdigest()
                        if h != d + name: bad.append(d + name)
                    else:
                        temp += 1
            print(n, temp, ' '.join(bad))
            """, [server.store], timeout: 300).split(separator: " ", omittingEmptySubsequences: false)
        metric("server store after the crash", "\(check[0]) objects, \(check[1]) other files (temporary files left by the crash)")
        XCTAssertEqual(check.count >= 3 ? check[2...].joined().trimmingCharacters(in: .whitespacesAndNewlines) : "?", "",
                       "objects on the server that do not match their hash")

        unmount(a)
        unmount(b)
        for d in [a, b] {
            let r = cdsfs(["fsck", "--home", d.home], timeout: 600)
            XCTAssert(r.succeeded, "fsck of \(d): \(r)")
        }
    }

    // MARK: 5. Strangers

    /// A third device C that is not in A's group lists A in ITS group and sends A its version: A's
    /// mount discards the message and its tree stays as it was.
    func testMessageFromANonMemberIsDiscarded() throws {
        let a = try makeDevice("A", joining: false)
        try mount(a)
        try sh("printf 'mine\\n' > a.txt", cwd: a.mnt)

        // C makes a file of its own before it has a remote (so its mount has no syncer to wait for), then
        // adds the server.
        var c = Device(name: "C", home: root + "/home-C", mnt: root + "/mnt-C")
        Files.mkdirs(c.mnt)
        c.id = try must(["init", "--home", c.home]).split(separator: "\n").map(String.init).first(where: { isHex64($0) }) ?? ""
        try mount(c)
        try sh("printf 'from a stranger\\n' > from-stranger.txt", cwd: c.mnt)
        unmount(c)
        try must(["remote", "add", "--home", c.home, server.url])

        guard try waitUntil(10, interval: 0.25, { try versions(a).count >= 2 }) != nil else {
            throw StopTest("A did not commit a.txt")
        }
        let versionsBefore = try versions(a)
        guard let before = tree(a.mnt) else { throw StopTest("cannot list A") }
        // A's mount announces A on the server (its public key is what C needs).
        var added: ProcessResult?
        _ = waitUntil(10, interval: 0.25) {
            added = cdsfs(["group", "add", "--home", c.home, a.id])
            return added!.succeeded
        }
        XCTAssert(added?.succeeded == true, "C could not add A to its group: \(added.map { "\($0)" } ?? "")")
        XCTAssert(added?.stdout.contains("1 message(s)") == true, "C sent A no message: \(added.map { "\($0)" } ?? "")")

        let discarded = waitUntil(15, interval: 0.1) { mountLog(a).contains("discarded message") }
        XCTAssertNotNil(discarded, "A's mount.log does not say that it discarded C's message")
        if let line = mountLog(a).split(separator: "\n").first(where: { $0.contains("discarded message") }) {
            metric("A's mount.log", String(line))
            XCTAssert(line.contains("not an active member"), "the discard names the reason: \(line)")
        }
        sleep(2)
        XCTAssertEqual(tree(a.mnt), before, "A's tree changed after C's message")
        XCTAssertFalse(FileManager.default.fileExists(atPath: a.mnt + "/from-stranger.txt"))
        XCTAssertEqual(try versions(a), versionsBefore, "A made a version after C's message")
        XCTAssertFalse(mountLog(a).contains("pulled: merged") || mountLog(a).contains("fast-forward"),
                       "A's mount merged something")
    }

    // MARK: 6. Removal

    /// After `cdsfs group remove --home A <B>`, new files on A do not reach B, and B's do not reach A.
    func testRemovedDeviceNoLongerSyncs() throws {
        let (a, b) = try makePair()
        try sh("printf 'before\\n' > before.txt", cwd: a.mnt)
        guard waitUntil(10, { Files.readText(b.mnt + "/before.txt") == "before\n" }) != nil else {
            throw StopTest("before.txt did not reach B: sync does not work at all")
        }

        let removed = try must(["group", "remove", "--home", a.home, b.id])
        XCTAssert(removed.contains("revoked"), removed)
        let list = try must(["group", "list", "--home", a.home])
        XCTAssert(list.split(separator: "\n").contains { $0.hasPrefix(b.id) && $0.contains("revoked") },
                  "group list on A shows B revoked: \(list)")

        try sh("printf 'secret\\n' > after-removal-A.txt", cwd: a.mnt)
        sleep(5)
        XCTAssertFalse(FileManager.default.fileExists(atPath: b.mnt + "/after-removal-A.txt"),
                       "a file made on A after B's removal reached B")
        try sh("printf 'from B\\n' > after-removal-B.txt", cwd: b.mnt)
        sleep(5)
        XCTAssertFalse(FileManager.default.fileExists(atPath: a.mnt + "/after-removal-B.txt"),
                       "a file made on B after its removal reached A")
        XCTAssert(FileManager.default.fileExists(atPath: a.mnt + "/after-removal-A.txt"))
        XCTAssert(FileManager.default.fileExists(atPath: b.mnt + "/after-removal-B.txt"))
        // B still believes in the group and keeps sending: A refuses.
        let line = mountLog(a).split(separator: "\n").first { $0.contains("discarded message") }
        metric("A's mount.log after the removal", line.map(String.init) ?? "(no discard line)")
        // A's mount has committed since: the revocation survived its commits and merges.
        let later = try must(["group", "list", "--home", a.home])
        XCTAssert(later.split(separator: "\n").contains { $0.hasPrefix(b.id) && $0.contains("revoked") },
                  "B is no longer revoked on A after A's mount committed: \(later)")
    }

    // MARK: 7. Zero knowledge

    /// After distinctive names and contents synced through it, the server's store holds none of them.
    func testServerStoreHoldsNoNamesOrContents() throws {
        let (a, b) = try makePair()
        let secrets = ["ZKdirQuokka4711", "ZKnamePangolin2718", "ZKcontentAxolotl1618", "ZKnameNarwhal3141",
                       "ZKbigOkapi1414", "ZKtargetTapir1732", "ZKlinkName9001"]
        try sh("""
            mkdir ZKdirQuokka4711
            for i in 1 2 3 4 5; do printf 'ZKcontentAxolotl1618 line %d\\n' $i; done > ZKdirQuokka4711/ZKnamePangolin2718.txt
            python3 -c "import sys; sys.stdout.write('ZKbigOkapi1414 ' * 70000)" > ZKnameNarwhal3141.bin
            ln -s ZKtargetTapir1732 ZKlinkName9001
            """, cwd: a.mnt)
        sleep(2)  // committed
        guard try waitForSameHead(a, b, timeout: 20) != nil else { throw StopTest("B did not reach A's version within 20 s") }
        XCTAssertEqual(tree(b.mnt), tree(a.mnt), "B's mount shows A's files")
        let stored = server.objectBytes()
        XCTAssertGreaterThan(stored, 1_000_000, "the server holds the data (\(stored) B)")
        for place in [server.store] {
            let r = runProcess("/bin/grep", ["-raFl"] + secrets.flatMap { ["-e", $0] } + [place])
            XCTAssertEqual(r.status, 1, "grep found secrets in \(place): \(r)")
        }
        let logs = runProcess("/bin/grep", ["-raFl"] + secrets.flatMap { ["-e", $0] } + server.logs)
        XCTAssertEqual(logs.status, 1, "the server's log names them: \(logs)")
    }

    // MARK: 8. Offline

    /// With the server down, A keeps committing; status says the remote is unreachable and the current
    /// version has not been pushed; once the server is back, status says it was pushed.
    func testOfflineCommitsPileUpAndGoOutLater() throws {
        let a = try makeDevice("A", joining: false)
        try mount(a)
        try sh("printf 'online\\n' > online.txt", cwd: a.mnt)
        var status = ""
        let pushed = try waitUntil(15, interval: 0.5) {
            status = try must(["status", "--home", a.home])
            let count = try versions(a).count
            return status.contains("to push: nothing") && count >= 2
        }
        XCTAssertNotNil(pushed, "status never said the first change was pushed:\n\(status)")

        server.stop(SIGTERM)
        let offlineStart = try versions(a).count
        for i in 1...2 {
            let before = try versions(a).count
            try sh("printf 'offline %d\\n' \(i) > offline-\(i).txt", cwd: a.mnt)
            let committed = try waitUntil(10, interval: 0.25) { try versions(a).count > before }
            XCTAssertNotNil(committed, "offline change \(i) was not committed")
        }
        XCTAssertGreaterThanOrEqual(try versions(a).count, offlineStart + 2, "cdsfs log grows while offline")
        let offline = cdsfs(["status", "--home", a.home], timeout: 60)
        metric("status while offline", offline.stdout.replacingOccurrences(of: "\n", with: " | "))
        XCTAssert(offline.stdout.contains("unreachable"), "status does not say the remote is unreachable: \(offline)")
        XCTAssert(offline.stdout.contains("the current version has not been pushed"), "\(offline)")

        try server.start()
        let took = try waitUntil(40, interval: 0.5) {
            status = try must(["status", "--home", a.home])
            return status.contains(", reachable") && status.contains("to push: nothing")
        }
        XCTAssertNotNil(took, "status did not say the current version was pushed within 40 s:\n\(status)")
        if let took { metric("offline: pushed after the server returned", seconds(took)) }
        XCTAssertFalse(status.contains("last push: never"), status)
    }

    // MARK: Unmounting

    /// `cdsfs unmount` of a mount whose syncer sits in a long poll returns promptly.
    func testUnmountOfASyncingMountIsPrompt() throws {
        let a = try makeDevice("A", joining: false)
        try mount(a)
        try sh("printf 'x\\n' > x.txt", cwd: a.mnt)
        sleep(3)  // committed and pushed; the pull loop is in its long poll
        let start = now()
        unmount(a)
        let took = now() - start
        metric("cdsfs unmount of a syncing mount", seconds(took))
        XCTAssertLessThan(took, 5, "cdsfs unmount took \(seconds(took)) (it waits for the syncer's long poll?)")
    }

    // MARK: Joining by mounting

    /// `cdsfs init --remote` says a new device joins by `cdsfs sync` or by mounting: mounting right away
    /// (no sync first) shows the group's folder.
    func testNewDeviceJoinsByMounting() throws {
        let a = try makeDevice("A", joining: false)
        try mount(a)
        try sh("printf 'shared\\n' > shared.txt", cwd: a.mnt)
        let b = try makeDevice("B", joining: true)
        try must(["group", "add", "--home", a.home, b.id])
        try mount(b)
        let took = waitUntil(10, interval: 0.1) { Files.readText(b.mnt + "/shared.txt") == "shared\n" }
        XCTAssertNotNil(took, "B's mount does not show A's file")
    }
}
