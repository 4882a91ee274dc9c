import Condensation
import NIOCore
import NIOHTTP1

/// One connection: collects a request (bounded), runs it on the store threads, writes the answer,
/// holds long polls without holding a thread. `HTTPServerPipelineHandler` in front of it hands over
/// one request at a time.
final class HTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let core: ServerCore
    private let peer: String

    // The request being received or answered.
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var requestBytes = 0
    /// Bytes reserved from the server-wide body budget for this request.
    private var reserved = 0
    /// An answer was sent before the request ended (413, 503, 400): the rest of the body is read and
    /// dropped, then the connection is closed.
    private var rejected = false
    /// The early answer's write, which must complete before that connection closes.
    private var rejectionWritten: EventLoopFuture<Void>?
    private var started = NIODeadline.now()
    /// Between the end of a request and the end of its answer.
    private var busy = false

    private struct Watch {
        var key: BoxWatchers.Key
        var waiter: BoxWatchers.Waiter
        var actor: Hash?
        var timeout: Scheduled<Void>?
        var recheck: RepeatedTask?
        /// A listing is running on the store threads.
        var listing = false
        /// Woken while listing: list once more when it returns.
        var again = false
        /// The wait is over: the next listing is the answer, whatever it holds.
        var expired = false
    }
    private var watch: Watch?

    init(core: ServerCore, peer: String) {
        self.core = core
        self.peer = peer
    }

    // MARK: Receiving

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
            requestBytes = 0
            rejected = false
            rejectionWritten = nil
            started = .now()
            if let text = h.headers.first(name: "content-length") {
                guard let length = Int(text), length >= 0 else { return reject(context, 400, "Bad Content-Length.") }
                guard length <= core.limits.maximumBodySize else {
                    return reject(context, 413, "The request body is larger than \(core.limits.maximumBodySize) bytes.")
                }
                guard core.reserve(length) else { return reject(context, 503, "The server is busy; try again later.") }
                reserved = length
                body.reserveCapacity(length)
            }
            if h.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: .continue))), promise: nil)
            }
        case .body(let buffer):
            requestBytes += buffer.readableBytes
            if rejected {
                // Dropped, not kept; but a sender that goes on and on is cut off.
                if requestBytes > 2 * core.limits.maximumBodySize { context.close(promise: nil) }
                return
            }
            let size = body.count + buffer.readableBytes
            guard size <= core.limits.maximumBodySize else {
                return reject(context, 413, "The request body is larger than \(core.limits.maximumBodySize) bytes.")
            }
            if size > reserved {
                guard core.reserve(size - reserved) else { return reject(context, 503, "The server is busy; try again later.") }
                reserved = size
            }
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let h = head else { return }
            if rejected {
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                (rejectionWritten ?? context.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in
                    bound.value.close(promise: nil)
                }
                return
            }
            busy = true
            let uri = h.uri
            let path = String(uri[..<(uri.firstIndex(of: "?") ?? uri.endIndex)])
            var headers: [String: String] = [:]
            for (name, value) in h.headers where headers[name.lowercased()] == nil { headers[name.lowercased()] = value }
            let request = ServiceRequest(method: h.method.rawValue, path: path, host: headers["host"] ?? "",
                                         headers: headers, body: body)
            body = []
            let service = core.service
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            core.run(on: context.eventLoop) { service.handle(request) }.whenComplete { result in
                let (me, context) = bound.value
                switch result {
                case .success(.respond(let response)):
                    me.respond(context, response)
                case .success(.watch(let account, let box, let milliseconds, let actor)):
                    me.startWatch(context, BoxWatchers.Key(account: account, box: box), milliseconds: milliseconds, actor: actor)
                case .failure:
                    me.respond(context, .text(503, "The server is stopping."))
                }
            }
        }
    }

    /// Answers at once, before the request has ended; the connection closes after it.
    private func reject(_ context: ChannelHandlerContext, _ status: Int, _ message: String) {
        guard !rejected else { return }
        rejected = true
        core.release(reserved)
        reserved = 0
        body = []
        respond(context, .text(status, message), close: true)
        // Lingering close: the rest of the body is read and dropped (so that the client, still sending,
        // gets to read the answer instead of a reset), but for a few seconds at most.
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: .seconds(Self.lingerSeconds)) { bound.value.close(promise: nil) }
    }

    static let lingerSeconds: Int64 = 5

    // MARK: Answering

    private func respond(_ context: ChannelHandlerContext, _ response: ServiceResponse, close: Bool = false) {
        guard let h = head else { return }
        let keepAlive = h.isKeepAlive && !close && !core.draining.load(ordering: .relaxed)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: String(response.body.count))
        if let type = response.contentType { headers.add(name: "Content-Type", value: type) }
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let status = HTTPResponseStatus(statusCode: response.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))), promise: nil)
        if !response.body.isEmpty && h.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        }
        let closeAfter = !keepAlive && !rejected  // a rejected request closes once it has ended
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        written.whenComplete { _ in
            if closeAfter { bound.value.close(promise: nil) }
        }
        if rejected { rejectionWritten = written }
        if core.logRequests {
            let ms = (NIODeadline.now() - started).nanoseconds / 1_000_000
            let who = response.actor.map { " actor \($0.shortHex)" } ?? ""
            Log.info("\(peer) \(h.method.rawValue) \(h.uri) \(response.status) in \(requestBytes) B out \(response.body.count) B \(ms) ms\(who)")
        }
        core.release(reserved)
        reserved = 0
        busy = false
        if !rejected { head = nil }
    }

    // MARK: Long polls

    private func startWatch(_ context: ChannelHandlerContext, _ key: BoxWatchers.Key, milliseconds: Int, actor: Hash?) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let waiter = BoxWatchers.Waiter(eventLoop: context.eventLoop) {
            let (me, context) = bound.value
            me.woken(context)
        }
        var w = Watch(key: key, waiter: waiter, actor: actor)
        w.timeout = context.eventLoop.scheduleTask(in: .milliseconds(Int64(milliseconds))) {
            let (me, context) = bound.value
            me.expired(context)
        }
        let every = TimeAmount.milliseconds(Int64(max(100, core.limits.watchRecheckMilliseconds)))
        w.recheck = context.eventLoop.scheduleRepeatedTask(initialDelay: every, delay: every) { _ in
            let (me, context) = bound.value
            me.woken(context)
        }
        watch = w
        core.watchers.register(key, waiter)
        // An addition may have come between the first listing and the registration, or a stop.
        if core.draining.load(ordering: .relaxed) { watch?.expired = true }
        relist(context)
    }

    private func woken(_ context: ChannelHandlerContext) {
        guard watch != nil else { return }
        if core.draining.load(ordering: .relaxed) { watch?.expired = true }
        if watch!.listing { watch!.again = true } else { relist(context) }
    }

    private func expired(_ context: ChannelHandlerContext) {
        guard watch != nil else { return }
        watch!.expired = true
        if !watch!.listing { relist(context) }
    }

    private func relist(_ context: ChannelHandlerContext) {
        guard let w = watch, !w.listing else { return }
        watch!.listing = true
        watch!.again = false
        let service = core.service
        let key = w.key
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        core.run(on: context.eventLoop) { service.relist(key.account, key.box) }.whenComplete { result in
            let (me, context) = bound.value
            me.listed(context, result)
        }
    }

    private func listed(_ context: ChannelHandlerContext, _ result: Result<(response: ServiceResponse, empty: Bool), any Error>) {
        guard var w = watch else { return }
        w.listing = false
        watch = w
        switch result {
        case .failure:
            finishWatch(context, .text(503, "The server is stopping."))
        case .success(let listing):
            if !listing.empty || w.expired || core.draining.load(ordering: .relaxed) {
                var response = listing.response
                response.actor = w.actor
                finishWatch(context, response)
            } else if w.again {
                relist(context)
            }
        }
    }

    private func finishWatch(_ context: ChannelHandlerContext, _ response: ServiceResponse) {
        endWatch()
        respond(context, response)
    }

    private func endWatch() {
        guard let w = watch else { return }
        watch = nil
        core.watchers.unregister(w.key, w.waiter)
        w.timeout?.cancel()
        w.recheck?.cancel()
    }

    // MARK: Connection events

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, case .read = idle {
            // Nothing received for the idle time while no answer is pending: an idle keep-alive
            // connection, or a stalled upload.
            if !busy { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        endWatch()
        core.release(reserved)
        reserved = 0
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
