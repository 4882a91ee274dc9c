import Condensation

/// How a directory is written as objects.
///
/// A small directory is one object: `e → { <name> → fields … }`, names in UTF-8 byte order.
/// A large one is an index `p → { <first name> → <key> #page … }` over page objects of the same `e`
/// form. Pages are cut where a name's hash hits a pattern (content-defined, like file chunks), so
/// adding or changing one entry changes one page and the index: the other pages encode to the very
/// same objects (convergent keys) and are neither written nor sent again.
/// The pages of a directory as last encoded: for each, its first name, how many entries it holds,
/// their approximate size, its link, and the first name of the next page (nil for the last).
struct DirectoryPages {
    struct Page {
        let first: String
        /// The first entry's name as stored.
        let firstBytes: ArraySlice<UInt8>
        let count: Int
        let size: Int
        let link: HashAndKey
        var next: String?
    }
    /// The directory object they were indexed by.
    let link: HashAndKey
    let pages: [Page]
}

enum DirectoryFormat {
    static let entriesLabel = "e"
    static let pagesLabel = "p"
    /// A directory whose entries encode to more than this is split into pages.
    static let singleObjectLimit = 64 * 1024
    static let minimumPage = 16 * 1024
    static let maximumPage = 128 * 1024

    /// Encodes sorted entries, sealing and collecting every object it creates. Returns the link to
    /// the directory object.
    static func encode(_ entries: [Record], secrets: Secrets, into objects: inout [(Hash, Object)]) -> HashAndKey {
        encodeWithPages(entries, secrets: secrets, into: &objects).0
    }

    /// As `encode`, and the directory's pages if it has any (for `reencode` next time).
    static func encodeWithPages(_ entries: [Record], secrets: Secrets,
                                into objects: inout [(Hash, Object)]) -> (HashAndKey, DirectoryPages?) {
        let sizes = entries.map(\.approximateSize)
        if sizes.reduce(0, +) <= singleObjectLimit {
            return (seal(Record(text: entriesLabel, children: entries), secrets, &objects), nil)
        }
        var pager = Pager(secrets: secrets)
        for i in entries.indices { pager.add(entries[i], size: sizes[i]) }
        let (link, pages) = pager.finish()
        objects.append(contentsOf: pager.objects)
        return (link, pages)
    }

    /// Encodes a large directory again, reusing the pages of its last encoding that still hold the
    /// same entries: a commit after one change in a directory of 100k entries re-encodes one page,
    /// not all of them. The result is exactly what `encode` gives for the same entries (pages are
    /// content-defined: a page that starts at the same entry and holds the same entries is cut at
    /// the same place), so devices still agree on the directory's objects.
    ///
    /// `count` entries in name order: `name(i)`, `isClean(i)` (its record is as last encoded) and
    /// `record(i)` (encodes it). Returns the link, the pages and the objects sealed; nil if the
    /// directory no longer needs pages (the caller encodes it whole).
    static func reencode(count: Int, name: (Int) -> String, isClean: (Int) -> Bool,
                         record: (Int) throws(FSError) -> Record, previous: DirectoryPages,
                         secrets: Secrets) throws(FSError) -> (HashAndKey, DirectoryPages, [(Hash, Object)])? {
        var byFirst: [Name: DirectoryPages.Page] = [:]
        for page in previous.pages { byFirst[Name(page.first)] = page }
        var pager = Pager(secrets: secrets)
        var i = 0
        while i < count {
            if pager.atPageStart, let page = byFirst[Name(name(i))], i + page.count <= count,
               (i + page.count == count) == (page.next == nil),
               page.next.map({ Name(name(i + page.count)) == Name($0) }) ?? true,
               (i..<(i + page.count)).allSatisfy(isClean) {
                pager.reuse(page)
                i += page.count
                continue
            }
            let r = try record(i)
            pager.add(r, size: r.approximateSize)
            i += 1
        }
        guard pager.total > singleObjectLimit else { return nil }
        let (link, pages) = pager.finish()
        return (link, pages, pager.objects)
    }

