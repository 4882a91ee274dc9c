import Condensation
import Glibc

/// Commits: the unsaved tree becomes objects, a version, a private root and an envelope; the
/// envelope swap in the private box is the atomic commit point.
extension Volume {
    /// Commits everything unsaved and returns once it is durable. Does nothing if nothing changed.
    ///
    /// The tree is encoded under the volume's lock, but written out and made durable (the objects,
    /// two `syncfs`, the private box swap) outside it, so that operations go on meanwhile: on a busy
    /// disk a `syncfs` takes seconds, and every create, write and read waited for it. Commits
    /// take turns (`commits`), so that each one's version follows the previous one's.
    public func commit() throws(FSError) {
        try commits.withLock { () throws(FSError) in
            guard let pending = try lock.withLock({ () throws(FSError) in try prepareCommit() }) else { return }
            let published = Result { () throws(FSError) in try publish(pending) }
            try lock.withLock { () throws(FSError) in try finishCommit(pending, published) }
        }
    }

    /// A commit from code that holds the volume's lock (merges, shares, closing), all of it under the
    /// lock. The caller must hold `commits` too, taken before the lock.
    func commitLocked() throws(FSError) {
        guard let pending = try prepareCommit() else { return }
        try finishCommit(pending, Result { () throws(FSError) in try publish(pending) })
    }

    /// A commit encoded, not yet published.
    struct PendingCommit {
        let version: Version
        let root: PrivateRoot
        let replacing: [Hash]
        let objects: [(Hash, Object)]
        /// Each directory encoded, with its link before (see `undo`).
        let encoded: [(Node, HashAndKey?)]
        let linkTableBefore: (dirty: Bool, link: HashAndKey?)
        let summary: ChangeSummary
        let firstUnsavedChange: Timestamp?
    }

    /// Encodes the unsaved tree into objects and a version; nil if nothing changed. From here on the
    /// volume counts changes towards the next commit.
    private func prepareCommit() throws(FSError) -> PendingCommit? {
        guard !isReadOnly, root.dirty || linkTableDirty else {
            firstUnsavedChange = nil
            return nil
        }
        var objects: [(Hash, Object)] = []
        var encoded: [(Node, HashAndKey?)] = []
        let linkTableBefore = (linkTableDirty, linkTableLink)
        let pending: PendingCommit
        do {
            let rootLink = try encodeDirectory(root, &objects, &encoded)
            var rootEntry = StoredEntry(metadata: root.meta)
            rootEntry.directory = rootLink
            rootEntry.subdirectories = root.subdirectoryCount
            if linkTableDirty { linkTableLink = try encodeLinkTable(&objects, &encoded) }

            let versionRecord = Version.record(
                revision: max(nowMilliseconds(), head.version.revision + 1), device: home.keyPair.actor,
                parents: [head.version.link], root: rootEntry, links: linkTableLink, summary: summary)
            let (versionObject, versionLink) = ctx.secrets.seal(versionRecord.object())
            objects.append((versionLink.hash, versionObject))
            var root = head.root
            root.filesystem = versionLink
            pending = PendingCommit(version: try Version(link: versionLink, record: versionRecord), root: root,
                                    replacing: head.envelopes, objects: objects, encoded: encoded,
                                    linkTableBefore: linkTableBefore, summary: summary,
                                    firstUnsavedChange: firstUnsavedChange)
        } catch {
            undo(encoded, linkTableBefore: linkTableBefore)
            if !StoreTrouble.isUnwritable(error) { Log.error("commit failed: \(error)") }
            throw error
        }
        summary = ChangeSummary()
        linkTableDirty = false
        firstUnsavedChange = nil
        buffered = [:]
        bufferedBytes = 0
        return pending
    }

    private func publish(_ pending: PendingCommit) throws(FSError) -> (Hash, PrivateRoot) {
        try home.publish(root: pending.root, objects: pending.objects, replacing: pending.replacing)
    }

