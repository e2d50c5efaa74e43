/*
 * OTP secrets at rest. A database dump alone must not yield working second factors, so each secret is sealed
 * with AES-256-GCM under a master key kept outside the database, and bound to its owner: the user id (decimal
 * text) is the associated data, so a sealed blob copied to another user's row does not open. Layout:
 * version (1) || nonce (12, random) || ciphertext || tag (16). Random 96-bit nonces are safe far beyond the
 * number of secrets one key will ever seal.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "mfa/mfa.h"

/* Associated data: the user id as decimal text. Returns its length or -1. */
static int user_aad(int64_t user_id, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%" PRId64, user_id);
    return n > 0 && (size_t)n < len ? n : -1;
}

int mfa_seal(const uint8_t key[32], int64_t user_id, const uint8_t *plain, size_t len, uint8_t *out, size_t outlen,
             size_t *written)
{
    char aad[24];
    int aadlen = user_aad(user_id, aad, sizeof(aad)), n, ret = -1;
    if (key == NULL || (plain == NULL && len != 0) || out == NULL || written == NULL || aadlen < 0 ||
        len > MFA_SEAL_MAX || outlen < len + MFA_SEAL_OVERHEAD)
        return -1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return -1;

    uint8_t *nonce = out + 1, *ct = nonce + MFA_SEAL_NONCE_LEN, *tag = ct + len;
    out[0] = MFA_SEAL_VERSION;
    randombytes_buf(nonce, MFA_SEAL_NONCE_LEN);
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, MFA_SEAL_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, aadlen) != 1)
        goto Exit;
    if (len != 0 && (EVP_EncryptUpdate(ctx, ct, &n, plain, (int)len) != 1 || (size_t)n != len))
        goto Exit;
    if (EVP_EncryptFinal_ex(ctx, ct + len, &n) != 1 || n != 0 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, MFA_SEAL_TAG_LEN, tag) != 1)
        goto Exit;
    *written = len + MFA_SEAL_OVERHEAD;
    ret = 0;
Exit:
    if (ret != 0)
        OPENSSL_cleanse(out, len + MFA_SEAL_OVERHEAD);
    EVP_CIPHER_CTX_free(ctx);
    return ret;
}

int mfa_open(const uint8_t key[32], int64_t user_id, const uint8_t *sealed, size_t len, uint8_t *out, size_t outlen,
             size_t *written)
{
    char aad[24];
    int aadlen = user_aad(user_id, aad, sizeof(aad)), n, ret = -1;
    if (key == NULL || sealed == NULL || written == NULL || aadlen < 0 || len < MFA_SEAL_OVERHEAD ||
        sealed[0] != MFA_SEAL_VERSION)
        return -1;
    size_t ctlen = len - MFA_SEAL_OVERHEAD;
    if (ctlen > MFA_SEAL_MAX || outlen < ctlen || (out == NULL && ctlen != 0))
        return -1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return -1;

    const uint8_t *nonce = sealed + 1, *ct = nonce + MFA_SEAL_NONCE_LEN, *tag = ct + ctlen;
    uint8_t tagbuf[MFA_SEAL_TAG_LEN], final[16];
    memcpy(tagbuf, tag, sizeof(tagbuf)); /* the ctrl takes a non-const pointer */
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, MFA_SEAL_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, aadlen) != 1)
        goto Exit;
    if (ctlen != 0 && (EVP_DecryptUpdate(ctx, out, &n, ct, (int)ctlen) != 1 || (size_t)n != ctlen))
        goto Exit;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, MFA_SEAL_TAG_LEN, tagbuf) != 1 ||
        EVP_DecryptFinal_ex(ctx, final, &n) != 1 || n != 0)
        goto Exit;
    *written = ctlen;
    ret = 0;
Exit:
    if (ret != 0 && out != NULL && outlen > 0)
        OPENSSL_cleanse(out, ctlen < outlen ? ctlen : outlen);
    EVP_CIPHER_CTX_free(ctx);
    return ret;
}
