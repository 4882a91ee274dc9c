import Foundation
import Glibc
import TestSupport
import XCTest

/// Three homes against one real `cdsfs serve`: Alice's two devices and Bob's one, all mounted. Alice
/// shares `Projects/` with Bob read-only (Bob sees it and Alice's later changes, cannot write to it,
/// and nothing else of Alice's reaches him or the server in the clear; after unshare nothing more
/// reaches him), or with --write (Bob's edits reach both of Alice's devices, concurrent edits keep both).
final class ThreeHomesShareTests: SyncTestCase {
    override class var directoryPrefix: String { "cdsfs-share" }
    override class var metricLabel: String { "SHARE-METRIC" }

    /// Pastes the contact line of `from`'s `cdsfs key show --name NAME` into `to`'s home.
    private func addContact(_ from: Device, named name: String, to: Device) throws {
        let shown = try must(["key", "show", "--home", from.home, "--name", name]).split(separator: "\n")
        guard shown.count == 2 else { throw StopTest("key show printed no contact line: \(shown)") }
        let r = bash("'\(Paths.cdsfs)' \(shown[1].dropFirst("cdsfs ".count)) --home '\(to.home)'")
        guard r.succeeded else { throw StopTest("\(r)") }
    }

    func testWithWriteBobsEditReachesBothOfAlicesDevicesAndConcurrentEditsKeepBoth() throws {
        let (a1, a2, bob) = try threeHomes()
        try sh("mkdir -p '\(a1.mnt)/Projects' && echo plan > '\(a1.mnt)/Projects/plan.txt'")
        XCTAssert(try must(["share", "--home", a1.home, a1.mnt + "/Projects", "bob", "--write"]).contains("read and write"))
        let bobProjects = bob.mnt + "/Shared/Projects (alice)"
        guard try waitUntil(20, interval: 0.1, { Files.readText(bobProjects + "/plan.txt") == "plan\n" }) != nil else {
            throw StopTest("Bob never saw the share")
        }
        try sh("echo 'from bob' > '\(bobProjects)/bob.txt'")
        for d in [a1, a2] {
            let t = try waitUntil(20, interval: 0.1) { Files.readText(d.mnt + "/Projects/bob.txt") == "from bob\n" }
            XCTAssertNotNil(t, "Bob's edit never reached \(d)")
            if let t { metric("Bob's edit seen by \(d) after (s)", String(format: "%.2f", t)) }
        }
        // At once on both sides: each adds a file and both change plan.txt.
        try sh("echo 'alice v2' > '\(a1.mnt)/Projects/plan.txt' && echo a > '\(a1.mnt)/Projects/alice.txt'")
        try sh("echo 'bob v2' > '\(bobProjects)/plan.txt' && echo b > '\(bobProjects)/bob2.txt'")
        let settled = try waitUntil(40, interval: 0.25) {
            try requireAlive(a1, a2, bob)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: a1.mnt + "/Projects")) ?? []
            let mine = Set(names)
            let his = Set((try? FileManager.default.contentsOfDirectory(atPath: bobProjects)) ?? [])
            let second = Set((try? FileManager.default.contentsOfDirectory(atPath: a2.mnt + "/Projects")) ?? [])
            return mine.isSuperset(of: ["alice.txt", "bob2.txt"]) && mine.contains { $0.hasPrefix("plan.txt (conflict ") }
                && mine == his && mine == second
        }
        XCTAssertNotNil(settled, "alice1: \(tree(a1.mnt + "/Projects") ?? "-")\nbob: \(tree(bobProjects) ?? "-")\nalice2: \(tree(a2.mnt + "/Projects") ?? "-")")
        XCTAssertEqual(tree(a1.mnt + "/Projects"), tree(bobProjects))
    }

    /// Alice's two devices and Bob's, contacts of each other, all mounted.
    private func threeHomes() throws -> (Device, Device, Device) {
        let a1 = try makeDevice("alice1", joining: false)
        let a2 = try makeDevice("alice2", joining: true)
        try must(["group", "add", "--home", a1.home, a2.id])
        XCTAssert(try must(["sync", "--home", a2.home]).contains("joined"))
        let bob = try makeDevice("bob", joining: false)
        try must(["sync", "--home", bob.home])
        try must(["sync", "--home", a1.home])
        try addContact(bob, named: "bob", to: a1)
        try addContact(a1, named: "alice", to: bob)
        try must(["sync", "--home", a1.home])
        try must(["sync", "--home", a2.home])
        for d in [a1, a2, bob] { try mount(d) }
        return (a1, a2, bob)
    }

    func testAliceSharesProjectsWithBobReadOnly() throws {
        let (a1, a2, bob) = try threeHomes()

        let secretName = "unshared-\(UInt32.random(in: 0...UInt32.max))"
        let secretText = "private-content-\(UInt32.random(in: 0...UInt32.max))"
        try sh("""
        cd '\(a1.mnt)' && mkdir -p Projects/src '\(secretName)' && echo plan > Projects/plan.txt
        head -c 1500000 /dev/urandom > Projects/src/data.bin && echo '\(secretText)' > '\(secretName)/notes.txt'
        """)
        let shared = try must(["share", "--home", a1.home, a1.mnt + "/Projects", "bob"])
        XCTAssert(shared.contains("shared with bob (read-only)"), shared)

        // Bob sees it within 5 s of the share (Alice's commit interval is 1 s).
        let bobProjects = bob.mnt + "/Shared/Projects (alice)"
        let seen = try waitUntil(20, interval: 0.1) {
            try requireAlive(a1, bob)
            return Files.readText(bobProjects + "/plan.txt") == "plan\n"
        }
        guard let seen else { throw StopTest("Bob never saw Shared/Projects (alice); \(mountLog(bob).suffix(2000))") }
        metric("share seen by Bob after (s)", String(format: "%.2f", seen))
        XCTAssertLessThan(seen, 5)
        XCTAssertEqual(tree(bobProjects), tree(a1.mnt + "/Projects"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: bob.mnt).sorted(), ["Shared"],
                       "nothing else of Alice's")

        // Alice's later change reaches Bob.
        try sh("echo 'plan, v2' > '\(a1.mnt)/Projects/plan.txt' && echo new > '\(a1.mnt)/Projects/src/new.txt'")
        let later = try waitUntil(20, interval: 0.1) { Files.readText(bobProjects + "/src/new.txt") == "new\n" }
        XCTAssertNotNil(later, "Alice's later change never reached Bob")
        if let later { metric("later change seen by Bob after (s)", String(format: "%.2f", later)) }
        XCTAssertEqual(Files.readText(bobProjects + "/plan.txt"), "plan, v2\n")

        // Bob cannot write to it.
        for attempt in ["echo x > '\(bobProjects)/plan.txt'", "echo x > '\(bobProjects)/mine.txt'",
                        "mkdir '\(bobProjects)/d'", "rm '\(bobProjects)/plan.txt'", "mv '\(bobProjects)/plan.txt' '\(bob.mnt)/'",
                        "touch '\(bobProjects)/plan.txt'"] {
            let r = bash(attempt)
            XCTAssertFalse(r.succeeded, attempt)
            XCTAssert(r.stderr.contains("Read-only file system"), "\(attempt): \(r.stderr)")
        }
        XCTAssertEqual(Files.readText(bobProjects + "/plan.txt"), "plan, v2\n")

        // Alice's second device lists the share; so do Bob's `cdsfs shares`.
        let listed = try waitUntil(20, interval: 0.25) {
            self.cdsfs(["shares", "--home", a2.home]).stdout.contains("/Projects  shared with bob (read-only)")
        }
        XCTAssertNotNil(listed, "alice2: \(cdsfs(["shares", "--home", a2.home]))")
        XCTAssertEqual(try must(["shares", "--home", bob.home]), "/Shared/Projects (alice)  from alice (read-only)\n")

        // Zero knowledge: the server's store and Bob's home hold neither the unshared folder's name
        // nor its content, nor the shared folder's names in the clear.
        for place in [server.store, bob.home] {
            for needle in [secretName, secretText, "plan.txt", "Projects"] {
                let r = bash("grep -rlF -- '\(needle)' '\(place)' | grep -v '\\.log$' | head -3")
                XCTAssertEqual(r.stdout, "", "\(needle) found in \(place)")
            }
        }
        XCTAssertNil(Files.readText(bob.mnt + "/\(secretName)/notes.txt"))

        // Unshared: Alice's next changes never reach Bob; what he had stays.
        let r = cdsfs(["unshare", "--home", a1.home, a1.mnt + "/Projects", "carol"])
        XCTAssert(!r.succeeded && r.stderr.contains("carol is not a contact"), "\(r)")
        let unshared = try must(["unshare", "--home", a1.home, a1.mnt + "/Projects", "bob"])
        XCTAssert(unshared.contains("no longer shared with bob"), unshared)
        let again = cdsfs(["unshare", "--home", a1.home, a1.mnt + "/Projects", "bob"])
        XCTAssert(!again.succeeded && again.stderr.contains("is not shared with bob"), "\(again)")
        try sh("echo 'plan, v3' > '\(a1.mnt)/Projects/plan.txt'")
        let a1Committed = try waitUntil(20, interval: 0.25) {
            self.cdsfs(["shares", "--home", a1.home]).stdout == "nothing is shared\n"
        }
        XCTAssertNotNil(a1Committed, "the unshare was never committed")
        sleep(4)  // several commit intervals and pushes
        XCTAssertEqual(Files.readText(bobProjects + "/plan.txt"), "plan, v2\n")
        // Alice's own devices still get it.
        XCTAssertNotNil(waitUntil(20, interval: 0.25) { Files.readText(a2.mnt + "/Projects/plan.txt") == "plan, v3\n" })
    }
}
