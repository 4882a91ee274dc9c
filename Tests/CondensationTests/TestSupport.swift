import Condensation
import Glibc
import XCTest

/// Bytes from hex written in a test; a typo in a literal fails loudly.
func hex(_ text: String, file: StaticString = #file, line: UInt = #line) -> [UInt8] {
    guard let bytes = Hex.decode(text) else { fatalError("not hex: \(text)", file: file, line: line) }
    return bytes
}

/// A deterministic generator (SplitMix64), so every random test is reproducible from its seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(count)
        while out.count < count {
            let word = next()
            for i in 0..<min(8, count - out.count) { out.append(UInt8(truncatingIfNeeded: word >> (8 * UInt64(i)))) }
        }
        return out
    }

    mutating func hash() -> Hash { Hash(bytes: bytes(32))! }

    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
}

/// Random record trees covering every shape the format has.
enum RandomRecords {
    /// A byte length from one of the three length forms: 0–29, 30–285, ≥ 286.
    static func length(_ g: inout SeededGenerator) -> Int {
        switch Int.random(in: 0..<10, using: &g) {
        case 0..<6: return Int.random(in: 0...29, using: &g)
        case 6..<9: return Int.random(in: 30...285, using: &g)
        default: return Int.random(in: 286...2000, using: &g)
        }
    }

    /// A node with random bytes, a hash one time in three, and children down to `depth` levels.
    static func node(_ g: inout SeededGenerator, depth: Int, maxChildren: Int = 4) -> Record {
        var record = Record(g.bytes(length(&g)), hash: g.chance(0.3) ? g.hash() : nil)
        if depth > 0 {
            for _ in 0..<Int.random(in: 0...maxChildren, using: &g) {
                record.add(node(&g, depth: depth - 1, maxChildren: maxChildren))
            }
        }
        return record
    }

    /// A root whose shape is picked at random: empty, flat and wide, deep and narrow, or bushy.
    static func tree(_ g: inout SeededGenerator) -> Record {
        var root = Record()
        switch Int.random(in: 0..<4, using: &g) {
        case 0:
            // Wide: hundreds of siblings, so the last-sibling bit is exercised at scale.
            for _ in 0..<Int.random(in: 0...400, using: &g) { root.add(node(&g, depth: 0)) }
        case 1:
            // Deep: a chain well inside the decoder's depth limit, siblings on some levels.
            root.add(chain(&g, depth: Int.random(in: 1...200, using: &g)))
        case 2:
            for _ in 0..<Int.random(in: 1...6, using: &g) { root.add(node(&g, depth: 5)) }
        default:
            if g.chance(0.5) { root.add(node(&g, depth: 2, maxChildren: 12)) }
        }
        return root
    }

    /// A chain `depth` nodes deep, built bottom-up (no recursion).
    static func chain(_ g: inout SeededGenerator, depth: Int) -> Record {
        var current = node(&g, depth: 0)
        for _ in 1..<max(depth, 1) {
            var parent = node(&g, depth: 0)
            if g.chance(0.2) { parent.add(node(&g, depth: 1)) }
            parent.add(current)
            if g.chance(0.2) { parent.add(node(&g, depth: 0)) }
            current = parent
        }
        return current
    }
}

/// Key pairs are slow to generate (RSA-2048); the tests share a few, made once.
enum TestKeys {
    static let vectorFile = hex(Vectors.keyPairFile)
    /// The key pair of the vectors: free, it is parsed rather than generated.
    static let alice: KeyPair = try! KeyPair(fileBytes: vectorFile)
    static let bob = KeyPair.generate()
    static let carol = KeyPair.generate()
}

/// A fresh directory under /tmp, removed (with everything in it) at the end of the test.
func temporaryDirectory(_ test: XCTestCase) -> String {
    var template = Array("/tmp/cdsfs-test-XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    test.addTeardownBlock { removeTree(path) }
    return path
}

/// rm -r, iteratively (nftw would need a C callback).
func removeTree(_ root: String) {
    var stack = [root]
    var directories: [String] = []
    while let path = stack.popLast() {
        var st = stat()
        guard lstat(path, &st) == 0 else { continue }
        if st.st_mode & S_IFMT == S_IFDIR {
            directories.append(path)
            for name in (try? FileSystem.list(path)) ?? [] { stack.append(path + "/" + name) }
        } else {
            unlink(path)
        }
    }
    for dir in directories.reversed() { rmdir(dir) }
}

/// Sets a file's modification (and access) time to `seconds` ago.
func age(_ path: String, by seconds: Int) {
    var times = [timespec(tv_sec: time(nil) - seconds, tv_nsec: 0), timespec(tv_sec: time(nil) - seconds, tv_nsec: 0)]
    precondition(utimensat(AT_FDCWD, path, &times, 0) == 0, "utimensat \(path)")
}
