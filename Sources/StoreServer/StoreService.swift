import Condensation
import Synchronization

/// A request as the protocol sees it: the transport (NIO) has already read it whole.
struct ServiceRequest: Sendable {
    /// As received (the signature uses it uppercased).
    var method: String
    /// The path without the query string.
    var path: String
    /// The `Host` header ("" if absent): the signed string starts with it.
    var host: String
    /// Header values by lowercased name (the first of each).
    var headers: [String: String]
    var body: [UInt8]
}

struct ServiceResponse: Sendable {
    var status: Int
    var body: [UInt8] = []
    var contentType: String?
    var headers: [(String, String)] = []
    /// The verified actor, for the log line.
    var actor: Hash?

    /// As the reference answers: 200 with a body, 204 without.
    static func ok(_ bytes: [UInt8] = []) -> ServiceResponse {
        bytes.isEmpty ? ServiceResponse(status: 204) : ServiceResponse(status: 200, body: bytes, contentType: "application/octet-stream")
    }

    static func text(_ status: Int, _ message: String) -> ServiceResponse {
        ServiceResponse(status: status, body: Array(message.utf8), contentType: "text/plain; charset=utf-8")
    }

    static func options(_ methods: String...) -> ServiceResponse {
        ServiceResponse(status: 200, headers: [("Allow", (methods + ["OPTIONS"]).joined(separator: ", "))])
    }

    static let notFound = text(404, "Not found.")
    static let forbidden = text(403, "Forbidden.")
    static let methodNotAllowed = text(405, "Method not allowed.")
}

/// What to do with a request: answer now, or hold it until a box has entries (long poll).
enum ServiceOutcome: Sendable {
    case respond(ServiceResponse)
    /// The box was empty and the client asked to watch it: list again when it changes, at the latest
    /// after `milliseconds`.
    case watch(account: Hash, box: BoxLabel, milliseconds: Int, actor: Hash?)
}

/// The Condensation HTTP store protocol over a `Store`: routing, signature checks, permissions and
/// status codes, as the reference server (`CDS::HTTPServer::StoreHandler`) has them. Synchronous and
/// blocking: it runs on the server's thread pool, never on an event loop.
final class StoreService: Sendable {
    let store: any Store
    let limits: StoreServer.Limits
    let watchers: BoxWatchers
    private let flusher = GroupFlush()
    /// Public keys read from the store, by actor (a signature check costs one RSA verification, not
    /// a file read and a key parse too).
    private let keys = Mutex<[Hash: PublicKey]>([:])
    private static let maximumCachedKeys = 4096
    /// Signed requests accepted within the date window: each is accepted once.
    let replays: ReplayCache

    init(store: any Store, limits: StoreServer.Limits, watchers: BoxWatchers) {
        self.store = store
        self.limits = limits
        self.watchers = watchers
        self.replays = ReplayCache(capacity: limits.replayCacheEntries)
    }

    // MARK: Routing

    func handle(_ r: ServiceRequest) -> ServiceOutcome {
        let parts = r.path.split(separator: "/", omittingEmptySubsequences: false)
        // "/objects/<hash>" → ["", "objects", "<hash>"]
        guard parts.count >= 2, parts[0].isEmpty else { return .respond(.notFound) }
        switch parts[1] {
        case "" where parts.count == 2:
            if r.method == "OPTIONS" { return .respond(.options("HEAD", "GET")) }
            guard r.method == "GET" || r.method == "HEAD" else { return .respond(.methodNotAllowed) }
            return .respond(.text(200, "This is a Condensation HTTP store (cdsfs serve).\n"))
        case "objects":
            if parts.count == 3, let hash = Self.hash(parts[2]) { return .respond(objects(r, hash)) }
        case "accounts":
            if parts.count == 2 { return .respond(accounts(r)) }
            guard let account = Self.hash(parts[2]) else { break }
            if parts.count == 3 {
                return .respond(r.method == "OPTIONS" ? .options() : .methodNotAllowed)
            }
            guard let box = BoxLabel(rawValue: String(parts[3])) else { break }
            if parts.count == 4 { return list(r, account, box) }
            if parts.count == 5, let hash = Self.hash(parts[4]) { return .respond(boxEntry(r, account, box, hash)) }
        default:
            break
        }
        return .respond(.notFound)
    }

