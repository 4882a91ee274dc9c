// cdsfs-load: a load client for `cdsfs serve` (bench/server-load.sh runs it).
//
// N connections (threads, each with its own HTTPStore and so its own keep-alive connection) send a
// mix of signed and anonymous requests for a bounded time, against 127.0.0.1 only:
//
//   get    GET /objects/<hash> of an object some connection put (anonymous)
//   put    PUT /objects/<hash>, an object of 1–64 KiB (signed)
//   list   GET of the actor's private box (signed) or of a public box (anonymous)
//   add    PUT /accounts/<other actor>/messages/<hash> (anonymous, as message delivery is)
//   poll   GET of the actor's in-queue with Condensation-Watch (signed, a long poll); what it
//          returns is removed again (signed DELETE, counted as `remove`)
//
// Prints throughput, errors, and latency percentiles per operation. No retries: an error is counted,
// not hidden. Requests are signed with RSA-2048 as devices sign them, so the client spends CPU too;
// on a small machine it shares the cores with the server.
import Condensation
import Glibc
import Synchronization

struct Options {
    var url = ""
    var connections = 64
    var duration = 60.0
    var actors = 8
    var pollMilliseconds = 1000
    var mix: [(Operation, Int)] = [(.get, 40), (.put, 25), (.list, 15), (.add, 10), (.poll, 10)]
}

enum Operation: String, CaseIterable {
    case get, put, list, add, poll, remove
}

func warn(_ text: String) {
    _ = text.withCString { write(2, $0, strlen($0)) }
}

func usage(_ message: String? = nil) -> Never {
    if let message { warn("cdsfs-load: \(message)\n") }
    warn("""
    usage: cdsfs-load --url http://127.0.0.1:PORT [--connections N] [--duration SECONDS]
                      [--actors N] [--poll-ms MS] [--mix get=40,put=25,list=15,add=10,poll=10]
      Only 127.0.0.1, localhost or [::1]. Duration at most 600 s, connections at most 1024.

    """)
    exit(2)
}

func parseOptions() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()
    func value(_ name: String) -> String {
        guard let v = args.popFirst() else { usage("\(name) needs a value") }
        return v
    }
    while let a = args.popFirst() {
        switch a {
        case "--url": o.url = value(a)
        case "--connections": o.connections = Int(value(a)) ?? 0
        case "--duration": o.duration = Double(value(a)) ?? 0
        case "--actors": o.actors = Int(value(a)) ?? 0
        case "--poll-ms": o.pollMilliseconds = Int(value(a)) ?? -1
        case "--mix":
            o.mix = value(a).split(separator: ",").map { part in
                let kv = part.split(separator: "=")
                guard kv.count == 2, let op = Operation(rawValue: String(kv[0])), op != .remove, let w = Int(kv[1]), w >= 0 else {
                    usage("--mix: expected op=weight,… with ops get, put, list, add, poll")
                }
                return (op, w)
            }
        case "-h", "--help": usage()
        default: usage("unknown argument \(a)")
        }
    }
    guard !o.url.isEmpty else { usage("--url is required") }
    let authority = o.url.dropFirst("http://".count).prefix { $0 != "/" }
    let host = authority.hasPrefix("[") ? String(authority.prefix { $0 != "]" }) + "]" : String(authority.prefix { $0 != ":" })
    guard o.url.hasPrefix("http://"), ["127.0.0.1", "localhost", "[::1]"].contains(host) else {
        usage("only a server on this machine (127.0.0.1, localhost, [::1]) may be loaded, not \(o.url)")
    }
    guard (1...1024).contains(o.connections) else { usage("--connections must be 1–1024") }
    guard o.duration > 0, o.duration <= 600 else { usage("--duration must be above 0 and at most 600 seconds") }
    guard (1...64).contains(o.actors) else { usage("--actors must be 1–64") }
    guard (0...60_000).contains(o.pollMilliseconds) else { usage("--poll-ms must be 0–60000") }
    guard o.mix.contains(where: { $0.1 > 0 }) else { usage("--mix: some weight must be above 0") }
    return o
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Hashes of objects that were put, for gets (a bounded ring, shared by all connections).
final class Pool: Sendable {
    private let hashes = Mutex<(ring: [Hash], next: Int)>(([], 0))
    static let size = 4096

