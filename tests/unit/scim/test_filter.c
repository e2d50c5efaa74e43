/* The SCIM filter and PATCH path parsers, the filter-to-SQL compiler (values only ever as $n parameters, paths
 * only from the allowlist), the in-memory value-filter evaluator and the PATCH engine on client-shaped input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>

#include "scim/internal.h"

#define STORE_MAX_PARAMS_FOR_TESTS 96
#define H2O_STRLIT_FOR_TESTS(s)    (s), (sizeof(s) - 1)

/* ---- a canonical text of a tree, to compare shapes (truncation of deep trees is harmless here) ---- */
#pragma GCC diagnostic ignored "-Wformat-truncation"

static void show(const store_filter_t *f, char *out, size_t len)
{
    static const char *const ops[] = {"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"};
    char a[1024], b[1024];
    switch (f->kind) {
    case STORE_FILTER_AND:
    case STORE_FILTER_OR:
        show(f->left, a, sizeof(a));
        show(f->right, b, sizeof(b));
        snprintf(out, len, "(%s %s %s)", a, f->kind == STORE_FILTER_AND ? "and" : "or", b);
        return;
    case STORE_FILTER_NOT:
        show(f->left, a, sizeof(a));
        snprintf(out, len, "not%s", a);
        return;
    case STORE_FILTER_VALUE_PATH:
        show(f->left, a, sizeof(a));
        snprintf(out, len, "%s[%s]", f->attr, a);
        return;
    case STORE_FILTER_CMP:
        if (f->op == STORE_OP_PR)
            snprintf(out, len, "%s pr", f->attr);
        else
            snprintf(out, len, "%s %s %s", f->attr, ops[f->op],
                     f->vtype == STORE_VAL_TRUE    ? "true"
                     : f->vtype == STORE_VAL_FALSE ? "false"
                     : f->vtype == STORE_VAL_NULL  ? "null"
                                                   : f->value);
        return;
    }
}

static void parses_as(const char *text, const char *want)
{
    store_filter_t *f = NULL;
    char err[300], got[2048];
    if (scim_filter_parse(text, strlen(text), &f, err, sizeof(err)) != 0)
        fail_msg("%s: %s", text, err);
    show(f, got, sizeof(got));
    if (strcmp(got, want) != 0)
        fail_msg("%s -> %s, want %s", text, got, want);
    scim_filter_free(f);
}

static void rejected(const char *text)
{
    store_filter_t *f = NULL;
    char err[300] = "";
    if (scim_filter_parse(text, strlen(text), &f, err, sizeof(err)) == 0) {
        scim_filter_free(f);
        fail_msg("accepted: %s", text);
    }
    assert_non_null(err[0] != '\0' ? err : NULL);
    assert_null(f);
}

static void test_grammar(void **state)
{
    parses_as("userName eq \"bjensen\"", "username eq bjensen");
    parses_as("name.familyName co \"O'Malley\"", "name.familyname co O'Malley");
    parses_as("userName sw \"J\"", "username sw J");
    parses_as("urn:ietf:params:scim:schemas:core:2.0:User:userName sw \"J\"", "username sw J");
    parses_as("title pr", "title pr");
    parses_as("meta.lastModified gt \"2011-05-13T04:42:34Z\"", "meta.lastmodified gt 2011-05-13T04:42:34Z");
    parses_as("title pr and userType eq \"Employee\"", "(title pr and usertype eq Employee)");
    parses_as("title pr or userType eq \"Intern\"", "(title pr or usertype eq Intern)");
    parses_as("a eq 1 or b eq 2 and c eq 3", "(a eq 1 or (b eq 2 and c eq 3))");
    parses_as("userType eq \"Employee\" and (emails co \"example.com\" or emails.value co \"example.org\")",
              "(usertype eq Employee and (emails co example.com or emails.value co example.org))");
    parses_as("userType ne \"Employee\" and not (emails co \"example.com\" or emails.value co \"example.org\")",
              "(usertype ne Employee and not(emails co example.com or emails.value co example.org))");
    parses_as("emails[type eq \"work\" and value co \"@example.com\"]",
              "emails[(type eq work and value co @example.com)]");
    parses_as("userType eq \"Employee\" and emails[type eq \"work\" and value co \"@example.com\"]",
              "(usertype eq Employee and emails[(type eq work and value co @example.com)])");
    parses_as("active eq TRUE", "active eq true");
    parses_as("x eq false", "x eq false");
    parses_as("x ne null", "x ne null");
    parses_as("x GE -1.5e3", "x ge -1.5e3");
    parses_as("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"\\u00e9\\\"\"",
              "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department eq \xc3\xa9\"");
    parses_as("  userName   eq   \"a\"  ", "username eq a");
    parses_as("x eq \"\\ud83d\\ude00\"", "x eq \xf0\x9f\x98\x80");
}

