/*
 * The template renderer: every special character escaped, sections both ways (and nested), missing variables,
 * unknown templates, every malformed template refused at load with its file name, the load limits, and the
 * real templates/ directory rendering each page with its variables (escaped, no inline script or style).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "gateway/template.h"

#ifndef PORTIER_SOURCE_DIR
#error "PORTIER_SOURCE_DIR must name the source tree (CMake defines it)"
#endif
#define REAL_TEMPLATES PORTIER_SOURCE_DIR "/templates"
#define NVARS(v)       (sizeof(v) / sizeof((v)[0]))

/* ---- temporary template directories ---- */

typedef struct st_tmpdir_t {
    char path[64];
} tmpdir_t;

static void write_file(const tmpdir_t *d, const char *name, const char *content, size_t len)
{
    char path[256];
    assert_true(snprintf(path, sizeof(path), "%s/%s", d->path, name) < (int)sizeof(path));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void make_dir(tmpdir_t *d)
{
    snprintf(d->path, sizeof(d->path), "/tmp/portier-tpl-XXXXXX");
    assert_non_null(mkdtemp(d->path));
}

/* A directory with style.css and one template `name` holding `content`. */
static void make_dir_with(tmpdir_t *d, const char *name, const char *content)
{
    make_dir(d);
    write_file(d, "style.css", "body{}", 6);
    write_file(d, name, content, strlen(content));
}

static void remove_dir(tmpdir_t *d)
{
    DIR *dir = opendir(d->path);
    assert_non_null(dir);
    struct dirent *ent;
    while ((ent = readdir(dir)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(dir), ent->d_name, 0) != 0)
            assert_int_equal(unlinkat(dirfd(dir), ent->d_name, AT_REMOVEDIR), 0);
    }
    closedir(dir);
    assert_int_equal(rmdir(d->path), 0);
}

/* Fixture: a fresh empty directory in *state, removed (with its contents) even when the test fails. */
static int dir_setup(void **state)
{
    tmpdir_t *d = malloc(sizeof(*d));
    if (d == NULL)
        return -1;
    make_dir(d);
    *state = d;
    return 0;
}

static int dir_teardown(void **state)
{
    remove_dir(*state);
    free(*state);
    return 0;
}

/* Loads a one-template directory; returns the templates (the directory is already removed). */
static gw_templates_t *load_one(const char *content)
{
    tmpdir_t d;
    char err[256];
    make_dir_with(&d, "t.html", content);
    gw_templates_t *t = gw_templates_load(d.path, err, sizeof(err));
    remove_dir(&d);
    if (t == NULL)
        fail_msg("load failed: %s", err);
    return t;
}

/* Asserts that loading a one-template directory fails with an error naming the file and containing `want`. */
static void expect_rejected(const char *content, const char *want)
{
    tmpdir_t d;
    char err[256] = "";
    make_dir_with(&d, "bad.html", content);
    gw_templates_t *t = gw_templates_load(d.path, err, sizeof(err));
    remove_dir(&d);
    if (t != NULL) {
        gw_templates_destroy(t);
        fail_msg("template accepted: %s", content);
    }
    if (strstr(err, "bad.html") == NULL || strstr(err, want) == NULL)
        fail_msg("error \"%s\" lacks \"bad.html\" or \"%s\"", err, want);
}

/* Renders `content` with `vars` and compares with `want`. */
static void expect_render(const char *content, const gw_tpl_var_t *vars, size_t nvars, const char *want)
{
    gw_templates_t *t = load_one(content);
    size_t len = 12345;
    char *out = gw_template_render(t, "t.html", vars, nvars, &len);
    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    if (strcmp(out, want) != 0)
        fail_msg("render(\"%s\") = \"%s\", want \"%s\"", content, out, want);
    free(out);
    gw_templates_destroy(t);
}

/* ---- syntax ---- */

static void test_each_special_char_escaped(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {{"&", "&amp;"},
                 {"<", "&lt;"},
                 {">", "&gt;"},
                 {"\"", "&quot;"},
                 {"'", "&#39;"},
                 {"a&b", "a&amp;b"},
                 {"plain text", "plain text"},
                 {"<script>alert('x')</script>", "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"},
                 {"\"><img src=x onerror=alert(1)>", "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"},
                 {"&amp;", "&amp;amp;"},
                 {"caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac"}};
    gw_templates_t *t = load_one("[{{v}}]<input value=\"{{v}}\">");
    for (size_t i = 0; i < NVARS(cases); ++i) {
        gw_tpl_var_t vars[] = {{"v", cases[i].in}};
        char want[256];
        snprintf(want, sizeof(want), "[%s]<input value=\"%s\">", cases[i].out, cases[i].out);
        size_t len;
        char *out = gw_template_render(t, "t.html", vars, 1, &len);
        assert_non_null(out);
        assert_int_equal(len, strlen(want));
        assert_string_equal(out, want);
        free(out);
    }
    gw_templates_destroy(t);
}

