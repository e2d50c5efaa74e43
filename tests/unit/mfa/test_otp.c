/* TOTP/HOTP verification: the RFC 4226 and RFC 6238 test vectors, the +/-1 step window, replay protection,
 * strict code format, HOTP look-ahead and resynchronisation, and refusal of invalid parameters. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "mfa/mfa.h"

static const uint8_t SEED20[] = "12345678901234567890";
static const uint8_t SEED32[] = "12345678901234567890123456789012";
static const uint8_t SEED64[] = "1234567890123456789012345678901234567890123456789012345678901234";

/* RFC 4226 Appendix D: HOTP of SEED20 at counters 0..9. With period 30 these are also the 6-digit TOTP codes of
 * steps 0..9, which gives window and replay tests an independent source of codes. */
static const char *const HOTP[10] = {"755224", "287082", "359152", "969429", "338314",
                                     "254676", "287922", "162583", "399871", "520489"};

static int setup(void **state)
{
    return mfa_global_init();
}

static void test_hotp_rfc4226_vectors(void **state)
{
    for (uint64_t c = 0; c != 10; ++c) {
        assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, HOTP[c], c, 0), (int64_t)c + 1);
        if (c != 0) /* a code is not valid for the counter after its own */
            assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, HOTP[c - 1], c, 0), -1);
    }
}

static void test_totp_rfc6238_vectors(void **state)
{
    static const struct {
        time_t t;
        const char *sha1, *sha256, *sha512;
    } v[] = {
        {59, "94287082", "46119246", "90693936"},         {1111111109, "07081804", "68084774", "25091201"},
        {1111111111, "14050471", "67062674", "99943326"}, {1234567890, "89005924", "91819424", "93441116"},
        {2000000000, "69279037", "90698825", "38618901"}, {20000000000, "65353130", "77737706", "47863826"},
    };
    mfa_params_t p1 = {MFA_SHA1, 8, 30, 1}, p256 = {MFA_SHA256, 8, 30, 1}, p512 = {MFA_SHA512, 8, 30, 1};
    for (size_t i = 0; i != sizeof(v) / sizeof(v[0]); ++i) {
        int64_t step = (int64_t)v[i].t / 30;
        assert_int_equal(mfa_totp_verify(SEED20, 20, &p1, v[i].sha1, v[i].t, -1), step);
        assert_int_equal(mfa_totp_verify(SEED32, 32, &p256, v[i].sha256, v[i].t, -1), step);
        assert_int_equal(mfa_totp_verify(SEED64, 64, &p512, v[i].sha512, v[i].t, -1), step);
        /* the algorithm matters: a SHA-1 code is not a SHA-256 code for the same seed */
        assert_int_equal(mfa_totp_verify(SEED32, 32, &p1, v[i].sha256, v[i].t, -1), -1);
        assert_int_equal(mfa_totp_verify(SEED64, 64, &p256, v[i].sha512, v[i].t, -1), -1);
    }
}

static void test_totp_window(void **state)
{
    mfa_params_t p = MFA_PARAMS_DEFAULT;
    time_t now = 5 * 30 + 17; /* step 5 */
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[5], now, -1), 5);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[4], now, -1), 4);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[6], now, -1), 6);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[3], now, -1), -1);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[7], now, -1), -1);
    /* step boundaries: t = 149 is step 4, t = 150 is step 5 */
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[3], 149, -1), 3);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[3], 150, -1), -1);
    /* window 0: the current step only; window 2: two steps either side */
    p.window = 0;
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[4], now, -1), -1);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[5], now, -1), 5);
    p.window = 2;
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[3], now, -1), 3);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[7], now, -1), 7);
    /* near the epoch: steps below 0 do not exist */
    p.window = 1;
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[0], 3, -1), 0);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[1], 3, -1), 1);
}

static void test_totp_replay(void **state)
{
    mfa_params_t p = MFA_PARAMS_DEFAULT;
    time_t now = 5 * 30 + 1;
    int64_t last = mfa_totp_verify(SEED20, 20, &p, HOTP[5], now, -1);
    assert_int_equal(last, 5);
    /* the same code again, also a little later within the same step and the next: refused */
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[5], now, last), -1);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[5], now + 20, last), -1);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[5], now + 30, last), -1);
    /* an older step after a newer one: refused */
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[4], now, last), -1);
    /* the next step's code is still fine, and then step 5 and 6 are both burnt */
    last = mfa_totp_verify(SEED20, 20, &p, HOTP[6], now, last);
    assert_int_equal(last, 6);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[6], now + 30, last), -1);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[7], now + 30, last), 7);
}