static void test_rejections(void **state)
{
    static const char *const bad[] = {"",
                                      "userName",
                                      "userName eq",
                                      "userName equals \"a\"",
                                      "userName eq 'a'",
                                      "userName eq \"a",
                                      "userName eq \"\\x\"",
                                      "userName eq \"\\u0000\"",
                                      "userName eq \"\\udc00\"",
                                      "(userName eq \"a\"",
                                      "userName eq \"a\")",
                                      "userName eq \"a\" and",
                                      "and userName eq \"a\"",
                                      "not userName eq \"a\"",
                                      "emails[type eq \"work\"",
                                      "emails[type eq \"work\"].value eq \"x\"",
                                      "name.givenName[x eq \"y\"]",
                                      "emails[type[x eq \"y\"] eq \"z\"]",
                                      "1abc eq \"x\"",
                                      "a.b.c eq \"x\"",
                                      "urn:evil:schema:attr eq \"x\"",
                                      "x eq 1.",
                                      "x eq 01x",
                                      "x eq \"tab\tinside\"",
                                      "x eq truex",
                                      "userName eq \"a\" userName eq \"b\""};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        rejected(bad[i]);
}

static void test_limits(void **state)
{
    char buf[2048];
    /* depth 8 accepted, 9 refused: parentheses, not, value paths all count */
    snprintf(buf, sizeof(buf), "((((((( a eq 1 )))))))");
    parses_as(buf, "a eq 1");
    rejected("(((((((( a eq 1 ))))))))");
    rejected("not(not(not(not(not(not(not(not(a eq 1))))))))");
    parses_as("not(not(not(not(not(not(not(a eq 1)))))))", "notnotnotnotnotnotnota eq 1");
    /* 1024 bytes accepted, 1025 refused */
    memset(buf, ' ', sizeof(buf));
    memcpy(buf, "a eq 1", 6);
    store_filter_t *f = NULL;
    char err[300];
    assert_int_equal(scim_filter_parse(buf, SCIM_FILTER_MAX_LEN, &f, err, sizeof(err)), 0);
    scim_filter_free(f);
    assert_int_equal(scim_filter_parse(buf, SCIM_FILTER_MAX_LEN + 1, &f, err, sizeof(err)), -22);
    /* embedded NUL */
    assert_int_equal(scim_filter_parse("a eq \"x\0\"", 9, &f, err, sizeof(err)), -22);
    /* a long flat chain is no recursion problem */
    size_t n = 0;
    for (int i = 0; n + 16 < SCIM_FILTER_MAX_LEN; ++i)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sa eq %d", i ? " or " : "", i % 10);
    assert_int_equal(scim_filter_parse(buf, n, &f, err, sizeof(err)), 0);
    scim_filter_free(f);
}

