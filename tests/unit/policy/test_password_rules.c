/*
 * The NIST SP 800-63B password rules of pol_password_evaluate, each driven both ways: length boundaries (in code
 * points, after NFKC), NFKC itself, the blocklist (case folding, the real conf/blocklist.txt), repetitive and
 * sequential patterns, context words. Every refusal is checked for its exact reason sentence (so no reason can
 * echo the password) and for an empty output buffer. No system dictionary is used: blocklists come from small
 * buffers or the repository file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"

#define R_INVALID "The password contains invalid characters."
#define R_SHORT15 "The password is too short: use at least 15 characters."
#define R_SHORT8  "The password is too short: use at least 8 characters."
#define R_LONG    "The password is too long: use at most 128 characters."
#define R_COMMON  "This password is too common: it appears in lists of frequently used or breached passwords."
#define R_PATTERN "The password is mostly a repeated or sequential pattern of characters, which is easy to guess."
#define R_CONTEXT                                                                                                      \
    "The password must not contain your user name, email address, name, or the product or organisation name."

static const pol_context_t alice = {
    .username = "alice",
    .email = "alice.smith+sso@example-corp.com",
    .display_name = "Alice Q. Smith",
    .product = "portier",
    .organization = "Contoso Ltd",
};

/* ---- helpers ---- */

static void accept_pw(const pol_blocklist_t *bl, const char *pw, unsigned min, const pol_context_t *ctx)
{
    char out[POL_NORMALIZED_MAX], reason[200];
    int r = pol_password_evaluate(bl, pw, min, ctx, out, sizeof(out), reason, sizeof(reason));
    if (r != 0)
        fail_msg("refused \"%s\" (min %u): %s", pw, min, reason);
}

static void refuse_pw(const pol_blocklist_t *bl, const char *pw, unsigned min, const pol_context_t *ctx,
                      const char *want)
{
    char out[POL_NORMALIZED_MAX], reason[200];
    memset(out, 'x', sizeof(out));
    int r = pol_password_evaluate(bl, pw, min, ctx, out, sizeof(out), reason, sizeof(reason));
    if (r != -1)
        fail_msg("accepted \"%s\" (min %u), want: %s", pw, min, want);
    if (strcmp(reason, want) != 0)
        fail_msg("\"%s\": reason \"%s\", want \"%s\"", pw, reason, want);
    assert_string_equal(out, "");
    if (pw != NULL && strlen(pw) >= 4 && strstr(want, pw) == NULL)
        assert_null(strstr(reason, pw)); /* never echoed (implied by the exact match; stated for the record) */
}

/* n copies of unit into out (size cap). */
static void repeat(char *out, size_t cap, const char *unit, size_t n)
{
    size_t ul = strlen(unit), len = 0;
    for (size_t i = 0; i != n; ++i) {
        assert_true(len + ul < cap);
        memcpy(out + len, unit, ul);
        len += ul;
    }
    out[len] = '\0';
}

/* Deterministic xorshift64: reproducible "random" passwords without rand(). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void random_chars(char *out, size_t n)
{
    static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!?#%+=";
    for (size_t i = 0; i != n; ++i)
        out[i] = set[rng() % (sizeof(set) - 1)];
    out[n] = '\0';
}

static pol_blocklist_t *blocklist_of(const char *text, unsigned min_len)
{
    pol_blocklist_t *bl = pol_blocklist_create();
    assert_non_null(bl);
    assert_true(pol_blocklist_add_lines(bl, text, strlen(text), min_len) >= 0);
    return bl;
}

/* A fixed password without patterns, 140 characters: prefixes of it serve for the length boundaries. */
static const char base140[] = "Tq7#mZ2!vK9$pL4&wR8^nB3*xJ6(hF1)gD5_sC0+yE7=uA2-oI9@kM4?lN8<rP3>tS6;wV1:zX5"
                              "Gh2,Jd7.Qf4/Wk9|Ep3~Ry8{Tu1}Yi6[Ua5]Ob0%Hc4!Nx9#Mv2$Lz7&KqWe5^Rt8";

static void prefix(char *out, size_t n)
{
    assert_true(n < sizeof(base140));
    memcpy(out, base140, n);
    out[n] = '\0';
}

