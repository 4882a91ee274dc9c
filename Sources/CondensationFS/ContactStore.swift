import Condensation

/// Opens the store a contact receives messages at, from its URL: `file:///path`, `http://…` (signed
/// with this device's key, as a `cdsfs serve` wants) or `s3://…`. (The command line's `openRemote`
/// does the same for remotes, with several URLs for one store; a contact has one.)
func openContactStore(_ url: String, keyPair: KeyPair) throws -> any Store {
    if url.hasPrefix("file://") {
        guard let store = FolderStore.open(String(url.dropFirst(7))) else {
            throw Home.Problem.store("\(url) is not a folder store")
        }
        return store
    }
    if url.hasPrefix("http://") { return try HTTPStore(url: url, keyPair: keyPair) }
    if url.hasPrefix("s3://") { return try S3Store(url: url) }
    throw Home.Problem.store("\(url): store URLs start with http://, s3:// or file://")
}
