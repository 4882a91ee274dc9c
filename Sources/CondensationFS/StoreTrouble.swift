import Condensation
import Glibc
import Synchronization

/// The local store's disk full or read-only, said once in the mount log when it starts and once when
/// it ends. Every write that needs the store fails meanwhile (the kernel's write-back of each page,
/// each spill of buffered data, each commit), often many times a second: without this, the log would
/// either say nothing (the kernel retries nothing and commits are not even tried) or say it thousands
/// of times.
enum StoreTrouble {
    /// The errno being reported (ENOSPC or EROFS), 0 when the store took the last write.
    private static let current = Atomic<Int32>(0)

    /// A store write failed with a full or read-only disk: the first time (since the store last took
    /// a commit), one line saying what it means and what to do. Returns the errno the caller answers.
    static func report(_ error: StoreError) -> FSError {
        let code: FSError
        let what: String
        switch error {
        case .noSpace(let path):
            code = .noSpace
            what = "no space left on the store's disk (\(storeFolder(path))); free space there"
        case .readOnly(let path):
            code = .readOnly
            what = "the store's disk is read-only (\(storeFolder(path))); make it writable"
        default:
            return .io
        }
        if current.exchange(code.code, ordering: .relaxed) != code.code {
            Log.error("cannot write to the store: \(what). Changes not yet committed stay in this mount's memory; "
                      + "writes and fsync answer \(code.code == ENOSPC ? "ENOSPC" : "EROFS") until the store takes them, "
                      + "and `cdsfs unmount` refuses until they are committed")
        }
        return code
    }

    /// The store took a commit: if a full or read-only disk was reported, say that it is over.
    static func cleared(_ version: Hash) {
        guard current.exchange(0, ordering: .relaxed) != 0 else { return }
        Log.info("the store takes writes again: the changes kept in memory are committed (version \(version.shortHex))")
    }

    /// Whether `error` is a full or read-only store (already reported by `report`).
    static func isUnwritable(_ error: any Error) -> Bool {
        guard let e = error as? FSError else { return false }
        return e == .noSpace || e == .readOnly
    }

    /// The store folder of a path inside it ("…/store/objects/ab/cd…" → "…/store"): the line names
    /// the store, not the file that failed.
    static func storeFolder(_ path: String) -> String {
        for marker in ["/objects/", "/accounts/"] {
            if let r = path.firstRange(of: marker) { return String(path[..<r.lowerBound]) }
        }
        return path
    }
}