static void compiles(store_scim_type_t type, const char *text, const char *want_sql, int nparams, const char *p0)
{
    store_filter_t *f = NULL;
    char err[300], *sql = NULL;
    const char *params[STORE_MAX_PARAMS_FOR_TESTS];
    int n = 0;
    assert_int_equal(scim_filter_parse(text, strlen(text), &f, err, sizeof(err)), 0);
    if (store_scim_compile(type, f, &sql, params, &n, STORE_MAX_PARAMS_FOR_TESTS, err, sizeof(err)) != 0)
        fail_msg("%s: %s", text, err);
    if (want_sql != NULL && strstr(sql, want_sql) == NULL)
        fail_msg("%s -> %s (want %s)", text, sql, want_sql);
    assert_int_equal(n, nparams);
    if (p0 != NULL)
        assert_string_equal(params[0], p0);
    /* no value text ever appears in the SQL */
    for (int i = 0; i != n; ++i)
        if (strlen(params[i]) > 3 && strstr(sql, params[i]) != NULL)
            fail_msg("value %s pasted into %s", params[i], sql);
    free(sql);
    scim_filter_free(f);
}

static void not_compiled(store_scim_type_t type, const char *text)
{
    store_filter_t *f = NULL;
    char err[300], *sql = NULL;
    const char *params[STORE_MAX_PARAMS_FOR_TESTS];
    int n = 0;
    assert_int_equal(scim_filter_parse(text, strlen(text), &f, err, sizeof(err)), 0);
    if (store_scim_compile(type, f, &sql, params, &n, STORE_MAX_PARAMS_FOR_TESTS, err, sizeof(err)) == 0)
        fail_msg("%s compiled to %s", text, sql);
    assert_null(sql);
    scim_filter_free(f);
}

static void test_compile(void **state)
{
    compiles(STORE_SCIM_USERS, "userName eq \"x'); DROP TABLE users; --\"", "lower(u.username)", 1,
             "x'); DROP TABLE users; --");
    compiles(STORE_SCIM_USERS, "externalId eq \"E1\"", "(u.external_id) = ($1::text)", 1, "E1");
    compiles(STORE_SCIM_USERS, "active eq false", "(NOT u.disabled)::text = $1", 1, "false");
    compiles(STORE_SCIM_USERS, "meta.created ge \"2020-01-01T00:00:00Z\"", "u.created_at >= $1::timestamptz", 1, NULL);
    compiles(STORE_SCIM_USERS, "emails[type eq \"work\" and value co \"@x\"]", "EXISTS (SELECT 1 FROM", 2, "work");
    compiles(STORE_SCIM_USERS, "emails co \"@x\"", "(x->>'value')", 1, "@x");
    compiles(STORE_SCIM_USERS, "groups.display eq \"admins\"", "g2.name", 1, "admins");
    compiles(STORE_SCIM_USERS, "title pr", "IS NOT NULL", 0, NULL);
    compiles(STORE_SCIM_USERS, "title eq null", "IS NULL", 0, NULL);
    compiles(STORE_SCIM_USERS, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"d\"",
             "'department'", 1, "d");
    compiles(STORE_SCIM_GROUPS, "displayName eq \"a\" and members.value eq \"12\"", "mu.id::text", 2, "a");
    compiles(STORE_SCIM_USERS, "userName ew \"abcd\"", "right(", 2, "abcd");
    not_compiled(STORE_SCIM_USERS, "password eq \"x\"");
    not_compiled(STORE_SCIM_USERS, "bogus eq \"x\"");
    not_compiled(STORE_SCIM_USERS, "active gt true");
    not_compiled(STORE_SCIM_USERS, "active eq \"yes\"");
    not_compiled(STORE_SCIM_USERS, "meta.created co \"2020\"");
    not_compiled(STORE_SCIM_USERS, "meta.created gt \"tomorrow\"");
    not_compiled(STORE_SCIM_USERS, "name co \"x\"");
    not_compiled(STORE_SCIM_USERS, "userName gt true");
    not_compiled(STORE_SCIM_USERS, "emails[bogus eq \"x\"]");
    not_compiled(STORE_SCIM_USERS, "title[type eq \"x\"]");
    not_compiled(STORE_SCIM_GROUPS, "userName eq \"x\"");

    /* more values than parameters: -E2BIG (tooMany), never a truncated query */
    char buf[SCIM_FILTER_MAX_LEN + 1], err[300], *sql = NULL;
    size_t n = 0;
    for (int i = 0; i != 60; ++i)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sid ew \"%d\"", i ? " or " : "", i);
    store_filter_t *f = NULL;
    const char *params[STORE_MAX_PARAMS_FOR_TESTS];
    int np = 0;
    assert_int_equal(scim_filter_parse(buf, n, &f, err, sizeof(err)), 0);
    assert_int_equal(
        store_scim_compile(STORE_SCIM_USERS, f, &sql, params, &np, STORE_MAX_PARAMS_FOR_TESTS, err, sizeof(err)),
        -E2BIG);
    assert_null(sql);
    scim_filter_free(f);
}

