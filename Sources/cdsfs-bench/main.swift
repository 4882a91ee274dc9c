// cdsfs-bench: throughput of the Condensation primitives through our own wrappers (not libcrypto
// directly), so that overhead added by the Swift layer shows. bench/crypto.sh runs it next to
// `openssl speed` and compares.
//
// Each figure is the best of several rounds; a round repeats the operation for a fixed time and
// averages. Output: one line per figure, `<name> <value> <unit>`, then details after `#`.
import Condensation
import Glibc

struct Options {
    var roundSeconds = 0.3
    var rounds = 5
    var entries = 8000
    /// Only this measurement (sha256, aes, parse, serialize): for profiling one of them.
    var only: String?

    init(_ arguments: [String]) {
        var i = 1
        func value() -> String {
            i += 1
            guard i < arguments.count else { usage() }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--round-seconds": roundSeconds = Double(value()) ?? { usage() }()
            case "--rounds": rounds = Int(value()) ?? { usage() }()
            case "--entries": entries = Int(value()) ?? { usage() }()
            case "--only": only = value()
            case "-h", "--help": usage(status: 0)
            default: usage()
            }
            i += 1
        }
        guard roundSeconds > 0, rounds > 0, entries > 0 else { usage() }
    }
}

func usage(status: Int32 = 2) -> Never {
    print("""
    usage: cdsfs-bench [--rounds N] [--round-seconds S] [--entries N] [--only sha256|aes|parse|serialize]
      SHA-256 (Hash.of) and AES-256-CTR (AESKey.apply, in place) on a 1 MiB buffer, and parsing and
      serialising a directory-like record of N entries (default 8000, about 1 MiB).
    """)
    exit(status)
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Seconds per call of `body`: the best round of `rounds`, each averaging calls for `roundSeconds`.
/// NaN when `--only` names another measurement.
func measure(_ options: Options, _ name: String, _ body: () -> Void) -> Double {
    if let only = options.only, only != name { return .nan }
    body() // warm up: page faults, lazy initialisation, caches
    var best = Double.infinity
    for _ in 0..<options.rounds {
        var calls = 0
        let start = now()
        var elapsed = 0.0
        repeat {
            body()
            calls += 1
            elapsed = now() - start
        } while elapsed < options.roundSeconds
        best = min(best, elapsed / Double(calls))
    }
    return best
}

/// Keeps results alive so the optimiser cannot drop the work.
nonisolated(unsafe) var sink: UInt64 = 0

func format(_ value: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    var text = String(rounded)
    if let dot = text.firstIndex(of: ".") {
        let have = text.distance(from: dot, to: text.endIndex) - 1
        if have < decimals { text += String(repeating: "0", count: decimals - have) }
    } else if decimals > 0 {
        text += "." + String(repeating: "0", count: decimals)
    }
    return text
}

/// A fixed sequence, so every run measures the same record.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A directory as cdsfs might store it: one node per entry, named, with metadata and a content link
/// (a 32-byte key next to the child's hash).
func directoryRecord(entries: Int) -> Record {
    var g = SplitMix64(state: 42)
    var record = Record()
    record.children.reserveCapacity(entries)
    for i in 0..<entries {
        var entry = Record(text: "document-\(i)-draft.txt")
        entry.add("mode", unsigned: 0o100644)
        entry.add("size", unsigned: UInt64.random(in: 0..<(1 << 30), using: &g))
        entry.add("mtime", integer: 1_700_000_000_000 + Int64(i))
        let key = try! AESKey(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) })
        let hash = Hash(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) })!
        entry.add("content", link: HashAndKey(hash: hash, key: key))
        record.add(entry)
    }
    return record
}

let options = Options(CommandLine.arguments)
let mebibyte = 1 << 20
var buffer = [UInt8](repeating: 0, count: mebibyte)
for i in 0..<buffer.count { buffer[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) }

// SHA-256
let shaSeconds = measure(options, "sha256") { sink ^= Hash.of(buffer).w0 }
print("sha256 \(format(Double(mebibyte) / shaSeconds / 1e6, 1)) MB/s  # Hash.of on 1 MiB")

// AES-256-CTR, in place
let key = AESKey.random()
let aesSeconds = measure(options, "aes") {
    key.apply(&buffer)
    sink ^= UInt64(buffer[12345])
}
print("aes-256-ctr \(format(Double(mebibyte) / aesSeconds / 1e6, 1)) MB/s  # AESKey.apply in place on 1 MiB")

// Records
let record = directoryRecord(entries: options.entries)
let object = record.object()
let nodes = options.entries * 9
let parseSeconds = measure(options, "parse") {
    let parsed = try! Record(object: object)
    sink ^= UInt64(parsed.children.count)
}
let serializeSeconds = measure(options, "serialize") {
    let o = record.object()
    sink ^= UInt64(o.bytes.count)
}
precondition(try! Record(object: object) == record, "the record does not round-trip")
let size = "\(object.bytes.count) bytes, \(options.entries) entries, \(nodes) nodes, \(object.hashCount) hashes"
print("record-parse \(format(parseSeconds * 1e3, 3)) ms  # Record(object:), \(size)")
print("record-serialize \(format(serializeSeconds * 1e3, 3)) ms  # Record.object()")
print("record-total \(format((parseSeconds + serializeSeconds) * 1e3, 3)) ms  # parse + serialize")
print("record-parse-rate \(format(Double(object.bytes.count) / parseSeconds / 1e6, 1)) MB/s")
print("# best of \(options.rounds) rounds of \(options.roundSeconds) s; sink \(sink & 0xff)")
