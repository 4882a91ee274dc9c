import Glibc

/// How far a tree transfer has come. Returned at the end, and handed to the progress callback after
/// every object that was put or found present.
public struct TransferProgress: Equatable, Sendable {
    /// Objects copied to the destination (read from the source, then put).
    public var objectsTransferred = 0
    /// Bytes of those objects.
    public var bytesTransferred = 0
    /// Subtrees the destination already had: `book` succeeded, so nothing below them was read.
    public var subtreesPresent = 0

    public init() {}
}

/// Why a tree could not be transferred. The store errors say which side failed: a caller retries a
/// flaky remote source differently from a full local disk.
public enum TransferError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The source does not have an object of the tree: the tree is incomplete there.
    case missing(Hash)
    /// Reading from (or booking on) the source failed.
    case source(StoreError)
    /// Booking on or putting to the destination failed.
    case destination(StoreError)

    public var description: String {
        switch self {
        case .missing(let h): return "object \(h.hex) is missing on the source store"
        case .source(let e): return "source store: \(e)"
        case .destination(let e): return "destination store: \(e)"
        }
    }
}

/// Copies a tree of objects from one store to another, as the Condensation protocol does it:
///
/// - `book` the object on the destination first. If the destination has it, it has the whole subtree
///   below it (stores only ever hold complete trees, because children are put before parents), so
///   nothing under it is read. Booking also refreshes the object's time, so the destination's garbage
///   collector keeps the subtree until a box entry names it.
/// - Otherwise get it from the source, transfer its children (its hash list), and put it last.
///   An interrupted transfer therefore never leaves a parent whose children are missing, and running
///   it again resumes where it stopped: every finished subtree books.
///
/// The walk is iterative with an explicit stack: a tree's depth is chosen by whoever wrote it, and a
/// hostile or merely deep tree must not exhaust the thread's stack. A visited set makes a subtree
/// shared by several parents (equal file chunks, unchanged directories between versions) cost one
/// `book` or one copy. Memory is the visited set (one `Hash` per object) plus the objects on the path
/// from the root to the current object, which wait for their children before they are put.
///
/// The destination's puts are not flushed here. Before a box entry names the root, make them durable:
/// `modify` does it, or call `flush()` on the destination.
public enum TreeTransfer {
    private enum Step {
        /// Book, or fetch and schedule the children.
        case visit(Hash)
        /// Every child is on the destination: put the object.
        case put(Hash, Object)
    }

    /// Transfers the tree under `root` from `source` to `destination` and returns the totals.
    /// `progress` is called after each object put or subtree found present (from one thread at a
    /// time). `concurrency` is how many books, gets and puts may be in flight; by default one between
    /// local stores and `remoteConcurrency` when either side is remote, where each request waits for a
    /// round trip and one at a time would leave the link idle.
    @discardableResult
    public static func transfer(_ root: Hash, from source: Store, to destination: Store, concurrency: Int? = nil,
                                progress: ((TransferProgress) -> Void)? = nil) throws(TransferError) -> TransferProgress {
        let width = concurrency ?? (isRemote(source) || isRemote(destination) ? remoteConcurrency : 1)
        if width > 1 {
            return try ParallelTransfer(root: root, source: source, destination: destination, progress: progress).run(width: width)
        }
        var totals = TransferProgress()
        var visited = Set<Hash>()
        var stack: [Step] = [.visit(root)]
        while let step = stack.popLast() {
            switch step {
            case .visit(let hash):
                // Seen before: either done, or (impossible for content-addressed trees, which have no
                // cycles) an ancestor still waiting. Either way there is nothing to do.
                guard visited.insert(hash).inserted else { continue }
                let present: Bool
                do { present = try destination.book(hash) } catch { throw .destination(error) }
                if present {
                    totals.subtreesPresent += 1
                    progress?(totals)
                    continue
                }
                let object: Object?
                do { object = try source.get(hash) } catch { throw .source(error) }
                guard let object else { throw .missing(hash) }
                stack.append(.put(hash, object))
                // Reversed so that children are visited in hash-list order (the order does not matter
                // for correctness, but it keeps transfers reproducible for tests and logs).
                var index = object.hashCount
                while index > 0 {
                    index -= 1
                    let child = object.hash(at: index)
                    if !visited.contains(child) { stack.append(.visit(child)) }
                }
            case .put(let hash, let object):
                do { try destination.put(hash, object) } catch { throw .destination(error) }
                totals.objectsTransferred += 1
                totals.bytesTransferred += object.bytes.count
                progress?(totals)
            }
        }
        return totals
    }
}

extension TreeTransfer {
    /// Requests in flight for a transfer to or from a remote store.
    public static let remoteConcurrency = 8

    static func isRemote(_ store: Store) -> Bool { store is HTTPStore || store is S3Store || store is FailoverStore }
}

