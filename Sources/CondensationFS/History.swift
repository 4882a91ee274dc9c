import Condensation

/// The version graph of a home, walked from the newest version through `parents`.
public struct History {
    let home: Home
    let reader: ObjectReader

    public init(home: Home) {
        self.home = home
        reader = ObjectReader(store: home.store)
    }

    /// Every version reachable from `head`, newest first (by revision, then hash).
    /// Versions that cannot be read are logged and skipped (their parents too).
    public func versions(from head: Version) throws -> [Version] {
        var seen: Set<Hash> = [head.link.hash]
        var out: [Version] = [head]
        var queue = head.parents
        while let link = queue.popLast() {
            guard seen.insert(link.hash).inserted else { continue }
            guard let v = try? Version.load(link, reader: reader) else {
                Log.warning("version \(link.hash.hex) cannot be read (purged or damaged)")
                continue
            }
            out.append(v)
            queue.append(contentsOf: v.parents)
        }
        return out.sorted { ($0.revision, $0.link.hash) > ($1.revision, $1.link.hash) }
    }

    func find(_ hash: Hash, from head: Version) throws -> Version? {
        try versions(from: head).first { $0.link.hash == hash }
    }
}

extension History {
    /// Forgets old history: keeps the newest `keepVersions` versions and those at or after
    /// `keepSince` (ms), rewriting the kept versions so that none links to a dropped one, and
    /// publishes the rewritten head. The dropped versions' objects become garbage for `gc`.
    /// Returns how many versions were dropped.
    public func prune(keepVersions: Int?, keepSince: Int64?) throws -> Int {
        let (head, secrets) = try home.readHead()
        let all = try versions(from: head.version)
        var keep: Set<Hash> = [head.version.link.hash]
        for (i, v) in all.enumerated() {
            if let n = keepVersions, i < n { keep.insert(v.link.hash) }
            if let since = keepSince, v.revision >= since { keep.insert(v.link.hash) }
        }
        guard keep.count < all.count else { return 0 }
        var rewritten: [Hash: HashAndKey] = [:]
        var objects: [(Hash, Object)] = []
        for v in all.reversed() where keep.contains(v.link.hash) {
            let parents = v.parents.compactMap { rewritten[$0.hash] }
            let record = Version.record(revision: v.revision, device: v.device ?? home.keyPair.actor, parents: parents,
                                        root: v.rootEntry, links: v.links,
                                        summary: ChangeSummary(added: v.added, changed: v.changed, removed: v.removed, bytes: v.bytes))
            let (object, link) = secrets.seal(record.object())
            objects.append((link.hash, object))
            rewritten[v.link.hash] = link
        }
        var root = head.root
        root.filesystem = rewritten[head.version.link.hash]!
        _ = try home.publish(root: root, objects: objects, replacing: head.envelopes)
        return all.count - keep.count
    }
}