static void test_missing_and_null_variables_render_empty(void **state)
{
    gw_tpl_var_t null_value[] = {{"a", NULL}};
    expect_render("<{{a}}|{{b}}>", NULL, 0, "<|>");
    expect_render("<{{a}}|{{b}}>", null_value, 1, "<|>");
    gw_tpl_var_t both[] = {{"b", "B"}, {"a", "A"}};
    expect_render("<{{a}}|{{b}}>", both, 2, "<A|B>");
    gw_tpl_var_t unnamed[] = {{NULL, "x"}, {"a", "A"}};
    expect_render("<{{a}}>", unnamed, 2, "<A>");
    gw_tpl_var_t prefix[] = {{"ab", "no"}, {"a", "yes"}}; /* a name is matched whole, not as a prefix */
    expect_render("{{a}}", prefix, 2, "yes");
    gw_tpl_var_t dup[] = {{"a", "first"}, {"a", "second"}};
    expect_render("{{a}}", dup, 2, "first");
}

static void test_blanks_inside_tags(void **state)
{
    gw_tpl_var_t vars[] = {{"a", "A"}};
    expect_render("{{ a }}{{# a }}+{{/ a }}{{^ a}}-{{/a}}", vars, 1, "A+");
}

static void test_text_without_tags_passes_through(void **state)
{
    expect_render("", NULL, 0, "");
    expect_render("a { b } c }} d {", NULL, 0, "a { b } c }} d {");
    expect_render("x{", NULL, 0, "x{");
}

static void test_positive_section(void **state)
{
    const char *tpl = "a{{#s}}[{{s}}]{{/s}}b";
    gw_tpl_var_t set[] = {{"s", "v"}}, empty[] = {{"s", ""}}, null_value[] = {{"s", NULL}};
    expect_render(tpl, set, 1, "a[v]b");
    expect_render(tpl, empty, 1, "ab");
    expect_render(tpl, null_value, 1, "ab");
    expect_render(tpl, NULL, 0, "ab");
}

static void test_inverted_section(void **state)
{
    const char *tpl = "a{{^s}}none{{/s}}b";
    gw_tpl_var_t set[] = {{"s", "v"}}, empty[] = {{"s", ""}}, null_value[] = {{"s", NULL}};
    expect_render(tpl, set, 1, "ab");
    expect_render(tpl, empty, 1, "anoneb");
    expect_render(tpl, null_value, 1, "anoneb");
    expect_render(tpl, NULL, 0, "anoneb");
}

static void test_nested_sections_of_different_names(void **state)
{
    const char *tpl = "{{#a}}A({{#b}}B{{/b}}{{^b}}!B{{/b}}){{/a}}{{^a}}!A({{#b}}B{{/b}}){{/a}}.";
    gw_tpl_var_t ab[] = {{"a", "1"}, {"b", "1"}}, a[] = {{"a", "1"}}, b[] = {{"b", "1"}};
    expect_render(tpl, ab, 2, "A(B).");
    expect_render(tpl, a, 1, "A(!B).");
    expect_render(tpl, b, 1, "!A(B).");
    expect_render(tpl, NULL, 0, "!A().");
    /* the same name nested, and sibling sections after a skipped one */
    gw_tpl_var_t x[] = {{"x", "1"}};
    expect_render("{{#x}}1{{#x}}2{{/x}}3{{/x}}{{#y}}no{{/y}}{{#x}}4{{/x}}", x, 1, "1234");
    expect_render("{{#y}}{{#x}}no{{/x}}{{/y}}{{#x}}yes{{/x}}", x, 1, "yes");
}

