import Glibc
import Synchronization

/// A keep-alive pool of `HTTPConnection`s to one host, and single exchanges over it: what `HTTPStore`
/// and `S3Store` send their requests through. Safe to use from several threads at once; each exchange takes an idle
/// connection (or opens one), so as many requests are in flight as there are callers.
///
/// No retries and no status handling here: callers decide what to retry. A request that fails on a
/// reused connection before any answer byte is sent again at once on a new connection (the server may
/// have closed it while idle), which is safe for every method because no answer began.
final class HTTPClient: Sendable {
    let host: String
    let port: Int
    /// The `Host` header.
    let authority: String
    let connectTimeoutMilliseconds: Int
    let readTimeoutMilliseconds: Int
    let maximumIdleConnections: Int
    let maximumResponseSize: Int
    let userAgent: String
    let counters = HTTPCounters()
    private let idle = Mutex<[HTTPConnection]>([])

    init(host: String, port: Int, authority: String, connectTimeout: Double, readTimeout: Double,
         maximumIdleConnections: Int, maximumResponseSize: Int, userAgent: String) {
        self.host = host
        self.port = port
        self.authority = authority
        self.connectTimeoutMilliseconds = Int(connectTimeout * 1000)
        self.readTimeoutMilliseconds = Int(readTimeout * 1000)
        self.maximumIdleConnections = maximumIdleConnections
        self.maximumResponseSize = maximumResponseSize
        self.userAgent = userAgent
    }

    deinit { closeIdleConnections() }

    func closeIdleConnections() {
        let all = idle.withLock { pool in
            let all = pool
            pool.removeAll()
            return all
        }
        for c in all { c.close() }
    }

    /// One request and its response. `target` is the request target as sent (encoded path and query).
    /// `headers` is called for each sending: a request that goes out again on a fresh connection is
    /// signed anew where the protocol refuses replays. `extraWaitMilliseconds` is added to the wait for
    /// the first byte of the answer (a long poll).
    func exchange(_ method: String, _ target: String, headers: () -> [(String, String)], body: [UInt8]?,
                  extraWaitMilliseconds: Int = 0) -> Result<HTTPResponse, HTTPTransportError> {
        func requestBytes() -> [UInt8] {
            var head = "\(method) \(target) HTTP/1.1\r\nHost: \(authority)\r\nUser-Agent: \(userAgent)\r\n"
            for (name, value) in headers() { head += "\(name): \(value)\r\n" }
            if let body {
                head += "Content-Length: \(body.count)\r\n"
            } else if method == "PUT" || method == "POST" {
                head += "Content-Length: 0\r\n"
            }
            head += "\r\n"
            var bytes = Array(head.utf8)
            if let body { bytes += body }
            return bytes
        }

        var freshTried = false
        while true {
            let bytes = requestBytes()
            let connection: HTTPConnection
            var reused = false
            if !freshTried, let c = takeIdle() {
                connection = c
                reused = true
            } else {
                do {
                    connection = try HTTPConnection.connect(host: host, port: port, timeoutMilliseconds: connectTimeoutMilliseconds,
                                                            counters: counters)
                } catch { return .failure(error) }
                freshTried = true
            }
            do throws(HTTPTransportError) {
                do {
                    try connection.write(bytes, timeoutMilliseconds: readTimeoutMilliseconds)
                } catch {
                    // The server may have answered early and closed: read what it said.
                    if let r = try? connection.readResponse(forHead: method == "HEAD", firstByteTimeoutMilliseconds: 1000,
                                                            timeoutMilliseconds: 1000, maximumBody: maximumResponseSize) {
                        connection.close()
                        return .success(r)
                    }
                    throw error
                }
                let response = try connection.readResponse(forHead: method == "HEAD",
                                                           firstByteTimeoutMilliseconds: readTimeoutMilliseconds + extraWaitMilliseconds,
                                                           timeoutMilliseconds: readTimeoutMilliseconds, maximumBody: maximumResponseSize)
                giveBack(connection)
                return .success(response)
            } catch {
                connection.close()
                if reused, case .closed(afterResponseStarted: false) = error { continue }
                if reused, case .io = error { continue }
                return .failure(error)
            }
        }
    }

    private func takeIdle() -> HTTPConnection? {
        while let c = idle.withLock({ $0.popLast() }) {
            if !c.isStale { return c }
            c.close()
        }
        return nil
    }

    private func giveBack(_ connection: HTTPConnection) {
        guard connection.reusable else { connection.close(); return }
        let kept = idle.withLock { pool -> Bool in
            guard pool.count < maximumIdleConnections else { return false }
            pool.append(connection)
            return true
        }
        if !kept { connection.close() }
    }
}

/// Sleeps for `attempt`'s share of an exponential backoff with jitter (half to all of
/// `initial · 2^attempt`, at most `maximum` seconds).
func backoffSleep(attempt: Int, initial: Double, maximum: Double) {
    let base = min(maximum, initial * Double(1 << min(attempt, 20)))
    let seconds = base * Double.random(in: 0.5...1.0)
    var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var left = timespec()
    while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
}

/// Runs `body(0..<count)` on up to `width` threads and returns when all have finished; the first error
/// thrown is rethrown (the others still finish their current item, and no new item starts).
/// For blocking I/O (S3 requests), where a thread per request in flight is the simple and right shape.
func parallelForEach(_ count: Int, width: Int, _ body: @escaping @Sendable (Int) throws(StoreError) -> Void) throws(StoreError) {
    if count == 0 { return }
    let threads = max(1, min(width, count))
    if threads == 1 {
        for i in 0..<count { try body(i) }
        return
    }
    final class Shared: @unchecked Sendable {
        let next = Atomic<Int>(0)
        let failure = Mutex<StoreError?>(nil)
        let count: Int
        let body: @Sendable (Int) throws(StoreError) -> Void
        init(count: Int, body: @escaping @Sendable (Int) throws(StoreError) -> Void) { self.count = count; self.body = body }

        func work() {
            while failure.withLock({ $0 == nil }) {
                let i = next.add(1, ordering: .relaxed).oldValue
                if i >= count { return }
                do { try body(i) } catch {
                    failure.withLock { if $0 == nil { $0 = error } }
                    return
                }
            }
        }
    }
    let shared = Shared(count: count, body: body)
    var ids: [pthread_t] = []
    for _ in 1..<threads {
        var t = pthread_t()
        let arg = Unmanaged.passRetained(shared).toOpaque()
        let rc = pthread_create(&t, nil, { arg in
            let s = Unmanaged<Shared>.fromOpaque(arg!).takeRetainedValue()
            s.work()
            return nil
        }, arg)
        if rc == 0 { ids.append(t) } else { Unmanaged<Shared>.fromOpaque(arg).release() }
    }
    shared.work()
    for t in ids { pthread_join(t, nil) }
    if let e = shared.failure.withLock({ $0 }) { throw e }
}
