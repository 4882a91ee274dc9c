import Condensation
import Synchronization
import XCTest

/// A memory store that logs what is asked of it, and can be told to fail.
final class LoggingStore: Store {
    enum Call: Equatable { case get(Hash), put(Hash), book(Hash) }

    let inner = MemoryStore()
    private let state = Mutex<(calls: [Call], failing: Bool)>(([], false))

    var url: String { "logging:" }
    var calls: [Call] { state.withLock { $0.calls } }
    var puts: [Hash] { calls.compactMap { if case .put(let h) = $0 { h } else { nil } } }
    var gets: [Hash] { calls.compactMap { if case .get(let h) = $0 { h } else { nil } } }
    var books: [Hash] { calls.compactMap { if case .book(let h) = $0 { h } else { nil } } }
    func fail() { state.withLock { $0.failing = true } }

    private func log(_ call: Call) throws(StoreError) {
        try state.withLock { (s) throws(StoreError) in
            if s.failing { throw StoreError.unreachable("test") }
            s.calls.append(call)
        }
    }

    func get(_ hash: Hash) throws(StoreError) -> Object? { try log(.get(hash)); return try inner.get(hash) }
    func put(_ hash: Hash, _ object: Object) throws(StoreError) { try log(.put(hash)); try inner.put(hash, object) }
    func book(_ hash: Hash) throws(StoreError) -> Bool { try log(.book(hash)); return try inner.book(hash) }
    func list(_ account: Hash, _ box: BoxLabel) throws(StoreError) -> [Hash] { try inner.list(account, box) }
    func add(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) { try inner.add(account, box, hash) }
    func remove(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) { try inner.remove(account, box, hash) }
    func modify(_ modifications: Modifications) throws(StoreError) { try inner.modify(modifications) }
    func flush() throws(StoreError) {}
}

/// A tree of objects built bottom-up: leaves, shared subtrees, and a root over them.
struct TestTree {
    var objects: [Hash: Object] = [:]
    var root = Hash.emptyObject

    @discardableResult
    mutating func add(_ children: [Hash], _ g: inout SeededGenerator) -> Hash {
        let object = Object(hashes: children, data: g.bytes(Int.random(in: 0...300, using: &g)))
        let hash = object.calculateHash()
        objects[hash] = object
        return hash
    }

    /// `count` objects; each new one links to up to four earlier ones, so subtrees are shared.
    static func random(_ g: inout SeededGenerator, count: Int) -> TestTree {
        var tree = TestTree()
        var made: [Hash] = []
        for _ in 0..<count {
            let children = made.isEmpty ? [] : (0..<Int.random(in: 0...4, using: &g)).map { _ in made.randomElement(using: &g)! }
            made.append(tree.add(children, &g))
        }
        // A root that reaches everything.
        let unreferenced = Set(made).subtracting(tree.objects.values.flatMap(\.hashes))
        tree.root = tree.add(unreferenced.sorted(), &g)
        return tree
    }

    func put(into store: Store) throws {
        for (hash, object) in objects { try store.put(hash, object) }
    }

    var totalBytes: Int { objects.values.reduce(0) { $0 + $1.bytes.count } }
}

final class TransferTests: XCTestCase {
    func testTransfersAWholeTreeChildrenFirst() throws {
        var g = SeededGenerator(seed: 61)
        let tree = TestTree.random(&g, count: 300)
        let source = LoggingStore()
        try tree.put(into: source.inner)
        let destination = LoggingStore()

        var reports: [TransferProgress] = []
        let result = try TreeTransfer.transfer(tree.root, from: source, to: destination) { reports.append($0) }

        XCTAssertEqual(result.objectsTransferred, tree.objects.count)
        XCTAssertEqual(result.bytesTransferred, tree.totalBytes)
        XCTAssertEqual(result.subtreesPresent, 0)
        XCTAssertEqual(Set(destination.inner.objectHashes), Set(tree.objects.keys))
        // Each object read once and put once, however many parents share it.
        XCTAssertEqual(source.gets.count, tree.objects.count)
        XCTAssertEqual(Set(source.gets).count, tree.objects.count)
        XCTAssertEqual(destination.puts.count, tree.objects.count)
        XCTAssertEqual(destination.books.count, tree.objects.count)
        // Children before parents: when an object is put, all its children are there already.
        var present = Set<Hash>()
        for hash in destination.puts {
            for child in tree.objects[hash]!.hashes { XCTAssertTrue(present.contains(child), "child put after parent") }
            present.insert(hash)
        }
        XCTAssertEqual(destination.puts.last, tree.root)
        // Progress: once per object, counting up, ending with the result.
        XCTAssertEqual(reports.count, tree.objects.count)
        XCTAssertEqual(reports.map(\.objectsTransferred), Array(1...tree.objects.count))
        XCTAssertEqual(reports.last, result)
    }