static void test_code_format(void **state)
{
    mfa_params_t p = MFA_PARAMS_DEFAULT;
    time_t now = 5 * 30;
    static const char *const bad[] = {
        "25467",    /* too short */
        "2546760",  /* too long */
        "254 676",  /* space inside: the caller strips */
        " 254676",  /* leading space */
        "254676\n", /* trailing newline */
        "25467a",   /* non-digit */
        "+54676",   /* sign */
        "",         /* empty */
        "٢٥٤٦٧٦",   /* Arabic-Indic digits */
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        assert_int_equal(mfa_totp_verify(SEED20, 20, &p, bad[i], now, -1), -1);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, NULL, now, -1), -1);
    /* an 8-digit code under 6-digit parameters and the reverse */
    mfa_params_t p8 = {MFA_SHA1, 8, 30, 1};
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, "94287082", 59, -1), -1);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p8, "287082", 59, -1), -1);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p8, "94287082", 59, -1), 1);
    assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, "75522", 0, 0), -1);
    assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, "7552240", 0, 0), -1);
    assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, "75522x", 0, 0), -1);
}

static void test_invalid_params(void **state)
{
    mfa_params_t p = MFA_PARAMS_DEFAULT;
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[5], 150, -1), 5); /* the baseline works */
    assert_int_equal(mfa_totp_verify(NULL, 20, &p, HOTP[5], 150, -1), -1);
    assert_int_equal(mfa_totp_verify(SEED20, 15, &p, HOTP[5], 150, -1), -1); /* < 128-bit secret */
    assert_int_equal(mfa_totp_verify(SEED20, 20, NULL, HOTP[5], 150, -1), -1);
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[5], -150, -1), -1); /* before the epoch */
    assert_int_equal(mfa_totp_verify(SEED20, 20, &p, HOTP[5], INT64_MAX, -1), -1);
    mfa_params_t q = p;
    q.period = 0;
    assert_int_equal(mfa_totp_verify(SEED20, 20, &q, HOTP[5], 150, -1), -1);
    q = p;
    q.digits = 5;
    assert_int_equal(mfa_totp_verify(SEED20, 20, &q, "54676", 150, -1), -1);
    q = p;
    q.window = MFA_WINDOW_MAX + 1;
    assert_int_equal(mfa_totp_verify(SEED20, 20, &q, HOTP[5], 150, -1), -1);
    q = p;
    q.alg = (mfa_alg_t)7;
    assert_int_equal(mfa_totp_verify(SEED20, 20, &q, HOTP[5], 150, -1), -1);
    assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, HOTP[0], 0, MFA_LOOKAHEAD_MAX + 1), -1);
    assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, HOTP[0], (uint64_t)INT64_MAX, 0), -1);
}

static void test_hotp_lookahead_and_resync(void **state)
{
    /* the token was pressed 3 times without logging in: counter 3's code found from stored counter 0 */
    assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, HOTP[3], 0, 5), 4);
    /* exactly at the edge of the look-ahead, and one beyond */
    assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, HOTP[5], 0, 5), 6);
    assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, HOTP[6], 0, 5), -1);
    /* a code behind the stored counter (already used) is refused */
    assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, HOTP[2], 3, 5), -1);
    /* resync: store the returned counter; the same code then fails, the next one passes */
    int64_t next = mfa_hotp_verify(SEED20, 20, 6, HOTP[7], 1, 10);
    assert_int_equal(next, 8);
    assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, HOTP[7], (uint64_t)next, 10), -1);
    assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, HOTP[8], (uint64_t)next, 10), 9);
    assert_int_equal(mfa_hotp_verify(SEED20, 20, 6, HOTP[9], (uint64_t)next, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hotp_rfc4226_vectors),
        cmocka_unit_test(test_totp_rfc6238_vectors),
        cmocka_unit_test(test_totp_window),
        cmocka_unit_test(test_totp_replay),
        cmocka_unit_test(test_code_format),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_hotp_lookahead_and_resync),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
