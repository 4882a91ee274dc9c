import Condensation

/// A small `key = value` file in the home (settings, sync state). Keys may repeat (`remote`).
/// Written atomically; unknown keys are kept, so newer versions can add settings.
public struct KeyValueFile: Sendable {
    public let path: String
    public private(set) var lines: [(String, String)] = []

    public init(path: String) {
        self.path = path
        guard let bytes = try? FileSystem.read(path, limit: 1 << 20) else { return }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let t = line.trimmingCharacters(in: " \t")
            if t.isEmpty || t.hasPrefix("#") { continue }
            guard let eq = t.firstIndex(of: "=") else { continue }
            lines.append((String(t[..<eq]).trimmingCharacters(in: " \t"), String(t[t.index(after: eq)...]).trimmingCharacters(in: " \t")))
        }
    }

    public func value(_ key: String) -> String? { lines.last { $0.0 == key }?.1 }
    public func values(_ key: String) -> [String] { lines.filter { $0.0 == key }.map(\.1) }

    public mutating func set(_ key: String, _ value: String?) {
        lines.removeAll { $0.0 == key }
        if let value { lines.append((key, value)) }
    }

    public mutating func add(_ key: String, _ value: String) { lines.append((key, value)) }
    public mutating func remove(_ key: String, _ value: String) { lines.removeAll { $0 == (key, value) } }

    public func save() throws(StoreError) {
        let text = lines.map { "\($0.0) = \($0.1)\n" }.joined()
        try FileSystem.writeAtomically(path, Array(text.utf8), mode: 0o600)
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s.removeFirst() }
        while let l = s.last, chars.contains(l) { s.removeLast() }
        return String(s)
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}

extension Home {
    public var settings: KeyValueFile { KeyValueFile(path: path + "/settings") }
    var syncState: KeyValueFile { KeyValueFile(path: path + "/sync-state") }

    /// The remote stores this device syncs through.
    public var remotes: [String] { settings.values("remote") }
}

/// What `cdsfs status` shows of the syncer's state file.
public struct SyncStatus: Sendable {
    public let pushedVersion: String?
    public let lastPush: Int64?
    public let lastPull: Int64?
}

extension Home {
    public var syncStatus: SyncStatus {
        let s = syncState
        return SyncStatus(pushedVersion: s.value("pushed-version"), lastPush: s.value("last-push").flatMap { Int64($0) },
                          lastPull: s.value("last-pull").flatMap { Int64($0) })
    }
}
