import Condensation
import Glibc

/// Three-way merge of two versions over their nearest common ancestor, on stored trees.
///
/// Deterministic: the result depends only on the two versions, not on which device merges, so
/// every device reaches the same tree (and, with convergent keys, the same objects). Nothing is
/// silently dropped:
/// - changes to different entries combine;
/// - an entry changed on one side only takes that change;
/// - a file changed on both sides keeps both: the newer version's content under the name, the
///   other's as `name (conflict DEVICE DATE)` beside it;
/// - a delete against a change keeps the change;
/// - two directories of the same name (changed on both sides, or new on both) merge recursively.
public struct Merger {
    let reader: ObjectReader
    let secrets: Secrets
    internal(set) var objects: [(Hash, Object)] = []
    /// Names of conflict copies made, for the log.
    internal(set) var conflicts: [String] = []

    init(reader: ObjectReader, secrets: Secrets) {
        self.reader = reader
        self.secrets = secrets
    }

    /// The outcome of merging two versions.
    enum Outcome {
        /// One side already contains the other: no new version is needed.
        case upToDate
        /// Ours is an ancestor of theirs: take theirs as it is.
        case fastForward(Version)
        /// A merge version's record, with every new object it needs.
        case merged(Record, [(Hash, Object)], conflicts: [String])
    }

    /// Merges `theirs` into `ours`. `device` names this device in the new version.
    static func merge(ours: Version, theirs: Version, reader: ObjectReader, secrets: Secrets,
                      device: Hash) throws(FSError) -> Outcome {
        if ours.link.hash == theirs.link.hash { return .upToDate }
        let base = try nearestCommonAncestor(ours, theirs, reader: reader)
        if base?.link.hash == theirs.link.hash { return .upToDate }
        if base?.link.hash == ours.link.hash { return .fastForward(theirs) }
        var merger = Merger(reader: reader, secrets: secrets)
        // The newer version (then the larger hash) keeps names in conflicts: a rule both devices agree on.
        let oursWins = (ours.revision, ours.link.hash) > (theirs.revision, theirs.link.hash)
        let winner = oursWins ? ours : theirs, loser = oursWins ? theirs : ours
        let rootEntry = try merger.mergeDirectoryEntry(
            base: base?.rootEntry, winner: winner.rootEntry, loser: loser.rootEntry, loserLabel: label(loser))
        let links = try merger.mergeLinkTables(base: base?.links, winner: winner.links, loser: loser.links)
        let parents = [ours.link, theirs.link].sorted { $0.hash < $1.hash }
        let summary = ChangeSummary(added: 0, changed: merger.conflicts.count, removed: 0, bytes: 0)
        // The winner's device, not the merging one: both devices must produce the very same merge
        // version, or each merges the other's merge, round after round.
        let record = Version.record(revision: max(ours.revision, theirs.revision) + 1, device: winner.device ?? device,
                                    parents: parents, root: rootEntry, links: links, summary: summary)
        return .merged(record, merger.objects, conflicts: merger.conflicts)
    }

    static func label(_ v: Version) -> String {
        let device = v.device.map { String($0.hex.prefix(8)) } ?? "unknown"
        var t = time_t(v.revision / 1000)
        var tm = tm()
        gmtime_r(&t, &tm)
        func p(_ x: Int32) -> String { x < 10 ? "0\(x)" : "\(x)" }
        return "\(device) \(tm.tm_year + 1900)-\(p(tm.tm_mon + 1))-\(p(tm.tm_mday)) \(p(tm.tm_hour))\(p(tm.tm_min))"
    }

    /// The common ancestor closest to `b`, walking breadth-first; nil if the histories are unrelated.
    static func nearestCommonAncestor(_ a: Version, _ b: Version, reader: ObjectReader) throws(FSError) -> Version? {
        // Not a literal: a and b may be the same version (a device told of the version it has).
        var loaded: [Hash: Version] = [a.link.hash: a]
        loaded[b.link.hash] = b
        func version(_ link: HashAndKey) throws(FSError) -> Version {
            if let v = loaded[link.hash] { return v }
            let v = try Version.load(link, reader: reader)
            loaded[link.hash] = v
            return v
        }
        var ancestorsOfA: Set<Hash> = []
        var queue = [a.link]
        while let link = queue.popLast() {
            guard ancestorsOfA.insert(link.hash).inserted else { continue }
            queue.append(contentsOf: try version(link).parents)
        }
        var frontier = [b.link]
        var seen: Set<Hash> = []
        while !frontier.isEmpty {
            // Deterministic order within a level.
            let level = frontier.sorted { $0.hash < $1.hash }
            frontier = []
            for link in level where seen.insert(link.hash).inserted {
                if ancestorsOfA.contains(link.hash) { return try version(link) }
                frontier.append(contentsOf: try version(link).parents)
            }
        }
        return nil
    }

