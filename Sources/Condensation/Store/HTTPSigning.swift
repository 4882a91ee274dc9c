import Glibc

/// Signed requests of the Condensation HTTP store protocol, shared by the client (`HTTPStore`) and the
/// server (`StoreServer`), so that both sides build the signed bytes the same way.
///
/// The string to sign is `DATE \0 METHOD \0 HOST+PATH`, plus `\0 BODY` for a modify (`POST /accounts`),
/// where HOST+PATH is the request URL without its scheme (`host:port/objects/<hex>`). The signature is
/// RSASSA-PSS over the SHA-256 of those bytes, sent as 512 hex digits with the date and the actor:
///
///     Condensation-Date: 2024-05-01T12:00:00.000Z
///     Condensation-Actor: <64 hex>
///     Condensation-Signature: <512 hex>
public enum HTTPSigning {
    /// A signed request's date may be this far in the past…
    public static let maximumAge: Int64 = 120_000
    /// …or this far in the future (milliseconds).
    public static let maximumSkew: Int64 = 60_000

    /// The hash that is signed.
    public static func hashToSign(date: String, method: String, hostAndPath: String, body: [UInt8]?) -> Hash {
        var bytes = Array(date.utf8)
        bytes.append(0)
        bytes.append(contentsOf: method.uppercased().utf8)
        bytes.append(0)
        bytes.append(contentsOf: hostAndPath.utf8)
        if let body {
            bytes.append(0)
            bytes.append(contentsOf: body)
        }
        return Hash.of(bytes)
    }

    /// The three headers of a signed request. `date` defaults to now.
    public static func headers(keyPair: KeyPair, method: String, hostAndPath: String, body: [UInt8]?,
                               date: String = dateString(milliseconds: now())) -> [(String, String)] {
        let hash = hashToSign(date: date, method: method, hostAndPath: hostAndPath, body: body)
        return [
            ("Condensation-Date", date),
            ("Condensation-Actor", keyPair.actor.hex),
            ("Condensation-Signature", Hex.encode(keyPair.sign(hash))),
        ]
    }

    /// Milliseconds since the epoch.
    public static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as the reference writes `Condensation-Date`.
    public static func dateString(milliseconds: Int64) -> String {
        var t = time_t(milliseconds / 1000)
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
        }
        let ms = Int(milliseconds % 1000)
        return "\(pad(Int(tm.tm_year) + 1900, 4))-\(pad(Int(tm.tm_mon) + 1, 2))-\(pad(Int(tm.tm_mday), 2))T"
            + "\(pad(Int(tm.tm_hour), 2)):\(pad(Int(tm.tm_min), 2)):\(pad(Int(tm.tm_sec), 2)).\(pad(ms, 3))Z"
    }

    /// Parses a request date: ISO 8601 in UTC (`YYYY-MM-DDTHH:MM:SS[.fff]Z`, a space instead of the `T`
    /// is accepted) or the HTTP date of RFC 9110 (`Sun, 06 Nov 1994 08:49:37 GMT`), which the reference
    /// server accepts in a plain `Date` header. Returns milliseconds since the epoch.
    public static func parseDate(_ text: String) -> Int64? {
        let s = Array(text.utf8.drop(while: { $0 == 32 }).reversed().drop(while: { $0 == 32 }).reversed())
        return parseISO(s) ?? parseHTTPDate(s)
    }

    private static func number(_ s: [UInt8], _ range: Range<Int>) -> Int? {
        guard range.upperBound <= s.count else { return nil }
        var v = 0
        for i in range {
            guard (48...57).contains(s[i]) else { return nil }
            v = v * 10 + Int(s[i] - 48)
        }
        return v
    }

    private static func parseISO(_ s: [UInt8]) -> Int64? {
        // 0123456789012345678
        // YYYY-MM-DDTHH:MM:SS
        guard s.count >= 20, s[4] == 45, s[7] == 45, s[10] == 84 || s[10] == 32, s[13] == 58, s[16] == 58,
              let y = number(s, 0..<4), let mo = number(s, 5..<7), let d = number(s, 8..<10),
              let h = number(s, 11..<13), let mi = number(s, 14..<16), let sec = number(s, 17..<19) else { return nil }
        var i = 19
        var ms = 0
        if s[i] == 46 {
            i += 1
            var digits = 0
            while i < s.count, (48...57).contains(s[i]) {
                if digits < 3 { ms = ms * 10 + Int(s[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            var scale = digits
            while scale < 3 { ms *= 10; scale += 1 }
        }
        guard i == s.count - 1, s[i] == 90 else { return nil }
        return epoch(y, mo, d, h, mi, sec).map { $0 * 1000 + Int64(ms) }
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    private static func parseHTTPDate(_ s: [UInt8]) -> Int64? {
        // Sun, 06 Nov 1994 08:49:37 GMT
        let parts = s.split(separator: 32).map { String(decoding: $0, as: UTF8.self) }
        guard parts.count == 6, parts[0].hasSuffix(","), parts[5] == "GMT",
              let d = Int(parts[1]), let mo = months.firstIndex(of: parts[2]), let y = Int(parts[3]) else { return nil }
        let hms = Array(parts[4].utf8)
        guard hms.count == 8, hms[2] == 58, hms[5] == 58, let h = number(hms, 0..<2), let mi = number(hms, 3..<5),
              let sec = number(hms, 6..<8) else { return nil }
        return epoch(y, mo + 1, d, h, mi, sec).map { $0 * 1000 }
    }

    private static func epoch(_ y: Int, _ mo: Int, _ d: Int, _ h: Int, _ mi: Int, _ s: Int) -> Int64? {
        guard (1970...9999).contains(y), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61 else {
            return nil
        }
        var tm = tm()
        tm.tm_year = Int32(y - 1900)
        tm.tm_mon = Int32(mo - 1)
        tm.tm_mday = Int32(d)
        tm.tm_hour = Int32(h)
        tm.tm_min = Int32(mi)
        tm.tm_sec = Int32(s)
        return Int64(timegm(&tm))
    }
}
