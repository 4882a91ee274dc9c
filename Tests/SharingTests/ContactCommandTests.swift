import Foundation
import Glibc
import TestSupport
import XCTest

/// `cdsfs key show` and `cdsfs contact add|list|remove` through the real binary against a real
/// `cdsfs serve`: the line one person hands to another, pasted as it is, adds a contact on every
/// device of the receiving user.
final class ContactCommandTests: SyncTestCase {
    override class var directoryPrefix: String { "cdsfs-share" }

    /// Runs a line printed by `cdsfs key show` as a shell would, with the test's binary for `cdsfs`
    /// and `--home` added.
    private func paste(_ line: String, home: String) -> ProcessResult {
        XCTAssert(line.hasPrefix("cdsfs contact add "), line)
        return bash("'\(Paths.cdsfs)' \(line.dropFirst("cdsfs ".count)) --home '\(home)'")
    }

    private func assertFails(_ r: ProcessResult, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.succeeded, "should have failed: \(r)", file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, "one line: \(r.stderr)", file: file, line: line)
        XCTAssert(r.stderr.contains(text), "expected “\(text)” in: \(r.stderr)", file: file, line: line)
    }

    func testTheLineFromKeyShowAddsTheContactOnEveryDevice() throws {
        let alice = try makeDevice("alice", joining: false)
        let alice2 = try makeDevice("alice2", joining: true)
        try must(["group", "add", "--home", alice.home, alice2.id])
        XCTAssert(try must(["sync", "--home", alice2.home]).contains("joined"))
        let bob = try makeDevice("bob", joining: false)

        let shown = try must(["key", "show", "--home", bob.home, "--name", "Bob Smith"]).split(separator: "\n").map(String.init)
        XCTAssertEqual(shown.count, 2, "\(shown)")
        XCTAssertEqual(shown.first, bob.id, "the first line stays the actor id alone")
        XCTAssertEqual(shown.last, "cdsfs contact add 'Bob Smith' \(bob.id) --store \(server.url)")

        // Bob's device has not announced itself on the server yet: nothing to check the id against.
        assertFails(paste(shown[1], home: alice.home), "does not know the actor \(bob.id)")
        try must(["sync", "--home", bob.home])
        let added = paste(shown[1], home: alice.home)
        XCTAssert(added.succeeded, "\(added)")
        XCTAssertEqual(try must(["contact", "list", "--home", alice.home]), "Bob Smith  \(bob.id)  \(server.url)\n")

        // The other device of Alice gets it with the ordinary sync.
        try must(["sync", "--home", alice.home])
        try must(["sync", "--home", alice2.home])
        XCTAssertEqual(try must(["contact", "list", "--home", alice2.home]), "Bob Smith  \(bob.id)  \(server.url)\n")

        // Removed on the second device, gone on the first after a sync both ways.
        XCTAssertEqual(try must(["contact", "remove", "--home", alice2.home, "Bob Smith"]), "removed Bob Smith\n")
        try must(["sync", "--home", alice2.home])
        try must(["sync", "--home", alice.home])
        XCTAssertEqual(try must(["contact", "list", "--home", alice.home]), "")
        assertFails(cdsfs(["contact", "remove", "--home", alice.home, "Bob Smith"]), "Bob Smith is not a contact")
    }

    func testBadContactsAreRefusedInOneLine() throws {
        let alice = try makeDevice("alice", joining: false)
        let bob = try makeDevice("bob", joining: false)
        try must(["sync", "--home", bob.home])
        let add = ["contact", "add", "--home", alice.home]
        assertFails(cdsfs(add + ["bob", "1234", "--store", server.url]), "1234 is not an actor id")
        assertFails(cdsfs(add + ["bob/x", bob.id, "--store", server.url]), "cannot hold '/'")
        assertFails(cdsfs(add + ["bob", bob.id, "--store", "http://127.0.0.1:1"]), "cannot read http://127.0.0.1:1")
        assertFails(cdsfs(add + ["bob", bob.id, "--store", "ftp://x"]), "remote URLs start with")
        assertFails(cdsfs(add + ["me", alice.id, "--store", server.url]), "own actor id")
        let stranger = String(repeating: "ab", count: 32)
        assertFails(cdsfs(add + ["x", stranger, "--store", server.url]), "does not know the actor \(stranger)")
        XCTAssertEqual(try must(["contact", "list", "--home", alice.home]), "")

        try must(add + ["bob", bob.id, "--store", server.url])
        assertFails(cdsfs(add + ["bob", bob.id, "--store", server.url]), "bob is already a contact")
        assertFails(cdsfs(add + ["robert", bob.id, "--store", server.url]), "is already the contact bob")
        // Without a remote, `key show` prints the actor id alone, as before.
        let lonely = root + "/lonely"
        let id = try must(["init", "--home", lonely]).split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertEqual(try must(["key", "show", "--home", lonely]), id + "\n")
    }
}