    // MARK: Directories

    /// Merges two directory entries whose contents both changed.
    mutating func mergeDirectoryEntry(base: StoredEntry?, winner: StoredEntry, loser: StoredEntry,
                                      loserLabel: String) throws(FSError) -> StoredEntry {
        let baseEntries = try entries(base?.directory)
        let winnerEntries = try entries(winner.directory)
        let loserEntries = try entries(loser.directory)
        var result: [Name: Record] = [:]
        var names = Set(winnerEntries.keys)
        names.formUnion(loserEntries.keys)
        names.formUnion(baseEntries.keys)
        var conflictCopies: [(Name, Record)] = []
        for name in names.sorted(by: { Metadata.byteOrder($0.string, $1.string) }) {
            let b = baseEntries[name], w = winnerEntries[name], l = loserEntries[name]
            if w == l { result[name] = w; continue }
            if w == b { result[name] = l; continue }
            if l == b { result[name] = w; continue }
            // Changed on both sides (or new on both).
            guard let w, let l else {
                result[name] = w ?? l  // a delete loses to a change
                continue
            }
            let we = StoredEntry(record: w), le = StoredEntry(record: l)
            // Two states of one container merge over the container's own chain (ContainerMerge).
            if let we, let le, we.container != nil, le.container != nil,
               let merged = try mergeContainers(winner: we, loser: le, loserLabel: loserLabel) {
                var r = Record(text: name.string)
                merged.write(to: &r)
                result[name] = r
                continue
            }
            if let we, let le, we.metadata.isDirectory, le.metadata.isDirectory, we.hardLink == nil,
               we.container == nil, le.container == nil {
                let be = b.flatMap(StoredEntry.init(record:)).flatMap { $0.metadata.isDirectory ? $0 : nil }
                let merged = try mergeDirectoryEntry(base: be, winner: we, loser: le, loserLabel: loserLabel)
                var r = Record(text: name.string)
                merged.write(to: &r)
                result[name] = r
                continue
            }
            result[name] = w
            conflictCopies.append((name, l))
        }
        for (name, record) in conflictCopies {
            var copyName = "\(name.string) (conflict \(loserLabel))"
            var n = 2
            while result[Name(copyName)] != nil {
                copyName = "\(name.string) (conflict \(loserLabel) \(n))"
                n += 1
            }
            var r = Record(text: copyName)
            r.children = record.children
            result[Name(copyName)] = r
            conflicts.append(copyName)
        }
        var merged = winner
        let sorted = result.keys.sorted { Metadata.byteOrder($0.string, $1.string) }.compactMap { result[$0] }
        merged.directory = DirectoryFormat.encode(sorted, secrets: secrets, into: &objects)
        merged.subdirectories = UInt64(sorted.filter { StoredEntry(record: $0)?.metadata.isDirectory == true }.count)
        return merged
    }

    /// A directory's entries by name (the name node with its field children).
    private func entries(_ link: HashAndKey?) throws(FSError) -> [Name: Record] {
        guard let link else { return [:] }
        var out: [Name: Record] = [:]
        for e in try DirectoryFormat.decode(link, reader: reader) {
            var fields = Record(bytes: e.bytes)
            fields.children = e.children
            out[Name(e.text)] = fields
        }
        return out
    }

    // MARK: Hard links

    /// Link tables merge by id with the same rules; a link changed on both sides keeps the winner's.
    mutating func mergeLinkTables(base: HashAndKey?, winner: HashAndKey?, loser: HashAndKey?) throws(FSError) -> HashAndKey? {
        if winner == loser { return winner }
        func table(_ link: HashAndKey?) throws(FSError) -> [UInt64: Record] {
            guard let link else { return [:] }
            var out: [UInt64: Record] = [:]
            for r in try reader.record(link).children { if let id = r.unsigned { out[id] = r } }
            return out
        }
        let b = try table(base), w = try table(winner), l = try table(loser)
        var ids = Set(w.keys)
        ids.formUnion(l.keys)
        var record = Record()
        for id in ids.sorted() {
            let bw = b[id], ww = w[id], lw = l[id]
            let pick: Record? = ww == lw ? ww : ww == bw ? lw : lw == bw ? ww : (ww ?? lw)
            if let pick { record.add(pick) }
        }
        guard !record.children.isEmpty else { return nil }
        let (object, link) = secrets.seal(record.object())
        objects.append((link.hash, object))
        return link
    }
}

