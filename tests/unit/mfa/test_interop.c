/* Interoperability: codes from independent implementations are accepted. For random secrets and times, the
 * `oathtool` CLI (liboath's own tool, but driven by base32 text as a user would) and Debian's python3-pyotp
 * generate codes for SHA-1/256/512 and 6/8 digits; mfa_totp_verify must accept each at the expected step. The
 * otpauth URI must parse with pyotp.parse_uri into the same issuer, account and codes.
 * Needs /usr/bin/oathtool and /usr/bin/python3 with pyotp (apt-get install -y oathtool python3-pyotp). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>

#include "mfa/mfa.h"

#define ROUNDS 8

static int setup(void **state)
{
    return mfa_global_init();
}

/* Runs cmd (built from trusted test data only) and returns its first output line in out. */
static void run(const char *cmd, char *out, size_t outlen)
{
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    out[0] = '\0';
    if (fgets(out, (int)outlen, f) == NULL)
        out[0] = '\0';
    int st = pclose(f);
    if (st != 0)
        fail_msg("command failed (%d): %s", st, cmd);
    out[strcspn(out, "\n")] = '\0';
}

static time_t random_time(void)
{
    /* 2001 .. 2106: exercises 64-bit times past 2038 too */
    return (time_t)1000000000 + (time_t)randombytes_uniform(0x7fffffff) * 2;
}

static const char *oath_alg(mfa_alg_t a)
{
    return a == MFA_SHA1 ? "sha1" : a == MFA_SHA256 ? "sha256" : "sha512";
}

static void test_oathtool_codes_accepted(void **state)
{
    if (access("/usr/bin/oathtool", X_OK) != 0) {
        fprintf(stderr, "SKIP: /usr/bin/oathtool missing (apt-get install -y oathtool)\n");
        if (getenv("CI") != NULL)
            fail_msg("required test tool missing in CI");
        skip();
    }
    for (int i = 0; i != ROUNDS * 3; ++i) {
        uint8_t secret[MFA_SECRET_LEN];
        char b32[MFA_BASE32_LEN(MFA_SECRET_LEN) + 1], cmd[256], code[32];
        mfa_secret_generate(secret);
        assert_int_equal(mfa_base32_encode(secret, sizeof(secret), b32, sizeof(b32)), 32);
        mfa_params_t p = {(mfa_alg_t)(i % 3), i % 2 ? 8 : 6, 30, 1};
        time_t t = random_time();
        int n = snprintf(cmd, sizeof(cmd), "/usr/bin/oathtool --totp=%s -d %u -b %s --now=@%lld", oath_alg(p.alg),
                         p.digits, b32, (long long)t);
        assert_true(n > 0 && (size_t)n < sizeof(cmd));
        run(cmd, code, sizeof(code));
        assert_int_equal(strlen(code), p.digits);
        assert_int_equal(mfa_totp_verify(secret, sizeof(secret), &p, code, t, -1), (int64_t)t / 30);
        /* and the same code one step later is the previous step's, three steps later it is gone */
        assert_int_equal(mfa_totp_verify(secret, sizeof(secret), &p, code, t + 30, -1), (int64_t)t / 30);
        assert_int_equal(mfa_totp_verify(secret, sizeof(secret), &p, code, t + 90, -1), -1);
    }
}

static int have_pyotp(void)
{
    return system("/usr/bin/python3 -c 'import pyotp' >/dev/null 2>&1") == 0;
}

static void test_pyotp_codes_accepted(void **state)
{
    if (!have_pyotp()) {
        fprintf(stderr, "SKIP: python3-pyotp missing (apt-get install -y python3-pyotp)\n");
        if (getenv("CI") != NULL)
            fail_msg("required test tool missing in CI");
        skip();
    }
    for (int i = 0; i != ROUNDS * 3; ++i) {
        uint8_t secret[MFA_SECRET_LEN];
        char b32[MFA_BASE32_LEN(MFA_SECRET_LEN) + 1], cmd[320], code[32];
        mfa_secret_generate(secret);
        assert_int_equal(mfa_base32_encode(secret, sizeof(secret), b32, sizeof(b32)), 32);
        mfa_params_t p = {(mfa_alg_t)(i % 3), i % 2 ? 6 : 8, 30, 1};
        time_t t = random_time();
        int n = snprintf(cmd, sizeof(cmd),
                         "/usr/bin/python3 -c 'import pyotp, hashlib; "
                         "print(pyotp.TOTP(\"%s\", digits=%u, digest=hashlib.%s).at(%lld))'",
                         b32, p.digits, oath_alg(p.alg), (long long)t);
        assert_true(n > 0 && (size_t)n < sizeof(cmd));
        run(cmd, code, sizeof(code));
        assert_int_equal(strlen(code), p.digits);
        assert_int_equal(mfa_totp_verify(secret, sizeof(secret), &p, code, t, -1), (int64_t)t / 30);
    }
}

static void test_uri_parses_with_pyotp(void **state)
{
    if (!have_pyotp()) {
        fprintf(stderr, "SKIP: python3-pyotp missing (apt-get install -y python3-pyotp)\n");
        if (getenv("CI") != NULL)
            fail_msg("required test tool missing in CI");
        skip();
    }
    static const mfa_params_t params[] = {{MFA_SHA1, 6, 30, 1}, {MFA_SHA256, 8, 30, 1}, {MFA_SHA512, 8, 60, 1}};
    for (size_t i = 0; i != sizeof(params) / sizeof(params[0]); ++i) {
        uint8_t secret[MFA_SECRET_LEN];
        mfa_secret_generate(secret);
        char *uri = mfa_otpauth_uri("Acme Corp", "alice@example.com", secret, sizeof(secret), &params[i]);
        assert_non_null(uri);
        time_t t = random_time();
        char cmd[512], out[128];
        int n = snprintf(cmd, sizeof(cmd),
                         "/usr/bin/python3 -c 'import pyotp; o = pyotp.parse_uri(\"%s\"); "
                         "print(o.issuer + \"|\" + o.name + \"|\" + o.at(%lld))'",
                         uri, (long long)t);
        assert_true(n > 0 && (size_t)n < sizeof(cmd));
        run(cmd, out, sizeof(out));
        char *code = strrchr(out, '|');
        assert_non_null(code);
        *code++ = '\0';
        assert_string_equal(out, "Acme Corp|alice@example.com");
        assert_int_equal(strlen(code), params[i].digits);
        assert_int_equal(mfa_totp_verify(secret, sizeof(secret), &params[i], code, t, -1),
                         (int64_t)t / params[i].period);
        free(uri);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oathtool_codes_accepted),
        cmocka_unit_test(test_pyotp_codes_accepted),
        cmocka_unit_test(test_uri_parses_with_pyotp),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
