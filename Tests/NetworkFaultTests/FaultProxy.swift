import Foundation
import Glibc
import TestSupport

/// A fault-injecting TCP proxy on 127.0.0.1, between the devices and a real `cdsfs serve`: threads and
/// POSIX sockets, nothing else. It understands just enough HTTP/1.1 to see where each request starts and
/// ends (the request line, `Content-Length`); responses are passed through as bytes. The mode can be
/// switched at any time, from the test or by an armed trigger after so many bytes (so a fault lands in
/// the middle of a transfer, whatever its speed):
///
/// - `pass`: bytes go through untouched.
/// - `refuse`: the listening socket is closed (new connections are refused by the kernel) and every open
///   connection is reset: the server is unreachable.
/// - `slow`: each piece of at most `bytesPerSecond / 20` bytes waits `delayMilliseconds`, and the
///   bandwidth of each direction, over all connections, is held to `bytesPerSecond`.
/// - `reset`: a request (or response) that grows past `afterBytes` is cut there: the client and the
///   server get a TCP RST (SO_LINGER 0, then close). With `every: n`, only every nth such exchange.
/// - `http500`: every `every`th request is answered `HTTP/1.1 500 Internal Server Error` by the proxy
///   (its body read and dropped) and never reaches the server; the connection stays usable. With
///   `matching`, only requests whose request line contains that text count (one route failing).
///
/// Every wait is bounded: sockets are non-blocking, each connection has a wake pipe that ends all its
/// waits at once, the accept loop polls every 50 ms, and the whole proxy stops by itself `lifetime`
/// seconds after it started if nobody stopped it.
final class FaultProxy: @unchecked Sendable {
    enum Direction: String, Sendable { case request, response }

    enum Mode: Equatable, Sendable, CustomStringConvertible {
        case pass
        case refuse
        case slow(delayMilliseconds: Int, bytesPerSecond: Int)
        case reset(afterBytes: Int, direction: Direction, every: Int)
        case http500(every: Int, matching: String? = nil)

