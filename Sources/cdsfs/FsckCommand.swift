import ArgumentParser
import Condensation
import CondensationFS
import Glibc

struct FsckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fsck",
        abstract: "Check every object reachable from this device's boxes.",
        discussion: "Fetches, hash-checks, decrypts and parses every object of every version; reports each bad object by hash. Exits 0 only if all is well."
    )

    @OptionGroup var home: HomeOption

    func run() throws {
        let h = home.open()
        let interactive = isatty(2) != 0
        let checker = Checker(home: h) { count, bytes in
            if interactive { progressLine("checked \(count) objects, \(formatBytes(bytes))") }
        }
        checker.run()
        if interactive { progressLine(nil) }
        for p in checker.problems { print("bad object \(p)") }
        print("checked \(checker.checked) objects (\(formatBytes(checker.bytes))): \(checker.problems.isEmpty ? "all good" : "\(checker.problems.count) problems")")
        if !checker.problems.isEmpty { throw ExitCode(2) }
    }
}

/// Rewrites one status line on standard error; nil clears it.
func progressLine(_ text: String?) {
    let line = "\r\u{1b}[K" + (text ?? "")
    _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
}
