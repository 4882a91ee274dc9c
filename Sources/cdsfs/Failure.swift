import Condensation
import Glibc

/// Ends the command with one line on standard error that says what is wrong and how to fix it.
func fail(_ message: String, code: Int32 = 1) -> Never {
    let line = "cdsfs: " + message + "\n"
    _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
    exit(code)
}

/// Runs `body`; any error becomes one line and a non-zero exit.
func orFail<T>(_ context: String? = nil, _ body: () throws -> T) -> T {
    do { return try body() } catch {
        fail(context.map { "\($0): \(error)" } ?? "\(error)")
    }
}

/// An actor id given on the command line, or a one-line failure.
func actorID(_ text: String) -> Hash {
    guard let id = Hash(hex: text) else { fail("\(text) is not an actor id (64 hex digits)") }
    return id
}
