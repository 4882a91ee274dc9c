import Condensation

/// The HTTP remote: signed requests with this device's key pair.
func openHTTPStore(_ url: String, keyPair: KeyPair) throws -> any Store {
    try HTTPStore(url: url, keyPair: keyPair)
}