/* ---- length ---- */

static void test_length_boundaries(void **state)
{
    char pw[200];
    assert_int_equal(strlen(base140), 140);
    prefix(pw, 14);
    refuse_pw(NULL, pw, 15, NULL, R_SHORT15);
    prefix(pw, 15);
    accept_pw(NULL, pw, 15, NULL);
    prefix(pw, 7);
    refuse_pw(NULL, pw, 8, NULL, R_SHORT8);
    prefix(pw, 8);
    accept_pw(NULL, pw, 8, NULL);
    prefix(pw, 128);
    accept_pw(NULL, pw, 15, NULL);
    prefix(pw, 129);
    refuse_pw(NULL, pw, 15, NULL, R_LONG);
    refuse_pw(NULL, "", 15, NULL, R_SHORT15);
}

static void test_invalid_utf8(void **state)
{
    refuse_pw(NULL, "Tq7#mZ2!vK9$pL4&\xff", 15, NULL, R_INVALID);
    refuse_pw(NULL, "Tq7#mZ2!vK9$pL4&\xc0\xaf", 15, NULL, R_INVALID);     /* overlong */
    refuse_pw(NULL, "Tq7#mZ2!vK9$pL4&\xed\xa0\x80", 15, NULL, R_INVALID); /* surrogate */
    refuse_pw(NULL, NULL, 15, NULL, R_INVALID);
    char out[POL_NORMALIZED_MAX];
    assert_int_equal(pol_password_normalize("abc\xe2\x82", out, sizeof(out)), -1);
}

/* Length is counted after normalisation: 15 decomposed "é" (30 code points) are 15 characters. */
static void test_length_after_nfkc(void **state)
{
    char pw[2048], out[POL_NORMALIZED_MAX], want[400];
    /* 113 characters of base140 + 15 decomposed e-acute = 143 code points in, 128 out: accepted */
    prefix(pw, 113);
    repeat(want, sizeof(want), "e\xcc\x81", 15);
    assert_true(strlen(pw) + strlen(want) < sizeof(pw));
    memcpy(pw + 113, want, strlen(want) + 1);
    assert_int_equal(pol_utf8_length(pw), 143);
    char reason[200];
    assert_int_equal(pol_password_evaluate(NULL, pw, 15, NULL, out, sizeof(out), reason, sizeof(reason)), 0);
    assert_int_equal(pol_utf8_length(out), 128);
    assert_int_equal(memcmp(out + 113, "\xc3\xa9", 2), 0); /* composed */
    /* one more decomposed character: 129 after normalisation */
    size_t l = strlen(pw);
    memcpy(pw + l, "o\xcc\x88", 4);
    refuse_pw(NULL, pw, 15, NULL, R_LONG);
    /* the pre-normalisation bound: more than 4 x 128 code points is refused without normalising */
    repeat(pw, sizeof(pw), "a", POL_PASSWORD_INPUT_MAX + 1);
    refuse_pw(NULL, pw, 15, NULL, R_LONG);
    /* 14 characters written as 28 code points (letter + combining diaeresis, all with a precomposed form) are
     * still too short; one more letter without a precomposed form (b + diaeresis stays 2 code points) is enough */
    repeat(pw, sizeof(pw), "", 0);
    const char *letters = "aeiouyhwxtAEIO";
    for (size_t i = 0; letters[i] != '\0'; ++i) {
        size_t pl = strlen(pw);
        pw[pl] = letters[i];
        memcpy(pw + pl + 1, "\xcc\x88", 3); /* combining diaeresis */
    }
    assert_int_equal(pol_utf8_length(pw), 28);
    refuse_pw(NULL, pw, 15, NULL, R_SHORT15);
    assert_int_equal(pol_password_normalize(pw, out, sizeof(out)), 0);
    assert_int_equal(pol_utf8_length(out), 14);
    memcpy(pw + strlen(pw), "b\xcc\x88", 4);
    accept_pw(NULL, pw, 15, NULL);
    assert_int_equal(pol_password_normalize(pw, out, sizeof(out)), 0);
    assert_int_equal(pol_utf8_length(out), 16);
}

