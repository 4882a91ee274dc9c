import Glibc

/// Why an `s3://` store cannot be set up. Each description is one line that says how to fix it.
public enum S3ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    case notS3(String)
    case badBucket(String)
    case noEndpoint(String)
    /// `https://` endpoints (AWS itself) need TLS, which the client does not speak.
    case httpsEndpoint(String)
    case badEndpoint(String)
    case badQuery(String)
    case noCredentials(String)

    public var description: String {
        switch self {
        case .notS3(let u): return "\(u) is not an s3:// URL (s3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT[&region=R])"
        case .badBucket(let u): return "\(u): the bucket name must be 3–63 characters of a–z, 0–9, '.' and '-'"
        case .noEndpoint(let u): return "\(u) names no endpoint: add ?endpoint=http://HOST:PORT (the S3 service's address)"
        case .httpsEndpoint(let e):
            return "endpoint \(e): https is not supported by cdsfs's S3 client; run a TLS tunnel (e.g. stunnel) to it on this machine and give endpoint=http://HOST&connect=127.0.0.1:PORT (see README, S3)"
        case .badEndpoint(let e): return "endpoint \(e) is not http://HOST[:PORT]"
        case .badQuery(let what): return "s3 URL: \(what) (known parameters: endpoint, region, connect)"
        case .noCredentials(let why): return "no S3 credentials: \(why)"
        }
    }
}

/// Where an S3 store is: `s3://BUCKET/PREFIX?endpoint=http://HOST:PORT&region=REGION`.
///
/// Path-style addressing (`http://HOST:PORT/BUCKET/KEY`), which every S3 implementation accepts and
/// which needs no DNS name per bucket. The prefix (optional) is a folder inside the bucket under which
/// the store's `objects/` and `accounts/` live; several stores can share one bucket.
public struct S3Location: Sendable, Equatable {
    public var bucket: String
    /// Without leading or trailing slashes; empty for the bucket's root.
    public var prefix: String
    /// `http://host:port`, without a trailing slash.
    public var endpoint: String
    public var region: String
    /// `HOST:PORT` to connect to instead of the endpoint (a local TLS tunnel such as stunnel: the
    /// client speaks plain HTTP to it, signed for the endpoint's name).
    public var connect: String?
    /// Host and port to connect to; `authority` is what the `Host` header says.
    public var host: String
    public var port: Int
    public var authority: String

    /// The normal form of the URL (what `S3Store.url` says and what devices record).
    public var url: String {
        "s3://\(bucket)\(prefix.isEmpty ? "" : "/" + prefix)?endpoint=\(endpoint)&region=\(region)"
            + (connect.map { "&connect=" + $0 } ?? "")
    }

    public init(url: String) throws(S3ConfigurationError) {
        guard url.hasPrefix("s3://") else { throw .notS3(url) }
        var rest = Substring(url.dropFirst(5))
        var queryText = Substring("")
        if let q = rest.firstIndex(of: "?") {
            queryText = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        bucket = String(rest[..<slash])
        guard (3...63).contains(bucket.utf8.count),
              bucket.utf8.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 46 || $0 == 45 }),
              bucket.first != "-", bucket.first != "." else { throw .badBucket(url) }
        prefix = String(rest[slash...]).split(separator: "/").joined(separator: "/")
        guard !prefix.contains("#") else { throw .badQuery("a prefix cannot contain '#'") }

