/* UTF-8 code point counting (the length rule counts code points, not bytes; invalid UTF-8 is refused). The
 * password rules themselves are tested in test_password_rules.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"

static void test_counts_code_points(void **state)
{
    assert_int_equal(pol_utf8_length(""), 0);
    assert_int_equal(pol_utf8_length("abc"), 3);
    assert_int_equal(pol_utf8_length("\xc3\xa9t\xc3\xa9"), 3);                /* été */
    assert_int_equal(pol_utf8_length("\xe6\x97\xa5\xe6\x9c\xac"), 2);         /* 日本 */
    assert_int_equal(pol_utf8_length("\xf0\x9f\x94\x91\xf0\x9f\x94\x91"), 2); /* two emoji, 8 bytes */
}

static void test_invalid_utf8_refused(void **state)
{
    assert_int_equal(pol_utf8_length("\xc0\xaf"), -1);         /* overlong '/' */
    assert_int_equal(pol_utf8_length("\xed\xa0\x80"), -1);     /* surrogate */
    assert_int_equal(pol_utf8_length("\xf4\x90\x80\x80"), -1); /* > U+10FFFF */
    assert_int_equal(pol_utf8_length("abc\xe2\x82"), -1);      /* truncated */
    assert_int_equal(pol_utf8_length("a\xff"), -1);            /* not a lead byte */
    assert_int_equal(pol_utf8_length("\x80"), -1);             /* lone continuation */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_code_points),
        cmocka_unit_test(test_invalid_utf8_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