    /// Cuts entries into pages and builds the index.
    private struct Pager {
        let secrets: Secrets
        var index = Record(text: pagesLabel)
        var pages: [DirectoryPages.Page] = []
        var page: [Record] = []
        var pageSize = 0
        var total = 0
        /// The page and index objects sealed.
        var objects: [(Hash, Object)] = []

        init(secrets: Secrets) { self.secrets = secrets }

        var atPageStart: Bool { page.isEmpty }

        mutating func add(_ entry: Record, size: Int) {
            page.append(entry)
            pageSize += size
            total += size
            if pageSize >= maximumPage || (pageSize >= minimumPage && fnv1a(entry.bytes) & 0x3f == 0) { close() }
        }

        mutating func reuse(_ p: DirectoryPages.Page) {
            append(DirectoryPages.Page(first: p.first, firstBytes: p.firstBytes, count: p.count, size: p.size, link: p.link, next: nil))
            total += p.size
        }

        private mutating func close() {
            guard let first = page.first else { return }
            let link = seal(Record(text: entriesLabel, children: page), secrets, &objects)
            append(DirectoryPages.Page(first: first.text, firstBytes: first.bytes, count: page.count, size: pageSize, link: link, next: nil))
            page = []
            pageSize = 0
        }

        private mutating func append(_ p: DirectoryPages.Page) {
            if !pages.isEmpty { pages[pages.count - 1].next = p.first }
            pages.append(p)
            index.add(Record(bytes: p.firstBytes, children: [p.link.record]))
        }

        mutating func finish() -> (HashAndKey, DirectoryPages) {
            close()
            let link = seal(index, secrets, &objects)
            return (link, DirectoryPages(link: link, pages: pages))
        }
    }

    private static func seal(_ top: Record, _ secrets: Secrets, _ objects: inout [(Hash, Object)]) -> HashAndKey {
        var record = Record()
        record.children = [top]
        let (object, link) = secrets.seal(record.object())
        objects.append((link.hash, object))
        return link
    }

    /// Reads a directory's entry nodes (name node with field children), following pages.
    static func decode(_ link: HashAndKey, reader: ObjectReader) throws(FSError) -> [Record] {
        let record = try reader.record(link)
        if let entries = record.child(entriesLabel) { return entries.children }
        guard let pages = record.child(pagesLabel) else {
            Log.error("directory object \(link.hash.hex) has neither entries nor pages")
            throw .io
        }
        var out: [Record] = []
        for p in pages.children {
            guard let pageLink = p.firstChild.flatMap(HashAndKey.init(record:)) else {
                Log.error("directory index \(link.hash.hex) has a malformed page link")
                throw .io
            }
            let page = try reader.record(pageLink)
            out.append(contentsOf: page.child(entriesLabel)?.children ?? [])
        }
        return out
    }

    static func fnv1a(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}

extension Record {
    /// Roughly what the node costs encoded; enough to decide where pages end. Walks the children
    /// in place (a stack of copied nodes cost a retain per node).
    var approximateSize: Int {
        var size = 2 + bytes.count + (hash == nil ? 0 : 36)
        for i in children.indices { size += children[i].approximateSize }
        return size
    }
}

/// Fetches and opens objects of the local store, mapping every failure to EIO with a log line that
/// names the hash (a bad object costs the operation that needs it, never the whole mount).
final class ObjectReader: Sendable {
    let store: any Store

    init(store: any Store) { self.store = store }

    func object(_ link: HashAndKey) throws(FSError) -> Object {
        let object: Object?
        do { object = try store.get(link.hash) } catch {
            Log.error("reading object \(link.hash.hex): \(error)")
            throw .io
        }
        guard var object else {
            Log.error("object \(link.hash.hex) is missing from the store")
            throw .io
        }
        object.crypt(with: link.key)
        return object
    }

    func record(_ link: HashAndKey) throws(FSError) -> Record {
        let object = try object(link)
        do { return try Record(object: object) } catch {
            Log.error("object \(link.hash.hex) is not a record (\(error))")
            throw .io
        }
    }
}