    func testBookingTheRootIsEnoughWhenItIsThere() throws {
        var g = SeededGenerator(seed: 62)
        let tree = TestTree.random(&g, count: 50)
        let source = LoggingStore()
        try tree.put(into: source.inner)
        let destination = LoggingStore()
        try TreeTransfer.transfer(tree.root, from: source, to: destination)
        let callsBefore = source.calls.count

        let again = try TreeTransfer.transfer(tree.root, from: source, to: destination)
        XCTAssertEqual(again.objectsTransferred, 0)
        XCTAssertEqual(again.bytesTransferred, 0)
        XCTAssertEqual(again.subtreesPresent, 1)
        XCTAssertEqual(source.calls.count, callsBefore, "nothing read from the source")
        XCTAssertEqual(destination.books.suffix(1), [tree.root])
    }

    func testSubtreesAlreadyPresentAreNotRead() throws {
        var g = SeededGenerator(seed: 63)
        var tree = TestTree()
        let leaves = (0..<4).map { _ in tree.add([], &g) }
        let old = tree.add([leaves[0], leaves[1]], &g)
        let new = tree.add([leaves[2], leaves[3]], &g)
        tree.root = tree.add([old, new], &g)
        let source = LoggingStore()
        try tree.put(into: source.inner)
        let destination = LoggingStore()
        for h in [leaves[0], leaves[1], old] { try destination.inner.put(h, tree.objects[h]!) }

        let result = try TreeTransfer.transfer(tree.root, from: source, to: destination)
        XCTAssertEqual(result.objectsTransferred, 4)
        XCTAssertEqual(result.subtreesPresent, 1)
        XCTAssertEqual(Set(source.gets), [tree.root, new, leaves[2], leaves[3]])
        XCTAssertEqual(Set(destination.books), [tree.root, old, new, leaves[2], leaves[3]])
        XCTAssertEqual(Set(destination.inner.objectHashes), Set(tree.objects.keys))
    }

    func testMissingObjectIsNamed() throws {
        var g = SeededGenerator(seed: 64)
        let tree = TestTree.random(&g, count: 100)
        let source = LoggingStore()
        try tree.put(into: source.inner)
        // Take away one object that is not the root: rebuild the source without it.
        let victim = tree.objects.keys.sorted().first { $0 != tree.root }!
        let partial = LoggingStore()
        for (h, o) in tree.objects where h != victim { try partial.inner.put(h, o) }
        let destination = MemoryStore()

        XCTAssertThrowsError(try TreeTransfer.transfer(tree.root, from: partial, to: destination)) {
            XCTAssertEqual($0 as? TransferError, .missing(victim))
            XCTAssertTrue(String(describing: $0).contains(victim.hex))
        }
        // What was put before the failure is made of complete subtrees only.
        let there = Set(destination.objectHashes)
        XCTAssertFalse(there.contains(tree.root))
        for h in there {
            for child in tree.objects[h]!.hashes { XCTAssertTrue(there.contains(child), "a parent without its child") }
        }
        // Once the object is back, the transfer resumes and completes.
        try partial.inner.put(victim, tree.objects[victim]!)
        let resumed = try TreeTransfer.transfer(tree.root, from: partial, to: destination)
        XCTAssertEqual(resumed.objectsTransferred, tree.objects.count - there.count)
        XCTAssertEqual(Set(destination.objectHashes), Set(tree.objects.keys))
    }

