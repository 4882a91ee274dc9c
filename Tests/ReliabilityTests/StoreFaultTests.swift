import Condensation
import Foundation
import Glibc
import TestSupport
import XCTest

/// Faults in the local store under a live mount: a full disk, a read-only disk, a missing object,
/// objects with a flipped bit, and private box entries naming garbage. In each case the mount process
/// stays up, what does not depend on the fault keeps working, the application gets an errno (printed,
/// so the run shows which), fsck says what is wrong (naming the object) or that all is well when
/// nothing was damaged, and the log names the object.
final class StoreFaultTests: ReliabilityTestCase {
    // MARK: Disk full

    func testDiskFullFailsTheWriterKeepsServingAndResumesWhenSpaceReturns() throws {
        try initHome()
        let fs = try moveStoreToTmpfs(size: "24m")
        let check0 = fsck()
        XCTAssert(check0.succeeded, "the home does not work with its store moved to a tmpfs: \(check0)")
        try mount(options: ["commit_interval=3600"])
        guard let pid = daemonPID() else { throw StopTest("no daemon pid") }
        let versionsBefore = versions()
        var rng = SplitMix(seed: 7)

        let before = rng.bytes(1_000_000)
        let wroteBefore = IO.write(mnt + "/before.bin", before)
        XCTAssert(wroteBefore.succeeded, "before the disk is full: \(wroteBefore)")
        let committed = versions()

        // Fill it: 64 MiB through the mount, more than the tmpfs holds (and more than the 32 MiB the
        // mount buffers in memory, so data goes to the store while the file is written).
        let big = rng.bytes(64 << 20)
        let full = IO.write(mnt + "/big.bin", big)
        print("disk full, writing 64 MiB: \(full)")
        XCTAssertFalse(full.succeeded, "writing 64 MiB onto a 24 MiB store succeeded")
        XCTAssert([ENOSPC, EIO].contains(full.firstError), "the writer of a full disk got \(full)")
        // Without fsync, the error comes at close (the kernel's flush finds the failed writeback).
        let unsynced = IO.write(mnt + "/big2.bin", rng.bytes(8 << 20), fsync: false)
        print("disk full, 8 MiB without fsync: \(unsynced)")
        XCTAssert([ENOSPC, EIO].contains(unsynced.close), "close after writing onto a full disk: \(unsynced)")
        // A small file in a new directory while the disk is full: its fsync must fail too (the commit
        // holds big.bin's data, which does not fit).
        XCTAssertEqual(mkdir(mnt + "/a", 0o755), 0)
        let small = Array("written while the disk was full\n".utf8)
        let during = IO.write(mnt + "/a/during.txt", small)
        print("disk full, a small file: \(during)")
        XCTAssert([ENOSPC, EIO].contains(during.fsync), "fsync on a full disk: \(during)")

        // The mount keeps serving what it has.
        XCTAssert(Mounts.isAlive(pid), "the mount process died on a full disk")
        XCTAssertEqual(Files.read(mnt + "/before.bin"), before, "before.bin unreadable while the disk is full")
        XCTAssertEqual(Files.read(mnt + "/a/during.txt"), small)
        XCTAssertEqual(Set((try? FileManager.default.contentsOfDirectory(atPath: mnt)) ?? []), ["a", "before.bin", "big.bin", "big2.bin"])
        // No half commit: the store still checks out, and no version was added by the failed commits.
        let check1 = fsck()
        XCTAssert(check1.succeeded, "fsck with the disk full: \(check1)")
        XCTAssertEqual(versions(), committed, "a version appeared although every commit failed")
        XCTAssertEqual(committed.count, versionsBefore.count + 1)
        // The log says so once, however many writes and commits failed: what, and what it means.
        let reported = storeTroubleLines(mountLog())
        print("mount log while full:\n" + reported.joined(separator: "\n"))
        XCTAssertEqual(reported.count, 1, "one line for the full disk: \(reported)")
        XCTAssert(reported.first?.contains("no space left on the store's disk") == true, "\(reported)")
        XCTAssert(reported.first?.contains("stay in this mount's memory") == true, "\(reported)")

        // Unmounting now would lose the changes held in memory: refused in one line, still mounted.
        let refused = cdsfs(["unmount", mnt])
        print("cdsfs unmount with the disk full: \(refused)")
        XCTAssertEqual(refused.status, 1, "\(refused)")
        XCTAssertEqual(refused.stderrLines.count, 1, "\(refused)")
        XCTAssert(refused.stderr.contains("cannot unmount \(mnt): its changes cannot be committed, the store's disk is full"),
                  "\(refused)")
        XCTAssert(Mounts.isMounted(mnt), "unmounted although its changes could not be committed")
        XCTAssert(Mounts.isAlive(pid), "the mount process ended although its changes could not be committed")
        XCTAssertEqual(Files.read(mnt + "/a/during.txt"), small)
        XCTAssertEqual(versions(), committed)

        // Space returns: the pending changes commit, and new writes work.
        remountFilesystem(fs, "size=256m")
        XCTAssertEqual(errnoName(IO.fsync(mnt + "/a/during.txt")), "OK", "fsync after space returned")
        XCTAssert(mountLog().contains("the store takes writes again"), "the log does not say the full disk is over")
        let after = rng.bytes(300_000)
        let wroteAfter = IO.write(mnt + "/after.bin", after)
        XCTAssert(wroteAfter.succeeded, "after space returned: \(wroteAfter)")
        XCTAssert(Mounts.isAlive(pid))
        let check2 = fsck()
        XCTAssert(check2.succeeded, "fsck after space returned: \(check2)")

        unmount()
        XCTAssertEqual(storeTroubleLines(mountLog()).count, 1, "the full disk was reported again after it was over")
        let check3 = fsck()
        XCTAssert(check3.succeeded, "fsck after unmount: \(check3)")
        try mount()
        XCTAssertEqual(Files.read(mnt + "/before.bin"), before, "before.bin (fsync'd before the disk was full)")
        XCTAssertEqual(Files.read(mnt + "/after.bin"), after, "after.bin (fsync'd after space returned)")
        XCTAssertEqual(Files.read(mnt + "/a/during.txt"), small, "a/during.txt: its second fsync returned 0")
        // big.bin's writer was told of the failure, so its content is unspecified; it must read.
        XCTAssertEqual(errnoName(IO.readErrno(mnt + "/big.bin")), "OK", "big.bin does not read")
        unmount()
    }