    /// Exactly 64 lowercase hex digits, as the reference's routes match them.
    static func hash(_ text: Substring) -> Hash? {
        guard text.utf8.count == 64, text.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            return nil
        }
        return Hash(hex: text)
    }

    // MARK: Objects

    private func objects(_ r: ServiceRequest, _ hash: Hash) -> ServiceResponse {
        switch r.method {
        case "OPTIONS":
            return .options("HEAD", "GET", "PUT", "POST")
        case "GET", "HEAD":
            // Anyone may read: objects are ciphertext, and the client checks the hash.
            do {
                guard let object = try store.get(hash) else { return .notFound }
                return .ok(object.bytes)
            } catch {
                return failure(error)
            }
        case "PUT":
            // The order of checks is the reference's: an object (400), its hash (400), signed (403).
            guard let object = try? Object(bytes: r.body) else { return .text(400, "Not a Condensation object.") }
            guard object.calculateHash() == hash else { return .text(400, "SHA256 sum does not match hash.") }
            guard let actor = verifiedActor(r, extraObjects: [hash: object], body: nil) else { return .forbidden }
            do {
                try store.put(hash, object)
                try flusher.flush(store)
            } catch {
                return failure(error)
            }
            var response = ServiceResponse.ok()
            response.actor = actor
            return response
        case "POST":
            guard let actor = verifiedActor(r, extraObjects: [:], body: nil) else { return .forbidden }
            guard r.body.isEmpty else { return .text(400, "You cannot send data when booking an object.") }
            do {
                guard try store.book(hash) else { return .notFound }
            } catch {
                return failure(error)
            }
            var response = ServiceResponse.ok()
            response.actor = actor
            return response
        default:
            return .methodNotAllowed
        }
    }

    // MARK: Boxes

    private func list(_ r: ServiceRequest, _ account: Hash, _ box: BoxLabel) -> ServiceOutcome {
        switch r.method {
        case "OPTIONS":
            return .respond(.options("HEAD", "GET", "PUT", "POST"))
        case "GET", "HEAD":
            // The public box is readable by anyone; the private box and the in-queue by the owner only.
            var actor: Hash?
            if box != .public {
                actor = verifiedActor(r, extraObjects: [:], body: nil)
                guard actor == account else { return .respond(.forbidden) }
            }
            let watch = min(Self.watchMilliseconds(r.headers["condensation-watch"]), limits.maximumWatchMilliseconds)
            do {
                let hashes = try store.list(account, box)
                if hashes.isEmpty && watch > 0 {
                    return .watch(account: account, box: box, milliseconds: watch, actor: actor)
                }
                var response = Self.listing(hashes)
                response.actor = actor
                return .respond(response)
            } catch {
                return .respond(failure(error))
            }
        default:
            return .respond(.methodNotAllowed)
        }
    }

    /// Lists a box again for a held long poll (its permission was checked when it arrived).
    func relist(_ account: Hash, _ box: BoxLabel) -> (response: ServiceResponse, empty: Bool) {
        do {
            let hashes = try store.list(account, box)
            return (Self.listing(hashes), hashes.isEmpty)
        } catch {
            return (failure(error), false)
        }
    }

    /// The box as raw concatenated 32-byte hashes (204 if empty).
    static func listing(_ hashes: [Hash]) -> ServiceResponse {
        var bytes = [UInt8](repeating: 0, count: 32 * hashes.count)
        for (i, h) in hashes.enumerated() { h.write(to: &bytes, at: 32 * i) }
        return .ok(bytes)
    }

    /// `Condensation-Watch: <n> ms` (as the reference reads it: digits, optional spaces, "ms").
    static func watchMilliseconds(_ header: String?) -> Int {
        guard let header else { return 0 }
        let text = header.utf8
        let digits = text.prefix(while: { (48...57).contains($0) })
        guard !digits.isEmpty, digits.count <= 12 else { return 0 }
        let rest = text.dropFirst(digits.count).drop(while: { $0 == 32 || $0 == 9 })
        guard Array(rest) == Array("ms".utf8) else { return 0 }
        return Int(String(decoding: digits, as: UTF8.self)) ?? 0
    }

    private func boxEntry(_ r: ServiceRequest, _ account: Hash, _ box: BoxLabel, _ hash: Hash) -> ServiceResponse {
        switch r.method {
        case "OPTIONS":
            return .options("HEAD", "PUT", "DELETE")
        case "PUT":
            var actor: Hash?
            if box != .messages {
                actor = verifiedActor(r, extraObjects: [:], body: nil)
                guard Self.mayAdd(actor, account, box) else { return .forbidden }
            }
            do {
                try store.add(account, box, hash)
                try flusher.flush(store)
            } catch {
                return failure(error)
            }
            watchers.notify(account, box)
            var response = ServiceResponse.ok()
            response.actor = actor
            return response
        case "DELETE":
            let actor = verifiedActor(r, extraObjects: [:], body: nil)
            guard mayRemove(actor, account, box, hash) else { return .forbidden }
            do {
                try store.remove(account, box, hash)
                try flusher.flush(store)
            } catch {
                return failure(error)
            }
            var response = ServiceResponse.ok()
            response.actor = actor
            return response
        default:
            return .methodNotAllowed
        }
    }

    // MARK: Modify

    private func accounts(_ r: ServiceRequest) -> ServiceResponse {
        switch r.method {
        case "OPTIONS":
            return .options("POST")
        case "POST":
            // Every put is checked against its hash while reading (400), unlike the reference.
            guard let object = try? Object(bytes: r.body), let record = try? Record(object: object),
                  let modifications = try? Modifications(record: record) else {
                return .text(400, "Invalid modifications.")
            }
            var extra: [Hash: Object] = [:]
            for (h, o) in modifications.puts { extra[h] = o }
            let actor = verifiedActor(r, extraObjects: extra, body: r.body)
            guard mayModify(actor, modifications) else { return .forbidden }
            do {
                try store.modify(modifications)
                if !modifications.removals.isEmpty { try flusher.flush(store) }
            } catch {
                return failure(error)
            }
            for c in modifications.additions { watchers.notify(c.account, c.box) }
            var response = ServiceResponse.ok()
            response.actor = actor
            return response
        default:
            return .methodNotAllowed
        }
    }

    // MARK: Permissions

    /// Add to an in-queue: anyone; to a private or public box: the owner.
    static func mayAdd(_ actor: Hash?, _ account: Hash, _ box: BoxLabel) -> Bool {
        box == .messages || (actor != nil && actor == account)
    }

    /// Remove: the owner, or an actor whose 24-byte prefix is under the envelope's `updated by` (a
    /// sender replacing its own message). As in the reference, an entry whose envelope is not on the
    /// store may be removed by any signed actor: it names nothing anyone could read.
    func mayRemove(_ actor: Hash?, _ account: Hash, _ box: BoxLabel, _ hash: Hash) -> Bool {
        guard let actor else { return false }
        if actor == account { return true }
        let envelope: Object?
        do { envelope = try store.get(hash) } catch { return false }
        guard let envelope else { return true }
        guard let record = try? Record(object: envelope) else { return false }
        let prefix = actor.bytes[0..<24]
        return record.child("updated by")?.children.contains { $0.bytes.count == 24 && $0.bytes.elementsEqual(prefix) } ?? false
    }

    /// Every addition and removal must be allowed on its own. Puts need a signed request, with one
    /// exception the reference client relies on: delivering a message (additions to in-queues only, no
    /// removals) may come unsigned, and may then put only the envelopes it adds.
    func mayModify(_ actor: Hash?, _ m: Modifications) -> Bool {
        for c in m.additions where !Self.mayAdd(actor, c.account, c.box) { return false }
        for c in m.removals where !mayRemove(actor, c.account, c.box, c.hash) { return false }
        if actor == nil && !m.puts.isEmpty {
            guard m.removals.isEmpty, !m.additions.isEmpty, m.additions.allSatisfy({ $0.box == .messages }) else { return false }
            let added = Set(m.additions.map(\.hash))
            return m.puts.allSatisfy { added.contains($0.0) && $0.1.bytes.count <= Envelope.maximumMessageSize }
        }
        return true
    }

    // MARK: Signatures

    /// The actor that signed the request, nil if it is not validly signed: the date within the window,
    /// the actor's public key on the store (or among `extraObjects`), the PSS signature over
    /// `DATE \0 METHOD \0 HOST+PATH [\0 BODY]`, and not accepted before (a replay of a captured
    /// request is refused like a bad signature; see `ReplayCache`). As in the reference, a plain `Date`
    /// header is used if `Condensation-Date` is absent.
    func verifiedActor(_ r: ServiceRequest, extraObjects: [Hash: Object], body: [UInt8]?) -> Hash? {
        guard let date = r.headers["condensation-date"] ?? r.headers["date"],
              let when = HTTPSigning.parseDate(date) else { return nil }
        let now = HTTPSigning.now()
        guard when >= now - HTTPSigning.maximumAge, when <= now + HTTPSigning.maximumSkew else { return nil }
        guard let actorText = r.headers["condensation-actor"], let actor = Hash(hex: actorText.httpTrimmedSpaces),
              let signatureText = r.headers["condensation-signature"]?.httpTrimmedSpaces, signatureText.utf8.count == 512,
              let signature = Hex.decode(signatureText) else { return nil }
        guard let key = publicKey(actor, extraObjects) else { return nil }
        let hash = HTTPSigning.hashToSign(date: date, method: r.method, hostAndPath: r.host + r.path, body: body)
        guard key.rsa.verify(hash, signature: signature) else { return nil }
        guard replays.firstUse(actor: actor, signature: signature, date: when, now: now) else {
            Log.warning("refused a replayed signed request \(r.method) \(r.path) of \(actor.hex.prefix(16))…")
            return nil
        }
        return actor
    }

    private func publicKey(_ actor: Hash, _ extraObjects: [Hash: Object]) -> PublicKey? {
        if let object = extraObjects[actor] { return try? PublicKey(object: object) }
        if let key = keys.withLock({ $0[actor] }) { return key }
        // FolderStore.get checks the bytes against the hash: the key is the actor's.
        guard let object = try? store.get(actor), object.calculateHash() == actor,
              let key = try? PublicKey(object: object) else { return nil }
        keys.withLock { cache in
            if cache.count >= Self.maximumCachedKeys { cache.removeAll(keepingCapacity: true) }
            cache[actor] = key
        }
        return key
    }

    // MARK: Errors

    private func failure(_ error: StoreError) -> ServiceResponse {
        Log.error("store: \(error)")
        return .text(500, "Internal server error.")
    }
}

extension String {
    var httpTrimmedSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
