import Condensation
import Foundation
import Glibc
import TestSupport
import XCTest

/// The short version of bench/crash-harness.sh, written independently of it (a workload thread in this
/// process rather than a Python script; the same journal rules): a write-heavy workload on a mount whose
/// daemon is SIGKILLed at a random moment, then fsck, remount, every fsync'd file checked against the
/// journal, and the mounted tree compared with the newest version mounted read-only with `--at`.
///
/// $CDSFS_CRASH_ITERATIONS (default 10) and $CDSFS_CRASH_SEED (default: from the clock, printed) change it.
final class CrashConsistencyTests: ReliabilityTestCase {
    func testSIGKILLAtRandomMomentsLosesNothingFsyncedAndLeavesOneCommittedVersion() throws {
        let env = ProcessInfo.processInfo.environment
        let iterations = env["CDSFS_CRASH_ITERATIONS"].flatMap(Int.init) ?? 10
        let seed = env["CDSFS_CRASH_SEED"].flatMap(UInt64.init) ?? UInt64(Date().timeIntervalSince1970 * 1000) % 1_000_000
        print("crash test: \(iterations) iterations, seed \(seed) (CDSFS_CRASH_SEED=\(seed) repeats it)")
        var rng = SplitMix(seed: seed)
        try initHome()
        /// What earlier iterations' checks found: durable path → sha256. Later crashes must not touch them.
        var earlier: [String: String] = [:]
        var failures = 0

        for i in 1...iterations {
            let failuresBefore = testRun?.totalFailureCount ?? 0
            let interval = [0.2, 1, 5][Int(rng.next() % 3)]
            let delay = Double(rng.next() % 2500) / 1000
            let base = "it\(i)"
            try mount(options: ["commit_interval=\(interval)"])
            guard let pid = daemonPID() else { throw StopTest("iteration \(i): no mount daemon pid") }

            let workload = CrashWorkload(mountpoint: mnt, base: base, seed: rng.next())
            workload.start()
            usleep(useconds_t(delay * 1_000_000))
            let killedAt = Date()
            XCTAssertEqual(kill(pid, SIGKILL), 0)
            XCTAssert(Mounts.waitForExit(pid, seconds: 10), "iteration \(i): the daemon survived SIGKILL")
            XCTAssert(workload.wait(seconds: 60), "iteration \(i): the workload hung on the dead mount")
            if let e = workload.failure {
                // Once the daemon is gone any call may fail (ENOTCONN, ECONNABORTED, EIO from close);
                // before that, none may.
                XCTAssert(e.when >= killedAt, "iteration \(i): the workload failed while the mount was alive: \(e)")
            }
            cleanDeadMount(mnt)

            let fsck1 = fsck()
            XCTAssert(fsck1.succeeded, "iteration \(i): fsck after SIGKILL: \(fsck1)")
            guard let newest = versions().first else { throw StopTest("iteration \(i): no version in cdsfs log") }
            try mount()
            try mount(at: at, extra: ["--at", newest])

            // The journal of this iteration against what the remounted folder holds.
            let journal = workload.journal
            let result = JournalCheck(journal).match { path in
                switch IO.read(mnt + "/" + path) {
                case .success(let bytes): return IO.sha(bytes)
                case .failure(let e) where e.code == ENOENT: return nil
                case .failure(let e): return "<\(errnoName(e.code))>"
                }
            }
            XCTAssertNil(result.problem, "iteration \(i) (interval \(interval) s, killed after \(delay) s): \(result.problem ?? "")")
            // Earlier iterations' files are exactly as their checks found them.
            for (path, sha) in earlier.sorted(by: { $0.key < $1.key }) {
                let got: String
                switch IO.read(mnt + "/" + path) {
                case .success(let bytes): got = IO.sha(bytes)
                case .failure(let e): got = errnoName(e.code)
                }
                XCTAssertEqual(got, sha, "iteration \(i): \(path), checked after an earlier crash, changed")
            }
            for (path, sha) in result.observed { if let sha { earlier[path] = sha } }
            // The folder is one committed version: the newest, as `--at` shows it.
            assertSameTree(TreeSnapshot(mnt), TreeSnapshot(at), .all, "iteration \(i): the mounted folder and version \(newest.prefix(16))")
            unmount(at)
            unmount(mnt)
            let fsck2 = fsck()
            XCTAssert(fsck2.succeeded, "iteration \(i): fsck after the remount: \(fsck2)")

            let ok = (testRun?.totalFailureCount ?? 0) == failuresBefore
            if !ok { failures += 1 }
            print("iteration \(i): \(ok ? "ok" : "FAILED") (interval \(interval) s, killed after \(delay) s): "
                  + "\(result.operations) operations, last fsync at \(result.lastSync), \(result.observed.count) durable paths, "
                  + "matched the state after \(result.matched.map(String.init) ?? "none")")
        }
        print("\(iterations - failures) passed, \(failures) failed")
    }
}

