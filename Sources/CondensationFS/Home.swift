import Condensation
import Glibc

/// A device's home: its key pair file, its settings, and its local folder store.
///
///     HOME/key-pair      Condensation key pair file (mode 0600)
///     HOME/settings      key = value lines
///     HOME/store/        folder store (objects/, accounts/)
public final class Home: @unchecked Sendable {
    public let path: String
    public let keyPair: KeyPair
    public let store: FolderStore

    public var keyPairPath: String { path + "/key-pair" }
    public var storePath: String { path + "/store" }

    init(path: String, keyPair: KeyPair, store: FolderStore) {
        self.path = path
        self.keyPair = keyPair
        self.store = store
    }

    /// Why a home cannot be used; each message is one line a person can act on.
    public enum Problem: Error, CustomStringConvertible, Equatable {
        case missing(String)
        case notADirectory(String)
        case alreadyInitialized(String)
        case badKeyPair(String, String)
        /// The key pair file is wrapped with a passphrase and none was given.
        case passphraseNeeded(String)
        case wrongPassphrase(String)
        case noStore(String)
        case noFilesystem(String)
        case store(String)

        public var description: String {
            switch self {
            case .missing(let p): return "no cdsfs home at \(p): run `cdsfs init --home \(p)` first"
            case .notADirectory(let p): return "\(p) is not a directory"
            case .alreadyInitialized(let p): return "\(p) is already a cdsfs home (it has a key pair); use another --home"
            case .badKeyPair(let p, let why): return "\(p) is not a usable key pair file (\(why))"
            case .passphraseNeeded(let p):
                return "\(p) is protected by a passphrase: set CDSFS_PASSPHRASE, give --passphrase-file FILE, or run on a terminal"
            case .wrongPassphrase(let p): return "wrong passphrase for \(p)"
            case .noStore(let p): return "\(p) has no folder store; the home is damaged"
            case .noFilesystem(let p): return "the store at \(p) holds no readable filesystem for this device"
            case .store(let why): return why
            }
        }
    }

    /// The home directory to use: `--home`, else `$CDSFS_HOME`, else `$XDG_DATA_HOME/cdsfs`, else
    /// `~/.local/share/cdsfs`.
    public static func resolvePath(_ option: String?) -> String {
        if let option, !option.isEmpty { return absolute(option) }
        if let env = getenv("CDSFS_HOME"), env.pointee != 0 { return absolute(String(cString: env)) }
        if let xdg = getenv("XDG_DATA_HOME"), xdg.pointee != 0 { return String(cString: xdg) + "/cdsfs" }
        let home = getenv("HOME").map { String(cString: $0) } ?? "/root"
        return home + "/.local/share/cdsfs"
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(cString: buffer)
        return cwd == "/" ? "/" + path : cwd + "/" + path
    }
}

/// How a volume is opened.
public struct VolumeOptions: Sendable {
    /// Refuse every change (EROFS).
    public var readOnly: Bool = false
    /// Open this past version instead of the newest (implies read-only).
    public var version: Hash? = nil
    /// Seconds after the first unsaved change before a commit.
    public var commitInterval: Double = 5
    /// Bytes of unsaved file data kept in memory before it is chunked into the store. Random
    /// writes are what fill it: each time it fills, the chunks they touched get patched (or, past
    /// a bound, chunked again), so it is as large as the memory bound (peak resident memory under
    /// 300 MB) allows; 48 MiB did not lower the peak of extracting a source tree.
    public var writeBufferLimit: Int = 64 * 1024 * 1024

    public init() {}
}

extension Home {
    /// Opens an existing home. `passphrase` is asked only if the key pair file is wrapped (nil: none
    /// available).
    public static func open(path: String, passphrase: () -> [UInt8]? = { nil }) throws(Problem) -> Home {
        guard FileSystem.exists(path) else { throw .missing(path) }
        guard FileSystem.isDirectory(path) else { throw .notADirectory(path) }
        let keyPath = path + "/key-pair"
        let bytes: [UInt8]?
        do { bytes = try FileSystem.read(keyPath, limit: 1 << 20) } catch { throw .badKeyPair(keyPath, "\(error)") }
        guard let bytes else { throw .missing(path) }
        let keyPair: KeyPair
        if WrappedKeyPair.isWrapped(bytes) {
            guard let secret = passphrase() else { throw .passphraseNeeded(keyPath) }
            do { keyPair = try WrappedKeyPair.unwrap(bytes, passphrase: secret) } catch {
                if error == .wrongPassphrase { throw .wrongPassphrase(keyPath) }
                throw .badKeyPair(keyPath, error.description)
            }
        } else {
            do { keyPair = try KeyPair(fileBytes: bytes) } catch { throw .badKeyPair(keyPath, "\(error)") }
        }
        guard let store = FolderStore.open(path + "/store") else { throw .noStore(path + "/store") }
        return Home(path: path, keyPair: keyPair, store: store)
    }

