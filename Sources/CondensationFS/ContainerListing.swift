import Condensation

/// The containers of a version, found by walking its directories (containers inside containers
/// too): what the syncer sends to recipients and what `cdsfs shares` lists.
struct ContainerListing {
    /// Path from the volume's top, e.g. `/Projects`.
    var path: String
    var name: String
    var headLink: HashAndKey
    var head: ContainerHead
    var recipients: [Hash: Recipient]
    var owner: ContainerOwner?

    /// Every container in `version`. Walks every directory: run when a version is pushed, not per
    /// operation. Directories that do not open are skipped with a log line (fsck names them).
    static func all(in version: Version, reader: ObjectReader) -> [ContainerListing] {
        var out: [ContainerListing] = []
        var queue: [(String, HashAndKey)] = version.rootEntry.directory.map { [("", $0)] } ?? []
        while let (path, link) = queue.popLast() {
            guard let entries = try? DirectoryFormat.decode(link, reader: reader) else { continue }
            for e in entries {
                guard let stored = StoredEntry(record: e), stored.metadata.isDirectory else { continue }
                let childPath = path + "/" + e.text
                if let headLink = stored.container {
                    guard let head = (try? reader.record(headLink)).flatMap(ContainerHead.init(record:)),
                          let v = try? Version.load(head.version, reader: reader) else {
                        Log.warning("container \(childPath) does not open; skipped")
                        continue
                    }
                    out.append(ContainerListing(path: childPath, name: e.text, headLink: headLink, head: head,
                                                recipients: Recipient.read(stored.recipients),
                                                owner: ContainerOwner(record: stored.owner)))
                    if let d = v.rootEntry.directory { queue.append((childPath, d)) }
                } else if let d = stored.directory {
                    queue.append((childPath, d))
                }
            }
        }
        return out.sorted { $0.path < $1.path }
    }
}
