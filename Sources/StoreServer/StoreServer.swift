import Condensation
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Why the server could not start.
public enum StoreServerError: Error, Equatable, Sendable, CustomStringConvertible {
    case addressInUse(String)
    case badAddress(String)
    case cannotListen(String, String)

    public var description: String {
        switch self {
        case .addressInUse(let a): return "cannot listen on \(a): address already in use"
        case .badAddress(let a): return "cannot listen on \(a): not a usable host and port"
        case .cannotListen(let a, let why): return "cannot listen on \(a): \(why)"
        }
    }
}

/// The Condensation HTTP store protocol over any `Store` (a folder store in practice): what
/// `cdsfs serve` runs, and what devices sync through. See the format spec, "HTTP store", and
/// `StoreService` for the routes, signatures and permissions.
///
/// Built on SwiftNIO's `NIOHTTP1` rather than Hummingbird: the protocol is eight routes with raw
/// bodies and a hand-made long poll, so a framework's router, middleware and async layers would add
/// build minutes (on every 2-core CI run) and nothing the server uses. NIO gives the parts that are
/// hard to get right by hand: a hardened HTTP/1.1 parser with header limits, keep-alive and
/// pipelining, and an orderly quiesce for shutdown.
///
/// - The event loops never block: every `Store` call (file I/O, `syncfs`) runs on an `NIOThreadPool`.
///   A long poll holds no thread while it waits.
/// - Puts, adds, removes and modifies are durable before the answer (`GroupFlush` shares one sync
///   between concurrent requests).
/// - Bounded: request bodies (`Limits.maximumBodySize`, 413 beyond it), body bytes buffered by all
///   requests together (503 beyond), connections (refused beyond), long-poll waits, idle connections.
/// - One log line per request on standard error: peer, method, path, status, bytes in and out, time.
/// - `stop()` (and SIGTERM/SIGINT under `run()`) stops accepting, answers held long polls, lets the
///   requests in flight finish, then closes.
public final class StoreServer: Sendable {
    public struct Limits: Sendable {
        /// Largest request body (an object, or a modify with its objects).
        public var maximumBodySize = 64 * 1024 * 1024
        /// Body bytes all requests together may hold in memory; beyond it a request gets 503.
        public var maximumBufferedBytes = 512 * 1024 * 1024
        /// Open connections; further ones are closed at once.
        public var maximumConnections = 512
        /// Longest `Condensation-Watch` honoured (longer ones are cut to this).
        public var maximumWatchMilliseconds = 60_000
        /// A held long poll looks at its box again this often (writers outside this process).
        public var watchRecheckMilliseconds = 5_000
        /// A connection that sends nothing for this long while no request of it is being answered
        /// is closed (idle keep-alive connections, stalled uploads).
        public var idleTimeoutSeconds = 60
        /// On stop, requests in flight get this long to finish.
        public var shutdownGraceSeconds = 30
        /// Threads for blocking store calls.
        public var storeThreads = 8
        /// NIO event loop threads.
        public var eventLoopThreads = min(System.coreCount, 4)
        /// Signed requests remembered to refuse replays (see `ReplayCache`): about 100 bytes each.
        /// At 1,450 signed requests a second the cache spans the whole date window; beyond that,
        /// requests dated further back than it spans are refused (fresh ones never are).
        public var replayCacheEntries = 1 << 18

        public init() {}
    }

    public let store: any Store
    public let host: String
    public let port: Int
    public let limits: Limits
    let core: ServerCore

    private struct Running: @unchecked Sendable {
        var group: MultiThreadedEventLoopGroup
        var pool: NIOThreadPool
        var channel: Channel
        var port: Int
    }
    private let running = Mutex<Running?>(nil)

    public init(store: any Store, host: String = "127.0.0.1", port: Int = 8080, limits: Limits = .init(),
                logRequests: Bool = true) {
        self.store = store
        self.host = host
        self.port = port
        self.limits = limits
        self.core = ServerCore(store: store, limits: limits, logRequests: logRequests)
    }

    /// The port it listens on, once started.
    public var boundPort: Int? { running.withLock { $0?.port } }

    /// Open connections now.
    public var connectionCount: Int { core.connections.load(ordering: .relaxed) }

    /// Long polls held now.
    public var heldWatchCount: Int { core.watchers.count }

