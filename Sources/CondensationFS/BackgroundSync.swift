import Condensation
import Glibc

/// The syncer in the background of a mount: pushes after each commit, pulls by long-polling the
/// in-queue, and hands what changed to `invalidate` (the FUSE layer tells the kernel, from this
/// thread, never from inside a request). Failures are retried with exponential backoff (1 s up
/// to 60 s), so a mount that is offline keeps committing locally and catches up when the store
/// returns.
public final class BackgroundSync: @unchecked Sendable {
    let syncer: Syncer
    let invalidate: @Sendable ([Invalidation]) -> Void
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var pushWanted = true
    private var stopped = false
    private var threads: [pthread_t] = []
    /// Long-poll length; remotes that cannot watch are polled this often instead.
    let pollMilliseconds: Int

    public init(syncer: Syncer, pollMilliseconds: Int = 20_000, invalidate: @escaping @Sendable ([Invalidation]) -> Void) {
        self.syncer = syncer
        self.invalidate = invalidate
        self.pollMilliseconds = pollMilliseconds
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    public func start() {
        syncer.volume?.setOnCommit { [weak self] in self?.requestPush() }
        threads = [spawn { $0.pushLoop() }, spawn { $0.pullLoop() }]
    }

    private func spawn(_ body: @escaping (BackgroundSync) -> Void) -> pthread_t {
        final class Box {
            let sync: BackgroundSync
            let body: (BackgroundSync) -> Void
            init(_ s: BackgroundSync, _ b: @escaping (BackgroundSync) -> Void) { sync = s; body = b }
        }
        var t = pthread_t()
        let box = Unmanaged.passRetained(Box(self, body)).toOpaque()
        pthread_create(&t, nil, { arg in
            let b = Unmanaged<AnyObject>.fromOpaque(arg!).takeRetainedValue() as! Box
            b.body(b.sync)
            return nil
        }, box)
        return t
    }

    /// A commit happened: push soon.
    public func requestPush() {
        pthread_mutex_lock(&mutex)
        pushWanted = true
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
    }

    /// Stops both loops. Waits for the pusher (a push in flight finishes), not for the puller: a
    /// long poll in flight would hold an unmount for up to its full length. The puller ends when its
    /// poll returns; a merge it attempts after the volume closed fails harmlessly.
    public func stop() {
        syncer.volume?.setOnCommit(nil)
        pthread_mutex_lock(&mutex)
        stopped = true
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
        if threads.count == 2 {
            pthread_join(threads[0], nil)
            pthread_detach(threads[1])
        }
        threads = []
    }

    private var isStopped: Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return stopped
    }

    /// Waits until woken or `seconds` pass; false once stopped.
    private func sleep(_ seconds: Double, untilPush: Bool) -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let ns = Int(ts.tv_nsec) + Int(seconds * 1e9)
        ts.tv_sec += ns / 1_000_000_000
        ts.tv_nsec = ns % 1_000_000_000
        while !stopped && !(untilPush && pushWanted) {
            if pthread_cond_timedwait(&condition, &mutex, &ts) == ETIMEDOUT { break }
        }
        return !stopped
    }

    private func pushLoop() {
        var backoff = 1.0
        while !isStopped {
            pthread_mutex_lock(&mutex)
            let wanted = pushWanted
            pushWanted = false
            pthread_mutex_unlock(&mutex)
            if wanted {
                do {
                    let r = try syncer.push()
                    if r.objects > 0 || r.messagesSent > 0 {
                        Log.info("pushed \(r.objects) objects (\(r.bytes) bytes), \(r.messagesSent) message(s)")
                    }
                    backoff = 1
                } catch {
                    Log.warning("push to \(syncer.remote.url) failed (\(error)); retrying in \(Int(backoff)) s")
                    requestPushLater()
                    guard sleep(backoff, untilPush: false) else { return }
                    backoff = min(60, backoff * 2)
                    continue
                }
            }
            guard sleep(30, untilPush: true) else { return }
        }
    }

    private func requestPushLater() {
        pthread_mutex_lock(&mutex)
        pushWanted = true
        pthread_mutex_unlock(&mutex)
    }

    private func pullLoop() {
        var backoff = 1.0
        let canWatch = syncer.remote.url.hasPrefix("http")
        while !isStopped {
            do {
                let (report, invalidations) = try syncer.pull(wait: canWatch ? pollMilliseconds : 0)
                for line in report.merged { Log.info("pulled: \(line)") }
                if !invalidations.isEmpty { invalidate(invalidations) }
                if report.merged.contains(where: { $0 != "up to date" }) { requestPush() }
                backoff = 1
                if !canWatch { guard sleep(1, untilPush: false) else { return } }
            } catch {
                Log.warning("pull from \(syncer.remote.url) failed (\(error)); retrying in \(Int(backoff)) s")
                guard sleep(backoff, untilPush: false) else { return }
                backoff = min(60, backoff * 2)
            }
        }
    }
}
