import Condensation
import Foundation
import Glibc
import TestSupport
import XCTest

/// Faults on the network between two devices and their server: unreachable, slow, resetting
/// connections, answering 500. Both devices (A and B, mounted with commit_interval=1) reach a real
/// `cdsfs serve` only through `FaultProxy`. Each fault lands in the middle of a push of a 48 MiB file
/// from A (the proxy switches after 12 MiB of requests) and then in the middle of B's pull of another
/// one (after 12 MiB of responses), lasts 8–10 s, and ends. Then: B converges to A's tree (checksums
/// equal), every version A made is in both devices' `cdsfs log`, no device discarded a message,
/// `cdsfs fsck` passes on both, every "retrying in N s" run in the mount logs doubles from 1 s, and for
/// the faults that make whole pushes fail (unreachable, reset) A's mount.log shows such a run. The
/// time from the end of each fault to convergence is printed as "FAULT-METRIC … convergence".
/// (500 to every 3rd request and a slow link never fail a whole push: the HTTP client's own retries
/// absorb the first, and the second only takes longer.)
///
/// `testMergesMadeOnBothSidesOfAnOutageAgree` makes both devices merge the other's version on their
/// own during a partial outage, and checks that they then agree instead of merging each other's merges.
final class NetworkFaultTests: FaultTestCase {

    // MARK: The proxy itself

    /// The proxy does what it says, seen from a plain HTTP client that does not retry.
    func testProxyModes() throws {
        let client = try HTTPStore(url: proxy.url)
        let path = "/objects/" + String(repeating: "0", count: 64)
        XCTAssertEqual(try client.send("GET", path).status, 404, "pass: the server's answer")

        proxy.setMode(.http500(every: 3))
        let statuses = try (1...6).map { _ in try client.send("GET", path).status }
        XCTAssertEqual(statuses, [404, 404, 500, 404, 404, 500], "http500 every 3rd")
        XCTAssertEqual(proxy.counters.answered500, 2)
        proxy.setMode(.http500(every: 1, matching: "PUT /objects/"))
        XCTAssertEqual(try client.send("GET", path).status, 404, "http500 matching: another route passes")
        XCTAssertEqual(try client.send("PUT", path, body: [1]).status, 500, "http500 matching: the route fails")

        proxy.setMode(.refuse)
        usleep(200_000)
        XCTAssertThrowsError(try client.send("GET", path), "refuse") { error in
            XCTAssert("\(error)".contains("refused"), "refuse: \(error)")
        }
        proxy.setMode(.pass)
        let back = waitUntil(5, interval: 0.05) { (try? client.send("GET", path).status) == 404 }
        XCTAssertNotNil(back, "the proxy listens again after refuse")

        proxy.setMode(.reset(afterBytes: 4096, direction: .request, every: 1))
        let body = [UInt8](repeating: 7, count: 512 * 1024)
        XCTAssertThrowsError(try client.send("PUT", path, body: body), "reset: a large request is cut")
        XCTAssertEqual(try client.send("GET", path).status, 404, "reset: a small request passes")
        // (A failure on a reused keep-alive connection is sent once more on a new one: two resets.)
        XCTAssertGreaterThanOrEqual(proxy.counters.resets, 1)

        proxy.setMode(.slow(delayMilliseconds: 150, bytesPerSecond: 1 << 20))
        let start = now()
        XCTAssertEqual(try client.send("GET", path).status, 404)
        let took = now() - start
        XCTAssertGreaterThanOrEqual(took, 0.3, "slow: request and response each wait 150 ms")
        proxy.setMode(.pass)
        metric("proxy: slow GET round trip", seconds(took))
    }

    // MARK: Faults in the middle of a push and of a pull

    /// The server unreachable for 10 s: the listening socket closed, open connections reset.
    func testServerUnreachableMidPushAndMidPull() throws {
        try scenario(Fault(name: "unreachable", push: .refuse, pull: .refuse, seconds: 10, syncerFails: true,
                           concurrentChangeOnB: true))
    }