// MARK: - The journal and its check

enum JournalEntry: CustomStringConvertible {
    /// The file was created, written once and fsync'd; fsync returned. It is never written again.
    case durable(String, sha: String)
    /// A directory fsync returned.
    case sync
    /// About to rename, link or unlink a durable file.
    case begin(Change)
    /// The change begun last returned.
    case end

    enum Change {
        case rename(String, String)
        case link(String, String)
        case unlink(String)
    }

    var description: String {
        switch self {
        case .durable(let p, let sha): return "F \(p) \(sha.prefix(12))"
        case .sync: return "S"
        case .begin(.rename(let a, let b)): return "rename \(a) \(b)"
        case .begin(.link(let a, let b)): return "link \(a) \(b)"
        case .begin(.unlink(let a)): return "unlink \(a)"
        case .end: return "E"
        }
    }
}

/// Which states the journal allows after a crash. The workload is sequential and every commit captures
/// the volume between two of its operations, so the durable paths must look as after some prefix of the
/// operations that includes everything up to the last fsync that returned.
struct JournalCheck {
    enum Operation {
        case durable(String, String)
        case sync
        case change(JournalEntry.Change)
    }

    var operations: [Operation] = []
    var ended: [Bool] = []

    init(_ journal: [JournalEntry]) {
        for entry in journal {
            switch entry {
            case .durable(let p, let sha):
                operations.append(.durable(p, sha))
                ended.append(true)
            case .sync:
                operations.append(.sync)
                ended.append(true)
            case .begin(let c):
                operations.append(.change(c))
                ended.append(false)
            case .end:
                ended[ended.count - 1] = true
            }
        }
    }

    var lastSync: Int {
        operations.lastIndex { if case .change = $0 { return false } else { return true } } ?? -1
    }

    var paths: Set<String> {
        var out: Set<String> = []
        for op in operations {
            switch op {
            case .durable(let p, _), .change(.unlink(let p)): out.insert(p)
            case .change(.rename(let a, let b)), .change(.link(let a, let b)): out.formUnion([a, b])
            case .sync: break
            }
        }
        return out
    }

    static func apply(_ op: Operation, to state: inout [String: String]) {
        switch op {
        case .durable(let p, let sha): state[p] = sha
        case .sync: break
        case .change(.rename(let a, let b)): state[b] = state.removeValue(forKey: a)
        case .change(.link(let a, let b)): state[b] = state[a]
        case .change(.unlink(let a)): state[a] = nil
        }
    }

    struct Result {
        /// The number of operations whose state matched (the prefix length), if any did.
        var matched: Int?
        var operations: Int
        var lastSync: Int
        var observed: [String: String?]
        var problem: String?
    }

    /// Looks at every durable path (sha256, nil if absent) and finds the journal prefix it matches.
    func match(observe: (String) -> String?) -> Result {
        let paths = self.paths
        var observed: [String: String?] = [:]
        for p in paths { observed[p] = .some(observe(p)) }
        var result = Result(matched: nil, operations: operations.count, lastSync: lastSync, observed: observed)
        for (k, done) in ended.enumerated().dropLast() where !done {
            result.problem = "the journal's operation \(k) began but did not end, yet another followed"
            return result
        }
        var state: [String: String] = [:]
        for op in operations.prefix(lastSync + 1) { Self.apply(op, to: &state) }
        var atLastSync: [String: String]?
        for k in (lastSync + 1)...operations.count {
            if k > lastSync + 1 { Self.apply(operations[k - 1], to: &state) }
            if atLastSync == nil { atLastSync = state }
            if paths.allSatisfy({ observed[$0]! == state[$0] }) {
                result.matched = k
                return result
            }
        }
        let wrong = paths.sorted().filter { observed[$0]! != atLastSync![$0] }.prefix(20).map {
            "\($0): expected \(atLastSync![$0] ?? "absent"), found \(observed[$0]!.map { $0 } ?? "absent")"
        }
        result.problem = "the fsync'd files match none of the \(operations.count - lastSync) states the journal allows "
            + "(\(operations.count) operations, last sync at \(lastSync)); against the state at the last sync:\n  "
            + wrong.joined(separator: "\n  ")
        return result
    }
}

// MARK: - The workload

