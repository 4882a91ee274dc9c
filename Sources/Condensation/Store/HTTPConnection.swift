import Glibc
import Synchronization

/// An HTTP response as `HTTPStore` reads it: status, headers (names as sent), whole body.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// The first header of that name (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    /// The body as text (for error messages).
    public var text: String { String(decoding: body.prefix(300), as: UTF8.self) }
}

/// Why an exchange failed below HTTP: the reason `HTTPStore` retries, and reports as `.unreachable`.
enum HTTPTransportError: Error, CustomStringConvertible {
    case resolve(String)
    case connect(String)
    case timeout(String)
    /// The peer closed the connection; `afterResponseStarted` tells whether any response byte came.
    case closed(afterResponseStarted: Bool)
    case io(String)
    case malformed(String)
    case tooLarge(Int)

    var description: String {
        switch self {
        case .resolve(let s): return "cannot resolve \(s)"
        case .connect(let s): return s
        case .timeout(let s): return "timed out \(s)"
        case .closed: return "the server closed the connection"
        case .io(let s): return s
        case .malformed(let s): return "malformed response: \(s)"
        case .tooLarge(let n): return "response body larger than \(n) bytes"
        }
    }
}

/// Bytes on the wire, headers included (for tests and statistics).
final class HTTPCounters: Sendable {
    let sent = Atomic<Int>(0)
    let received = Atomic<Int>(0)
}

/// Milliseconds of a monotonic clock.
func monotonicMilliseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// One HTTP/1.1 connection over a blocking-by-poll TCP socket. Used by one thread at a time: a
/// connection is taken from the pool, used for one exchange, and given back (hence `@unchecked`).
final class HTTPConnection: @unchecked Sendable {
    private var fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private let counters: HTTPCounters
    /// False once the connection cannot carry another request (closed, error, `Connection: close`).
    private(set) var reusable = true
    /// Exchanges completed on this connection (a failure on a reused one may be a stale keep-alive).
    private(set) var exchanges = 0

    static let maximumHeaderSize = 64 * 1024

    private init(fd: Int32, counters: HTTPCounters) {
        self.fd = fd
        self.counters = counters
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        reusable = false
    }

    /// Connects to the first address of `host` that accepts within the timeout.
    static func connect(host: String, port: Int, timeoutMilliseconds: Int, counters: HTTPCounters) throws(HTTPTransportError) -> HTTPConnection {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw .resolve("\(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(first) }
        var lastError = "no address"
        let deadline = monotonicMilliseconds() + Int64(timeoutMilliseconds)
        var current: UnsafeMutablePointer<addrinfo>? = first
        while let ai = current {
            current = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                            ai.pointee.ai_protocol)
            if fd < 0 { lastError = String(cString: strerror(errno)); continue }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 {
                return HTTPConnection(fd: fd, counters: counters)
            }
            guard errno == EINPROGRESS else {
                lastError = String(cString: strerror(errno))
                Glibc.close(fd)
                continue
            }
            let remaining = Int(max(0, deadline - monotonicMilliseconds()))
            guard Self.wait(fd, events: Int16(POLLOUT), milliseconds: remaining) else {
                lastError = "connect timed out after \(timeoutMilliseconds) ms"
                Glibc.close(fd)
                continue
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error == 0 { return HTTPConnection(fd: fd, counters: counters) }
            lastError = String(cString: strerror(error))
            Glibc.close(fd)
        }
        throw .connect("cannot connect to \(host):\(port): \(lastError)")
    }

    /// Waits until the socket is ready; false on timeout. EINTR restarts with the time left.
    private static func wait(_ fd: Int32, events: Int16, milliseconds: Int) -> Bool {
        let deadline = monotonicMilliseconds() + Int64(milliseconds)
        while true {
            var p = pollfd(fd: fd, events: events, revents: 0)
            let left = Int32(clamping: max(0, deadline - monotonicMilliseconds()))
            let n = poll(&p, 1, left)
            if n > 0 { return true }
            if n == 0 { return false }
            if errno != EINTR { return true }  // let the next call report the error
        }
    }

    /// True if an idle connection has been closed by the server (or has unexpected bytes pending):
    /// it must not carry a request.
    var isStale: Bool {
        guard fd >= 0 else { return true }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) != 0
    }

