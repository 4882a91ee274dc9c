import Condensation
import Foundation
import Glibc
import TestSupport
import XCTest

/// A seeded random sequence of file operations applied both to the mount and to a native directory (the
/// model): every operation must give the same result (success, or the same errno), reads the same bytes,
/// and the trees must match every few hundred operations and after unmount and mount.
///
/// Reproduce a failure with CDSFS_SEED=<seed> (printed at the start and in every failure);
/// CDSFS_MODEL_OPS sets the number of operations (default 2400), CDSFS_MODEL_CHECK_EVERY how often the trees
/// are compared (default every 300 operations; 1 finds the operation that made them differ).
final class ModelRandomTests: MountTestCase {
    func testRandomOperationsMatchANativeDirectory() throws {
        let env = ProcessInfo.processInfo.environment
        let seed = env["CDSFS_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(UInt32.max))
        let count = env["CDSFS_MODEL_OPS"].flatMap { Int($0) } ?? 2400
        let every = env["CDSFS_MODEL_CHECK_EVERY"].flatMap { Int($0) } ?? 300
        print("model test: seed \(seed), \(count) operations (repeat with CDSFS_SEED=\(seed))")
        try initHome()
        try mount()
        let model = native + "/m", real = mnt + "/m"
        XCTAssertEqual(mkdir(model, 0o755), 0)
        XCTAssertEqual(mkdir(real, 0o755), 0)

        var run = ModelRun(seed: seed, native: model, mount: real)
        var failed = false
        for i in 0..<count {
            let step = run.step()
            if step.native != step.mount {
                XCTFail("""
                seed \(seed), operation \(i): \(step.description)
                  native: \(step.native)
                  mount:  \(step.mount)
                the operations before it:
                  \(run.history.suffix(25).joined(separator: "\n  "))
                """)
                failed = true
                break
            }
            if i == count / 2 {
                // Halfway: close everything, unmount, mount, and go on from what the store kept.
                run.closeAll()
                let before = TreeSnapshot(real)
                try remount()
                let diffs = treeDifferences(before, TreeSnapshot(real), .allButTimes)
                if !diffs.isEmpty {
                    XCTFail("seed \(seed), remount halfway (after operation \(i)): the mount changed:\n  \(diffs.prefix(30).joined(separator: "\n  "))")
                    failed = true
                    break
                }
                run.history.append("(unmount and mount)")
            }
            if (i + 1) % every == 0 {
                let diffs = treeDifferences(TreeSnapshot(model), TreeSnapshot(real), .allButTimes)
                if !diffs.isEmpty {
                    XCTFail("seed \(seed), after operation \(i): trees differ:\n  \(diffs.prefix(30).joined(separator: "\n  "))\nlast operations:\n  \(run.history.suffix(25).joined(separator: "\n  "))")
                    failed = true
                    break
                }
            }
        }
        run.closeAll()
        if failed { return }
        print("model test: \(run.statistics())")
        assertSameTree(model, real, .allButTimes, "seed \(seed), at the end:")
        let before = TreeSnapshot(real)
        try remount()
        assertSameTree(model, real, .allButTimes, "seed \(seed), after remount, against the native directory:")
        assertSameTree(before, TreeSnapshot(real), .all, "seed \(seed), the mount before and after remount:")
    }
}

/// The results of one operation on both sides.
struct ModelStep {
    var description: String
    var native: [String]
    var mount: [String]
}

/// Applies random operations to two directories with the same system calls.
struct ModelRun {
    var rng: SplitMix
    let roots: [String]   // [native, mount]
    /// Files held open across operations: one descriptor per side, and the path it was opened as.
    var held: [(fds: [Int32], path: String)] = []
    var history: [String] = []
    var counts: [String: Int] = [:]
    var failures: [String: Int] = [:]

    init(seed: UInt64, native: String, mount: String) {
        rng = SplitMix(seed: seed)
        roots = [native, mount]
    }

    static let names = ["a", "b", "c", "d", "e", "file.txt", "dir", "x y", "ünï", "longer-name-\(String(repeating: "z", count: 40))"]

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func chance(_ p: Double) -> Bool { Double(rng.next() % 1_000_000) / 1_000_000 < p }
    mutating func pick<T>(_ items: [T]) -> T { items[int(0...(items.count - 1))] }

