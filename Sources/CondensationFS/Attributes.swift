/// An inode number handed to the kernel. 1 is the root (FUSE_ROOT_ID). Numbers are per mount: a
/// content hash is not an identity (two equal files share content but are different files).
public typealias Inode = UInt64

/// Seconds and nanoseconds since the epoch, as `struct timespec`.
public struct Timestamp: Hashable, Sendable, Comparable {
    public var seconds: Int64
    public var nanoseconds: Int64

    public init(seconds: Int64, nanoseconds: Int64 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public init(totalNanoseconds ns: Int64) {
        seconds = ns >= 0 ? ns / 1_000_000_000 : (ns - 999_999_999) / 1_000_000_000
        nanoseconds = ns - seconds * 1_000_000_000
    }

    public var totalNanoseconds: Int64 { seconds &* 1_000_000_000 &+ nanoseconds }

    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(seconds: Int64(ts.tv_sec), nanoseconds: Int64(ts.tv_nsec))
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.totalNanoseconds < b.totalNanoseconds }
}

/// What `stat` shows of a node.
public struct Attributes: Equatable, Sendable {
    public var ino: Inode
    /// Type and permission bits (S_IFREG | 0644, …).
    public var mode: UInt32
    public var nlink: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var rdev: UInt64
    public var atime: Timestamp
    public var mtime: Timestamp
    public var ctime: Timestamp

    /// 512-byte blocks, as du counts them.
    public var blocks: UInt64 { (size + 511) / 512 }
}

/// A requested change of attributes (setattr); nil fields stay as they are.
public struct AttributeChanges: Sendable {
    public enum Time: Sendable {
        case now
        case set(Timestamp)
    }

    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: UInt64?
    public var atime: Time?
    public var mtime: Time?
    public var ctime: Timestamp?

    public init(mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
                atime: Time? = nil, mtime: Time? = nil, ctime: Timestamp? = nil) {
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.atime = atime
        self.mtime = mtime
        self.ctime = ctime
    }
}

/// One name in a directory listing.
public struct DirectoryListingEntry: Sendable {
    public var name: String
    public var ino: Inode
    /// Type bits only are needed for readdir; readdirplus gets `attributes`.
    public var mode: UInt32
    public var attributes: Attributes?
}

/// What `statfs` reports.
public struct FilesystemStatistics: Sendable {
    public var blockSize: UInt64
    public var blocks: UInt64
    public var freeBlocks: UInt64
    public var availableBlocks: UInt64
    public var files: UInt64
    public var freeFiles: UInt64
    public var nameMaximum: UInt64
}

import Glibc