    // MARK: Read-only store

    func testReadOnlyStoreFailsCommitsKeepsReadsAndRecovers() throws {
        try initHome()
        let fs = try moveStoreToTmpfs(size: "100m")
        try mount(options: ["commit_interval=3600"])
        guard let pid = daemonPID() else { throw StopTest("no daemon pid") }
        let before = Array("committed before the store went read-only\n".utf8)
        XCTAssert(IO.write(mnt + "/before.txt", before).succeeded)
        let committed = versions()

        remountFilesystem(fs, "ro")
        XCTAssertEqual(mkdir(mnt + "/sub", 0o755), 0)
        let text = Array("written while the store was read-only\n".utf8)
        let during = IO.write(mnt + "/sub/during.txt", text)
        print("read-only store, create + write + fsync + close: \(during)")
        XCTAssert([EROFS, EIO].contains(during.fsync), "fsync with a read-only store: \(during)")
        let big = IO.write(mnt + "/big.bin", randomBytes(40 << 20, seed: 3))
        print("read-only store, 40 MiB: \(big)")
        XCTAssert([EROFS, EIO].contains(big.firstError), "40 MiB with a read-only store: \(big)")

        XCTAssert(Mounts.isAlive(pid), "the mount process died on a read-only store")
        XCTAssertEqual(Files.read(mnt + "/before.txt"), before)
        XCTAssertEqual(Files.read(mnt + "/sub/during.txt"), text)
        let check1 = fsck()
        XCTAssert(check1.succeeded, "fsck of the read-only store: \(check1)")
        XCTAssertEqual(versions(), committed)
        let reported = storeTroubleLines(mountLog())
        print("mount log with the store read-only:\n" + reported.joined(separator: "\n"))
        XCTAssertEqual(reported.count, 1, "one line for the read-only store: \(reported)")
        XCTAssert(reported.first?.contains("the store's disk is read-only") == true, "\(reported)")
        let refused = cdsfs(["unmount", mnt])
        XCTAssertEqual(refused.status, 1, "\(refused)")
        XCTAssert(refused.stderr.contains("cannot unmount \(mnt): its changes cannot be committed, the store is read-only"),
                  "\(refused)")
        XCTAssert(Mounts.isMounted(mnt) && Mounts.isAlive(pid), "unmounted although its changes could not be committed")

        remountFilesystem(fs, "rw")
        XCTAssertEqual(errnoName(IO.fsync(mnt + "/sub/during.txt")), "OK", "fsync once the store is writable again")
        XCTAssert(fsck().succeeded)
        unmount()
        let check2 = fsck()
        XCTAssert(check2.succeeded, "fsck after unmount: \(check2)")
        try mount()
        XCTAssertEqual(Files.read(mnt + "/before.txt"), before)
        XCTAssertEqual(Files.read(mnt + "/sub/during.txt"), text, "sub/during.txt: its fsync returned 0 once the store was writable")
        unmount()
    }

