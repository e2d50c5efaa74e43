/*
 * policy: declarations shared between the files of this module only (not part of the public policy.h).
 * normalize.c turns text into the two forms the password rules compare: NFKC (what is hashed) and the
 * case-folded "key" (what the blocklist and the context-word rules compare); blocklist.c looks keys up.
 */
#ifndef PORTIER_POLICY_INTERNAL_H
#define PORTIER_POLICY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

/* Negative results of the normalisation helpers. */
#define POL_U_INVALID  (-1) /* not valid UTF-8 (or NULL) */
#define POL_U_TOO_LONG (-2) /* more code points than allowed, before or after normalisation */
#define POL_U_NOMEM    (-3) /* libunistring could not allocate */

/* Buffer sizes (bytes, NUL included) that hold any result for an input of at most POL_PASSWORD_INPUT_MAX code
 * points: NFKC output is refused above that many code points (4 bytes each); full case folding expands a
 * string at most threefold (U+0390 -> 3 code points). */
#define POL_NFKC_CAP   (4 * POL_PASSWORD_INPUT_MAX + 1)
#define POL_KEY_CAP    (3 * 4 * POL_PASSWORD_INPUT_MAX + 1)
#define POL_KEY_MAX_CP (3 * POL_PASSWORD_INPUT_MAX)

/* NFKC of the NUL-terminated s into out (cap bytes, NUL-terminated). Refuses input over 4 * max_cp code points
 * and results over max_cp code points with POL_U_TOO_LONG. Returns the byte length and sets *ncp to the code
 * points of the result. out may hold a partial result after a failure: the caller wipes it. */
long pol_nfkc(const char *s, size_t max_cp, uint8_t *out, size_t cap, size_t *ncp);

/* Case folding (full, language-neutral) of the valid UTF-8 s[0..n), followed by NFKC again (folding can
 * denormalise), into out (cap bytes, NUL-terminated). Returns the byte length or a POL_U_* error. */
long pol_fold(const uint8_t *s, size_t n, uint8_t *out, size_t cap);

/* pol_nfkc then pol_fold: the comparison key of a string. *ncp gets the code points of the NFKC form. */
long pol_key(const char *s, size_t max_cp, uint8_t *out, size_t cap, size_t *ncp);

/* Whole-match lookup of a key made by pol_key / pol_fold. bl may be NULL (then 0). */
int pol_blocklist_contains_key(const pol_blocklist_t *bl, const uint8_t *key, size_t len);

#endif
