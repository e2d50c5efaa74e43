/*
 * policy: pure decisions, no I/O. Each security property has one gatekeeper here, used by every caller.
 */
#ifndef PORTIER_POLICY_H
#define PORTIER_POLICY_H

#include <stddef.h>

#define POL_RETURN_TO_MAX 2048
#define POL_PASSWORD_MAX  128 /* characters (code points); longer is refused, never truncated */

/* The one return-URL validator (return_to, rd, RelayState). Accepts a relative path that starts with exactly one
 * '/' (not "//", not "/\"), or an absolute URL of `own_origin` ("https://host[:port]"), which is reduced to its
 * path. Rejects control characters, backslashes, spaces and values over POL_RETURN_TO_MAX bytes. Writes the
 * validated path into out (NUL-terminated) and returns 0; on rejection writes "/" and returns -1. */
int pol_return_to(const char *value, const char *own_origin, char *out, size_t outlen);

/* Number of code points in a UTF-8 string, or -1 when it is not valid UTF-8. */
long pol_utf8_length(const char *s);

/* ---- NIST SP 800-63B password rules (blocklist.c, normalize.c, password.c; GNU libunistring for Unicode) ---- */

/* Size of the buffer pol_password_evaluate / pol_password_normalize need for the normalised password: NFKC of an
 * acceptable password has at most POL_PASSWORD_MAX code points of at most 4 bytes, plus the NUL. */
#define POL_NORMALIZED_MAX (4 * POL_PASSWORD_MAX + 1)
/* Inputs longer than this (code points, before normalisation) are refused as too long without being normalised:
 * canonical composition shrinks a string at most fourfold, so none of them could normalise to an acceptable
 * length. Callers may therefore bound the raw form field at 4 bytes times this. */
#define POL_PASSWORD_INPUT_MAX (4 * POL_PASSWORD_MAX)
/* Rule 4 of pol_password_evaluate: a password with fewer characters than this outside repeated or sequential
 * patterns is refused. */
#define POL_PATTERN_MIN_LEFTOVER 4

/* A set of forbidden passwords (case-folded), built from text buffers the caller read (one entry per line,
 * '#' comments and blank lines ignored, CRLF tolerated). Lookups are O(1) average (hash set).
 * Entries are stored NFKC-normalised and case-folded, exactly as passwords are compared. Lines that are not
 * valid UTF-8, contain a NUL byte, or normalise to more than POL_PASSWORD_MAX code points (no acceptable
 * password could match them) are skipped. Leading and trailing spaces of a line are part of the entry.
 * Ownership: the set owns copies of its entries; the caller keeps its buffers. Building is single-threaded;
 * once built, pol_blocklist_contains / pol_password_evaluate only read it and may run on any number of threads
 * concurrently. */
typedef struct st_pol_blocklist_t pol_blocklist_t;
/* Returns an empty set, or NULL on allocation failure. Free with pol_blocklist_destroy. */
pol_blocklist_t *pol_blocklist_create(void);
/* Adds the lines of buf; min_len: entries shorter than this (in code points) are skipped (e.g. dictionary
 * words shorter than 4). Returns number added or -1 on allocation failure.
 * "Added" counts entries new to the set (duplicates, also those equal after case folding, count once). On -1
 * the entries added before the failure stay and the set remains usable. buf need not be NUL-terminated. */
long pol_blocklist_add_lines(pol_blocklist_t *bl, const char *buf, size_t len, unsigned min_len);
/* Number of distinct entries. */
size_t pol_blocklist_size(const pol_blocklist_t *bl);
/* 1 when the password, NFKC-normalised and case-folded, equals an entry (whole match), else 0 (also for a NULL
 * set, or a password that is invalid UTF-8 or too long to be acceptable). Allocates nothing; wipes its copies. */
int pol_blocklist_contains(const pol_blocklist_t *bl, const char *password); /* case-folded whole match */
/* Frees the set and its entries; NULL is fine. */
void pol_blocklist_destroy(pol_blocklist_t *bl);

