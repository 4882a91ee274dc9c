import Condensation
import Glibc
import XCTest

final class StoreTests: XCTestCase {
    private var g = SeededGenerator(seed: 41)

    private func randomObject() -> Object {
        Object(hashes: [g.hash()], data: g.bytes(Int.random(in: 0...500, using: &g)))
    }

    /// Each semantic test runs on both stores.
    private func stores() throws -> [Store] {
        [MemoryStore(), try FolderStore.create(temporaryDirectory(self) + "/store")]
    }

    // MARK: Semantics shared by every store

    func testPutGetBook() throws {
        for store in try stores() {
            let object = randomObject()
            let hash = object.calculateHash()
            XCTAssertNil(try store.get(hash), store.url)
            XCTAssertFalse(try store.book(hash), store.url)
            XCTAssertEqual(try store.put(object), hash)
            XCTAssertEqual(try store.get(hash), object, store.url)
            XCTAssertTrue(try store.book(hash), store.url)
            // Putting again is harmless.
            try store.put(hash, object)
            XCTAssertEqual(try store.get(hash), object, store.url)
            try store.flush()
        }
    }

    func testBoxes() throws {
        for store in try stores() {
            let account = g.hash(), other = g.hash()
            let a = g.hash(), b = g.hash()
            XCTAssertEqual(try store.list(account, .private), [], store.url)
            try store.add(account, .private, a)
            try store.add(account, .private, b)
            try store.add(account, .private, a)
            try store.add(account, .public, b)
            XCTAssertEqual(try store.list(account, .private).sorted(), [a, b].sorted(), store.url)
            XCTAssertEqual(try store.list(account, .public), [b], store.url)
            XCTAssertEqual(try store.list(account, .messages), [], store.url)
            XCTAssertEqual(try store.list(other, .private), [], store.url)
            try store.remove(account, .private, a)
            try store.remove(account, .private, a)
            try store.remove(other, .messages, a)
            XCTAssertEqual(try store.list(account, .private), [b], store.url)
        }
    }

    func testModify() throws {
        for store in try stores() {
            let account = g.hash()
            let old = g.hash()
            try store.add(account, .private, old)
            var m = Modifications()
            XCTAssertTrue(m.isEmpty)
            let x = m.put(randomObject())
            let y = m.put(randomObject())
            m.additions = [BoxChange(account, .private, x), BoxChange(account, .messages, y)]
            m.removals = [BoxChange(account, .private, old), BoxChange(account, .public, g.hash())]
            XCTAssertFalse(m.isEmpty)
            try store.modify(m)
            XCTAssertNotNil(try store.get(x), store.url)
            XCTAssertNotNil(try store.get(y), store.url)
            XCTAssertEqual(try store.list(account, .private), [x], store.url)
            XCTAssertEqual(try store.list(account, .messages), [y], store.url)
        }
    }

    func testModificationsRecordRoundTrip() throws {
        var m = Modifications()
        let a = g.hash(), b = g.hash()
        _ = m.put(randomObject())
        _ = m.put(Object.empty)
        m.additions = [BoxChange(a, .public, g.hash()), BoxChange(b, .messages, g.hash()), BoxChange(a, .private, g.hash()),
                       BoxChange(a, .public, g.hash())]
        m.removals = [BoxChange(b, .private, g.hash())]
        let parsed = try Modifications(record: Record(object: m.record.object()))
        XCTAssertEqual(parsed.puts.map(\.0), m.puts.map(\.0))
        XCTAssertEqual(parsed.puts.map(\.1), m.puts.map(\.1))
        // Grouped by account, then by box: the order within a group is kept.
        XCTAssertEqual(Set(parsed.additions), Set(m.additions))
        XCTAssertEqual(parsed.additions.filter { $0.account == a && $0.box == .public },
                       m.additions.filter { $0.account == a && $0.box == .public })
        XCTAssertEqual(parsed.removals, m.removals)
    }