    /// Takes the published version as the head, or, if publishing failed, counts its changes as
    /// unsaved again.
    private func finishCommit(_ pending: PendingCommit, _ published: Result<(Hash, PrivateRoot), FSError>) throws(FSError) {
        switch published {
        case .success(let (envelopeHash, written)):
            head = Head(version: pending.version, envelopes: [envelopeHash], root: written)
            onCommit?()
            Log.info("committed version \(pending.version.link.hash.shortHex)")
            StoreTrouble.cleared(pending.version.link.hash)
        case .failure(let error):
            undo(pending.encoded, linkTableBefore: pending.linkTableBefore)
            summary.add(pending.summary)
            firstUnsavedChange = pending.firstUnsavedChange ?? firstUnsavedChange ?? .now()
            // A full or read-only store was said once already (StoreTrouble), not at every attempt.
            if !StoreTrouble.isUnwritable(error) { Log.error("commit failed: \(error)") }
            throw error
        }
    }

    /// After a failed commit: nothing of it was committed, and the directory objects it encoded may
    /// never have reached the store (a full or read-only disk fails `publish` halfway). Those
    /// directories are changed again, so that the next commit encodes and writes them instead of
    /// linking to objects the store does not have.
    private func undo(_ encoded: [(Node, HashAndKey?)], linkTableBefore: (dirty: Bool, link: HashAndKey?)) {
        for (dir, link) in encoded.reversed() {
            dir.directoryLink = link
            dir.dirty = true
        }
        if linkTableBefore.dirty { (linkTableDirty, linkTableLink) = linkTableBefore }
    }

    /// Encodes a directory (and every changed directory below it) bottom-up.
    /// `encoded` collects each directory encoded, with its link before, so that a failed commit can
    /// undo the marking.
    func encodeDirectory(_ dir: Node, _ objects: inout [(Hash, Object)],
                         _ encoded: inout [(Node, HashAndKey?)]) throws(FSError) -> HashAndKey {
        if !dir.dirty, let link = dir.directoryLink { return link }
        try load(dir)
        let sorted = dir.children!.sortedByName()
        func record(_ i: Int) throws(FSError) -> Record {
            let (name, child) = sorted[i]
            var record = Record(text: name)
            if let id = child.hardLinkID {
                record.add(EntryLabel.hardLink, unsigned: id)
            } else {
                try encodeEntry(child, &objects, &encoded).write(to: &record)
            }
            return record
        }
        var result: (HashAndKey, DirectoryPages?)?
        if let previous = dir.pages, previous.link == dir.directoryLink,
           let (link, pages, sealed) = try DirectoryFormat.reencode(
               count: sorted.count, name: { sorted[$0].name }, isClean: { Self.isClean(sorted[$0].node) },
               record: record, previous: previous, secrets: ctx.secrets) {
            objects.append(contentsOf: sealed)
            result = (link, pages)
        }
        if result == nil {
            var entries: [Record] = []
            entries.reserveCapacity(sorted.count)
            for i in sorted.indices { entries.append(try record(i)) }
            result = DirectoryFormat.encodeWithPages(entries, secrets: ctx.secrets, into: &objects)
        }
        let (link, pages) = result!
        dir.pages = pages
        encoded.append((dir, dir.directoryLink))
        dir.directoryLink = link
        dir.dirty = false
        return link
    }

    /// Whether a child's entry is as last encoded. A clean, closed file also drops its content from
    /// memory here, as encoding its entry would (its page is reused, not encoded).
    static func isClean(_ n: Node) -> Bool {
        guard !n.dirty else { return false }
        if n.openCount == 0, let f = n.file, let stored = f.stored {
            n.storedContent = stored
            n.storedSize = f.size
            n.file = nil
        }
        return true
    }

    /// The entry of a node, encoding its content (and its subtree) as needed.
    func encodeEntry(_ n: Node, _ objects: inout [(Hash, Object)],
                     _ encoded: inout [(Node, HashAndKey?)]) throws(FSError) -> StoredEntry {
        var e = StoredEntry(metadata: n.meta)
        e.size = n.size
        e.symlink = n.symlinkTarget
        if n.isDirectory {
            e.directory = try encodeDirectory(n, &objects, &encoded)
            e.subdirectories = n.subdirectoryCount
            if n.container != nil { encodeContainer(n, &e, &objects) }
        }
        if n.isRegular {
            e.content = try encodeContent(n, &objects)
            // A closed file needs no pages or chunk list in memory: keep only its entry.
            if n.openCount == 0, n.file != nil {
                n.storedContent = e.content
                n.storedSize = e.size
                n.file = nil
            }
        }
        n.dirty = false
        return e
    }