/* Context words a password must not be or be built from: the user's name, parts of the email address (local
 * part split on . _ - +, and the domain labels), words of the display name, product name ("portier") and
 * organisation name from the configuration. Any may be NULL. All borrowed for the duration of the call.
 * Each field is NFKC-normalised and case-folded; its words are: the whole field; its pieces between spaces, '@'
 * and '.' (domain labels such as "example-corp", display-name words); its pieces between any characters that
 * are neither letters nor digits ("alice.smith+sso" -> "alice", "smith", "sso"); for a field with '@', the parts
 * before and after the last '@' (local part, domain). Fields that are not valid UTF-8 or normalise to more than
 * POL_PASSWORD_INPUT_MAX code points are ignored. */
typedef struct st_pol_context_t {
    const char *username, *email, *display_name, *product, *organization;
} pol_context_t;

/* Unicode NFKC normalisation + the checks below. Writes the normalised password (what must be hashed, and what
 * pol_password_normalize reproduces at login) into out (NUL-terminated; outlen >= POL_NORMALIZED_MAX is always
 * enough) and returns 0, or returns -1 with a user-facing reason (one sentence, says why, never echoes the
 * password) and out set to "". Checks, in this order:
 *  1. valid UTF-8 (and not NULL);
 *  2. length in code points after normalisation: >= min_length, <= POL_PASSWORD_MAX (never truncated);
 *  3. the whole password (NFKC, case-folded) is in the blocklist (if bl non-NULL) -> "This password is too
 *     common...";
 *  4. repetitive or sequential. On the case-folded password, a character is "in a pattern" when it lies in
 *     - a run of >= 3 characters each one step after the previous, all in the same direction (ascending or
 *       descending); a step is the next code point ("abc", "987") or the next key in one of the sequences
 *       "abc..xyz" and "0123456789" (both wrapping around: "7890123", "yzab"), the keyboard rows read row by
 *       row (QWERTY, QWERTZ, AZERTY: "qwertyuiopasdfg"), the punctuation rows, keyboard columns ("1qaz2wsx")
 *       and the numeric keypad ("789456123"); or
 *     - the repeated part of a repetition: a substring that repeats a unit of p characters at least twice
 *       ("aaa", "abab", "xk7xk7"); every character after the first occurrence of the unit is in the pattern.
 *     The password is refused when at least one character is in a pattern and fewer than 4 are not
 *     (POL_PATTERN_MIN_LEFTOVER): "aaaaaaaaaaaaaaa", "abcabcabcabcabc", "121212121212121", "1234567890123456",
 *     "qwertyuiopasdfg" are refused; "correct horse battery staple 123" is not;
 *  5. context words (see pol_context_t; ctx may be NULL): refused when the case-folded password
 *     a. equals a context word; or
 *     b. has the same letters, in the same order, as a context word with at least 3 letters, i.e. is the word
 *        with only digits, punctuation, spaces or symbols around or inside it ("alice", "Alice1990!", "a.lice");
 *     c. is more than half made of occurrences of context words of >= 4 characters (all words together:
 *        "alice2024alice!!" for user alice, "SmithAlice2024" for display name "Alice Smith")
 *     -> "The password must not contain your user name, email address, name, or the product or organisation
 *     name."
 * min_length: caller passes 15 (password only) or 8 (MFA enrolled) or configured values.
 * Pure and reentrant: no allocation on the normal path (libunistring allocates only for over-long input), all
 * intermediate copies of the password are wiped. bl and ctx are borrowed, may be NULL; reason may be NULL. */
int pol_password_evaluate(const pol_blocklist_t *bl, const char *password, unsigned min_length,
                          const pol_context_t *ctx, char *out, size_t outlen, char *reason, size_t reason_len);

/* The normalisation step of pol_password_evaluate alone, for sign-in: a password must be normalised the same way
 * before it is verified against a stored hash. Writes the NFKC form (NUL-terminated) into out and returns 0, or
 * returns -1 when the input is not valid UTF-8, normalises to more than POL_PASSWORD_MAX code points (it can
 * then match no stored password: still run the KDF on a dummy hash to keep timing equal) or does not fit. */
int pol_password_normalize(const char *password, char *out, size_t outlen);

#endif