    func testModificationsRecordErrors() throws {
        func invalid(_ record: Record, _ expected: Modifications.Invalid) {
            XCTAssertThrowsError(try Modifications(record: record)) { XCTAssertEqual($0 as? Modifications.Invalid, expected) }
        }
        let object = randomObject()
        let wrong = g.hash()
        invalid(Record(children: [Record(text: "put", children: [Record(wrong.bytes, children: [Record(object.bytes)])])]),
                .badObject(wrong))
        invalid(Record(children: [Record(text: "put", children: [Record([1, 2, 3])])]), .badHash)
        let h = object.calculateHash()
        invalid(Record(children: [Record(text: "put", children: [Record(h.bytes)])]), .badObject(h))
        invalid(Record(children: [Record(text: "add", children: [Record(h.bytes, children: [
            Record(text: "inbox", children: [Record(h.bytes)]),
        ])])]), .badBox("inbox"))
        invalid(Record(children: [Record(text: "remove", children: [Record([9])])]), .badHash)
        invalid(Record(children: [Record(text: "add", children: [Record(h.bytes, children: [
            Record(text: "public", children: [Record([1])]),
        ])])]), .badHash)
        XCTAssertTrue(try Modifications(record: Record()).isEmpty)
    }

    func testMemoryStoreListsObjects() throws {
        let store = MemoryStore(url: "memory:test")
        XCTAssertEqual(store.url, "memory:test")
        let h = try store.put(randomObject())
        XCTAssertEqual(store.objectHashes, [h])
    }

    // MARK: Folder store on disk

    func testFolderLayout() throws {
        let root = temporaryDirectory(self) + "/store"
        XCTAssertNil(FolderStore.open(root), "not a store yet")
        let store = try FolderStore.create(root)
        XCTAssertNotNil(FolderStore.open(root))
        XCTAssertNotNil(FolderStore.open(root + "/"))
        XCTAssertEqual(store.url, "file://" + root)
        XCTAssertEqual(FolderStore(path: root + "/").path, root)

        let object = randomObject()
        let hash = try store.put(object)
        let hex = hash.hex
        let objectPath = root + "/objects/" + hex.prefix(2) + "/" + hex.dropFirst(2)
        XCTAssertEqual(store.objectPath(hash), objectPath)
        XCTAssertEqual(try FileSystem.list(root + "/objects"), [String(hex.prefix(2))])
        XCTAssertEqual(try FileSystem.list(root + "/objects/" + hex.prefix(2)), [String(hex.dropFirst(2))])
        XCTAssertEqual(try FileSystem.read(objectPath), object.bytes, "the file holds the object's bytes")

        let account = g.hash()
        try store.add(account, .private, hash)
        try store.add(account, .messages, hash)
        XCTAssertEqual(try FileSystem.list(root + "/accounts"), [account.hex])
        XCTAssertEqual(Set(try FileSystem.list(root + "/accounts/" + account.hex)), ["private", "messages"])
        let entry = root + "/accounts/" + account.hex + "/private/" + hex
        XCTAssertEqual(try FileSystem.read(entry), [], "box entries are empty files")
        XCTAssertEqual(try store.accounts(), [account])
        XCTAssertEqual(try store.allObjects(), [hash])
        try store.remove(account, .private, hash)
        XCTAssertFalse(FileSystem.exists(entry))
    }

    func testNoTemporaryFilesAreLeft() throws {
        let root = temporaryDirectory(self) + "/store"
        let store = try FolderStore.create(root)
        var hashes: [Hash] = []
        for _ in 0..<50 { hashes.append(try store.put(randomObject())) }
        var names = 0
        for prefix in try FileSystem.list(root + "/objects") {
            for name in try FileSystem.list(root + "/objects/" + prefix) {
                XCTAssertEqual(name.utf8.count, 62, name)
                names += 1
            }
        }
        XCTAssertEqual(names, 50)
        XCTAssertEqual(Set(try store.allObjects()), Set(hashes))
    }

