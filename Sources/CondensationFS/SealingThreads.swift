import Condensation
import Glibc

/// Threads that seal and store chunks while the thread that cut them goes on reading and cutting
/// the next window. Before, each 4 MiB window was cut, then sealed on both cores, then the next
/// one read: the cores idled through every read and cut, and through the end of every batch,
/// where one large chunk ran alone.
///
/// Dedicated threads, not Dispatch's pool: the cutting thread blocks waiting for a batch, and it is
/// often a Dispatch worker itself (background compaction), which the pool on Linux is slow to
/// replace when it blocks.
final class SealingThreads: @unchecked Sendable {
    static let shared = SealingThreads(count: max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    private let lock = Lock()
    private let available = Condition()
    private var jobs: [() -> Void] = []
    private var next = 0

    private init(count: Int) {
        for _ in 0..<count {
            var t = pthread_t()
            let box = Unmanaged.passRetained(self).toOpaque()
            pthread_create(&t, nil, { arg in
                Unmanaged<SealingThreads>.fromOpaque(arg!).takeRetainedValue().work()
                return nil
            }, box)
            pthread_detach(t)
        }
    }

    /// Queues `jobs`, run first come first served.
    func run(_ more: [() -> Void]) {
        lock.withLock {
            if next > 0 && next * 2 >= jobs.count {
                jobs.removeFirst(next)
                next = 0
            }
            jobs += more
            available.broadcast()
        }
    }

    private func work() {
        while true {
            let job = lock.withLock { () -> () -> Void in
                while next == jobs.count { lock.wait(available) }
                defer { next += 1 }
                return jobs[next]
            }
            job()
        }
    }
}

/// Chunks handed to `SealingThreads`, and their links once stored.
final class SealingBatch: @unchecked Sendable {
    private let lock = Lock()
    private let finished = Condition()
    private var remaining: Int
    private var links: [HashAndKey?]
    private var failure: FSError?

    /// Starts sealing and storing `pieces`; the memory they point to must stay unchanged until
    /// `wait` returns. The largest go first, so that no large chunk is left running alone at the end.
    init(_ pieces: [UnsafeRawBufferPointer], _ ctx: ContentContext) {
        remaining = pieces.count
        links = [HashAndKey?](repeating: nil, count: pieces.count)
        let order = pieces.indices.sorted { pieces[$0].count > pieces[$1].count }
        SealingThreads.shared.run(order.map { i in
            nonisolated(unsafe) let piece = pieces[i]
            return { [self] in
                let result: Result<HashAndKey?, FSError>
                do throws(FSError) { result = .success(try ctx.storeChunk(piece)) } catch { result = .failure(error) }
                lock.withLock {
                    switch result {
                    case .success(let link): links[i] = link
                    case .failure(let error): failure = failure ?? error
                    }
                    remaining -= 1
                    if remaining == 0 { finished.broadcast() }
                }
            }
        })
    }

    /// The links, in the order of the pieces (nil for a piece of zeros); the first error otherwise.
    func wait() throws(FSError) -> [HashAndKey?] {
        try lock.withLock { () throws(FSError) -> [HashAndKey?] in
            while remaining > 0 { lock.wait(finished) }
            if let failure { throw failure }
            return links
        }
    }
}
