/// Why a cryptographic operation failed. libcrypto's own error queue is not exposed: every failure
/// here means bad input (a key of the wrong size, a signature that is not one) or an exhausted system.
public enum CryptoError: Error, Equatable, Sendable {
    case wrongKeySize(expected: Int, got: Int)
    case invalidRSAKey
    case signatureFailed
    case encryptionFailed
    case decryptionFailed
    case randomFailed
    case keyDerivationFailed
}
