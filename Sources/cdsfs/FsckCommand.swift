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

    @Option(help: ArgumentHelp("Check a store instead of a home: a folder store or s3://BUCKET[/PREFIX]?endpoint=… (what `cdsfs serve` serves). Without keys only the storage is checked: every object reachable from any box is present and matches its hash.", valueName: "DIR|S3URL"))
    var store: String?

    func run() throws {
        if let store {
            try checkStore(store)
            return
        }
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

extension FsckCommand {
    /// Every object reachable from every box of the store, read whole and checked against its hash
    /// (the server's view: ciphertext only). One line per missing or corrupt object; exit 2 if any.
    func checkStore(_ url: String) throws {
        let interactive = isatty(2) != 0
        func check(_ s: some CollectableStore) -> GarbageCollector.Marking {
            orFail("checking \(s.url)") {
                try GarbageCollector.mark(s, verify: true) { p in
                    if interactive { progressLine("checked \(p.marked) objects") }
                }
            }
        }
        let marking: GarbageCollector.Marking
        if url.hasPrefix("s3://") {
            marking = check(openS3Store(url))
        } else {
            let path = url.hasPrefix("file://") ? String(url.dropFirst(7)) : url
            guard let folder = FolderStore.open(path) else { fail("\(url) is not a folder store (it needs objects/ and accounts/)") }
            marking = check(folder)
        }
        if interactive { progressLine(nil) }
        for h in marking.missing.sorted() { print("missing object \(h.hex) (named by a box entry or another object)") }
        for h in marking.corrupt.sorted() { print("bad object \(h.hex): its bytes do not match its hash") }
        let problems = marking.missing.count + marking.corrupt.count
        print("checked \(marking.reachable.count) objects from \(marking.boxEntries) box entries: \(problems == 0 ? "all good" : "\(problems) problems")")
        if problems > 0 { throw ExitCode(2) }
    }
}

/// Rewrites one status line on standard error; nil clears it.
func progressLine(_ text: String?) {
    let line = "\r\u{1b}[K" + (text ?? "")
    _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
}
