// ccrypto: the thin C layer between Swift and OpenSSL's libcrypto (EVP).
// OpenSSL's own headers stay out of the Swift importer: keys are opaque pointers.
#ifndef CCRYPTO_H
#define CCRYPTO_H

#include <stddef.h>
#include <stdint.h>

/// An RSA key (EVP_PKEY); public only or with its private half.
typedef struct ccrypto_rsa ccrypto_rsa;

// --- SHA-256 -------------------------------------------------------------------------------
/// SHA-256 of `len` bytes (EVP_Digest). Returns 1 on success.
int ccrypto_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

/// A streaming SHA-256 (EVP_MD_CTX). NULL on allocation failure.
void *ccrypto_sha256_new(void);
int ccrypto_sha256_update(void *ctx, const uint8_t *data, size_t len);
/// Writes the digest and resets the context for reuse.
int ccrypto_sha256_final(void *ctx, uint8_t out[32]);
void ccrypto_sha256_free(void *ctx);

/// HMAC-SHA-256 (EVP_MAC "HMAC"). Returns 1 on success.
int ccrypto_hmac_sha256(const uint8_t *key, size_t keylen, const uint8_t *data, size_t len, uint8_t out[32]);

// --- AES-256-CTR ---------------------------------------------------------------------------
/// AES-256-CTR with Condensation's counter: a 128-bit big-endian block counter starting at zero.
/// Encrypts (or decrypts: the same) `len` bytes as if the stream started `offset` bytes earlier,
/// so any part of a ciphertext can be decrypted on its own. `in` may equal `out`.
int ccrypto_aes256ctr(const uint8_t key[32], uint64_t offset, const uint8_t *in, uint8_t *out, size_t len);

// --- AES-256-GCM over blocks ------------------------------------------------------------------
/// Seals a run of blocks in place. `buf` holds the blocks one after another, each of `block` bytes
/// of plaintext (the last may be shorter) followed by 16 bytes of room for its tag; `plainlen` is
/// the plaintext in all. Each block is encrypted with AES-256-GCM, the nonce being its index
/// (`first` for the first block) as a 96-bit big-endian number, and its tag written after it.
/// Returns 1 on success.
int ccrypto_aes256gcm_seal_blocks(const uint8_t key[32], uint8_t *buf, size_t plainlen, size_t block,
                                  uint64_t first);
/// Opens blocks laid out as `ccrypto_aes256gcm_seal_blocks` writes them, in place. Returns 1 if
/// every tag is right, 0 if one is not (the buffer then holds garbage), -1 if libcrypto failed.
int ccrypto_aes256gcm_open_blocks(const uint8_t key[32], uint8_t *buf, size_t plainlen, size_t block,
                                  uint64_t first);
/// Opens blocks laid out as `ccrypto_aes256gcm_seal_blocks` writes them from `sealed` into `out`,
/// which gets the `plainlen` bytes of plaintext one block after the other (no room for tags).
/// Returns as `ccrypto_aes256gcm_open_blocks`.
int ccrypto_aes256gcm_open_blocks_packed(const uint8_t key[32], const uint8_t *sealed, uint8_t *out,
                                         size_t plainlen, size_t block, uint64_t first);

// --- Randomness and key derivation -----------------------------------------------------------
/// Cryptographically secure random bytes (RAND_bytes). Returns 1 on success.
int ccrypto_random(uint8_t *out, size_t len);
/// scrypt (EVP_PBE_scrypt). Returns 1 on success.
int ccrypto_scrypt(const uint8_t *pass, size_t passlen, const uint8_t *salt, size_t saltlen,
                   uint64_t n, uint64_t r, uint64_t p, uint8_t *out, size_t outlen);

// --- RSA -----------------------------------------------------------------------------------
/// A new RSA key pair with e = 65537 (EVP_PKEY_Q_keygen). NULL on failure.
ccrypto_rsa *ccrypto_rsa_generate(unsigned bits);
/// A private key from e, p and q (big-endian); n, d and the CRT values are derived. NULL if invalid.
ccrypto_rsa *ccrypto_rsa_private(const uint8_t *e, size_t elen, const uint8_t *p, size_t plen,
                                 const uint8_t *q, size_t qlen);
/// A public key from e and n (big-endian). NULL if invalid.
ccrypto_rsa *ccrypto_rsa_public(const uint8_t *e, size_t elen, const uint8_t *n, size_t nlen);
void ccrypto_rsa_free(ccrypto_rsa *key);

enum { CCRYPTO_RSA_E = 0, CCRYPTO_RSA_N = 1, CCRYPTO_RSA_P = 2, CCRYPTO_RSA_Q = 3 };
/// Writes one component (big-endian, no leading zeros) into `out`; returns its length,
/// or -1 if absent or larger than `cap`.
int ccrypto_rsa_component(const ccrypto_rsa *key, int which, uint8_t *out, size_t cap);
/// The modulus size in bytes.
int ccrypto_rsa_size(const ccrypto_rsa *key);

/// RSASSA-PSS over a 32-byte SHA-256 digest, MGF1-SHA-256, 32-byte salt. Returns the
/// signature length (the modulus size), or -1.
int ccrypto_rsa_sign_pss(const ccrypto_rsa *key, const uint8_t digest[32], uint8_t *sig, size_t cap);
/// 1 if `sig` is a valid PSS signature of `digest` with any salt length, else 0.
int ccrypto_rsa_verify_pss(const ccrypto_rsa *key, const uint8_t digest[32], const uint8_t *sig, size_t siglen);
/// RSAES-OAEP, SHA-256, MGF1-SHA-256, empty label. Returns the output length, or -1.
int ccrypto_rsa_encrypt_oaep(const ccrypto_rsa *key, const uint8_t *in, size_t inlen, uint8_t *out, size_t cap);
int ccrypto_rsa_decrypt_oaep(const ccrypto_rsa *key, const uint8_t *in, size_t inlen, uint8_t *out, size_t cap);

#endif
