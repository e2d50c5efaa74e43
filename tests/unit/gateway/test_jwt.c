/*
 * ES256 identity tokens and the JWKS (gateway/jwt.c), checked against independent implementations: base64url
 * against RFC 4648 and OpenSSL's base64, the `kid` against an RFC 7638 thumbprint computed by the openssl CLI
 * and coreutils, signatures by re-encoding R||S as DER and calling EVP_DigestVerify here, and whole tokens by
 * PyJWT (verify_jwt.py, skipped when Debian's python3-jwt is missing). Keys of every wrong kind (P-384, RSA,
 * Ed25519, public-only, encrypted, garbage) must be refused at load with a message saying why.
 *
 * Set JWT_TEST_EXPORT_DIR to keep a token, its JWKS and a tampered token there for manual checks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "gateway/jwt.h"

#define AUD "wiki"
#define ISS "https://sso.example.com"

static char tmpdir[] = "/tmp/portier-test-jwt-XXXXXX";

/* ---- helpers ---- */

static const char *tmp_path(const char *name)
{
    static char buf[8][256];
    static unsigned next;
    char *p = buf[next++ % 8];
    int n = snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
    assert_true(n > 0 && (size_t)n < sizeof(buf[0]));
    return p;
}

static const char *tmp_dir_path(void)
{
    return tmpdir;
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(cmd));
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
}