    /// Creates a new home: key pair, folder store, public card, and (unless the device is to join
    /// an existing group) a first version holding an empty root directory. With a `passphrase` the key
    /// pair file is wrapped with it.
    public static func create(path: String, joining: Bool = false, passphrase: [UInt8]? = nil) throws(Problem) -> Home {
        if FileSystem.exists(path + "/key-pair") { throw .alreadyInitialized(path) }
        if FileSystem.exists(path) && !FileSystem.isDirectory(path) { throw .notADirectory(path) }
        let keyPair = KeyPair.generate()
        let home: Home
        do {
            try FileSystem.makeDirectories(path, mode: 0o700)
            let store = try FolderStore.create(path + "/store")
            let file = try passphrase.map { try WrappedKeyPair.wrap(keyPair, passphrase: $0) } ?? keyPair.fileBytes
            try FileSystem.writeAtomically(path + "/key-pair", file, mode: 0o600, durable: true)
            home = Home(path: path, keyPair: keyPair, store: store)
            try home.announce()
        } catch { throw .store("\(error)") }
        if joining { return home }

        let secrets = Secrets.random()
        let now = Timestamp.now()
        var rootMeta = Metadata(mode: UInt32(S_IFDIR) | 0o755, uid: getuid(), gid: getgid(), time: now)
        rootMeta.atime = now
        var objects: [(Hash, Object)] = []
        var rootEntry = StoredEntry(metadata: rootMeta)
        rootEntry.directory = DirectoryFormat.encode([], secrets: secrets, into: &objects)
        let record = Version.record(revision: nowMilliseconds(), device: keyPair.actor, parents: [], root: rootEntry,
                                    links: nil, summary: ChangeSummary())
        let (object, link) = secrets.seal(record.object())
        objects.append((link.hash, object))
        let created = nowMilliseconds()
        let privateRoot = PrivateRoot(created: created, secret: secrets.groupSecret, filesystem: link,
                                      members: [keyPair.actor: Member(store: home.store.url, status: .active, revision: created)])
        do { _ = try home.publish(root: privateRoot, objects: objects, replacing: []) } catch { throw .store("\(error)") }
        return home
    }

    /// Puts the public key and a public card (`public key → #actor`) in the public box.
    func announce() throws(StoreError) {
        var m = Modifications()
        _ = m.put(keyPair.publicKey.object)
        var card = Record()
        if let members = try? readHead().0.root.members, members.count > 1 {
            // `actor group → <store> → <status> → <actor> → <revision>`, as Condensation cards announce groups.
            var group = Record(text: "actor group")
            var byStore: [String: [(Hash, Member)]] = [:]
            for (a, m) in members { byStore[m.store, default: []].append((a, m)) }
            for url in byStore.keys.sorted() {
                var storeNode = Record(text: url)
                for status in [Member.Status.active, .revoked] {
                    let list = byStore[url]!.filter { $0.1.status == status }.sorted { $0.0 < $1.0 }
                    guard !list.isEmpty else { continue }
                    var statusNode = Record(text: status.rawValue)
                    for (a, m) in list { statusNode.add(Record(a.bytes, children: [Record(Values.integer(m.revision))])) }
                    storeNode.add(statusNode)
                }
                group.add(storeNode)
            }
            card.add(group)
        }
        card.add("public key", hash: keyPair.actor)
        let cardHash = m.put(card.object())
        let envelopeHash = m.put(Envelope.publicEnvelope(cardHash: cardHash, signer: keyPair))
        m.additions.append(BoxChange(keyPair.actor, .public, envelopeHash))
        for old in try store.list(keyPair.actor, .public) where old != envelopeHash {
            m.removals.append(BoxChange(keyPair.actor, .public, old))
        }
        try store.modify(m)
    }

