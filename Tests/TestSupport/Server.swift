import Foundation
import Glibc

/// `cdsfs serve` on 127.0.0.1: the first start picks a free port, restarts use the same one.
public final class Server {
    public let store: String
    public let logDirectory: String
    public private(set) var port = 0
    public private(set) var process: ChildProcess?
    /// The standard error (request log) of each run, in order.
    public private(set) var logs: [String] = []

    public init(store: String, logDirectory: String) {
        self.store = store
        self.logDirectory = logDirectory
    }

    public var url: String { "http://127.0.0.1:\(port)" }
    public var isRunning: Bool { process.map { !$0.hasExited } ?? false }

    /// Starts the server and waits for its "serving … on http://…" line. A restart on the same port
    /// is retried for a while (the port may still be held for a moment).
    public func start() throws {
        precondition(!isRunning, "the server is already running")
        let deadline = now() + 30
        while true {
            let n = logs.count + 1
            let outPath = "\(logDirectory)/serve-\(n).out", errPath = "\(logDirectory)/serve-\(n).log"
            let out = open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            let err = open(errPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            defer { close(out); close(err) }
            logs.append(errPath)
            let p = try ChildProcess(Paths.cdsfs, ["serve", "--store", store, "--listen", "127.0.0.1:\(port)"],
                                     stdout: out, stderr: err)
            process = p
            var line = ""
            _ = waitUntil(20, interval: 0.02) {
                line = Files.readText(outPath) ?? ""
                return line.contains("\n") || p.hasExited
            }
            if line.hasPrefix("serving "), let colon = line.trimmingCharacters(in: .whitespacesAndNewlines).lastIndex(of: ":"),
               let bound = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)[line.index(after: colon)...]) {
                if port != 0 && bound != port { throw StopTest("the server came back on port \(bound), not \(port)") }
                port = bound
                return
            }
            let why = (Files.readText(errPath) ?? "") + line
            if !p.hasExited { p.killGroup() }
            if port != 0 && why.contains("address already in use") && now() < deadline {
                usleep(200_000)
                continue
            }
            throw StopTest("`cdsfs serve` did not start: \(why)")
        }
    }

    /// Stops the server with `sig` (SIGTERM: a clean stop; SIGKILL: a crash) and waits for it to end.
    public func stop(_ sig: Int32 = SIGTERM) {
        guard let p = process else { return }
        p.signal(sig)
        if !p.wait(timeout: 20) {
            print("the server did not end within 20 s of signal \(sig); killing it")
            p.killGroup()
        }
        process = nil
    }

    /// Every request log line so far, over all runs.
    public func requestLines() -> [String] {
        logs.flatMap { (Files.readText($0) ?? "").split(separator: "\n").map(String.init) }
    }

    /// Bytes the server received in request bodies/headers ("in N B") over `lines`.
    public static func bytesIn(_ lines: some Sequence<String>) -> Int {
        var total = 0
        for line in lines {
            guard let r = line.range(of: " in "), let end = line[r.upperBound...].range(of: " B out") else { continue }
            total += Int(line[r.upperBound..<end.lowerBound]) ?? 0
        }
        return total
    }

    /// Bytes of the files under the store's objects/ folder.
    public func objectBytes() -> Int { storeBytes(store + "/objects") }
}
