import Glibc

/// A Condensation store in an S3 bucket (Ceph RGW, MinIO, Garage; AWS S3 through a local TLS tunnel
/// named by `connect=`, see `S3Location`).
///
/// - **Layout**: the folder store's, under an optional prefix: `objects/<2 hex>/<62 hex>` holds an
///   object's bytes, `accounts/<actor hex>/<box>/<hash hex>` is an empty object per box entry. A
///   bucket can be copied to a folder and served as one (and back) with any S3 tool.
/// - **Requests**: path-style (`/BUCKET/KEY`), signed with AWS Signature Version 4 (`S3Signing`),
///   payloads signed too (an object's hash *is* the SHA-256 of its bytes, so a put's payload hash costs
///   nothing, and S3 refuses a body that does not match it). Plain HTTP over `HTTPConnection`s from a
///   keep-alive pool (`HTTPClient`): `https://` endpoints need a local TLS tunnel (see README).
/// - **Many requests in flight**: the store is synchronous like every `Store`, but safe from many
///   threads at once; `modify` puts its objects from `Configuration.parallelism` threads.
/// - **Retries**: connection errors, 5xx (including 503 SlowDown) and 429 are retried with exponential
///   backoff and jitter; every request here is idempotent. 4xx answers are not retried; the common
///   ones (bad keys, no bucket, wrong region) become one-line errors that say what to do.
/// - **Hash checks**: every object got is checked against its hash (`StoreError.corrupt`).
/// - **Durability**: S3 answers a put once it is durable, so `flush` has nothing to do; `modify` puts
///   every object before it adds any box entry, and adds before it removes.
/// - **Booking** refreshes an object's time only when it is older than `refreshAfter` (a copy onto
///   itself), since S3 has no cheap "touch": garbage collection on S3 must use a grace period longer
///   than that (the default hour is).
/// - **No state between requests**, so any number of servers and devices can use one bucket.
public final class S3Store: Store {
    public struct Configuration: Sendable {
        public var connectTimeout: Double = 10
        public var readTimeout: Double = 60
        /// Attempts after the first, on connection errors, 5xx and 429.
        public var retries = 4
        public var initialBackoff: Double = 0.2
        public var maximumBackoff: Double = 5
        public var maximumIdleConnections = 32
        /// Threads that put a modify's objects, add its entries and remove its removals.
        public var parallelism = 8
        /// Seconds after which `book` refreshes an object's time.
        public var refreshAfter = 600
        public var userAgent = "cdsfs"

        public init() {}
    }

    public let location: S3Location
    public let credentials: S3Credentials
    public let configuration: Configuration
    public var url: String { location.url }
    let client: HTTPClient

    public init(location: S3Location, credentials: S3Credentials, configuration: Configuration = .init()) {
        self.location = location
        self.credentials = credentials
        self.configuration = configuration
        self.client = HTTPClient(host: location.host, port: location.port, authority: location.authority,
                                 connectTimeout: configuration.connectTimeout, readTimeout: configuration.readTimeout,
                                 maximumIdleConnections: configuration.maximumIdleConnections,
                                 maximumResponseSize: FolderStore.maximumObjectSize + 64 * 1024, userAgent: configuration.userAgent)
    }

    /// Parses the URL and reads the credentials from the environment or the credentials file.
    public convenience init(url: String, configuration: Configuration = .init()) throws(S3ConfigurationError) {
        self.init(location: try S3Location(url: url), credentials: try S3Credentials.fromEnvironment(), configuration: configuration)
    }

    /// Bytes on the wire so far.
    public var bytesSent: Int { client.counters.sent.load(ordering: .relaxed) }
    public var bytesReceived: Int { client.counters.received.load(ordering: .relaxed) }

    // MARK: Keys

    func objectKey(_ hash: Hash) -> String {
        let hex = hash.hex
        return location.key("objects/" + hex.prefix(2) + "/" + hex.dropFirst(2))
    }

    func boxPrefix(_ account: Hash, _ box: BoxLabel) -> String {
        location.key("accounts/" + account.hex + "/" + box.rawValue + "/")
    }

    // MARK: Checking the configuration

