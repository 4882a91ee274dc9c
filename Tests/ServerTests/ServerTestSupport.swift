import Condensation
import Foundation
import Glibc
import StoreServer
import XCTest

/// Key pairs are slow to generate: a few for the whole run.
enum Actors {
    static let alice = KeyPair.generate()
    static let bob = KeyPair.generate()
    static let carol = KeyPair.generate()
}

/// A new empty directory under /tmp, removed by `remove()`.
final class TemporaryDirectory {
    let path: String

    init(_ prefix: String = "cdsfs-server") {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(p != nil, "mkdtemp failed")
        path = String(cString: p!)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// A `StoreServer` over a folder store in a temporary directory, on an ephemeral port of 127.0.0.1.
final class TestServer {
    let directory = TemporaryDirectory()
    let store: FolderStore
    let backend: any Store
    let server: StoreServer
    let port: Int
    var url: String { "http://127.0.0.1:\(port)" }
    var authority: String { "127.0.0.1:\(port)" }

    init(limits: StoreServer.Limits = .init(), wrap: ((FolderStore) -> any Store)? = nil) throws {
        store = try FolderStore.create(directory.path + "/store")
        backend = wrap?(store) ?? store
        server = StoreServer(store: backend, host: "127.0.0.1", port: 0, limits: limits, logRequests: false)
        port = try server.start()
    }

    func stop() {
        server.stop()
        directory.remove()
    }

    /// A client with short timeouts and quick retries, so failures show fast.
    func client(_ keyPair: KeyPair? = nil, retries: Int = 2) -> HTTPStore {
        var c = HTTPStore.Configuration()
        c.retries = retries
        c.initialBackoff = 0.02
        c.connectTimeout = 5
        c.readTimeout = 20
        return try! HTTPStore(url: url, keyPair: keyPair, configuration: c)
    }

    /// Puts the actor's public key straight into the store (as if it had published it before).
    func publish(_ keyPair: KeyPair) throws {
        try store.put(keyPair.actor, keyPair.publicKey.object)
    }

    /// Signature headers as a client would send them, with every part overridable for attacks.
    func signature(_ keyPair: KeyPair, _ method: String, _ path: String, body: [UInt8]? = nil,
                   date: Int64 = HTTPSigning.now(), signedPath: String? = nil, signedMethod: String? = nil,
                   signedBody: [UInt8]? = nil) -> [(String, String)] {
        HTTPSigning.headers(keyPair: keyPair, method: signedMethod ?? method,
                            hostAndPath: authority + (signedPath ?? path), body: signedBody ?? body,
                            date: HTTPSigning.dateString(milliseconds: date))
    }

    /// One raw exchange (no retries, no signature unless given).
    func send(_ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil) throws -> HTTPResponse {
        try client().send(method, path, headers: headers, body: body)
    }
}

/// Objects for tests: random data, optionally with children.
enum TestObjects {
    /// Distinct objects (random first bytes), quick to make even when large.
    static func random(_ size: Int = 100, children: [Hash] = []) -> Object {
        var data = [UInt8](repeating: UInt8.random(in: 0...255), count: size)
        for i in 0..<min(size, 64) { data[i] = UInt8.random(in: 0...255) }
        return Object(hashes: children, data: data)
    }

    /// A tree: `fanout` children per node down to `depth` levels. Returns the root and every object.
    static func tree(depth: Int, fanout: Int, size: Int = 200) -> (root: Hash, objects: [Hash: Object]) {
        var all: [Hash: Object] = [:]
        func build(_ level: Int) -> Hash {
            let children = level < depth ? (0..<fanout).map { _ in build(level + 1) } : []
            let o = random(size, children: children)
            let h = o.calculateHash()
            all[h] = o
            return h
        }
        let root = build(0)
        return (root, all)
    }
}

/// A raw TCP connection to the server, for requests no HTTP client would send.
final class RawConnection {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw StoreError.unreachable("connect: \(errno)") }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func write(_ text: String) { write(Array(text.utf8)) }

    func write(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Everything until the server closes (or the timeout).
    func readAll() -> String {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Bytes up to the end of the first response head (or until the server closes).
    func readHead() -> String {
        var out: [UInt8] = []
        var b: UInt8 = 0
        while !out.suffix(4).elementsEqual(Array("\r\n\r\n".utf8)), recv(fd, &b, 1, 0) == 1 { out.append(b) }
        return String(decoding: out, as: UTF8.self)
    }

    /// True if the server closed the connection (read returns end of stream) within the timeout.
    func isClosedByPeer() -> Bool {
        var b: UInt8 = 0
        return recv(fd, &b, 1, 0) == 0
    }
}

/// A store wrapper that fails its first `failures` calls of any kind with an I/O error (the server
/// answers 500) and counts calls.
final class FlakyStore: Store, @unchecked Sendable {
    let inner: any Store
    private let lock = NSLock()
    private var failuresLeft: Int
    private(set) var calls = 0

    init(_ inner: any Store, failures: Int) {
        self.inner = inner
        self.failuresLeft = failures
    }

    var url: String { inner.url }

    private func step() throws(StoreError) {
        lock.lock()
        calls += 1
        let fail = failuresLeft > 0
        if fail { failuresLeft -= 1 }
        lock.unlock()
        if fail { throw .io(path: "flaky", errno: EIO) }
    }

    func get(_ hash: Hash) throws(StoreError) -> Object? { try step(); return try inner.get(hash) }
    func put(_ hash: Hash, _ object: Object) throws(StoreError) { try step(); try inner.put(hash, object) }
    func book(_ hash: Hash) throws(StoreError) -> Bool { try step(); return try inner.book(hash) }
    func list(_ account: Hash, _ box: BoxLabel) throws(StoreError) -> [Hash] { try step(); return try inner.list(account, box) }
    func add(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) { try step(); try inner.add(account, box, hash) }
    func remove(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) { try step(); try inner.remove(account, box, hash) }
    func modify(_ m: Modifications) throws(StoreError) { try step(); try inner.modify(m) }
    func flush() throws(StoreError) { try inner.flush() }
}

/// A store that answers every get with the wrong bytes (a broken or hostile server).
final class LyingStore: Store, @unchecked Sendable {
    let inner: any Store
    init(_ inner: any Store) { self.inner = inner }
    var url: String { inner.url }
    func get(_ hash: Hash) throws(StoreError) -> Object? {
        guard try inner.get(hash) != nil else { return nil }
        return Object(hashes: [], data: Array("not what you asked for".utf8))
    }
    func put(_ hash: Hash, _ object: Object) throws(StoreError) { try inner.put(hash, object) }
    func book(_ hash: Hash) throws(StoreError) -> Bool { try inner.book(hash) }
    func list(_ account: Hash, _ box: BoxLabel) throws(StoreError) -> [Hash] { try inner.list(account, box) }
    func add(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) { try inner.add(account, box, hash) }
    func remove(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) { try inner.remove(account, box, hash) }
    func modify(_ m: Modifications) throws(StoreError) { try inner.modify(m) }
    func flush() throws(StoreError) { try inner.flush() }
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    var a = timespec(), b = timespec()
    clock_gettime(CLOCK_MONOTONIC, &a)
    try body()
    clock_gettime(CLOCK_MONOTONIC, &b)
    return Double(b.tv_sec - a.tv_sec) + Double(b.tv_nsec - a.tv_nsec) / 1e9
}

/// A value shared with other threads in a test.
final class Shared<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
    func withLock<R>(_ body: (inout T) -> R) -> R {
        lock.lock(); defer { lock.unlock() }
        return body(&stored)
    }
}
