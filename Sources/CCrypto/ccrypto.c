#include "ccrypto.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

struct ccrypto_rsa { EVP_PKEY *pkey; };

// --- SHA-256 -------------------------------------------------------------------------------

int ccrypto_sha256(const uint8_t *data, size_t len, uint8_t out[32]) {
    unsigned int outlen = 32;
    return EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL);
}

void *ccrypto_sha256_new(void) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) { EVP_MD_CTX_free(ctx); return NULL; }
    return ctx;
}

int ccrypto_sha256_update(void *ctx, const uint8_t *data, size_t len) {
    return EVP_DigestUpdate((EVP_MD_CTX *)ctx, data, len);
}

int ccrypto_sha256_final(void *ctx, uint8_t out[32]) {
    unsigned int outlen = 32;
    if (!EVP_DigestFinal_ex((EVP_MD_CTX *)ctx, out, &outlen)) return 0;
    return EVP_DigestInit_ex((EVP_MD_CTX *)ctx, EVP_sha256(), NULL);
}

void ccrypto_sha256_free(void *ctx) { EVP_MD_CTX_free((EVP_MD_CTX *)ctx); }

int ccrypto_hmac_sha256(const uint8_t *key, size_t keylen, const uint8_t *data, size_t len, uint8_t out[32]) {
    size_t outlen = 0;
    return EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen, data, len, out, 32, &outlen) != NULL
        && outlen == 32;
}

// --- AES-256-CTR ---------------------------------------------------------------------------

// One cipher context per thread: creating one costs more than encrypting a small object.
static _Thread_local EVP_CIPHER_CTX *aes_ctx;

int ccrypto_aes256ctr(const uint8_t key[32], uint64_t offset, const uint8_t *in, uint8_t *out, size_t len) {
    if (!aes_ctx && !(aes_ctx = EVP_CIPHER_CTX_new())) return 0;
    uint8_t iv[16] = {0};
    uint64_t block = offset / 16;
    for (int i = 0; i < 8; i++) iv[15 - i] = (uint8_t)(block >> (8 * i));
    if (!EVP_EncryptInit_ex(aes_ctx, EVP_aes_256_ctr(), NULL, key, iv)) return 0;
    int outl = 0;
    size_t skip = (size_t)(offset % 16);
    if (skip) {
        uint8_t pad[16] = {0};
        if (!EVP_EncryptUpdate(aes_ctx, pad, &outl, pad, (int)skip)) return 0;
    }
    while (len > 0) {
        int n = len > (1u << 30) ? (1 << 30) : (int)len;
        if (!EVP_EncryptUpdate(aes_ctx, out, &outl, in, n)) return 0;
        in += n; out += n; len -= (size_t)n;
    }
    return 1;
}

// --- AES-256-GCM over blocks ------------------------------------------------------------------

static _Thread_local EVP_CIPHER_CTX *gcm_ctx;
// The key and direction gcm_ctx holds (gcm_direction -1: none), so that calls for the blocks of one
// chunk, one piece after the other, set up the key schedule and GHASH table once.
static _Thread_local uint8_t gcm_key[32];
static _Thread_local int gcm_direction = -1;

static void gcm_nonce(uint8_t nonce[12], uint64_t index) {
    memset(nonce, 0, 12);
    for (int i = 0; i < 8; i++) nonce[11 - i] = (uint8_t)(index >> (8 * i));
}

// The key schedule is set once per key; each block only sets its nonce. `in` holds each block
// followed by its tag; `out` gets each block followed by its tag (`packed` 0: in place, sealing or
// opening) or the plaintext of the blocks one after another (`packed` 1: opening only).
static int gcm_blocks(int enc, const uint8_t key[32], const uint8_t *in, uint8_t *out, int packed,
                      size_t plainlen, size_t block, uint64_t first) {
    if (!gcm_ctx && !(gcm_ctx = EVP_CIPHER_CTX_new())) return -1;
    if (block == 0 || block > (1u << 30)) return -1;
    if (gcm_direction != enc || CRYPTO_memcmp(gcm_key, key, 32) != 0) {
        gcm_direction = -1;
        if (!EVP_CipherInit_ex(gcm_ctx, EVP_aes_256_gcm(), NULL, key, NULL, enc)) return -1;
        memcpy(gcm_key, key, 32);
        gcm_direction = enc;
    }
    int good = 1;
    for (uint64_t index = first; plainlen > 0; index++) {
        size_t n = plainlen < block ? plainlen : block;
        uint8_t nonce[12];
        gcm_nonce(nonce, index);
        if (!EVP_CipherInit_ex(gcm_ctx, NULL, NULL, NULL, nonce, enc)) goto fail;
        int outl = 0;
        if (!EVP_CipherUpdate(gcm_ctx, out, &outl, in, (int)n)) goto fail;
        if (enc) {
            uint8_t *tag = out + n;
            if (!EVP_CipherFinal_ex(gcm_ctx, tag, &outl)) goto fail;
            if (!EVP_CIPHER_CTX_ctrl(gcm_ctx, EVP_CTRL_GCM_GET_TAG, 16, tag)) goto fail;
        } else {
            uint8_t tag[16];
            memcpy(tag, in + n, 16);
            if (!EVP_CIPHER_CTX_ctrl(gcm_ctx, EVP_CTRL_GCM_SET_TAG, 16, tag)) goto fail;
            if (EVP_CipherFinal_ex(gcm_ctx, tag, &outl) <= 0) good = 0;
        }
        in += n + 16;
        out += packed ? n : n + 16;
        plainlen -= n;
    }
    return good;
fail:
    gcm_direction = -1;
    return -1;
}

