// What StoreService.swift needs from the rest of the StoreServer module, without SwiftNIO: the limits
// and a BoxWatchers that records notifications. The server fuzz target compiles the real
// Sources/StoreServer/StoreService.swift and GroupFlush.swift with these.
import Condensation
import Synchronization

enum StoreServer {
    struct Limits: Sendable {
        var maximumWatchMilliseconds = 60_000
    }
}

final class BoxWatchers: Sendable {
    let notified = Mutex<[BoxChange]>([])
    func notify(_ account: Hash, _ box: BoxLabel) {
        notified.withLock { $0.append(BoxChange(account, box, .emptyObject)) }
    }
}
