import Condensation

/// How a directory is written as objects.
///
/// A small directory is one object: `e → { <name> → fields … }`, names in UTF-8 byte order.
/// A large one is an index `p → { <first name> → <key> #page … }` over page objects of the same `e`
/// form. Pages are cut where a name's hash hits a pattern (content-defined, like file chunks), so
/// adding or changing one entry changes one page and the index: the other pages encode to the very
/// same objects (convergent keys) and are neither written nor sent again.
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
        let sizes = entries.map(\.approximateSize)
        let total = sizes.reduce(0, +)
        if total <= singleObjectLimit {
            return seal(Record(text: entriesLabel, children: entries), secrets, &objects)
        }
        var index = Record(text: pagesLabel)
        var start = 0
        var pageSize = 0
        // Pages are slices of `entries`, cut by index: copying each entry into a page array cost a
        // retain and a release per node of a 100k-entry directory.
        func closePage(_ end: Int) {
            guard end > start else { return }
            let link = seal(Record(text: entriesLabel, children: Array(entries[start..<end])), secrets, &objects)
            index.add(Record(bytes: entries[start].bytes, children: [link.record]))
            start = end
            pageSize = 0
        }
        for i in entries.indices {
            pageSize += sizes[i]
            if pageSize >= maximumPage || (pageSize >= minimumPage && fnv1a(entries[i].bytes) & 0x3f == 0) { closePage(i + 1) }
        }
        closePage(entries.count)
        return seal(index, secrets, &objects)
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