    func encodeContent(_ n: Node, _ objects: inout [(Hash, Object)]) throws(FSError) -> StoredContent? {
        guard n.isRegular else { return nil }
        if let f = n.file { return try f.encode(ctx) }
        return n.storedContent ?? .inline([])
    }

    // MARK: Hard links

    /// `{ <id> → { entry fields, n → link count } … }`
    func encodeLinkTable(_ objects: inout [(Hash, Object)],
                         _ encoded: inout [(Node, HashAndKey?)]) throws(FSError) -> HashAndKey? {
        var ids = Set(storedHardLinks.keys)
        ids.formUnion(hardLinks.keys)
        guard !ids.isEmpty else { return nil }
        var record = Record()
        for id in ids.sorted() {
            var r = Record(Values.unsigned(id))
            if let n = hardLinks[id] {
                guard n.nlink > 0 else { continue }
                try encodeEntry(n, &objects, &encoded).write(to: &r)
                r.add("n", unsigned: UInt64(n.nlink))
            } else if let (entry, nlink) = storedHardLinks[id] {
                entry.write(to: &r)
                r.add("n", unsigned: UInt64(nlink))
            }
            record.add(r)
        }
        let (object, link) = ctx.secrets.seal(record.object())
        objects.append((link.hash, object))
        return link
    }

    func loadLinkTable(_ link: HashAndKey) throws(FSError) {
        for r in try ctx.reader.record(link).children {
            guard let id = r.unsigned, let entry = StoredEntry(record: r), let n = r.unsigned("n") else {
                Log.error("link table \(link.hash.hex) has a malformed entry")
                throw .io
            }
            storedHardLinks[id] = (entry, UInt32(truncatingIfNeeded: n))
        }
    }

    // MARK: Closing

    public func close() throws(FSError) {
        committer?.stop()
        try commits.withLock { () throws(FSError) in
            try lock.withLock { () throws(FSError) in
                guard !closed else { return }
                // Let a background chunking finish: the daemon may exit right after, mid-write.
                while backgroundCompaction != nil { lock.wait(backgroundCompactionDone) }
                defer { closed = true }
                if !isReadOnly { try commitLocked() }
            }
        }
    }

    /// Called by the committer: commits if the oldest unsaved change is older than the interval.
    /// Returns the seconds until it should look again.
    func commitIfDue(interval: Double) -> Double {
        let wait = lock.withLock { () -> Double in
            guard !closed, let first = firstUnsavedChange else { return interval }
            let age = Double(Timestamp.now().totalNanoseconds - first.totalNanoseconds) / 1e9
            return max(0, interval - age)
        }
        guard wait == 0 else { return wait }
        do { try commit() } catch {
            if !StoreTrouble.isUnwritable(error) { Log.error("background commit failed (\(error)); retrying in \(interval) s") }
            lock.withLock { firstUnsavedChange = .now() }
        }
        return interval
    }
}

/// The background thread that commits at most `interval` seconds after the first unsaved change.
final class Committer: @unchecked Sendable {
    private weak var volume: Volume?
    private let interval: Double
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var stopped = false
    private var thread: pthread_t?

    init(volume: Volume, interval: Double) {
        self.volume = volume
        self.interval = max(0.05, interval)
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        let box = Unmanaged.passRetained(self)
        var t = pthread_t()
        pthread_create(&t, nil, { arg in
            let c = Unmanaged<Committer>.fromOpaque(arg!).takeRetainedValue()
            c.loop()
            return nil
        }, box.toOpaque())
        thread = t
    }

    private func loop() {
        var wait = interval
        while true {
            pthread_mutex_lock(&mutex)
            if !stopped {
                var ts = timespec()
                clock_gettime(CLOCK_REALTIME, &ts)
                let ns = Int(ts.tv_nsec) + Int(wait * 1e9)
                ts.tv_sec += ns / 1_000_000_000
                ts.tv_nsec = ns % 1_000_000_000
                pthread_cond_timedwait(&condition, &mutex, &ts)
            }
            let stop = stopped
            pthread_mutex_unlock(&mutex)
            guard !stop, let volume else { return }
            wait = volume.commitIfDue(interval: interval)
        }
    }

    /// A first unsaved change was made: start counting.
    func wake() {
        pthread_mutex_lock(&mutex)
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    func stop() {
        pthread_mutex_lock(&mutex)
        stopped = true
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
        if let thread { pthread_join(thread, nil) }
        self.thread = nil
    }
}
