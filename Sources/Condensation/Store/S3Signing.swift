import Glibc

/// Keys for S3 requests: an access key id, its secret, and for temporary credentials a session token.
public struct S3Credentials: Sendable, Equatable {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

/// AWS Signature Version 4, as S3 wants it: the canonical request, the string to sign, the derived
/// key and the `Authorization` header. Checked against AWS's published examples (the SigV4 test suite
/// and the S3 API reference's examples) in `S3SigningTests`.
///
/// The hashes and MACs are the module's (libcrypto's); only the text layout is written here.
public enum S3Signing {
    /// SHA-256 of nothing: the payload hash of a request without a body.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// A request as it is signed. `path` is the decoded path (`/bucket/objects/ab/…`), `query` the
    /// decoded parameters (in any order), `headers` every header to sign (any case, repeats allowed;
    /// `host` and `x-amz-date` among them).
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var query: [(String, String)]
        public var headers: [(String, String)]
        public var payloadHash: String

        public init(method: String, path: String, query: [(String, String)] = [], headers: [(String, String)],
                    payloadHash: String = S3Signing.emptyPayloadHash) {
            self.method = method
            self.path = path
            self.query = query
            self.headers = headers
            self.payloadHash = payloadHash
        }
    }

    /// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters (`A–Z a–z 0–9 - . _ ~`) as
    /// they are, everything else as `%XX` of its UTF-8 bytes, uppercase hex; `/` kept when
    /// `keepSlash` (paths), encoded otherwise (query names and values).
    public static func uriEncode(_ text: String, keepSlash: Bool) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for b in text.utf8 {
            switch b {
            case 65...90, 97...122, 48...57, 45, 46, 95, 126:
                out.append(b)
            case 47 where keepSlash:
                out.append(b)
            default:
                out.append(37)
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 15)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `name=value&…`, each encoded, sorted by name and then value (byte order).
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        query.map { (uriEncode($0.0, keepSlash: false), uriEncode($0.1, keepSlash: false)) }
            .sorted { $0.0 != $1.0 ? Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) : Array($0.1.utf8).lexicographicallyPrecedes(Array($1.1.utf8)) }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// Header names lowercased and sorted; values trimmed with inner runs of spaces made one; repeated
    /// names joined by commas in the order given. Returns the canonical lines and the signed-header list.
    static func canonicalHeaders(_ headers: [(String, String)]) -> (lines: String, signed: String) {
        var order: [String] = []
        var values: [String: [String]] = [:]
        for (name, value) in headers {
            let n = name.lowercased()
            if values[n] == nil { order.append(n) }
            values[n, default: []].append(collapseSpaces(value))
        }
        let names = order.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let lines = names.map { "\($0):\(values[$0]!.joined(separator: ","))\n" }.joined()
        return (lines, names.joined(separator: ";"))
    }

    private static func collapseSpaces(_ value: String) -> String {
        var out: [UInt8] = []
        var pendingSpace = false
        for b in value.utf8 {
            if b == 32 || b == 9 {
                pendingSpace = !out.isEmpty
                continue
            }
            if pendingSpace { out.append(32); pendingSpace = false }
            out.append(b)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The canonical request (S3 flavour: the path is encoded once, never normalised).
    public static func canonicalRequest(_ r: Request) -> String {
        let (lines, signed) = canonicalHeaders(r.headers)
        let path = r.path.isEmpty ? "/" : uriEncode(r.path, keepSlash: true)
        return "\(r.method.uppercased())\n\(path)\n\(canonicalQuery(r.query))\n\(lines)\n\(signed)\n\(r.payloadHash)"
    }

    /// `YYYYMMDD/region/service/aws4_request`.
    public static func scope(amzDate: String, region: String, service: String) -> String {
        "\(amzDate.prefix(8))/\(region)/\(service)/aws4_request"
    }

    public static func stringToSign(_ r: Request, amzDate: String, region: String, service: String) -> String {
        "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope(amzDate: amzDate, region: region, service: service))\n"
            + Hash.of(Array(canonicalRequest(r).utf8)).hex
    }

    /// HMAC chain: `AWS4`+secret → date → region → service → `aws4_request`.
    public static func signingKey(secret: String, date: String, region: String, service: String) -> [UInt8] {
        var key = HMAC.sha256(key: Array(("AWS4" + secret).utf8), Array(date.utf8))
        key = HMAC.sha256(key: key, Array(region.utf8))
        key = HMAC.sha256(key: key, Array(service.utf8))
        return HMAC.sha256(key: key, Array("aws4_request".utf8))
    }

    /// The hex signature of a request.
    public static func signature(_ r: Request, credentials: S3Credentials, amzDate: String, region: String,
                                 service: String = "s3") -> String {
        let key = signingKey(secret: credentials.secretAccessKey, date: String(amzDate.prefix(8)), region: region, service: service)
        return Hex.encode(HMAC.sha256(key: key, Array(stringToSign(r, amzDate: amzDate, region: region, service: service).utf8)))
    }

    /// The `Authorization` header's value.
    public static func authorization(_ r: Request, credentials: S3Credentials, amzDate: String, region: String,
                                     service: String = "s3") -> String {
        let signed = canonicalHeaders(r.headers).signed
        let sig = signature(r, credentials: credentials, amzDate: amzDate, region: region, service: service)
        return "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyId)/\(scope(amzDate: amzDate, region: region, service: service)), "
            + "SignedHeaders=\(signed), Signature=\(sig)"
    }

    /// `YYYYMMDDTHHMMSSZ` for seconds since the epoch.
    public static func amzDate(epochSeconds: Int) -> String {
        var t = time_t(epochSeconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))\(pad(tm.tm_mon + 1, 2))\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2))\(pad(tm.tm_min, 2))\(pad(tm.tm_sec, 2))Z"
    }
}