    /// Every path under the native root (relative), and the directories among them ("" is the root).
    func listing() -> (all: [String], dirs: [String], files: [String]) {
        var all: [String] = [], dirs: [String] = [""], files: [String] = []
        func walk(_ rel: String) {
            let dir = rel.isEmpty ? roots[0] : roots[0] + "/" + rel
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
            for name in names.sorted() {
                let r = rel.isEmpty ? name : rel + "/" + name
                all.append(r)
                var st = stat()
                guard lstat(roots[0] + "/" + r, &st) == 0 else { continue }
                switch UInt32(st.st_mode) & UInt32(S_IFMT) {
                case UInt32(S_IFDIR):
                    dirs.append(r)
                    walk(r)
                case UInt32(S_IFREG): files.append(r)
                default: break
                }
            }
        }
        walk("")
        return (all, dirs, files)
    }

    mutating func dataSize() -> Int {
        switch int(0...9) {
        case 0...5: return int(0...4096)
        case 6...8: return int(4097...65536)
        default: return int(65537...400_000)
        }
    }

    func nativeSize(_ rel: String) -> Int {
        var st = stat()
        return stat(roots[0] + "/" + rel, &st) == 0 ? Int(st.st_size) : 0
    }

    /// One random operation on both sides.
    mutating func step() -> ModelStep {
        let (all, dirs, files) = listing()
        func existing(_ r: inout SplitMix) -> String { all.isEmpty || Int.random(in: 0..<20, using: &r) == 0 ? "missing" : all[Int.random(in: 0..<all.count, using: &r)] }
        /// Mostly a regular file, sometimes anything.
        func aFile(_ r: inout SplitMix) -> String {
            files.isEmpty || Int.random(in: 0..<5, using: &r) == 0 ? existing(&r) : files[Int.random(in: 0..<files.count, using: &r)]
        }
        func newPath(_ r: inout SplitMix) -> String {
            let d = dirs[Int.random(in: 0..<dirs.count, using: &r)]
            let n = ModelRun.names[Int.random(in: 0..<ModelRun.names.count, using: &r)]
            return d.isEmpty ? n : d + "/" + n
        }
        let roll = int(0...109)
        var kind = ""
        var text = ""
        var body: (String) -> [String]
        switch roll {
        case 0..<15:
            kind = "create"
            let path = newPath(&rng)
            var flags = O_WRONLY | O_CREAT
            if chance(0.5) { flags |= O_TRUNC }
            if chance(0.15) { flags |= O_EXCL }
            if chance(0.15) { flags |= O_APPEND }
            let mode = pick([0o644, 0o600, 0o755, 0o444] as [mode_t])
            let data = rng.bytes(dataSize())
            text = "create \(path) flags \(String(flags, radix: 8)) mode \(String(mode, radix: 8)) write \(data.count)"
            body = { root in
                let fd = open(root + "/" + path, flags | O_CLOEXEC, mode)
                guard fd >= 0 else { return ["open " + errnoName(errno)] }
                defer { close(fd) }
                return ["open OK", ModelRun.writeAll(fd, data, at: nil)]
            }
        case 15..<30:
            kind = "write"
            let path = aFile(&rng)
            let size = nativeSize(path)
            let offset = chance(0.2) ? size : int(0...(size + 100_000))
            let data = rng.bytes(dataSize())
            text = "pwrite \(path) at \(offset) \(data.count) bytes (size \(size))"
            body = { root in
                let fd = open(root + "/" + path, O_WRONLY | O_CLOEXEC)
                guard fd >= 0 else { return ["open " + errnoName(errno)] }
                defer { close(fd) }
                return [ModelRun.writeAll(fd, data, at: offset)]
            }
        case 30..<37:
            kind = "truncate"
            let path = aFile(&rng)
            let size = nativeSize(path)
            let newSize = chance(0.1) ? int(0...2_000_000) : int(0...(size * 2 + 10_000))
            text = "truncate \(path) to \(newSize) (from \(size))"
            body = { root in [errnoName(truncate(root + "/" + path, off_t(newSize)) == 0 ? 0 : errno)] }
        case 37..<47:
            kind = "rename"
            let from = existing(&rng)
            let to = chance(0.4) ? existing(&rng) : newPath(&rng)
            text = "rename \(from) → \(to)"
            body = { root in [errnoName(rename(root + "/" + from, root + "/" + to) == 0 ? 0 : errno)] }
        case 47..<54:
            kind = "unlink"
            let path = existing(&rng)
            text = "unlink \(path)"
            body = { root in [errnoName(unlink(root + "/" + path) == 0 ? 0 : errno)] }
        case 54..<58:
            kind = "rmdir"
            let path = chance(0.7) && dirs.count > 1 ? dirs[int(1...(dirs.count - 1))] : existing(&rng)
            text = "rmdir \(path)"
            body = { root in [errnoName(rmdir(root + "/" + path) == 0 ? 0 : errno)] }
        case 58..<66:
            kind = "mkdir"
            let path = newPath(&rng)
            let mode = pick([0o755, 0o700, 0o775] as [mode_t])
            text = "mkdir \(path) \(String(mode, radix: 8))"
            body = { root in [errnoName(mkdir(root + "/" + path, mode) == 0 ? 0 : errno)] }
        case 66..<72:
            kind = "link"
            let from = existing(&rng)
            let to = newPath(&rng)
            text = "link \(from) → \(to)"
            body = { root in [errnoName(link(root + "/" + from, root + "/" + to) == 0 ? 0 : errno)] }
        case 72..<77:
            kind = "symlink"
            let target = chance(0.7) ? existing(&rng) : pick(["../a", "/etc/hostname", "nowhere", "a/b/../c"])
            let path = newPath(&rng)
            text = "symlink \(path) → \(target)"
            body = { root in [errnoName(symlink(target, root + "/" + path) == 0 ? 0 : errno)] }
        case 77..<82:
            kind = "chmod"
            let path = existing(&rng)
            let mode = pick([0o644, 0o600, 0o755, 0o700, 0o444, 0o4755, 0o1777, 0o000] as [mode_t])
            text = "chmod \(String(mode, radix: 8)) \(path)"
            body = { root in [errnoName(chmod(root + "/" + path, mode) == 0 ? 0 : errno)] }
        case 82..<88:
            kind = "read"
            let path = aFile(&rng)
            text = "read \(path)"
            body = { root in [ModelRun.readAll(root + "/" + path)] }
        case 88..<93:
            kind = "xattr"
            let path = chance(0.8) ? existing(&rng) : dirs[int(0...(dirs.count - 1))]
            let name = pick(["user.a", "user.b", "user.long-name-" + String(repeating: "n", count: 30)])
            if chance(0.3) {
                text = "removexattr \(path.isEmpty ? "." : path) \(name)"
                body = { root in [errnoName(Xattr.lremovexattr(root + "/" + path, name) == 0 ? 0 : errno)] }
            } else {
                let value = chance(0.2) ? [] : rng.bytes(int(1...300))
                let flags = pick([0, 0, 1, 2] as [Int32])  // XATTR_CREATE 1, XATTR_REPLACE 2
                text = "setxattr \(path.isEmpty ? "." : path) \(name) \(value.count) bytes flags \(flags)"
                body = { root in
                    let r = value.withUnsafeBytes { Xattr.lsetxattr(root + "/" + path, name, $0.baseAddress, value.count, flags) }
                    return [errnoName(r == 0 ? 0 : errno)]
                }
            }
        case 93..<97:
            kind = "rename2"
            let from = existing(&rng)
            let to = chance(0.6) ? existing(&rng) : newPath(&rng)
            let flags: UInt32 = chance(0.5) ? 1 : 2  // RENAME_NOREPLACE, RENAME_EXCHANGE
            text = "renameat2 \(from) → \(to) \(flags == 1 ? "NOREPLACE" : "EXCHANGE")"
            body = { root in
                [errnoName(Xattr.renameat2(AT_FDCWD, root + "/" + from, AT_FDCWD, root + "/" + to, flags) == 0 ? 0 : errno)]
            }
        default:
            return heldStep(aFile(&rng))
        }
        counts[kind, default: 0] += 1
        history.append(text)
        let results = roots.map { body($0) }
        if results[0].contains(where: { $0 != "OK" && $0 != "open OK" && !$0.hasPrefix("read ") }) {
            failures[kind, default: 0] += 1
        }
        return ModelStep(description: text, native: results[0], mount: results[1])
    }

