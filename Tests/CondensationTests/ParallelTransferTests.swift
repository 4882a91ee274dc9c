import Condensation
import XCTest

/// `TreeTransfer` with several requests in flight (what remote stores get): the same guarantees as
/// one at a time — every object once, children on the destination before their parent, present
/// subtrees not read, errors that say which side.
final class ParallelTransferTests: XCTestCase {
    func testWholeTreesChildrenFirst() throws {
        for seed in 70..<76 {
            var g = SeededGenerator(seed: UInt64(seed))
            let tree = TestTree.random(&g, count: 400)
            let source = LoggingStore()
            try tree.put(into: source.inner)
            let destination = LoggingStore()
            var reports = 0
            let result = try TreeTransfer.transfer(tree.root, from: source, to: destination, concurrency: 6) { _ in reports += 1 }

            XCTAssertEqual(result.objectsTransferred, tree.objects.count)
            XCTAssertEqual(result.bytesTransferred, tree.totalBytes)
            XCTAssertEqual(Set(destination.inner.objectHashes), Set(tree.objects.keys))
            XCTAssertEqual(source.gets.count, tree.objects.count, "each object read once")
            XCTAssertEqual(destination.puts.count, tree.objects.count, "each object put once")
            XCTAssertEqual(reports, tree.objects.count)
            var present = Set<Hash>()
            for hash in destination.puts {
                for child in tree.objects[hash]!.hashes { XCTAssertTrue(present.contains(child), "child put after parent (seed \(seed))") }
                present.insert(hash)
            }
            XCTAssertEqual(destination.puts.last, tree.root)
        }
    }

    func testPresentSubtreesAreNotRead() throws {
        var g = SeededGenerator(seed: 77)
        var tree = TestTree()
        let leaves = (0..<6).map { _ in tree.add([], &g) }
        let old = tree.add([leaves[0], leaves[1], leaves[2]], &g)
        let new = tree.add([leaves[3], leaves[4], leaves[5], leaves[0]], &g)
        tree.root = tree.add([old, new], &g)
        let source = LoggingStore()
        try tree.put(into: source.inner)
        let destination = LoggingStore()
        for h in [leaves[0], leaves[1], leaves[2], old] { try destination.inner.put(h, tree.objects[h]!) }

        let result = try TreeTransfer.transfer(tree.root, from: source, to: destination, concurrency: 4)
        XCTAssertEqual(result.objectsTransferred, 5)
        XCTAssertEqual(Set(source.gets), [tree.root, new, leaves[3], leaves[4], leaves[5]])
        XCTAssertEqual(Set(destination.inner.objectHashes), Set(tree.objects.keys))
    }

    func testMissingObjectIsNamedAndNothingAboveItIsPut() throws {
        var g = SeededGenerator(seed: 78)
        let tree = TestTree.random(&g, count: 200)
        let source = LoggingStore()
        try tree.put(into: source.inner)
        let victim = tree.objects.first { !$0.value.hashes.isEmpty && $0.key != tree.root }!.key
        let destination = LoggingStore()
        let sourceWithout = LoggingStore()
        for (h, o) in tree.objects where h != victim { try sourceWithout.inner.put(h, o) }
        XCTAssertThrowsError(try TreeTransfer.transfer(tree.root, from: sourceWithout, to: destination, concurrency: 5)) { error in
            XCTAssertEqual(error as? TransferError, .missing(victim))
        }
        XCTAssertFalse(destination.puts.contains(tree.root), "the root is never put over a hole")
        // Resuming from a complete source finishes the tree.
        try TreeTransfer.transfer(tree.root, from: source, to: destination, concurrency: 5)
        XCTAssertEqual(Set(destination.inner.objectHashes), Set(tree.objects.keys))
    }

    func testDestinationFailureSaysSo() throws {
        var g = SeededGenerator(seed: 79)
        let tree = TestTree.random(&g, count: 100)
        let source = LoggingStore()
        try tree.put(into: source.inner)
        let destination = LoggingStore()
        destination.fail()
        XCTAssertThrowsError(try TreeTransfer.transfer(tree.root, from: source, to: destination, concurrency: 3)) { error in
            XCTAssertEqual(error as? TransferError, .destination(.unreachable("test")))
        }
    }
}
