@testable import Condensation
import Foundation
import Glibc
import TestSupport
import XCTest

/// The base of the S3 tests: the one-node Ceph cluster of scripts/ceph.sh (started here if it is not
/// running; CI starts it first), a fresh bucket per test, and `server` — the sync tests' `cdsfs serve`
/// — serving that bucket instead of a folder. Everything SyncTestCase offers (devices, mounts, shells,
/// `waitForSameHead`) works as in the sync tests. Never skips: without Ceph the tests fail and say why.
open class S3TestCase: SyncTestCase {
    /// The test user's keys (scripts/ceph.sh creates it with these).
    static let accessKey = "cdsfstestaccesskey"
    static let secretKey = "cdsfstestsecretkey0123456789abcdef"
    static var endpoint: String { ProcessInfo.processInfo.environment["CDSFS_S3_ENDPOINT"] ?? "http://127.0.0.1:7480" }

    /// scripts/ceph.sh, found from this file's place in the repository.
    static let cephScript: String = {
        var dir = #filePath
        for _ in 0..<3 { dir = (dir as NSString).deletingLastPathComponent }
        return dir + "/scripts/ceph.sh"
    }()

    /// nil once the cluster answers; else why not. A cluster these tests started is stopped when the
    /// test run ends (one that was running already is left as it was).
    private static let cephProblem: String? = {
        if runProcess("/bin/bash", [cephScript, "status"], timeout: 30).succeeded { return nil }
        print("S3 tests: Ceph is not running; starting it with \(cephScript) start (about 20 s)")
        let r = runProcess("/bin/bash", [cephScript, "start"], timeout: 600)
        XCTestObservationCenter.shared.addTestObserver(StopCephAtTheEnd())
        return r.succeeded ? nil : "Ceph could not be started (`scripts/ceph.sh start`): \(r)"
    }()

    private final class StopCephAtTheEnd: NSObject, XCTestObservation {
        func testBundleDidFinish(_ testBundle: Bundle) {
            print("S3 tests: stopping the Ceph cluster they started")
            _ = runProcess("/bin/bash", [S3TestCase.cephScript, "stop"], timeout: 120)
        }
    }

    public var bucket = ""
    /// `s3://BUCKET?endpoint=…`: the store every test's server serves.
    public var s3URL: String { "s3://\(bucket)?endpoint=\(Self.endpoint)&region=us-east-1" }
    /// When set, the remote new devices are given (instead of the server).
    public var remoteOverride: String?
    open override var remoteURL: String { remoteOverride ?? server.url }
    open override class var directoryPrefix: String { "cdsfs-s3" }
    open override class var metricLabel: String { "S3-METRIC" }
    private var extraServers: [Server] = []

    open override func setUpWithError() throws {
        if let problem = Self.cephProblem { throw StopTest(problem) }
        setenv("AWS_ACCESS_KEY_ID", Self.accessKey, 1)
        setenv("AWS_SECRET_ACCESS_KEY", Self.secretKey, 1)
        unsetenv("AWS_SESSION_TOKEN")
        unsetenv("AWS_PROFILE")
        try super.setUpWithError()
        // The folder server SyncTestCase started makes way for one on a fresh bucket.
        server.stop(SIGKILL)
        var random = SystemRandomNumberGenerator()
        bucket = "cdsfs-t-" + String(random.next() as UInt64, radix: 16)
        try s3Store().createBucket()
        server = Server(store: s3URL, logDirectory: root + "/logs")
        try server.start()
    }

    open override func tearDown() {
        for s in extraServers { s.stop(SIGKILL) }
        extraServers = []
        super.tearDown()
        for r in relays { r.killGroup() }
        relays = []
        if !bucket.isEmpty { emptyAndDeleteBucket() }
    }

    /// The test's bucket as a store, with the test user's keys.
    public func s3Store(url: String? = nil) throws -> S3Store {
        try S3Store(location: S3Location(url: url ?? s3URL),
                    credentials: S3Credentials(accessKeyId: Self.accessKey, secretAccessKey: Self.secretKey))
    }

