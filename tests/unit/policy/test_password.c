/* Password length rule: code points, not bytes; bounds both ways; invalid UTF-8 refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"

static void repeat(char *out, const char *unit, size_t n)
{
    out[0] = '\0';
    for (size_t i = 0; i != n; ++i)
        strcat(out, unit); /* test helper on a sized buffer */
}

static void test_length_boundaries(void **state)
{
    char pw[1024], reason[160];
    repeat(pw, "x", 14);
    assert_int_equal(pol_password_check(pw, 15, reason, sizeof(reason)), -1);
    assert_non_null(strstr(reason, "at least 15"));
    repeat(pw, "x", 15);
    assert_int_equal(pol_password_check(pw, 15, reason, sizeof(reason)), 0);
    repeat(pw, "x", 128);
    assert_int_equal(pol_password_check(pw, 15, reason, sizeof(reason)), 0);
    repeat(pw, "x", 129);
    assert_int_equal(pol_password_check(pw, 15, reason, sizeof(reason)), -1);
    assert_non_null(strstr(reason, "too long"));
}

static void test_counts_code_points(void **state)
{
    char pw[1024], reason[160];
    repeat(pw, "\xc3\xa9", 15); /* 15 x 'é' = 30 bytes, 15 characters */
    assert_int_equal(pol_password_check(pw, 15, reason, sizeof(reason)), 0);
    repeat(pw, "\xf0\x9f\x94\x91", 128); /* 128 emoji = 512 bytes */
    assert_int_equal(pol_utf8_length(pw), 128);
    assert_int_equal(pol_password_check(pw, 15, reason, sizeof(reason)), 0);
    repeat(pw, "\xe6\x97\xa5", 14);
    assert_int_equal(pol_password_check(pw, 15, reason, sizeof(reason)), -1);
}

static void test_invalid_utf8_refused(void **state)
{
    char reason[160];
    assert_int_equal(pol_utf8_length("\xc0\xaf"), -1);         /* overlong '/' */
    assert_int_equal(pol_utf8_length("\xed\xa0\x80"), -1);     /* surrogate */
    assert_int_equal(pol_utf8_length("\xf4\x90\x80\x80"), -1); /* > U+10FFFF */
    assert_int_equal(pol_utf8_length("abc\xe2\x82"), -1);      /* truncated */
    assert_int_equal(pol_password_check("aaaaaaaaaaaaaaaa\xff", 15, reason, sizeof(reason)), -1);
    assert_non_null(strstr(reason, "invalid"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_boundaries),
        cmocka_unit_test(test_counts_code_points),
        cmocka_unit_test(test_invalid_utf8_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
