import Condensation
import Glibc

/// Containers received from other users, shown under `Shared/<folder> (<contact>)`.
extension Volume {
    public static let sharedFolder = "Shared"

    /// Shows a received container (or its newer state) under `Shared/`, and commits. The entry is
    /// part of this user's tree, so the user's other devices get it with the ordinary sync. A state
    /// older than the one shown is refused (a replayed message). The container's own objects are the
    /// owner's and are linked as they are.
    func receiveShare(head headLink: HashAndKey, id: [UInt8], name: String,
                      owner: ContainerOwner) throws(FSError) -> (outcome: String, invalidations: [Invalidation]) {
        try lock.withLock { () throws(FSError) in
            try checkWritable()
            try load(root)
            var out: [Invalidation] = []
            let shared: Node
            if let s = root.children![Self.sharedFolder] {
                guard s.isDirectory, s.container == nil else {
                    Log.error("/\(Self.sharedFolder) is not a folder; a share from \(owner.contact) cannot be shown")
                    throw .exists
                }
                shared = s
            } else {
                shared = try insertNew(1, Self.sharedFolder, meta: Metadata(mode: UInt32(S_IFDIR) | 0o755, uid: getuid(), gid: getgid()))
                out.append(.entry(parent: 1, name: Self.sharedFolder))
            }
            try load(shared)

            var entry = StoredEntry(metadata: Metadata(mode: UInt32(S_IFDIR) | 0o755, uid: 0, gid: 0))
            entry.container = headLink
            entry.owner = owner.record
            guard var state = try resolveContainer(&entry), let version = state.version else { throw .io }
            entry.metadata = version.rootEntry.metadata
            state.owner = owner

            var entryName = "\(name) (\(owner.contact))"
            if let (oldName, old) = shared.children!.first(where: { $0.value.container?.id == id }) {
                if old.container?.head == headLink && old.container?.owner == owner { return ("\(oldName): up to date", []) }
                if let have = old.container?.version, have.revision > version.revision {
                    Log.warning("a share of \(oldName) older than the one shown was refused")
                    return ("\(oldName): older than the state shown; refused", [])
                }
                shared.children![oldName] = nil
                old.parent = nil
                entryName = oldName
                out.append(.entry(parent: shared.ino, name: oldName))
            } else {
                var k = 2
                while shared.children![entryName] != nil {
                    entryName = "\(name) (\(owner.contact) \(k))"
                    k += 1
                }
            }
            let n = newNode(entry, parent: shared)
            n.container = state
            shared.children![entryName] = n
            touchDirectory(shared)
            changed(shared)
            out.append(.entry(parent: shared.ino, name: entryName))
            try commitLocked()
            Log.info("received \(Self.sharedFolder)/\(entryName) (\(headLink.hash.shortHex))")
            return ("received \(Self.sharedFolder)/\(entryName)", out)
        }
    }
}
