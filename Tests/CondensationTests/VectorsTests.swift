import Condensation
import XCTest

/// The test vectors of `spec/vectors.txt`, verbatim: the file is parsed here, every line is checked
/// by one of the tests below, and `testEveryVectorIsChecked` fails if a line is added that no test reads.
enum Vectors {
    static let text = """
# Condensation test vectors, computed by running the reference implementation (Perl CDS 0.31 and its C
# crypto core); RSA results were cross-checked against a standard PSS/OAEP implementation.
# Hex throughout. h1 = the hash of the empty object.

empty object: 00000000
empty object hash (h1): df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119
hash of zero bytes (h2, SHA-256 of the empty string): e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

# integers (signed, shortest two's complement, 0 = empty)
int 0 -> ''
int 1 -> '01'
int -1 -> 'ff'
int 127 -> '7f'
int 128 -> '0080'
int -128 -> '80'
int -129 -> 'ff7f'
int 255 -> '00ff'
int 32768 -> '008000'
int -32769 -> 'ff7fff'
int 1700000000000 -> '018bcfe56800'
int -1700000000000 -> 'fe74301a9800'
# unsigned
uint 0 -> ''
uint 255 -> 'ff'
uint 65536 -> '010000'
# booleans
bool true -> '79'
bool false -> ''

# records (whole objects)
record {a → {b}, c}: 00000000c16101620163
record {content → #h1}: 00000001df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b8111947636f6e74656e742000000000
  its hash: ce3baec4d72fa43bd6e88a046422b952105a0fa8c6f7214b0e28a9a98781a5e8

# store modifications record: add h2 to the public box of account h1, remove h1 from the private box of account h1
modifications: 0000000083707574c36164645e02df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119467075626c69631e02e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8554672656d6f76655e02df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b8111947707269766174651e02df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119
  its hash: cd473fb902ec38508a87c551fd7e1f5e01db2f868fb6716266b759947260ac7a

# AES-256-CTR, key 000102…1f, counter block starting at zero
32 zero bytes -> f29000b62a499fd0a9f39a6add2e7780f05d76ae4ab99fe5a6f69b3148c2363d
"Condensation" (UTF-8) -> b1ff6ed24f27ecb1dd9af504

# A key pair file (record: public key object → <bytes>, rsa key → {e, p, q}) and the actor id it yields
key pair file: 00000000d17075626c6963206b6579206f626a6563741ef000000000c16503010001416e1ee29361cd474e7ca00b73a13625c2ef09c91b9c30b7470f6669f69fc717e7bd3ecc33c843caff5dc3aabb570fd60ec9da24f0eab902f32c7785ff763a58f3992974c2d4e3b82446647c974067ae766d5df3284f6859fdb645e4133addf3be5c282496081a5812c65e6f9db72d70525c71be1de545d7ef85b68f5abd3e01b2df619cdbb560f46700e838639f0eb6b3f2579ae61c37d810b417f667b1efc96a0aac450c1810981eb7049164ab40537e30780410c22fb520d463e49d9dd5ffbf7bd7e21d54df45df3b74b8a431a61e1985db15cb5158747ad691a178fcfe7f9df0c18b8852447d130de679f6cf52d802f179f266aff7960ff1d45ef1cbb2cb23ae29e347727361206b6579c16503010001c1701e62c269f608f7e92ce1152959b6255235afeb82558806dcf28b14a3d36713bbd8a2d038c3095ea1b905d33a0a435b5f6928aacae0b864e779ed8c7df9e55af9b18ef16c1fd96a4fcf014f7b449d13e22829ef677008882b9840dd56ccf43f1f7eee6ae6e65020cd2742081bdf672f0f8bc35d17c70f0e6c46f99117a5293440222141711e62c211c7e0e9233ea4f02e122f15d3a8a0a5f6e476c14d3ed79e2309e5c209b4052c85ad31932c5465c5cc8e627ca872020f8bd423c5d4bfb6e6a645c0dcf28bf25c882a01f52937e008b5b75b6e8e710310cb2d2ba057afb758e68ece3475e0b54d382e59b403a2f65be40b915bcd14a4f6a52483844197db4ee6e61f3a4c5383
  its public key object (270 bytes): 00000000c16503010001416e1ee29361cd474e7ca00b73a13625c2ef09c91b9c30b7470f6669f69fc717e7bd3ecc33c843caff5dc3aabb570fd60ec9da24f0eab902f32c7785ff763a58f3992974c2d4e3b82446647c974067ae766d5df3284f6859fdb645e4133addf3be5c282496081a5812c65e6f9db72d70525c71be1de545d7ef85b68f5abd3e01b2df619cdbb560f46700e838639f0eb6b3f2579ae61c37d810b417f667b1efc96a0aac450c1810981eb7049164ab40537e30780410c22fb520d463e49d9dd5ffbf7bd7e21d54df45df3b74b8a431a61e1985db15cb5158747ad691a178fcfe7f9df0c18b8852447d130de679f6cf52d802f179f266aff7960ff1d45ef1cbb2cb23ae29e3
  actor id (SHA-256 of the public key object): 33eefb4a0e692f30813d064ab7fa6866ae27cd2a991ddbb39dc563640cd3191c
"""