    func add(_ h: Hash) {
        hashes.withLock { s in
            if s.ring.count < Self.size { s.ring.append(h) } else { s.ring[s.next] = h }
            s.next = (s.next + 1) % Self.size
        }
    }

    func random(_ g: inout SystemRandomNumberGenerator) -> Hash? {
        hashes.withLock { s in s.ring.isEmpty ? nil : s.ring[Int.random(in: 0..<s.ring.count, using: &g)] }
    }
}

/// What one connection measured.
struct Tally {
    var latencies: [Operation: [Double]] = [:]
    var errors: [Operation: Int] = [:]
    var firstErrors: [String] = []

    mutating func record(_ op: Operation, _ seconds: Double) { latencies[op, default: []].append(seconds) }

    mutating func fail(_ op: Operation, _ error: Error) {
        errors[op, default: 0] += 1
        if firstErrors.count < 3 { firstErrors.append("\(op.rawValue): \(error)") }
    }
}

final class Worker: @unchecked Sendable {
    let options: Options
    let store: HTTPStore
    let me: KeyPair
    let others: [Hash]
    let pool: Pool
    let deadline: Double
    var tally = Tally()
    var g = SystemRandomNumberGenerator()

    init(options: Options, keyPair: KeyPair, others: [Hash], pool: Pool, deadline: Double) throws {
        self.options = options
        var configuration = HTTPStore.Configuration()
        configuration.retries = 0
        configuration.maximumIdleConnections = 1
        configuration.readTimeout = 30
        store = try HTTPStore(url: options.url, keyPair: keyPair, configuration: configuration)
        me = keyPair
        self.others = others
        self.pool = pool
        self.deadline = deadline
    }

    func pick() -> Operation {
        let total = options.mix.reduce(0) { $0 + $1.1 }
        var r = Int.random(in: 0..<total, using: &g)
        for (op, w) in options.mix {
            if r < w { return op }
            r -= w
        }
        return .get
    }

    func timed(_ op: Operation, _ body: () throws -> Void) {
        let start = now()
        do {
            try body()
            tally.record(op, now() - start)
        } catch {
            tally.fail(op, error)
        }
    }

    func run() {
        while now() < deadline {
            switch pick() {
            case .get:
                guard let h = pool.random(&g) else { continue }
                timed(.get) {
                    guard try store.get(h) != nil else { throw StoreError.refused(status: 404, "object \(h.shortHex) missing") }
                }
            case .put:
                // 1–64 KiB, log-uniform: chunks and directory pages are mostly in this range.
                let size = Int(pow(2.0, Double.random(in: 10...16, using: &g)))
                var data = [UInt8](repeating: 0, count: size)
                for i in stride(from: 0, to: size, by: 8) {
                    let w = g.next()
                    for j in 0..<min(8, size - i) { data[i + j] = UInt8(truncatingIfNeeded: w >> (8 * UInt64(j))) }
                }
                let object = Object(hashes: [], data: data)
                let h = object.calculateHash()
                timed(.put) { try store.put(h, object) }
                pool.add(h)
            case .list:
                if Bool.random(using: &g) {
                    timed(.list) { _ = try store.list(me.actor, .private) }
                } else {
                    let other = others.randomElement(using: &g)!
                    timed(.list) { _ = try store.list(other, .public) }
                }
            case .add:
                guard let h = pool.random(&g) else { continue }
                let other = others.randomElement(using: &g)!
                timed(.add) { try store.add(other, .messages, h) }
            case .poll:
                var got: [Hash] = []
                timed(.poll) { got = try store.list(me.actor, .messages, watch: options.pollMilliseconds) }
                for h in got.prefix(8) {
                    timed(.remove) { try store.remove(me.actor, .messages, h) }
                }
            case .remove:
                continue
            }
        }
        store.closeIdleConnections()
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let i = min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))
    return sorted[i]
}

