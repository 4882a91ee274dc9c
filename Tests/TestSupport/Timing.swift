import Glibc

/// Seconds on the monotonic clock.
public func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Polls `condition` every `interval` seconds until it holds; the seconds it took, or nil after `timeout`.
public func waitUntil(_ timeout: Double, interval: Double = 0.1, _ condition: () throws -> Bool) rethrows -> Double? {
    let start = now()
    while true {
        if try condition() { return now() - start }
        if now() - start > timeout { return nil }
        usleep(UInt32(interval * 1e6))
    }
}

/// "1.23 s".
public func seconds(_ s: Double) -> String { String(format: "%.2f s", s) }

/// Prints one measurement as `LABEL name: value`, easy to grep from the test output (the label names
/// the suite: SYNC-METRIC, FAULT-METRIC, …).
public func printMetric(_ label: String, _ name: String, _ value: String) {
    print("\(label) \(name): \(value)")
}