    /// One cheap request that tells whether the endpoint answers like S3, the keys are accepted and the
    /// bucket exists; throws a one-line error that says which and what to do.
    public func check() throws(StoreError) {
        let r = try request("GET", key: nil, query: [("list-type", "2"), ("max-keys", "1"), ("prefix", location.key(""))])
        if r.status == 200 && S3XML.elements("ListBucketResult", in: r.body).count == 1 { return }
        if r.status != 200 && errorCode(r) != nil { throw failure(r, "listing bucket \(location.bucket)") }
        let text = r.text.httpTrimmed
        throw .refused(status: r.status, "\(location.endpoint) does not answer like an S3 service (HTTP \(r.status)\(text.isEmpty ? "" : ": " + String(text.prefix(80)))); is endpoint= right?")
    }

    /// Creates the bucket (tests, benchmarks and first setups; a bucket that exists and is ours is fine).
    public func createBucket() throws(StoreError) {
        let r = try request("PUT", key: nil, body: [])
        if r.status == 200 || errorCode(r) == "BucketAlreadyOwnedByYou" { return }
        throw failure(r, "creating bucket \(location.bucket)")
    }

    // MARK: Store

    public func get(_ hash: Hash) throws(StoreError) -> Object? {
        let key = objectKey(hash)
        let r = try request("GET", key: key)
        switch r.status {
        case 200:
            do { return try Object(bytes: r.body, expecting: hash) } catch { throw .corrupt(hash) }
        case 404 where errorCode(r) != "NoSuchBucket":
            return nil
        default:
            throw failure(r, "get \(hash.hex)")
        }
    }

    public func put(_ hash: Hash, _ object: Object) throws(StoreError) {
        let r = try request("PUT", key: objectKey(hash), body: object.bytes, payloadHash: hash.hex)
        guard r.status == 200 || r.status == 204 else { throw failure(r, "put \(hash.hex)") }
    }

    public func book(_ hash: Hash) throws(StoreError) -> Bool {
        let key = objectKey(hash)
        guard let info = try head(key) else { return false }
        let now = Int(time(nil))
        guard now - info.modified > configuration.refreshAfter else { return true }
        // Refresh the time so that garbage collection keeps the object: a copy onto itself.
        let source = "/" + location.bucket + "/" + key
        let r = try request("PUT", key: key, headers: [("x-amz-copy-source", S3Signing.uriEncode(source, keepSlash: true)),
                                                       ("x-amz-metadata-directive", "REPLACE")])
        if r.status == 404 && errorCode(r) == "NoSuchKey" { return false }
        guard r.status == 200, S3XML.elements("Error", in: r.body).isEmpty else { throw failure(r, "book \(hash.hex)") }
        return true
    }

    public func list(_ account: Hash, _ box: BoxLabel) throws(StoreError) -> [Hash] {
        let prefix = boxPrefix(account, box)
        var out: [Hash] = []
        try listKeys(prefix: prefix) { key, _, _ in
            if let h = Self.hash(key.dropFirst(prefix.utf8.count)) { out.append(h) }
        }
        return out
    }

    public func add(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) {
        let r = try request("PUT", key: boxPrefix(account, box) + hash.hex, body: [])
        guard r.status == 200 || r.status == 204 else { throw failure(r, "add to \(box.rawValue) of \(account.hex)") }
    }

    public func remove(_ account: Hash, _ box: BoxLabel, _ hash: Hash) throws(StoreError) {
        try deleteKey(boxPrefix(account, box) + hash.hex, "remove from \(box.rawValue) of \(account.hex)")
    }

    public func modify(_ m: Modifications) throws(StoreError) {
        let puts = m.puts
        try parallelForEach(puts.count, width: configuration.parallelism) { [self] i throws(StoreError) in
            try put(puts[i].0, puts[i].1)
        }
        let additions = m.additions
        try parallelForEach(additions.count, width: configuration.parallelism) { [self] i throws(StoreError) in
            try add(additions[i].account, additions[i].box, additions[i].hash)
        }
        let removals = m.removals
        try parallelForEach(removals.count, width: configuration.parallelism) { [self] i throws(StoreError) in
            try remove(removals[i].account, removals[i].box, removals[i].hash)
        }
    }

    /// Nothing to do: S3 answers a put once it is durable.
    public func flush() throws(StoreError) {}

    // MARK: Garbage collection