func ms(_ seconds: Double) -> String {
    let v = seconds * 1000
    return v >= 100 ? String(Int(v.rounded())) : v >= 10 ? String(format1(v)) : String(format2(v))
}
func format1(_ v: Double) -> String { String(Double(Int((v * 10).rounded())) / 10) }
func format2(_ v: Double) -> String { String(Double(Int((v * 100).rounded())) / 100) }

func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, w - s.count))
    return left ? s + fill : fill + s
}

/// A worker's thread (a global function: a closure in top-level code would be main-actor isolated).
func workerThread(_ raw: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let w = Unmanaged<Worker>.fromOpaque(raw!).takeRetainedValue()
    w.run()
    return nil
}

// MARK: - Main

let options = parseOptions()
signal(SIGPIPE, SIG_IGN)

// The actors: key pairs whose public keys go on the server before the clock starts.
warn("cdsfs-load: \(options.actors) actors, \(options.connections) connections, \(Int(options.duration)) s against \(options.url)\n")
let actors = (0..<options.actors).map { _ in KeyPair.generate() }
do {
    for a in actors {
        let s = try HTTPStore(url: options.url, keyPair: a)
        try s.put(a.actor, a.publicKey.object)
        // A public card-like entry, so that public listings return something.
        let h = try s.put(Object(hashes: [], data: Array("card".utf8) + a.actor.bytes))
        try s.add(a.actor, .public, h)
        s.closeIdleConnections()
    }
} catch {
    warn("cdsfs-load: cannot reach \(options.url): \(error)\n")
    exit(1)
}

let pool = Pool()
let start = now()
let deadline = start + options.duration
let workers: [Worker]
do {
    workers = try (0..<options.connections).map { i in
        let me = actors[i % actors.count]
        let others = actors.map(\.actor).filter { $0 != me.actor }
        return try Worker(options: options, keyPair: me, others: others.isEmpty ? [me.actor] : others, pool: pool,
                          deadline: deadline)
    }
} catch {
    warn("cdsfs-load: \(error)\n")
    exit(2)
}

var threads: [pthread_t] = []
for w in workers {
    var t = pthread_t()
    let box = Unmanaged.passRetained(w).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setstacksize(&attributes, 1 << 20)
    let rc = pthread_create(&t, &attributes, workerThread, box)
    pthread_attr_destroy(&attributes)
    guard rc == 0 else { warn("cdsfs-load: pthread_create failed (\(rc))\n"); exit(1) }
    threads.append(t)
}
for t in threads { pthread_join(t, nil) }
let elapsed = now() - start

var latencies: [Operation: [Double]] = [:]
var errors: [Operation: Int] = [:]
var firstErrors: [String] = []
for w in workers {
    for (op, l) in w.tally.latencies { latencies[op, default: []] += l }
    for (op, e) in w.tally.errors { errors[op, default: 0] += e }
    firstErrors += w.tally.firstErrors
}

print("connections \(options.connections), actors \(options.actors), \(format1(elapsed)) s, long polls wait up to \(options.pollMilliseconds) ms")
print(pad("op", 8, left: true) + pad("count", 9) + pad("errors", 8) + pad("ops/s", 9) + pad("p50 ms", 9) + pad("p90 ms", 9)
      + pad("p99 ms", 9) + pad("max ms", 9))
var totalCount = 0, totalErrors = 0
for op in Operation.allCases {
    let l = (latencies[op] ?? []).sorted()
    let e = errors[op] ?? 0
    guard !l.isEmpty || e > 0 else { continue }
    totalCount += l.count
    totalErrors += e
    print(pad(op.rawValue, 8, left: true) + pad(String(l.count), 9) + pad(String(e), 8) + pad(format1(Double(l.count) / elapsed), 9)
          + pad(ms(percentile(l, 0.5)), 9) + pad(ms(percentile(l, 0.9)), 9) + pad(ms(percentile(l, 0.99)), 9)
          + pad(ms(l.last ?? 0), 9))
}
print(pad("all", 8, left: true) + pad(String(totalCount), 9) + pad(String(totalErrors), 8) + pad(format1(Double(totalCount) / elapsed), 9))
for e in firstErrors.prefix(5) { print("error: \(e)") }
exit(totalErrors > 0 ? 3 : 0)
