import Foundation
import Glibc

/// What a finished program did.
public struct ProcessResult: CustomStringConvertible {
    public var command: String
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var timedOut = false
    /// Seconds the process ran.
    public var seconds: Double = 0

    public init(command: String, status: Int32, stdout: String, stderr: String, timedOut: Bool = false, seconds: Double = 0) {
        self.command = command
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.timedOut = timedOut
        self.seconds = seconds
    }

    public var succeeded: Bool { status == 0 && !timedOut }
    public var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
    public var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }

    public var description: String {
        func clip(_ s: String) -> String { s.count > 6000 ? String(s.prefix(3000)) + "\n…\n" + String(s.suffix(3000)) : s }
        return "`\(command)` exited \(status)\(timedOut ? " (TIMED OUT)" : "") after \(String(format: "%.1f", seconds)) s\n"
            + "--- stdout:\n\(clip(stdout))--- stderr:\n\(clip(stderr))---"
    }
}

/// A new temporary file (close-on-exec): its descriptor and path.
func temporaryFile(_ prefix: String) -> (Int32, String) {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    precondition(fd >= 0, "mkstemp: \(errnoName(errno))")
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    return (fd, String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self))
}

/// Runs a program and captures its exit status, standard output and standard error. Output goes to
/// temporary files, not pipes, so a daemon that inherits them cannot make this wait. Standard input is
/// /dev/null. After `timeout` seconds the process group is killed and the result says so. See
/// `ChildProcess` for `environment` and `clearing`.
public func runProcess(_ executable: String, _ arguments: [String], cwd: String? = nil,
                       environment: [String: String] = [:], clearing: String? = nil,
                       timeout: Double = 180) -> ProcessResult {
    let (outFD, outPath) = temporaryFile("cdsfs-test-out")
    let (errFD, errPath) = temporaryFile("cdsfs-test-err")
    defer {
        close(outFD)
        close(errFD)
        unlink(outPath)
        unlink(errPath)
    }
    let command = ([executable] + arguments).map { $0.contains(" ") || $0.contains("\n") ? "'\($0)'" : $0 }
        .joined(separator: " ")
    let start = now()
    let child: ChildProcess
    do {
        child = try ChildProcess(executable, arguments, cwd: cwd, environment: environment, clearing: clearing,
                                 stdout: outFD, stderr: errFD)
    } catch {
        return ProcessResult(command: command, status: -1, stdout: "", stderr: "\(error)")
    }
    var timedOut = false
    if !child.wait(timeout: timeout) {
        timedOut = true
        child.killGroup()
    }
    let seconds = now() - start
    func contents(_ path: String) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }
    return ProcessResult(command: command, status: child.status ?? -1, stdout: contents(outPath),
                         stderr: contents(errPath), timedOut: timedOut, seconds: seconds)
}

/// Runs `script` with `bash -c` (under `set -euo pipefail`) in `cwd`.
public func bash(_ script: String, cwd: String? = nil, environment: [String: String] = [:],
                 timeout: Double = 180) -> ProcessResult {
    var r = runProcess(Paths.bash, ["-c", "set -euo pipefail\n" + script], cwd: cwd, environment: environment,
                       timeout: timeout)
    r.command = "bash -c <<EOF\n\(script)\nEOF" + (cwd.map { " (in \($0))" } ?? "")
    return r
}

/// Runs a Python 3 program given as text; `arguments` become sys.argv[1...].
public func python(_ program: String, _ arguments: [String] = [], cwd: String? = nil, timeout: Double = 180) -> ProcessResult {
    let (fd, path) = temporaryFile("cdsfs-test-py")
    _ = program.withCString { write(fd, $0, strlen($0)) }
    close(fd)
    defer { unlink(path) }
    var r = runProcess(Paths.python, [path] + arguments, cwd: cwd, timeout: timeout)
    r.command = "python3 <<EOF\n\(program)\nEOF \(arguments.joined(separator: " "))" + (cwd.map { " (in \($0))" } ?? "")
    return r
}
