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
    /// `progress` is called after each object put or subtree found present.
    @discardableResult
    public static func transfer(_ root: Hash, from source: Store, to destination: Store,
                                progress: ((TransferProgress) -> Void)? = nil) throws(TransferError) -> TransferProgress {
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