    /// Writes the objects of a new version and swaps the private box entry to it: new objects,
    /// one sync, then the new envelope is added and the old ones removed (the commit point).
    ///
    /// The private box is forward-mergeable: entries written meanwhile by another process of this
    /// device (a `cdsfs group` command while mounted) are read, their members merged in, and
    /// replaced too. Entries naming garbage (see `PrivateBoxEntry`) are removed in the same swap.
    /// The envelope's key is encrypted for every active member.
    func publish(root: PrivateRoot, objects: [(Hash, Object)], replacing old: [Hash]) throws(FSError) -> (Hash, PrivateRoot) {
        var root = root
        var replaced = Set(old)
        var garbage: [(Hash, String)] = []
        if let entries = try? store.list(keyPair.actor, .private) {
            for h in entries where !replaced.contains(h) {
                switch privateBoxEntry(h) {
                case .envelope(let link):
                    guard let other = try? privateRoot(link) else { continue }
                    root.mergeMembers(other.members)
                    root.mergeContacts(other.contacts)
                    replaced.insert(h)
                case .garbage(let why):
                    garbage.append((h, why))
                    replaced.insert(h)
                case .unreadable:
                    continue
                }
            }
        }
        root.members[keyPair.actor] = root.members[keyPair.actor]
            ?? Member(store: store.url, status: .active, revision: root.created)
        let secrets = Secrets(groupSecret: root.secret)
        let (rootObject, rootLink) = secrets.seal(root.record.object())
        let envelope = Envelope.privateEnvelope(content: rootLink, recipients: recipients(root), signer: keyPair)
        var m = Modifications()
        m.puts = objects
        m.puts.append((rootLink.hash, rootObject))
        let envelopeHash = m.put(envelope)
        m.additions.append(BoxChange(keyPair.actor, .private, envelopeHash))
        for h in replaced where h != envelopeHash { m.removals.append(BoxChange(keyPair.actor, .private, h)) }
        do { try store.modify(m) } catch { throw Volume.map(error) }
        for (h, why) in garbage { Log.warning("removed private box entry \(h.hex): \(why)") }
        return (envelopeHash, root)
    }

    /// Public keys of the active members other than this device (those whose key is in the store).
    func recipients(_ root: PrivateRoot) -> [PublicKey] {
        root.members.compactMap { actor, member -> PublicKey? in
            guard member.status == .active || member.status == .entrusted, actor != keyPair.actor else { return nil }
            guard let o = try? store.get(actor), let key = try? PublicKey(object: o) else {
                Log.warning("no public key of member \(actor.hex) in the store; not encrypting for it")
                return nil
            }
            return key
        }
    }

    /// Opens one private box entry: its content link and private root.
    func openPrivateRoot(_ envelopeHash: Hash) throws(FSError) -> (HashAndKey, PrivateRoot) {
        guard case .envelope(let link) = privateBoxEntry(envelopeHash) else { throw .io }
        return (link, try privateRoot(link))
    }

    /// The private root an envelope links to.
    func privateRoot(_ link: HashAndKey) throws(FSError) -> PrivateRoot {
        guard let root = PrivateRoot(record: try ObjectReader(store: store).record(link)) else { throw .io }
        return root
    }

    /// Reads the private box: every envelope that opens, and the newest version among them.
    func readHead() throws(Problem) -> (Head, Secrets) {
        let entries: [Hash]
        do { entries = try store.list(keyPair.actor, .private) } catch { throw .store("\(error)") }
        let reader = ObjectReader(store: store)
        var best: (Version, PrivateRoot)?
        var opened: [Hash] = []
        var members: [Hash: Member] = [:]
        var contacts: [String: Contact] = [:]
        for h in entries {
            guard let (_, root) = try? openPrivateRoot(h),
                  let version = try? Version.load(root.filesystem, reader: reader) else {
                if case .garbage(let why) = privateBoxEntry(h) {
                    Log.warning("private box entry \(h.hex) is ignored, and removed at the next commit: \(why)")
                } else {
                    Log.warning("private box entry \(h.hex) does not open; ignored")
                }
                continue
            }
            opened.append(h)
            var merged = PrivateRoot(created: 0, secret: root.secret, filesystem: root.filesystem, members: members)
            merged.mergeMembers(root.members)
            members = merged.members
            merged.contacts = contacts
            merged.mergeContacts(root.contacts)
            contacts = merged.contacts
            if best == nil || version.revision > best!.0.revision { best = (version, root) }
        }
        guard let (version, bestRoot) = best else { throw .noFilesystem(storePath) }
        var root = bestRoot
        root.members = members
        root.contacts = contacts
        return (Head(version: version, envelopes: opened, root: root), Secrets(groupSecret: root.secret))
    }