static void test_paths(void **state)
{
    scim_path_t p;
    char err[300], got[1024];
    assert_int_equal(scim_path_parse(H2O_STRLIT_FOR_TESTS("emails[type eq \"work\"].value"), &p, err, sizeof(err)), 0);
    assert_string_equal(p.attr, "emails");
    assert_string_equal(p.sub, "value");
    show(p.filter, got, sizeof(got));
    assert_string_equal(got, "type eq work");
    scim_path_dispose(&p);
    assert_int_equal(scim_path_parse(H2O_STRLIT_FOR_TESTS("name.givenName"), &p, err, sizeof(err)), 0);
    assert_string_equal(p.attr, "name");
    assert_string_equal(p.sub, "givenname");
    scim_path_dispose(&p);
    assert_int_equal(scim_path_parse(H2O_STRLIT_FOR_TESTS(SCIM_URN_ENTERPRISE ":manager.value"), &p, err, sizeof(err)),
                     0);
    assert_string_equal(p.attr, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager");
    assert_string_equal(p.sub, "value");
    scim_path_dispose(&p);
    assert_int_equal(scim_path_parse(H2O_STRLIT_FOR_TESTS("members[value eq \"2819c223\"]"), &p, err, sizeof(err)), 0);
    assert_null(p.sub);
    scim_path_dispose(&p);
    static const char *const bad[] = {"",    "emails[", "emails[type eq \"w\"]x",          "emails[type eq \"w\"].",
                                      "a b", "urn:x:y", "emails[type eq \"w\"].value.more"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        if (scim_path_parse(bad[i], strlen(bad[i]), &p, err, sizeof(err)) == 0)
            fail_msg("path accepted: %s", bad[i]);
}

static json_t *patched(const char *resource, const char *ops, int want_rc, const char *want_type)
{
    json_t *r = json_loads(resource, 0, NULL), *o = json_loads(ops, 0, NULL);
    scim_error_t e = {0};
    int rc = scim_patch_user(r, o, &e);
    json_decref(o);
    if (rc != want_rc || (want_type != NULL && (e.scim_type == NULL || strcmp(e.scim_type, want_type) != 0)))
        fail_msg("%s: rc %d type %s (%s)", ops, rc, e.scim_type ? e.scim_type : "-", e.detail);
    char err[300];
    json_t *n = scim_normalize(&scim_schema_user, r, err, sizeof(err));
    json_decref(r);
    return n;
}

static void test_patch_engine(void **state)
{
    json_t *n =
        patched("{\"userName\":\"a\",\"active\":true}", "[{\"op\":\"replace\",\"value\":{\"active\":false}}]", 0, NULL);
    assert_true(json_is_false(json_object_get(n, "active")));
    json_decref(n);
    n = patched("{\"userName\":\"a\",\"active\":true}",
                "[{\"op\":\"Replace\",\"path\":\"active\",\"value\":\"False\"}]", 0, NULL);
    assert_true(json_is_false(json_object_get(n, "active")));
    json_decref(n);
    n = patched("{\"userName\":\"a\"}",
                "[{\"op\":\"Add\",\"path\":\"emails[type eq \\\"work\\\"].value\",\"value\":\"w@x\"},"
                "{\"op\":\"add\",\"value\":{\"name.givenName\":\"G\"}}]",
                0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(n, "emails"), 0), "value")),
                        "w@x");
    assert_string_equal(json_string_value(json_object_get(json_object_get(n, "name"), "givenName")), "G");
    json_decref(n);
    json_decref(patched("{\"userName\":\"a\"}", "[{\"op\":\"remove\"}]", -1, "noTarget"));
    json_decref(
        patched("{\"userName\":\"a\"}", "[{\"op\":\"replace\",\"path\":\"meta\",\"value\":1}]", -1, "mutability"));
    json_decref(patched("{\"userName\":\"a\"}", "[{\"op\":\"replace\",\"path\":\"userName.x\",\"value\":1}]", -1,
                        "invalidPath"));
    json_decref(
        patched("{\"userName\":\"a\"}", "[{\"op\":\"copy\",\"path\":\"title\",\"value\":1}]", -1, "invalidSyntax"));
    json_decref(patched("{\"userName\":\"a\"}", "[]", -1, "invalidSyntax"));
}

