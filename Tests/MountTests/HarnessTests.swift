import Foundation
import Glibc
import TestSupport
import XCTest

/// The helpers themselves, on native directories only (no mount): a difference the mount tests report
/// must come from the mount, not from the harness.
final class HarnessTests: XCTestCase {
    var root = ""

    override func setUp() {
        super.setUp()
        root = Files.makeTemporaryDirectory("cdsfs-harness")
    }

    override func tearDown() {
        _ = runProcess("/bin/rm", ["-rf", root])
        super.tearDown()
    }

    func testNativeCopyCompareEqualAndChangesAreSeen() {
        let a = root + "/a", b = root + "/b"
        Files.mkdirs(a)
        SampleTree.make(at: a)
        let r = bash("cp -a '\(a)' '\(b)'")
        XCTAssert(r.succeeded, "\(r)")
        let sa = TreeSnapshot(a)
        XCTAssertEqual(treeDifferences(sa, TreeSnapshot(b), .all), [])
        XCTAssertEqual(sa.linkGroups()["hello.txt"], ["a/b/hard2", "a/hard1", "hello.txt"])
        XCTAssertEqual(sa.entries["a/b/random-4k.bin"]?.xattrs["user.binary"], [0, 1, 2, 255, 254, 0, 10])
        XCTAssertEqual(sa.entries["dangling"]?.target, "nowhere/at/all")
        XCTAssertEqual(sa.entries["read-only.txt"]?.permissions, 0o444)

        // Each kind of change is reported.
        _ = bash("""
        cd '\(b)'
        echo x >> one
        chmod 600 exec.sh
        touch -d 2000-01-01 empty.txt
        rm a/hard1 && cp hello.txt a/hard1
        setfattr -n user.color -v green hello.txt
        ln -sfn elsewhere dangling
        touch -d 2000-01-01 many
        """)
        let diffs = treeDifferences(sa, TreeSnapshot(b), .all).joined(separator: "\n")
        for expected in ["one: size", "one: contents", "exec.sh: mode", "empty.txt: mtime", "hello.txt: link count",
                         "a/hard1: hard links", "hello.txt: xattrs", "dangling: symlink target", "many: mtime"] {
            XCTAssert(diffs.contains(expected), "not reported: \(expected)\n\(diffs)")
        }
        XCTAssertEqual(treeDifferences(sa, TreeSnapshot(b), [.contents]).filter { $0.contains("contents") }.count, 1,
                       "only one content change")
    }

    func testModelRunIsDeterministicOnTwoNativeDirectories() {
        let a = root + "/a", b = root + "/b"
        Files.mkdirs(a)
        Files.mkdirs(b)
        var run = ModelRun(seed: 42, native: a, mount: b)
        for i in 0..<600 {
            let step = run.step()
            if step.native != step.mount {
                XCTFail("operation \(i) \(step.description): \(step.native) vs \(step.mount)")
                break
            }
        }
        run.closeAll()
        XCTAssertEqual(treeDifferences(TreeSnapshot(a), TreeSnapshot(b), .allButTimes), [])
        print("harness model run: \(run.statistics())")
        XCTAssertGreaterThan(TreeSnapshot(a).entries.count, 10, "the random run should leave a tree behind")
    }

    func testProcessCaptureAndTimeout() {
        let r = bash("echo out; echo err >&2; exit 3")
        XCTAssertEqual(r.status, 3)
        XCTAssertEqual(r.stdout, "out\n")
        XCTAssertEqual(r.stderrLines, ["err"])
        let slow = bash("sleep 30", timeout: 0.5)
        XCTAssert(slow.timedOut)
        XCTAssertLessThan(slow.seconds, 5)
        // A background child keeping stdout open does not make the caller wait.
        let start = Date()
        let daemonish = bash("(sleep 3 &) ; echo started")
        XCTAssertEqual(daemonish.stdout, "started\n")
        XCTAssertLessThan(Date().timeIntervalSince(start), 2.5)
    }
}
