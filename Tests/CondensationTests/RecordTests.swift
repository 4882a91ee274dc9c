import Condensation
import XCTest

final class RecordTests: XCTestCase {
    // MARK: Length forms

    /// The data of a record with one node of `length` bytes.
    private func encodedNode(length: Int) -> [UInt8] {
        var record = Record()
        record.add(Record([UInt8](repeating: 0xab, count: length)))
        return Array(record.object().data)
    }

    func testShortLengthsAreInTheFlags() {
        for length in [0, 1, 29] {
            let data = encodedNode(length: length)
            XCTAssertEqual(data.count, 1 + length)
            XCTAssertEqual(data[0], UInt8(length))
        }
    }

    func testMiddleLengthsUseOneExtraByte() {
        for length in [30, 31, 200, 285] {
            let data = encodedNode(length: length)
            XCTAssertEqual(data.count, 2 + length)
            XCTAssertEqual(data[0], 30)
            XCTAssertEqual(data[1], UInt8(length - 30))
        }
    }

    func testLongLengthsUseEightBytes() {
        for length in [286, 1000, 70_000] {
            let data = encodedNode(length: length)
            XCTAssertEqual(data.count, 9 + length)
            XCTAssertEqual(data[0], 31)
            XCTAssertEqual(Array(data[1..<9]), withUnsafeBytes(of: UInt64(length).bigEndian) { Array($0) })
        }
    }

    func testEveryLengthAroundTheBoundariesRoundTrips() throws {
        for length in Array(0...40) + Array(280...300) {
            var record = Record()
            record.add(Record(Array(repeating: UInt8(length & 0xff), count: length), hash: .emptyObject,
                              children: [Record(text: "x")]))
            XCTAssertEqual(try Record(object: record.object()), record, "length \(length)")
        }
    }

    // MARK: Flags and hash list

    func testFlags() {
        var record = Record()
        record.add(Record(text: "a", children: [Record([], hash: .emptyObject)]))
        record.add(Record(text: "b"))
        let object = record.object()
        // a: more siblings + children, 1 byte; its child: hash, last, no children; b: last.
        XCTAssertEqual(Array(object.data), [0xc1, 0x61, 0x20, 0, 0, 0, 0, 0x01, 0x62])
        XCTAssertEqual(object.hashes, [.emptyObject])
    }

    func testWritersDoNotDeduplicateHashes() throws {
        var record = Record()
        for label in ["x", "y", "z"] { record.add(label, hash: .emptyObject) }
        let object = record.object()
        XCTAssertEqual(object.hashes, [Hash](repeating: .emptyObject, count: 3))
        XCTAssertEqual(try Record(object: object), record)
    }

    func testReadersAcceptSharedHashIndexes() throws {
        let h = Hash(bytes: [UInt8](repeating: 7, count: 32))!
        // Two nodes, both pointing at hash index 0.
        let object = Object(hashes: [h], data: [0xa1, 0x61, 0, 0, 0, 0, 0x21, 0x62, 0, 0, 0, 0])
        let record = try Record(object: object)
        XCTAssertEqual(record.children.map(\.text), ["a", "b"])
        XCTAssertEqual(record.children.map(\.hash), [h, h])
    }

    func testHashIndexesFollowDepthFirstOrder() throws {
        var g = SeededGenerator(seed: 11)
        let hashes = (0..<6).map { _ in g.hash() }
        var record = Record()
        record.add(Record([], hash: hashes[0], children: [Record([], hash: hashes[1], children: [Record([], hash: hashes[2])])]))
        record.add(Record([], hash: hashes[3], children: [Record([], hash: hashes[4])]))
        record.add(Record([], hash: hashes[5]))
        XCTAssertEqual(record.object().hashes, hashes)
    }