    /// Operations on files held open: open, write, read, fstat, ftruncate, close.
    mutating func heldStep(_ path: String) -> ModelStep {
        var text: String
        var results: [[String]]
        if held.isEmpty || (held.count < 4 && chance(0.3)) {
            text = "hold open \(path) O_RDWR"
            let opened = roots.map { root -> (Int32, String) in
                let fd = open(root + "/" + path, O_RDWR | O_CLOEXEC)
                return (fd, fd >= 0 ? "OK" : errnoName(errno))
            }
            let fds = opened.map(\.0)
            results = opened.map { [$0.1] }
            if fds[0] >= 0 && fds[1] >= 0 {
                held.append((fds, path))
            } else {
                for fd in fds where fd >= 0 { close(fd) }
            }
        } else {
            let index = int(0...(held.count - 1))
            let h = held[index]
            switch int(0...9) {
            case 0...3:
                var st = stat()
                _ = fstat(h.fds[0], &st)
                let offset = int(0...(Int(st.st_size) + 50_000))
                let data = rng.bytes(dataSize())
                text = "held \(h.path): pwrite at \(offset) \(data.count) bytes"
                results = h.fds.map { [ModelRun.writeAll($0, data, at: offset)] }
            case 4...6:
                text = "held \(h.path): fstat and read all"
                results = h.fds.map { fd in
                    var st = stat()
                    guard fstat(fd, &st) == 0 else { return ["fstat " + errnoName(errno)] }
                    return ["size \(st.st_size) nlink \(st.st_nlink) mode \(String(st.st_mode, radix: 8))", ModelRun.readAll(fd: fd)]
                }
            case 7 where chance(0.3):
                text = "held \(h.path): fsync"
                results = h.fds.map { [errnoName(fsync($0) == 0 ? 0 : errno)] }
            case 7:
                var st = stat()
                _ = fstat(h.fds[0], &st)
                let size = int(0...(Int(st.st_size) * 2 + 1000))
                text = "held \(h.path): ftruncate to \(size)"
                results = h.fds.map { [errnoName(ftruncate($0, off_t(size)) == 0 ? 0 : errno)] }
            default:
                text = "held \(h.path): close"
                results = h.fds.map { [errnoName(close($0) == 0 ? 0 : errno)] }
                held.remove(at: index)
            }
        }
        counts["held", default: 0] += 1
        history.append(text)
        return ModelStep(description: text, native: results[0], mount: results[1])
    }