    /// A commit that fails after encoding some directories (their objects never reach the store) must
    /// not leave them looking committed: the next commit has to write them, not link to them.
    func testACommitAfterAFailedOneDoesNotLinkToObjectsNeverWritten() throws {
        try initHome()
        let fs = try moveStoreToTmpfs(size: "20m")
        try mount(options: ["commit_interval=3600"])
        XCTAssert(IO.write(mnt + "/first.txt", Array("first\n".utf8)).succeeded)

        remountFilesystem(fs, "ro")
        XCTAssertEqual(mkdir(mnt + "/sub", 0o755), 0)
        let failed = IO.write(mnt + "/sub/x.txt", Array("x\n".utf8))
        XCTAssertNotEqual(failed.fsync, 0, "fsync with a read-only store succeeded: \(failed)")
        remountFilesystem(fs, "rw")

        // Another change at the top, committed by its fsync.
        XCTAssert(IO.write(mnt + "/top.txt", Array("top\n".utf8)).succeeded)
        let check = fsck()
        XCTAssert(check.succeeded, "the commit after the failed one refers to objects the store never got: \(check)")
        unmount()
        try mount()
        XCTAssertEqual(Files.readText(mnt + "/sub/x.txt"), "x\n", "sub/x.txt after remount (\(errnoName(IO.readErrno(mnt + "/sub/x.txt"))))")
        XCTAssertEqual(Files.readText(mnt + "/top.txt"), "top\n")
        unmount()
    }

    // MARK: Damaged objects

    /// Writes other.bin and small.txt (committed), then victim.bin (committed); returns victim.bin's
    /// chunk objects (new objects with no hash list and at least the minimum chunk size).
    private func committedVictim(_ victim: [UInt8]) throws -> [StoredObject] {
        var rng = SplitMix(seed: 11)
        XCTAssert(IO.write(mnt + "/other.bin", rng.bytes(300_000)).succeeded)
        XCTAssert(IO.write(mnt + "/small.txt", Array("small\n".utf8)).succeeded)
        let objects = storeObjects()
        XCTAssert(IO.write(mnt + "/victim.bin", victim).succeeded)
        let chunks = storeObjects().values.filter { objects[$0.hex] == nil && $0.hashCount == 0 && $0.size >= 64 * 1024 }
        guard !chunks.isEmpty else { throw StopTest("found no chunk object of victim.bin") }
        return chunks.sorted { $0.hex < $1.hex }
    }

