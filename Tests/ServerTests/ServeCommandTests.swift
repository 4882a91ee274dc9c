import Condensation
import Foundation
import Glibc
import TestSupport
import XCTest

/// The real `cdsfs serve` binary: the line it prints, a round trip through it, SIGTERM, and its
/// one-line errors.
final class ServeCommandTests: XCTestCase {
    var directory: TemporaryDirectory!

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: Paths.cdsfs) else {
            throw XCTSkip("no cdsfs binary at \(Paths.cdsfs) (build with --build-tests)")
        }
        directory = TemporaryDirectory("cdsfs-serve")
    }

    override func tearDown() { directory?.remove() }

    /// Starts `cdsfs serve`, waits for its "serving" line, returns the process, the line and the port.
    func serve(_ arguments: [String]) throws -> (Process, String, Int, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Paths.cdsfs)
        p.arguments = ["serve"] + arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        var line: [UInt8] = []
        let fd = out.fileHandleForReading.fileDescriptor
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1 && byte != 10 { line.append(byte) }
        let text = String(decoding: line, as: UTF8.self)
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
            p.terminate()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw StoreError.unreachable("no serving line: \(text) / \(stderr)")
        }
        return (p, text, port, err)
    }

    /// Runs `cdsfs serve` expecting it to fail; returns its exit code and standard error.
    func failing(_ arguments: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Paths.cdsfs)
        p.arguments = ["serve"] + arguments
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        let deadline = Date().addingTimeInterval(20)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning { p.terminate(); XCTFail("still running: \(arguments)") }
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    func testServeRoundTripAndSIGTERM() throws {
        let storePath = directory.path + "/new/store"
        let (process, line, port, err) = try serve(["--store", storePath, "--listen", "127.0.0.1:0"])
        XCTAssertEqual(line, "serving file://\(storePath) on http://127.0.0.1:\(port)")
        XCTAssertNotNil(FolderStore.open(storePath), "the store was created")

        var c = HTTPStore.Configuration()
        c.retries = 1
        let alice = try HTTPStore(url: "http://127.0.0.1:\(port)", keyPair: Actors.alice, configuration: c)
        try alice.put(Actors.alice.actor, Actors.alice.publicKey.object)
        let o = TestObjects.random(3000)
        let h = try alice.put(o)
        try alice.add(Actors.alice.actor, .private, h)
        XCTAssertEqual(try alice.get(h), o)
        XCTAssertEqual(try alice.list(Actors.alice.actor, .private), [h])
        XCTAssertThrowsError(try HTTPStore(url: "http://127.0.0.1:\(port)").list(Actors.alice.actor, .private))

        // SIGTERM during a held long poll: the poll is answered, the server exits 0.
        let poll = Shared<[Hash]?>(nil)
        let anonymous = try HTTPStore(url: "http://127.0.0.1:\(port)", configuration: c)
        Thread { poll.value = try? anonymous.list(Actors.carol.actor, .public, watch: 30_000) }.start()
        usleep(300_000)
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(process.isRunning, "exits soon after SIGTERM")
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        for _ in 0..<100 where poll.value == nil { usleep(20_000) }
        XCTAssertEqual(poll.value, [])

        // One log line per request, with method, path, status, bytes and time.
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(log.contains("PUT /objects/\(h.hex) 204 in \(o.bytes.count) B out 0 B"), log)
        XCTAssertTrue(log.contains("GET /accounts/\(Actors.alice.actor.hex)/private 403"), log)

        // The data outlives the server.
        XCTAssertEqual(try FolderStore.open(storePath)?.get(h), o)
    }

    func testErrors() throws {
        var (code, message) = try failing(["--store", directory.path, "--listen", "nonsense"])
        XCTAssertNotEqual(code, 0)
        XCTAssertTrue(message.hasPrefix("cdsfs: --listen nonsense: expected HOST:PORT"), message)
        XCTAssertEqual(message.split(separator: "\n").count, 1)

        (code, message) = try failing(["--store", directory.path, "--listen", "127.0.0.1:70000"])
        XCTAssertNotEqual(code, 0)
        XCTAssertTrue(message.contains("expected HOST:PORT"), message)

        let file = directory.path + "/file"
        FileManager.default.createFile(atPath: file, contents: Data([1]))
        (code, message) = try failing(["--store", file, "--listen", "127.0.0.1:0"])
        XCTAssertNotEqual(code, 0)
        XCTAssertEqual(message, "cdsfs: \(file) is not a directory\n")

        let notAStore = directory.path + "/other"
        try FileManager.default.createDirectory(atPath: notAStore + "/stuff", withIntermediateDirectories: true)
        (code, message) = try failing(["--store", notAStore, "--listen", "127.0.0.1:0"])
        XCTAssertNotEqual(code, 0)
        XCTAssertTrue(message.hasPrefix("cdsfs: \(notAStore) is not a folder store"), message)

        // Port in use: a first server holds it.
        let (first, _, port, _) = try serve(["--store", directory.path + "/a", "--listen", "127.0.0.1:0", "--quiet"])
        defer { first.terminate(); first.waitUntilExit() }
        (code, message) = try failing(["--store", directory.path + "/b", "--listen", "127.0.0.1:\(port)"])
        XCTAssertNotEqual(code, 0)
        XCTAssertEqual(message, "cdsfs: cannot listen on 127.0.0.1:\(port): address already in use\n")

        (code, message) = try failing(["--store", directory.path + "/c", "--listen", "no-such-host.invalid:8080"])
        XCTAssertNotEqual(code, 0)
        XCTAssertTrue(message.hasPrefix("cdsfs: cannot listen on no-such-host.invalid:8080"), message)
        XCTAssertEqual(message.split(separator: "\n").count, 1)
    }
}