    mutating func closeAll() {
        for h in held { for fd in h.fds { close(fd) } }
        held = []
    }

    func statistics() -> String {
        counts.keys.sorted().map { "\($0) \(counts[$0]!) (\(failures[$0] ?? 0) failed natively)" }.joined(separator: ", ")
    }

    static func writeAll(_ fd: Int32, _ data: [UInt8], at offset: Int?) -> String {
        var done = 0
        while done < data.count {
            let n = data.withUnsafeBytes { buf -> Int in
                if let offset { return pwrite(fd, buf.baseAddress! + done, buf.count - done, off_t(offset + done)) }
                return write(fd, buf.baseAddress! + done, buf.count - done)
            }
            if n < 0 { return "write " + errnoName(errno) }
            if n == 0 { return "write returned 0" }
            done += n
        }
        return "OK"
    }

    static func readAll(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "open " + errnoName(errno) }
        defer { close(fd) }
        return readAll(fd: fd)
    }

    /// Reads from offset 0 to the end with pread; returns the length and SHA-256.
    static func readAll(fd: Int32) -> String {
        let sha = SHA256Stream()
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        var offset = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            if n < 0 { return "read " + errnoName(errno) + " at \(offset)" }
            if n == 0 { break }
            buffer.withUnsafeBytes { sha.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += n
        }
        return "read \(offset) bytes sha \(sha.finish().hex.prefix(16))"
    }
}
