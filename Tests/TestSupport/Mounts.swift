import Foundation
import Glibc

/// Mounts and processes as /proc shows them.
public enum Mounts {
    /// Mount points in /proc/self/mountinfo with their filesystem type.
    public static func table() -> [(mountPoint: String, type: String)] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: false)
            guard let dash = f.firstIndex(of: "-"), f.count > 4, dash + 1 < f.count else { return nil }
            return (unescape(String(f[4])), String(f[dash + 1]))
        }
    }

    /// mountinfo's octal escapes (`\040` for a space).
    static func unescape(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == 92, i + 3 < b.count, let v = Int(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(UInt8(truncatingIfNeeded: v))
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func isMounted(_ path: String) -> Bool { table().contains { $0.mountPoint == path } }

    public static func type(_ path: String) -> String? { table().last { $0.mountPoint == path }?.type }

    /// Processes (other than this one) whose command line mentions `needle` as an argument, together
    /// with the word "mount".
    public static func processes(mentioning needle: String) -> [pid_t] {
        guard let items = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        let me = getpid()
        var found: [pid_t] = []
        for item in items {
            guard let pid = pid_t(item), pid != me else { continue }
            guard let data = FileManager.default.contents(atPath: "/proc/\(item)/cmdline"), !data.isEmpty else { continue }
            let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if args.contains(where: { $0 == needle || $0.hasSuffix("=" + needle) }) && args.contains("mount") {
                found.append(pid)
            }
        }
        return found
    }

    public static func isAlive(_ pid: pid_t) -> Bool {
        // A zombie counts as gone.
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
        return !status.contains("State:\tZ")
    }

    /// Waits up to `seconds` for a process to end.
    @discardableResult
    public static func waitForExit(_ pid: pid_t, seconds: Double) -> Bool {
        waitUntil(seconds, interval: 0.02) { !isAlive(pid) } != nil
    }

    /// VmRSS of a process in bytes, or nil when it is gone.
    public static func residentBytes(_ pid: pid_t) -> UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let digits = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first
            return digits.flatMap { UInt64($0) }.map { $0 * 1024 }
        }
        return nil
    }

    /// Unmounts `m` whatever way works (`cdsfs unmount`, fusermount3 -u, umount -l, fusermount3 -uz),
    /// then ends any daemon still serving it, waiting `daemonGrace` seconds before SIGKILL. Never fails:
    /// teardown calls it whatever state a test left.
    public static func forceUnmount(_ m: String, daemonGrace: Double = 10) {
        if isMounted(m) { _ = runProcess(Paths.cdsfs, ["unmount", m], timeout: 90) }
        if isMounted(m) { _ = runProcess("fusermount3", ["-u", m], timeout: 30) }
        if isMounted(m) { _ = runProcess("umount", ["-l", m], timeout: 30) }
        if isMounted(m) { _ = runProcess("fusermount3", ["-uz", m], timeout: 30) }
        for pid in processes(mentioning: m) where !waitForExit(pid, seconds: daemonGrace) {
            print("killing leftover mount daemon \(pid) for \(m)")
            kill(pid, SIGKILL)
            waitForExit(pid, seconds: 5)
        }
    }
}

extension Mounts {
    /// `cdsfs mount --home H [-o options] [extra…] M`; throws unless it returned 0 with M a FUSE mount.
    @discardableResult
    public static func mountFolder(home: String, at m: String, options: [String] = [], extra: [String] = []) throws -> ProcessResult {
        var args = ["mount", "--home", home]
        if !options.isEmpty { args += ["-o", options.joined(separator: ",")] }
        args += extra + [m]
        let r = runProcess(Paths.cdsfs, args, timeout: 120)
        guard r.succeeded else { throw StopTest("mount of \(home) at \(m) failed: \(r)") }
        guard let type = type(m), type.hasPrefix("fuse") else {
            throw StopTest("`cdsfs mount` returned 0 but \(m) is not a FUSE mount (\(type(m) ?? "not mounted")): \(r)")
        }
        return r
    }
}
