/* Secrets at rest: seal/open round trip, layout, fresh nonces, and refusal (-1, output wiped) of every kind of
 * tampering: each byte region (version, nonce, ciphertext, tag), truncation, wrong user id, wrong key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "mfa/mfa.h"

static const uint8_t KEY[32] = "0123456789abcdef0123456789abcdef";
static const uint8_t SECRET[MFA_SECRET_LEN] = "12345678901234567890";
#define SEALED_LEN (MFA_SECRET_LEN + MFA_SEAL_OVERHEAD)

static int setup(void **state)
{
    return mfa_global_init();
}

static void seal_secret(int64_t uid, uint8_t sealed[SEALED_LEN])
{
    size_t w = 0;
    assert_int_equal(mfa_seal(KEY, uid, SECRET, sizeof(SECRET), sealed, SEALED_LEN, &w), 0);
    assert_int_equal(w, SEALED_LEN);
}

static void expect_open_fails(const uint8_t key[32], int64_t uid, const uint8_t *sealed, size_t len)
{
    uint8_t out[64];
    size_t w = 12345;
    memset(out, 0xaa, sizeof(out));
    assert_int_equal(mfa_open(key, uid, sealed, len, out, sizeof(out), &w), -1);
    assert_int_equal(w, 12345);
    for (size_t i = 0; i != MFA_SECRET_LEN; ++i) /* nothing of the plaintext is left behind */
        assert_true(out[i] == 0 || out[i] == 0xaa);
}

static void test_round_trip(void **state)
{
    uint8_t sealed[SEALED_LEN], sealed2[SEALED_LEN], out[MFA_SECRET_LEN];
    size_t w = 0;
    seal_secret(42, sealed);
    assert_int_equal(sealed[0], MFA_SEAL_VERSION);
    assert_memory_not_equal(sealed + 1 + MFA_SEAL_NONCE_LEN, SECRET, MFA_SECRET_LEN);
    assert_int_equal(mfa_open(KEY, 42, sealed, sizeof(sealed), out, sizeof(out), &w), 0);
    assert_int_equal(w, MFA_SECRET_LEN);
    assert_memory_equal(out, SECRET, MFA_SECRET_LEN);
    /* a fresh nonce each time: two seals of the same secret differ */
    seal_secret(42, sealed2);
    assert_memory_not_equal(sealed + 1, sealed2 + 1, MFA_SEAL_NONCE_LEN);
    assert_memory_not_equal(sealed, sealed2, SEALED_LEN);
    /* negative and large ids, and an empty plaintext */
    seal_secret(-1, sealed);
    assert_int_equal(mfa_open(KEY, -1, sealed, sizeof(sealed), out, sizeof(out), &w), 0);
    seal_secret(INT64_MAX, sealed);
    assert_int_equal(mfa_open(KEY, INT64_MAX, sealed, sizeof(sealed), out, sizeof(out), &w), 0);
    uint8_t empty[MFA_SEAL_OVERHEAD];
    assert_int_equal(mfa_seal(KEY, 7, NULL, 0, empty, sizeof(empty), &w), 0);
    assert_int_equal(w, MFA_SEAL_OVERHEAD);
    assert_int_equal(mfa_open(KEY, 7, empty, sizeof(empty), NULL, 0, &w), 0);
    assert_int_equal(w, 0);
    assert_int_equal(mfa_open(KEY, 8, empty, sizeof(empty), NULL, 0, &w), -1);
}

static void test_tamper_each_region(void **state)
{
    uint8_t sealed[SEALED_LEN];
    seal_secret(42, sealed);
    /* every single byte, every region: version [0], nonce [1,13), ciphertext [13,33), tag [33,49) */
    for (size_t i = 0; i != SEALED_LEN; ++i) {
        for (unsigned bit = 0; bit < 8; bit += 7) { /* lowest and highest bit */
            sealed[i] ^= (uint8_t)(1u << bit);
            expect_open_fails(KEY, 42, sealed, SEALED_LEN);
            sealed[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* truncated or extended blobs */
    expect_open_fails(KEY, 42, sealed, SEALED_LEN - 1);
    expect_open_fails(KEY, 42, sealed, MFA_SEAL_OVERHEAD - 1);
    expect_open_fails(KEY, 42, sealed, 0);
    uint8_t longer[SEALED_LEN + 1];
    memcpy(longer, sealed, SEALED_LEN);
    longer[SEALED_LEN] = 0;
    expect_open_fails(KEY, 42, longer, sizeof(longer));
    /* and the untouched blob still opens */
    uint8_t out[MFA_SECRET_LEN];
    size_t w;
    assert_int_equal(mfa_open(KEY, 42, sealed, SEALED_LEN, out, sizeof(out), &w), 0);
}

static void test_wrong_user_or_key(void **state)
{
    uint8_t sealed[SEALED_LEN], key2[32];
    seal_secret(42, sealed);
    expect_open_fails(KEY, 43, sealed, SEALED_LEN);
    expect_open_fails(KEY, 420, sealed, SEALED_LEN);
    expect_open_fails(KEY, -42, sealed, SEALED_LEN);
    memcpy(key2, KEY, 32);
    key2[31] ^= 1;
    expect_open_fails(key2, 42, sealed, SEALED_LEN);
}

static void test_buffer_limits(void **state)
{
    uint8_t sealed[SEALED_LEN], out[MFA_SECRET_LEN];
    size_t w = 0;
    assert_int_equal(mfa_seal(KEY, 1, SECRET, sizeof(SECRET), sealed, SEALED_LEN - 1, &w), -1);
    seal_secret(1, sealed);
    assert_int_equal(mfa_open(KEY, 1, sealed, SEALED_LEN, out, MFA_SECRET_LEN - 1, &w), -1);
    assert_int_equal(mfa_seal(NULL, 1, SECRET, sizeof(SECRET), sealed, SEALED_LEN, &w), -1);
    assert_int_equal(mfa_open(KEY, 1, NULL, SEALED_LEN, out, sizeof(out), &w), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_tamper_each_region),
        cmocka_unit_test(test_wrong_user_or_key),
        cmocka_unit_test(test_buffer_limits),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