static void test_value_filter_match(void **state)
{
    json_t *el = json_pack("{s:s, s:s, s:b}", "type", "Work", "value", "Bob@Example.com", "primary", 1);
    store_filter_t *f;
    char err[300];
    struct {
        const char *filter;
        int match;
    } cases[] = {{"type eq \"work\"", 1},       {"value ew \"example.COM\"", 1},
                 {"value sw \"bob\"", 1},       {"value co \"@ex\"", 1},
                 {"primary eq true", 1},        {"primary eq false", 0},
                 {"not (type eq \"home\")", 1}, {"display pr", 0},
                 {"display eq null", 1},        {"type eq \"home\" or value co \"bob\"", 1}};
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        assert_int_equal(scim_filter_parse(cases[i].filter, strlen(cases[i].filter), &f, err, sizeof(err)), 0);
        if (scim_filter_match(f, el) != cases[i].match)
            fail_msg("%s: want %d", cases[i].filter, cases[i].match);
        scim_filter_free(f);
    }
    json_decref(el);
}

static void test_normalize(void **state)
{
    char err[300];
    json_t *in =
        json_loads("{\"USERNAME\":\"a\",\"Active\":\"TRUE\",\"emails\":{\"Value\":\"x@y\"},\"id\":\"9\","
                   "\"groups\":[{\"value\":\"1\"}],\"unknown\":1,\"" SCIM_URN_ENTERPRISE "\":{\"employeeNumber\":42}}",
                   0, NULL);
    json_t *n = scim_normalize(&scim_schema_user, in, err, sizeof(err));
    assert_non_null(n);
    assert_string_equal(json_string_value(json_object_get(n, "userName")), "a");
    assert_true(json_is_true(json_object_get(n, "active")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(n, "emails"), 0), "value")),
                        "x@y");
    assert_null(json_object_get(n, "id"));
    assert_null(json_object_get(n, "groups"));
    assert_null(json_object_get(n, "unknown"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(n, SCIM_URN_ENTERPRISE), "employeeNumber")),
                        "42");
    json_decref(n);
    json_decref(in);
    in = json_loads("{\"userName\":\"a\",\"active\":\"perhaps\"}", 0, NULL);
    assert_null(scim_normalize(&scim_schema_user, in, err, sizeof(err)));
    json_decref(in);
    in = json_loads("{\"userName\":\"a\\u0001\"}", 0, NULL);
    assert_null(scim_normalize(&scim_schema_user, in, err, sizeof(err)));
    json_decref(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grammar),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_compile),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_patch_engine),
        cmocka_unit_test(test_value_filter_match),
        cmocka_unit_test(test_normalize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
