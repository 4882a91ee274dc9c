import ArgumentParser
import Condensation
import CondensationFS
import Glibc

struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "List the versions of the folder, newest first.",
        discussion: "One line per version: hash, time (UTC), device, and what changed. Any of them can be mounted with `cdsfs mount --at HASH`."
    )

    @OptionGroup var home: HomeOption
    @Option(name: .shortAndLong, help: "Show at most this many versions.") var limit: Int?

    func run() throws {
        let h = home.open()
        let head = orFail { try h.currentVersion() }
        var versions = orFail { try History(home: h).versions(from: head) }
        if let limit { versions = Array(versions.prefix(limit)) }
        for v in versions {
            let device = v.device.map { String($0.hex.prefix(8)) } ?? "?"
            var change = "+\(v.added) ~\(v.changed) -\(v.removed) files, \(formatBytes(v.bytes)) written"
            if v.parents.isEmpty { change = "created" }
            if v.parents.count > 1 { change = "merge of \(v.parents.count) versions; " + change }
            print("\(v.link.hash.hex)  \(formatTime(v.revision))  \(device)  \(change)")
        }
    }
}

func formatTime(_ ms: Int64) -> String {
    var t = time_t(ms / 1000)
    var tm = tm()
    gmtime_r(&t, &tm)
    func p(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return "\(tm.tm_year + 1900)-\(p(tm.tm_mon + 1))-\(p(tm.tm_mday)) \(p(tm.tm_hour)):\(p(tm.tm_min)):\(p(tm.tm_sec))Z"
}

func formatBytes(_ b: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(b)
    var u = 0
    while v >= 1024 && u < units.count - 1 {
        v /= 1024
        u += 1
    }
    return u == 0 ? "\(b) B" : "\((v * 10).rounded() / 10) \(units[u])"
}
