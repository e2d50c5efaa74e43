/*
 * Password rules (NIST SP 800-63B 5.1.1.2, rev 4 3.1.1.2): no composition rules, but a length in code points
 * bounded above so that nothing is ever truncated, NFKC normalisation before hashing, and refusal of passwords
 * that are common (blocklist), repetitive or sequential, or built from the user's own context (name, email,
 * product, organisation). pol_password_evaluate is the whole rule
 * set, in the order documented in policy.h, each refusal with a one-sentence reason that never echoes the
 * password. Pure: no I/O, no globals; every copy of the password made here is wiped before returning.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <unictype.h>
#include <unistr.h>

#include "policy/internal.h"
#include "policy/policy.h"

long pol_utf8_length(const char *s)
{
    long n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        size_t extra;
        uint32_t cp;
        if (*p < 0x80) {
            extra = 0;
            cp = *p;
        } else if ((*p & 0xe0) == 0xc0) {
            extra = 1;
            cp = *p & 0x1f;
        } else if ((*p & 0xf0) == 0xe0) {
            extra = 2;
            cp = *p & 0x0f;
        } else if ((*p & 0xf8) == 0xf0) {
            extra = 3;
            cp = *p & 0x07;
        } else {
            return -1;
        }
        ++p;
        for (size_t i = 0; i != extra; ++i, ++p) {
            if ((*p & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (*p & 0x3f);
        }
        static const uint32_t min_for_len[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return -1; /* overlong, out of range or surrogate */
        ++n;
    }
    return n;
}

/* ---- pol_password_evaluate ---- */

#define PATTERN_MIN_RUN     3 /* shortest run of sequential characters, and shortest repetition, that counts */
#define CONTEXT_MIN_LETTERS 3 /* rule 5b: a context word needs this many letters */
#define CONTEXT_MIN_PART    4 /* rule 5c: context words this long count towards "more than half" */

#define REASON_INVALID "The password contains invalid characters."
#define REASON_SHORT   "The password is too short: use at least %u characters."
#define REASON_LONG    "The password is too long: use at most %d characters."
#define REASON_COMMON  "This password is too common: it appears in lists of frequently used or breached passwords."
#define REASON_PATTERN "The password is mostly a repeated or sequential pattern of characters, which is easy to guess."
#define REASON_CONTEXT                                                                                                 \
    "The password must not contain your user name, email address, name, or the product or organisation name."
#define REASON_INTERNAL "The password could not be checked: please try again."

/* Key sequences for rule 4 (lower case: they are compared with the case-folded password). A step is from one
 * character to the next in a sequence; the first two wrap around from the end to the start. */
static const char *const cyclic_sequences[] = {"abcdefghijklmnopqrstuvwxyz", "0123456789"};
static const char *const sequences[] = {
    "qwertyuiopasdfghjklzxcvbnm",               /* QWERTY letters, row by row */
    "qwertzuiopasdfghjklyxcvbnm",               /* QWERTZ */
    "azertyuiopqsdfghjklmwxcvbn",               /* AZERTY */
    "qwertyuiop[]\\",                           /* QWERTY rows with their punctuation */
    "asdfghjkl;'",                              /* ... */
    "zxcvbnm,./",                               /* ... */
    "`1234567890-=",                            /* digit row */
    "~!@#$%^&*()_+",                            /* digit row, shifted */
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/", /* QWERTY columns */
    "7894561230",                               /* numeric keypad rows */
    "1472583690",                               /* numeric keypad columns */
};

/* Case folding at most triples a string: the longest key of an acceptable password. */
#define PW_KEY_MAX_CP (3 * POL_PASSWORD_MAX)

/* Everything pol_password_evaluate derives from the password, wiped as one block at the end. */
typedef struct st_work_t {
    uint8_t nfkc[POL_NFKC_CAP];         /* the normalised password: what is hashed */
    uint8_t key[4 * PW_KEY_MAX_CP + 1]; /* ... case-folded */
    uint32_t cp[PW_KEY_MAX_CP];         /* the key as code points */
    uint32_t letters[PW_KEY_MAX_CP];    /* ... only its letters */
    bool covered[PW_KEY_MAX_CP];        /* rules 4 and 5c: characters inside a pattern / context word */
    size_t n, nletters;
} work_t;

static int refuse(char *reason, size_t reason_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(char *reason, size_t reason_len, const char *fmt, ...)
{
    if (reason != NULL && reason_len != 0) {
        va_list ap;
        va_start(ap, fmt);
        int r = vsnprintf(reason, reason_len, fmt, ap);
        va_end(ap);
        if (r < 0)
            reason[0] = '\0'; /* a truncated sentence (short buffer) is still NUL-terminated: keep it */
    }
    return -1;
}

/* Decodes valid UTF-8 into code points; returns the count (at most cap). */
static size_t decode(const uint8_t *s, size_t len, uint32_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n < cap;) {
        ucs4_t c;
        i += (size_t)u8_mbtouc_unsafe(&c, s + i, len - i);
        out[n++] = c;
    }
    return n;
}