    /// What must hold around a damaged chunk of victim.bin: reading it fails with EIO, the rest reads and
    /// commits, the daemon lives, the log and fsck name the object.
    private func checkDamagedChunk(_ chunk: StoredObject, victimSize: Int, what: String) throws {
        try mount(options: ["commit_interval=3600"])
        guard let pid = daemonPID() else { throw StopTest("no daemon pid") }
        let got = IO.read(mnt + "/victim.bin")
        let code: Int32
        if case .failure(let e) = got { code = e.code } else { code = 0 }
        print("\(what): reading the file gives \(errnoName(code))")
        XCTAssertEqual(errnoName(code), "EIO", "reading a file with a \(what)")
        var st = stat()
        XCTAssertEqual(stat(mnt + "/victim.bin", &st), 0, "stat of a file with a \(what)")
        XCTAssertEqual(Int(st.st_size), victimSize)
        XCTAssertEqual(errnoName(IO.readErrno(mnt + "/other.bin")), "OK")
        XCTAssertEqual(Files.readText(mnt + "/small.txt"), "small\n")
        XCTAssert(IO.write(mnt + "/new.txt", Array("new\n".utf8)).succeeded, "a commit with a \(what) elsewhere")
        XCTAssert(Mounts.isAlive(pid), "the mount process died on a \(what)")
        XCTAssert(mountLog().contains(chunk.hex), "the mount log does not name the \(what) \(chunk.hex)")

        let check = fsck()
        print("fsck with a \(what):\n" + check.stdout)
        XCTAssertFalse(check.succeeded, "fsck passes with a \(what)")
        XCTAssertEqual(badObjects(check), [chunk.hex], "fsck names \(badObjects(check)), not the \(what) \(chunk.hex)")
        unmount()
    }

    func testMissingChunkFailsItsFileOnly() throws {
        try initHome()
        try mount(options: ["commit_interval=3600"])
        let victim = randomBytes(400_000, seed: 12)
        let chunks = try committedVictim(victim)
        unmount()
        XCTAssertEqual(unlink(chunks[0].path), 0)
        try checkDamagedChunk(chunks[0], victimSize: victim.count, what: "missing chunk")
    }

    func testChunkWithAFlippedBitFailsItsFileOnly() throws {
        try initHome()
        try mount(options: ["commit_interval=3600"])
        let victim = randomBytes(400_000, seed: 13)
        let chunks = try committedVictim(victim)
        unmount()
        flipBit(in: chunks[0])
        try checkDamagedChunk(chunks[0], victimSize: victim.count, what: "chunk with a flipped bit")
    }

    func testDirectoryObjectWithAFlippedBitFailsThatDirectoryOnly() throws {
        try initHome()
        try mount(options: ["commit_interval=3600"])
        let objects = storeObjects()
        XCTAssertEqual(mkdir(mnt + "/sub", 0o755), 0)
        XCTAssert(IO.write(mnt + "/sub/one.txt", Array("one\n".utf8), fsync: false).succeeded)
        XCTAssert(IO.write(mnt + "/sub/two.txt", Array("two\n".utf8), fsync: false).succeeded)
        XCTAssert(IO.write(mnt + "/top.txt", Array("top\n".utf8)).succeeded)
        // New in that commit: sub's directory object (only small files: no hash list), the root's (links
        // to sub), the version, the private root and the envelope (all with links).
        let unlinked = storeObjects().values.filter { objects[$0.hex] == nil && $0.hashCount == 0 }
        guard unlinked.count == 1, let directory = unlinked.first else {
            throw StopTest("expected exactly one new object without links (sub's directory), found \(unlinked.map(\.hex))")
        }
        unmount()
        flipBit(in: directory)

        try mount(options: ["commit_interval=3600"])
        guard let pid = daemonPID() else { throw StopTest("no daemon pid") }
        let dir = opendir(mnt + "/sub")
        let opendirError = dir == nil ? errno : 0
        var readdirError: Int32 = 0
        if let dir {
            errno = 0
            while readdir(dir) != nil {}
            readdirError = errno
            closedir(dir)
        }
        let fileError = IO.readErrno(mnt + "/sub/one.txt")
        print("directory object with a flipped bit: opendir \(errnoName(opendirError)), readdir \(errnoName(readdirError)), "
              + "reading a file in it \(errnoName(fileError))")
        XCTAssertEqual(errnoName(opendirError == 0 ? readdirError : opendirError), "EIO", "listing the damaged directory")
        XCTAssertEqual(errnoName(fileError), "EIO", "reading a file in the damaged directory")
        XCTAssertEqual(Files.readText(mnt + "/top.txt"), "top\n")
        XCTAssertEqual(Set((try? FileManager.default.contentsOfDirectory(atPath: mnt)) ?? []), ["sub", "top.txt"])
        XCTAssert(IO.write(mnt + "/new.txt", Array("new\n".utf8)).succeeded, "a commit beside the damaged directory")
        XCTAssert(Mounts.isAlive(pid), "the mount process died on a damaged directory object")
        XCTAssert(mountLog().contains(directory.hex), "the mount log does not name the damaged directory object \(directory.hex)")
        unmount()

        let check = fsck()
        print("fsck with a damaged directory object:\n" + check.stdout)
        XCTAssertFalse(check.succeeded)
        XCTAssertEqual(badObjects(check), [directory.hex], "fsck names \(badObjects(check)), not \(directory.hex)")
    }

