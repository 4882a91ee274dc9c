import Condensation
@testable import CondensationFS
import Glibc
import Synchronization
import XCTest

/// A commit encodes under the volume's lock but writes and syncs outside it.
final class CommitTests: XCTestCase {
    /// The store's `syncfs` has to write out unrelated dirty data first (as on a busy disk); a
    /// create made while the commit waits for it returns before the commit does.
    func testOperationsGoOnWhileACommitIsMadeDurable() throws {
        let home = try temporaryHome(self)
        let v = try home.openVolume(options: VolumeOptions())
        try v.writeFile(1, "a", [UInt8](repeating: 1, count: 100_000))
        // 256 MiB of dirty page cache on the store's filesystem, left for the commit's syncfs.
        let ballast = home.path + "/ballast"
        let fd = open(ballast, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let block = [UInt8](repeating: 7, count: 1 << 20)
        for _ in 0..<256 { _ = block.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
        close(fd)

        let committed = Atomic<Bool>(false)
        let thread = Thread {
            try? v.commit()
            committed.store(true, ordering: .sequentiallyConsistent)
        }
        thread.start()
        // Wait until the commit has encoded (it clears the time of the first unsaved change).
        while v.lock.withLock({ v.firstUnsavedChange != nil }) { usleep(100) }
        _ = try v.create(1, "during", mode: 0o644, flags: O_WRONLY, uid: 0, gid: 0)
        XCTAssertFalse(committed.load(ordering: .sequentiallyConsistent), "the create waited for the commit")
        while !committed.load(ordering: .sequentiallyConsistent) { usleep(1000) }
        XCTAssertNotNil(try? v.lookup(1, "during"))
        try v.commit()
        try v.close()
        let v2 = try home.openVolume(options: VolumeOptions())
        XCTAssertEqual(Set(try v2.names(1)), ["a", "during"])
    }
}
