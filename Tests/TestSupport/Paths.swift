import Foundation

/// Where the programs the tests drive are.
public enum Paths {
    /// The cdsfs binary: $CDSFS_BIN, else `cdsfs` next to the test bundle (the package's build directory).
    public static let cdsfs: String = {
        if let p = ProcessInfo.processInfo.environment["CDSFS_BIN"], !p.isEmpty { return p }
        var exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        // Linux: <builddir>/cdsfsPackageTests.xctest is the executable. macOS: …/X.xctest/Contents/MacOS/X.
        while exe.contains(".xctest") { exe = (exe as NSString).deletingLastPathComponent }
        if exe.hasSuffix("/debug") || exe.hasSuffix("/release") || FileManager.default.fileExists(atPath: exe + "/cdsfs") {
            return exe + "/cdsfs"
        }
        return (exe as NSString).deletingLastPathComponent + "/cdsfs"
    }()

    public static let bash = "/bin/bash"
    public static let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
}
