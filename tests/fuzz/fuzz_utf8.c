/* libFuzzer: the UTF-8 code point counter never reads past the string, never counts more code points than
 * bytes, and agrees with the normaliser about what is valid. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1), out[POL_NORMALIZED_MAX];
    memcpy(in, data, size);
    in[size] = '\0';
    long n = pol_utf8_length(in);
    if (n > (long)strlen(in))
        abort();
    if (n < 0 && pol_password_normalize(in, out, sizeof(out)) == 0)
        abort(); /* invalid UTF-8 must never normalise */
    free(in);
    return 0;
}
