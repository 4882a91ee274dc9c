import Glibc
import Synchronization

/// Why an `http://` store URL cannot be used.
public enum HTTPStoreURLError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not `http://…` (`https://` is not supported in this stage: put a TLS proxy in front).
    case notHTTP(String)
    /// The host or port part is not usable.
    case badAuthority(String)

    public var description: String {
        switch self {
        case .notHTTP(let url): return "\(url) is not an http:// URL (https is not supported yet)"
        case .badAuthority(let url): return "\(url) has no usable host:port"
        }
    }
}

/// A Condensation store over HTTP: the client side of the protocol `StoreServer` (and the reference
/// `cds` server) speaks. See the format spec, "HTTP store".
///
/// - **Plain HTTP/1.1 over POSIX sockets**, no Foundation and no TLS: `http://` URLs only. The store
///   only ever sees ciphertext, and requests that change boxes are signed, but a network observer
///   sees which objects and boxes are touched; run it over a trusted network or a TLS proxy.
/// - **Synchronous**, like every `Store`: it is driven from the syncer's own threads. It is safe to
///   use from several threads at once; each exchange takes a keep-alive connection from a small pool
///   (or opens one), so several transfers can be in flight.
/// - **Signed requests** with the key pair, where the protocol asks for them: put, book, listing a
///   private box or an in-queue, adding to a private or public box, removing, modifying. Without a key
///   pair only anonymous reads (get, list public, add to messages) succeed.
/// - **Timeouts and retries**: connect and read timeouts; connection errors and 5xx answers are
///   retried with exponential backoff (every request of the protocol is idempotent), 4xx are not.
///   A request that failed on a reused keep-alive connection before any answer is sent again at once
///   on a new connection (the server may have closed it while idle).
/// - **Every object it gets is checked against its hash** (`StoreError.corrupt` otherwise).
public final class HTTPStore: Store {
    public struct Configuration: Sendable {
        /// Seconds to wait for a TCP connection.
        public var connectTimeout: Double = 10
        /// Seconds without progress while sending or reading a response (a long poll adds its wait).
        public var readTimeout: Double = 60
        /// Attempts after the first, on connection errors and 5xx answers.
        public var retries = 3
        /// Seconds before the first retry; doubled for each further one, up to `maximumBackoff`.
        public var initialBackoff: Double = 0.2
        public var maximumBackoff: Double = 5
        /// Keep-alive connections kept open while idle.
        public var maximumIdleConnections = 8
        /// Largest response body accepted (objects, box listings).
        public var maximumResponseSize = FolderStore.maximumObjectSize
        public var userAgent = "cdsfs"

        public init() {}
    }

    public let url: String
    public let keyPair: KeyPair?
    public let configuration: Configuration
    /// Host and port as written in the URL (the `Host` header, and the start of every signed string).
    public let authority: String
    let host: String
    let port: Int
    /// Path prefix of the store under the host (empty for a store at the root).
    let basePath: String

    private let client: HTTPClient
    /// A signed request succeeded: the server has this actor's public key.
    private let keyPublished = Atomic<Bool>(false)

