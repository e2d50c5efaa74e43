/*
 * Enrolment text: base32 of the secret (what authenticator apps type in) and the otpauth:// Key URI that the
 * QR code carries. The URI holds the secret, so its intermediate buffers are wiped; issuer and account are
 * percent-encoded (RFC 3986 unreserved characters pass, everything else becomes %XX) and may not contain ':',
 * which would make the "issuer:account" label ambiguous.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "mfa/mfa.h"

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

size_t mfa_base32_encode(const uint8_t *in, size_t len, char *out, size_t outlen)
{
    if (len > (SIZE_MAX - 4) / 8 || outlen < MFA_BASE32_LEN(len) + 1) {
        if (outlen > 0)
            out[0] = '\0';
        return 0;
    }
    size_t n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i != len; ++i) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[n++] = B32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[n++] = B32[(acc << (5 - bits)) & 31];
    out[n] = '\0';
    return n;
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

/* Percent-encodes s into out (size >= 3 * strlen(s) + 1). */
static void pct_encode(const char *s, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; ++p) {
        if (unreserved(*p)) {
            *out++ = (char)*p;
        } else {
            *out++ = '%';
            *out++ = hex[*p >> 4];
            *out++ = hex[*p & 15];
        }
    }
    *out = '\0';
}

static int label_ok(const char *s)
{
    if (s == NULL)
        return 0;
    size_t n = strnlen(s, MFA_LABEL_MAX + 1);
    return n > 0 && n <= MFA_LABEL_MAX && memchr(s, ':', n) == NULL;
}

static const char *alg_name(mfa_alg_t alg)
{
    switch (alg) {
    case MFA_SHA1: return "SHA1";
    case MFA_SHA256: return "SHA256";
    case MFA_SHA512: return "SHA512";
    }
    return NULL;
}

char *mfa_otpauth_uri(const char *issuer, const char *account, const uint8_t *secret, size_t len, const mfa_params_t *p)
{
    if (!label_ok(issuer) || !label_ok(account) || secret == NULL || len < MFA_SECRET_MIN || len > MFA_SECRET_MAX ||
        p == NULL || p->digits < MFA_DIGITS_MIN || p->digits > MFA_DIGITS_MAX || p->period == 0 ||
        alg_name(p->alg) == NULL)
        return NULL;

    char iss[3 * MFA_LABEL_MAX + 1], acc[3 * MFA_LABEL_MAX + 1], b32[MFA_BASE32_LEN(MFA_SECRET_MAX) + 1];
    pct_encode(issuer, iss);
    pct_encode(account, acc);
    (void)mfa_base32_encode(secret, len, b32, sizeof(b32)); /* cannot fail: len <= MFA_SECRET_MAX */

    static const char fmt[] = "otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=%s&digits=%u&period=%u";
    char *uri = NULL;
    int n = snprintf(NULL, 0, fmt, iss, acc, b32, iss, alg_name(p->alg), p->digits, p->period);
    if (n > 0 && (uri = malloc((size_t)n + 1)) != NULL &&
        snprintf(uri, (size_t)n + 1, fmt, iss, acc, b32, iss, alg_name(p->alg), p->digits, p->period) != n) {
        OPENSSL_cleanse(uri, (size_t)n + 1);
        free(uri);
        uri = NULL;
    }
    OPENSSL_cleanse(b32, sizeof(b32));
    return uri;
}

char *mfa_otpauth_uri_hotp(const char *issuer, const char *account, const uint8_t *secret, size_t len, unsigned digits,
                           uint64_t counter)
{
    if (!label_ok(issuer) || !label_ok(account) || secret == NULL || len < MFA_SECRET_MIN || len > MFA_SECRET_MAX ||
        digits < MFA_DIGITS_MIN || digits > MFA_DIGITS_MAX)
        return NULL;

    char iss[3 * MFA_LABEL_MAX + 1], acc[3 * MFA_LABEL_MAX + 1], b32[MFA_BASE32_LEN(MFA_SECRET_MAX) + 1];
    pct_encode(issuer, iss);
    pct_encode(account, acc);
    (void)mfa_base32_encode(secret, len, b32, sizeof(b32));

    static const char fmt[] = "otpauth://hotp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=%u&counter=%llu";
    char *uri = NULL;
    int n = snprintf(NULL, 0, fmt, iss, acc, b32, iss, digits, (unsigned long long)counter);
    if (n > 0 && (uri = malloc((size_t)n + 1)) != NULL &&
        snprintf(uri, (size_t)n + 1, fmt, iss, acc, b32, iss, digits, (unsigned long long)counter) != n) {
        OPENSSL_cleanse(uri, (size_t)n + 1);
        free(uri);
        uri = NULL;
    }
    OPENSSL_cleanse(b32, sizeof(b32));
    return uri;
}