    /// A slow link: 200 KiB/s in each direction, 20 ms per piece, for 8 s.
    func testSlowServerMidPushAndMidPull() throws {
        let slow = FaultProxy.Mode.slow(delayMilliseconds: 20, bytesPerSecond: 200 * 1024)
        try scenario(Fault(name: "slow", push: slow, pull: slow, seconds: 8, syncerFails: false))
    }

    /// Connections reset (RST) once a request (during the push) or a response (during the pull) passes
    /// 96 KiB, for 10 s: every large object put or get fails, small requests go through.
    func testResettingConnectionsMidPushAndMidPull() throws {
        try scenario(Fault(name: "reset",
                           push: .reset(afterBytes: 96 * 1024, direction: .request, every: 1),
                           pull: .reset(afterBytes: 96 * 1024, direction: .response, every: 1),
                           seconds: 10, syncerFails: true))
    }

    /// Every third request answered 500 by the proxy for 10 s (the client's own retries absorb these).
    func testEveryThirdRequestAnswered500MidPushAndMidPull() throws {
        try scenario(Fault(name: "http500", push: .http500(every: 3), pull: .http500(every: 3), seconds: 10, syncerFails: false))
    }

    // MARK: Both devices merge on their own

    /// A partial outage: first the server fails every in-queue listing (pulls fail, pushes go through)
    /// while A and B each change a file, so each has the other's version waiting; then it fails every
    /// modify (pushes fail at their last step, pulls go through), so each merges the other's version on
    /// its own. Merging is deterministic (docs/design.md: devices that merge to the same tree produce
    /// the same hashes), so both must now hold the same version; when the server is healthy again
    /// they agree at once instead of merging each other's merges.
    func testMergesMadeOnBothSidesOfAnOutageAgree() throws {
        let (a, b) = try makePair()
        let versionsA = try versions(a).count, versionsB = try versions(b).count

        // 1. Pulls fail, pushes go through: each device's version reaches the other's in-queue.
        proxy.setMode(.http500(every: 1, matching: "/messages HTTP/1.1"), resetConnections: true)
        try sh("printf 'from A\\n' > a.txt", cwd: a.mnt)
        try sh("printf 'from B\\n' > b.txt", cwd: b.mnt)
        for (d, before) in [(a, versionsA), (b, versionsB)] {
            var status = ""
            let pushed = try waitUntil(30, interval: 0.25) {
                status = try must(["status", "--home", d.home])
                return try versions(d).count > before && status.contains("to push: nothing")
            }
            guard pushed != nil else { throw StopTest("\(d) did not push its change while pulls failed:\n\(status)") }
        }
        XCTAssertGreaterThan(proxy.counters.answered500, 0, "no in-queue listing was refused")
        XCTAssertEqual(merges(mountLog(a)) + merges(mountLog(b)), 0, "a device merged while pulls failed")

        // 2. Pushes fail at their modify, pulls go through: each merges the other's version alone.
        proxy.setMode(.http500(every: 1, matching: "POST /accounts HTTP/1.1"), resetConnections: true)
        let merged = try waitUntil(40, interval: 0.25) {
            try requireAlive(a, b)
            return merges(mountLog(a)) >= 1 && merges(mountLog(b)) >= 1
        }
        guard merged != nil else { throw StopTest("A and B did not both merge within 40 s once pulls went through") }
        let mergeA = head(a), mergeB = head(b)
        metric("both merged alone", "A holds \(mergeA?.prefix(16) ?? "?"), B holds \(mergeB?.prefix(16) ?? "?")")
        XCTAssertEqual(mergeA, mergeB, "A and B merged the same two versions into different versions: the merge "
                       + "is not deterministic (each names its own device in it), so each will merge the other's merge")

        // 3. Healthy again: they agree, with no more than the merges they made.
        let mergesBefore = merges(mountLog(a)) + merges(mountLog(b))
        proxy.setMode(.pass)
        let took = try waitForSameHead(a, b, timeout: 60)
        let made = merges(mountLog(a)) + merges(mountLog(b)) - mergesBefore
        metric("both merged alone: convergence after the outage", (took.map(seconds) ?? "none within 60 s")
               + " (\(made) more merge versions made by A and B on the way)")
        XCTAssertNotNil(took, "A and B did not reach the same version within 60 s of the outage's end "
                        + "(\(made) more merge versions made meanwhile)")
        XCTAssertLessThanOrEqual(made, 2, "A and B made \(made) more merge versions after the outage: merges of merges")
        guard took != nil else { return }
        XCTAssertEqual(tree(a.mnt), tree(b.mnt), "A's and B's trees")
        XCTAssertEqual(Files.readText(b.mnt + "/a.txt"), "from A\n")
        XCTAssertEqual(Files.readText(a.mnt + "/b.txt"), "from B\n")
        unmount(a)
        unmount(b)
        for d in [a, b] {
            let r = cdsfs(["fsck", "--home", d.home], timeout: 300)
            XCTAssert(r.succeeded, "fsck of \(d): \(r)")
        }
    }

