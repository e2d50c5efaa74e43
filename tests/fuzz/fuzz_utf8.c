/* libFuzzer: the UTF-8 length counter and the password rule agree, and never read past the string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1), reason[160];
    memcpy(in, data, size);
    in[size] = '\0';
    long n = pol_utf8_length(in);
    int r = pol_password_check(in, 8, reason, sizeof(reason));
    if (n < 0 && r == 0)
        abort();
    if (n >= 8 && n <= POL_PASSWORD_MAX && r != 0)
        abort();
    if (n > (long)strlen(in))
        abort();
    free(in);
    return 0;
}
