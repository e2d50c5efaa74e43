/* Enrolment output: base32 (RFC 4648 section 10 vectors), the otpauth:// URI (exact string, percent-encoding,
 * refused labels), secret generation, and the QR SVG (shape, no script, growth with input, and, when ImageMagick
 * and zbar-tools are installed, a real decode of the rendered image back to the input text). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "mfa/mfa.h"

static const uint8_t SEED20[] = "12345678901234567890";

static int setup(void **state)
{
    return mfa_global_init();
}

static void test_base32_rfc4648_vectors(void **state)
{
    static const char *const v[][2] = {{"", ""},
                                       {"f", "MY"},
                                       {"fo", "MZXQ"},
                                       {"foo", "MZXW6"},
                                       {"foob", "MZXW6YQ"},
                                       {"fooba", "MZXW6YTB"},
                                       {"foobar", "MZXW6YTBOI"}};
    char out[40];
    for (size_t i = 0; i != sizeof(v) / sizeof(v[0]); ++i) {
        size_t n = mfa_base32_encode((const uint8_t *)v[i][0], strlen(v[i][0]), out, sizeof(out));
        assert_int_equal(n, strlen(v[i][1]));
        assert_string_equal(out, v[i][1]);
    }
    assert_int_equal(mfa_base32_encode(SEED20, 20, out, sizeof(out)), 32);
    assert_string_equal(out, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    /* the buffer must hold the characters and the NUL */
    assert_int_equal(mfa_base32_encode((const uint8_t *)"foobar", 6, out, 10), 0);
    assert_string_equal(out, "");
    assert_int_equal(mfa_base32_encode((const uint8_t *)"foobar", 6, out, 11), 10);
}

static void test_secret_generate(void **state)
{
    uint8_t a[MFA_SECRET_LEN], b[MFA_SECRET_LEN], zero[MFA_SECRET_LEN] = {0};
    mfa_secret_generate(a);
    mfa_secret_generate(b);
    assert_memory_not_equal(a, b, MFA_SECRET_LEN);
    assert_memory_not_equal(a, zero, MFA_SECRET_LEN);
}