/* Runs a shell command and returns its first output line (without newline) in out. */
static void sh_read(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sh_read(char *out, size_t outlen, const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(cmd));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    if (fgets(out, (int)outlen, p) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    int rc = pclose(p);
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
}

static void write_file(const char *path, const char *data)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(data, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static gw_jwt_keyset_t *load_ok(const char *signing, const char *const *prev)
{
    char err[512] = "";
    gw_jwt_keyset_t *ks = gw_jwt_keyset_load(signing, prev, err, sizeof(err));
    if (ks == NULL)
        fail_msg("load %s: %s", signing, err);
    return ks;
}

static EVP_PKEY *read_pubkey(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    EVP_PKEY *pkey = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(pkey);
    return pkey;
}

/* Decodes a base64url segment into a malloc'd NUL-terminated buffer. */
static char *segment(const char *s, size_t len, long *outlen)
{
    char *out = malloc(len + 1);
    assert_non_null(out);
    long n = gw_base64url_decode(s, len, (uint8_t *)out, len);
    if (n < 0) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    if (outlen != NULL)
        *outlen = n;
    return out;
}

/* Verifies a compact JWS with pub, independently of jwt.c's signing path: raw R||S -> DER -> EVP_DigestVerify.
 * On success returns 0 and, when asked, the decoded header and payload JSON (caller frees). */
static int verify_token(const char *token, EVP_PKEY *pub, char **header, char **payload)
{
    int ret = -1;
    const char *dot1 = strchr(token, '.'), *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL)
        return -1;
    char *h = segment(token, (size_t)(dot1 - token), NULL);
    char *p = segment(dot1 + 1, (size_t)(dot2 - dot1 - 1), NULL);
    long siglen = 0;
    char *raw = segment(dot2 + 1, strlen(dot2 + 1), &siglen);
    ECDSA_SIG *sig = NULL;
    unsigned char *der = NULL;
    EVP_MD_CTX *md = NULL;
    if (h == NULL || p == NULL || raw == NULL || siglen != 64)
        goto Exit;
    BIGNUM *r = BN_bin2bn((const unsigned char *)raw, 32, NULL),
           *s = BN_bin2bn((const unsigned char *)raw + 32, 32, NULL);
    assert_non_null(r);
    assert_non_null(s);
    assert_non_null(sig = ECDSA_SIG_new());
    assert_int_equal(ECDSA_SIG_set0(sig, r, s), 1);
    int derlen = i2d_ECDSA_SIG(sig, &der);
    assert_true(derlen > 0);
    assert_non_null(md = EVP_MD_CTX_new());
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
    if (EVP_DigestVerify(md, der, (size_t)derlen, (const unsigned char *)token, (size_t)(dot2 - token)) == 1)
        ret = 0;
Exit:
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    free(raw);
    if (ret == 0 && header != NULL) {
        *header = h;
        h = NULL;
    }
    if (ret == 0 && payload != NULL) {
        *payload = p;
        p = NULL;
    }
    free(h);
    free(p);
    return ret;
}

/* ---- fixtures: keys made by the openssl CLI ---- */

static int setup(void **state)
{
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    sh("cd %s && umask 077 && "
       "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k1.pem 2>/dev/null && "
       "openssl pkey -in k1.pem -pubout -out k1pub.pem && "
       "openssl ecparam -name prime256v1 -genkey -out k2sec1.pem && "
       "openssl pkey -in k2sec1.pem -pubout -out k2pub.pem && "
       "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k3.pem 2>/dev/null && "
       "openssl pkey -in k3.pem -pubout -out k3pub.pem && "
       "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.pem 2>/dev/null && "
       "openssl pkey -in p384.pem -pubout -out p384pub.pem && "
       "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null && "
       "openssl genpkey -algorithm ED25519 -out ed25519.pem && "
       "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:secret "
       "-out encrypted.pem 2>/dev/null && "
       "openssl ecparam -name prime256v1 -genkey -param_enc explicit -out explicit.pem && "
       "openssl ecparam -name secp256k1 -genkey -out k256k1.pem && "
       "printf 'not a key\\n' > garbage.pem && : > empty.pem",
       tmpdir);
    return 0;
}

static int teardown(void **state)
{
    if (getenv("JWT_TEST_KEEP") == NULL)
        sh("rm -rf '%s'", tmpdir);
    return 0;
}

/* ---- base64url ---- */

static void expect_encode(const void *in, size_t len, const char *want)
{
    char out[128];
    size_t n = gw_base64url_encode(in, len, out, sizeof(out));
    if (n != strlen(want) || strcmp(out, want) != 0)
        fail_msg("encode(%zu bytes) = \"%s\" (%zu), want \"%s\"", len, out, n, want);
    uint8_t back[96];
    long m = gw_base64url_decode(want, strlen(want), back, sizeof(back));
    if (m != (long)len || memcmp(back, in, len) != 0)
        fail_msg("decode(\"%s\") = %ld, want %zu bytes back", want, m, len);
}

static void test_base64url_rfc4648_vectors(void **state)
{
    /* RFC 4648 §10 with the padding removed (§5: URL-safe alphabet, padding optional). */
    expect_encode("", 0, "");
    expect_encode("f", 1, "Zg");
    expect_encode("fo", 2, "Zm8");
    expect_encode("foo", 3, "Zm9v");
    expect_encode("foob", 4, "Zm9vYg");
    expect_encode("fooba", 5, "Zm9vYmE");
    expect_encode("foobar", 6, "Zm9vYmFy");
    /* The same with padding is accepted by the decoder. */
    static const struct {
        const char *in, *want;
    } padded[] = {{"Zg==", "f"}, {"Zm8=", "fo"}, {"Zm9v", "foo"}, {"Zm9vYg==", "foob"}, {"Zm9vYmE=", "fooba"}};
    for (size_t i = 0; i != sizeof(padded) / sizeof(padded[0]); ++i) {
        uint8_t out[16];
        long n = gw_base64url_decode(padded[i].in, strlen(padded[i].in), out, sizeof(out));
        if (n != (long)strlen(padded[i].want) || memcmp(out, padded[i].want, (size_t)n) != 0)
            fail_msg("decode(\"%s\") = %ld", padded[i].in, n);
    }
}

static void test_base64url_binary_edges(void **state)
{
    expect_encode("\0", 1, "AA");
    expect_encode("\0\0", 2, "AAA");
    expect_encode("\0\0\0", 3, "AAAA");
    expect_encode("\xff", 1, "_w");
    expect_encode("\xff\xff", 2, "__8");
    expect_encode("\xff\xff\xff", 3, "____");
    expect_encode("\xfb\xff", 2, "-_8");      /* "+/8=" in standard base64 */
    expect_encode("\xfb\xef\xbe", 3, "----"); /* 111110 x4 */
    expect_encode("\x00\x10\x83\x10\x51\x87\x20\x92\x8b\x30\xd3\x8f\x41\x14\x93\x51\x55\x97\x61\x96\x9b\x71\xd7"
                  "\x9f\x82\x18\xa3\x92\x59\xa7\xa2\x9a\xab\xb2\xdb\xaf\xc3\x1c\xb3\xd3\x5d\xb7\xe3\x9e\xbb\xf3"
                  "\xdf\xbf",
                  48, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");

    /* Random data of every length 0..99 against OpenSSL's standard base64 translated to base64url. */
    for (size_t len = 0; len != 100; ++len) {
        uint8_t in[100], back[100];
        unsigned char ref[160];
        char out[160];
        assert_int_equal(RAND_bytes(in, sizeof(in)), 1);
        int rn = EVP_EncodeBlock(ref, in, (int)len);
        while (rn > 0 && ref[rn - 1] == '=')
            ref[--rn] = '\0';
        for (int i = 0; i != rn; ++i)
            ref[i] = ref[i] == '+' ? '-' : ref[i] == '/' ? '_' : ref[i];
        size_t need = ((len + 2) / 3) * 4 + 1;
        assert_int_equal(gw_base64url_encode(in, len, out, need), (size_t)rn);
        assert_string_equal(out, (const char *)ref);
        assert_int_equal(gw_base64url_decode(out, (size_t)rn, back, len), (long)len);
        assert_memory_equal(back, in, len);
    }
}

static void test_base64url_rejects_invalid(void **state)
{
    static const char *const bad[] = {
        "Z",                                     /* a lone character cannot encode a byte */
        "Zm9vY",                                 /* length 1 mod 4 */
        "Zg+",                                   /* standard alphabet is not base64url */
        "Zg/",    "Z g",  "Zg\n",      "Zg==Zg", /* padding in the middle */
        "Zg=",                                   /* incomplete padding */
        "Zm9v=",  "====", "Zh",                  /* non-zero trailing bits: non-canonical form of "f" */
        "Zm9=",                                  /* non-canonical form of "fo" */
        "Zg==\n", "Z===", "Zm9vYmFy=", "%%%%",   "Zg\x80",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        uint8_t out[16];
        long n = gw_base64url_decode(bad[i], strlen(bad[i]), out, sizeof(out));
        if (n != -1)
            fail_msg("decode(\"%s\") = %ld, want -1", bad[i], n);
    }
    /* An embedded NUL inside the given length is an invalid character, not an end. */
    uint8_t out[16];
    assert_int_equal(gw_base64url_decode("Zm\0v", 4, out, sizeof(out)), -1);
    /* Only the given length is read. */
    assert_int_equal(gw_base64url_decode("Zm9v!!!", 4, out, sizeof(out)), 3);
}

static void test_base64url_overflow(void **state)
{
    uint8_t out[8];
    char enc[16];
    assert_int_equal(gw_base64url_decode("Zm9vYmFy", 8, out, 5), -1); /* needs 6 */
    assert_int_equal(gw_base64url_decode("Zm9vYmFy", 8, out, 6), 6);  /* exact fit */
    assert_int_equal(gw_base64url_decode("Zm9vYmE=", 8, out, 4), -1); /* needs 5 */
    assert_int_equal(gw_base64url_decode("", 0, out, 0), 0);
    assert_int_equal(gw_base64url_encode((const uint8_t *)"foobar", 6, enc, 8), 0); /* needs 9 with the NUL */
    assert_int_equal(gw_base64url_encode((const uint8_t *)"foobar", 6, enc, 9), 8);
    assert_string_equal(enc, "Zm9vYmFy");
    assert_int_equal(gw_base64url_encode((const uint8_t *)"f", 1, enc, 2), 0);
    assert_int_equal(gw_base64url_encode((const uint8_t *)"f", 1, enc, 3), 2);
    assert_int_equal(gw_base64url_encode((const uint8_t *)"f", 1, enc, 0), 0);
    assert_int_equal(gw_base64url_encode((const uint8_t *)"", 0, enc, 1), 0);
    assert_string_equal(enc, "");
    /* Lengths whose encoded size does not fit in size_t. */
    assert_int_equal(gw_base64url_encode((const uint8_t *)"x", SIZE_MAX, enc, sizeof(enc)), 0);
    assert_int_equal(gw_base64url_encode((const uint8_t *)"x", SIZE_MAX / 4 * 3 + 3, enc, SIZE_MAX), 0);
}

/* ---- kid and JWKS ---- */

/* x, y and the RFC 7638 thumbprint of a P-256 key, computed with the openssl CLI and coreutils only: the last
 * 64 bytes of the DER SubjectPublicKeyInfo are X||Y of the uncompressed point. */
static void cli_thumbprint(const char *key, char x[64], char y[64], char kid[64])
{
#define SPKI_DER                                                                                                       \
    "{ openssl pkey -in '%s' -pubout -outform DER 2>/dev/null || "                                                     \
    "openssl pkey -pubin -in '%s' -pubout -outform DER; }"
#define B64URL "basenc --base64url -w0 | tr -d '='"
    sh_read(x, 64, SPKI_DER " | tail -c 64 | head -c 32 | " B64URL, key, key);
    sh_read(y, 64, SPKI_DER " | tail -c 32 | " B64URL, key, key);
    assert_int_equal(strlen(x), 43);
    assert_int_equal(strlen(y), 43);
    sh_read(kid, 64,
            "printf '{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}' | "
            "openssl dgst -sha256 -binary | " B64URL,
            x, y);
    assert_int_equal(strlen(kid), 43);
#undef SPKI_DER
#undef B64URL
}

static void test_kid_is_rfc7638_thumbprint(void **state)
{
    /* PKCS#8, SEC1 ("EC PRIVATE KEY" after "EC PARAMETERS"), and explicit curve parameters, which OpenSSL 3
     * recognises as the named curve P-256. */
    static const char *const keys[] = {"k1.pem", "k2sec1.pem", "k3.pem", "explicit.pem"};
    for (size_t i = 0; i != sizeof(keys) / sizeof(keys[0]); ++i) {
        char x[64], y[64], kid[64];
        cli_thumbprint(tmp_path(keys[i]), x, y, kid);
        gw_jwt_keyset_t *ks = load_ok(tmp_path(keys[i]), NULL);
        assert_string_equal(gw_jwt_kid(ks), kid);
        char want[512];
        int n = snprintf(want, sizeof(want),
                         "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\","
                         "\"use\":\"sig\",\"alg\":\"ES256\"}]}",
                         x, y, kid);
        assert_true(n > 0 && (size_t)n < sizeof(want));
        assert_string_equal(gw_jwt_jwks(ks), want);
        gw_jwt_keyset_destroy(ks);
    }
}

static void test_previous_keys_published_current_first(void **state)
{
    char x1[64], y1[64], kid1[64], x2[64], y2[64], kid2[64], x3[64], y3[64], kid3[64];
    cli_thumbprint(tmp_path("k1.pem"), x1, y1, kid1);
    cli_thumbprint(tmp_path("k2pub.pem"), x2, y2, kid2);
    cli_thumbprint(tmp_path("k3.pem"), x3, y3, kid3);
    /* k2 as a public key, k3 as a private key, and k1 (the current key) again: published once. */
    const char *prev[] = {tmp_path("k2pub.pem"), tmp_path("k3.pem"), tmp_path("k1pub.pem"), NULL};
    gw_jwt_keyset_t *ks = load_ok(tmp_path("k1.pem"), prev);
    assert_string_equal(gw_jwt_kid(ks), kid1);
    json_error_t jerr;
    json_t *doc = json_loads(gw_jwt_jwks(ks), 0, &jerr);
    assert_non_null(doc);
    json_t *keys = json_object_get(doc, "keys");
    assert_int_equal(json_array_size(keys), 3);
    const char *want[3][3] = {{x1, y1, kid1}, {x2, y2, kid2}, {x3, y3, kid3}};
    for (size_t i = 0; i != 3; ++i) {
        json_t *k = json_array_get(keys, i);
        assert_string_equal(json_string_value(json_object_get(k, "x")), want[i][0]);
        assert_string_equal(json_string_value(json_object_get(k, "y")), want[i][1]);
        assert_string_equal(json_string_value(json_object_get(k, "kid")), want[i][2]);
        assert_string_equal(json_string_value(json_object_get(k, "kty")), "EC");
        assert_string_equal(json_string_value(json_object_get(k, "crv")), "P-256");
        assert_string_equal(json_string_value(json_object_get(k, "use")), "sig");
        assert_string_equal(json_string_value(json_object_get(k, "alg")), "ES256");
        assert_int_equal(json_object_size(k), 7);
        assert_null(json_object_get(k, "d")); /* never the private part */
    }
    json_decref(doc);

    /* Tokens are signed with the current key only. */
    gw_jwt_claims_t c = {.iss = ISS, .aud = AUD, .sub = "alice", .iat = 1000, .exp = 1060};
    char *token = gw_jwt_sign(ks, &c);
    assert_non_null(token);
    EVP_PKEY *pub1 = read_pubkey(tmp_path("k1pub.pem")), *pub3 = read_pubkey(tmp_path("k3pub.pem"));
    assert_int_equal(verify_token(token, pub1, NULL, NULL), 0);
    assert_int_equal(verify_token(token, pub3, NULL, NULL), -1);
    EVP_PKEY_free(pub1);
    EVP_PKEY_free(pub3);
    free(token);
    gw_jwt_keyset_destroy(ks);

    /* An empty list is the same as none. */
    const char *none[] = {NULL};
    ks = load_ok(tmp_path("k1.pem"), none);
    assert_non_null(strstr(gw_jwt_jwks(ks), kid1));
    gw_jwt_keyset_destroy(ks);
}

/* ---- refused keys ---- */

static void expect_refused(const char *signing, const char *prev_one, const char *const *needles)
{
    char err[512];
    memset(err, 'X', sizeof(err));
    const char *prev[] = {prev_one, NULL};
    gw_jwt_keyset_t *ks = gw_jwt_keyset_load(signing, prev_one != NULL ? prev : NULL, err, sizeof(err));
    if (ks != NULL) {
        gw_jwt_keyset_destroy(ks);
        fail_msg("%s / %s was accepted", signing, prev_one != NULL ? prev_one : "-");
    }
    assert_non_null(memchr(err, '\0', sizeof(err)));
    for (const char *const *n = needles; *n != NULL; ++n)
        if (strstr(err, *n) == NULL)
            fail_msg("message \"%s\" lacks \"%s\"", err, *n);
}

static void test_wrong_keys_refused_with_message(void **state)
{
    expect_refused(tmp_path("p384.pem"), NULL, (const char *[]){"p384.pem", "secp384r1", "P-256", NULL});
    expect_refused(tmp_path("rsa.pem"), NULL, (const char *[]){"rsa.pem", "not an EC key", "RSA", NULL});
    expect_refused(tmp_path("ed25519.pem"), NULL, (const char *[]){"not an EC key", "ED25519", NULL});
    /* Same size, different curve. */
    expect_refused(tmp_path("k256k1.pem"), NULL, (const char *[]){"secp256k1", "P-256", NULL});
    expect_refused(tmp_path("k1pub.pem"), NULL, (const char *[]){"k1pub.pem", "a public key", "private key", NULL});
    expect_refused(tmp_path("encrypted.pem"), NULL,
                   (const char *[]){"encrypted.pem", "encrypted PEM keys are not supported", NULL});
    expect_refused(tmp_path("garbage.pem"), NULL, (const char *[]){"garbage.pem", "no PEM private key found", NULL});
    expect_refused(tmp_path("empty.pem"), NULL, (const char *[]){"empty.pem", NULL});
    expect_refused(tmp_path("missing.pem"), NULL, (const char *[]){"missing.pem", "No such file", NULL});
    expect_refused("", NULL, (const char *[]){"no signing key", NULL});
    expect_refused(NULL, NULL, (const char *[]){"no signing key", NULL});
    /* The same rules for previous keys. */
    expect_refused(tmp_path("k1.pem"), tmp_path("p384pub.pem"), (const char *[]){"p384pub.pem", "P-256", NULL});
    expect_refused(tmp_path("k1.pem"), tmp_path("rsa.pem"), (const char *[]){"rsa.pem", "not an EC key", NULL});
    expect_refused(tmp_path("k1.pem"), tmp_path("garbage.pem"),
                   (const char *[]){"garbage.pem", "no PEM private or public key found", NULL});
    expect_refused(tmp_path("k1.pem"), tmp_path("encrypted.pem"), (const char *[]){"encrypted PEM", NULL});
    expect_refused(tmp_dir_path(), NULL, (const char *[]){"Is a directory", NULL});
    /* A tiny err buffer is NUL-terminated, a NULL one is tolerated. */
    char tiny[8];
    assert_null(gw_jwt_keyset_load(tmp_path("rsa.pem"), NULL, tiny, sizeof(tiny)));
    assert_int_equal(strlen(tiny), 7);
    assert_null(gw_jwt_keyset_load(tmp_path("rsa.pem"), NULL, NULL, 0));
    /* An oversized file is refused before parsing. */
    FILE *fp = fopen(tmp_path("huge.pem"), "w");
    assert_non_null(fp);
    for (int i = 0; i != 70000; ++i)
        fputc('A', fp);
    fclose(fp);
    expect_refused(tmp_path("huge.pem"), NULL, (const char *[]){"huge.pem", "larger than", NULL});
}

/* ---- signing ---- */

static void test_signed_token_verifies_with_exact_claims(void **state)
{
    gw_jwt_keyset_t *ks = load_ok(tmp_path("k1.pem"), NULL);
    EVP_PKEY *pub = read_pubkey(tmp_path("k1pub.pem"));
    static const char *const groups[] = {"admins", "dev \"ops\"", "\xc3\xa9quipe"};
    static const char *const amr[] = {"pwd", "otp", NULL};
    gw_jwt_claims_t c = {.iss = ISS,
                         .aud = AUD,
                         .sub = "alice",
                         .email = "alice@example.com",
                         .name = "Alice Liddell",
                         .groups = groups,
                         .num_groups = 3,
                         .sid = "s-123",
                         .iat = 1700000000,
                         .exp = 1700000060,
                         .jti = "fixed-jti",
                         .act_sub = "support:bob",
                         .amr = amr,
                         .acr = "urn:portier:aal2"};
    char *token = gw_jwt_sign(ks, &c);
    assert_non_null(token);
    char *header = NULL, *payload = NULL;
    assert_int_equal(verify_token(token, pub, &header, &payload), 0);
    char want_header[128];
    int n = snprintf(want_header, sizeof(want_header), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                     gw_jwt_kid(ks));
    assert_true(n > 0 && (size_t)n < sizeof(want_header));
    assert_string_equal(header, want_header);
    assert_string_equal(payload, "{\"iss\":\"https://sso.example.com\",\"aud\":\"wiki\",\"sub\":\"alice\","
                                 "\"email\":\"alice@example.com\",\"name\":\"Alice Liddell\","
                                 "\"groups\":[\"admins\",\"dev \\\"ops\\\"\",\"\xc3\xa9quipe\"],\"sid\":\"s-123\","
                                 "\"iat\":1700000000,\"exp\":1700000060,\"jti\":\"fixed-jti\","
                                 "\"amr\":[\"pwd\",\"otp\"],\"acr\":\"urn:portier:aal2\","
                                 "\"act\":{\"sub\":\"support:bob\"}}");
    /* Signature segment: 64 raw bytes -> 86 base64url characters. */
    assert_int_equal(strlen(strrchr(token, '.') + 1), 86);
    free(header);
    free(payload);
    free(token);

    /* ECDSA is randomised: two signatures of the same claims differ but both verify. */
    char *t1 = gw_jwt_sign(ks, &c), *t2 = gw_jwt_sign(ks, &c);
    assert_non_null(t1);
    assert_non_null(t2);
    assert_string_not_equal(t1, t2);
    assert_int_equal(verify_token(t1, pub, NULL, NULL), 0);
    assert_int_equal(verify_token(t2, pub, NULL, NULL), 0);
    free(t1);
    free(t2);
    EVP_PKEY_free(pub);
    gw_jwt_keyset_destroy(ks);
}

static void test_minimal_claims_have_empty_groups_and_random_jti(void **state)
{
    gw_jwt_keyset_t *ks = load_ok(tmp_path("k2sec1.pem"), NULL);
    EVP_PKEY *pub = read_pubkey(tmp_path("k2pub.pem"));
    gw_jwt_claims_t c = {.iss = ISS, .aud = AUD, .sub = "carol", .sid = "s-9", .iat = 5, .exp = 65};
    char jtis[2][64];
    for (int i = 0; i != 2; ++i) {
        char *token = gw_jwt_sign(ks, &c), *payload = NULL;
        assert_non_null(token);
        assert_int_equal(verify_token(token, pub, NULL, &payload), 0);
        json_error_t jerr;
        json_t *obj = json_loads(payload, 0, &jerr);
        assert_non_null(obj);
        json_t *groups = json_object_get(obj, "groups");
        assert_true(json_is_array(groups));
        assert_int_equal(json_array_size(groups), 0);
        const char *jti = json_string_value(json_object_get(obj, "jti"));
        assert_non_null(jti);
        assert_int_equal(strlen(jti), 22); /* 128 bits */
        uint8_t raw[16];
        assert_int_equal(gw_base64url_decode(jti, 22, raw, sizeof(raw)), 16);
        snprintf(jtis[i], sizeof(jtis[i]), "%s", jti);
        /* Optional claims are absent, not null. */
        static const char *const absent[] = {"email", "name", "act", "amr", "acr"};
        for (size_t k = 0; k != sizeof(absent) / sizeof(absent[0]); ++k)
            if (json_object_get(obj, absent[k]) != NULL)
                fail_msg("claim %s present: %s", absent[k], payload);
        char prefix[160];
        snprintf(prefix, sizeof(prefix),
                 "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"carol\",\"groups\":[],\"sid\":\"s-9\",\"iat\":5,"
                 "\"exp\":65,\"jti\":\"%s\"}",
                 ISS, AUD, jti);
        assert_string_equal(payload, prefix);
        json_decref(obj);
        free(payload);
        free(token);
    }
    assert_string_not_equal(jtis[0], jtis[1]);

    /* An empty amr list is still a claim: []. */
    static const char *const no_amr[] = {NULL};
    c.amr = no_amr;
    char *token = gw_jwt_sign(ks, &c), *payload = NULL;
    assert_non_null(token);
    assert_int_equal(verify_token(token, pub, NULL, &payload), 0);
    assert_non_null(strstr(payload, "\"amr\":[]"));
    free(payload);
    free(token);

    /* Required claims missing, groups pointer missing, invalid UTF-8: no token. */
    gw_jwt_claims_t bad = c;
    bad.sub = NULL;
    assert_null(gw_jwt_sign(ks, &bad));
    bad = c;
    bad.num_groups = 2;
    assert_null(gw_jwt_sign(ks, &bad));
    bad = c;
    bad.name = "bad \xff utf-8";
    assert_null(gw_jwt_sign(ks, &bad));
    assert_null(gw_jwt_sign(ks, NULL));
    EVP_PKEY_free(pub);
    gw_jwt_keyset_destroy(ks);
}

static void test_tampered_tokens_fail_verification(void **state)
{
    gw_jwt_keyset_t *ks = load_ok(tmp_path("k1.pem"), NULL);
    EVP_PKEY *pub = read_pubkey(tmp_path("k1pub.pem")), *other = read_pubkey(tmp_path("k3pub.pem"));
    static const char *const groups[] = {"users"};
    gw_jwt_claims_t c = {
        .iss = ISS, .aud = AUD, .sub = "alice", .groups = groups, .num_groups = 1, .sid = "s", .iat = 1, .exp = 61};
    char *token = gw_jwt_sign(ks, &c);
    assert_non_null(token);
    assert_int_equal(verify_token(token, pub, NULL, NULL), 0);
    assert_int_equal(verify_token(token, other, NULL, NULL), -1);

    const char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');
    /* Flip one bit of each raw signature byte in turn. */
    for (size_t i = 0; i != 64; ++i) {
        uint8_t sig[64];
        char *t = strdup(token);
        assert_non_null(t);
        char *s = t + (dot2 - token) + 1;
        assert_int_equal(gw_base64url_decode(s, strlen(s), sig, sizeof(sig)), 64);
        sig[i] ^= 0x01;
        assert_int_equal(gw_base64url_encode(sig, sizeof(sig), s, 87), 86);
        if (verify_token(t, pub, NULL, NULL) != -1)
            fail_msg("signature byte %zu flipped still verifies", i);
        free(t);
    }
    /* Change one payload character (keeping the base64url valid), and one header character. */
    for (const char *at = dot1 + 1; at < dot2; at += 7) {
        char *t = strdup(token);
        assert_non_null(t);
        char *p = t + (at - token);
        *p = *p == 'A' ? 'B' : 'A';
        if (verify_token(t, pub, NULL, NULL) != -1)
            fail_msg("payload changed at %td still verifies", at - token);
        free(t);
    }
    char *t = strdup(token);
    assert_non_null(t);
    t[2] = t[2] == 'A' ? 'B' : 'A';
    assert_int_equal(verify_token(t, pub, NULL, NULL), -1);
    free(t);
    /* A truncated signature is rejected too. */
    t = strdup(token);
    assert_non_null(t);
    t[strlen(t) - 2] = '\0';
    assert_int_equal(verify_token(t, pub, NULL, NULL), -1);
    free(t);

    free(token);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(other);
    gw_jwt_keyset_destroy(ks);
}

/* ---- threads ---- */

#define SIGN_THREADS     4
#define SIGNS_PER_THREAD 200

typedef struct {
    gw_jwt_keyset_t *ks;
    char *tokens[SIGNS_PER_THREAD];
} sign_job_t;

static void *sign_many(void *arg)
{
    sign_job_t *job = arg;
    static const char *const groups[] = {"g1", "g2"};
    gw_jwt_claims_t c = {
        .iss = ISS, .aud = AUD, .sub = "thread", .groups = groups, .num_groups = 2, .sid = "s", .iat = 1, .exp = 61};
    for (int i = 0; i != SIGNS_PER_THREAD; ++i)
        job->tokens[i] = gw_jwt_sign(job->ks, &c);
    return NULL;
}

static void test_concurrent_signing(void **state)
{
    gw_jwt_keyset_t *ks = load_ok(tmp_path("k1.pem"), NULL);
    EVP_PKEY *pub = read_pubkey(tmp_path("k1pub.pem"));
    static sign_job_t jobs[SIGN_THREADS];
    pthread_t th[SIGN_THREADS];
    for (int i = 0; i != SIGN_THREADS; ++i) {
        jobs[i].ks = ks;
        assert_int_equal(pthread_create(&th[i], NULL, sign_many, &jobs[i]), 0);
    }
    for (int i = 0; i != SIGN_THREADS; ++i)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i != SIGN_THREADS; ++i) {
        for (int j = 0; j != SIGNS_PER_THREAD; ++j) {
            assert_non_null(jobs[i].tokens[j]);
            assert_int_equal(verify_token(jobs[i].tokens[j], pub, NULL, NULL), 0);
            free(jobs[i].tokens[j]);
        }
    }
    EVP_PKEY_free(pub);
    gw_jwt_keyset_destroy(ks);
}

/* ---- key generation ---- */

static void expect_generated_key_loads(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    if ((st.st_mode & 07777) != 0600)
        fail_msg("%s has mode %o, want 600", path, (unsigned)(st.st_mode & 07777));
    char line[64];
    sh_read(line, sizeof(line), "head -n 1 '%s'", path);
    assert_string_equal(line, "-----BEGIN PRIVATE KEY-----"); /* PKCS#8 */
    char x[64], y[64], kid[64];
    cli_thumbprint(path, x, y, kid);
    gw_jwt_keyset_t *ks = load_ok(path, NULL);
    assert_string_equal(gw_jwt_kid(ks), kid);
    gw_jwt_keyset_destroy(ks);
}

static void test_generate_key_writes_0600_pkcs8(void **state)
{
    mode_t old = umask(0); /* the mode must not depend on the umask */
    const char *path = tmp_path("generated.pem");
    assert_int_equal(gw_jwt_generate_key(path), 0);
    expect_generated_key_loads(path);
    char kid1[64];
    gw_jwt_keyset_t *ks = load_ok(path, NULL);
    snprintf(kid1, sizeof(kid1), "%s", gw_jwt_kid(ks));
    gw_jwt_keyset_destroy(ks);

    /* Overwriting an existing, world-readable file: truncated, fresh key, 0600. */
    const char *existing = tmp_path("existing.pem");
    write_file(existing, "old contents that are much longer than nothing at all, to check truncation\n");
    assert_int_equal(chmod(existing, 0666), 0);
    assert_int_equal(gw_jwt_generate_key(existing), 0);
    expect_generated_key_loads(existing);
    ks = load_ok(existing, NULL);
    assert_string_not_equal(gw_jwt_kid(ks), kid1);
    gw_jwt_keyset_destroy(ks);
    umask(old);

    /* Failures report errno. */
    errno = 0;
    assert_int_equal(gw_jwt_generate_key(tmp_path("no/such/dir.pem")), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(gw_jwt_generate_key(""), -1);
    assert_int_equal(errno, EINVAL);
}

/* ---- an independent verifier: PyJWT ---- */

static int python_jwt_available(const char *script)
{
    return access("/usr/bin/python3", X_OK) == 0 && access(script, R_OK) == 0 &&
           system("/usr/bin/python3 -c 'import jwt, cryptography' >/dev/null 2>&1") == 0;
}

static void test_pyjwt_accepts_token_and_rejects_tampering(void **state)
{
#ifndef PORTIER_SOURCE_DIR
    skip();
#else
    const char *script = PORTIER_SOURCE_DIR "/tests/unit/gateway/verify_jwt.py";
    if (!python_jwt_available(script)) {
        print_message("python3-jwt or %s unavailable: skipped\n", script);
        skip();
    }
    const char *prev[] = {tmp_path("k2pub.pem"), NULL};
    gw_jwt_keyset_t *ks = load_ok(tmp_path("k1.pem"), prev);
    static const char *const groups[] = {"admins", "users"};
    int64_t now = (int64_t)time(NULL);
    gw_jwt_claims_t c = {.iss = ISS,
                         .aud = AUD,
                         .sub = "alice",
                         .email = "alice@example.com",
                         .name = "Alice",
                         .groups = groups,
                         .num_groups = 2,
                         .sid = "s-1",
                         .iat = now,
                         .exp = now + 3600,
                         .act_sub = "support:bob"};
    char *token = gw_jwt_sign(ks, &c);
    assert_non_null(token);
    write_file(tmp_path("jwks.json"), gw_jwt_jwks(ks));
    write_file(tmp_path("token.jwt"), token);
    /* Tampered: one payload character changed. */
    char *bad = strdup(token);
    assert_non_null(bad);
    char *p = strchr(bad, '.') + 5;
    *p = *p == 'A' ? 'B' : 'A';
    write_file(tmp_path("tampered.jwt"), bad);
    const char *export = getenv("JWT_TEST_EXPORT_DIR");
    if (export != NULL)
        sh("cp '%s' '%s' '%s' '%s'/", tmp_path("jwks.json"), tmp_path("token.jwt"), tmp_path("tampered.jwt"), export);

    char out[1024];
    sh_read(out, sizeof(out), "/usr/bin/python3 '%s' '%s' @'%s' %s --issuer %s", script, tmp_path("jwks.json"),
            tmp_path("token.jwt"), AUD, ISS);
    assert_non_null(strstr(out, "\"sub\": \"alice\""));
    assert_non_null(strstr(out, "\"act\": {\"sub\": \"support:bob\"}"));
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s' '%s' @'%s' %s 2>/dev/null >/dev/null", script,
             tmp_path("jwks.json"), tmp_path("tampered.jwt"), AUD);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s' '%s' @'%s' other-app 2>/dev/null >/dev/null", script,
             tmp_path("jwks.json"), tmp_path("token.jwt"));
    assert_int_not_equal(system(cmd), 0);
    free(bad);
    free(token);
    gw_jwt_keyset_destroy(ks);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64url_rfc4648_vectors),
        cmocka_unit_test(test_base64url_binary_edges),
        cmocka_unit_test(test_base64url_rejects_invalid),
        cmocka_unit_test(test_base64url_overflow),
        cmocka_unit_test(test_kid_is_rfc7638_thumbprint),
        cmocka_unit_test(test_previous_keys_published_current_first),
        cmocka_unit_test(test_wrong_keys_refused_with_message),
        cmocka_unit_test(test_signed_token_verifies_with_exact_claims),
        cmocka_unit_test(test_minimal_claims_have_empty_groups_and_random_jti),
        cmocka_unit_test(test_tampered_tokens_fail_verification),
        cmocka_unit_test(test_concurrent_signing),
        cmocka_unit_test(test_generate_key_writes_0600_pkcs8),
        cmocka_unit_test(test_pyjwt_accepts_token_and_rejects_tampering),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