int ccrypto_aes256gcm_seal_blocks(const uint8_t key[32], uint8_t *buf, size_t plainlen, size_t block,
                                  uint64_t first) {
    return gcm_blocks(1, key, buf, buf, 0, plainlen, block, first) == 1;
}

int ccrypto_aes256gcm_open_blocks(const uint8_t key[32], uint8_t *buf, size_t plainlen, size_t block,
                                  uint64_t first) {
    return gcm_blocks(0, key, buf, buf, 0, plainlen, block, first);
}

int ccrypto_aes256gcm_open_blocks_packed(const uint8_t key[32], const uint8_t *sealed, uint8_t *out,
                                         size_t plainlen, size_t block, uint64_t first) {
    return gcm_blocks(0, key, sealed, out, 1, plainlen, block, first);
}

// --- Randomness and key derivation -----------------------------------------------------------

int ccrypto_random(uint8_t *out, size_t len) { return RAND_bytes(out, (int)len) == 1; }

int ccrypto_scrypt(const uint8_t *pass, size_t passlen, const uint8_t *salt, size_t saltlen,
                   uint64_t n, uint64_t r, uint64_t p, uint8_t *out, size_t outlen) {
    return EVP_PBE_scrypt((const char *)pass, passlen, salt, saltlen, n, r, p,
                          1024ull * 1024 * 1024, out, outlen) == 1;
}

// --- RSA -----------------------------------------------------------------------------------

static ccrypto_rsa *wrap(EVP_PKEY *pkey) {
    if (!pkey) return NULL;
    ccrypto_rsa *key = malloc(sizeof *key);
    if (!key) { EVP_PKEY_free(pkey); return NULL; }
    key->pkey = pkey;
    return key;
}

ccrypto_rsa *ccrypto_rsa_generate(unsigned bits) {
    return wrap(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits));
}

static ccrypto_rsa *from_params(OSSL_PARAM_BLD *bld, int selection) {
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1) EVP_PKEY_fromdata(ctx, &pkey, selection, params);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return wrap(pkey);
}

ccrypto_rsa *ccrypto_rsa_private(const uint8_t *eb, size_t elen, const uint8_t *pb, size_t plen,
                                 const uint8_t *qb, size_t qlen) {
    ccrypto_rsa *result = NULL;
    BN_CTX *bnctx = BN_CTX_new();
    BIGNUM *e = BN_bin2bn(eb, (int)elen, NULL), *p = BN_bin2bn(pb, (int)plen, NULL), *q = BN_bin2bn(qb, (int)qlen, NULL);
    BIGNUM *n = BN_new(), *d = BN_new(), *p1 = BN_new(), *q1 = BN_new(), *phi = BN_new();
    BIGNUM *dmp1 = BN_new(), *dmq1 = BN_new(), *iqmp = BN_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (!bnctx || !e || !p || !q || !n || !d || !p1 || !q1 || !phi || !dmp1 || !dmq1 || !iqmp || !bld) goto done;
    if (BN_is_zero(e) || BN_cmp(p, BN_value_one()) <= 0 || BN_cmp(q, BN_value_one()) <= 0) goto done;
    if (!BN_mul(n, p, q, bnctx) || !BN_sub(p1, p, BN_value_one()) || !BN_sub(q1, q, BN_value_one())
        || !BN_mul(phi, p1, q1, bnctx)) goto done;
    if (!BN_mod_inverse(d, e, phi, bnctx) || !BN_mod(dmp1, d, p1, bnctx) || !BN_mod(dmq1, d, q1, bnctx)
        || !BN_mod_inverse(iqmp, q, p, bnctx)) goto done;
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d)
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p)
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q)
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dmp1)
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dmq1)
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, iqmp)) goto done;
    result = from_params(bld, EVP_PKEY_KEYPAIR);