/* ---- NFKC ---- */

static void test_fullwidth_normalised_then_blocked(void **state)
{
    /* "ＰＡＳＳＷＯＲＤ１２３４５６７": fullwidth forms U+FF30.. */
    static const char fw[] = "\xef\xbc\xb0\xef\xbc\xa1\xef\xbc\xb3\xef\xbc\xb3\xef\xbc\xb7\xef\xbc\xaf\xef\xbc\xb2"
                             "\xef\xbc\xa4\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94\xef\xbc\x95\xef\xbc\x96"
                             "\xef\xbc\x97";
    char out[POL_NORMALIZED_MAX], reason[200];
    assert_int_equal(pol_password_normalize(fw, out, sizeof(out)), 0);
    assert_string_equal(out, "PASSWORD1234567");
    /* without the entry it is acceptable, and what gets hashed is plain ASCII */
    assert_int_equal(pol_password_evaluate(NULL, fw, 15, NULL, out, sizeof(out), reason, sizeof(reason)), 0);
    assert_string_equal(out, "PASSWORD1234567");
    pol_blocklist_t *bl = blocklist_of("password1234567\n", 1);
    refuse_pw(bl, fw, 15, NULL, R_COMMON);
    assert_int_equal(pol_blocklist_contains(bl, fw), 1);
    pol_blocklist_destroy(bl);
    /* ligatures and compatibility characters too: "ﬁ" -> "fi", "①" -> "1" */
    bl = blocklist_of("fishfingers1\n", 1);
    refuse_pw(bl, "\xef\xac\x81shfingers\xe2\x91\xa0", 8, NULL, R_COMMON);
    pol_blocklist_destroy(bl);
}

/* 128 code points mixing é, Japanese and emoji: accepted, and the normalised bytes are exactly the input. */
static void test_non_ascii_passphrase_round_trip(void **state)
{
    static const char *const parts[] = {
        "caf\xc3\xa9 ",              /* café */
        "\xe6\x97\xa5\xe6\x9c\xac ", /* 日本 */
        "\xf0\x9f\x8c\xb8 ",         /* 🌸 */
        "cr\xc3\xa8me br\xc3\xbbl\xc3\xa9"
        "e ",                                                /* crème brûlée */
        "\xe6\x9d\xb1\xe4\xba\xac\xe3\x81\xae\xe5\xa4\x9c ", /* 東京の夜 */
        "\xf0\x9f\x8e\x89\xf0\x9f\x94\x91 ",                 /* 🎉🔑 */
        "\xc3\xa9t\xc3\xa9 \xc3\xa0 Kyoto ",                 /* été à Kyoto */
        "na\xc3\xafve ",                                     /* naïve */
        "\xe5\xaf\x8c\xe5\xa3\xab\xe5\xb1\xb1 ",             /* 富士山 */
        "\xf0\x9f\x90\x99 octopus ",                         /* 🐙 */
        "d\xc3\xa9j\xc3\xa0 vu ",                            /* déjà vu */
        "\xe6\xa1\x9c\xe3\x81\xae\xe6\x9c\xa8 ",             /* 桜の木 */
        "Z\xc3\xbcrich \xf0\x9f\x9a\x86 ",                   /* Zürich 🚆 */
        "r\xc3\xa9sum\xc3\xa9 ",                             /* résumé */
        "\xe9\x9b\xa8\xe3\x81\x8c\xe9\x99\x8d\xe3\x82\x8b ", /* 雨が降る */
        "fa\xc3\xa7"
        "ade \xe2\x98\x95 ", /* façade ☕ */
        "pi\xc3\xb1"
        "ata \xe5\xb1\xb1 ",    /* piñata 山 */
        "\xc3\xa9l\xc3\xa8ve ", /* élève */
        "ma\xc3\xb1"
        "ana ",                                       /* mañana */
        "\xe3\x81\x8a\xe8\x8c\xb6 \xf0\x9f\x8d\xb5 ", /* お茶 🍵 */
        "co\xc3\xb6perate",                           /* coöperate */
    };
    char pw[1024] = "", out[POL_NORMALIZED_MAX], reason[200];
    size_t len = 0;
    for (size_t i = 0; i != sizeof(parts) / sizeof(parts[0]) && pol_utf8_length(pw) < 128; ++i) {
        size_t pl = strlen(parts[i]);
        memcpy(pw + len, parts[i], pl + 1);
        len += pl;
    }
    /* trim to exactly 128 code points (the parts are sized to pass that; cut at a character boundary) */
    while (pol_utf8_length(pw) > 128) {
        do
            --len;
        while (((unsigned char)pw[len] & 0xc0) == 0x80);
        pw[len] = '\0';
    }
    assert_int_equal(pol_utf8_length(pw), 128);
    assert_true(strlen(pw) > 128);
    assert_int_equal(pol_password_evaluate(NULL, pw, 15, &alice, out, sizeof(out), reason, sizeof(reason)), 0);
    assert_int_equal(strlen(out), strlen(pw));
    assert_memory_equal(out, pw, strlen(pw) + 1);
    char again[POL_NORMALIZED_MAX];
    assert_int_equal(pol_password_normalize(pw, again, sizeof(again)), 0);
    assert_string_equal(again, out);
    /* one code point more is refused */
    memcpy(pw + len, "!", 2);
    refuse_pw(NULL, pw, 15, NULL, R_LONG);
    /* too small an output buffer is an error, not a truncation */
    pw[len] = '\0';
    char small[64];
    assert_int_equal(pol_password_evaluate(NULL, pw, 15, NULL, small, sizeof(small), reason, sizeof(reason)), -1);
    assert_string_equal(small, "");
    assert_int_equal(pol_password_normalize(pw, small, sizeof(small)), -1);
}