/// A write-heavy workload on a thread of its own, journaling what became durable. It runs until a call
/// fails (the daemon was killed) or for a minute.
final class CrashWorkload: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        var code: Int32
        var what: String
        var when = Date()
        var description: String { "\(what): \(errnoName(code))" }
    }

    let mountpoint: String
    let base: String
    private var rng: SplitMix
    private let lock = NSLock()
    private var entries: [JournalEntry] = []
    private var failed: Failure?
    private let finished = DispatchSemaphore(value: 0)

    // The workload's own view (its thread only).
    private var sequence = 0
    private var directories: [String] = []
    /// Durable path → (sha256, identity): hard links share an identity.
    private var durable: [String: (sha: String, id: String)] = [:]
    private var scratch: [String] = []

    init(mountpoint: String, base: String, seed: UInt64) {
        self.mountpoint = mountpoint
        self.base = base
        rng = SplitMix(seed: seed)
        directories = [base]
    }

    var journal: [JournalEntry] { lock.withLock { entries } }
    var failure: Failure? { lock.withLock { failed } }

    func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.start()
    }

    func wait(seconds: Double) -> Bool { finished.wait(timeout: .now() + seconds) == .success }

    private func log(_ e: JournalEntry) { lock.withLock { entries.append(e) } }

    private func run() {
        let deadline = Date().addingTimeInterval(60)
        do {
            try call(mkdir(path(base), 0o755), "mkdir \(base)")
            while Date() < deadline { try step() }
        } catch let f as Failure {
            lock.withLock { failed = f }
        } catch {
            lock.withLock { failed = Failure(code: -1, what: "\(error)") }
        }
    }

    // MARK: Steps

    private func step() throws {
        let r = Int(rng.next() % 100)
        switch r {
        case 0..<25: try writeDurable(size: smallSize())
        case 25..<27: try writeDurable(size: Int(rng.next() % 5 + 1) << 20 + Int(rng.next() % 100_000), prefix: "big")
        case 27..<44: try writeScratch(size: smallSize())
        case 44..<46: try writeScratch(size: Int(rng.next() % 3 + 1) << 20, prefix: "bigs")
        case 46..<55: try changeScratch()
        case 55..<61: try deleteScratch()
        case 61..<70: try rename()
        case 70..<74: try replace()
        case 74..<77: try link()
        case 77..<81: try unlinkDurable()
        case 81..<87: try makeDirectory()
        case 87..<89: try removeDirectory()
        case 89..<92: try makeSymlink()
        case 92..<95: try syncDirectory()
        default: try setAttributes()
        }
    }

    private func smallSize() -> Int {
        switch rng.next() % 10 {
        case 0: return 0
        case 1...5: return Int(rng.next() % 4096) + 1
        case 6...8: return 4097 + Int(rng.next() % 66_000)
        default: return 70_000 + Int(rng.next() % 330_000)
        }
    }

    private func payload(_ n: Int) -> [UInt8] {
        switch rng.next() % 8 {
        case 0 where n > 0:
            // Repeated blocks: deduplicated chunks.
            let block = rng.bytes(min(n, 70_000))
            var out: [UInt8] = []
            out.reserveCapacity(n)
            while out.count < n { out += block.prefix(n - out.count) }
            return out
        case 1: return [UInt8](repeating: 0, count: n / 2) + rng.bytes(n - n / 2)
        default: return rng.bytes(n)
        }
    }

    private func fresh(_ prefix: String, in directory: String? = nil) -> String {
        sequence += 1
        return (directory ?? pick(directories)) + "/\(prefix)\(sequence)"
    }

    private func pick<T>(_ items: [T]) -> T { items[Int(rng.next() % UInt64(items.count))] }

    private func path(_ relative: String) -> String { mountpoint + "/" + relative }

    @discardableResult
    private func call<T: BinaryInteger>(_ result: T, _ what: @autoclosure () -> String) throws -> T {
        if result < 0 { throw Failure(code: errno, what: what()) }
        return result
    }

    /// Creates a new file, writes it in pieces, optionally fsyncs (or fdatasyncs), closes.
    private func create(_ relative: String, _ bytes: [UInt8], sync: Bool) throws {
        let fd = try call(open(path(relative), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644), "create \(relative)")
        var closed = false
        defer { if !closed { close(fd) } }
        let piece = [4096, 65_536, 1 << 20][Int(rng.next() % 3)]
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, min(piece, $0.count - done)) }
            try call(n, "write \(relative)")
            done += n
        }
        if sync {
            if rng.next() % 3 == 0 { try call(fdatasync(fd), "fdatasync \(relative)") } else { try call(fsync(fd), "fsync \(relative)") }
        }
        closed = true
        try call(close(fd), "close \(relative)")
    }

    private func writeDurable(size: Int, prefix: String = "f") throws {
        let rel = fresh(prefix)
        let bytes = payload(size)
        try create(rel, bytes, sync: true)
        let sha = IO.sha(bytes)
        log(.durable(rel, sha: sha))
        durable[rel] = (sha, rel)
    }

    private func writeScratch(size: Int, prefix: String = "s") throws {
        let rel = fresh(prefix)
        try create(rel, payload(size), sync: false)
        scratch.append(rel)
    }

    private func changeScratch() throws {
        guard !scratch.isEmpty else { return }
        let i = Int(rng.next() % UInt64(scratch.count))
        let rel = scratch[i]
        switch rng.next() % 4 {
        case 0:
            let fd = try call(open(path(rel), O_WRONLY | O_APPEND | O_CLOEXEC), "open \(rel)")
            defer { close(fd) }
            let more = payload(Int(rng.next() % 20_000) + 1)
            try call(more.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, "append \(rel)")
        case 1: try call(truncate(path(rel), off_t(rng.next() % 10_000)), "truncate \(rel)")
        case 2:
            let new = fresh("s")
            try call(Glibc.rename(path(rel), path(new)), "rename \(rel)")
            scratch[i] = new
        default:
            let fd = try call(open(path(rel), O_WRONLY | O_CLOEXEC), "open \(rel)")
            defer { close(fd) }
            let bytes = payload(Int(rng.next() % 3000) + 1)
            try call(bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(rng.next() % 5000)) }, "pwrite \(rel)")
        }
    }

    private func deleteScratch() throws {
        guard !scratch.isEmpty else { return }
        let rel = scratch.remove(at: Int(rng.next() % UInt64(scratch.count)))
        try call(unlink(path(rel)), "unlink \(rel)")
    }

    private func rename() throws {
        guard !durable.isEmpty else { return }
        let names = durable.keys.sorted()
        let a = pick(names)
        let b: String
        if rng.next() % 10 < 3 {
            b = pick(names)
            // A rename onto another name of the same file does nothing (POSIX): outside the model.
            guard b != a, durable[b]!.id != durable[a]!.id else { return }
        } else {
            b = fresh("r")
        }
        log(.begin(.rename(a, b)))
        try call(Glibc.rename(path(a), path(b)), "rename \(a) \(b)")
        log(.end)
        durable[b] = durable.removeValue(forKey: a)
    }

    /// The editor's way of saving: a new file, fsync'd, renamed over the old one.
    private func replace() throws {
        guard !durable.isEmpty else { return }
        let target = pick(durable.keys.sorted())
        let tmp = fresh("tmp", in: String(target[..<target.lastIndex(of: "/")!]))
        let bytes = payload(smallSize())
        try create(tmp, bytes, sync: true)
        let sha = IO.sha(bytes)
        log(.durable(tmp, sha: sha))
        durable[tmp] = (sha, tmp)
        log(.begin(.rename(tmp, target)))
        try call(Glibc.rename(path(tmp), path(target)), "rename \(tmp) \(target)")
        log(.end)
        durable[target] = durable.removeValue(forKey: tmp)
    }

    private func link() throws {
        guard !durable.isEmpty else { return }
        let a = pick(durable.keys.sorted())
        let b = fresh("h")
        log(.begin(.link(a, b)))
        try call(Glibc.link(path(a), path(b)), "link \(a) \(b)")
        log(.end)
        durable[b] = durable[a]
    }

    private func unlinkDurable() throws {
        guard !durable.isEmpty else { return }
        let a = pick(durable.keys.sorted())
        log(.begin(.unlink(a)))
        try call(unlink(path(a)), "unlink \(a)")
        log(.end)
        durable[a] = nil
    }

    private func makeDirectory() throws {
        let rel = fresh("d")
        try call(mkdir(path(rel), 0o755), "mkdir \(rel)")
        directories.append(rel)
    }

    private func removeDirectory() throws {
        guard directories.count > 1 else { return }
        let i = 1 + Int(rng.next() % UInt64(directories.count - 1))
        if rmdir(path(directories[i])) != 0 {
            if errno == ENOTEMPTY { return }
            throw Failure(code: errno, what: "rmdir \(directories[i])")
        }
        directories.remove(at: i)
    }

    private func makeSymlink() throws {
        let rel = fresh("l")
        try call(symlink(pick(["../x", "/etc/hostname", "nowhere", "f1"]), path(rel)), "symlink \(rel)")
    }

    private func syncDirectory() throws {
        let rel = pick(directories)
        let fd = try call(open(path(rel), O_RDONLY | O_DIRECTORY | O_CLOEXEC), "open \(rel)")
        defer { close(fd) }
        try call(fsync(fd), "fsync \(rel)")
        log(.sync)
    }

    private func setAttributes() throws {
        guard !scratch.isEmpty else { return }
        let rel = pick(scratch)
        if rng.next() % 2 == 0 {
            try call(chmod(path(rel), pick([0o600, 0o755, 0o444])), "chmod \(rel)")
        } else {
            let value = rng.bytes(Int(rng.next() % 64))
            try call(value.withUnsafeBytes { Xattr.lsetxattr(path(rel), "user.note", $0.baseAddress, $0.count, 0) }, "setxattr \(rel)")
        }
    }
}