    struct Fault {
        let name: String
        let push: FaultProxy.Mode
        let pull: FaultProxy.Mode
        let seconds: Double
        /// Whether the fault makes whole pushes fail, so that A's syncer must back off.
        let syncerFails: Bool
        /// Whether B changes a file while the push fault lasts (then the devices merge).
        var concurrentChangeOnB = false
    }

    static let fileSize = 48 * 1024 * 1024
    static let faultAfter = 12 * 1024 * 1024

    func scenario(_ fault: Fault) throws {
        let (a, b) = try makePair()
        let size = Self.fileSize
        try sh("head -c \(size) /dev/urandom > '\(root)/push.bin'; head -c \(size) /dev/urandom > '\(root)/pull.bin'")
        let sums = try sh("sha256sum < '\(root)/push.bin' | cut -d' ' -f1; sha256sum < '\(root)/pull.bin' | cut -d' ' -f1")
            .split(separator: "\n").map(String.init)

        // 1. In the middle of A's push.
        proxy.arm(after: Self.faultAfter, .request, then: fault.push)
        let copyStart = now()
        try sh("cp '\(root)/push.bin' '\(a.mnt)/push.bin'", timeout: 120)
        guard waitUntil(120, interval: 0.02, { proxy.triggeredAt != nil }) != nil, let pushFault = proxy.triggeredAt else {
            throw StopTest("\(fault.name): A's push did not get \(Self.faultAfter / 1024 / 1024) MiB through the proxy within 120 s")
        }
        metric("\(fault.name) mid-push: fault began", "\(seconds(pushFault - copyStart)) after the cp into A began, "
               + "\(proxy.counters.bytes[.request, default: 0] / 1024 / 1024) MiB of requests through so far")
        // B commits while the fault lasts (in one scenario): its version has to get out too, and the
        // two devices merge.
        if fault.concurrentChangeOnB {
            try sh("printf 'written on B during the %s fault\\n' \(fault.name) > from-B.txt", cwd: b.mnt)
        }
        try holdFault(until: pushFault + fault.seconds, a, b)
        proxy.setMode(.pass)
        let mergesBefore = merges(mountLog(a)) + merges(mountLog(b))
        guard let pushConverged = try waitForSameHead(a, b, timeout: fault.concurrentChangeOnB ? 60 : 150) else {
            let rounds = merges(mountLog(a)) + merges(mountLog(b)) - mergesBefore
            throw StopTest("\(fault.name) mid-push: A and B did not reach the same version within "
                           + "\(fault.concurrentChangeOnB ? 60 : 150) s of the fault's end (\(rounds) merge versions made meanwhile)")
        }
        let mergeRounds = merges(mountLog(a)) + merges(mountLog(b)) - mergesBefore
        metric("\(fault.name) mid-push: convergence after the fault ended", seconds(pushConverged)
               + (fault.concurrentChangeOnB ? " (\(mergeRounds) merge versions made by A and B on the way)" : ""))
        XCTAssertLessThanOrEqual(pushConverged, 30, "\(fault.name) mid-push: convergence took \(seconds(pushConverged))")
        // Two devices that merged the same two versions agree at once: a merge version or two, not a
        // ping-pong of merges of merges.
        XCTAssertLessThanOrEqual(mergeRounds, 4, "\(fault.name) mid-push: A and B made \(mergeRounds) merge versions "
                                 + "before agreeing (each merged the other's merge of the same versions again)")
        try checkSame(a, b, files: ["push.bin": sums[0]], what: "\(fault.name) mid-push")
        if fault.concurrentChangeOnB {
            XCTAssertEqual(Files.readText(a.mnt + "/from-B.txt"), "written on B during the \(fault.name) fault\n",
                           "B's change made during the fault reached A")
        }
        let pushCounters = proxy.counters

        // 2. In the middle of B's pull: A's push completes first (B is sent the message only then).
        proxy.arm(after: Self.faultAfter, .response, then: fault.pull)
        let before = head(b)
        let copy2 = now()
        try sh("cp '\(root)/pull.bin' '\(a.mnt)/pull.bin'", timeout: 120)
        guard waitUntil(120, interval: 0.02, { proxy.triggeredAt != nil }) != nil, let pullFault = proxy.triggeredAt else {
            throw StopTest("\(fault.name): B's pull did not get \(Self.faultAfter / 1024 / 1024) MiB through the proxy within 120 s")
        }
        XCTAssertEqual(head(b), before, "\(fault.name) mid-pull: B already had A's version when the fault began")
        metric("\(fault.name) mid-pull: fault began", "\(seconds(pullFault - copy2)) after the cp into A began")
        try holdFault(until: pullFault + fault.seconds, a, b)
        proxy.setMode(.pass)
        guard let pullConverged = try waitForSameHead(a, b, timeout: 150) else {
            throw StopTest("\(fault.name) mid-pull: B did not reach A's version within 150 s of the fault's end")
        }
        metric("\(fault.name) mid-pull: convergence after the fault ended", seconds(pullConverged))
        XCTAssertLessThanOrEqual(pullConverged, 30, "\(fault.name) mid-pull: convergence took \(seconds(pullConverged))")
        try checkSame(a, b, files: ["push.bin": sums[0], "pull.bin": sums[1]], what: "\(fault.name) mid-pull")

        // The proxy did inject the fault.
        let c = proxy.counters
        metric("\(fault.name): proxy", "\(c.connections) connections, \(c.requests) requests, \(c.answered500) answered 500, "
               + "\(c.resets) reset, \(c.bytes[.request, default: 0] / 1024 / 1024) MiB up, "
               + "\(c.bytes[.response, default: 0] / 1024 / 1024) MiB down")
        switch fault.push {
        case .http500: XCTAssertGreaterThan(pushCounters.answered500, 0, "no 500 was answered during the push")
        case .reset: XCTAssertGreaterThan(pushCounters.resets, 0, "no connection was reset during the push")
        default: break
        }
        switch fault.pull {
        case .http500: XCTAssertGreaterThan(c.answered500, pushCounters.answered500, "no 500 was answered during the pull")
        case .reset: XCTAssertGreaterThan(c.resets, pushCounters.resets, "no connection was reset during the pull")
        default: break
        }

        // Retries with growing delays.
        for d in [a, b] {
            let r = retries(mountLog(d))
            metric("\(fault.name): \(d)'s mount.log retry delays", "push \(r.push), pull \(r.pull)")
            for (kind, delays) in [("push", r.push), ("pull", r.pull)] {
                XCTAssert(backoffIsExponential(delays), "\(d)'s \(kind) retry delays do not double from 1 s: \(delays)")
            }
        }
        if fault.syncerFails {
            let r = retries(mountLog(a))
            XCTAssert(r.push.count >= 2 && r.push.contains { $0 > 1 },
                      "A's mount.log shows no growing push retry delays: \(r.push)")
        }
        // A network fault must not make a device throw away a member's message.
        for d in [a, b] {
            let discarded = mountLog(d).split(separator: "\n").filter { $0.contains("discarded message") }
            XCTAssert(discarded.isEmpty, "\(d) discarded messages:\n" + discarded.joined(separator: "\n"))
        }

        // No commit lost: every version A made (committed or merged) is in both logs.
        let made = versionsMade(mountLog(a))
        let logA = try versions(a), logB = try versions(b)
        metric("\(fault.name): versions", "A made \(made.count); A's log lists \(logA.count), B's \(logB.count)")
        XCTAssertGreaterThanOrEqual(made.count, 2, "A's mount.log names too few versions (one per file at least): \(made)")
        for v in made {
            XCTAssert(logA.contains { $0.hasPrefix(v) }, "version \(v) that A made is not in A's log")
            XCTAssert(logB.contains { $0.hasPrefix(v) }, "version \(v) that A made is not reachable on B")
        }
        XCTAssertEqual(logA.first, logB.first, "A and B end on different versions")

        unmount(a)
        unmount(b)
        for d in [a, b] {
            let r = cdsfs(["fsck", "--home", d.home], timeout: 300)
            XCTAssert(r.succeeded, "fsck of \(d) after the \(fault.name) fault: \(r)")
        }
    }