    func write(_ bytes: [UInt8], timeoutMilliseconds: Int) throws(HTTPTransportError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                done += n
                counters.sent.add(n, ordering: .relaxed)
                continue
            }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                guard Self.wait(fd, events: Int16(POLLOUT), milliseconds: timeoutMilliseconds) else {
                    reusable = false
                    throw .timeout("sending after \(timeoutMilliseconds) ms")
                }
                continue
            }
            if n < 0 && errno == EINTR { continue }
            reusable = false
            throw .io("send: \(String(cString: strerror(errno)))")
        }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    private func fill(timeoutMilliseconds: Int) throws(HTTPTransportError) -> Bool {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        var scratch = [UInt8](repeating: 0, count: 16 * 1024)
        let n = try receive(into: &scratch, at: 0, count: scratch.count, timeoutMilliseconds: timeoutMilliseconds)
        buffer.append(contentsOf: scratch[0..<n])
        return n > 0
    }

    /// One `recv` into `out[offset..<offset+count]` once the socket is readable; 0 at end of stream.
    private func receive(into out: inout [UInt8], at offset: Int, count: Int, timeoutMilliseconds: Int) throws(HTTPTransportError) -> Int {
        while true {
            guard Self.wait(fd, events: Int16(POLLIN), milliseconds: timeoutMilliseconds) else {
                reusable = false
                throw .timeout("waiting \(timeoutMilliseconds) ms for the response")
            }
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + offset, count, 0) }
            if n > 0 {
                counters.received.add(n, ordering: .relaxed)
                return n
            }
            if n == 0 {
                reusable = false
                return 0
            }
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
            reusable = false
            throw .io("recv: \(String(cString: strerror(errno)))")
        }
    }

    private var available: Int { buffer.count - start }

    /// Takes `count` buffered bytes.
    private func take(_ count: Int) -> ArraySlice<UInt8> {
        let slice = buffer[start..<(start + count)]
        start += count
        return slice
    }

    /// A line ending in CRLF (or LF), without it. `limit` bounds its length.
    private func readLine(limit: Int, timeoutMilliseconds: Int) throws(HTTPTransportError) -> String {
        // Counted from `start`: `fill` moves the buffer's contents to the front when it was all
        // taken (chunked bodies end a chunk exactly there), so absolute indexes would go stale.
        var searched = 0
        while true {
            if let nl = buffer[(start + searched)...].firstIndex(of: 10) {
                var end = nl
                if end > start && buffer[end - 1] == 13 { end -= 1 }
                let line = String(decoding: buffer[start..<end], as: UTF8.self)
                start = nl + 1
                return line
            }
            searched = buffer.count - start
            guard buffer.count - start <= limit else { throw .malformed("line longer than \(limit) bytes") }
            guard try fill(timeoutMilliseconds: timeoutMilliseconds) else { throw .closed(afterResponseStarted: true) }
        }
    }

    /// Reads one response (skipping 1xx interim responses). `firstByteTimeout` applies until the
    /// status line begins (a long poll waits there), `timeout` between later reads.
    func readResponse(forHead: Bool, firstByteTimeoutMilliseconds: Int, timeoutMilliseconds: Int,
                      maximumBody: Int) throws(HTTPTransportError) -> HTTPResponse {
        while true {
            if available == 0 {
                guard try fill(timeoutMilliseconds: firstByteTimeoutMilliseconds) else {
                    throw .closed(afterResponseStarted: false)
                }
            }
            var headerBytes = 0
            let statusLine = try readLine(limit: Self.maximumHeaderSize, timeoutMilliseconds: timeoutMilliseconds)
            let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...999).contains(status) else {
                reusable = false
                throw .malformed("status line \(statusLine.prefix(80))")
            }
            let http10 = parts[0] == "HTTP/1.0"
            var headers: [(name: String, value: String)] = []
            while true {
                let line = try readLine(limit: Self.maximumHeaderSize, timeoutMilliseconds: timeoutMilliseconds)
                headerBytes += line.utf8.count + 2
                guard headerBytes <= Self.maximumHeaderSize else { reusable = false; throw .malformed("headers too large") }
                if line.isEmpty { break }
                guard let colon = line.firstIndex(of: ":") else {
                    reusable = false
                    throw .malformed("header line \(line.prefix(80))")
                }
                let name = String(line[..<colon]).httpTrimmed
                let value = String(line[line.index(after: colon)...]).httpTrimmed
                headers.append((name, value))
            }
            var response = HTTPResponse(status: status, headers: headers, body: [])
            if (100..<200).contains(status) { continue }

            let connection = response.header("connection")?.lowercased() ?? ""
            if connection.contains("close") || (http10 && !connection.contains("keep-alive")) { reusable = false }
            if forHead || status == 204 || status == 304 {
                exchanges += 1
                return response
            }
            if let te = response.header("transfer-encoding")?.lowercased(), te.contains("chunked") {
                response.body = try readChunked(maximumBody: maximumBody, timeoutMilliseconds: timeoutMilliseconds)
            } else if let cl = response.header("content-length") {
                guard let length = Int(cl), length >= 0 else { reusable = false; throw .malformed("content-length \(cl)") }
                guard length <= maximumBody else { reusable = false; throw .tooLarge(maximumBody) }
                response.body = try readExactly(length, timeoutMilliseconds: timeoutMilliseconds)
            } else {
                // Delimited by the end of the connection.
                reusable = false
                var body: [UInt8] = Array(take(available))
                while try fill(timeoutMilliseconds: timeoutMilliseconds) {
                    body.append(contentsOf: take(available))
                    guard body.count <= maximumBody else { throw .tooLarge(maximumBody) }
                }
                response.body = body
            }
            exchanges += 1
            return response
        }
    }

    private func readExactly(_ count: Int, timeoutMilliseconds: Int) throws(HTTPTransportError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let buffered = min(available, count)
        if buffered > 0 {
            out.withUnsafeMutableBufferPointer { o in
                buffer.withUnsafeBufferPointer { b in
                    o.baseAddress!.update(from: b.baseAddress! + start, count: buffered)
                }
            }
            start += buffered
        }
        // The rest straight into the result: a large object is not copied through the buffer.
        var done = buffered
        while done < count {
            let n = try receive(into: &out, at: done, count: count - done, timeoutMilliseconds: timeoutMilliseconds)
            guard n > 0 else { throw .closed(afterResponseStarted: true) }
            done += n
        }
        return out
    }

    private func readChunked(maximumBody: Int, timeoutMilliseconds: Int) throws(HTTPTransportError) -> [UInt8] {
        var out: [UInt8] = []
        while true {
            let line = try readLine(limit: 1024, timeoutMilliseconds: timeoutMilliseconds)
            let sizeText = line.split(separator: ";", maxSplits: 1).first.map { String($0).httpTrimmed } ?? ""
            guard let size = Int(sizeText, radix: 16), size >= 0 else { reusable = false; throw .malformed("chunk size \(line.prefix(40))") }
            if size == 0 {
                // Trailers, up to the empty line.
                while try !readLine(limit: Self.maximumHeaderSize, timeoutMilliseconds: timeoutMilliseconds).isEmpty {}
                return out
            }
            guard out.count + size <= maximumBody else { reusable = false; throw .tooLarge(maximumBody) }
            out.append(contentsOf: try readExactly(size, timeoutMilliseconds: timeoutMilliseconds))
            guard try readLine(limit: 2, timeoutMilliseconds: timeoutMilliseconds).isEmpty else {
                reusable = false
                throw .malformed("chunk not followed by CRLF")
            }
        }
    }
}

extension String {
    var httpTrimmed: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