    // MARK: Private box entries naming garbage

    func testPrivateBoxEntriesNamingGarbageAreReportedAndRemovedAtTheNextCommit() throws {
        let actor = try initHome()
        try mount(options: ["commit_interval=3600"])
        XCTAssert(IO.write(mnt + "/kept.txt", Array("kept\n".utf8)).succeeded)
        unmount()
        let box = home + "/store/accounts/\(actor)/private"
        // One names no object at all (SHA-256 of nothing); one names an object that is not an envelope
        // (the device's public key).
        let nothing = Hash.of([UInt8]()).hex
        let notAnEnvelope = actor
        let garbage: Set<String> = [nothing, notAnEnvelope]
        for hex in garbage { XCTAssertEqual(Files.write(box + "/" + hex, []), 0) }

        let check = fsck()
        print("fsck with garbage in the private box:\n" + check.stdout)
        XCTAssertFalse(check.succeeded)
        XCTAssertEqual(Set(badObjects(check)), garbage)

        try mount(options: ["commit_interval=3600"])
        guard let pid = daemonPID() else { throw StopTest("no daemon pid") }
        XCTAssertEqual(Files.readText(mnt + "/kept.txt"), "kept\n")
        for hex in garbage {
            XCTAssert(mountLog().contains("private box entry \(hex) is ignored, and removed at the next commit"),
                      "the mount log does not name the private box entry \(hex)")
        }
        // The next commit swaps the private box entry and takes the garbage out with it.
        XCTAssert(IO.write(mnt + "/new.txt", Array("new\n".utf8)).succeeded, "a commit with garbage in the private box")
        XCTAssert(Mounts.isAlive(pid))
        for hex in garbage {
            XCTAssert(mountLog().contains("removed private box entry \(hex)"), "the log does not say \(hex) was removed")
        }
        let left = Set((try? FileManager.default.contentsOfDirectory(atPath: box)) ?? [])
        XCTAssertEqual(left.count, 1, "the private box holds \(left)")
        XCTAssert(left.isDisjoint(with: garbage), "garbage left in the private box: \(left)")
        unmount()

        let after = fsck()
        XCTAssert(after.succeeded, "fsck after the garbage was removed: \(after)")
        try mount()
        XCTAssertEqual(Files.readText(mnt + "/kept.txt"), "kept\n")
        XCTAssertEqual(Files.readText(mnt + "/new.txt"), "new\n")
        unmount()
    }

    /// The mount log's lines about a full or read-only store.
    func storeTroubleLines(_ log: String) -> [String] {
        log.split(separator: "\n").map(String.init).filter { $0.contains("cannot write to the store") }
    }
}
