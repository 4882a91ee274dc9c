import Condensation
import XCTest

final class ObjectTests: XCTestCase {
    func testLayout() throws {
        let h = Hash(bytes: [UInt8](repeating: 0x11, count: 32))!
        let object = Object(hashes: [h, .emptyObject], data: [9, 8, 7])
        XCTAssertEqual(Array(object.bytes[0..<4]), [0, 0, 0, 2])
        XCTAssertEqual(Array(object.bytes[4..<36]), h.bytes)
        XCTAssertEqual(Array(object.bytes[36..<68]), Hash.emptyObject.bytes)
        XCTAssertEqual(Array(object.data), [9, 8, 7])
        XCTAssertEqual(object.dataStart, 68)
        XCTAssertEqual(object.dataCount, 3)
        XCTAssertEqual(object.hashCount, 2)
        XCTAssertEqual(object.hashes, [h, .emptyObject])
        XCTAssertEqual(object.hash(at: 1), .emptyObject)
        XCTAssertEqual(object.calculateHash(), Hash.of(object.bytes))
    }

    func testParseRoundTrip() throws {
        var g = SeededGenerator(seed: 21)
        for _ in 0..<200 {
            let hashes = (0..<Int.random(in: 0...20, using: &g)).map { _ in g.hash() }
            let data = g.bytes(Int.random(in: 0...300, using: &g))
            let object = Object(hashes: hashes, data: data)
            let parsed = try Object(bytes: object.bytes)
            XCTAssertEqual(parsed, object)
            XCTAssertEqual(parsed.hashes, hashes)
            XCTAssertEqual(Array(parsed.data), data)
        }
    }

    func testThousandsOfHashes() throws {
        var g = SeededGenerator(seed: 22)
        let hashes = (0..<5000).map { _ in g.hash() }
        let object = Object(hashes: hashes, data: Array("tail".utf8))
        XCTAssertEqual(object.bytes.count, 4 + 32 * 5000 + 4)
        let parsed = try Object(bytes: object.bytes, expecting: object.calculateHash())
        XCTAssertEqual(parsed.hashes, hashes)
        XCTAssertEqual(String(decoding: parsed.data, as: UTF8.self), "tail")

        // The same through a record: one node per hash, read back with every link in place.
        var record = Record()
        for (i, h) in hashes.enumerated() { record.add("\(i)", hash: h) }
        let recordObject = record.object()
        XCTAssertEqual(recordObject.hashes, hashes)
        let back = try Record(object: Object(bytes: recordObject.bytes))
        XCTAssertEqual(back.children.map { $0.firstChild?.hash }, hashes)
    }

    func testExpectingTheWrongHashThrows() {
        let object = Object(hashes: [], data: [1])
        XCTAssertThrowsError(try Object(bytes: object.bytes, expecting: .emptyObject)) {
            XCTAssertEqual($0 as? ObjectError, .hashMismatch(expected: .emptyObject, actual: object.calculateHash()))
        }
    }

    func testHeaderOnlyObjects() throws {
        XCTAssertEqual(try Object(bytes: [0, 0, 0, 0]).dataCount, 0)
        // Exactly the hash list, no data.
        let object = try Object(bytes: [0, 0, 0, 1] + Hash.emptyObject.bytes)
        XCTAssertEqual(object.hashes, [.emptyObject])
        XCTAssertTrue(object.data.isEmpty)
    }

    func testEncryptionLeavesHeaderAndHashesInTheClear() throws {
        let key = AESKey.random()
        var g = SeededGenerator(seed: 23)
        let hashes = (0..<3).map { _ in g.hash() }
        let plain = Object(hashes: hashes, data: g.bytes(1000))
        let encrypted = plain.crypted(with: key)
        XCTAssertEqual(Array(encrypted.bytes[..<plain.dataStart]), Array(plain.bytes[..<plain.dataStart]))
        XCTAssertNotEqual(Array(encrypted.data), Array(plain.data))
        XCTAssertEqual(Array(encrypted.data), key.applied(Array(plain.data)), "counter starts at the data")
        XCTAssertEqual(encrypted.hashes, hashes)
        XCTAssertEqual(encrypted.crypted(with: key), plain)
        var inPlace = encrypted
        inPlace.crypt(with: key)
        XCTAssertEqual(inPlace, plain)
        XCTAssertNotEqual(encrypted.calculateHash(), plain.calculateHash(), "the name is of the encrypted bytes")
    }

    func testEncryptedRecordRoundTrip() throws {
        var record = Record()
        record.add("secret", text: "hello")
        record.add("child", hash: .emptyObject)
        let key = AESKey.random()
        let stored = record.object().crypted(with: key)
        let back = try Record(object: Object(bytes: stored.bytes).crypted(with: key))
        XCTAssertEqual(back, record)
    }

    func testHashHex() {
        let h = Hash.emptyObject
        XCTAssertEqual(h.hex, "df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119")
        XCTAssertEqual(h.description, h.hex)
        XCTAssertEqual(h.shortHex, "df3f619804a92fdb")
        XCTAssertEqual(Hash(hex: h.hex.uppercased()), h)
        XCTAssertNil(Hash(hex: String(h.hex.dropLast())))
        XCTAssertNil(Hash(hex: String(h.hex.dropLast()) + "g"))
        XCTAssertNil(Hash(bytes: [UInt8](repeating: 0, count: 31)))
        XCTAssertEqual(Hash(bytes: h.bytes), h)
    }

    func testHashOrderIsByteOrder() {
        var g = SeededGenerator(seed: 24)
        let hashes = (0..<500).map { _ in g.hash() }
        let byWords = hashes.sorted()
        let byBytes = hashes.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        XCTAssertEqual(byWords, byBytes)
    }

    func testHashWriteAndAppend() {
        var out: [UInt8] = [1, 2]
        Hash.emptyObject.append(to: &out)
        XCTAssertEqual(out, [1, 2] + Hash.emptyObject.bytes)
        var buffer = [UInt8](repeating: 0, count: 40)
        Hash.emptyObject.write(to: &buffer, at: 8)
        XCTAssertEqual(Array(buffer[8...]), Hash.emptyObject.bytes)
    }

    func testHex() {
        XCTAssertEqual(Hex.encode([0x00, 0xab, 0xff]), "00abff")
        XCTAssertEqual(Hex.decode("00ABff"), [0x00, 0xab, 0xff])
        XCTAssertNil(Hex.decode("abc"))
        XCTAssertNil(Hex.decode("zz"))
        XCTAssertEqual(Hex.decode(""), [])
    }
}