/* ---- blocklist ---- */

static void test_blocklist_case_folding_and_format(void **state)
{
    static const char text[] = "# comment line\r\n"
                               "\r\n"
                               "password123\r\n"
                               "PASSWORD123\n" /* the same entry after folding */
                               "abc\n"         /* shorter than min_len 4 */
                               "   \n"         /* spaces are an entry (3 characters: skipped here) */
                               "stra\xc3\x9f"
                               "enbahn\n"
                               "no newline at end";
    pol_blocklist_t *bl = pol_blocklist_create();
    assert_non_null(bl);
    assert_int_equal(pol_blocklist_add_lines(bl, text, strlen(text), 4), 3);
    assert_int_equal(pol_blocklist_size(bl), 3);
    assert_int_equal(pol_blocklist_add_lines(bl, text, strlen(text), 4), 0); /* all duplicates */
    assert_int_equal(pol_blocklist_contains(bl, "PassWord123"), 1);
    assert_int_equal(pol_blocklist_contains(bl, "password123"), 1);
    assert_int_equal(pol_blocklist_contains(bl, "password1234"), 0); /* whole match only */
    assert_int_equal(pol_blocklist_contains(bl, "password12"), 0);
    assert_int_equal(pol_blocklist_contains(bl, "abc"), 0);
    assert_int_equal(pol_blocklist_contains(bl, "# comment line"), 0);
    assert_int_equal(pol_blocklist_contains(bl, "STRASSENBAHN"), 1); /* full case folding: ß = ss */
    assert_int_equal(pol_blocklist_contains(bl, "No Newline At End"), 1);
    assert_int_equal(pol_blocklist_contains(bl, "\xff"), 0);
    assert_int_equal(pol_blocklist_contains(NULL, "password123"), 0);
    refuse_pw(bl, "PassWord123", 8, NULL, R_COMMON);
    accept_pw(NULL, "PassWord123", 8, NULL); /* the same without the list */
    accept_pw(bl, "PassWord1234", 8, NULL);
    /* min_len 1 now takes the short ones, the comment still not */
    assert_int_equal(pol_blocklist_add_lines(bl, text, strlen(text), 1), 2);
    assert_int_equal(pol_blocklist_contains(bl, "ABC"), 1);
    assert_int_equal(pol_blocklist_contains(bl, "   "), 1);
    /* a buffer without NUL termination: only len bytes are read */
    assert_int_equal(pol_blocklist_add_lines(bl, "qwerty99xyz", 8, 1), 1);
    assert_int_equal(pol_blocklist_contains(bl, "QWERTY99"), 1);
    /* invalid UTF-8 lines are skipped, the rest taken */
    assert_int_equal(pol_blocklist_add_lines(bl, "bad\xff\ngood-one\n", 14, 1), 1);
    assert_int_equal(pol_blocklist_size(bl), 7);
    pol_blocklist_destroy(bl);
    pol_blocklist_destroy(NULL);
}

