import CFuse
import CondensationFS
import Glibc
import Synchronization

/// What every request handler needs: the volume and the session's settings. One per session, handed to
/// libfuse as `userdata` (retained) and read back with `fuse_req_userdata`.
final class FuseContext: Sendable {
    let volume: any VolumeOperations
    let readOnly: Bool
    let log: (@Sendable (String) -> Void)?
    /// Whether the kernel accepted the writeback cache (set once in `init`, before any other request).
    let writeback = Atomic<Bool>(false)
    private let closed = Atomic<Bool>(false)

    init(volume: any VolumeOperations, readOnly: Bool, log: (@Sendable (String) -> Void)?) {
        self.volume = volume
        self.readOnly = readOnly
        self.log = log
    }

    func note(_ line: String) {
        if let log { log(line) } else { writeStandardError(line) }
    }

    /// Closes the volume (its final commit) the first time only: the loop's end, the `destroy` request
    /// and fuse_session_destroy may each ask. Returns the error of the call that did close.
    @discardableResult
    func closeVolume(_ why: String) -> FSError? {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return nil }
        note("closing the volume (\(why))")
        do {
            try volume.close()
            note("volume closed")
            return nil
        } catch {
            note("closing the volume failed: \(error) (errno \(error.code))")
            return error
        }
    }

    var isClosed: Bool { closed.load(ordering: .acquiring) }
}

@inline(__always)
func context(_ req: fuse_req_t?) -> FuseContext {
    Unmanaged<FuseContext>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
}

func writeStandardError(_ line: String) {
    var text = line
    if !text.hasSuffix("\n") { text += "\n" }
    text.withCString { pointer in
        var rest = strlen(pointer)
        var at = UnsafeRawPointer(pointer)
        while rest > 0 {
            let n = write(2, at, rest)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            rest -= n
            at += n
        }
    }
}
