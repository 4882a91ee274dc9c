import Condensation

/// Two states of one container (same id), changed on two devices, merge over the container's own
/// chain as volumes do over theirs: if one state's version descends from the other's, that state
/// is taken (with its secret: a later unshare's new secret stays); otherwise the two versions merge
/// three ways from their nearest common ancestor into a version with both as parents. Recipients
/// merge by actor, the newer entry winning, so a removal is not undone.
///
/// Deterministic, like the rest of the merge: both devices reach the same head. When the two states
/// have different secrets (an unshare on one side), the merged version is sealed with a secret
/// derived from both, which nobody who knew only one of them can compute.
extension Merger {
    /// The merged entry, or nil when the two entries are not states of one container (then the
    /// caller keeps both, one as a conflict copy).
    mutating func mergeContainers(winner: StoredEntry, loser: StoredEntry, loserLabel: String) throws(FSError) -> StoredEntry? {
        guard let wl = winner.container, let ll = loser.container,
              let hw = ContainerHead(record: try reader.record(wl)),
              let hl = ContainerHead(record: try reader.record(ll)), hw.id == hl.id else { return nil }
        let vw = try Version.load(hw.version, reader: reader)
        let vl = try Version.load(hl.version, reader: reader)
        var merged = winner
        merged.recipients = Self.mergeRecipients(winner.recipients, loser.recipients)
        let base = try Merger.nearestCommonAncestor(vw, vl, reader: reader)
        if base?.link.hash == vl.link.hash { return merged }
        if base?.link.hash == vw.link.hash {
            merged.container = ll
            merged.subdirectories = loser.subdirectories
            merged.metadata = loser.metadata
            return merged
        }
        let secret = hw.secret == hl.secret ? hw.secret : HMAC.sha256(key: min(hw.secret, hl.secret), max(hw.secret, hl.secret))
        let containerSecrets = Secrets(groupSecret: secret)
        // The container's secret, not the group's, keys what the merge makes: the owner and a recipient
        // with write merge the same two states into the very same objects.
        var inner = Merger(reader: reader, secrets: containerSecrets)
        let root = try inner.mergeDirectoryEntry(base: base?.rootEntry, winner: vw.rootEntry, loser: vl.rootEntry,
                                                 loserLabel: loserLabel)
        objects += inner.objects
        conflicts += inner.conflicts
        let record = Version.record(revision: max(vw.revision, vl.revision) + 1, device: vw.device ?? hw.version.hash,
                                    parents: [vw.link, vl.link].sorted { $0.hash < $1.hash }, root: root, links: nil,
                                    summary: ChangeSummary())
        let (versionObject, versionLink) = containerSecrets.seal(record.object())
        objects.append((versionLink.hash, versionObject))
        let head = ContainerHead(id: hw.id, secret: secret, version: versionLink)
        let (headObject, headLink) = containerSecrets.seal(head.record.object())
        objects.append((headLink.hash, headObject))
        merged.container = headLink
        merged.metadata = root.metadata
        merged.subdirectories = root.subdirectories
        return merged
    }

    /// `R` of both sides, per actor the entry with the newer revision.
    static func mergeRecipients(_ a: Record?, _ b: Record?) -> Record? {
        var all = Recipient.read(a)
        for (actor, r) in Recipient.read(b) where all[actor].map({ r.revision > $0.revision }) ?? true { all[actor] = r }
        return Recipient.record(all)
    }
}

private func min(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] { a.lexicographicallyPrecedes(b) ? a : b }
private func max(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] { a.lexicographicallyPrecedes(b) ? b : a }
