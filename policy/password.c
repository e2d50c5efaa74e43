/*
 * Password rules (NIST SP 800-63B): length in code points, bounded above so that nothing is ever truncated.
 * The blocklist and context-word rules join this file with the password-policy work.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

int pol_password_check(const char *password, unsigned min_length, char *reason, size_t reason_len)
{
    long len = pol_utf8_length(password);
    if (len < 0) {
        snprintf(reason, reason_len, "The password contains invalid characters.");
        return -1;
    }
    if (len < (long)min_length) {
        snprintf(reason, reason_len, "The password is too short: use at least %u characters.", min_length);
        return -1;
    }
    if (len > POL_PASSWORD_MAX) {
        snprintf(reason, reason_len, "The password is too long: use at most %d characters.", POL_PASSWORD_MAX);
        return -1;
    }
    return 0;
}
