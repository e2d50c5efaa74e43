/* The return-URL gatekeeper: good forms kept, every known open-redirect trick reduced to "/". */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"

#define ORIGIN "https://sso.example.com"

static void expect(const char *in, int rc, const char *out)
{
    char buf[POL_RETURN_TO_MAX + 1];
    int r = pol_return_to(in, ORIGIN, buf, sizeof(buf));
    if (r != rc || strcmp(buf, out) != 0)
        fail_msg("pol_return_to(\"%s\") = %d \"%s\", want %d \"%s\"", in != NULL ? in : "(null)", r, buf, rc, out);
}

static void test_relative_paths_are_kept(void **state)
{
    expect("/", 0, "/");
    expect("/app/page?x=1", 0, "/app/page?x=1");
    expect("/a/b#frag", 0, "/a/b#frag");
    expect("/%2e%2e/x", 0, "/%2e%2e/x");
}

static void test_own_origin_reduced_to_path(void **state)
{
    expect(ORIGIN "/app?x=1", 0, "/app?x=1");
    expect(ORIGIN, 0, "/");
    expect(ORIGIN "//evil.com", -1, "/");
    expect(ORIGIN ".evil.com/", -1, "/");
    expect(ORIGIN "@evil.com/", -1, "/");
    expect(ORIGIN ":444/", -1, "/");
}

static void test_open_redirect_tricks_rejected(void **state)
{
    static const char *const bad[] = {
        "https://evil.com",
        "//evil.com",
        "/\\evil.com",
        "https:%5c%5cevil.com",
        "http:www.evil.com",
        "javascript:alert(1)",
        "///evil",
        "\\\\evil.com",
        "/\tevil",
        " /x",
        "/x\r\nSet-Cookie: a=b",
        "evil.com",
        "",
        "http://sso.example.com/",
        "HTTPS://SSO.EXAMPLE.COM/",
        "/a\\b",
        "data:text/html,x",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        expect(bad[i], -1, "/");
    expect(NULL, -1, "/");
}

static void test_length_limit(void **state)
{
    char v[POL_RETURN_TO_MAX + 2];
    memset(v, 'a', sizeof(v));
    v[0] = '/';
    v[POL_RETURN_TO_MAX] = '\0'; /* exactly the maximum: accepted */
    expect(v, 0, v);
    v[POL_RETURN_TO_MAX] = 'a';
    v[POL_RETURN_TO_MAX + 1] = '\0'; /* one more: refused */
    expect(v, -1, "/");
}

static void test_small_output_buffer_refuses(void **state)
{
    char buf[4];
    assert_int_equal(pol_return_to("/abcdef", ORIGIN, buf, sizeof(buf)), -1);
    assert_string_equal(buf, "/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relative_paths_are_kept),       cmocka_unit_test(test_own_origin_reduced_to_path),
        cmocka_unit_test(test_open_redirect_tricks_rejected), cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_small_output_buffer_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