    /// Waits until `end` (monotonic seconds), throwing if a mount daemon dies meanwhile.
    func holdFault(until end: Double, _ a: Device, _ b: Device) throws {
        while now() < end {
            try requireAlive(a, b)
            usleep(UInt32(min(0.5, max(0.01, end - now())) * 1e6))
        }
    }

    /// Both mounts show the same tree, and the named files have the given SHA-256.
    func checkSame(_ a: Device, _ b: Device, files: [String: String], what: String) throws {
        let treeA = tree(a.mnt), treeB = tree(b.mnt)
        XCTAssertNotNil(treeA)
        XCTAssertEqual(treeA, treeB, "\(what): B's tree is not A's")
        for (name, sum) in files.sorted(by: { $0.key < $1.key }) {
            for d in [a, b] {
                let got = try sh("sha256sum < '\(d.mnt)/\(name)' | cut -d' ' -f1", timeout: 120)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                XCTAssertEqual(got, sum, "\(what): \(name) on \(d)")
            }
        }
    }

    /// The "retrying in N s" delays of the push and pull loops, in order.
    func retries(_ log: String) -> (push: [Int], pull: [Int]) {
        var push: [Int] = [], pull: [Int] = []
        for line in log.split(separator: "\n") {
            guard let r = line.range(of: "; retrying in "), let end = line[r.upperBound...].range(of: " s") else { continue }
            guard let n = Int(line[r.upperBound..<end.lowerBound]) else { continue }
            if line.contains(" push to ") { push.append(n) } else if line.contains(" pull from ") { pull.append(n) }
        }
        return (push, pull)
    }

    /// Each run of failures starts at 1 s and doubles (up to 60 s); a success starts a new run at 1.
    func backoffIsExponential(_ delays: [Int]) -> Bool {
        var previous: Int?
        for n in delays {
            if n == 1 || previous == nil {
                if n != 1 { return false }
            } else if n != min(60, previous! * 2) {
                return false
            }
            previous = n
        }
        return true
    }

    /// Merge versions the mount made.
    func merges(_ log: String) -> Int {
        log.split(separator: "\n").filter { $0.contains(" info: merged into ") }.count
    }

    /// Versions the mount made: "committed version X", "merged into X".
    func versionsMade(_ log: String) -> [String] {
        var out: [String] = []
        for line in log.split(separator: "\n") {
            for marker in ["committed version ", "merged into "] {
                guard let r = line.range(of: marker) else { continue }
                let hex = line[r.upperBound...].prefix { $0.isHexDigit }
                if hex.count >= 8 { out.append(String(hex)) }
            }
        }
        return out
    }
}
