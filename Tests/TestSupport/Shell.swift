import Foundation
import Glibc

/// A long-lived `bash` whose working directory is inside a mount, fed commands on standard input: it
/// sees the mount the way a terminal left open in it does (its cwd inode and the kernel's caches stay
/// warm), so a change from another device has to reach it through the kernel's invalidation.
public final class Shell {
    public let cwd: String
    private let process: ChildProcess
    private let input: Int32
    private let output: Int32
    private var buffer: [UInt8] = []
    private var counter = 0

    public init(cwd: String) throws {
        self.cwd = cwd
        var toShell: [Int32] = [0, 0], fromShell: [Int32] = [0, 0]
        guard pipe(&toShell) == 0, pipe(&fromShell) == 0 else { throw StopTest("pipe: errno \(errno)") }
        for fd in toShell + fromShell { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        do {
            process = try ChildProcess(Paths.bash, ["--noprofile", "--norc"], cwd: cwd, stdin: toShell[0],
                                       stdout: fromShell[1], stderr: fromShell[1])
        } catch {
            for fd in toShell + fromShell { Glibc.close(fd) }
            throw error
        }
        Glibc.close(toShell[0])
        Glibc.close(fromShell[1])
        input = toShell[1]
        output = fromShell[0]
        // Proof that it started where it should.
        let pwd = try run("pwd").output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard pwd == cwd else { throw StopTest("the shell started in \(pwd), not \(cwd)") }
    }

    /// Runs one command line (stdout and stderr together); its output and exit status. Throws after
    /// `timeout` seconds (a command stuck in the mount), killing the shell.
    @discardableResult
    public func run(_ command: String, timeout: Double = 30) throws -> (output: String, status: Int32) {
        counter += 1
        let marker = "__CDSFS_SHELL_END_\(counter)__"
        let text = "{ \(command)\n} 2>&1; printf '\\n\(marker) %d\\n' $?\n"
        let sent = text.withCString { Glibc.write(input, $0, strlen($0)) }
        guard sent == text.utf8.count else { throw StopTest("cannot write to the shell in \(cwd) (it ended?)") }
        let deadline = now() + timeout
        let needle = Array("\n\(marker) ".utf8)
        while true {
            if let r = find(needle, in: buffer), let end = buffer[(r + needle.count)...].firstIndex(of: 10) {
                let out = String(decoding: buffer[..<r], as: UTF8.self)
                let status = Int32(String(decoding: buffer[(r + needle.count)..<end], as: UTF8.self)) ?? -1
                buffer.removeSubrange(...end)
                return (out, status)
            }
            let left = deadline - now()
            if left <= 0 {
                close()
                throw StopTest("`\(command)` in the shell in \(cwd) did not finish within \(Int(timeout)) s")
            }
            var p = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, Int32(min(left, 1) * 1000))
            if n < 0 && errno != EINTR { throw StopTest("poll: errno \(errno)") }
            if n <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let got = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if got <= 0 { throw StopTest("the shell in \(cwd) ended; output so far: \(String(decoding: buffer, as: UTF8.self))") }
            buffer += chunk[..<got]
        }
    }

    /// Output of a command that must succeed.
    public func output(_ command: String, timeout: Double = 30) throws -> String {
        let r = try run(command, timeout: timeout)
        guard r.status == 0 else { throw StopTest("`\(command)` in \(cwd) exited \(r.status): \(r.output)") }
        return r.output
    }

    private func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        var i = 0
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }

    private var closed = false

    /// Ends the shell (its cwd no longer holds the mount busy).
    public func close() {
        guard !closed else { return }
        closed = true
        _ = "exit\n".withCString { Glibc.write(input, $0, strlen($0)) }
        Glibc.close(input)
        if !process.wait(timeout: 5) { process.killGroup() }
        Glibc.close(output)
    }
}