static void test_otpauth_uri_exact(void **state)
{
    mfa_params_t p = MFA_PARAMS_DEFAULT;
    char *uri = mfa_otpauth_uri("Acme Corp", "alice@example.com", SEED20, 20, &p);
    assert_non_null(uri);
    assert_string_equal(uri, "otpauth://totp/Acme%20Corp:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                             "&issuer=Acme%20Corp&algorithm=SHA1&digits=6&period=30");
    free(uri);
    mfa_params_t q = {MFA_SHA512, 8, 60, 1};
    uri = mfa_otpauth_uri("a&b=c/d?e#f", "x+y ü", SEED20, 20, &q);
    assert_non_null(uri);
    assert_string_equal(uri,
                        "otpauth://totp/a%26b%3Dc%2Fd%3Fe%23f:x%2By%20%C3%BC?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                        "&issuer=a%26b%3Dc%2Fd%3Fe%23f&algorithm=SHA512&digits=8&period=60");
    free(uri);
}

static void test_otpauth_uri_refused(void **state)
{
    mfa_params_t p = MFA_PARAMS_DEFAULT, bad = {MFA_SHA1, 9, 30, 1};
    char longlabel[MFA_LABEL_MAX + 2];
    memset(longlabel, 'a', sizeof(longlabel) - 1);
    longlabel[sizeof(longlabel) - 1] = '\0';
    assert_null(mfa_otpauth_uri("Acme:Corp", "alice", SEED20, 20, &p)); /* ':' makes the label ambiguous */
    assert_null(mfa_otpauth_uri("Acme", "al:ice", SEED20, 20, &p));
    assert_null(mfa_otpauth_uri("", "alice", SEED20, 20, &p));
    assert_null(mfa_otpauth_uri("Acme", NULL, SEED20, 20, &p));
    assert_null(mfa_otpauth_uri(longlabel, "alice", SEED20, 20, &p));
    assert_null(mfa_otpauth_uri("Acme", "alice", SEED20, 10, &p));
    assert_null(mfa_otpauth_uri("Acme", "alice", SEED20, 20, &bad));
    longlabel[MFA_LABEL_MAX] = '\0'; /* exactly the maximum is fine */
    char *uri = mfa_otpauth_uri(longlabel, "alice", SEED20, 20, &p);
    assert_non_null(uri);
    free(uri);
}

static void test_qr_svg_shape(void **state)
{
    char *small = mfa_qr_svg("otpauth://totp/A:b?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_non_null(small);
    assert_true(strncmp(small, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 ", 53) == 0);
    assert_non_null(strstr(small, "</svg>\n"));
    assert_string_equal(strstr(small, "</svg>"), "</svg>\n");
    assert_null(strstr(small, "<script"));
    assert_null(strstr(small, "href"));
    assert_null(strstr(small, "url("));
    assert_non_null(strstr(small, "<path "));
    assert_null(strstr(strstr(small, "<path ") + 1, "<path")); /* one path */
    int side = 0;
    assert_int_equal(sscanf(small, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d", &side), 1);
    assert_int_equal((side - 8 - 21) % 4, 0); /* a QR width (21 + 4k) plus 2 x 4 quiet modules */

    char big_text[600];
    memset(big_text, 'x', sizeof(big_text) - 1);
    big_text[sizeof(big_text) - 1] = '\0';
    char *big = mfa_qr_svg(big_text);
    assert_non_null(big);
    int big_side = 0;
    assert_int_equal(sscanf(big, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d", &big_side), 1);
    assert_true(big_side > side);
    /* level M: 599 bytes need version 19 (M holds 611 bytes, L would fit version 17), 93 modules + 8 quiet */
    assert_int_equal(big_side, 93 + 8);
    /* 4-module quiet zone: the first run is the top row of the top-left finder pattern, at (4,4), 7 wide */
    assert_non_null(strstr(big, " d=\"M4 4h7v1h-7z"));
    assert_true(strlen(big) > strlen(small));
    free(small);
    free(big);

    assert_null(mfa_qr_svg(NULL));
    assert_null(mfa_qr_svg(""));
    char *huge = malloc(MFA_QR_TEXT_MAX + 2);
    memset(huge, 'x', MFA_QR_TEXT_MAX + 1);
    huge[MFA_QR_TEXT_MAX + 1] = '\0';
    assert_null(mfa_qr_svg(huge));
    free(huge);
}

/* Renders the SVG with ImageMagick and decodes it with zbarimg. */
static void test_qr_svg_decodes(void **state)
{
    if (access("/usr/bin/zbarimg", X_OK) != 0 || access("/usr/bin/convert", X_OK) != 0) {
        fprintf(stderr, "SKIP test_qr_svg_decodes: /usr/bin/zbarimg or /usr/bin/convert missing "
                        "(apt-get install -y zbar-tools imagemagick)\n");
        if (getenv("CI") != NULL)
            fail_msg("required test tool missing in CI");
        skip();
    }
    static const char *const texts[] = {
        "otpauth://totp/Acme%20Corp:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Corp"
        "&algorithm=SHA1&digits=6&period=30",
        "hello",
    };
    char dir[] = "/tmp/mfa-qr-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char svgpath[64], pngpath[64], cmd[320];
    snprintf(svgpath, sizeof(svgpath), "%s/q.svg", dir);
    snprintf(pngpath, sizeof(pngpath), "%s/q.png", dir);
    for (size_t i = 0; i != sizeof(texts) / sizeof(texts[0]); ++i) {
        char *svg = mfa_qr_svg(texts[i]);
        assert_non_null(svg);
        FILE *f = fopen(svgpath, "w");
        assert_non_null(f);
        fputs(svg, f);
        fclose(f);
        free(svg);
        int n = snprintf(cmd, sizeof(cmd),
                         "/usr/bin/convert -density 600 %s %s && /usr/bin/zbarimg --raw -q %s 2>/dev/null", svgpath,
                         pngpath, pngpath);
        assert_true(n > 0 && (size_t)n < sizeof(cmd));
        FILE *z = popen(cmd, "r");
        assert_non_null(z);
        char got[512] = "";
        size_t len = fread(got, 1, sizeof(got) - 1, z);
        got[len] = '\0';
        assert_int_equal(pclose(z), 0);
        if (len > 0 && got[len - 1] == '\n')
            got[len - 1] = '\0';
        assert_string_equal(got, texts[i]);
    }
    unlink(svgpath);
    unlink(pngpath);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base32_rfc4648_vectors), cmocka_unit_test(test_secret_generate),
        cmocka_unit_test(test_otpauth_uri_exact),      cmocka_unit_test(test_otpauth_uri_refused),
        cmocka_unit_test(test_qr_svg_shape),           cmocka_unit_test(test_qr_svg_decodes),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
