import Glibc

/// Why a folder cannot be mounted; each description is one line a person can act on.
public enum MountError: Error, Equatable, CustomStringConvertible, Sendable {
    /// /dev/fuse is missing or cannot be opened.
    case noFuseDevice(String)
    case mountpointMissing(String)
    case notADirectory(String)
    /// Something is already mounted there.
    case alreadyMounted(String, type: String)
    /// A FUSE mount whose process died: every access fails with ENOTCONN.
    case deadMount(String)
    /// fuse_session_new refused the options (the text is libfuse's message).
    case session(String)
    /// mount(2) or fusermount3 failed (the text is libfuse's message).
    case mountFailed(String, String)
    /// The request loop ended with an error.
    case loop(String)
    /// The final commit at unmount failed.
    case close(String)

    public var description: String {
        switch self {
        case .noFuseDevice(let why):
            return "cannot use /dev/fuse (\(why)): is the fuse kernel module loaded (modprobe fuse)?"
        case .mountpointMissing(let p):
            return "mount point \(p) does not exist: create it with mkdir"
        case .notADirectory(let p):
            return "mount point \(p) is not a directory"
        case .alreadyMounted(let p, let type):
            return "\(p) is already a mount point (\(type)): unmount it first"
        case .deadMount(let p):
            return "\(p) is a dead FUSE mount (its process has ended): run `fusermount3 -u \(p)` first"
        case .session(let why):
            return "cannot start the FUSE session: \(why)"
        case .mountFailed(let p, let why):
            return "cannot mount \(p): \(why)"
        case .loop(let why):
            return "the FUSE request loop failed: \(why)"
        case .close(let why):
            return "the final commit failed (\(why)): the changes since the last commit are lost "
                + "(`cdsfs unmount` refuses to unmount while they cannot be committed)"
        }
    }
}

func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }
