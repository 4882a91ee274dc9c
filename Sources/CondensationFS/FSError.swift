import Glibc

/// A failed filesystem operation, as the errno the kernel will see. The filesystem model speaks
/// errno directly: every operation ends at a FUSE reply, and a richer type would only be mapped back.
public struct FSError: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: Int32

    public init(_ code: Int32) { self.code = code }

    public static let notFound = FSError(ENOENT)
    public static let exists = FSError(EEXIST)
    public static let notDirectory = FSError(ENOTDIR)
    public static let isDirectory = FSError(EISDIR)
    public static let notEmpty = FSError(ENOTEMPTY)
    public static let readOnly = FSError(EROFS)
    public static let io = FSError(EIO)
    public static let noSpace = FSError(ENOSPC)
    public static let invalid = FSError(EINVAL)
    public static let nameTooLong = FSError(ENAMETOOLONG)
    public static let noAttribute = FSError(ENODATA)
    public static let range = FSError(ERANGE)
    public static let notSupported = FSError(EOPNOTSUPP)
    public static let notPermitted = FSError(EPERM)
    public static let badHandle = FSError(EBADF)
    public static let tooBig = FSError(EFBIG)
    public static let tooManyLinks = FSError(EMLINK)

    public var description: String { String(cString: strerror(code)) }
}