/// `TreeTransfer` with several requests in flight, for remote stores. The same rules hold: an object
/// is booked first (present: its subtree is too, and nothing below is read), otherwise got from the
/// source, its children transferred, and it is put only once every child is on the destination.
///
/// Workers take tasks from one stack (last in, first out, so the walk stays close to depth-first and
/// holds few objects): *visit* a hash (book it; else get it and schedule its children), or *put* an
/// object whose children are all done. Each hash has a state: in flight (with the parents waiting for
/// it) or done, so a subtree shared by several parents is transferred once and each parent waits for
/// it. Held in memory: the objects waiting for children (interior nodes on the paths being walked)
/// and the puts queued, never the whole tree. The first error stops the walk; puts already made stay
/// (they are complete subtrees, and a rerun books them).
final class ParallelTransfer: @unchecked Sendable {
    private enum Task {
        case visit(Hash)
        case put(Hash, Object)
    }

    private enum State {
        /// Parents waiting for this hash to be on the destination.
        case inFlight([Hash])
        case done
    }

    private let source: Store
    private let destination: Store
    private let progress: ((TransferProgress) -> Void)?
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var tasks: [Task]
    private var states: [Hash: State]
    /// Objects got, waiting for this many children.
    private var waiting: [Hash: (object: Object, remaining: Int)] = [:]
    private var busy = 0
    private var failure: TransferError?
    private var totals = TransferProgress()

    init(root: Hash, source: Store, destination: Store, progress: ((TransferProgress) -> Void)?) {
        self.source = source
        self.destination = destination
        self.progress = progress
        tasks = [.visit(root)]
        states = [root: .inFlight([])]
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    func run(width: Int) throws(TransferError) -> TransferProgress {
        var threads: [pthread_t] = []
        for _ in 1..<max(1, width) {
            var t = pthread_t()
            let arg = Unmanaged.passRetained(self).toOpaque()
            if pthread_create(&t, nil, { arg in
                let me = Unmanaged<ParallelTransfer>.fromOpaque(arg!).takeRetainedValue()
                me.work()
                return nil
            }, arg) == 0 {
                threads.append(t)
            } else {
                Unmanaged<ParallelTransfer>.fromOpaque(arg).release()
            }
        }
        work()
        for t in threads { pthread_join(t, nil) }
        if let failure { throw failure }
        return totals
    }

    private func work() {
        pthread_mutex_lock(mutex)
        while failure == nil {
            if let task = tasks.popLast() {
                busy += 1
                pthread_mutex_unlock(mutex)
                let error = perform(task)
                pthread_mutex_lock(mutex)
                busy -= 1
                if let error, failure == nil { failure = error }
                pthread_cond_broadcast(condition)
                continue
            }
            if busy == 0 { break }
            pthread_cond_wait(condition, mutex)
        }
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// One task, outside the lock; its bookkeeping under it.
    private func perform(_ task: Task) -> TransferError? {
        switch task {
        case .visit(let hash):
            let present: Bool
            do { present = try destination.book(hash) } catch { return .destination(error) }
            if present {
                locked {
                    totals.subtreesPresent += 1
                    progress?(totals)
                    finished(hash)
                }
                return nil
            }
            let fetched: Object?
            do { fetched = try source.get(hash) } catch { return .source(error) }
            guard let object = fetched else { return .missing(hash) }
            var children = Set<Hash>()
            for i in 0..<object.hashCount { children.insert(object.hash(at: i)) }
            locked {
                var remaining = 0
                for child in children {
                    switch states[child] {
                    case nil:
                        states[child] = .inFlight([hash])
                        tasks.append(.visit(child))
                        remaining += 1
                    case .inFlight(let parents)?:
                        states[child] = .inFlight(parents + [hash])
                        remaining += 1
                    case .done?:
                        break
                    }
                }
                if remaining == 0 { tasks.append(.put(hash, object)) } else { waiting[hash] = (object, remaining) }
            }
            return nil
        case .put(let hash, let object):
            do { try destination.put(hash, object) } catch { return .destination(error) }
            locked {
                totals.objectsTransferred += 1
                totals.bytesTransferred += object.bytes.count
                progress?(totals)
                finished(hash)
            }
            return nil
        }
    }

    /// `hash` is on the destination: parents that waited only for it can be put. Under the lock.
    private func finished(_ hash: Hash) {
        guard case .inFlight(let parents)? = states[hash] else { return }
        states[hash] = .done
        for parent in parents {
            guard var w = waiting[parent] else { continue }
            w.remaining -= 1
            if w.remaining == 0 {
                waiting[parent] = nil
                tasks.append(.put(parent, w.object))
            } else {
                waiting[parent] = w
            }
        }
    }

    private func locked(_ body: () -> Void) {
        pthread_mutex_lock(mutex)
        body()
        pthread_mutex_unlock(mutex)
    }
}
