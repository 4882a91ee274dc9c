import CCrypto

/// Data sealed in fixed-size blocks with AES-256-GCM, each block followed by its 16-byte tag.
///
/// Why blocks: one block can be checked and decrypted on its own, so a 4 KiB read of a large
/// object reads and checks one block instead of hashing the whole object. The nonce of a block is
/// its index, which binds each block to its place; a key must seal one plaintext only (keys here
/// are derived from the plaintext, so the same key always seals the same bytes).
public struct SealedBlocks: Equatable, Sendable {
    public static let tagSize = 16
    /// Plaintext bytes per block.
    public let blockSize: Int

    public init(blockSize: Int) {
        precondition(blockSize > 0 && blockSize <= 1 << 30)
        self.blockSize = blockSize
    }

    /// Blocks needed for `plaintext` bytes.
    public func blockCount(plaintext: Int) -> Int { (plaintext + blockSize - 1) / blockSize }

    /// Sealed size of `plaintext` bytes: the bytes plus a tag per block.
    public func sealedSize(plaintext: Int) -> Int { plaintext + Self.tagSize * blockCount(plaintext: plaintext) }

    /// Where block `index` starts in the sealed bytes.
    public func sealedOffset(block index: Int) -> Int { index * (blockSize + Self.tagSize) }

    /// Plaintext bytes in block `index` of `plaintext` bytes in all.
    public func plaintextCount(block index: Int, of plaintext: Int) -> Int {
        max(0, min(blockSize, plaintext - index * blockSize))
    }

    /// Seals in place. `buffer` holds the plaintext laid out as the sealed bytes will be (each
    /// block followed by 16 bytes of room); `plaintext` is the plaintext byte count in all and
    /// `firstBlock` the index of the first block in the buffer.
    public func seal(_ buffer: UnsafeMutableRawBufferPointer, plaintext: Int, key: AESKey, firstBlock: Int = 0) {
        precondition(buffer.count >= sealedSize(plaintext: plaintext))
        guard plaintext > 0 else { return }
        let p = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let ok = key.withKeyPointer {
            ccrypto_aes256gcm_seal_blocks($0, p, plaintext, blockSize, UInt64(firstBlock))
        }
        precondition(ok == 1, "libcrypto refused AES-256-GCM with a 32-byte key")
    }

    /// Opens in place; false if any block's tag is wrong (the bytes were changed, or the key is not
    /// theirs). `plaintext` counts the plaintext bytes of the blocks in `buffer`.
    public func open(_ buffer: UnsafeMutableRawBufferPointer, plaintext: Int, key: AESKey, firstBlock: Int = 0) -> Bool {
        guard buffer.count >= sealedSize(plaintext: plaintext) else { return false }
        guard plaintext > 0 else { return true }
        let p = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let result = key.withKeyPointer {
            ccrypto_aes256gcm_open_blocks($0, p, plaintext, blockSize, UInt64(firstBlock))
        }
        precondition(result >= 0, "libcrypto refused AES-256-GCM with a 32-byte key")
        return result == 1
    }

    /// Opens sealed blocks into `out`, which gets their plaintext packed (no gaps for the tags): a
    /// reader that wants the plaintext in a buffer of its own decrypts straight into it instead of
    /// opening in place and copying. False as `open`; `out` then holds garbage.
    public func open(_ sealed: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, plaintext: Int,
                     key: AESKey, firstBlock: Int = 0) -> Bool {
        guard sealed.count >= sealedSize(plaintext: plaintext), out.count >= plaintext else { return false }
        guard plaintext > 0 else { return true }
        let result = key.withKeyPointer {
            ccrypto_aes256gcm_open_blocks_packed($0, sealed.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                 out.baseAddress!.assumingMemoryBound(to: UInt8.self), plaintext, blockSize,
                                                 UInt64(firstBlock))
        }
        precondition(result >= 0, "libcrypto refused AES-256-GCM with a 32-byte key")
        return result == 1
    }
}