    /// The vector lines (comments and blank lines dropped), trimmed.
    static let lines: [String] = text.split(separator: "\n").map { String($0).trimmingSpaces }
        .filter { !$0.isEmpty && !$0.hasPrefix("#") }

    /// The value after `key: `, for lines of that form.
    static func value(_ key: String) -> String {
        guard let line = lines.first(where: { $0.hasPrefix(key + ": ") }) else { fatalError("no vector \(key)") }
        return String(line.dropFirst(key.count + 2))
    }

    /// `kind <input> -> '<hex>'` lines, for integers, unsigned and booleans.
    static func valueVectors(_ kind: String) -> [(input: String, output: [UInt8])] {
        lines.filter { $0.hasPrefix(kind + " ") }.map { line in
            let parts = line.dropFirst(kind.count + 1).split(separator: " -> ", maxSplits: 1)
            let quoted = parts[1]
            precondition(quoted.hasPrefix("'") && quoted.hasSuffix("'"), line)
            return (String(parts[0]), hex(String(quoted.dropFirst().dropLast())))
        }
    }

    /// `<key> -> <hex>` lines (the AES vectors).
    static func arrow(_ key: String) -> [UInt8] {
        guard let line = lines.first(where: { $0.hasPrefix(key + " -> ") }) else { fatalError("no vector \(key)") }
        return hex(String(line.dropFirst(key.count + 4)))
    }

    /// The hex after the last colon of the line that starts with `key` (lines with a prose key).
    static func afterColon(_ key: String) -> [UInt8] {
        guard let line = lines.first(where: { $0.hasPrefix(key) }), let colon = line.lastIndex(of: ":") else {
            fatalError("no vector \(key)")
        }
        return hex(String(line[line.index(after: colon)...]).trimmingSpaces)
    }

    /// The `its hash:` line that follows the line starting with `key`.
    static func hashAfter(_ key: String) -> Hash {
        guard let i = lines.firstIndex(where: { $0.hasPrefix(key) }), lines[i + 1].hasPrefix("its hash: ") else {
            fatalError("no hash after \(key)")
        }
        return Hash(hex: lines[i + 1].dropFirst("its hash: ".count))!
    }

    static var keyPairFile: String { value("key pair file") }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

final class VectorsTests: XCTestCase {
    /// Every vector line is read by a test below: a new line in the vector file needs a new test.
    func testEveryVectorIsChecked() {
        let checked = ["empty object: ", "empty object hash (h1): ", "hash of zero bytes (h2", "int ", "uint ", "bool ",
                       "record {a → {b}, c}: ", "record {content → #h1}: ", "its hash: ", "modifications: ",
                       "32 zero bytes -> ", "\"Condensation\" (UTF-8) -> ", "key pair file: ",
                       "its public key object (270 bytes): ", "actor id (SHA-256 of the public key object): "]
        for line in Vectors.lines {
            XCTAssertTrue(checked.contains { line.hasPrefix($0) }, "no test reads the vector line: \(line)")
        }
        XCTAssertEqual(Vectors.lines.count, 30)
        XCTAssertEqual(Vectors.valueVectors("int").count, 12)
        XCTAssertEqual(Vectors.valueVectors("uint").count, 3)
        XCTAssertEqual(Vectors.valueVectors("bool").count, 2)
    }

    // MARK: Objects and hashes

    func testEmptyObject() throws {
        let bytes = hex(Vectors.value("empty object"))
        XCTAssertEqual(Object.empty.bytes, bytes)
        XCTAssertEqual(try Object(bytes: bytes), Object.empty)
        XCTAssertEqual(Record().serialized, bytes, "the empty record is the empty object")
    }

    func testEmptyObjectHash() {
        let h1 = Hash(hex: Vectors.value("empty object hash (h1)"))!
        XCTAssertEqual(Object.empty.calculateHash(), h1)
        XCTAssertEqual(Hash.of(hex(Vectors.value("empty object"))), h1)
        XCTAssertEqual(Hash.emptyObject, h1)
    }

    func testHashOfZeroBytes() {
        let h2 = Hash(bytes: Vectors.afterColon("hash of zero bytes"))!
        XCTAssertEqual(Hash.of([UInt8]()), h2)
        XCTAssertEqual(Hash.of([UInt8]()[...]), h2)
        let stream = SHA256Stream()
        XCTAssertEqual(stream.finish(), h2)
    }

    // MARK: Values

