import CCrypto

/// A streaming SHA-256 (libcrypto's EVP_MD_CTX), for inputs that arrive in pieces: files, chunks
/// being cut. One-shot hashing is `Hash.of`.
public final class SHA256Stream {
    private let ctx: UnsafeMutableRawPointer

    public init() {
        guard let ctx = ccrypto_sha256_new() else { fatalError("libcrypto: out of memory for a digest context") }
        self.ctx = ctx
    }

    deinit { ccrypto_sha256_free(ctx) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        _ = ccrypto_sha256_update(ctx, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    public func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The digest of everything so far; the stream starts over afterwards.
    public func finish() -> Hash {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { out in
            _ = ccrypto_sha256_final(ctx, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
            return Hash(raw: UnsafeRawBufferPointer(out))
        }
    }
}

public enum HMAC {
    /// HMAC-SHA-256: the keyed hash that derives convergent keys, so that only holders of the key
    /// can confirm a guessed plaintext.
    public static func sha256(key: [UInt8], _ data: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        key.withUnsafeBufferPointer { k in
            _ = ccrypto_hmac_sha256(k.baseAddress, k.count, data.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                    data.count, &out)
        }
        return out
    }

    public static func sha256(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        data.withUnsafeBytes { sha256(key: key, $0) }
    }
}