    func testCorruptObject() throws {
        let store = try FolderStore.create(temporaryDirectory(self) + "/store")
        let object = randomObject()
        let hash = try store.put(object)
        var bytes = object.bytes
        bytes[bytes.count / 2] ^= 1
        try FileSystem.writeAtomically(store.objectPath(hash), bytes)
        XCTAssertThrowsError(try store.get(hash)) { XCTAssertEqual($0 as? StoreError, .corrupt(hash)) }
        // Not even an object.
        try FileSystem.writeAtomically(store.objectPath(hash), [0, 0])
        XCTAssertThrowsError(try store.get(hash)) { XCTAssertEqual($0 as? StoreError, .corrupt(hash)) }
        // Empty.
        try FileSystem.writeAtomically(store.objectPath(hash), [])
        XCTAssertThrowsError(try store.get(hash)) { XCTAssertEqual($0 as? StoreError, .corrupt(hash)) }
    }

    func testPutReplacesAFileThatIsNotTheObject() throws {
        // After a crash, the final name can hold an empty (or short) file: putting the object again
        // must write it, not just refresh the time of the remnant.
        let store = try FolderStore.create(temporaryDirectory(self) + "/store")
        let object = randomObject()
        let hash = try store.put(object)
        for remnant in [[], Array(object.bytes.prefix(10))] {
            try FileSystem.writeAtomically(store.objectPath(hash), remnant)
            XCTAssertThrowsError(try store.get(hash))
            try store.put(hash, object)
            XCTAssertEqual(try store.get(hash), object)
        }
    }

    func testListingIgnoresNamesThatAreNotHashes() throws {
        let root = temporaryDirectory(self) + "/store"
        let store = try FolderStore.create(root)
        let account = g.hash()
        let entry = g.hash()
        try store.add(account, .public, entry)
        let box = root + "/accounts/" + account.hex + "/public/"
        for junk in ["README", entry.hex + ".tmp-1-2", String(entry.hex.dropLast()), entry.hex + "0",
                     String(entry.hex.dropLast()) + "g", entry.hex.uppercased(), ".hidden"] {
            try FileSystem.createEmpty(box + junk)
        }
        XCTAssertEqual(try store.list(account, .public), [entry])

        // The same for accounts and objects.
        try FileSystem.makeDirectories(root + "/accounts/not-an-account/public")
        try FileSystem.makeDirectories(root + "/accounts/" + account.hex.uppercased())
        XCTAssertEqual(try store.accounts(), [account])
        let hash = try store.put(randomObject())
        let folder = root + "/objects/" + hash.hex.prefix(2) + "/"
        try FileSystem.createEmpty(folder + hash.hex.dropFirst(2) + ".tmp-1-2")
        try FileSystem.createEmpty(folder + String(repeating: "z", count: 62))
        try FileSystem.createEmpty(folder + hash.hex.dropFirst(2).uppercased())
        try FileSystem.makeDirectories(root + "/objects/zz")
        try FileSystem.makeDirectories(root + "/objects/abc")
        XCTAssertEqual(try store.allObjects(), [hash])
    }

    func testPutAndBookRefreshTheModificationTime() throws {
        let store = try FolderStore.create(temporaryDirectory(self) + "/store")
        let object = randomObject()
        let hash = try store.put(object)
        let path = store.objectPath(hash)
        let now = time(nil)
        age(path, by: 7200)
        XCTAssertLessThan(try XCTUnwrap(store.modificationTime(hash)), now - 7000)
        XCTAssertTrue(try store.book(hash))
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(store.modificationTime(hash)), now - 5)
        age(path, by: 7200)
        try store.put(hash, object)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(store.modificationTime(hash)), now - 5)
        XCTAssertNil(store.modificationTime(g.hash()))
    }

    func testDeleteAndMissingFiles() throws {
        let store = try FolderStore.create(temporaryDirectory(self) + "/store")
        let hash = try store.put(randomObject())
        try store.delete(hash)
        XCTAssertNil(try store.get(hash))
        try store.delete(hash)
        XCTAssertNil(try FileSystem.read(store.path + "/nothing/here"))
        XCTAssertEqual(try FileSystem.list(store.path + "/nothing"), [])
    }

    func testStoreErrorsHaveReadableDescriptions() {
        XCTAssertTrue(StoreError.corrupt(.emptyObject).description.contains(Hash.emptyObject.hex))
        XCTAssertTrue(StoreError.io(path: "/x", errno: ENOENT).description.hasPrefix("/x: "))
    }
}