static bool seq_step(const char *seq, bool cyclic, uint32_t a, uint32_t b, int dir)
{
    const char *p = strchr(seq, (int)a);
    if (p == NULL)
        return false;
    size_t len = strlen(seq), i = (size_t)(p - seq), next;
    if (dir > 0)
        next = i + 1 < len ? i + 1 : (cyclic ? 0 : len);
    else
        next = i > 0 ? i - 1 : (cyclic ? len - 1 : len);
    return next < len && (uint32_t)(unsigned char)seq[next] == b;
}

/* Is b the step after a in direction dir (+1 ascending, -1 descending)? */
static bool is_step(uint32_t a, uint32_t b, int dir)
{
    if (dir > 0 ? b == a + 1 : a == b + 1)
        return true;
    if (a == 0 || a > 0x7e || b == 0 || b > 0x7e)
        return false;
    for (size_t i = 0; i != sizeof(cyclic_sequences) / sizeof(cyclic_sequences[0]); ++i)
        if (seq_step(cyclic_sequences[i], true, a, b, dir))
            return true;
    for (size_t i = 0; i != sizeof(sequences) / sizeof(sequences[0]); ++i)
        if (seq_step(sequences[i], false, a, b, dir))
            return true;
    return false;
}

/* Rule 4: true when patterns cover all but fewer than POL_PATTERN_MIN_LEFTOVER characters (see policy.h). */
static bool is_pattern(work_t *w)
{
    const uint32_t *c = w->cp;
    size_t n = w->n, covered = 0;
    memset(w->covered, 0, n * sizeof(w->covered[0]));
    /* runs of steps in one direction */
    for (int dir = -1; dir <= 1; dir += 2) {
        for (size_t i = 0; i < n;) {
            size_t j = i;
            while (j + 1 < n && is_step(c[j], c[j + 1], dir))
                ++j;
            if (j - i + 1 >= PATTERN_MIN_RUN)
                memset(w->covered + i, 1, (j - i + 1) * sizeof(w->covered[0]));
            i = j + 1;
        }
    }
    /* repetitions of a unit of p characters: c[k] == c[k - p] for r consecutive k, r >= p (two whole units) */
    for (size_t p = 1; p <= n / 2; ++p) {
        for (size_t k = p; k < n;) {
            if (c[k] != c[k - p]) {
                ++k;
                continue;
            }
            size_t k0 = k;
            while (k < n && c[k] == c[k - p])
                ++k;
            size_t r = k - k0;
            if (r >= p && r + p >= PATTERN_MIN_RUN)
                memset(w->covered + k0, 1, r * sizeof(w->covered[0]));
        }
    }
    for (size_t i = 0; i != n; ++i)
        covered += w->covered[i];
    return covered != 0 && n - covered < POL_PATTERN_MIN_LEFTOVER;
}

static bool is_letter(uint32_t c)
{
    return uc_is_alpha(c);
}

/* Rules 5a-5c for one context word (code points of the case-folded field). Marks occurrences for 5c. */
static bool word_matches(work_t *w, const uint32_t *word, size_t len)
{
    if (len == 0)
        return false;
    if (len == w->n && memcmp(word, w->cp, len * sizeof(*word)) == 0)
        return true; /* a */
    size_t nl = 0;
    bool same = true;
    for (size_t i = 0; i != len; ++i) {
        if (!is_letter(word[i]))
            continue;
        if (nl >= w->nletters || w->letters[nl] != word[i])
            same = false;
        ++nl;
    }
    if (same && nl == w->nletters && nl >= CONTEXT_MIN_LETTERS)
        return true; /* b */
    if (len >= CONTEXT_MIN_PART && len <= w->n) {
        for (size_t i = 0; i + len <= w->n; ++i)
            if (memcmp(w->cp + i, word, len * sizeof(*word)) == 0)
                memset(w->covered + i, 1, len * sizeof(w->covered[0])); /* c */
    }
    return false;
}

static bool is_coarse_separator(uint32_t c)
{
    return c == '@' || c == '.' || uc_is_space(c);
}

static bool is_fine_separator(uint32_t c)
{
    return !uc_is_alnum(c);
}

