// swift-tools-version:6.0
import PackageDescription

// Layers import downwards only (see docs/design.md):
// cdsfs → FuseMount, StoreServer → CondensationFS → Condensation → CCrypto; FuseMount → CFuse.
// The modules on the data path are optimised in debug builds too: unoptimised Swift moved data
// through a mount at about 4 MB/s, which made the mount and sync tests slow for no insight.
// (They keep -enable-testing, so @testable imports still work.)
let hotPath: [SwiftSetting] = [.unsafeFlags(["-O"])]

let package = Package(
    name: "cdsfs",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cdsfs", targets: ["cdsfs"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    ],
    targets: [
        .target(name: "CCrypto", linkerSettings: [.linkedLibrary("crypto")]),
        .target(name: "CLinux"),
        .target(name: "CFuse", linkerSettings: [.linkedLibrary("fuse3")]),
        .target(name: "Condensation", dependencies: ["CCrypto", "CLinux"], swiftSettings: hotPath),
        .target(name: "CondensationFS", dependencies: ["Condensation"], swiftSettings: hotPath),
        .target(name: "FuseMount", dependencies: ["CFuse", "Condensation", "CondensationFS"], swiftSettings: hotPath),
        .target(name: "StoreServer", dependencies: [
            "Condensation",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .executableTarget(name: "cdsfs", dependencies: [
            "CLinux", "Condensation", "CondensationFS", "FuseMount", "StoreServer",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "cdsfs-bench", dependencies: ["Condensation"]),
        .executableTarget(name: "cdsfs-load", dependencies: ["Condensation"]),
        .testTarget(name: "CondensationTests", dependencies: ["Condensation"]),
        .testTarget(name: "CondensationFSTests", dependencies: ["CondensationFS"]),
        // What the tests that drive the real binary share: processes, mounts, a server, devices, shells,
        // tree comparison, and the MountTestCase and SyncTestCase bases (Tests/TestSupport).
        .target(name: "TestSupport", dependencies: ["Condensation"], path: "Tests/TestSupport"),
        .testTarget(name: "MountTests", dependencies: ["Condensation", "TestSupport"]),
        .testTarget(name: "ServerTests", dependencies: ["Condensation", "StoreServer", "TestSupport"]),
        .testTarget(name: "SyncTests", dependencies: ["Condensation", "TestSupport"]),
        .testTarget(name: "KeyTests", dependencies: ["Condensation", "TestSupport"]),
        .testTarget(name: "NetworkFaultTests", dependencies: ["Condensation", "TestSupport"]),
        .testTarget(name: "ReliabilityTests", dependencies: ["Condensation", "TestSupport"]),
        // Contacts and sharing between users, through the binary and a real `cdsfs serve`.
        .testTarget(name: "SharingTests", dependencies: ["Condensation", "TestSupport"]),
        // Needs the one-node Ceph cluster of scripts/ceph.sh (started by the tests if it is not up).
        .testTarget(name: "S3Tests", dependencies: ["Condensation", "TestSupport"]),
    ]
)
