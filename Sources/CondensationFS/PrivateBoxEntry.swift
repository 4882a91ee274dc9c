import Condensation

/// What an entry of this device's private box names, as far as this device can tell. Only this
/// device (and its other processes) write there, always an envelope signed by it and encrypted for
/// it, written before the entry: anything else is garbage that no version of this device can be in,
/// and the next publication removes it (as it removes the entries it merged). An entry the store
/// cannot read now (an I/O error, a corrupt object) is not garbage: it may be this device's data,
/// and fsck names it.
enum PrivateBoxEntry {
    /// An envelope of this device: the link to its private root.
    case envelope(HashAndKey)
    /// Nothing this device could ever open; why, for the log.
    case garbage(String)
    /// The store could not give the object now.
    case unreadable(StoreError)
}

extension Home {
    func privateBoxEntry(_ hash: Hash) -> PrivateBoxEntry {
        let object: Object?
        do { object = try store.get(hash) } catch { return .unreadable(error) }
        guard let object else { return .garbage("it names no object in the store") }
        do {
            return .envelope(try Envelope.openPrivate(object, signer: keyPair.publicKey, keyPair: keyPair))
        } catch {
            return .garbage("it names no envelope of this device (\(error))")
        }
    }
}