static void test_unknown_template_is_null(void **state)
{
    gw_templates_t *t = load_one("hello");
    size_t len = 0;
    assert_null(gw_template_render(t, "missing.html", NULL, 0, &len));
    assert_null(gw_template_render(t, "t", NULL, 0, &len));
    assert_null(gw_template_render(t, "", NULL, 0, &len));
    assert_null(gw_template_render(t, "style.css", NULL, 0, &len));
    assert_null(gw_template_render(NULL, "t.html", NULL, 0, &len));
    char *out = gw_template_render(t, "t.html", NULL, 0, &len);
    assert_non_null(out);
    assert_string_equal(out, "hello");
    free(out);
    gw_templates_destroy(t);
    gw_templates_destroy(NULL);
}

/* ---- rejected at load ---- */

static void test_unclosed_section_rejected(void **state)
{
    expect_rejected("<p>\n{{#error}}\n<b>{{error}}</b>\n", "bad.html:2: unclosed section error");
    expect_rejected("{{^notice}}x", "unclosed section notice");
    expect_rejected("{{#a}}{{#b}}{{/b}}", "unclosed section a");
    expect_rejected("{{#a}}{{#a}}{{/a}}", "unclosed section a");
}

static void test_mismatched_or_stray_close_rejected(void **state)
{
    expect_rejected("{{#a}}{{#b}}{{/a}}{{/b}}", "bad.html:1: {{/a}} closes section b opened at line 1");
    expect_rejected("x\n{{/a}}", "bad.html:2: {{/a}} without an open section");
    expect_rejected("{{#a}}{{/a}}{{/a}}", "without an open section");
}

static void test_malformed_tags_rejected(void **state)
{
    static const char *const bad[] = {"{{{raw}}}",   "{{&raw}}",    "{{>partial}}", "{{!comment}}", "{{}}",
                                      "{{ }}",       "{{#}}",       "{{a b}}",      "{{a-b}}",      "{{a.b}}",
                                      "{{a}",        "{{a",         "x {{",         "{{",           "{{a}x}}",
                                      "{{=<% %>=}}", "{{#a}}{{/}}", "{{a\n}}",      "{{\xc3\xa9}}"};
    for (size_t i = 0; i < NVARS(bad); ++i)
        expect_rejected(bad[i], "malformed tag");
}

static void test_overlong_name_and_deep_nesting_rejected(void **state)
{
    char tpl[GW_TPL_NAME_MAX + 16], name[GW_TPL_NAME_MAX + 2];
    memset(name, 'n', GW_TPL_NAME_MAX + 1);
    name[GW_TPL_NAME_MAX + 1] = '\0';
    snprintf(tpl, sizeof(tpl), "{{%s}}", name);
    expect_rejected(tpl, "variable name longer");
    name[GW_TPL_NAME_MAX] = '\0'; /* exactly the maximum is fine */
    snprintf(tpl, sizeof(tpl), "{{%s}}", name);
    gw_templates_destroy(load_one(tpl));

    char deep[(GW_TPL_DEPTH_MAX + 1) * 16] = "";
    size_t off = 0;
    for (int i = 0; i <= GW_TPL_DEPTH_MAX; ++i)
        off += (size_t)snprintf(deep + off, sizeof(deep) - off, "{{#s%d}}", i);
    expect_rejected(deep, "nested deeper");
}

