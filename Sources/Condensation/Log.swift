import Glibc
import Synchronization

/// One-line log messages on standard error (a mount's stderr is its log file). Kept to a few lines
/// of code on purpose: the hot paths never log, and failures name the object hash they concern.
public enum Log {
    public enum Level: Int, Sendable, Comparable {
        case debug, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        var label: String { ["debug", "info", "warning", "error"][rawValue] }
    }

    private static let minimum = Atomic<Int>(Level.info.rawValue)

    public static func setLevel(_ level: Level) { minimum.store(level.rawValue, ordering: .relaxed) }

    public static func write(_ level: Level, _ message: @autoclosure () -> String) {
        guard level.rawValue >= minimum.load(ordering: .relaxed) else { return }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var tm = tm()
        var t = ts.tv_sec
        gmtime_r(&t, &tm)
        let stamp = String(format2: Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
                           Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec))
        let line = "\(stamp) \(level.label): \(message())\n"
        _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
    }

    public static func debug(_ m: @autoclosure () -> String) { write(.debug, m()) }
    public static func info(_ m: @autoclosure () -> String) { write(.info, m()) }
    public static func warning(_ m: @autoclosure () -> String) { write(.warning, m()) }
    public static func error(_ m: @autoclosure () -> String) { write(.error, m()) }
}

extension String {
    /// `YYYY-MM-DDTHH:MM:SSZ` without Foundation's formatters.
    init(format2 y: Int, _ mo: Int, _ d: Int, _ h: Int, _ mi: Int, _ s: Int) {
        func p(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        self = "\(y)-\(p(mo))-\(p(d))T\(p(h)):\(p(mi)):\(p(s))Z"
    }
}
