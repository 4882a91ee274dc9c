/// The few things read from S3's XML answers (listings and errors), by scanning for elements: S3's
/// answers are flat and generated, so a tag scanner reads them without an XML library. Never trusts a
/// length: every search is bounded by the body, and a cut-off answer yields what was complete.
enum S3XML {
    /// The text of every `<name>…</name>` in `bytes[range]`, entities decoded, in order.
    static func values(_ name: String, in bytes: [UInt8], within range: Range<Int>? = nil) -> [String] {
        elements(name, in: bytes, within: range).map { decode(bytes[$0]) }
    }

    /// The first value, if any.
    static func value(_ name: String, in bytes: [UInt8], within range: Range<Int>? = nil) -> String? {
        elements(name, in: bytes, within: range).first.map { decode(bytes[$0]) }
    }

    /// The ranges of the contents of every `<name>…</name>` or `<name attributes…>…</name>` (not
    /// nested in itself).
    static func elements(_ name: String, in bytes: [UInt8], within range: Range<Int>? = nil) -> [Range<Int>] {
        let open = Array("<\(name)".utf8)
        let close = Array("</\(name)>".utf8)
        var out: [Range<Int>] = []
        var i = range?.lowerBound ?? 0
        let end = range?.upperBound ?? bytes.count
        while let start = find(open, in: bytes, from: i, to: end) {
            var j = start + open.count
            guard j < end else { break }
            // `<name>` or `<name ` + attributes; `<nameOther>` is another element.
            guard bytes[j] == 62 || bytes[j] == 32 else { i = j; continue }
            while j < end && bytes[j] != 62 { j += 1 }
            guard j < end else { break }
            let contentStart = j + 1
            guard let stop = find(close, in: bytes, from: contentStart, to: end) else { break }
            out.append(contentStart..<stop)
            i = stop + close.count
        }
        return out
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from: Int, to end: Int) -> Int? {
        guard !needle.isEmpty, end - from >= needle.count else { return nil }
        var i = from
        let last = end - needle.count
        while i <= last {
            if bytes[i] == needle[0] {
                var j = 1
                while j < needle.count && bytes[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    /// XML text with the five named entities and numeric references decoded.
    static func decode(_ slice: ArraySlice<UInt8>) -> String {
        guard slice.contains(38) else { return String(decoding: slice, as: UTF8.self) }
        let text = String(decoding: slice, as: UTF8.self)
        var out = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            let after = rest[amp...]
            guard let semi = after.firstIndex(of: ";"), after.distance(from: amp, to: semi) <= 10 else {
                out += "&"
                rest = rest[rest.index(after: amp)...]
                continue
            }
            let entity = after[after.index(after: amp)..<semi]
            var replacement: String?
            switch entity {
            case "amp": replacement = "&"
            case "lt": replacement = "<"
            case "gt": replacement = ">"
            case "quot": replacement = "\""
            case "apos": replacement = "'"
            default:
                if entity.hasPrefix("#x"), let v = UInt32(entity.dropFirst(2), radix: 16), let s = Unicode.Scalar(v) {
                    replacement = String(Character(s))
                } else if entity.hasPrefix("#"), let v = UInt32(entity.dropFirst()), let s = Unicode.Scalar(v) {
                    replacement = String(Character(s))
                }
            }
            if let replacement {
                out += replacement
                rest = rest[rest.index(after: semi)...]
            } else {
                out += "&"
                rest = rest[rest.index(after: amp)...]
            }
        }
        out += rest
        return out
    }
}