        var description: String {
            switch self {
            case .pass: return "pass"
            case .refuse: return "refuse"
            case .slow(let d, let bps): return "slow (\(d) ms per piece, \(bps / 1024) KiB/s)"
            case .reset(let k, let dir, let every):
                return "reset (RST after \(k / 1024) KiB of a \(dir.rawValue)\(every > 1 ? ", every \(ordinal(every)) time" : ""))"
            case .http500(let every, let matching):
                return "http500 (every \(every > 1 ? ordinal(every) + " " : "")request\(matching.map { " matching \"\($0)\"" } ?? ""))"
            }
        }
    }

    /// What the proxy did, for assertions and for the report.
    struct Counters: Sendable {
        var connections = 0
        var requests = 0
        var answered500 = 0
        var resets = 0
        var refusedConnections = 0
        var bytes: [Direction: Int] = [.request: 0, .response: 0]
    }

    let upstreamPort: Int
    private(set) var port = 0
    var url: String { "http://127.0.0.1:\(port)" }

    private let lock = NSLock()
    private var _mode: Mode = .pass
    private var stopped = false
    private let deadline: Double
    private var listener: Int32 = -1
    private var connections: [ObjectIdentifier: Connection] = [:]
    private var threads = 0
    private var _counters = Counters()
    private var requestsInMode = 0
    private var exchangesOverLimit = 0
    private var nextFree: [Direction: Double] = [.request: 0, .response: 0]
    private var trigger: (direction: Direction, remaining: Int, mode: Mode)?
    private var _triggeredAt: Double?
    private var _events: [(Double, String)] = []
    private let started = FaultProxy.clock()

    static func clock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Listens on a free port of 127.0.0.1 and forwards to 127.0.0.1:`upstreamPort`.
    init(upstreamPort: Int, lifetime: Double = 600) throws {
        self.upstreamPort = upstreamPort
        deadline = FaultProxy.clock() + lifetime
        let fd = try bindListener(port: 0)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        listener = fd
        note("listening on 127.0.0.1:\(port), forwarding to 127.0.0.1:\(upstreamPort)")
        spawn { $0.acceptLoop() }
    }

    private func bindListener(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw ProxyError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            let why = String(cString: strerror(errno))
            Glibc.close(fd)
            throw ProxyError("bind/listen 127.0.0.1:\(port): \(why)")
        }
        return fd
    }

    // MARK: Control

    var mode: Mode {
        lock.lock()
        defer { lock.unlock() }
        return _mode
    }

    /// Switches the mode; `refuse` (or `resetConnections`) also resets every open connection, so
    /// that no exchange under way (a long poll) goes on as if nothing happened.
    func setMode(_ mode: Mode, resetConnections: Bool = false) {
        lock.lock()
        var victims = setModeLocked(mode, why: "switched by the test")
        if resetConnections && victims.isEmpty { victims = Array(connections.values) }
        lock.unlock()
        for c in victims { c.abort(reset: true) }
    }

    private func setModeLocked(_ mode: Mode, why: String) -> [Connection] {
        _mode = mode
        requestsInMode = 0
        exchangesOverLimit = 0
        nextFree = [.request: 0, .response: 0]
        noteLocked("mode \(mode) (\(why))")
        return mode == .refuse ? Array(connections.values) : []
    }

    /// Switches to `mode` once `bytes` more bytes have gone through in `direction` (counted as they
    /// are forwarded, so the switch lands inside whatever transfer is under way).
    func arm(after bytes: Int, _ direction: Direction, then mode: Mode) {
        lock.lock()
        trigger = (direction, bytes, mode)
        _triggeredAt = nil
        noteLocked("armed: \(mode) after \(bytes / 1024) KiB of \(direction.rawValue)s")
        lock.unlock()
    }

    /// When the armed trigger fired (monotonic seconds, as `FaultProxy.clock()`), or nil.
    var triggeredAt: Double? {
        lock.lock()
        defer { lock.unlock() }
        return _triggeredAt
    }

    var counters: Counters {
        lock.lock()
        defer { lock.unlock() }
        return _counters
    }

    /// Mode switches and other events, with seconds since the proxy started.
    var events: [String] {
        lock.lock()
        defer { lock.unlock() }
        return _events.map { String(format: "%7.2f s  ", $0.0) + $0.1 }
    }

    private func note(_ text: String) {
        lock.lock()
        noteLocked(text)
        lock.unlock()
    }

    private func noteLocked(_ text: String) {
        if _events.count < 2000 { _events.append((FaultProxy.clock() - started, text)) }
    }

    /// Stops accepting, ends every connection, and waits (at most `timeout` seconds) for its threads.
    func stop(timeout: Double = 10) {
        lock.lock()
        let first = !stopped
        stopped = true
        let all = Array(connections.values)
        if first { noteLocked("stopping") }
        lock.unlock()
        for c in all { c.abort(reset: false) }
        let end = FaultProxy.clock() + timeout
        while FaultProxy.clock() < end {
            lock.lock()
            let left = threads
            lock.unlock()
            if left == 0 { break }
            usleep(10_000)
        }
        lock.lock()
        if listener >= 0 && threads == 0 {
            Glibc.close(listener)
            listener = -1
        }
        lock.unlock()
    }

    deinit { stop(timeout: 1) }

    var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped || FaultProxy.clock() > deadline
    }

    // MARK: Threads

    private func spawn(_ body: @escaping @Sendable (FaultProxy) -> Void) {
        lock.lock()
        threads += 1
        lock.unlock()
        let thread = Thread { [self] in
            body(self)
            self.lock.lock()
            self.threads -= 1
            self.lock.unlock()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Accepts while not refusing; closes the listener while refusing and binds the same port again after.
    private func acceptLoop() {
        while !isStopping {
            lock.lock()
            let refusing = _mode == .refuse
            var fd = listener
            if refusing && fd >= 0 {
                Glibc.close(fd)
                listener = -1
                fd = -1
                noteLocked("listener closed: connections are refused")
            }
            lock.unlock()
            if refusing {
                usleep(20_000)
                continue
            }
            if fd < 0 {
                do {
                    let l = try bindListener(port: port)
                    lock.lock()
                    listener = l
                    noteLocked("listener open again")
                    lock.unlock()
                    fd = l
                } catch {
                    note("cannot listen again yet: \(error)")
                    usleep(50_000)
                    continue
                }
            }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { continue }
            let client = c_accept4(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
            if client < 0 { continue }
            if mode == .refuse {
                Self.resetAndClose(client)
                lock.lock()
                _counters.refusedConnections += 1
                lock.unlock()
                continue
            }
            guard let upstream = connectUpstream() else {
                Self.resetAndClose(client)
                note("upstream 127.0.0.1:\(upstreamPort) refused a connection")
                continue
            }
            let c = Connection(proxy: self, client: client, upstream: upstream)
            lock.lock()
            connections[ObjectIdentifier(c)] = c
            _counters.connections += 1
            lock.unlock()
            c.pending = 2
            spawn { _ in c.pumpRequests() }
            spawn { _ in c.pumpResponses() }
        }
        lock.lock()
        if listener >= 0 {
            Glibc.close(listener)
            listener = -1
        }
        let all = Array(connections.values)
        lock.unlock()
        for c in all { c.abort(reset: false) }
    }

    private func connectUpstream() -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(upstreamPort).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { Glibc.close(fd); return nil }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }

    /// Closes with SO_LINGER 0: the peer gets a RST, not a FIN.
    static func resetAndClose(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.close(fd)
    }

    fileprivate func finished(_ c: Connection) {
        lock.lock()
        connections[ObjectIdentifier(c)] = nil
        lock.unlock()
    }

    // MARK: Decisions (called by the connections)

    /// A request head arrived: true if the proxy answers it with a 500 instead of forwarding it.
    fileprivate func beginRequest(_ line: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        _counters.requests += 1
        guard case .http500(let every, let matching) = _mode else { return false }
        if let matching, !line.contains(matching) { return false }
        requestsInMode += 1
        guard requestsInMode % max(1, every) == 0 else { return false }
        _counters.answered500 += 1
        if _counters.answered500 <= 20 { noteLocked("500 for \(line)") }
        return true
    }

    /// An exchange is about to pass `afterBytes` in reset mode: whether this one is cut.
    fileprivate func shouldReset(every: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        exchangesOverLimit += 1
        return exchangesOverLimit % max(1, every) == 0
    }

    fileprivate func countReset(_ what: String) {
        lock.lock()
        _counters.resets += 1
        if _counters.resets <= 20 { noteLocked("RST \(what)") }
        lock.unlock()
    }

    /// Bytes went through: counters and the armed trigger.
    fileprivate func forwarded(_ n: Int, _ direction: Direction) {
        lock.lock()
        _counters.bytes[direction, default: 0] += n
        var victims: [Connection] = []
        if let t = trigger, t.direction == direction {
            let remaining = t.remaining - n
            if remaining <= 0 {
                trigger = nil
                _triggeredAt = FaultProxy.clock()
                victims = setModeLocked(t.mode, why: "trigger")
            } else {
                trigger = (t.direction, remaining, t.mode)
            }
        }
        lock.unlock()
        for c in victims { c.abort(reset: true) }
    }

    /// In slow mode: when this piece may go (bandwidth shared by all connections of a direction).
    fileprivate func slowDeadline(_ n: Int, _ direction: Direction, bytesPerSecond: Int, delayMilliseconds: Int) -> Double {
        lock.lock()
        defer { lock.unlock() }
        let t = FaultProxy.clock()
        let start = max(t, nextFree[direction] ?? 0)
        let end = start + Double(n) / Double(max(1, bytesPerSecond))
        nextFree[direction] = end
        return max(end, t + Double(delayMilliseconds) / 1000)
    }
}

private func ordinal(_ n: Int) -> String {
    if n == 1 { return "" }
    let suffix = (11...13).contains(n % 100) ? "th" : [1: "st", 2: "nd", 3: "rd"][n % 10] ?? "th"
    return "\(n)\(suffix)"
}

struct ProxyError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One proxied connection: a client socket, an upstream socket, a thread per direction, and a wake pipe
/// that ends both threads' waits at once. The last thread out closes the sockets (with RST if the
/// connection was reset), so no file descriptor is closed while the other thread may still use it.
private final class Connection: @unchecked Sendable {
    let proxy: FaultProxy
    let client: Int32
    let upstream: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let lock = NSLock()
    private let clientWrites = NSLock()
    private var aborted = false
    /// Set (under `lock`) before the sockets and the pipe are closed: `abort` no longer touches them.
    private var closed = false
    private var resetOnClose = false
    var pending = 0
    /// Bytes of the current request / response forwarded so far (for `reset`).
    private var requestBytes = 0
    private var responseBytes = 0
    private var requestSpared = false
    private var responseSpared = false

    init(proxy: FaultProxy, client: Int32, upstream: Int32) {
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        var fds: [Int32] = [0, 0]
        _ = c_pipe2(&fds, O_CLOEXEC | O_NONBLOCK)
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    /// Ends both directions; with `reset`, the sockets are closed with RST.
    func abort(reset: Bool) {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return }
        if reset { resetOnClose = true }
        if !aborted {
            aborted = true
            var b: UInt8 = 1
            _ = Glibc.write(wakeWrite, &b, 1)
        }
    }

    private func threadDone() {
        lock.lock()
        pending -= 1
        let last = pending == 0
        let reset = resetOnClose
        if last { closed = true }
        lock.unlock()
        guard last else { return }
        if reset {
            FaultProxy.resetAndClose(client)
            FaultProxy.resetAndClose(upstream)
        } else {
            Glibc.close(client)
            Glibc.close(upstream)
        }
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
        proxy.finished(self)
    }

    /// Waits for `events` on `fd` (or until `deadline`, monotonic seconds): false if the connection
    /// was aborted or the proxy is stopping.
    private func wait(_ fd: Int32?, _ events: Int16, until deadline: Double? = nil) -> Bool {
        while true {
            if proxy.isStopping { return false }
            var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            if let fd { fds.append(pollfd(fd: fd, events: events, revents: 0)) }
            var ms: Int32 = 200
            if let deadline {
                let left = deadline - FaultProxy.clock()
                if left <= 0 { return true }
                ms = Int32(min(200, max(1, left * 1000)))
            }
            let n = poll(&fds, nfds_t(fds.count), ms)
            if n < 0 && errno != EINTR { return false }
            if fds[0].revents != 0 { return false }
            if n > 0, fd != nil, fds[1].revents != 0 { return true }
        }
    }

    /// One read: the bytes, or nil at end of stream, on an error or abort.
    private func read(_ fd: Int32, into buffer: inout [UInt8]) -> Int? {
        while true {
            guard wait(fd, Int16(POLLIN)) else { return nil }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { return n }
            if n == 0 { return nil }
            if errno == EAGAIN || errno == EINTR { continue }
            return nil
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
        var done = bytes.startIndex
        while done < bytes.endIndex {
            let n = bytes.withUnsafeBytes { b in
                send(fd, b.baseAddress! + (done - bytes.startIndex), bytes.endIndex - done, Int32(MSG_NOSIGNAL))
            }
            if n > 0 { done += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) {
                guard wait(fd, Int16(POLLOUT)) else { return false }
                continue
            }
            return false
        }
        return true
    }

    /// Forwards bytes in `direction`, applying the current mode piece by piece; false when the
    /// connection ends (reset, abort, error).
    private func forward(_ bytes: ArraySlice<UInt8>, _ direction: Direction) -> Bool {
        let destination = direction == .request ? upstream : client
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            var piece = bytes.endIndex - offset
            switch proxy.mode {
            case .pass, .http500:
                break
            case .refuse:
                abort(reset: true)
                return false
            case .slow(let delay, let bps):
                piece = min(piece, max(512, bps / 20))
                let at = proxy.slowDeadline(piece, direction, bytesPerSecond: bps, delayMilliseconds: delay)
                guard wait(nil, 0, until: at) else { return false }
            case .reset(let limit, let dir, let every) where dir == direction:
                lock.lock()
                let sofar = direction == .request ? requestBytes : responseBytes
                let spared = direction == .request ? requestSpared : responseSpared
                lock.unlock()
                if !spared && sofar + piece > limit {
                    if proxy.shouldReset(every: every) {
                        let head = max(0, limit - sofar)
                        if head > 0 { _ = sendPiece(bytes[offset..<(offset + head)], direction, destination) }
                        proxy.countReset("after \(sofar + head) bytes of a \(direction.rawValue)")
                        abort(reset: true)
                        return false
                    }
                    lock.lock()
                    if direction == .request { requestSpared = true } else { responseSpared = true }
                    lock.unlock()
                }
            case .reset:
                break
            }
            guard sendPiece(bytes[offset..<(offset + piece)], direction, destination) else { return false }
            offset += piece
        }
        return true
    }

    private func sendPiece(_ piece: ArraySlice<UInt8>, _ direction: Direction, _ destination: Int32) -> Bool {
        let ok: Bool
        if direction == .response {
            clientWrites.lock()
            ok = writeAll(destination, piece)
            clientWrites.unlock()
        } else {
            ok = writeAll(destination, piece)
        }
        guard ok else { return false }
        lock.lock()
        if direction == .request { requestBytes += piece.count } else { responseBytes += piece.count }
        lock.unlock()
        proxy.forwarded(piece.count, direction)
        return true
    }

    /// Client → server: requests, parsed just enough to count them and answer some with a 500.
    func pumpRequests() {
        defer { abort(reset: false); threadDone() }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var head: [UInt8] = []
        /// Body bytes still to come of the current request, and whether they are forwarded.
        var remaining = 0
        var forwarding = true
        let crlfcrlf: [UInt8] = [13, 10, 13, 10]
        while let n = read(client, into: &buffer) {
            var data = buffer[0..<n]
            while !data.isEmpty {
                if remaining > 0 {
                    let take = min(remaining, data.count)
                    if forwarding {
                        guard forward(data.prefix(take), .request) else { return }
                    }
                    remaining -= take
                    data = data.dropFirst(take)
                    if remaining == 0 && !forwarding { guard answer500() else { return } }
                    continue
                }
                head += data
                data = []
                guard let end = head.firstRange(of: crlfcrlf)?.upperBound else {
                    if head.count > 64 * 1024 { abort(reset: true); return }
                    break
                }
                let requestHead = head[..<end]
                data = head[end...]
                head = []
                let text = String(decoding: requestHead, as: UTF8.self)
                let lines = text.split(separator: "\r\n")
                let line = lines.first.map(String.init) ?? ""
                var length = 0
                for l in lines.dropFirst() where l.lowercased().hasPrefix("content-length:") {
                    length = Int(l.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                }
                let refuse500 = proxy.beginRequest(line)
                lock.lock()
                requestBytes = 0
                requestSpared = false
                responseBytes = 0
                responseSpared = false
                lock.unlock()
                remaining = length
                forwarding = !refuse500
                if forwarding {
                    guard forward(requestHead, .request) else { return }
                } else if remaining == 0 {
                    guard answer500() else { return }
                }
            }
        }
    }

    private func answer500() -> Bool {
        let body = "injected by the fault proxy\n"
        let text = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        clientWrites.lock()
        defer { clientWrites.unlock() }
        return writeAll(client, Array(text.utf8)[...])
    }

    /// Server → client: bytes as they come.
    func pumpResponses() {
        defer { abort(reset: false); threadDone() }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while let n = read(upstream, into: &buffer) {
            guard forward(buffer[0..<n], .response) else { return }
        }
    }
}

private typealias Direction = FaultProxy.Direction

// Glibc's Swift module leaves these out (they need _GNU_SOURCE); the descriptors must be close-on-exec
// from the start, or a process the test spawns at that moment would hold a connection open.
@_silgen_name("accept4")
private func c_accept4(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: UnsafeMutablePointer<socklen_t>?,
                       _ flags: Int32) -> Int32
@_silgen_name("pipe2")
private func c_pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32