    /// Another `cdsfs serve` on the same bucket, stopped in teardown. Its logs are `serve-N` under
    /// logs/<name>/.
    public func startAnotherServer(_ name: String) throws -> Server {
        Files.mkdirs(root + "/logs/" + name)
        let s = Server(store: s3URL, logDirectory: root + "/logs/" + name)
        extraServers.append(s)
        try s.start()
        return s
    }

    /// Every object in the bucket is checked against its hash (S3Store.get does): the names of those
    /// that fail.
    public func badObjectsInBucket() throws -> [String] {
        let store = try s3Store()
        var bad: [String] = []
        for h in try store.allObjects() {
            do { _ = try store.get(h) } catch { bad.append("\(h.hex): \(error)") }
        }
        return bad
    }

    private func emptyAndDeleteBucket() {
        guard let store = try? s3Store() else { return }
        var keys: [String] = []
        try? store.listKeys(prefix: "") { key, _, _ in keys.append(key) }
        let all = keys
        try? parallelForEach(all.count, width: 16) { i throws(StoreError) in _ = try store.request("DELETE", key: all[i]) }
        _ = try? store.request("DELETE", key: nil)
    }

    /// A TCP relay to the cluster on a port of its own (for `connect=`): it logs a line per
    /// connection, drops a connection after 0.3 s without traffic (so clients keep opening new
    /// ones), and with `faultEvery` N answers every Nth connection's first request itself instead —
    /// in turn 503 SlowDown, 500 InternalError, or a reset — as a throttled or failing S3 would.
    /// Stopped in teardown. Returns the port and the log's path.
    public func startRelay(faultEvery: Int = 0) throws -> (port: Int, log: String) {
        let log = root + "/logs/relay-\(relays.count).out"
        let out = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(out) }
        let target = URLComponents(string: Self.endpoint)!
        let relay = try ChildProcess(Paths.python, ["-u", "-c", Self.relayProgram, target.host!, String(target.port!), String(faultEvery)],
                                     stdout: out, stderr: out)
        relays.append(relay)
        var port = 0
        _ = waitUntil(10) {
            port = Int((Files.readText(log) ?? "").split(separator: "\n").first ?? "") ?? 0
            return port > 0
        }
        guard port > 0 else { throw StopTest("the relay did not start: \(Files.readText(log) ?? "")") }
        return (port, log)
    }

    private var relays: [ChildProcess] = []

    private static let relayProgram = """
        import socket, struct, sys, threading
        target = (sys.argv[1], int(sys.argv[2])); every = int(sys.argv[3])
        ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(('127.0.0.1', 0)); ls.listen(128)
        print(ls.getsockname()[1], flush=True)
        def pipe(a, b):
            try:
                a.settimeout(0.3)
                while True:
                    d = a.recv(65536)
                    if not d: break
                    b.sendall(d)
            except OSError: pass
            for s in (a, b):
                try: s.shutdown(socket.SHUT_RDWR)
                except OSError: pass
        def error(code, status, reason):
            body = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message></Message></Error>' % code).encode()
            return b'HTTP/1.1 %d %s\\r\\nContent-Type: application/xml\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n' % (status, reason.encode(), len(body)) + body
        def fault(c, kind):
            data = b''
            try:
                c.settimeout(5)
                while b'\\r\\n\\r\\n' not in data:
                    d = c.recv(65536)
                    if not d: break
                    data += d
                if kind == 0: c.sendall(error('SlowDown', 503, 'Slow Down'))
                elif kind == 1: c.sendall(error('InternalError', 500, 'Internal Server Error'))
                else: c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            except OSError: pass
            c.close()
        n = 0
        while True:
            c, _ = ls.accept()
            n += 1
            if every and n % every == 0:
                kind = (n // every) % 3
                print('fault', ['503', '500', 'reset'][kind], flush=True)
                threading.Thread(target=fault, args=(c, kind), daemon=True).start()
                continue
            print('connection', flush=True)
            try: u = socket.create_connection(target)
            except OSError: c.close(); continue
            threading.Thread(target=pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=pipe, args=(u, c), daemon=True).start()
        """

    /// `cdsfs` with the AWS variables replaced by `environment` (the bad-input tests).
    public func cdsfs(_ arguments: [String], environment: [String: String], timeout: Double = 120) -> ProcessResult {
        runProcess(Paths.cdsfs, arguments, environment: environment, clearing: "AWS_", timeout: timeout)
    }
}
