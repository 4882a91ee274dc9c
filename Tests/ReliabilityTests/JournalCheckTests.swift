import TestSupport
import XCTest

/// The crash test's journal rules on made-up journals (no mount): what a crash may and may not leave.
final class JournalCheckTests: XCTestCase {
    private func check(_ journal: [JournalEntry], _ files: [String: String]) -> JournalCheck.Result {
        JournalCheck(journal).match { files[$0] }
    }

    func testFsyncedFilesMustBeThereWithTheirContent() {
        let journal: [JournalEntry] = [.durable("it/f1", sha: "a"), .durable("it/f2", sha: "b")]
        XCTAssertNil(check(journal, ["it/f1": "a", "it/f2": "b"]).problem)
        XCTAssertNotNil(check(journal, ["it/f1": "a"]).problem, "a lost fsync'd file passes")
        XCTAssertNotNil(check(journal, ["it/f1": "a", "it/f2": "x"]).problem, "wrong content passes")
    }

    func testChangesAfterTheLastFsyncMayOrMayNotHaveLanded() {
        let journal: [JournalEntry] = [.durable("it/f1", sha: "a"), .begin(.rename("it/f1", "it/r2")), .end,
                                       .begin(.link("it/r2", "it/h3"))]
        XCTAssertEqual(check(journal, ["it/f1": "a"]).matched, 1)
        XCTAssertEqual(check(journal, ["it/r2": "a"]).matched, 2)
        XCTAssertEqual(check(journal, ["it/r2": "a", "it/h3": "a"]).matched, 3)
        // Not a prefix: the link without the rename, or both names.
        XCTAssertNotNil(check(journal, ["it/f1": "a", "it/h3": "a"]).problem)
        XCTAssertNotNil(check(journal, ["it/f1": "a", "it/r2": "a"]).problem)
        XCTAssertNotNil(check(journal, [:]).problem)
    }

    func testChangesBeforeAnFsyncMustHaveLanded() {
        var model = JournalCheck([.durable("it/f1", sha: "a"), .begin(.unlink("it/f1")), .end, .sync])
        XCTAssertNil(model.match { _ in nil }.problem)
        XCTAssertNotNil(model.match { _ in "a" }.problem, "an unlink followed by an fsync was undone")
        model = JournalCheck([.durable("it/old", sha: "a"), .durable("it/tmp", sha: "b"),
                              .begin(.rename("it/tmp", "it/old")), .end, .durable("it/other", sha: "c")])
        XCTAssertNil(model.match { ["it/old": "b", "it/other": "c"][$0] }.problem)
        XCTAssertNotNil(model.match { ["it/old": "a", "it/tmp": "b", "it/other": "c"][$0] }.problem,
                        "a replacement followed by an fsync was undone")
    }

    func testAnOperationThatDidNotEndCannotBeFollowed() {
        let journal: [JournalEntry] = [.durable("it/f1", sha: "a"), .begin(.unlink("it/f1")), .durable("it/f2", sha: "b")]
        XCTAssertNotNil(check(journal, ["it/f2": "b"]).problem)
    }
}
