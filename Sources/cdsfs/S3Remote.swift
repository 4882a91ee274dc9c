import Condensation
import Glibc

/// An S3 store from its URL and the standard credentials, or the command ends with one line.
/// With `check`, one listing first tells a wrong endpoint, wrong keys or a missing bucket apart.
func openS3Store(_ url: String, check: Bool = true) -> S3Store {
    let store: S3Store
    do { store = try S3Store(url: url) } catch { fail(error.description) }
    if check {
        do { try store.check() } catch { fail("\(store.location.url): \(s3Problem(error))") }
    }
    return store
}

/// A store error from S3 as the line a person reads: the refusal's own words, without the status.
func s3Problem(_ error: StoreError) -> String {
    switch error {
    case .refused(_, let what): return what
    case .unreachable(let what): return "cannot reach the S3 endpoint (\(what)); check endpoint= in the URL"
    default: return error.description
    }
}

/// One `cdsfs: warning: …` line on standard error; the command goes on.
func warn(_ message: String) {
    let line = "cdsfs: warning: " + message + "\n"
    _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
}
