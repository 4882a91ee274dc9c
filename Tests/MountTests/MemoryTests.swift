import Foundation
import Glibc
import TestSupport
import XCTest

/// Writing a file much larger than the write buffer keeps the daemon's memory bounded: unsaved data
/// spills to the store, it is not held in memory.
///
/// CDSFS_BIG_GIB sets the size in GiB (default 1; the issue's figure is 4). CDSFS_BIG_SOURCE=repeat writes a
/// 16 MiB random block over and over instead of fresh random data (which the chunker deduplicates).
final class MemoryTests: MountTestCase {
    static let limit: UInt64 = 300 * 1000 * 1000

    func testLargeFileWriteKeepsDaemonMemoryBounded() throws {
        let env = ProcessInfo.processInfo.environment
        let gib = env["CDSFS_BIG_GIB"].flatMap { Int($0) } ?? 1
        let repeating = env["CDSFS_BIG_SOURCE"] == "repeat"
        try initHome()
        try mount()
        guard let pid = daemonPID() else { throw StopTest("cannot find the mount daemon's pid") }
        let idle = Mounts.residentBytes(pid) ?? 0

        let target = mnt + "/big.bin"
        let writer: String
        if repeating {
            sh("head -c 16777216 /dev/urandom > '\(root)/block'")
            writer = """
            for i in $(seq 1 \(64 * gib)); do cat '\(root)/block'; done | tee >(sha256sum > '\(root)/sum') | dd of='\(target)' bs=1M iflag=fullblock status=none
            """
        } else {
            writer = """
            head -c \(gib)G /dev/urandom | tee >(sha256sum > '\(root)/sum') | dd of='\(target)' bs=1M iflag=fullblock status=none
            """
        }
        let start = Date()
        let (write, writePeak) = runSampling(["-c", "set -euo pipefail\n" + writer], pid: pid, timeout: 1800)
        let writeSeconds = Date().timeIntervalSince(start)
        XCTAssert(write.succeeded, "\(write)")
        // The final commit at unmount is part of the job too.
        let unmountStart = Date()
        let (unmountResult, unmountPeak) = runSampling(["-c", "'\(Paths.cdsfs)' unmount '\(mnt)'"], pid: pid, timeout: 1800)
        let unmountSeconds = Date().timeIntervalSince(unmountStart)
        XCTAssert(unmountResult.succeeded, "\(unmountResult)")
        let peak = max(writePeak, unmountPeak)
        let mb = { (b: UInt64) in String(format: "%.1f MB", Double(b) / 1e6) }
        let rate = Double(gib) * 1073.741824 / max(writeSeconds, 0.001)
        print("memory test: \(gib) GiB\(repeating ? " (repeated 16 MiB block)" : " (random)") written in \(String(format: "%.1f", writeSeconds)) s (\(String(format: "%.0f", rate)) MB/s), unmount \(String(format: "%.1f", unmountSeconds)) s; daemon VmRSS idle \(mb(idle)), peak while writing \(mb(writePeak)), during unmount \(mb(unmountPeak))")
        XCTAssertLessThan(peak, MemoryTests.limit, "the daemon's peak VmRSS was \(mb(peak))")

        // The data is all there.
        try mount()
        var st = stat()
        XCTAssertEqual(stat(target, &st), 0)
        XCTAssertEqual(UInt64(st.st_size), UInt64(gib) << 30)
        if env["CDSFS_BIG_VERIFY"] != "0" {
            let readStart = Date()
            let sum = sh("sha256sum < '\(target)'", timeout: 1800)
            print("memory test: read back and hashed in \(String(format: "%.1f", Date().timeIntervalSince(readStart))) s")
            // tee's process substitution may finish after the pipeline; it has had ample time, but wait.
            var expected = Files.readText(root + "/sum") ?? ""
            for _ in 0..<100 where expected.isEmpty {
                usleep(100_000)
                expected = Files.readText(root + "/sum") ?? ""
            }
            XCTAssertEqual(sum, expected, "the big file reads back different bytes")
        }
    }

    /// Runs bash with `arguments` while sampling VmRSS of `pid` every 20 ms; returns the peak.
    func runSampling(_ arguments: [String], pid: pid_t, timeout: Double) -> (ProcessResult, UInt64) {
        let errPath = root + "/sampling-output"
        let fd = open(errPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(fd) }
        let start = Date()
        var peak: UInt64 = 0
        let command = "bash " + arguments.joined(separator: " ")
        let child: ChildProcess
        do { child = try ChildProcess(Paths.bash, arguments, stdout: fd, stderr: fd) } catch {
            return (ProcessResult(command: command, status: -1, stdout: "", stderr: "\(error)"), 0)
        }
        var timedOut = false
        while !child.hasExited {
            if let rss = Mounts.residentBytes(pid) { peak = max(peak, rss) }
            if Date().timeIntervalSince(start) > timeout {
                child.killGroup()
                timedOut = true
                break
            }
            usleep(20_000)
        }
        let result = ProcessResult(command: command, status: child.status ?? -1, stdout: "",
                                   stderr: Files.readText(errPath) ?? "", timedOut: timedOut,
                                   seconds: Date().timeIntervalSince(start))
        return (result, peak)
    }
}