    func testIntegers() {
        for (input, output) in Vectors.valueVectors("int") {
            let value = Int64(input)!
            XCTAssertEqual(Values.integer(value), output, "int \(input)")
            XCTAssertEqual(Values.readInteger(output[...]), value, "int \(input) read back")
        }
    }

    func testUnsigned() {
        for (input, output) in Vectors.valueVectors("uint") {
            let value = UInt64(input)!
            XCTAssertEqual(Values.unsigned(value), output, "uint \(input)")
            XCTAssertEqual(Values.readUnsigned(output[...]), value, "uint \(input) read back")
        }
    }

    func testBooleans() {
        for (input, output) in Vectors.valueVectors("bool") {
            let value = input == "true"
            XCTAssertTrue(input == "true" || input == "false")
            XCTAssertEqual(Values.bool(value), output, "bool \(input)")
            XCTAssertEqual(Record(output).bool, value, "bool \(input) read back")
        }
    }

    // MARK: Records

    func testNestedRecord() throws {
        let bytes = Vectors.afterColon("record {a → {b}, c}")
        var record = Record()
        record.add(Record(text: "a", children: [Record(text: "b")]))
        record.add(Record(text: "c"))
        XCTAssertEqual(record.serialized, bytes)
        XCTAssertEqual(try Record(object: Object(bytes: bytes)), record)
    }

    func testRecordWithHash() throws {
        let bytes = Vectors.afterColon("record {content → #h1}")
        var record = Record()
        record.add("content", hash: .emptyObject)
        let object = record.object()
        XCTAssertEqual(object.bytes, bytes)
        XCTAssertEqual(object.calculateHash(), Vectors.hashAfter("record {content → #h1}"))
        let parsed = try Record(object: Object(bytes: bytes))
        XCTAssertEqual(parsed, record)
        XCTAssertEqual(parsed.hash("content"), Hash.emptyObject)
    }

    func testModificationsRecord() throws {
        let bytes = Vectors.afterColon("modifications")
        let h1 = Hash.emptyObject
        let h2 = Hash(bytes: Vectors.afterColon("hash of zero bytes"))!
        var m = Modifications()
        m.additions = [BoxChange(h1, .public, h2)]
        m.removals = [BoxChange(h1, .private, h1)]
        let object = m.record.object()
        XCTAssertEqual(object.bytes, bytes)
        XCTAssertEqual(object.calculateHash(), Vectors.hashAfter("modifications"))

        let parsed = try Modifications(record: Record(object: Object(bytes: bytes)))
        XCTAssertTrue(parsed.puts.isEmpty)
        XCTAssertEqual(parsed.additions, m.additions)
        XCTAssertEqual(parsed.removals, m.removals)
        XCTAssertEqual(parsed.record.serialized, bytes)
    }

    // MARK: AES

    func testAESZeroBytes() throws {
        let key = try AESKey(bytes: Array(0...31))
        XCTAssertEqual(key.applied([UInt8](repeating: 0, count: 32)), Vectors.arrow("32 zero bytes"))
        XCTAssertEqual(key.applied(Vectors.arrow("32 zero bytes")), [UInt8](repeating: 0, count: 32))
    }

    func testAESText() throws {
        let key = try AESKey(bytes: Array(0...31))
        let expected = Vectors.arrow("\"Condensation\" (UTF-8)")
        XCTAssertEqual(key.applied(Array("Condensation".utf8)), expected)
        XCTAssertEqual(String(decoding: key.applied(expected), as: UTF8.self), "Condensation")
    }

    // MARK: Key pair

    func testKeyPairFile() throws {
        let file = hex(Vectors.keyPairFile)
        let keyPair = try KeyPair(fileBytes: file)
        let publicKeyObject = Vectors.afterColon("its public key object (270 bytes)")
        XCTAssertEqual(publicKeyObject.count, 270)
        XCTAssertEqual(keyPair.publicKey.object.bytes, publicKeyObject)
        XCTAssertEqual(keyPair.actor, Hash(bytes: Vectors.afterColon("actor id (SHA-256 of the public key object)")))
        XCTAssertEqual(Hash.of(publicKeyObject), keyPair.actor, "actor id recomputed from the object")
        XCTAssertEqual(keyPair.fileBytes, file, "written back byte for byte")
    }

    func testPublicKeyObjectIsRebuiltByteExact() throws {
        // Built from the RSA key alone, the public key object must come out as the reference writes it:
        // the actor id depends on every byte.
        let keyPair = try KeyPair(fileBytes: hex(Vectors.keyPairFile))
        let rebuilt = PublicKey(rsa: keyPair.rsa)
        XCTAssertEqual(rebuilt.object.bytes, Vectors.afterColon("its public key object (270 bytes)"))
        XCTAssertEqual(rebuilt.hash, keyPair.actor)
    }
}