    func testNodeWithChildrenAndHashAndBytes() throws {
        var record = Record()
        record.add(Record(text: "dir", children: [
            Record(text: "entry", children: [Record(Array(repeating: 1, count: 32), hash: .emptyObject)]),
        ]))
        let parsed = try Record(object: record.object())
        XCTAssertEqual(parsed, record)
        XCTAssertEqual(parsed.child("dir")?.link("entry")?.hash, .emptyObject)
    }

    func testEmptyRecord() throws {
        XCTAssertEqual(Record().serialized, [0, 0, 0, 0])
        XCTAssertEqual(try Record(object: .empty), Record())
        // An object with hashes but no data is an empty record too.
        XCTAssertEqual(try Record(object: Object(hashes: [.emptyObject], data: [])), Record())
    }

    func testDataAfterTheLastNodeIsIgnored() throws {
        // The root's last child closes the record; what follows is not part of it.
        let record = try Record(object: Object(hashes: [], data: [0x01, 0x61, 0xff, 0xff]))
        XCTAssertEqual(record.children.map(\.text), ["a"])
    }

    // MARK: Building and reading

    func testLabelledValues() throws {
        var record = Record()
        record.add("name", text: "Grüße")
        record.add("size", unsigned: 1 << 40)
        record.add("delta", integer: -5)
        record.add("zero", integer: 0)
        record.add("flag", bool: true)
        record.add("off", bool: false)
        record.add("raw", bytes: [1, 2, 3])
        record.add("link", hash: .emptyObject)
        let key = try AESKey(bytes: Array(0..<32))
        record.add("child", link: HashAndKey(hash: .emptyObject, key: key))

        let parsed = try Record(object: record.object())
        XCTAssertEqual(parsed.text("name"), "Grüße")
        XCTAssertEqual(parsed.unsigned("size"), 1 << 40)
        XCTAssertEqual(parsed.integer("delta"), -5)
        XCTAssertEqual(parsed.integer("zero"), 0)
        XCTAssertEqual(parsed.value("flag")?.bool, true)
        XCTAssertEqual(parsed.value("off")?.bool, false)
        XCTAssertEqual(parsed.bytes("raw").map(Array.init), [1, 2, 3])
        XCTAssertEqual(parsed.hash("link"), .emptyObject)
        XCTAssertEqual(parsed.link("child"), HashAndKey(hash: .emptyObject, key: key))
        XCTAssertNil(parsed.link("link"), "a hash link without a 32-byte key is not a hash and key")
        XCTAssertNil(parsed.value("missing"))
        XCTAssertTrue(parsed.contains("name"))
        XCTAssertFalse(parsed.contains("nam"))
        XCTAssertEqual(parsed.child(bytes: Array("size".utf8))?.firstChild?.unsigned, 1 << 40)
    }

    func testFirstMatchingChildWins() {
        var record = Record()
        record.add("a", text: "first")
        record.add("a", text: "second")
        XCTAssertEqual(record.text("a"), "first")
    }

    func testAddReturnsTheIndex() {
        var record = Record()
        XCTAssertEqual(record.add(Record(text: "x")), 0)
        XCTAssertEqual(record.add(Record(text: "y")), 1)
    }

    // MARK: Values

    func testIntegerRoundTrips() {
        var g = SeededGenerator(seed: 1)
        var values: [Int64] = [0, 1, -1, 127, 128, -128, -129, .max, .min, .max - 1, .min + 1]
        for shift in 0..<63 { values += [1 << shift, -(1 << shift), (1 << shift) - 1, -(1 << shift) - 1] }
        for _ in 0..<2000 { values.append(Int64(bitPattern: g.next()) >> Int64.random(in: 0..<64, using: &g)) }
        for v in values {
            let bytes = Values.integer(v)
            XCTAssertEqual(Values.readInteger(bytes[...]), v)
            XCTAssertLessThanOrEqual(bytes.count, 8)
            // Shortest: dropping the first byte would change the value (or the sign).
            if bytes.count > 1 { XCTAssertNotEqual(Values.readInteger(bytes[1...]), v) }
        }
    }