/* Checks every piece of cp[0..n) between separators (not the whole, which the caller checks). */
static bool pieces_match(work_t *w, const uint32_t *cp, size_t n, bool (*is_sep)(uint32_t))
{
    for (size_t i = 0; i < n;) {
        while (i < n && is_sep(cp[i]))
            ++i;
        size_t start = i;
        while (i < n && !is_sep(cp[i]))
            ++i;
        if (i > start && !(start == 0 && i == n) && word_matches(w, cp + start, i - start))
            return true;
    }
    return false;
}

/* Checks the words of one context field: the whole, its pieces between spaces, '@' and '.' (email local part
 * and domain labels, display-name words), its pieces between all non-alphanumerics ("alice.smith+sso" ->
 * alice, smith, sso) and, for an address, the local part and the domain. True when rule 5a or 5b refuses. */
static bool field_matches(work_t *w, const char *field)
{
    uint8_t key[POL_KEY_CAP];
    uint32_t cp[POL_KEY_MAX_CP];
    size_t ncp;
    if (field == NULL)
        return false;
    long klen = pol_key(field, POL_PASSWORD_INPUT_MAX, key, sizeof(key), &ncp);
    if (klen <= 0)
        return false; /* empty, invalid or absurdly long: no words */
    size_t n = decode(key, (size_t)klen, cp, POL_KEY_MAX_CP);
    if (word_matches(w, cp, n) || pieces_match(w, cp, n, is_coarse_separator) ||
        pieces_match(w, cp, n, is_fine_separator))
        return true;
    for (size_t at = n; at-- > 0;) {
        if (cp[at] == '@')
            return (at != 0 && word_matches(w, cp, at)) || (at + 1 < n && word_matches(w, cp + at + 1, n - at - 1));
    }
    return false;
}

/* Rule 5; true when the password is (built from) context words. */
static bool is_context(work_t *w, const pol_context_t *ctx)
{
    if (ctx == NULL)
        return false;
    w->nletters = 0;
    for (size_t i = 0; i != w->n; ++i)
        if (is_letter(w->cp[i]))
            w->letters[w->nletters++] = w->cp[i];
    memset(w->covered, 0, w->n * sizeof(w->covered[0]));
    const char *fields[] = {ctx->username, ctx->email, ctx->display_name, ctx->product, ctx->organization};
    for (size_t i = 0; i != sizeof(fields) / sizeof(fields[0]); ++i)
        if (field_matches(w, fields[i]))
            return true;
    size_t covered = 0;
    for (size_t i = 0; i != w->n; ++i)
        covered += w->covered[i];
    return covered * 2 > w->n; /* c */
}

static int evaluate(work_t *w, const pol_blocklist_t *bl, const char *password, unsigned min_length,
                    const pol_context_t *ctx, char *out, size_t outlen, char *reason, size_t reason_len)
{
    size_t ncp;
    long len = pol_nfkc(password, POL_PASSWORD_MAX, w->nfkc, sizeof(w->nfkc), &ncp);
    if (len == POL_U_INVALID)
        return refuse(reason, reason_len, REASON_INVALID);
    if (len == POL_U_TOO_LONG)
        return refuse(reason, reason_len, REASON_LONG, POL_PASSWORD_MAX);
    if (len < 0)
        return refuse(reason, reason_len, REASON_INTERNAL);
    if (ncp < min_length)
        return refuse(reason, reason_len, REASON_SHORT, min_length);

    long klen = pol_fold(w->nfkc, (size_t)len, w->key, sizeof(w->key));
    if (klen < 0)
        return refuse(reason, reason_len, REASON_INTERNAL);
    if (pol_blocklist_contains_key(bl, w->key, (size_t)klen))
        return refuse(reason, reason_len, REASON_COMMON);

    w->n = decode(w->key, (size_t)klen, w->cp, PW_KEY_MAX_CP);
    if (is_pattern(w))
        return refuse(reason, reason_len, REASON_PATTERN);
    if (is_context(w, ctx))
        return refuse(reason, reason_len, REASON_CONTEXT);

    if ((size_t)len >= outlen)
        return refuse(reason, reason_len, REASON_INTERNAL);
    memcpy(out, w->nfkc, (size_t)len + 1);
    return 0;
}

int pol_password_evaluate(const pol_blocklist_t *bl, const char *password, unsigned min_length,
                          const pol_context_t *ctx, char *out, size_t outlen, char *reason, size_t reason_len)
{
    work_t w;
    if (out == NULL || outlen == 0)
        return refuse(reason, reason_len, REASON_INTERNAL);
    out[0] = '\0';
    if (reason != NULL && reason_len != 0)
        reason[0] = '\0';
    int r = evaluate(&w, bl, password, min_length, ctx, out, outlen, reason, reason_len);
    OPENSSL_cleanse(&w, sizeof(w));
    return r;
}
