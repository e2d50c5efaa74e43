/*
 * The return-URL gatekeeper. Open redirects through `return_to` are a classic phishing aid, and the tricks are
 * many (`//evil`, `/\evil`, `https:%5c%5cevil`, `http:evil`, `javascript:`). Rather than recognising bad forms,
 * accept exactly two good ones: a path beginning with a single '/', or a URL of our own origin.
 */
#include <string.h>

#include "policy/policy.h"

static int set_out(char *out, size_t outlen, const char *v, size_t len)
{
    if (len + 1 > outlen)
        return -1;
    memcpy(out, v, len);
    out[len] = '\0';
    return 0;
}

static int safe_chars(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; ++p)
        if (*p <= 0x20 || *p == 0x7f || *p == '\\')
            return 0;
    return 1;
}

static int is_local_path(const char *v)
{
    return v[0] == '/' && v[1] != '/' && v[1] != '\\';
}

int pol_return_to(const char *value, const char *own_origin, char *out, size_t outlen)
{
    if (value != NULL && strlen(value) <= POL_RETURN_TO_MAX && safe_chars(value)) {
        if (is_local_path(value))
            return set_out(out, outlen, value, strlen(value)) == 0 ? 0 : (set_out(out, outlen, "/", 1), -1);
        size_t olen = own_origin != NULL ? strlen(own_origin) : 0;
        if (olen != 0 && strncmp(value, own_origin, olen) == 0) {
            const char *rest = value + olen;
            if (*rest == '\0')
                return set_out(out, outlen, "/", 1);
            if (is_local_path(rest) && set_out(out, outlen, rest, strlen(rest)) == 0)
                return 0;
        }
    }
    set_out(out, outlen, "/", 1);
    return -1;
}
