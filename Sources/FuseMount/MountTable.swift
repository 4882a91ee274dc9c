import Glibc

/// The mounts this process sees, from /proc/self/mountinfo.
public struct MountTable: Sendable {
    public struct Entry: Sendable, Equatable {
        /// "major:minor" of the mount's device (for FUSE: the connection, also /sys/class/bdi/<device>).
        public var device: String
        /// Where it is mounted (unescaped).
        public var mountPoint: String
        /// "fuse.cdsfs", "ext4", …
        public var type: String
        /// The source column (for cdsfs: the fsname, normally the home path; unescaped).
        public var source: String
        /// Per-mount options ("rw,nosuid,…").
        public var options: String
    }

    public var entries: [Entry]

    /// Reads /proc/self/mountinfo; empty when it cannot be read.
    public static func current() -> MountTable {
        MountTable(entries: parse(readTextFile("/proc/self/mountinfo") ?? ""))
    }

    /// The mount visible at `path` (the last one mounted there), if any.
    public func entry(at path: String) -> Entry? {
        entries.last { $0.mountPoint == path }
    }

    static func parse(_ text: String) -> [Entry] {
        var result: [Entry] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count >= 10, let dash = fields.firstIndex(of: "-"), dash >= 6, dash + 2 < fields.count
            else { continue }
            result.append(Entry(device: String(fields[2]), mountPoint: unescape(fields[4]),
                                type: String(fields[dash + 1]), source: unescape(fields[dash + 2]),
                                options: String(fields[5])))
        }
        return result
    }

    /// Undoes the kernel's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash).
    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count {
                let digits = utf8[(i + 1)...(i + 3)]
                if digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }) {
                    let value = digits.reduce(0) { $0 * 8 + Int($1 - UInt8(ascii: "0")) }
                    if value < 256 {
                        bytes.append(UInt8(value))
                        i += 4
                        continue
                    }
                }
            }
            bytes.append(utf8[i])
            i += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The whole of a small text file (procfs, sysfs), or nil.
func readTextFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}
