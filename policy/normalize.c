/*
 * Unicode for the password rules, with GNU libunistring. NFKC normalisation (NIST SP 800-63B 5.1.1.2) turns the
 * many byte sequences that look like the same password (composed or decomposed accents, fullwidth forms,
 * ligatures) into one, which is what gets hashed; case folding on top of it gives the key the blocklist and the
 * context-word rules compare. Results go to bounded caller buffers sized for every acceptable input, so the
 * normal path allocates nothing; when libunistring does allocate (over-long input, which is then refused) the
 * copy is wiped before it is freed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <unicase.h>
#include <uninorm.h>
#include <unistr.h>

#include "policy/internal.h"

/* Accepts a libunistring result only when it landed in our buffer; anything it allocated is wiped and freed.
 * Returns the length or a POL_U_* error. */
static long take(uint8_t *res, const uint8_t *buf, size_t len)
{
    if (res == NULL)
        return errno == ENOMEM ? POL_U_NOMEM : POL_U_INVALID;
    if (res != buf) {
        OPENSSL_cleanse(res, len);
        free(res);
        return POL_U_TOO_LONG;
    }
    return (long)len;
}

long pol_nfkc(const char *s, size_t max_cp, uint8_t *out, size_t cap, size_t *ncp)
{
    if (s == NULL || cap == 0)
        return POL_U_INVALID;
    long cps = pol_utf8_length(s); /* strict: no overlongs, surrogates or values above U+10FFFF */
    if (cps < 0)
        return POL_U_INVALID;
    if ((size_t)cps > 4 * max_cp)
        return POL_U_TOO_LONG;
    size_t len = cap - 1;
    uint8_t *res = u8_normalize(UNINORM_NFKC, (const uint8_t *)s, strlen(s), out, &len);
    long r = take(res, out, len); /* (two statements: len is set by the call) */
    if (r < 0)
        return r;
    size_t n = u8_mbsnlen(out, len);
    if (n > max_cp)
        return POL_U_TOO_LONG;
    out[len] = '\0';
    *ncp = n;
    return r;
}

long pol_fold(const uint8_t *s, size_t n, uint8_t *out, size_t cap)
{
    uint8_t tmp[POL_KEY_CAP];
    size_t tlen = sizeof(tmp) - 1, olen = cap - 1;
    if (cap == 0)
        return POL_U_INVALID;
    uint8_t *res = u8_casefold(s, n, NULL, NULL, tmp, &tlen);
    long r = take(res, tmp, tlen);
    if (r >= 0) {
        res = u8_normalize(UNINORM_NFKC, tmp, tlen, out, &olen);
        r = take(res, out, olen);
    }
    OPENSSL_cleanse(tmp, sizeof(tmp));
    if (r >= 0)
        out[olen] = '\0';
    return r;
}

long pol_key(const char *s, size_t max_cp, uint8_t *out, size_t cap, size_t *ncp)
{
    uint8_t nfkc[POL_NFKC_CAP];
    long r = pol_nfkc(s, max_cp > POL_PASSWORD_INPUT_MAX ? POL_PASSWORD_INPUT_MAX : max_cp, nfkc, sizeof(nfkc), ncp);
    if (r >= 0)
        r = pol_fold(nfkc, (size_t)r, out, cap);
    OPENSSL_cleanse(nfkc, sizeof(nfkc));
    return r;
}

int pol_password_normalize(const char *password, char *out, size_t outlen)
{
    uint8_t nfkc[POL_NFKC_CAP];
    size_t ncp;
    long r = pol_nfkc(password, POL_PASSWORD_MAX, nfkc, sizeof(nfkc), &ncp);
    int rc = -1;
    if (r >= 0 && (size_t)r < outlen) {
        memcpy(out, nfkc, (size_t)r + 1);
        rc = 0;
    } else if (outlen != 0) {
        out[0] = '\0';
    }
    OPENSSL_cleanse(nfkc, sizeof(nfkc));
    return rc;
}
