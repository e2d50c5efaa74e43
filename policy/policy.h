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

/* Password length rule: counts code points of valid UTF-8. Returns 0 when acceptable; otherwise -1 and a
 * human-readable reason in `reason`. */
int pol_password_check(const char *password, unsigned min_length, char *reason, size_t reason_len);

/* Number of code points in a UTF-8 string, or -1 when it is not valid UTF-8. */
long pol_utf8_length(const char *s);

#endif