    /// Accounts that have at least one box entry.
    public func accounts() throws(StoreError) -> [Hash] {
        let prefix = location.key("accounts/")
        var out: [Hash] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix), ("delimiter", "/")]
            if let token { query.append(("continuation-token", token)) }
            let r = try request("GET", key: nil, query: query)
            guard r.status == 200 else { throw failure(r, "listing accounts") }
            for common in S3XML.elements("CommonPrefixes", in: r.body) {
                guard let p = S3XML.value("Prefix", in: r.body, within: common), p.hasPrefix(prefix), p.hasSuffix("/") else { continue }
                if let h = Self.hash(p.dropFirst(prefix.utf8.count).dropLast()) { out.append(h) }
            }
            token = S3XML.value("IsTruncated", in: r.body) == "true" ? S3XML.value("NextContinuationToken", in: r.body) : nil
        } while token != nil
        return out
    }

    /// Every object of the store, with its size and last-modified time (seconds) as listed.
    public func allObjectsWithInfo() throws(StoreError) -> [(hash: Hash, size: Int, modified: Int)] {
        let prefix = location.key("objects/")
        var out: [(Hash, Int, Int)] = []
        try listKeys(prefix: prefix) { key, size, modified in
            // "ab/cdef…": two hex digits, a slash, sixty-two more.
            let rest = Array(key.utf8.dropFirst(prefix.utf8.count))
            guard rest.count == 65, rest[2] == 47 else { return }
            if let h = Self.hash(Substring(String(decoding: rest[0..<2] + rest[3...], as: UTF8.self))) {
                out.append((h, size, modified))
            }
        }
        return out
    }

    public func allObjects() throws(StoreError) -> [Hash] { try allObjectsWithInfo().map(\.hash) }

    /// Size and last-modified time (seconds since the epoch); nil if absent.
    public func objectInfo(_ hash: Hash) throws(StoreError) -> (size: Int, modified: Int)? { try head(objectKey(hash)) }

    /// The first `count` bytes of an object (fewer if it is shorter); nil if absent.
    public func objectPrefix(_ hash: Hash, count: Int) throws(StoreError) -> [UInt8]? {
        guard count > 0 else { return [] }
        let r = try request("GET", key: objectKey(hash), headers: [("Range", "bytes=0-\(count - 1)")])
        switch r.status {
        case 200, 206: return Array(r.body.prefix(count))
        case 416: return []
        case 404 where errorCode(r) != "NoSuchBucket": return nil
        default: throw failure(r, "get \(hash.hex)")
        }
    }

    /// Deletes an object (garbage collection only).
    public func delete(_ hash: Hash) throws(StoreError) { try deleteKey(objectKey(hash), "delete \(hash.hex)") }

    // MARK: Requests

    private func head(_ key: String) throws(StoreError) -> (size: Int, modified: Int)? {
        let r = try request("HEAD", key: key)
        switch r.status {
        case 200:
            let size = r.header("content-length").flatMap { Int($0) } ?? 0
            guard let modified = r.header("last-modified").flatMap(HTTPSigning.parseDate) else {
                throw .refused(status: 200, "HEAD \(key): no usable Last-Modified")
            }
            return (size, Int(modified / 1000))
        case 404: return nil  // HEAD has no body to tell NoSuchBucket apart; `check` does that
        default: throw failure(r, "HEAD \(key)")
        }
    }

    private func deleteKey(_ key: String, _ what: String) throws(StoreError) {
        let r = try request("DELETE", key: key)
        if r.status == 204 || r.status == 200 { return }
        if r.status == 404 && errorCode(r) != "NoSuchBucket" { return }
        throw failure(r, what)
    }

    /// Every key under `prefix` (ListObjectsV2, page by page), with size and time.
    func listKeys(prefix: String, _ each: (String, Int, Int) -> Void) throws(StoreError) {
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix)]
            if let token { query.append(("continuation-token", token)) }
            let r = try request("GET", key: nil, query: query)
            guard r.status == 200 else { throw failure(r, "listing \(prefix)") }
            for contents in S3XML.elements("Contents", in: r.body) {
                guard let key = S3XML.value("Key", in: r.body, within: contents), key.hasPrefix(prefix) else { continue }
                let size = S3XML.value("Size", in: r.body, within: contents).flatMap { Int($0) } ?? 0
                let modified = S3XML.value("LastModified", in: r.body, within: contents).flatMap(HTTPSigning.parseDate).map { Int($0 / 1000) } ?? 0
                each(key, size, modified)
            }
            let truncated = S3XML.value("IsTruncated", in: r.body) == "true"
            token = truncated ? S3XML.value("NextContinuationToken", in: r.body) : nil
            if truncated && token == nil { throw .refused(status: 200, "listing \(prefix): truncated without a continuation token") }
        } while token != nil
    }

    /// A signed request with retries (connection errors, 5xx, 429), to `/BUCKET/KEY` or, with a nil
    /// key, to the bucket itself.
    func request(_ method: String, key: String?, query: [(String, String)] = [], headers: [(String, String)] = [],
                 body: [UInt8]? = nil, payloadHash: String? = nil) throws(StoreError) -> HTTPResponse {
        let path = "/" + location.bucket + (key.map { "/" + $0 } ?? "")
        let queryText = S3Signing.canonicalQuery(query)
        let target = S3Signing.uriEncode(path, keepSlash: true) + (queryText.isEmpty ? "" : "?" + queryText)
        let payload = payloadHash ?? (body.map { $0.isEmpty ? S3Signing.emptyPayloadHash : Hash.of($0).hex } ?? S3Signing.emptyPayloadHash)
        var attempt = 0
        while true {
            let amzDate = S3Signing.amzDate(epochSeconds: Int(time(nil)))
            var signed = [("Host", location.authority), ("x-amz-date", amzDate), ("x-amz-content-sha256", payload)]
            if let token = credentials.sessionToken { signed.append(("x-amz-security-token", token)) }
            signed += headers
            let request = S3Signing.Request(method: method, path: path, query: query, headers: signed, payloadHash: payload)
            let authorization = S3Signing.authorization(request, credentials: credentials, amzDate: amzDate, region: location.region)
            var sent = Array(signed.dropFirst())  // Host is written by the client
            sent.append(("Authorization", authorization))
            let outcome = client.exchange(method, target, headers: { sent }, body: method == "PUT" || method == "POST" ? body ?? [] : body)
            switch outcome {
            case .success(let r) where !(r.status >= 500 || r.status == 429) || attempt >= configuration.retries:
                return r
            case .failure(.tooLarge):
                // Larger than any object may be: damaged or not ours (garbage collection and fsck
                // read EFBIG as "corrupt").
                throw .io(path: path, errno: EFBIG)
            case .failure(let e) where attempt >= configuration.retries:
                throw .unreachable("\(method) \(location.endpoint)\(path): \(e)")
            default:
                break
            }
            backoffSleep(attempt: attempt, initial: configuration.initialBackoff, maximum: configuration.maximumBackoff)
            attempt += 1
        }
    }

    /// The `<Code>` of an S3 error answer.
    func errorCode(_ r: HTTPResponse) -> String? { S3XML.value("Code", in: r.body) }

    /// An unexpected answer as one line: the common S3 errors say what to do about them.
    func failure(_ r: HTTPResponse, _ what: String) -> StoreError {
        let code = errorCode(r)
        let bucket = location.bucket
        switch code {
        case "NoSuchBucket":
            return .refused(status: r.status, "bucket \(bucket) does not exist on \(location.endpoint): create it first (e.g. `aws --endpoint-url \(location.endpoint) s3 mb s3://\(bucket)`)")
        case "InvalidAccessKeyId":
            return .refused(status: r.status, "\(location.endpoint) does not know the access key \(credentials.accessKeyId): check AWS_ACCESS_KEY_ID (or the credentials file)")
        case "SignatureDoesNotMatch":
            return .refused(status: r.status, "\(location.endpoint) refused the signature: check AWS_SECRET_ACCESS_KEY (or the credentials file) and the region (\(location.region))")
        case "AccessDenied":
            return .refused(status: r.status, "access to bucket \(bucket) denied for key \(credentials.accessKeyId): give it read and write permission")
        case "RequestTimeTooSkewed":
            return .refused(status: r.status, "\(location.endpoint) says this machine's clock is off: set the time (e.g. with NTP)")
        case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
            return .refused(status: r.status, "bucket \(bucket) is in another region than \(location.region): set &region= in the URL")
        case let code?:
            let message = S3XML.value("Message", in: r.body) ?? ""
            return .refused(status: r.status, "\(what): \(code)\(message.isEmpty ? "" : " (\(message))")")
        case nil:
            if r.status == 403 {
                return .refused(status: 403, "\(what): access denied by \(location.endpoint): check the credentials")
            }
            let text = r.text.httpTrimmed
            return .refused(status: r.status, "\(what): \(location.endpoint) answered \(r.status)\(text.isEmpty ? "" : ": " + String(text.prefix(120)))")
        }
    }

    /// Exactly 64 lowercase hex digits, as the store writes them; anything else (another tool's keys)
    /// is not an entry.
    static func hash(_ text: Substring) -> Hash? {
        guard text.utf8.count == 64, text.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        return Hash(hex: text)
    }
}
