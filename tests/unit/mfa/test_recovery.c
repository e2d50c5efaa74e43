/* Recovery codes: count and format, uniqueness over 1000 codes, hash = SHA-256 of the normalised code,
 * normalisation of case, dashes, spaces and look-alikes, and refusal of anything that is not 16 base32 chars. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mfa/mfa.h"

#define N 1000

static int setup(void **state)
{
    return mfa_global_init();
}

static int is_b32(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7');
}

static int cmp_code(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_generate_format_and_uniqueness(void **state)
{
    char(*codes)[MFA_RECOVERY_CODE_CHARS] = malloc(N * sizeof(*codes));
    uint8_t(*hashes)[32] = malloc(N * sizeof(*hashes));
    assert_non_null(codes);
    assert_non_null(hashes);
    memset(codes, 0x55, N * sizeof(*codes)); /* canary: every slot must be written */
    mfa_recovery_generate(N, codes, hashes);
    for (size_t i = 0; i != N; ++i) {
        const char *c = codes[i];
        assert_int_equal(strlen(c), 19);
        for (size_t j = 0; j != 19; ++j) {
            if (j % 5 == 4)
                assert_int_equal(c[j], '-');
            else
                assert_true(is_b32(c[j]));
        }
        /* the stored hash is the hash of the normalised code */
        char norm[MFA_RECOVERY_NORM_LEN + 1];
        uint8_t h[32];
        assert_int_equal(mfa_recovery_normalize(c, norm, sizeof(norm)), 0);
        mfa_recovery_hash(norm, h);
        assert_memory_equal(h, hashes[i], 32);
    }
    qsort(codes, N, sizeof(*codes), cmp_code);
    for (size_t i = 1; i != N; ++i)
        assert_string_not_equal(codes[i - 1], codes[i]);
    free(codes);
    free(hashes);
}

static void test_normalize(void **state)
{
    static const char *const same[] = {
        "ABCD-EFGH-IJKL-MNOP",         "abcd-efgh-ijkl-mnop", "ABCDEFGHIJKLMNOP",           "ABCD EFGH IJKL MNOP",
        " abcd - efgh - ijkl - mnop ", "A8CD-EFGH-1JKL-MN0P", "--ABCD--EFGH--IJKL--MNOP--",
    };
    char out[MFA_RECOVERY_NORM_LEN + 1];
    for (size_t i = 0; i != sizeof(same) / sizeof(same[0]); ++i) {
        assert_int_equal(mfa_recovery_normalize(same[i], out, sizeof(out)), 0);
        assert_string_equal(out, "ABCDEFGHIJKLMNOP");
    }
    assert_int_equal(mfa_recovery_normalize("2345-6723-4567-2345", out, sizeof(out)), 0);
    assert_string_equal(out, "2345672345672345");

    static const char *const bad[] = {
        "ABCD-EFGH-IJKL-MNO",    /* 15 chars */
        "ABCD-EFGH-IJKL-MNOPQ",  /* 17 chars */
        "ABCD-EFGH-IJKL-MNO9",   /* 9 is not base32 and no look-alike */
        "ABCD_EFGH_IJKL_MNOP",   /* underscore */
        "ABCD-EFGH-IJKL-MNO\tP", /* tab */
        "ABCD-EFGH-IJKL-MNÖP",   /* non-ASCII */
        "",
        "----------------------------------------------------------------ABCDEFGHIJKLMNOP", /* > input max */
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        memset(out, 'Z', sizeof(out));
        assert_int_equal(mfa_recovery_normalize(bad[i], out, sizeof(out)), -1);
        assert_string_equal(out, "");
    }
    assert_int_equal(mfa_recovery_normalize("ABCD-EFGH-IJKL-MNOP", out, MFA_RECOVERY_NORM_LEN), -1);
    assert_int_equal(mfa_recovery_normalize(NULL, out, sizeof(out)), -1);
}

static void test_hash_stable(void **state)
{
    /* SHA-256("ABCDEFGHIJKLMNOP"), computed with `printf %s ABCDEFGHIJKLMNOP | sha256sum` */
    static const uint8_t want[32] = {0xe7, 0xe8, 0xb8, 0x9c, 0x27, 0x21, 0xd2, 0x90, 0xcc, 0x5f, 0x55,
                                     0x42, 0x54, 0x91, 0xec, 0xd6, 0x83, 0x13, 0x55, 0xe9, 0x10, 0x63,
                                     0xf2, 0x0b, 0x39, 0xc2, 0x2f, 0x9e, 0xc6, 0xa7, 0x1f, 0x91};
    uint8_t a[32], b[32];
    char n1[MFA_RECOVERY_NORM_LEN + 1], n2[MFA_RECOVERY_NORM_LEN + 1];
    assert_int_equal(mfa_recovery_normalize("abcd-efgh-1jkl-mn0p", n1, sizeof(n1)), 0);
    assert_int_equal(mfa_recovery_normalize("ABCDEFGHIJKLMNOP", n2, sizeof(n2)), 0);
    mfa_recovery_hash(n1, a);
    mfa_recovery_hash(n2, b);
    assert_memory_equal(a, b, 32);
    assert_memory_equal(a, want, 32);
    mfa_recovery_hash("ABCDEFGHIJKLMNOQ", b);
    assert_memory_not_equal(a, b, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_format_and_uniqueness),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_hash_stable),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