static void test_load_errors(void **state)
{
    char err[256];
    tmpdir_t *d = *state;

    /* no such directory */
    assert_null(gw_templates_load("/nonexistent/portier-templates", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/portier-templates"));

    /* no template at all (files not ending in .html are ignored, even with template-like content) */
    write_file(d, "style.css", "x", 1);
    write_file(d, "notes.txt", "{{#x}}", 6);
    write_file(d, ".hidden.html", "{{#x}}", 6);
    assert_null(gw_templates_load(d->path, err, sizeof(err)));
    assert_non_null(strstr(err, "no *.html templates"));

    /* style.css is required */
    char css_path[128];
    snprintf(css_path, sizeof(css_path), "%s/style.css", d->path);
    assert_int_equal(unlink(css_path), 0);
    write_file(d, "ok.html", "ok", 2);
    assert_null(gw_templates_load(d->path, err, sizeof(err)));
    assert_non_null(strstr(err, "style.css"));

    /* a directory named *.html is not a template */
    write_file(d, "style.css", "x", 1);
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/sub.html", d->path);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_null(gw_templates_load(d->path, err, sizeof(err)));
    assert_non_null(strstr(err, "sub.html: not a regular file"));
    assert_int_equal(rmdir(sub), 0);

    /* a NULL or zero-length error buffer is tolerated */
    assert_null(gw_templates_load("/nonexistent/portier-templates", NULL, 0));
    assert_null(gw_templates_load("/nonexistent/portier-templates", err, 0));

    /* and now it loads; the other files are still ignored */
    gw_templates_t *t = gw_templates_load(d->path, err, sizeof(err));
    assert_non_null(t);
    size_t len;
    assert_null(gw_template_render(t, "notes.txt", NULL, 0, &len));
    assert_null(gw_template_render(t, ".hidden.html", NULL, 0, &len));
    gw_templates_destroy(t);
}

static void test_size_limit(void **state)
{
    char err[256];
    tmpdir_t *d = *state;
    char *big = malloc(GW_TPL_FILE_MAX + 1);
    assert_non_null(big);
    memset(big, 'x', GW_TPL_FILE_MAX + 1);

    write_file(d, "style.css", "x", 1);
    write_file(d, "big.html", big, GW_TPL_FILE_MAX); /* exactly the limit loads */
    gw_templates_t *t = gw_templates_load(d->path, err, sizeof(err));
    assert_non_null(t);
    size_t len;
    char *out = gw_template_render(t, "big.html", NULL, 0, &len);
    assert_non_null(out);
    assert_int_equal(len, GW_TPL_FILE_MAX);
    free(out);
    gw_templates_destroy(t);

    write_file(d, "big.html", big, GW_TPL_FILE_MAX + 1); /* one byte more does not */
    assert_null(gw_templates_load(d->path, err, sizeof(err)));
    assert_non_null(strstr(err, "big.html: larger than"));

    write_file(d, "big.html", "ok", 2);
    write_file(d, "style.css", big, GW_TPL_FILE_MAX + 1); /* style.css too */
    assert_null(gw_templates_load(d->path, err, sizeof(err)));
    assert_non_null(strstr(err, "style.css: larger than"));
    free(big);
}

static void test_error_names_the_first_bad_file(void **state)
{
    char err[256];
    tmpdir_t *d = *state;
    write_file(d, "style.css", "x", 1);
    write_file(d, "a.html", "fine {{x}}", 10);
    write_file(d, "m.html", "{{#x}}", 6);
    write_file(d, "z.html", "{{/y}}", 6);
    assert_null(gw_templates_load(d->path, err, sizeof(err)));
    assert_non_null(strstr(err, "/m.html:1: unclosed section x"));
}

static void test_large_values_render(void **state)
{
    size_t n = 100000;
    char *v = malloc(n + 1);
    assert_non_null(v);
    memset(v, '<', n);
    v[n] = '\0';
    gw_templates_t *t = load_one("[{{v}}]");
    gw_tpl_var_t vars[] = {{"v", v}};
    size_t len;
    char *out = gw_template_render(t, "t.html", vars, 1, &len);
    assert_non_null(out);
    assert_int_equal(len, 2 + 4 * n);
    assert_int_equal(out[0], '[');
    assert_memory_equal(out + 1, "&lt;&lt;", 8);
    assert_int_equal(out[len - 1], ']');
    assert_int_equal(out[len], '\0');
    free(out);
    gw_templates_destroy(t);
    free(v);
}

/* ---- the real templates ---- */

#define EVIL         "x\"'<>&y"
#define EVIL_ESCAPED "x&quot;&#39;&lt;&gt;&amp;y"

static gw_templates_t *real;

static int load_real(void **state)
{
    char err[512];
    if ((real = gw_templates_load(REAL_TEMPLATES, err, sizeof(err))) == NULL) {
        fprintf(stderr, "loading %s: %s\n", REAL_TEMPLATES, err);
        return -1;
    }
    return 0;
}

static int unload_real(void **state)
{
    gw_templates_destroy(real);
    real = NULL;
    return 0;
}

static char *render_real(const char *name, const gw_tpl_var_t *vars, size_t nvars)
{
    size_t len;
    char *out = gw_template_render(real, name, vars, nvars, &len);
    if (out == NULL)
        fail_msg("%s did not render", name);
    assert_int_equal(len, strlen(out));
    return out;
}

static void has(const char *page, const char *fragment)
{
    if (strstr(page, fragment) == NULL)
        fail_msg("missing: %s\n---\n%s", fragment, page);
}

static void lacks(const char *page, const char *fragment)
{
    if (strstr(page, fragment) != NULL)
        fail_msg("unexpected: %s\n---\n%s", fragment, page);
}

/* No event handler attribute (onclick=, onload=...): " on" followed by letters and "=". */
static void lacks_event_handler(const char *page)
{
    for (const char *p = page; (p = strstr(p, " on")) != NULL; ++p) {
        const char *q = p + 3;
        while (*q >= 'a' && *q <= 'z')
            ++q;
        if (q > p + 3 && *q == '=')
            fail_msg("event handler attribute at: %.40s", p);
    }
}

/* What every page must (not) contain, whatever its variables. */
static void common_page_checks(const char *page)
{
    has(page, "<!DOCTYPE html>");
    has(page, "<html lang=\"en\">");
    has(page, "<meta charset=\"utf-8\">");
    has(page, "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    has(page, "<link rel=\"stylesheet\" href=\"/_portier/style.css\">");
    has(page, "portier");
    lacks(page, "{{");
    lacks(page, "<script");
    lacks(page, " style=");
    lacks(page, "<style");
    lacks(page, "http://");
    lacks(page, "https://");
    lacks(page, "//cdn");
    lacks_event_handler(page);
    lacks(page, "javascript:");
    lacks(page, EVIL); /* nothing unescaped */
}

static void test_real_login(void **state)
{
    gw_tpl_var_t vars[] = {{"csrf", "c" EVIL},     {"return_to", "/app?a=1&b=" EVIL},
                           {"username", "u" EVIL}, {"error", "e" EVIL},
                           {"notice", "n" EVIL},   {"min_length", "15"}};
    char *page = render_real("login.html", vars, NVARS(vars));
    common_page_checks(page);
    has(page, "<form method=\"post\" action=\"/login\"");
    has(page, "name=\"csrf\" value=\"c" EVIL_ESCAPED "\"");
    has(page, "name=\"return_to\" value=\"/app?a=1&amp;b=" EVIL_ESCAPED "\"");
    has(page, "value=\"u" EVIL_ESCAPED "\"");
    has(page, "id=\"username\" name=\"username\"");
    has(page, "autocomplete=\"username\"");
    has(page, "autofocus");
    has(page, "id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\"");
    has(page, "<div id=\"error\" class=\"alert alert-error\" role=\"alert\">e" EVIL_ESCAPED "</div>");
    has(page, "id=\"notice\"");
    has(page, "n" EVIL_ESCAPED);
    has(page, "<button id=\"submit\" type=\"submit\" class=\"button button-primary\">Sign in</button>");
    has(page, "at least 15 characters; long passphrases welcome.");
    free(page);

    /* without error or notice: no alert boxes */
    gw_tpl_var_t plain[] = {{"csrf", "tok"}, {"return_to", "/"}, {"min_length", "8"}};
    page = render_real("login.html", plain, NVARS(plain));
    common_page_checks(page);
    lacks(page, "id=\"error\"");
    lacks(page, "role=\"alert\"");
    lacks(page, "id=\"notice\"");
    has(page, "name=\"csrf\" value=\"tok\"");
    has(page, "value=\"\""); /* the username prefill is empty */
    has(page, "at least 8 characters");
    free(page);
}

static void test_real_setup(void **state)
{
    gw_tpl_var_t vars[] = {
        {"token", "t" EVIL}, {"csrf", "c" EVIL}, {"username", "u" EVIL}, {"error", "e" EVIL}, {"min_length", "15"}};
    char *page = render_real("setup.html", vars, NVARS(vars));
    common_page_checks(page);
    has(page, "<title>Set your password");
    has(page, "<h1 id=\"title\">Set your password</h1>");
    has(page, "<form method=\"post\" action=\"/setup\"");
    has(page, "name=\"token\" value=\"t" EVIL_ESCAPED "\"");
    has(page, "name=\"csrf\" value=\"c" EVIL_ESCAPED "\"");
    has(page, "u" EVIL_ESCAPED);
    has(page, "id=\"error\" class=\"alert alert-error\" role=\"alert\">e" EVIL_ESCAPED "<");
    has(page, "id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\"");
    has(page, "id=\"password_confirm\" name=\"password_confirm\" type=\"password\" autocomplete=\"new-password\"");
    has(page, "minlength=\"15\" maxlength=\"128\"");
    has(page, "at least 15 characters");
    has(page, ">Set password and sign in</button>");
    has(page, "id=\"submit\"");
    /* the rules come before the first password field */
    assert_true(strstr(page, "at least 15 characters") < strstr(page, "id=\"password\""));
    free(page);

    gw_tpl_var_t plain[] = {{"token", "tok"}, {"csrf", "c"}, {"min_length", "8"}};
    page = render_real("setup.html", plain, NVARS(plain));
    common_page_checks(page);
    lacks(page, "role=\"alert\"");
    lacks(page, "name=\"username\"");
    has(page, "minlength=\"8\" maxlength=\"128\"");
    free(page);
}

static void test_real_logout(void **state)
{
    gw_tpl_var_t vars[] = {{"csrf", "c" EVIL}, {"username", "u" EVIL}};
    char *page = render_real("logout.html", vars, NVARS(vars));
    common_page_checks(page);
    has(page, "Sign out of portier?");
    has(page, "<form method=\"post\" action=\"/logout\"");
    has(page, "name=\"csrf\" value=\"c" EVIL_ESCAPED "\"");
    has(page, "<strong>u" EVIL_ESCAPED "</strong>");
    has(page, "id=\"submit\" type=\"submit\"");
    free(page);

    gw_tpl_var_t csrf_only[] = {{"csrf", "c"}}; /* what idp/login.c passes today */
    page = render_real("logout.html", csrf_only, NVARS(csrf_only));
    common_page_checks(page);
    lacks(page, "signed in as");
    free(page);
}

static void test_real_message(void **state)
{
    gw_tpl_var_t vars[] = {{"title", "Access denied"},
                           {"message", "m" EVIL},
                           {"link_href", "/login?r=" EVIL},
                           {"link_text", "Sign in as someone else"}};
    char *page = render_real("message.html", vars, NVARS(vars));
    common_page_checks(page);
    has(page, "<title>Access denied · portier</title>");
    has(page, "<h1 id=\"title\">Access denied</h1>");
    has(page, "m" EVIL_ESCAPED);
    has(page, "href=\"/login?r=" EVIL_ESCAPED "\">Sign in as someone else</a>");
    free(page);

    /* a link without text reads "Continue"; no link at all shows none */
    gw_tpl_var_t no_text[] = {{"title", "Error"}, {"message", "m"}, {"link_href", "/"}};
    page = render_real("message.html", no_text, NVARS(no_text));
    has(page, "href=\"/\">Continue</a>");
    free(page);
    gw_tpl_var_t no_link[] = {{"title", "This link has expired or was already used"}, {"message", "m"}};
    page = render_real("message.html", no_link, NVARS(no_link));
    common_page_checks(page);
    has(page, "<h1 id=\"title\">This link has expired or was already used</h1>");
    lacks(page, "<a ");
    free(page);
}

static void test_real_css(void **state)
{
    size_t len = 0;
    const char *css = gw_templates_css(real, &len);
    assert_non_null(css);
    assert_true(len > 1000);
    assert_int_equal(strlen(css), len);
    has(css, "prefers-color-scheme: dark");
    has(css, ":focus-visible");
    has(css, ".alert-error");
    assert_null(strstr(css, "url("));    /* no external resources */
    assert_null(strstr(css, "@import")); /* no external resources */
    assert_null(gw_templates_css(NULL, &len));
}

int main(void)
{
    const struct CMUnitTest syntax[] = {
        cmocka_unit_test(test_each_special_char_escaped),
        cmocka_unit_test(test_missing_and_null_variables_render_empty),
        cmocka_unit_test(test_blanks_inside_tags),
        cmocka_unit_test(test_text_without_tags_passes_through),
        cmocka_unit_test(test_positive_section),
        cmocka_unit_test(test_inverted_section),
        cmocka_unit_test(test_nested_sections_of_different_names),
        cmocka_unit_test(test_unknown_template_is_null),
        cmocka_unit_test(test_unclosed_section_rejected),
        cmocka_unit_test(test_mismatched_or_stray_close_rejected),
        cmocka_unit_test(test_malformed_tags_rejected),
        cmocka_unit_test(test_overlong_name_and_deep_nesting_rejected),
        cmocka_unit_test_setup_teardown(test_load_errors, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_error_names_the_first_bad_file, dir_setup, dir_teardown),
        cmocka_unit_test(test_large_values_render),
    };
    const struct CMUnitTest pages[] = {
        cmocka_unit_test(test_real_login),   cmocka_unit_test(test_real_setup), cmocka_unit_test(test_real_logout),
        cmocka_unit_test(test_real_message), cmocka_unit_test(test_real_css),
    };
    int failed = cmocka_run_group_tests_name("template syntax", syntax, NULL, NULL);
    failed += cmocka_run_group_tests_name("real templates", pages, load_real, unload_real);
    return failed != 0;
}
