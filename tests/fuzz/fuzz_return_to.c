/* libFuzzer: the return-URL gatekeeper never crashes, always NUL-terminates, and anything it accepts is a
 * single-slash local path free of backslashes and control characters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1), out[POL_RETURN_TO_MAX + 1];
    memcpy(in, data, size);
    in[size] = '\0';
    int r = pol_return_to(in, "https://sso.example.com", out, sizeof(out));
    if (out[0] != '/' || out[1] == '/' || out[1] == '\\')
        abort();
    for (const char *p = out; *p != '\0'; ++p)
        if ((unsigned char)*p <= 0x20 || *p == '\\' || *p == 0x7f)
            abort();
    if (r != 0 && strcmp(out, "/") != 0)
        abort();
    free(in);
    return 0;
}