        var endpoint: String?
        var connect: String?
        var region = "us-east-1"
        for pair in queryText.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw .badQuery("\(pair) is not name=value") }
            let value = Self.percentDecoded(parts[1])
            switch parts[0] {
            case "endpoint": endpoint = value
            case "connect": connect = value
            case "region":
                guard !value.isEmpty, value.utf8.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 45 }) else {
                    throw .badQuery("region \(value) is not a region name such as us-east-1")
                }
                region = value
            default: throw .badQuery("unknown parameter \(parts[0])")
            }
        }
        guard var endpoint else { throw .noEndpoint(url) }
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        if endpoint.lowercased().hasPrefix("https://") { throw .httpsEndpoint(endpoint) }
        guard endpoint.lowercased().hasPrefix("http://") else { throw .badEndpoint(endpoint) }
        let authority = String(endpoint.dropFirst(7))
        guard !authority.isEmpty, !authority.contains("/"), !authority.contains("@") else { throw .badEndpoint(endpoint) }
        var host = authority
        var port = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .badEndpoint(endpoint) }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw .badEndpoint(endpoint) }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { throw .badEndpoint(endpoint) }
            port = p
        }
        guard !host.isEmpty else { throw .badEndpoint(endpoint) }
        self.endpoint = "http://" + authority
        self.region = region
        self.host = host
        self.port = port
        self.authority = authority
        self.connect = nil
        if let connect {
            // Where the TCP connection goes (a local TLS tunnel to the endpoint); the endpoint stays
            // what is signed and sent as Host.
            guard let colon = connect.lastIndex(of: ":"), let p = Int(connect[connect.index(after: colon)...]),
                  (1...65535).contains(p), colon > connect.startIndex else {
                throw .badQuery("connect=\(connect) is not HOST:PORT")
            }
            var h = String(connect[..<colon])
            if h.hasPrefix("[") && h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
            self.host = h
            self.port = p
            self.connect = connect
        }
    }

    /// `%XX` sequences decoded (an endpoint given URL-encoded in the query); invalid ones kept.
    static func percentDecoded(_ text: Substring) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == 37, i + 2 < bytes.count, let v = UInt8(String(decoding: bytes[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                out.append(v)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The key of a store path (`objects/ab/…`) under the prefix.
    public func key(_ path: String) -> String { prefix.isEmpty ? path : prefix + "/" + path }
}

extension S3Credentials {
    /// The standard places, in the standard order: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`
    /// (with `AWS_SESSION_TOKEN` if set), else the profile `AWS_PROFILE` (default `default`) of the
    /// credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`).
    public static func fromEnvironment() throws(S3ConfigurationError) -> S3Credentials {
        func env(_ name: String) -> String? {
            guard let p = getenv(name) else { return nil }
            let s = String(cString: p)
            return s.isEmpty ? nil : s
        }
        if let id = env("AWS_ACCESS_KEY_ID") {
            guard let secret = env("AWS_SECRET_ACCESS_KEY") else {
                throw .noCredentials("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
            }
            return S3Credentials(accessKeyId: id, secretAccessKey: secret, sessionToken: env("AWS_SESSION_TOKEN"))
        }
        let profile = env("AWS_PROFILE") ?? "default"
        let file = env("AWS_SHARED_CREDENTIALS_FILE") ?? ((env("HOME") ?? "") + "/.aws/credentials")
        let howTo = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add aws_access_key_id and aws_secret_access_key to [\(profile)] in \(file)"
        guard let bytes = try? FileSystem.read(file, limit: 1 << 20) else { throw .noCredentials(howTo) }
        guard let found = parseCredentialsFile(String(decoding: bytes, as: UTF8.self), profile: profile) else {
            throw .noCredentials(howTo)
        }
        return found
    }

    /// The profile's keys from an INI credentials file; nil if it lacks either key.
    public static func parseCredentialsFile(_ text: String, profile: String) -> S3Credentials? {
        var section = ""
        var values: [String: String] = [:]
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = raw.trimmingSpaces
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast()).trimmingSpaces
                if section.hasPrefix("profile ") { section = String(section.dropFirst(8)).trimmingSpaces }
                continue
            }
            guard section == profile, let eq = line.firstIndex(of: "=") else { continue }
            values[String(line[..<eq]).trimmingSpaces.lowercased()] = String(line[line.index(after: eq)...]).trimmingSpaces
        }
        guard let id = values["aws_access_key_id"], !id.isEmpty, let secret = values["aws_secret_access_key"], !secret.isEmpty else {
            return nil
        }
        let token = values["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 }
        return S3Credentials(accessKeyId: id, secretAccessKey: secret, sessionToken: token)
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