    public init(url: String, keyPair: KeyPair? = nil, configuration: Configuration = .init()) throws(HTTPStoreURLError) {
        guard url.lowercased().hasPrefix("http://") else { throw .notHTTP(url) }
        var rest = Substring(url.dropFirst(7))
        while rest.hasSuffix("/") { rest.removeLast() }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        let basePath = String(rest[slash...])
        guard !authority.isEmpty, !authority.contains("@"), !basePath.contains("?"), !basePath.contains("#") else {
            throw .badAuthority(url)
        }
        var host = authority
        var port = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .badAuthority(url) }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw .badAuthority(url) }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { throw .badAuthority(url) }
            port = p
        }
        guard !host.isEmpty else { throw .badAuthority(url) }
        self.url = "http://" + authority + basePath
        self.keyPair = keyPair
        self.configuration = configuration
        self.authority = authority
        self.host = host
        self.port = port
        self.basePath = basePath
        self.client = HTTPClient(host: host, port: port, authority: authority, connectTimeout: configuration.connectTimeout,
                                 readTimeout: configuration.readTimeout,
                                 maximumIdleConnections: configuration.maximumIdleConnections,
                                 maximumResponseSize: configuration.maximumResponseSize, userAgent: configuration.userAgent)
    }

    // MARK: Traffic

    /// Bytes sent on the wire so far (request lines, headers and bodies).
    public var bytesSent: Int { client.counters.sent.load(ordering: .relaxed) }
    /// Bytes received on the wire so far (status lines, headers and bodies).
    public var bytesReceived: Int { client.counters.received.load(ordering: .relaxed) }

    /// Closes the idle keep-alive connections.
    public func closeIdleConnections() { client.closeIdleConnections() }

    deinit { closeIdleConnections() }

    // MARK: Store

    public func get(_ hash: Hash) throws(StoreError) -> Object? {
        let r = try request("GET", "/objects/" + hash.hex)
        switch r.status {
        case 200:
            do { return try Object(bytes: r.body, expecting: hash) } catch { throw .corrupt(hash) }
        case 404: return nil
        default: throw refused(r, "get \(hash.hex)")
        }
    }

    public func put(_ hash: Hash, _ object: Object) throws(StoreError) {
        let r = try request("PUT", "/objects/" + hash.hex, contentType: "application/condensation-object",
                            body: object.bytes, signed: true)
        guard r.status == 200 || r.status == 204 else { throw refused(r, "put \(hash.hex)") }
    }

    public func book(_ hash: Hash) throws(StoreError) -> Bool {
        let r = try request("POST", "/objects/" + hash.hex, signed: true)
        switch r.status {
        case 200, 204: return true
        case 404: return false
        default: throw refused(r, "book \(hash.hex)")
        }
    }

    public func list(_ account: Hash, _ box: BoxLabel) throws(StoreError) -> [Hash] {
        try list(account, box, watch: 0)
    }

    /// Lists a box; with `watch` > 0 the server may hold the request up to that many milliseconds
    /// while the box is empty, and answers as soon as something is added (`Condensation-Watch`).
    public func list(_ account: Hash, _ box: BoxLabel, watch milliseconds: Int) throws(StoreError) -> [Hash] {
        let path = "/accounts/" + account.hex + "/" + box.rawValue
        let r = try request("GET", path, headers: milliseconds > 0 ? [("Condensation-Watch", "\(milliseconds) ms")] : [],
                            signed: box != .public, watchMilliseconds: max(0, milliseconds))
        switch r.status {
        case 204: return []
        case 200:
            guard r.body.count % 32 == 0 else {
                throw .refused(status: 200, "list \(box.rawValue) of \(account.hex): \(r.body.count) bytes is not a list of hashes")
            }
            return stride(from: 0, to: r.body.count, by: 32).map { Hash(bytes: r.body[$0..<($0 + 32)])! }
        default: throw refused(r, "list \(box.rawValue) of \(account.hex)")
        }
    }

    public func add(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) {
        let r = try request("PUT", "/accounts/" + account.hex + "/" + box.rawValue + "/" + hash.hex, signed: box != .messages)
        guard r.status == 200 || r.status == 204 else { throw refused(r, "add to \(box.rawValue) of \(account.hex)") }
    }

    public func remove(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) {
        let r = try request("DELETE", "/accounts/" + account.hex + "/" + box.rawValue + "/" + hash.hex, signed: true)
        guard r.status == 200 || r.status == 204 else { throw refused(r, "remove from \(box.rawValue) of \(account.hex)") }
    }

    public func modify(_ modifications: Modifications) throws(StoreError) {
        if modifications.isEmpty { return }
        let body = modifications.record.serialized
        let r = try request("POST", "/accounts", contentType: "application/condensation-modifications", body: body,
                            signed: true, signBody: true)
        guard r.status == 200 || r.status == 204 else { throw refused(r, "modify") }
    }

    /// Nothing to do: the server makes every put durable before it answers.
    public func flush() throws(StoreError) {}

    private func refused(_ r: HTTPResponse, _ what: String) -> StoreError {
        let text = r.text.httpTrimmed
        return .refused(status: r.status, text.isEmpty ? what : "\(what): \(text)")
    }

    // MARK: Requests

    /// One request with the protocol's retries: connection errors and 5xx answers are retried with
    /// backoff, other answers returned as they are. `signed` adds the signature headers when the
    /// store has a key pair (the body is signed too with `signBody`, as a modify requires).
    ///
    /// A signed request refused with 403 may only mean that the server does not have this actor's
    /// public key yet (it checks signatures with the key it holds): the key is put, signed by
    /// itself, and the request sent once more. This happens at most once per `HTTPStore`, so a
    /// store that is new to this actor needs no separate "publish my key" step.
    public func request(_ method: String, _ path: String, headers: [(String, String)] = [], contentType: String? = nil,
                        body: [UInt8]? = nil, signed: Bool = false, signBody: Bool = false,
                        watchMilliseconds: Int = 0) throws(StoreError) -> HTTPResponse {
        let response = try requestWithRetries(method, path, headers: headers, contentType: contentType, body: body,
                                              signed: signed, signBody: signBody, watchMilliseconds: watchMilliseconds)
        guard response.status == 403, signed, let keyPair, !keyPublished.load(ordering: .relaxed) else { return response }
        let keyPath = "/objects/" + keyPair.actor.hex
        if method == "PUT" && path == keyPath { return response }
        let put = try requestWithRetries("PUT", keyPath, headers: [], contentType: "application/condensation-object",
                                         body: keyPair.publicKey.object.bytes, signed: true, signBody: false,
                                         watchMilliseconds: 0)
        guard put.status == 200 || put.status == 204 else { return response }
        keyPublished.store(true, ordering: .relaxed)
        return try requestWithRetries(method, path, headers: headers, contentType: contentType, body: body,
                                      signed: signed, signBody: signBody, watchMilliseconds: watchMilliseconds)
    }

    private func requestWithRetries(_ method: String, _ path: String, headers: [(String, String)], contentType: String?,
                                    body: [UInt8]?, signed: Bool, signBody: Bool,
                                    watchMilliseconds: Int) throws(StoreError) -> HTTPResponse {
        // Signed for each sending, with the date of that moment: the server accepts a signed request
        // once (it refuses replays), so a retry must be a new request, not the same bytes again.
        let keyPair = signed ? keyPair : nil
        let authority = authority, basePath = basePath
        let makeHeaders = { () -> [(String, String)] in
            var all = headers
            if let contentType { all.append(("Content-Type", contentType)) }
            if let keyPair {
                all += HTTPSigning.headers(keyPair: keyPair, method: method, hostAndPath: authority + basePath + path,
                                           body: signBody ? body ?? [] : nil)
            }
            return all
        }
        var attempt = 0
        while true {
            let outcome = exchange(method, path, headers: makeHeaders, body: body, watchMilliseconds: watchMilliseconds)
            switch outcome {
            case .success(let response) where response.status < 500 || attempt >= configuration.retries:
                if response.status < 300, signed, keyPair != nil { keyPublished.store(true, ordering: .relaxed) }
                return response
            case .failure(let error) where attempt >= configuration.retries:
                throw .unreachable("\(method) \(url)\(path): \(error)")
            default:
                break
            }
            backoff(attempt)
            attempt += 1
        }
    }

    /// Exactly one exchange, no retries and no signature added: for tests and tools that craft
    /// requests by hand. Transport failures become `.unreachable`.
    public func send(_ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
                     watchMilliseconds: Int = 0) throws(StoreError) -> HTTPResponse {
        switch exchange(method, path, headers: { headers }, body: body, watchMilliseconds: watchMilliseconds) {
        case .success(let r): return r
        case .failure(let e): throw .unreachable("\(method) \(url)\(path): \(e)")
        }
    }

    private func backoff(_ attempt: Int) {
        backoffSleep(attempt: attempt, initial: configuration.initialBackoff, maximum: configuration.maximumBackoff)
    }

    /// One request over a pooled connection. `headers` is called for each sending (a signed request is
    /// signed anew when it goes out again on a fresh connection).
    private func exchange(_ method: String, _ path: String, headers: () -> [(String, String)], body: [UInt8]?,
                          watchMilliseconds: Int) -> Result<HTTPResponse, HTTPTransportError> {
        client.exchange(method, basePath + path, headers: headers, body: body, extraWaitMilliseconds: watchMilliseconds)
    }
}