static void test_blocklist_grows(void **state)
{
    pol_blocklist_t *bl = pol_blocklist_create();
    char *text = malloc(20000 * 16), *p = text;
    assert_non_null(text);
    for (unsigned i = 0; i != 20000; ++i)
        p += snprintf(p, 16, "entry%u\n", i);
    assert_int_equal(pol_blocklist_add_lines(bl, text, (size_t)(p - text), 1), 20000);
    assert_int_equal(pol_blocklist_size(bl), 20000);
    assert_int_equal(pol_blocklist_contains(bl, "ENTRY0"), 1);
    assert_int_equal(pol_blocklist_contains(bl, "entry19999"), 1);
    assert_int_equal(pol_blocklist_contains(bl, "entry20000"), 0);
    free(text);
    pol_blocklist_destroy(bl);
}

static char *read_repo_file(const char *rel, size_t *len)
{
    char path[1024];
    int n = snprintf(path, sizeof(path), "%s/%s", PORTIER_SOURCE_DIR, rel);
    assert_true(n > 0 && (size_t)n < sizeof(path));
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static void test_conf_blocklist_file(void **state)
{
    size_t len;
    char *text = read_repo_file("conf/blocklist.txt", &len);
    pol_blocklist_t *bl = pol_blocklist_create();
    long added = pol_blocklist_add_lines(bl, text, len, 1);
    size_t lines = 0, comments = 0;
    char *entries[4000];
    for (char *p = text, *nl; *p != '\0'; p = nl + 1) {
        nl = strchr(p, '\n');
        assert_non_null(nl);
        *nl = '\0';
        if (*p == '#')
            ++comments;
        else if (lines < 4000)
            entries[lines++] = p;
    }
    assert_int_equal(comments, 3);
    assert_true(lines >= 3000);
    assert_int_equal(added, (long)lines); /* already folded and unique */
    assert_int_equal(pol_blocklist_size(bl), lines);

    /* 20 entries spread over the file are refused as common, in any case */
    for (size_t i = 0; i != 20; ++i) {
        const char *e = entries[i * (lines / 20) + 7];
        char upper[64];
        size_t el = strlen(e);
        assert_true(el < sizeof(upper));
        for (size_t j = 0; j <= el; ++j)
            upper[j] = (e[j] >= 'a' && e[j] <= 'z') ? (char)(e[j] - 'a' + 'A') : e[j];
        refuse_pw(bl, e, 1, NULL, R_COMMON);
        refuse_pw(bl, upper, 1, NULL, R_COMMON);
        assert_int_equal(pol_blocklist_contains(bl, upper), 1);
    }
    /* known entries long enough for the MFA minimum */
    refuse_pw(bl, "password", 8, NULL, R_COMMON);
    refuse_pw(bl, "Sunshine", 8, NULL, R_COMMON);
    /* long random passphrases and random strings are accepted */
    static const char *const words[] = {"otter",  "granite", "lantern", "velvet",  "harbor", "quince",  "meadow",
                                        "cobalt", "thistle", "ember",   "saffron", "pylon",  "marble",  "juniper",
                                        "fjord",  "kettle",  "walrus",  "orchid",  "tundra", "pretzel", "zephyr"};
    for (unsigned i = 0; i != 100; ++i) {
        char pw[200] = "";
        size_t pl = 0, nw = 4 + rng() % 3;
        for (size_t k = 0; k != nw; ++k) {
            const char *w = words[rng() % (sizeof(words) / sizeof(words[0]))];
            pl += (size_t)snprintf(pw + pl, sizeof(pw) - pl, "%s%s", k != 0 ? " " : "", w);
        }
        accept_pw(bl, pw, 15, &alice);
    }
    for (unsigned i = 0; i != 200; ++i) {
        char pw[64];
        random_chars(pw, 15 + rng() % 40);
        accept_pw(bl, pw, 15, &alice);
    }
    pol_blocklist_destroy(bl);
    free(text);
}

/* ---- repetition and sequences ---- */

static void test_patterns_refused(void **state)
{
    static const char *const bad[] = {
        "aaaaaaaaaaaaaaa",
        "AAAAAAAAAAAAAAAAAAAA",
        "abcabcabcabcabc",
        "121212121212121",
        "abcdefghijklmnop",
        "ZYXWVUTSRQPONMLK",
        "1234567890123456",
        "9876543210987654",
        "qwertyuiopasdfg",
        "QWERTZUIOPASDFGH",
        "azertyuiopqsdfgh",
        "1qaz2wsx3edc4rfv",
        "!@#$%^&*()!@#$%^",
        "xk7xk7xk7xk7xk7x",
        "aaaaaaaaaaaaaaa1",
        "abcdefghijkl1!x",
        "7894561230789456",
        "uvwxyzabcdefghij",
        "zxcvbnmasdfghjkl",
        "passpasspasspass",
        "abcd1234abcd1234",
        "poiuytrewqlkjhgf",
        "\xef\xbd\x81\xef\xbd\x82\xef\xbd\x83\xef\xbd\x84\xef\xbd\x85\xef\xbd\x86\xef\xbd\x87\xef\xbd\x88"
        "\xef\xbd\x89\xef\xbd\x8a\xef\xbd\x8b\xef\xbd\x8c\xef\xbd\x8d\xef\xbd\x8e\xef\xbd\x8f", /* fullwidth a..o */
        "\xce\xb1\xce\xb2\xce\xb3\xce\xb4\xce\xb5\xce\xb6\xce\xb7\xce\xb8\xce\xb9\xce\xba\xce\xbb\xce\xbc"
        "\xce\xbd\xce\xbe\xce\xbf", /* Greek alpha..omicron */
        "\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91"
        "\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91"
        "\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91", /* 15 keys */
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        refuse_pw(NULL, bad[i], 15, NULL, R_PATTERN);
    refuse_pw(NULL, "12345678", 8, NULL, R_PATTERN);
    refuse_pw(NULL, "abcd1234", 8, NULL, R_PATTERN);
    refuse_pw(NULL, "qwer1234", 8, NULL, R_PATTERN);
}

static void test_pattern_threshold_both_ways(void **state)
{
    /* 12 sequential + 3 others: refused; 11 sequential + 4 others: accepted */
    refuse_pw(NULL, "abcdefghijkl1!x", 15, NULL, R_PATTERN);
    accept_pw(NULL, "abcdefghijk1!x?", 15, NULL);
    /* a repeated unit of 3 leaves 3 characters of information: refused; a unit of 4: accepted */
    refuse_pw(NULL, "xk7xk7xk7xk7xk7", 15, NULL, R_PATTERN);
    accept_pw(NULL, "xk7qxk7qxk7qxk7q", 15, NULL);
    /* a run of 14 identical characters + 1 other is refused; 11 + 4 others is accepted */
    refuse_pw(NULL, "aaaaaaaaaaaaaaZ", 15, NULL, R_PATTERN);
    accept_pw(NULL, "aaaaaaaaaaaTq7#", 15, NULL);
    /* the same with 8 as minimum */
    refuse_pw(NULL, "abcde9!Z", 8, NULL, R_PATTERN);
    accept_pw(NULL, "abcd9!Zq", 8, NULL);
    /* the alphabet wraps around: "yzabc" is one run of 5 (without the wrap: "abc", 3) */
    refuse_pw(NULL, "yzabc7#k", 8, NULL, R_PATTERN);
    accept_pw(NULL, "yzab7#kQ", 8, NULL);
}

static void test_good_passphrases_with_sequences_accepted(void **state)
{
    static const char *const good[] = {
        "correct horse battery staple",       "correct horse battery staple 123",
        "my abc book has 123 pages",          "abc123 is not my password here",
        "the quick brown fox jumps over",     "hahaha that was a funny joke",
        "Mississippi river boats 1999",       "bookkeeper committee balloon",
        "first study of the xyz problem",     "Tq7#mZ2!vK9$pL4&",
        "1234 Elm Street, Springfield",       "aaa batteries run out quickly",
        "qwerty keyboards are old fashioned",
    };
    for (size_t i = 0; i != sizeof(good) / sizeof(good[0]); ++i)
        accept_pw(NULL, good[i], 15, &alice);
}

/* ---- context words ---- */

static void test_context_words_refused(void **state)
{
    static const char *const bad[] = {
        "Alice2024!!!!!!",                  /* user name with digits and punctuation around */
        "2024-alice-2024!",                 /* ... on both sides */
        "alice2024alice!!",                 /* more than half */
        "a.l.i.c.e.1.9.8.7.",               /* letters of the user name with digits inside */
        "alice.smith+sso",                  /* the email local part */
        "alice.smith+sso@example-corp.com", /* the address */
        "ALICE.SMITH+SSO@EXAMPLE-CORP.COM",
        "example-corp.com", /* the domain */
        "example-corp2024", /* a domain label (with its pieces) */
        "Example!Corp!2024",
        "sso.example.corp.sso", /* pieces of the address, more than half */
        "Smith_1987_Smith",     /* display name word */
        "alicesmith!!2024",     /* two display name words */
        "Alice Q. Smith 1987",  /* the display name */
        "portier2024!!!!!",     /* product */
        "PORTIER-portier!",
        "Contoso Ltd 2024!", /* organisation */
        "contoso#contoso#1",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        refuse_pw(NULL, bad[i], 15, &alice, R_CONTEXT);
    /* exact equality with short words: min length 1 */
    pol_context_t bob = {.username = "bob"};
    refuse_pw(NULL, "bob", 1, &bob, R_CONTEXT);
    refuse_pw(NULL, "BOB!", 1, &bob, R_CONTEXT);
    accept_pw(NULL, "bobcat", 1, &bob);
    pol_context_t jo = {.username = "jo"}; /* too short for the other rules: only equality applies */
    refuse_pw(NULL, "Jo", 1, &jo, R_CONTEXT);
    accept_pw(NULL, "jo!", 1, &jo);
    /* the email local part and the domain as a whole */
    pol_context_t k9 = {.email = "k9.zu@mail.example.org"};
    refuse_pw(NULL, "K9.zu", 1, &k9, R_CONTEXT);
    refuse_pw(NULL, "mail.example.org", 8, &k9, R_CONTEXT);
    accept_pw(NULL, "K9.zu", 1, &jo); /* the same without that address */
    /* a domain label or local-part piece with punctuation inside ("smith+sso") is a word of its own */
    refuse_pw(NULL, "smith+sso!!2024", 15, &alice, R_CONTEXT);
    /* "more than half": exactly half is accepted */
    refuse_pw(NULL, "smith7#k9", 8, &alice, R_CONTEXT);
    accept_pw(NULL, "smith7#k9Q", 8, &alice);
    /* NFKC applies to context words too: a fullwidth user name is matched by an ASCII password */
    pol_context_t fw = {.username = "\xef\xbd\x8a\xef\xbd\x8f\xef\xbd\x8e\xef\xbd\x81\xef\xbd\x93"}; /* ｊｏｎａｓ */
    refuse_pw(NULL, "Jonas1987!!Jonas", 15, &fw, R_CONTEXT);
}

/* Each context source matters on its own: refused with only that field set, accepted without it. */
static void test_each_context_field(void **state)
{
    static const struct {
        pol_context_t ctx;
        const char *pw;
    } cases[] = {
        {{.username = "mallory"}, "mallory1987!?#%"},
        {{.email = "jdoe_42@acme-widgets.io"}, "jdoe_42 2023!!!!"},
        {{.email = "jdoe_42@acme-widgets.io"}, "widgets!1987!acme"},
        {{.email = "jdoe_42@acme-widgets.io"}, "acme-widgets.io!"},
        {{.display_name = "Jane van der Berg"}, "Berg2019vanBerg"},
        {{.display_name = "Jane van der Berg"}, "jane-van-der-berg"},
        {{.product = "portier"}, "Portier#2024#%!"},
        {{.organization = "Globex Corporation"}, "globexcorporation1"},
        {{.organization = "Globex Corporation"}, "Globex2024Globex"},
    };
    static const pol_context_t other = {.username = "zed",
                                        .email = "zed@example.org",
                                        .display_name = "Zed Z",
                                        .product = "sso",
                                        .organization = "ACME"};
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        refuse_pw(NULL, cases[i].pw, 15, &cases[i].ctx, R_CONTEXT);
        accept_pw(NULL, cases[i].pw, 15, &other);
        accept_pw(NULL, cases[i].pw, 15, NULL);
    }
}

static void test_context_words_accepted(void **state)
{
    static const char *const good[] = {
        "alice in wonderland is a good book", /* a context word, but a small part */
        "a smith forges iron in the village", "my employer makes fine doors",
        "correct horse battery staple",       "exampled corporate sausages",
    };
    for (size_t i = 0; i != sizeof(good) / sizeof(good[0]); ++i)
        accept_pw(NULL, good[i], 15, &alice);
    pol_context_t empty = {0};
    accept_pw(NULL, "alice2024alice!!", 15, &empty);
    accept_pw(NULL, "alice2024alice!!", 15, NULL);
    pol_context_t odd = {.username = "", .email = "\xff\xfe", .display_name = "@@@...", .product = "-"};
    accept_pw(NULL, "alice2024alice!!", 15, &odd);
}

/* ---- order and outputs ---- */

static void test_rule_order(void **state)
{
    pol_blocklist_t *bl = blocklist_of("aaaaaaaaaaaaaaaa\nalice2024alice!!\n", 1);
    refuse_pw(bl, "aaaaaaaaaaaaaaa", 16, &alice,
              "The password is too short: use at least 16 characters."); /* length before blocklist */
    refuse_pw(bl, "AAAAAAAAAAAAAAAA", 15, &alice, R_COMMON);             /* blocklist before pattern */
    refuse_pw(bl, "ALICE2024ALICE!!", 15, &alice, R_COMMON);             /* blocklist before context */
    pol_context_t bob = {.username = "bob"};
    refuse_pw(NULL, "bobbobbobbobbob", 15, &bob, R_PATTERN); /* pattern before context */
    refuse_pw(NULL, "bob!2024!2024!07", 15, &bob, R_CONTEXT);
    pol_blocklist_destroy(bl);
}

static void test_outputs(void **state)
{
    char out[POL_NORMALIZED_MAX], reason[200];
    /* the normalised form keeps case: case folding is only for comparisons */
    assert_int_equal(
        pol_password_evaluate(NULL, "Correct Horse Battery", 15, NULL, out, sizeof(out), reason, sizeof(reason)), 0);
    assert_string_equal(out, "Correct Horse Battery");
    /* NULL or short reason buffers are fine */
    assert_int_equal(pol_password_evaluate(NULL, "short", 15, NULL, out, sizeof(out), NULL, 0), -1);
    char tiny[8];
    assert_int_equal(pol_password_evaluate(NULL, "short", 15, NULL, out, sizeof(out), tiny, sizeof(tiny)), -1);
    assert_string_equal(tiny, "The pas");
    assert_int_equal(pol_password_evaluate(NULL, "Correct Horse Battery", 15, NULL, NULL, 0, reason, sizeof(reason)),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_boundaries),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_length_after_nfkc),
        cmocka_unit_test(test_fullwidth_normalised_then_blocked),
        cmocka_unit_test(test_non_ascii_passphrase_round_trip),
        cmocka_unit_test(test_blocklist_case_folding_and_format),
        cmocka_unit_test(test_blocklist_grows),
        cmocka_unit_test(test_conf_blocklist_file),
        cmocka_unit_test(test_patterns_refused),
        cmocka_unit_test(test_pattern_threshold_both_ways),
        cmocka_unit_test(test_good_passphrases_with_sequences_accepted),
        cmocka_unit_test(test_context_words_refused),
        cmocka_unit_test(test_each_context_field),
        cmocka_unit_test(test_context_words_accepted),
        cmocka_unit_test(test_rule_order),
        cmocka_unit_test(test_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
