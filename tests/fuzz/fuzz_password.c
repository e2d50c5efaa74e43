/*
 * libFuzzer: the password rules (pol_password_evaluate, pol_password_normalize, the blocklist) on arbitrary
 * bytes. Input: one byte of minimum length, then NUL-separated fields: password, username, email, display name,
 * product, organisation, blocklist text. Checked: no memory error; the reason is one of the fixed sentences;
 * an accepted password comes out as valid UTF-8 of an acceptable length that evaluates again to itself (NFKC
 * is idempotent), equals pol_password_normalize, and is not in the blocklist; a refused one leaves out empty;
 * a password added as a blocklist line is then found.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

#define NFIELDS 7

static const char base_list[] = "# fixed part\npassword\npassword1234567\nletmein\r\nqwertyuiop\n";

static int known_reason(const char *r, unsigned min)
{
    static const char *const fixed[] = {
        "The password contains invalid characters.",
        "The password is too long: use at most 128 characters.",
        "This password is too common: it appears in lists of frequently used or breached passwords.",
        "The password is mostly a repeated or sequential pattern of characters, which is easy to guess.",
        "The password must not contain your user name, email address, name, or the product or organisation name.",
    };
    char shortr[100];
    snprintf(shortr, sizeof(shortr), "The password is too short: use at least %u characters.", min);
    if (strcmp(r, shortr) == 0)
        return 1;
    for (size_t i = 0; i != sizeof(fixed) / sizeof(fixed[0]); ++i)
        if (strcmp(r, fixed[i]) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned min = data[0] % 20;
    char *buf = malloc(size), *field[NFIELDS] = {NULL};
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    /* split on NUL; the last field (blocklist text) keeps any further NULs, with its own length */
    size_t pos = 0, nf = 0, list_len = 0;
    while (nf < NFIELDS && pos < size) {
        field[nf] = buf + pos;
        if (nf == NFIELDS - 1) {
            list_len = size - 1 - pos;
            break;
        }
        pos += strlen(buf + pos) + 1;
        ++nf;
    }
    const char *pw = field[0] != NULL ? field[0] : "";
    pol_context_t ctx = {field[1], field[2], field[3], field[4], field[5]};

    pol_blocklist_t *bl = pol_blocklist_create();
    if (bl == NULL || pol_blocklist_add_lines(bl, base_list, sizeof(base_list) - 1, 1) < 0)
        abort();
    if (field[6] != NULL && pol_blocklist_add_lines(bl, field[6], list_len, min) < 0)
        abort();

    char out[POL_NORMALIZED_MAX], reason[200], again[POL_NORMALIZED_MAX], norm[POL_NORMALIZED_MAX];
    int r = pol_password_evaluate(bl, pw, min, &ctx, out, sizeof(out), reason, sizeof(reason));
    int nr = pol_password_normalize(pw, norm, sizeof(norm));
    if (r == 0) {
        long n = pol_utf8_length(out);
        if (n < (long)min || n > POL_PASSWORD_MAX || nr != 0 || strcmp(out, norm) != 0)
            abort();
        if (pol_blocklist_contains(bl, out) || pol_blocklist_contains(bl, pw))
            abort();
        if (pol_password_evaluate(bl, out, min, &ctx, again, sizeof(again), reason, sizeof(reason)) != 0 ||
            strcmp(again, out) != 0)
            abort();
    } else {
        if (r != -1 || out[0] != '\0' || !known_reason(reason, min))
            abort();
        if (pol_utf8_length(pw) < 0 && (nr == 0 || strcmp(reason, "The password contains invalid characters.") != 0))
            abort();
    }

    /* a password that is a valid blocklist line is found once added */
    size_t pl = strlen(pw);
    if (nr == 0 && pl != 0 && pw[0] != '#' && pw[pl - 1] != '\r' && strchr(pw, '\n') == NULL) {
        pol_blocklist_t *own = pol_blocklist_create();
        if (own == NULL || pol_blocklist_add_lines(own, pw, pl, 0) != 1 || !pol_blocklist_contains(own, pw) ||
            !pol_blocklist_contains(own, norm) || pol_blocklist_size(own) != 1)
            abort();
        pol_blocklist_destroy(own);
    }
    pol_blocklist_destroy(bl);
    free(buf);
    return 0;
}
