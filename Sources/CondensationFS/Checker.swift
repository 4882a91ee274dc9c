import Condensation

/// `cdsfs fsck`: opens every object reachable from the device's boxes the way a mount would
/// (hash, parse, decrypt, signatures, chunk sizes) and reports each bad one by hash.
public final class Checker {
    public struct Problem: CustomStringConvertible {
        public let hash: Hash
        public let what: String
        public var description: String { "\(hash.hex): \(what)" }
    }

    public private(set) var problems: [Problem] = []
    public private(set) var checked = 0
    public private(set) var bytes: UInt64 = 0
    let home: Home
    let progress: (Int, UInt64) -> Void
    private var seen: Set<Hash> = []
    private var reader: ObjectReader!

    public init(home: Home, progress: @escaping (Int, UInt64) -> Void) {
        self.home = home
        self.progress = progress
    }

    private func problem(_ hash: Hash, _ what: String) {
        problems.append(Problem(hash: hash, what: what))
    }

    /// Fetches an object once; nil (and a problem) if it is missing or corrupt.
    private func fetch(_ hash: Hash) -> Object? {
        guard seen.insert(hash).inserted else { return nil }
        checked += 1
        if checked % 256 == 0 { progress(checked, bytes) }
        do {
            guard let o = try home.store.get(hash) else {
                problem(hash, "missing")
                return nil
            }
            bytes += UInt64(o.bytes.count)
            return o
        } catch {
            problem(hash, "\(error)")
            return nil
        }
    }

    /// A box entry's object. Every entry must be an envelope, so it is fetched even when the walk
    /// has seen that object already as something else (an entry naming the public key or a chunk
    /// must still be reported); a missing or corrupt one was reported when first seen.
    private func fetchEntry(_ hash: Hash) -> Object? {
        guard seen.contains(hash) else { return fetch(hash) }
        return try? home.store.get(hash)
    }

    private func record(_ link: HashAndKey, _ what: String) -> Record? {
        guard var o = fetch(link.hash) else { return nil }
        o.crypt(with: link.key)
        do { return try Record(object: o) } catch {
            problem(link.hash, "\(what) does not parse (\(error))")
            return nil
        }
    }

    public func run() {
        let actor = home.keyPair.actor
        let store = home.store
        _ = fetch(actor)
        do {
            for h in try store.list(actor, .public) {
                guard let envelope = fetchEntry(h) else { continue }
                do {
                    let card = try Envelope.openPublic(envelope, signer: home.keyPair.publicKey)
                    if let c = fetch(card), (try? Record(object: c)) == nil { problem(card, "public card does not parse") }
                } catch { problem(h, "public envelope: \(error)") }
            }
            for h in try store.list(actor, .private) {
                guard let envelope = fetchEntry(h) else { continue }
                let link: HashAndKey
                do { link = try Envelope.openPrivate(envelope, signer: home.keyPair.publicKey, keyPair: home.keyPair) } catch {
                    problem(h, "private envelope: \(error)")
                    continue
                }
                guard let r = record(link, "private root") else { continue }
                guard let root = PrivateRoot(record: r) else {
                    problem(link.hash, "private root lacks its secret or filesystem")
                    continue
                }
                checkVersions(root.filesystem)
            }
        } catch {
            problems.append(Problem(hash: actor, what: "cannot list boxes: \(error)"))
        }
        progress(checked, bytes)
    }

    private func checkVersions(_ head: HashAndKey) {
        var queue = [head]
        while let link = queue.popLast() {
            guard let r = record(link, "version") else { continue }
            let version: Version
            do { version = try Version(link: link, record: r) } catch {
                problem(link.hash, "version is malformed")
                continue
            }
            queue.append(contentsOf: version.parents)
            checkEntry(version.rootEntry, in: link.hash)
            if let links = version.links, let table = record(links, "link table") {
                for e in table.children {
                    guard let entry = StoredEntry(record: e) else {
                        problem(links.hash, "malformed hard link entry")
                        continue
                    }
                    checkEntry(entry, in: links.hash)
                }
            }
        }
    }

    private func checkEntry(_ entry: StoredEntry, in parent: Hash) {
        if let d = entry.directory { checkDirectory(d) }
        if let c = entry.container, let r = record(c, "container head") {
            guard let head = ContainerHead(record: r) else { return problem(c.hash, "container head is malformed") }
            checkVersions(head.version)
        }
        switch entry.content {
        case .chunks(let chunks)?: checkChunks(chunks)
        case .chunkList(let link, _)?:
            guard let r = record(link, "chunk list") else { return }
            guard let chunks = ChunkRef.list(in: r) else { return problem(link.hash, "chunk list has a malformed entry") }
            checkChunks(chunks)
        default: break
        }
    }

    private func checkDirectory(_ link: HashAndKey) {
        guard let r = record(link, "directory") else { return }
        var entries = r.child(DirectoryFormat.entriesLabel)?.children ?? []
        for p in r.child(DirectoryFormat.pagesLabel)?.children ?? [] {
            guard let pl = p.firstChild.flatMap(HashAndKey.init(record:)) else {
                problem(link.hash, "malformed page link")
                continue
            }
            if let page = record(pl, "directory page") {
                entries.append(contentsOf: page.child(DirectoryFormat.entriesLabel)?.children ?? [])
            }
        }
        for e in entries {
            guard let entry = StoredEntry(record: e) else {
                problem(link.hash, "malformed entry \"\(e.text)\"")
                continue
            }
            checkEntry(entry, in: link.hash)
        }
    }

    /// Each chunk is opened once (`fetch`), however many pieces of it the lists name: a patch
    /// object holds the pages of many places in a file.
    private func checkChunks(_ chunks: [ChunkRef]) {
        for c in chunks {
            guard let link = c.link, let o = fetch(link.hash) else { continue }
            let expected = c.sealing?.sealedSize(plaintext: Int(c.chunkLength)) ?? Int(c.chunkLength)
            if o.hashCount != 0 || o.dataCount != expected {
                problem(link.hash, "chunk holds \(o.dataCount) bytes, its list says \(c.chunkLength)")
            } else if let sealing = c.sealing {
                // The hash matched; the blocks must open too (else the writer sealed them wrong).
                var data = Array(o.data)
                let ok = data.withUnsafeMutableBytes { sealing.open($0, plaintext: Int(c.chunkLength), key: link.key) }
                if !ok { problem(link.hash, "chunk's blocks fail their check") }
            }
        }
    }
}