    /// Opens the filesystem for mounting (or for reading a past version).
    public func openVolume(options: VolumeOptions) throws -> Volume {
        var (head, secrets) = try readHead()
        if let wanted = options.version {
            guard let version = try History(home: self).find(wanted, from: head.version) else {
                throw Problem.store("no version \(wanted.hex) in the history of this device")
            }
            head.version = version
        }
        return try Volume(home: self, head: head, secrets: secrets, options: options)
    }

    /// The newest version (for log, fsck).
    public func currentVersion() throws(Problem) -> Version { try readHead().0.version }

    /// A version named by hash (or a unique hex prefix), or the newest at or before a time
    /// (`YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` UTC, or seconds since the epoch).
    public func resolveVersion(_ text: String) throws -> Hash {
        let history = History(home: self)
        let versions = try history.versions(from: currentVersion())
        let lower = text.lowercased()
        if lower.count >= 4, lower.allSatisfy(\.isHexDigit) {
            let matches = versions.filter { $0.link.hash.hex.hasPrefix(lower) }
            if matches.count == 1 { return matches[0].link.hash }
            if matches.count > 1 { throw Problem.store("\(text) names several versions; give more digits") }
        }
        guard let ms = parseTime(text) else {
            throw Problem.store("\(text) is neither a version in `cdsfs log` nor a time (YYYY-MM-DD[THH:MM[:SS]] UTC)")
        }
        guard let v = versions.first(where: { $0.revision <= ms }) else {
            throw Problem.store("no version at or before \(text)")
        }
        return v.link.hash
    }
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM`, `YYYY-MM-DDTHH:MM:SS` (UTC, an optional trailing Z) or
/// `@SECONDS`, to milliseconds since the epoch. The end of the given minute/day counts.
func parseTime(_ text: String) -> Int64? {
    if text.hasPrefix("@"), let s = Int64(text.dropFirst()) { return s * 1000 + 999 }
    let t = String((text.hasSuffix("Z") ? String(text.dropLast()) : text).map { $0 == " " ? "T" : $0 })
    let parts = t.split(separator: "T", maxSplits: 1)
    let date = parts[0].split(separator: "-").compactMap { Int($0) }
    guard date.count == 3 else { return nil }
    var hms = [23, 59, 59]
    if parts.count == 2 {
        let time = parts[1].split(separator: ":").compactMap { Int($0) }
        guard time.count >= 2 && time.count <= 3 else { return nil }
        hms = [time[0], time[1], time.count == 3 ? time[2] : 59]
    }
    var tm = tm()
    tm.tm_year = Int32(date[0] - 1900)
    tm.tm_mon = Int32(date[1] - 1)
    tm.tm_mday = Int32(date[2])
    tm.tm_hour = Int32(hms[0])
    tm.tm_min = Int32(hms[1])
    tm.tm_sec = Int32(hms[2])
    let seconds = timegm(&tm)
    guard seconds != -1 else { return nil }
    return Int64(seconds) * 1000 + 999
}

/// Time parsing shared with the command line (`--keep-since`, `--at`).
public func parseTimeForCLI(_ text: String) -> Int64? { parseTime(text) }


extension Home {
    /// Adds a device to the group (or re-activates it): its public key is fetched from `remote`
    /// (where `cdsfs init --remote` announced it), the private root lists it as active, and the
    /// next envelopes are encrypted for it too.
    public func addMember(_ actor: Hash, remote: any Store) throws {
        guard actor != keyPair.actor else { throw Problem.store("that is this device's own actor id") }
        guard let object = try remote.get(actor), let key = try? PublicKey(object: object), key.hash == actor else {
            throw Problem.store("no public key of \(actor.hex) on \(remote.url): run `cdsfs init --remote \(remote.url)` on the new device first")
        }
        try store.put(actor, object)
        try changeMembers { $0[actor] = Member(store: remote.url, status: .active, revision: nowMilliseconds()) }
    }

    /// Revokes a device: later versions are not encrypted for it and its messages are refused.
    public func removeMember(_ actor: Hash) throws {
        let (head, _) = try readHead()
        guard let m = head.root.members[actor], actor != keyPair.actor else {
            throw Problem.store("\(actor.hex) is not a member of this group")
        }
        try changeMembers { $0[actor] = Member(store: m.store, status: .revoked, revision: nowMilliseconds()) }
    }

    public func members() throws -> [Hash: Member] { try readHead().0.root.members }

    private func changeMembers(_ change: (inout [Hash: Member]) -> Void) throws {
        let (head, _) = try readHead()
        var root = head.root
        change(&root.members)
        _ = try publish(root: root, objects: [], replacing: head.envelopes)
        try announce()
    }
}
