import ArgumentParser
import Condensation
import Glibc
import StoreServer

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a folder store or an S3 bucket over HTTP, as the remote store devices sync through.",
        discussion: """
        Runs the Condensation HTTP store protocol over the folder store DIR (created if it does not \
        exist) or over an S3 bucket (--store s3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT&region=R, \
        credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials). On S3 the \
        server keeps nothing between requests: run as many instances on one bucket as you like, behind \
        a load balancer or listed together in the devices' remote. Objects can be read by anyone, puts and box changes must be signed by an actor whose \
        public key is on the store, private boxes and in-queues are readable by their owner only. The \
        server only ever sees ciphertext. It speaks plain HTTP: put a TLS proxy in front of it to reach \
        it over an untrusted network.

        Prints "serving file:///DIR on http://HOST:PORT" once it listens (with --listen HOST:0, the \
        port the system chose), then one log line per request on standard error. SIGTERM or SIGINT: \
        finishes the requests in flight, then exits.
        """
    )

    @Option(name: .long, help: ArgumentHelp("The folder store to serve (created if it does not exist), or s3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT[&region=R].", valueName: "DIR|S3URL"))
    var store: String

    @Option(name: .long, help: ArgumentHelp("Where to listen.", valueName: "HOST:PORT"))
    var listen = "127.0.0.1:8080"

    @Option(name: .long, help: ArgumentHelp("Largest request body (an object or a modify), in MiB.", valueName: "MIB"))
    var maxBody = 64

    @Option(name: .long, help: ArgumentHelp("Most connections open at once.", valueName: "N"))
    var maxConnections = 512

    @Option(name: .long, help: ArgumentHelp("Longest long poll (Condensation-Watch) honoured, in seconds.", valueName: "SECONDS"))
    var maxWatch = 60

    @Flag(name: .long, help: "No log line per request.")
    var quiet = false

    func run() throws {
        guard let (host, port) = Self.parseListen(listen) else {
            fail("--listen \(listen): expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080 (port 0–65535)")
        }
        guard maxBody >= 1, maxBody <= 4096 else { fail("--max-body must be between 1 and 4096 MiB") }
        guard maxConnections >= 1 else { fail("--max-connections must be at least 1") }
        guard maxWatch >= 0 else { fail("--max-watch must not be negative") }

        let served: any Store
        var limits = StoreServer.Limits()
        if store.hasPrefix("s3://") {
            served = openS3Store(store)
            // Other instances may change a box: a held long poll lists it again this often, so it
            // wakes within about a second of a change made through any instance.
            limits.watchRecheckMilliseconds = 750
            // A store thread waits for S3's answer most of the time, not for the CPU: more of them
            // keep more requests in flight to the cluster (measured: 32 connections of cdsfs-load,
            // 8 threads 252 requests/s, 32 threads see BENCHMARKS.md).
            limits.storeThreads = 32
        } else {
            served = openOrCreate(store)
        }
        limits.maximumBodySize = maxBody * 1024 * 1024
        limits.maximumBufferedBytes = max(limits.maximumBufferedBytes, 2 * limits.maximumBodySize)
        limits.maximumConnections = maxConnections
        limits.maximumWatchMilliseconds = maxWatch * 1000
        let server = StoreServer(store: served, host: host, port: port, limits: limits, logRequests: !quiet)
        do {
            try server.run { bound in
                let shownHost = host.contains(":") ? "[\(host)]" : host
                // Straight to the descriptor: whoever started us waits for this line, pipe or not.
                let line = "serving \(served.url) on http://\(shownHost):\(bound)\n"
                _ = line.withCString { Glibc.write(1, $0, strlen($0)) }
            }
        } catch {
            fail(error.description)
        }
    }

    /// `HOST:PORT` or `[IPv6]:PORT`.
    static func parseListen(_ text: String) -> (String, Int)? {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" }),
              portText.allSatisfy(\.isNumber), let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    /// The folder store at `path`: opened if it is one, created if the path does not exist or is an
    /// empty directory; anything else ends the command with one line.
    func openOrCreate(_ path: String) -> FolderStore {
        var absolute = path
        if !absolute.hasPrefix("/") {
            guard let cwd = getcwd(nil, 0) else { fail("cannot read the current directory") }
            absolute = String(cString: cwd) + "/" + path
            free(cwd)
        }
        if FileSystem.exists(absolute) {
            guard FileSystem.isDirectory(absolute) else { fail("\(path) is not a directory") }
            if let store = FolderStore.open(absolute) { return FolderStore(path: Self.resolved(store.path)) }
            let entries = orFail("reading \(path)") { try FileSystem.list(absolute) }
            guard entries.isEmpty else {
                fail("\(path) is not a folder store (it has no objects/ and accounts/ folders) and is not empty")
            }
        }
        let created = orFail("creating the store in \(path)") { try FolderStore.create(absolute) }
        return FolderStore(path: Self.resolved(created.path))
    }

    /// The canonical absolute path (symlinks and `..` resolved).
    static func resolved(_ path: String) -> String {
        guard let p = realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }
}
