/*
 * Recovery codes: the fallback factor when the authenticator is lost. Each code is 80 bits from the CSPRNG,
 * shown as 16 base32 characters in four dash-separated groups; only SHA-256 of the normalised form is stored
 * (80 random bits need no slow hash). Normalisation forgives what people do when typing a code from paper:
 * lower case, missing or extra dashes and spaces, and the look-alikes 0/O, 1/I, 8/B.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sodium.h>

#include "mfa/mfa.h"

#define CODE_BYTES 10 /* 80 bits = 16 base32 characters */
#define GROUP      4

void mfa_recovery_generate(size_t n, char (*codes)[MFA_RECOVERY_CODE_CHARS], uint8_t (*hashes)[32])
{
    uint8_t raw[CODE_BYTES];
    char b32[MFA_RECOVERY_NORM_LEN + 1];
    for (size_t i = 0; i != n; ++i) {
        randombytes_buf(raw, sizeof(raw));
        (void)mfa_base32_encode(raw, sizeof(raw), b32, sizeof(b32)); /* exactly 16 characters */
        char *o = codes[i];
        for (size_t j = 0; j != MFA_RECOVERY_NORM_LEN; ++j) {
            if (j != 0 && j % GROUP == 0)
                *o++ = '-';
            *o++ = b32[j];
        }
        *o = '\0';
        mfa_recovery_hash(b32, hashes[i]);
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(b32, sizeof(b32));
}

static int base32_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7');
}

int mfa_recovery_normalize(const char *in, char *out, size_t outlen)
{
    if (in == NULL || out == NULL || outlen < MFA_RECOVERY_NORM_LEN + 1)
        goto Fail;
    size_t n = 0;
    for (size_t i = 0; in[i] != '\0'; ++i) {
        if (i == MFA_RECOVERY_INPUT_MAX)
            goto Fail;
        char c = in[i];
        if (c == '-' || c == ' ')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (c == '0')
            c = 'O';
        else if (c == '1')
            c = 'I';
        else if (c == '8')
            c = 'B';
        if (!base32_char(c) || n == MFA_RECOVERY_NORM_LEN)
            goto Fail;
        out[n++] = c;
    }
    if (n != MFA_RECOVERY_NORM_LEN)
        goto Fail;
    out[n] = '\0';
    return 0;

Fail:
    if (out != NULL && outlen > 0)
        OPENSSL_cleanse(out, outlen < MFA_RECOVERY_NORM_LEN + 1 ? outlen : MFA_RECOVERY_NORM_LEN + 1);
    return -1;
}

void mfa_recovery_hash(const char *normalized, uint8_t out[32])
{
    SHA256((const unsigned char *)normalized, strlen(normalized), out);
}
