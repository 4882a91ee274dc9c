/// How a volume is mounted.
public struct MountOptions: Sendable {
    /// Mount read-only (`ro`): the kernel refuses every change before it reaches the volume. A volume that
    /// is read-only itself (a past version) is always mounted `ro`.
    public var readOnly: Bool = false
    /// Let other users than the one who mounted see the folder (`allow_other`; needs root or
    /// `user_allow_other` in /etc/fuse.conf).
    public var allowOther: Bool = false
    /// The source column of the mount table (`mount`, `df`, /proc/self/mountinfo).
    public var fsname: String = "cdsfs"
    /// The type shows as `fuse.<subtype>`.
    public var subtype: String = "cdsfs"
    /// Most FUSE worker threads serving requests at once.
    public var maxThreads: Int = 10
    /// libfuse's debug output (every request) on standard error.
    public var debug: Bool = false
    /// Kernel mount flags passed through as they are: nosuid, nodev, noexec, noatime, sync, dirsync and
    /// their opposites. See `MountOptions.kernelFlags`.
    public var kernelFlags: [String] = []
    /// Read-ahead of the mount's backing device info after mounting (KiB); 0 leaves the kernel's value.
    public var readAheadKiB: Int = 1024
    /// Receives one line per notable event (mounted, signal, commit failure, unmounted) and libfuse's
    /// own messages. Called from any thread.
    public var log: (@Sendable (String) -> Void)? = nil

    /// The kernel flags that libfuse hands to mount(2); any other `-o` option would fail there.
    public static let kernelFlags: Set<String> = [
        "rw", "ro", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "async", "sync", "atime", "noatime",
        "dirsync",
    ]

    public init() {}
}

/// Kernel cache lifetimes, in one place. Nothing changes the tree behind the kernel's back in a mount
/// of this volume (every change comes through this mount), so entries and attributes can be cached
/// long. When remote changes arrive (the syncer), they must be announced to the kernel with
/// fuse_lowlevel_notify_inval_entry/_inode, not waited out.
enum KernelCache {
    /// Seconds the kernel keeps a name → inode binding.
    static let entryTimeout: Double = 60
    /// Seconds the kernel keeps an inode's attributes.
    static let attributeTimeout: Double = 60
    /// Seconds the kernel remembers that a name does not exist (a lookup answered with inode 0).
    static let negativeTimeout: Double = 60
    /// Inode numbers are handed out per mount and never reused within one, so one generation serves.
    static let generation: UInt64 = 1
    /// st_blksize: the I/O size that `cp`, stdio and friends use for this filesystem.
    static let preferredIOSize: Int = 128 * 1024
    /// Largest write request (the kernel splits larger writes).
    static let maxWrite: UInt32 = 1024 * 1024
}
