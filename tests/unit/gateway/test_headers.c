/*
 * Header hygiene and request parsing of the gateway: which client headers count as identity headers (in any
 * case, with '_' variants), removal of portier's own cookies from the Cookie header, cookie lookup, and form /
 * query decoding. Includes proxy.c to reach its static helpers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "gateway/proxy.c"

static gw_config_t conf = {.hdr_user = "X-Portier-User",
                           .hdr_email = "X-Portier-Email",
                           .hdr_groups = "X-Portier-Groups",
                           .hdr_jwt = "X-Portier-Jwt-Assertion",
                           .session_cookie = "__Host-portier"};

static h2o_iovec_t iov(const char *s)
{
    return h2o_iovec_init(s, strlen(s));
}

static void test_identity_headers_recognised(void **state)
{
    static const char *const spoofed[] = {
        "x-portier-user",    "X-PORTIER-USER",  "X_Portier_User",    "x-portier-jwt-assertion",
        "x-forwarded-user",  "Remote-User",     "remote_user",       "x-auth-request-user",
        "X-Auth-Anything",   "x-forwarded-for", "X-Forwarded-Proto", "x-portier-anything",
        "x-forwarded-email", "forwarded",       "x-real-ip"};
    for (size_t i = 0; i != sizeof(spoofed) / sizeof(spoofed[0]); ++i)
        if (!is_identity_header(iov(spoofed[i]), &conf))
            fail_msg("%s not treated as an identity header", spoofed[i]);
    static const char *const benign[] = {"accept", "user-agent", "x-request-id",      "authorization",
                                         "cookie", "x-auth",     "remote-user-agent", "x-forwarded"};
    for (size_t i = 0; i != sizeof(benign) / sizeof(benign[0]); ++i)
        if (is_identity_header(iov(benign[i]), &conf))
            fail_msg("%s wrongly treated as an identity header", benign[i]);
}

static void test_configured_names_recognised(void **state)
{
    gw_config_t custom = conf;
    custom.hdr_user = "X-Remote-Login";
    assert_true(is_identity_header(iov("x_remote_login"), &custom));
    assert_true(is_identity_header(iov("X-REMOTE-LOGIN"), &custom));
}

static void expect_cookie_strip(const char *in, const char *want)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    h2o_iovec_t out = strip_own_cookies(&pool, iov(in), "__Host-portier");
    if (out.len != strlen(want) || memcmp(out.base, want, out.len) != 0)
        fail_msg("strip(\"%s\") = \"%.*s\", want \"%s\"", in, (int)out.len, out.base, want);
    h2o_mem_clear_pool(&pool);
}

static void test_own_cookies_removed(void **state)
{
    expect_cookie_strip("__Host-portier=secret", "");
    expect_cookie_strip("a=1; __Host-portier=secret; b=2", "a=1; b=2");
    expect_cookie_strip("__Host-portier-csrf=x;a=1", "a=1");
    expect_cookie_strip("__Host-portierx=keep; c=3", "__Host-portierx=keep; c=3");
    expect_cookie_strip("a=1;;  ;b=2", "a=1; b=2");
    expect_cookie_strip("a;b;c;d;e;f;g;h", "a; b; c; d; e; f; g; h"); /* output longer than input (fuzz find) */
}

static void add_req_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->headers, name, strlen(name), 1, NULL, value, strlen(value));
}

static void test_cookie_lookup(void **state)
{
    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    add_req_header(&req, "cookie", "a=1; __Host-portier=abc");
    add_req_header(&req, "cookie", "__Host-portier-csrf=zz"); /* HTTP/2 may send several */
    h2o_iovec_t v = gw_get_cookie(&req, "__Host-portier");
    assert_non_null(v.base);
    assert_string_equal(v.base, "abc");
    v = gw_get_cookie(&req, "__Host-portier-csrf");
    assert_string_equal(v.base, "zz");
    assert_null(gw_get_cookie(&req, "__Host-port").base);
    assert_null(gw_get_cookie(&req, "b").base);
    h2o_mem_clear_pool(&req.pool);
}

static void test_form_decoding(void **state)
{
    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    h2o_iovec_t body = iov("username=al%69ce&password=a+b%26c%3D&empty=&bad=%zz&nul=a%00b&long=abcdef");
    assert_string_equal(gw_form_get(&req, body, "username", 64), "alice");
    assert_string_equal(gw_form_get(&req, body, "password", 64), "a b&c=");
    assert_string_equal(gw_form_get(&req, body, "empty", 64), "");
    assert_null(gw_form_get(&req, body, "bad", 64));
    assert_null(gw_form_get(&req, body, "nul", 64));
    assert_null(gw_form_get(&req, body, "long", 5));
    assert_null(gw_form_get(&req, body, "missing", 64));
    assert_null(gw_form_get(&req, iov("x=%4"), "x", 64));
    h2o_mem_clear_pool(&req.pool);
}

static void test_url_encoding(void **state)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    assert_string_equal(gw_url_encode(&pool, "/app/x?a=1&b=2"), "/app/x%3Fa%3D1%26b%3D2");
    h2o_mem_clear_pool(&pool);
}

static void test_header_values_lose_control_chars(void **state)
{
    h2o_iovec_t v = gw_header_safe_dup("Alice\r\nX-Evil: 1\x7f");
    assert_int_equal(v.len, strlen("AliceX-Evil: 1"));
    assert_string_equal(v.base, "AliceX-Evil: 1");
    free(v.base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_headers_recognised),
        cmocka_unit_test(test_configured_names_recognised),
        cmocka_unit_test(test_own_cookies_removed),
        cmocka_unit_test(test_cookie_lookup),
        cmocka_unit_test(test_form_decoding),
        cmocka_unit_test(test_url_encoding),
        cmocka_unit_test(test_header_values_lose_control_chars),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
