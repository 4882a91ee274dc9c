import ArgumentParser
import Condensation
import CondensationFS
import Glibc

struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete objects no version needs any more; optionally forget old history first.",
        discussion: """
        Marks every object reachable from the boxes and deletes the others that are older than the \
        grace period (objects written in the last hour may belong to a commit in progress). With \
        --keep-versions or --keep-since, older versions are dropped from the history first, and what \
        only they used is deleted too. Do not prune history while the folder is mounted.
        """
    )

    @OptionGroup var home: HomeOption
    @Option(help: "Keep only the newest N versions.") var keepVersions: Int?
    @Option(help: "Keep only versions from this time on (YYYY-MM-DD[THH:MM[:SS]] UTC).") var keepSince: String?
    @Option(help: "Seconds an unreachable object must be old before it is deleted.") var grace: Int = GarbageCollector.defaultGracePeriod
    @Flag(help: "Report what would be deleted, delete nothing.") var dryRun = false
    @Option(help: ArgumentHelp("Collect this store instead of the home's: a folder store, or s3://BUCKET[/PREFIX]?endpoint=… (what `cdsfs serve` serves). Needs no home.", valueName: "DIR|S3URL"))
    var store: String?

    func validate() throws {
        if let n = keepVersions, n < 1 { throw ValidationError("--keep-versions must be at least 1") }
        if grace < 0 { throw ValidationError("--grace must not be negative") }
    }

    func run() throws {
        if let store {
            guard keepVersions == nil, keepSince == nil else {
                fail("--keep-versions and --keep-since prune a home's history; they cannot be used with --store")
            }
            if store.hasPrefix("s3://") {
                let s3 = openS3Store(store)
                if grace < 2 * s3.configuration.refreshAfter {
                    // A book on S3 leaves an object's time alone while it is younger than refreshAfter.
                    warn("a grace period under \(2 * s3.configuration.refreshAfter / 60) minutes on S3 may delete objects that a writer booked a few minutes ago; use it only when no device is pushing")
                }
                collect(s3)
            } else {
                let path = store.hasPrefix("file://") ? String(store.dropFirst(7)) : store
                guard let folder = FolderStore.open(path) else { fail("\(store) is not a folder store (it needs objects/ and accounts/)") }
                collect(folder)
            }
            return
        }
        let h = home.open()
        if keepVersions != nil || keepSince != nil {
            var since: Int64?
            if let keepSince {
                guard let ms = CondensationFS.parseTimeForCLI(keepSince) else {
                    fail("--keep-since \(keepSince) is not a time (YYYY-MM-DD[THH:MM[:SS]] UTC)")
                }
                since = ms
            }
            if dryRun {
                print("dry run: history is not pruned")
            } else {
                let dropped = orFail("pruning history") { try History(home: h).prune(keepVersions: keepVersions, keepSince: since) }
                print("dropped \(dropped) old versions from the history")
            }
        }
        collect(h.store)
    }

    /// Mark and sweep, with a progress line on a terminal.
    private func collect(_ store: some CollectableStore) {
        let interactive = isatty(2) != 0
        let report = orFail("collecting garbage in \(store.url)") {
            try GarbageCollector.collect(store, gracePeriod: grace, dryRun: dryRun) { p in
                if interactive { progressLine("\(p.phase): \(p.marked) reachable, \(p.examined) examined, \(p.deleted) deleted") }
            }
        }
        if interactive { progressLine(nil) }
        print("\(report.reachable) objects reachable; \(dryRun ? "would delete" : "deleted") \(report.deleted) (\(formatBytes(UInt64(report.bytesFreed)))); kept \(report.keptRecent) recent unreachable objects")
        if !report.missing.isEmpty || !report.corrupt.isEmpty {
            print("warning: \(report.missing.count) reachable objects missing, \(report.corrupt.count) corrupt: run `cdsfs fsck`")
        }
    }
}