done:
    OSSL_PARAM_BLD_free(bld);
    BN_free(e); BN_clear_free(p); BN_clear_free(q); BN_free(n); BN_clear_free(d); BN_clear_free(p1);
    BN_clear_free(q1); BN_clear_free(phi); BN_clear_free(dmp1); BN_clear_free(dmq1); BN_clear_free(iqmp);
    BN_CTX_free(bnctx);
    return result;
}

ccrypto_rsa *ccrypto_rsa_public(const uint8_t *eb, size_t elen, const uint8_t *nb, size_t nlen) {
    ccrypto_rsa *result = NULL;
    BIGNUM *e = BN_bin2bn(eb, (int)elen, NULL), *n = BN_bin2bn(nb, (int)nlen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (e && n && bld && !BN_is_zero(e) && BN_num_bits(n) >= 512
        && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n)
        && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        result = from_params(bld, EVP_PKEY_PUBLIC_KEY);
    OSSL_PARAM_BLD_free(bld);
    BN_free(e); BN_free(n);
    return result;
}

void ccrypto_rsa_free(ccrypto_rsa *key) {
    if (!key) return;
    EVP_PKEY_free(key->pkey);
    free(key);
}

int ccrypto_rsa_component(const ccrypto_rsa *key, int which, uint8_t *out, size_t cap) {
    static const char *names[] = { OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_N,
                                   OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2 };
    if (which < 0 || which > 3) return -1;
    BIGNUM *bn = NULL;
    if (!EVP_PKEY_get_bn_param(key->pkey, names[which], &bn)) return -1;
    int len = BN_num_bytes(bn);
    if ((size_t)len > cap) { BN_clear_free(bn); return -1; }
    BN_bn2bin(bn, out);
    BN_clear_free(bn);
    return len;
}

int ccrypto_rsa_size(const ccrypto_rsa *key) { return EVP_PKEY_get_size(key->pkey); }

static EVP_PKEY_CTX *pss_ctx(const ccrypto_rsa *key, int sign) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key->pkey, NULL);
    if (!ctx) return NULL;
    if ((sign ? EVP_PKEY_sign_init(ctx) : EVP_PKEY_verify_init(ctx)) != 1
        || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) != 1
        || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1
        || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1
        || EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, sign ? 32 : RSA_PSS_SALTLEN_AUTO) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int ccrypto_rsa_sign_pss(const ccrypto_rsa *key, const uint8_t digest[32], uint8_t *sig, size_t cap) {
    EVP_PKEY_CTX *ctx = pss_ctx(key, 1);
    if (!ctx) return -1;
    size_t len = cap;
    int ok = EVP_PKEY_sign(ctx, sig, &len, digest, 32) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok ? (int)len : -1;
}

int ccrypto_rsa_verify_pss(const ccrypto_rsa *key, const uint8_t digest[32], const uint8_t *sig, size_t siglen) {
    EVP_PKEY_CTX *ctx = pss_ctx(key, 0);
    if (!ctx) return 0;
    int ok = EVP_PKEY_verify(ctx, sig, siglen, digest, 32) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static EVP_PKEY_CTX *oaep_ctx(const ccrypto_rsa *key, int encrypt) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key->pkey, NULL);
    if (!ctx) return NULL;
    if ((encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) != 1
        || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1
        || EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) != 1
        || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int oaep(const ccrypto_rsa *key, int encrypt, const uint8_t *in, size_t inlen, uint8_t *out, size_t cap) {
    EVP_PKEY_CTX *ctx = oaep_ctx(key, encrypt);
    if (!ctx) return -1;
    size_t len = cap;
    int ok = (encrypt ? EVP_PKEY_encrypt(ctx, out, &len, in, inlen) : EVP_PKEY_decrypt(ctx, out, &len, in, inlen)) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok ? (int)len : -1;
}

int ccrypto_rsa_encrypt_oaep(const ccrypto_rsa *key, const uint8_t *in, size_t inlen, uint8_t *out, size_t cap) {
    return oaep(key, 1, in, inlen, out, cap);
}

int ccrypto_rsa_decrypt_oaep(const ccrypto_rsa *key, const uint8_t *in, size_t inlen, uint8_t *out, size_t cap) {
    return oaep(key, 0, in, inlen, out, cap);
}
