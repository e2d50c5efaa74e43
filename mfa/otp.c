/*
 * One-time passwords: TOTP (RFC 6238) and HOTP (RFC 4226) verification, plus library start-up and secret
 * generation. liboath computes the codes (HMAC + dynamic truncation); this file owns what liboath does not:
 * strict input checks, replay protection (a TOTP step is accepted only if it is newer than the last one the
 * caller stored), and a constant-time comparison of the submitted code against every candidate of the window.
 */
#include <stdint.h>
#include <string.h>

#include <liboath/oath.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "mfa/mfa.h"

int mfa_global_init(void)
{
    if (oath_init() != OATH_OK)
        return -1;
    if (sodium_init() < 0)
        return -1;
    return 0;
}

void mfa_secret_generate(uint8_t out[MFA_SECRET_LEN])
{
    randombytes_buf(out, MFA_SECRET_LEN);
}

/* 1 when code is exactly `digits` ASCII digits. */
static int code_well_formed(const char *code, unsigned digits)
{
    if (code == NULL || strnlen(code, MFA_DIGITS_MAX + 1) != digits)
        return 0;
    for (unsigned i = 0; i != digits; ++i)
        if (code[i] < '0' || code[i] > '9')
            return 0;
    return 1;
}

static int secret_ok(const uint8_t *secret, size_t len)
{
    return secret != NULL && len >= MFA_SECRET_MIN && len <= MFA_SECRET_MAX;
}

static int digits_ok(unsigned digits)
{
    return digits >= MFA_DIGITS_MIN && digits <= MFA_DIGITS_MAX;
}

static int oath_flags(mfa_alg_t alg, int *flags)
{
    switch (alg) {
    case MFA_SHA1: *flags = 0; return 0;
    case MFA_SHA256: *flags = OATH_TOTP_HMAC_SHA256; return 0;
    case MFA_SHA512: *flags = OATH_TOTP_HMAC_SHA512; return 0;
    }
    return -1;
}

int64_t mfa_totp_verify(const uint8_t *secret, size_t len, const mfa_params_t *p, const char *code, time_t now,
                        int64_t last_step)
{
    int flags;
    if (!secret_ok(secret, len) || p == NULL || !digits_ok(p->digits) || p->period == 0 || p->window > MFA_WINDOW_MAX ||
        oath_flags(p->alg, &flags) != 0 || now < 0 || !code_well_formed(code, p->digits))
        return -1;
    /* the last candidate time, (step + window) * period, must not overflow time_t */
    int64_t step = (int64_t)now / p->period;
    if (step > (INT64_MAX / p->period) - (int64_t)p->window - 1)
        return -1;

    /* Every candidate of the window is generated and compared (no early exit); the newest matching step that is
     * still after last_step wins, which moves the replay barrier as far as the code allows. */
    int64_t accepted = -1;
    char cand[MFA_DIGITS_MAX + 1];
    for (int64_t s = step - (int64_t)p->window; s <= step + (int64_t)p->window; ++s) {
        if (s < 0)
            continue;
        if (oath_totp_generate2((const char *)secret, len, (time_t)(s * p->period), p->period, 0, p->digits, flags,
                                cand) != OATH_OK) {
            accepted = -1;
            break;
        }
        int match = CRYPTO_memcmp(cand, code, p->digits) == 0;
        if (match && s > last_step)
            accepted = s;
    }
    OPENSSL_cleanse(cand, sizeof(cand));
    return accepted;
}

int64_t mfa_hotp_verify(const uint8_t *secret, size_t len, unsigned digits, const char *code, uint64_t counter,
                        unsigned lookahead)
{
    if (!secret_ok(secret, len) || !digits_ok(digits) || lookahead > MFA_LOOKAHEAD_MAX ||
        !code_well_formed(code, digits))
        return -1;
    /* the returned counter (at most counter + lookahead + 1) must fit in int64_t */
    if (counter > (uint64_t)INT64_MAX - lookahead - 1)
        return -1;

    /* All candidates are compared; the lowest matching counter wins (RFC 4226 resynchronisation). */
    int64_t next = -1;
    char cand[MFA_DIGITS_MAX + 1];
    for (uint64_t c = counter + lookahead + 1; c-- > counter;) {
        if (oath_hotp_generate((const char *)secret, len, c, digits, false, OATH_HOTP_DYNAMIC_TRUNCATION, cand) !=
            OATH_OK) {
            next = -1;
            break;
        }
        if (CRYPTO_memcmp(cand, code, digits) == 0)
            next = (int64_t)c + 1;
    }
    OPENSSL_cleanse(cand, sizeof(cand));
    return next;
}
