// Shared by every fuzz target (see run.sh): the input as bytes, the vector key pair, and the seed corpus.
import Condensation
import Glibc

enum Fuzz {
    static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }

    /// The spec's vectors (`$CDSFS_FUZZ_VECTORS`: shared/spec/vectors.txt, or the verbatim copy in
    /// Tests/CondensationTests/VectorsTests.swift).
    static let vectorLines: [String] = {
        guard let path = getenv("CDSFS_FUZZ_VECTORS").map({ String(cString: $0) }),
              let bytes = try? FileSystem.read(path) else {
            fatalError("set CDSFS_FUZZ_VECTORS to the spec's vectors.txt (run.sh does)")
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
    }()

    /// Every hex value of at least 4 bytes in the vectors: objects, records, the key pair file, the
    /// modifications record, hashes.
    static let vectorBlobs: [[UInt8]] = vectorLines.compactMap { line in
        let candidates = line.split(whereSeparator: { $0 == " " || $0 == "'" })
        guard let last = candidates.last, last.count >= 8, last.count % 2 == 0, let bytes = Hex.decode(last) else { return nil }
        return bytes
    }

    /// The vectors' key pair ("alice" in the tests): deterministic, so a crashing input found once
    /// (signatures, keys encrypted for it) stays a crashing input.
    static let alice: KeyPair = {
        guard let line = vectorLines.first(where: { $0.hasPrefix("key pair file: ") }),
              let bytes = Hex.decode(line.dropFirst("key pair file: ".count)),
              let keyPair = try? KeyPair(fileBytes: bytes) else { fatalError("no key pair file in the vectors") }
        return keyPair
    }()

    /// Writes the seeds into `$CDSFS_FUZZ_SEEDS` (named by their hash), for libFuzzer to read as a corpus.
    static func writeSeeds(_ seeds: [[UInt8]]) {
        guard let dir = getenv("CDSFS_FUZZ_SEEDS").map({ String(cString: $0) }) else { return }
        try? FileSystem.makeDirectories(dir)
        for seed in seeds { try? FileSystem.writeAtomically(dir + "/seed-" + Hash.of(seed).shortHex, seed) }
    }

    /// A small record with every kind of node.
    static func sampleRecord() -> Record {
        var r = Record()
        r.add("text", text: "hello")
        r.add("integer", integer: -1_700_000_000_000)
        r.add("unsigned", unsigned: 65536)
        r.add("bool", bool: true)
        r.add("hash", hash: .emptyObject)
        r.add("link", link: HashAndKey(hash: .emptyObject, key: try! AESKey(bytes: Array(0..<32))))
        r.add("long", bytes: [UInt8](repeating: 0x41, count: 300))
        var nested = Record(text: "nested")
        nested.add(Record(text: "a", children: [Record(text: "b", children: [Record(text: "c")])]))
        r.add(nested)
        return r
    }
}

/// Fails the run (libFuzzer reports the input) when an invariant does not hold.
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        fputs("invariant failed: \(message())\n", stderr)
        abort()
    }
}
