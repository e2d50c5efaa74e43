/* libFuzzer: the code-intake functions of mfa/ (TOTP/HOTP verification and recovery-code normalisation) see
 * what users type. They must never crash or read out of bounds, must accept only exactly `digits` ASCII digits,
 * must return a step inside the window and after last_step, and normalise only to 16 base32 characters.
 * Input: byte 0 selects algorithm, digit count and window; the rest is the submitted code. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mfa/mfa.h"

static const uint8_t SECRET[] = "12345678901234567890";
#define NOW ((time_t)5 * 30 + 7) /* step 5 */

static int initialised;

static void check_code_shape(const char *code, unsigned digits)
{
    if (strlen(code) != digits)
        abort();
    for (unsigned i = 0; i != digits; ++i)
        if (code[i] < '0' || code[i] > '9')
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!initialised) {
        if (mfa_global_init() != 0)
            abort();
        initialised = 1;
    }
    if (size == 0)
        return 0;
    uint8_t sel = data[0];
    char *code = malloc(size);
    memcpy(code, data + 1, size - 1);
    code[size - 1] = '\0';

    mfa_params_t p = {(mfa_alg_t)(sel % 3), 6 + (sel >> 2) % 3, 30, (sel >> 4) % 3};
    int64_t last = (int64_t)(sel >> 6) + 2; /* 2..5 */
    int64_t step = mfa_totp_verify(SECRET, 20, &p, code, NOW, last);
    if (step != -1) {
        check_code_shape(code, p.digits);
        if (step <= last || step < 5 - (int64_t)p.window || step > 5 + (int64_t)p.window)
            abort();
    }
    int64_t next = mfa_hotp_verify(SECRET, 20, p.digits, code, 3, p.window * 2);
    if (next != -1) {
        check_code_shape(code, p.digits);
        if (next < 4 || next > 4 + (int64_t)p.window * 2)
            abort();
    }

    char norm[MFA_RECOVERY_NORM_LEN + 1];
    if (mfa_recovery_normalize(code, norm, sizeof(norm)) == 0) {
        if (strlen(norm) != MFA_RECOVERY_NORM_LEN)
            abort();
        for (const char *c = norm; *c != '\0'; ++c)
            if (!((*c >= 'A' && *c <= 'Z') || (*c >= '2' && *c <= '7')))
                abort();
        uint8_t h[32];
        mfa_recovery_hash(norm, h);
    } else if (norm[0] != '\0') {
        abort();
    }
    free(code);
    return 0;
}
