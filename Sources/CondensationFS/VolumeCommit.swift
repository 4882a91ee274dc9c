import Condensation
import Glibc

/// Commits: the unsaved tree becomes objects, a version, a private root and an envelope; the
/// envelope swap in the private box is the atomic commit point.
extension Volume {
    /// Commits everything unsaved and returns once it is durable. Does nothing if nothing changed.
    public func commit() throws(FSError) {
        try lock.withLock { () throws(FSError) in try commitLocked() }
    }

    func commitLocked() throws(FSError) {
        guard !isReadOnly, root.dirty || linkTableDirty else {
            firstUnsavedChange = nil
            return
        }
        var objects: [(Hash, Object)] = []
        var encoded: [(Node, HashAndKey?)] = []
        let linkTableBefore = (linkTableDirty, linkTableLink)
        let version: Version
        let envelopeHash: Hash
        let written: PrivateRoot
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
            version = try Version(link: versionLink, record: versionRecord)

            var root = head.root
            root.filesystem = versionLink
            (envelopeHash, written) = try home.publish(root: root, objects: objects, replacing: head.envelopes)
        } catch {
            // Nothing of this attempt was committed, and the directory objects it encoded may never
            // have reached the store (a full or read-only disk fails `publish` halfway). Those
            // directories are changed again, so that the next commit encodes and writes them instead
            // of linking to objects the store does not have.
            for (dir, link) in encoded.reversed() {
                dir.directoryLink = link
                dir.dirty = true
            }
            (linkTableDirty, linkTableLink) = linkTableBefore
            // A full or read-only store was said once already (StoreTrouble), not at every attempt.
            if !StoreTrouble.isUnwritable(error) { Log.error("commit failed: \(error)") }
            throw error
        }
        head = Head(version: version, envelopes: [envelopeHash], root: written)
        onCommit?()
        summary = ChangeSummary()
        linkTableDirty = false
        firstUnsavedChange = nil
        buffered = [:]
        bufferedBytes = 0
        Log.info("committed version \(version.link.hash.shortHex)")
        StoreTrouble.cleared(version.link.hash)
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
        try lock.withLock { () throws(FSError) in
            guard !closed else { return }
            // Let a background chunking finish: the daemon may exit right after, mid-write.
            while backgroundCompaction != nil { lock.wait(backgroundCompactionDone) }
            defer { closed = true }
            if !isReadOnly { try commitLocked() }
        }
    }

    /// Called by the committer: commits if the oldest unsaved change is older than the interval.
    /// Returns the seconds until it should look again.
    func commitIfDue(interval: Double) -> Double {
        lock.withLock {
            guard !closed, let first = firstUnsavedChange else { return interval }
            let age = Double(Timestamp.now().totalNanoseconds - first.totalNanoseconds) / 1e9
            guard age >= interval else { return interval - age }
            do { try commitLocked() } catch {
                if !StoreTrouble.isUnwritable(error) { Log.error("background commit failed (\(error)); retrying in \(interval) s") }
                firstUnsavedChange = .now()
            }
            return interval
        }
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