    /// Starts listening and returns the bound port (pass port 0 for an ephemeral one). Does not block.
    @discardableResult
    public func start() throws(StoreServerError) -> Int {
        if let port = boundPort { return port }
        core.draining.store(false, ordering: .sequentiallyConsistent)
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, limits.eventLoopThreads))
        let pool = NIOThreadPool(numberOfThreads: max(1, limits.storeThreads))
        pool.start()
        core.pool.withLock { $0 = pool }
        let core = self.core
        let idle = TimeAmount.seconds(Int64(max(1, limits.idleTimeoutSeconds)))
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                guard core.admit(channel) else { return channel.close() }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: idle))
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    try sync.addHandler(HTTPHandler(core: core, peer: channel.remoteAddress?.ipAddress ?? "?"))
                }
            }
        let channel: Channel
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            try? pool.syncShutdownGracefully()
            if let io = error as? IOError {
                if io.errnoCode == EADDRINUSE { throw .addressInUse(address) }
                throw .cannotListen(address, String(cString: strerror(io.errnoCode)))
            }
            if error is SocketAddressError { throw .badAddress(address) }
            throw .cannotListen(address, "\(error)")
        }
        let bound = channel.localAddress?.port ?? port
        running.withLock { $0 = Running(group: group, pool: pool, channel: channel, port: bound) }
        return bound
    }

    /// Stops accepting connections, answers held long polls, waits (up to `shutdownGraceSeconds`) for
    /// the requests in flight, then closes every connection and stops the threads.
    public func stop() {
        guard let r = running.withLock({ state -> Running? in
            let r = state
            state = nil
            return r
        }) else { return }
        core.draining.store(true, ordering: .sequentiallyConsistent)
        try? r.channel.close().wait()
        for channel in core.openChannels() {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        core.watchers.notifyAll()
        let deadline = monotonicSeconds() + Double(limits.shutdownGraceSeconds)
        while core.connections.load(ordering: .relaxed) > 0 && monotonicSeconds() < deadline {
            usleep(10_000)
        }
        for channel in core.openChannels() { channel.close(promise: nil) }
        try? r.group.syncShutdownGracefully()
        try? r.pool.syncShutdownGracefully()
    }

    /// Starts, calls `ready` with the bound port, and serves until SIGTERM or SIGINT; then stops as
    /// `stop()` does and returns.
    public func run(ready: ((Int) -> Void)? = nil) throws(StoreServerError) {
        signal(SIGPIPE, SIG_IGN)
        // Blocked before any server thread exists, so that every thread inherits the mask and the
        // signals wait for sigwait below.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &signals, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let port = try start()
        ready?(port)
        var received: Int32 = 0
        sigwait(&signals, &received)
        Log.info("signal \(received): finishing the requests in flight, then stopping")
        stop()
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// What every connection's handler shares.
final class ServerCore: Sendable {
    let service: StoreService
    let watchers = BoxWatchers()
    let limits: StoreServer.Limits
    let logRequests: Bool
    let connections = Atomic<Int>(0)
    let bufferedBytes = Atomic<Int>(0)
    let draining = Atomic<Bool>(false)
    let pool = Mutex<NIOThreadPool?>(nil)
    private let channels = Mutex<[ObjectIdentifier: Channel]>([:])

    init(store: any Store, limits: StoreServer.Limits, logRequests: Bool) {
        self.limits = limits
        self.logRequests = logRequests
        self.service = StoreService(store: store, limits: limits, watchers: watchers)
    }

    /// Counts a new connection in, or refuses it (limit reached, or stopping).
    func admit(_ channel: Channel) -> Bool {
        let count = connections.add(1, ordering: .relaxed).newValue
        guard count <= limits.maximumConnections, !draining.load(ordering: .relaxed) else {
            connections.subtract(1, ordering: .relaxed)
            return false
        }
        let id = ObjectIdentifier(channel)
        channels.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            channels.withLock { $0[id] = nil }
            connections.subtract(1, ordering: .relaxed)
        }
        return true
    }

    func openChannels() -> [Channel] { channels.withLock { Array($0.values) } }

    /// Reserves body bytes from the server-wide budget.
    func reserve(_ bytes: Int) -> Bool {
        let total = bufferedBytes.add(bytes, ordering: .relaxed).newValue
        if total > limits.maximumBufferedBytes {
            bufferedBytes.subtract(bytes, ordering: .relaxed)
            return false
        }
        return true
    }

    func release(_ bytes: Int) {
        if bytes > 0 { bufferedBytes.subtract(bytes, ordering: .relaxed) }
    }

    /// Runs blocking work on the store threads; the future completes on `eventLoop`.
    func run<T: Sendable>(on eventLoop: any EventLoop, _ body: @escaping @Sendable () -> T) -> EventLoopFuture<T> {
        guard let pool = pool.withLock({ $0 }) else {
            return eventLoop.makeFailedFuture(NIOThreadPoolError.ThreadPoolInactive())
        }
        return pool.runIfActive(eventLoop: eventLoop, body)
    }
}