    func testUnsignedRoundTrips() {
        var g = SeededGenerator(seed: 2)
        var values: [UInt64] = [0, 1, 255, 256, .max]
        for _ in 0..<2000 { values.append(g.next() >> UInt64.random(in: 0..<64, using: &g)) }
        for v in values {
            let bytes = Values.unsigned(v)
            XCTAssertEqual(Values.readUnsigned(bytes[...]), v)
            XCTAssertNotEqual(bytes.first, 0, "no leading zero")
        }
    }

    func testZeroAcceptsALeadingZeroByte() {
        XCTAssertEqual(Values.readInteger([0][...]), 0)
        XCTAssertEqual(Values.readInteger([0, 0, 0][...]), 0)
        XCTAssertEqual(Values.readUnsigned([0][...]), 0)
    }

    func testValuesLongerThanEightBytesAreNotIntegers() {
        XCTAssertNil(Values.readInteger([UInt8](repeating: 0, count: 9)[...]))
        XCTAssertNil(Values.readUnsigned([UInt8](repeating: 0, count: 9)[...]))
    }

    func testAnyNonEmptyBytesReadAsTrue() {
        XCTAssertTrue(Record([0]).bool)
        XCTAssertTrue(Record(Array("n".utf8)).bool)
        XCTAssertFalse(Record([]).bool)
    }

    func testFloats() {
        for v in [0.0, -0.0, 1.5, -3.25e300, .infinity, Double.leastNonzeroMagnitude] {
            let bytes = Values.float64(v)
            XCTAssertEqual(bytes.count, 8)
            XCTAssertEqual(Values.readFloat(bytes[...])?.bitPattern, v.bitPattern)
        }
        let single = withUnsafeBytes(of: Float(2.5).bitPattern.bigEndian) { Array($0) }
        XCTAssertEqual(Values.readFloat(single[...]), 2.5)
        XCTAssertNil(Values.readFloat([1, 2, 3][...]))
    }

    // MARK: Property: random trees

    func testRandomTreesRoundTrip() throws {
        var g = SeededGenerator(seed: 0x5EED)
        for round in 0..<400 {
            let record = RandomRecords.tree(&g)
            let object = record.object()
            let parsed = try Record(object: object)
            XCTAssertEqual(parsed, record, "round \(round)")
            XCTAssertEqual(parsed.serialized, object.bytes, "round \(round): written again byte for byte")
            // And through the bytes alone, as a store would hand them over.
            XCTAssertEqual(try Record(objectBytes: object.bytes), record, "round \(round)")
        }
    }

    func testDeepestAcceptedNestingRoundTrips() throws {
        // 257 levels below the root: the decoder refuses to open a level below that.
        XCTAssertEqual(try Record(object: chain(levels: 257).object()), chain(levels: 257))
        XCTAssertThrowsError(try Record(object: chain(levels: 258).object())) {
            XCTAssertEqual($0 as? RecordError, .tooDeep)
        }
    }

    /// A root with a single chain of `levels` nodes below it.
    private func chain(levels: Int) -> Record {
        var node = Record(text: "leaf")
        for i in 1..<levels { node = Record(text: "\(i)", children: [node]) }
        return Record(children: [node])
    }

    func testWideRecordRoundTrips() throws {
        var record = Record()
        for i in 0..<20_000 { record.add("entry \(i)", unsigned: UInt64(i)) }
        let parsed = try Record(object: record.object())
        XCTAssertEqual(parsed.children.count, 20_000)
        XCTAssertEqual(parsed, record)
        XCTAssertEqual(parsed.unsigned("entry 19999"), 19999)
    }

    func testParsedRecordsShareTheObjectsBytes() throws {
        // Values are slices of the object: reading them must still give the right bytes after the
        // object itself is gone.
        var record = Record()
        record.add("k", bytes: Array(0..<100))
        var parsed: Record
        do {
            let object = record.object()
            parsed = try Record(object: object)
        }
        XCTAssertEqual(parsed.bytes("k").map(Array.init), Array(0..<100))
    }
}