    func testMissingRoot() {
        XCTAssertThrowsError(try TreeTransfer.transfer(.emptyObject, from: MemoryStore(), to: MemoryStore())) {
            XCTAssertEqual($0 as? TransferError, .missing(.emptyObject))
        }
    }

    func testStoreFailuresSayWhichSide() throws {
        var g = SeededGenerator(seed: 65)
        let tree = TestTree.random(&g, count: 10)
        let source = LoggingStore()
        try tree.put(into: source.inner)
        let failingSource = LoggingStore()
        try tree.put(into: failingSource.inner)
        failingSource.fail()
        XCTAssertThrowsError(try TreeTransfer.transfer(tree.root, from: failingSource, to: MemoryStore())) {
            XCTAssertEqual($0 as? TransferError, .source(.unreachable("test")))
        }
        let failingDestination = LoggingStore()
        failingDestination.fail()
        XCTAssertThrowsError(try TreeTransfer.transfer(tree.root, from: source, to: failingDestination)) {
            XCTAssertEqual($0 as? TransferError, .destination(.unreachable("test")))
        }
    }

    func testDeepChainNeedsNoRecursion() throws {
        // 50,000 levels: a recursive walk would need a frame per level.
        var g = SeededGenerator(seed: 66)
        var tree = TestTree()
        var top = tree.add([], &g)
        for _ in 0..<50_000 { top = tree.add([top], &g) }
        tree.root = top
        let source = MemoryStore()
        try tree.put(into: source)
        let destination = MemoryStore()
        let result = try TreeTransfer.transfer(tree.root, from: source, to: destination)
        XCTAssertEqual(result.objectsTransferred, 50_001)
    }

    func testBetweenFolderStores() throws {
        var g = SeededGenerator(seed: 67)
        let tree = TestTree.random(&g, count: 60)
        let dir = temporaryDirectory(self)
        let source = try FolderStore.create(dir + "/a")
        try tree.put(into: source)
        let destination = try FolderStore.create(dir + "/b")
        let result = try TreeTransfer.transfer(tree.root, from: source, to: destination)
        XCTAssertEqual(result.objectsTransferred, tree.objects.count)
        XCTAssertEqual(Set(try destination.allObjects()), Set(tree.objects.keys))
        for (h, o) in tree.objects { XCTAssertEqual(try destination.get(h), o) }
    }

    func testAnEncryptedFilesystemTree() throws {
        // The shape cdsfs writes: envelope → encrypted root → encrypted children, links with keys.
        let source = MemoryStore()
        var leafRecord = Record()
        leafRecord.add("data", bytes: Random.bytes(100))
        let leafKey = AESKey.random()
        let leaf = leafRecord.object().crypted(with: leafKey)
        let leafHash = try source.put(leaf)
        var rootRecord = Record()
        rootRecord.add("file", link: HashAndKey(hash: leafHash, key: leafKey))
        rootRecord.add("copy", link: HashAndKey(hash: leafHash, key: leafKey))
        let rootKey = AESKey.random()
        let rootHash = try source.put(rootRecord.object().crypted(with: rootKey))
        let envelope = Envelope.privateEnvelope(content: HashAndKey(hash: rootHash, key: rootKey), recipients: [],
                                                signer: TestKeys.alice)
        let envelopeHash = try source.put(envelope)

        let destination = MemoryStore()
        let result = try TreeTransfer.transfer(envelopeHash, from: source, to: destination)
        XCTAssertEqual(result.objectsTransferred, 3)
        let opened = try Envelope.openPrivate(XCTUnwrap(destination.get(envelopeHash)), signer: TestKeys.alice.publicKey,
                                              keyPair: TestKeys.alice)
        let root = try Record(object: XCTUnwrap(destination.get(opened.hash)).crypted(with: opened.key))
        let link = try XCTUnwrap(root.link("file"))
        XCTAssertEqual(try Record(object: XCTUnwrap(destination.get(link.hash)).crypted(with: link.key)), leafRecord)
    }
}
