/*
 * The configuration loader, driven through its public API: a full file round-trips to the expected struct,
 * every default, every limit both ways (one below, at, one above), every error kind with its exact
 * "FILE:LINE: key: " prefix, unknown keys, YAML syntax errors, file checks (missing, not a regular file,
 * private keys readable by group/others), duration parsing, route validation and the error cap. Each test runs
 * in its own mkdtemp directory holding the key files the YAML names.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, nftw (CMake defines it for the whole tree) */
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <ftw.h>
#include <sys/socket.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "gateway/config.h"

#ifndef PORTIER_SOURCE_DIR
#define PORTIER_SOURCE_DIR "."
#endif

/* ---- fixture: a directory with certificate and key files ---- */

typedef struct st_fixture_t {
    char dir[64];
    char conf[128];     /* DIR/portier.yaml: the name used in messages (need not exist) */
    char cert[128];     /* DIR/tls/cert.pem 0644 */
    char key[128];      /* DIR/tls/key.pem 0600 */
    char jwt[128];      /* DIR/keys/jwt.pem 0600 */
    char old_pub[128];  /* DIR/keys/old.pem 0644, a public key */
    char old_priv[128]; /* DIR/keys/old-private.pem 0600, a private key */
    gw_config_t c;
    gw_config_errors_t errs;
} fixture_t;

static void path_in(const fixture_t *fx, char *out, size_t size, const char *name)
{
    int n = snprintf(out, size, "%s/%s", fx->dir, name);
    assert_true(n > 0 && (size_t)n < size);
}

static void write_file(const char *path, const char *content, size_t len, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    char sub[128];
    assert_non_null(fx);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/portier-conf-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    path_in(fx, fx->conf, sizeof(fx->conf), "portier.yaml");
    path_in(fx, sub, sizeof(sub), "tls");
    assert_int_equal(mkdir(sub, 0700), 0);
    path_in(fx, sub, sizeof(sub), "keys");
    assert_int_equal(mkdir(sub, 0700), 0);
    path_in(fx, fx->cert, sizeof(fx->cert), "tls/cert.pem");
    path_in(fx, fx->key, sizeof(fx->key), "tls/key.pem");
    path_in(fx, fx->jwt, sizeof(fx->jwt), "keys/jwt.pem");
    path_in(fx, fx->old_pub, sizeof(fx->old_pub), "keys/old.pem");
    path_in(fx, fx->old_priv, sizeof(fx->old_priv), "keys/old-private.pem");
    static const char cert[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    static const char priv[] = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";
    static const char pub[] = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";
    write_file(fx->cert, cert, sizeof(cert) - 1, 0644);
    write_file(fx->key, priv, sizeof(priv) - 1, 0600);
    write_file(fx->jwt, priv, sizeof(priv) - 1, 0600);
    write_file(fx->old_pub, pub, sizeof(pub) - 1, 0644);
    write_file(fx->old_priv, priv, sizeof(priv) - 1, 0600);
    *state = fx;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    gw_config_dispose(&fx->c);
    gw_config_errors_dispose(&fx->errs);
    assert_int_equal(nftw(fx->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    free(fx);
    return 0;
}

/* ---- YAML texts ---- */

/* The smallest valid file; line numbers are relied upon below. */
static const char BASE[] = "server:\n"                                     /* 1 */
                           "  listen:\n"                                   /* 2 */
                           "    address: 127.0.0.1\n"                      /* 3 */
                           "    port: 8443\n"                              /* 4 */
                           "  tls:\n"                                      /* 5 */
                           "    certificate: tls/cert.pem\n"               /* 6 */
                           "    key: tls/key.pem\n"                        /* 7 */
                           "database:\n"                                   /* 8 */
                           "  conninfo: \"host=/run/pg dbname=portier\"\n" /* 9 */
                           "identity:\n"                                   /* 10 */
                           "  signing_key: keys/jwt.pem\n"                 /* 11 */
                           "routes:\n"                                     /* 12 */
                           "  - prefix: /\n"                               /* 13 */
                           "    backend: http://127.0.0.1:9000\n";         /* 14 */

/* BASE with the first occurrence of `from` replaced by `to` (malloc'd). */
static char *edit(const char *base, const char *from, const char *to)
{
    const char *at = strstr(base, from);
    if (at == NULL)
        fail_msg("\"%s\" not in the text", from);
    size_t head = (size_t)(at - base), flen = strlen(from), tlen = strlen(to), rest = strlen(at + flen);
    char *out = malloc(head + tlen + rest + 1);
    assert_non_null(out);
    memcpy(out, base, head);
    memcpy(out + head, to, tlen);
    memcpy(out + head + tlen, at + flen, rest + 1);
    return out;
}

/* 1-based line of the first occurrence of `needle`. */
static size_t line_with(const char *text, const char *needle)
{
    const char *at = strstr(text, needle);
    if (at == NULL)
        fail_msg("\"%s\" not in the text", needle);
    size_t line = 1;
    for (const char *p = text; p < at; ++p)
        line += *p == '\n';
    return line;
}

static void dump_errors(const gw_config_errors_t *errs)
{
    for (size_t i = 0; i != errs->count; ++i)
        print_message("  %s\n", errs->msgs[i]);
}

static void load_ok(fixture_t *fx, const char *yaml)
{
    gw_config_dispose(&fx->c);
    gw_config_errors_dispose(&fx->errs);
    if (gw_config_load_buffer(&fx->c, fx->conf, yaml, strlen(yaml), &fx->errs) != 0) {
        dump_errors(&fx->errs);
        fail_msg("the configuration was refused:\n%s", yaml);
    }
    assert_int_equal(fx->errs.count, 0);
}

static void load_fails(fixture_t *fx, const char *yaml)
{
    gw_config_dispose(&fx->c);
    gw_config_errors_dispose(&fx->errs);
    if (gw_config_load_buffer(&fx->c, fx->conf, yaml, strlen(yaml), &fx->errs) != -1)
        fail_msg("the configuration was accepted:\n%s", yaml);
    assert_true(fx->errs.count > 0);
    /* nothing half-loaded */
    assert_null(fx->c.path);
    assert_null(fx->c.routes);
    assert_null(fx->c.tls_key);
}

/* Asserts that some error begins "CONF:LINE: KEY: " and contains `part` (when not NULL). */
static void has_error_in(const gw_config_errors_t *errs, const char *file, size_t line, const char *key,
                         const char *part)
{
    char prefix[512];
    snprintf(prefix, sizeof(prefix), "%s:%zu: %s: ", file, line, key);
    for (size_t i = 0; i != errs->count; ++i)
        if (strncmp(errs->msgs[i], prefix, strlen(prefix)) == 0 && (part == NULL || strstr(errs->msgs[i], part)))
            return;
    dump_errors(errs);
    fail_msg("no error \"%s...%s\"", prefix, part != NULL ? part : "");
}

static void has_error(const fixture_t *fx, size_t line, const char *key, const char *part)
{
    has_error_in(&fx->errs, fx->conf, line, key, part);
}

/* Loads BASE with `from` replaced by `to` and expects an error on the line of `at` (in the edited text). */
static void expect_edit_error(fixture_t *fx, const char *from, const char *to, const char *at, const char *key,
                              const char *part)
{
    char *yaml = edit(BASE, from, to);
    load_fails(fx, yaml);
    has_error(fx, line_with(yaml, at), key, part);
    free(yaml);
}

static void expect_edit_ok(fixture_t *fx, const char *from, const char *to)
{
    char *yaml = edit(BASE, from, to);
    load_ok(fx, yaml);
    free(yaml);
}

static char *in_dir(const fixture_t *fx, const char *name)
{
    static char buf[4][256];
    static int next;
    char *out = buf[next++ % 4];
    snprintf(out, sizeof(buf[0]), "%s/%s", fx->dir, name);
    return out;
}

/* ---- the whole file ---- */

static void test_full_file_round_trips(void **state)
{
    fixture_t *fx = *state;
    char *yaml;
    assert_true(asprintf(&yaml,
                         "server:\n"
                         "  listen: { address: \"::\", port: 443 }\n"
                         "  http_redirect: { address: 127.0.0.1, port: 80 }\n"
                         "  public_url: https://sso.example.com:8443/\n"
                         "  threads: 3\n"
                         "  workers: 5\n"
                         "  tls: { certificate: %s, key: tls/key.pem }\n"
                         "  access_log: logs/access.log\n"
                         "  max_request_body: 512k\n"
                         "state_dir: state\n"
                         "templates_dir: /usr/share/portier/templates\n"
                         "database:\n"
                         "  conninfo: \"host=/run/portier-pg dbname=portier user=portier\"\n"
                         "  pool_size: 7\n"
                         "session:\n"
                         "  idle_timeout: 15m\n"
                         "  absolute_timeout: 8h\n"
                         "  cookie_name: __Host-sso\n"
                         "login:\n"
                         "  password_min_length: 12\n"
                         "  invite_ttl: 2h\n"
                         "identity:\n"
                         "  issuer: https://issuer.example.com\n"
                         "  jwt_lifetime: 2m\n"
                         "  signing_key: keys/jwt.pem\n"
                         "  previous_keys: [keys/old.pem, keys/old-private.pem]\n"
                         "  headers:\n"
                         "    user: X-User-Name\n"
                         "    email: X-User-Mail\n"
                         "    groups: X-User-Groups\n"
                         "    jwt: X-User-Jwt\n"
                         "routes:\n"
                         "  - prefix: /app\n"
                         "    backend: http://app.internal:8080/base\n"
                         "    name: app\n"
                         "    groups: [staff, admins]\n"
                         "    mfa: yes\n"
                         "  - { prefix: /, backend: \"http://[::1]:9000\" }\n",
                         fx->cert) > 0);
    load_ok(fx, yaml);
    free(yaml);
    gw_config_t *c = &fx->c;
    assert_string_equal(c->path, fx->conf);
    assert_string_equal(c->listen_address, "::");
    assert_int_equal(c->listen_port, 443);
    assert_string_equal(c->http_redirect_address, "127.0.0.1");
    assert_int_equal(c->http_redirect_port, 80);
    assert_string_equal(c->public_url, "https://sso.example.com:8443"); /* trailing '/' dropped */
    assert_int_equal(c->threads, 3);
    assert_int_equal(c->workers, 5);
    assert_string_equal(c->tls_certificate, fx->cert);
    assert_string_equal(c->tls_key, fx->key);
    assert_string_equal(c->access_log, in_dir(fx, "logs/access.log"));
    assert_int_equal(c->max_request_body, 512 * 1024);
    assert_string_equal(c->state_dir, in_dir(fx, "state"));
    assert_string_equal(c->templates_dir, "/usr/share/portier/templates");
    assert_string_equal(c->db_conninfo, "host=/run/portier-pg dbname=portier user=portier");
    assert_int_equal(c->db_pool_size, 7);
    assert_int_equal(c->session_idle_timeout, 900);
    assert_int_equal(c->session_absolute_timeout, 8 * 3600);
    assert_string_equal(c->session_cookie, "__Host-sso");
    assert_int_equal(c->password_min_length, 12);
    assert_int_equal(c->invite_ttl, 7200);
    assert_string_equal(c->jwt_issuer, "https://issuer.example.com");
    assert_int_equal(c->jwt_lifetime, 120);
    assert_string_equal(c->jwt_signing_key, fx->jwt);
    assert_non_null(c->jwt_previous_keys);
    assert_string_equal(c->jwt_previous_keys[0], fx->old_pub);
    assert_string_equal(c->jwt_previous_keys[1], fx->old_priv);
    assert_null(c->jwt_previous_keys[2]);
    assert_string_equal(c->hdr_user, "X-User-Name");
    assert_string_equal(c->hdr_email, "X-User-Mail");
    assert_string_equal(c->hdr_groups, "X-User-Groups");
    assert_string_equal(c->hdr_jwt, "X-User-Jwt");
    assert_int_equal(c->num_routes, 2);
    assert_string_equal(c->routes[0].prefix, "/app");
    assert_string_equal(c->routes[0].backend, "http://app.internal:8080/base");
    assert_string_equal(c->routes[0].name, "app");
    assert_int_equal(c->routes[0].num_groups, 2);
    assert_string_equal(c->routes[0].groups[0], "staff");
    assert_string_equal(c->routes[0].groups[1], "admins");
    assert_null(c->routes[0].groups[2]);
    assert_int_equal(c->routes[0].require_mfa, 1);
    assert_string_equal(c->routes[1].prefix, "/");
    assert_string_equal(c->routes[1].backend, "http://[::1]:9000");
    assert_string_equal(c->routes[1].name, "/");
    assert_int_equal(c->routes[1].num_groups, 0);
    assert_non_null(c->routes[1].groups);
    assert_null(c->routes[1].groups[0]);
    assert_int_equal(c->routes[1].require_mfa, 0);
}

static void test_defaults(void **state)
{
    fixture_t *fx = *state;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    load_ok(fx, BASE);
    gw_config_t *c = &fx->c;
    assert_string_equal(c->path, fx->conf);
    assert_string_equal(c->listen_address, "127.0.0.1");
    assert_int_equal(c->listen_port, 8443);
    assert_string_equal(c->http_redirect_address, "127.0.0.1"); /* = listen address */
    assert_int_equal(c->http_redirect_port, 0);
    assert_string_equal(c->public_url, "https://localhost:8443");
    assert_true(cores > 0);
    assert_int_equal(c->threads, (unsigned)cores);
    assert_int_equal(c->workers, (unsigned)cores);
    assert_null(c->access_log);
    assert_int_equal(c->max_request_body, 1048576);
    assert_string_equal(c->state_dir, fx->dir);
    assert_string_equal(c->templates_dir, PORTIER_SOURCE_DIR "/templates");
    assert_int_equal(c->session_idle_timeout, 1800);
    assert_int_equal(c->session_absolute_timeout, 43200);
    assert_string_equal(c->session_cookie, "__Host-portier");
    assert_int_equal(c->password_min_length, 15);
    assert_int_equal(c->invite_ttl, 86400);
    assert_string_equal(c->jwt_issuer, "https://localhost:8443");
    assert_int_equal(c->jwt_lifetime, 60);
    assert_non_null(c->jwt_previous_keys);
    assert_null(c->jwt_previous_keys[0]);
    assert_string_equal(c->hdr_user, "X-Portier-User");
    assert_string_equal(c->hdr_email, "X-Portier-Email");
    assert_string_equal(c->hdr_groups, "X-Portier-Groups");
    assert_string_equal(c->hdr_jwt, "X-Portier-Jwt-Assertion");
    assert_int_equal(c->num_routes, 1);
    assert_string_equal(c->routes[0].name, "/");
    assert_int_equal(c->routes[0].require_mfa, 0);

    /* listen address default, and the defaults that follow other keys */
    char *yaml = edit(BASE, "    address: 127.0.0.1\n    port: 8443\n", "    port: 9443\n");
    load_ok(fx, yaml);
    free(yaml);
    assert_string_equal(fx->c.listen_address, "0.0.0.0");
    assert_string_equal(fx->c.http_redirect_address, "0.0.0.0");
    assert_string_equal(fx->c.public_url, "https://localhost:9443");
    assert_string_equal(fx->c.jwt_issuer, "https://localhost:9443");
    expect_edit_ok(fx, "database:\n", "  public_url: https://a.example\ndatabase:\n");
    assert_string_equal(fx->c.jwt_issuer, "https://a.example");

    /* threads/workers 0 = number of cores */
    expect_edit_ok(fx, "  tls:\n", "  threads: 0\n  workers: 0\n  tls:\n");
    assert_int_equal(fx->c.threads, (unsigned)cores);
    assert_int_equal(fx->c.workers, (unsigned)cores);
}

/* ---- durations ---- */

static void test_parse_duration(void **state)
{
    static const struct {
        const char *in;
        uint64_t want;
    } good[] = {{"0", 0},
                {"90", 90},
                {"90s", 90},
                {"30m", 1800},
                {"12h", 43200},
                {"1d", 86400},
                {"0d", 0},
                {"007", 7},
                {"18446744073709551615", UINT64_MAX},
                {"18446744073709551615s", UINT64_MAX},
                {"213503982334601d", 213503982334601ull * 86400}};
    static const char *const bad[] = {"",
                                      "-1",
                                      "-1s",
                                      "+1",
                                      " 1",
                                      "1 ",
                                      "1 s",
                                      "s",
                                      "1x",
                                      "1S",
                                      "1M",
                                      "1ss",
                                      "1.5h",
                                      "1e3",
                                      "0x10",
                                      "1h30m",
                                      "m",
                                      "1d ",
                                      "\t1",
                                      "1w",
                                      "18446744073709551616",
                                      "213503982334602d",
                                      "307445734561825861m",
                                      "99999999999999999999999"};
    for (size_t i = 0; i != sizeof(good) / sizeof(good[0]); ++i) {
        uint64_t out = 12345;
        if (gw_parse_duration(good[i].in, &out) != 0)
            fail_msg("\"%s\" refused", good[i].in);
        if (out != good[i].want)
            fail_msg("\"%s\" = %llu", good[i].in, (unsigned long long)out);
    }
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        uint64_t out = 12345;
        if (gw_parse_duration(bad[i], &out) != -1)
            fail_msg("\"%s\" accepted as %llu", bad[i], (unsigned long long)out);
        assert_int_equal(out, 12345); /* untouched */
    }
    uint64_t out;
    assert_int_equal(gw_parse_duration(NULL, &out), -1);
}

/* ---- numeric limits, both ways ---- */

typedef struct st_limit_case_t {
    const char *from, *to; /* edit of BASE */
    const char *key;       /* NULL: must load */
    size_t field, size;    /* when it loads: offsetof and sizeof the field ... */
    uint64_t want;         /* ... and its value */
} limit_case_t;

#define FIELD(f) offsetof(gw_config_t, f), sizeof(((gw_config_t *)0)->f)
#define SRV      "  tls:\n"
#define TOP      "routes:\n"

static uint64_t field_value(const gw_config_t *c, size_t offset, size_t size)
{
    const char *p = (const char *)c + offset;
    switch (size) {
    case sizeof(uint16_t): return *(const uint16_t *)p;
    case sizeof(unsigned): return *(const unsigned *)p;
    case sizeof(uint64_t): return *(const uint64_t *)p;
    }
    fail_msg("bad field size %zu", size);
    return 0;
}

static void run_limit_cases(fixture_t *fx, const limit_case_t *cases, size_t n)
{
    for (size_t i = 0; i != n; ++i) {
        const limit_case_t *t = &cases[i];
        char *yaml = edit(BASE, t->from, t->to);
        if (t->key == NULL) {
            load_ok(fx, yaml);
            uint64_t got = field_value(&fx->c, t->field, t->size);
            if (got != t->want)
                fail_msg("case %zu (%s): got %llu, want %llu", i, t->to, (unsigned long long)got,
                         (unsigned long long)t->want);
        } else {
            const char *leaf = strrchr(t->key, '.') != NULL ? strrchr(t->key, '.') + 1 : t->key;
            char needle[64];
            snprintf(needle, sizeof(needle), "%s:", leaf);
            load_fails(fx, yaml);
            has_error(fx, line_with(yaml, needle), t->key, NULL);
        }
        free(yaml);
    }
}

static void test_numeric_limits(void **state)
{
    static const limit_case_t cases[] = {
        {"port: 8443", "port: 0", "server.listen.port"},
        {"port: 8443", "port: 1", NULL, FIELD(listen_port), 1},
        {"port: 8443", "port: 65535", NULL, FIELD(listen_port), 65535},
        {"port: 8443", "port: 65536", "server.listen.port"},
        {"port: 8443", "port: -1", "server.listen.port"},
        {"port: 8443", "port: 80x", "server.listen.port"},
        {"port: 8443", "port: 0x50", "server.listen.port"},
        {"port: 8443", "port: 99999999999999999999999", "server.listen.port"},
        {"port: 8443", "port: \"8444\"", NULL, FIELD(listen_port), 8444},
        {SRV, "  threads: 256\n" SRV, NULL, FIELD(threads), 256},
        {SRV, "  threads: 257\n" SRV, "server.threads"},
        {SRV, "  workers: 1\n" SRV, NULL, FIELD(workers), 1},
        {SRV, "  workers: 257\n" SRV, "server.workers"},
        {SRV, "  workers: -1\n" SRV, "server.workers"},
        {SRV, "  max_request_body: 1k\n" SRV, NULL, FIELD(max_request_body), 1024},
        {SRV, "  max_request_body: 1023\n" SRV, "server.max_request_body"},
        {SRV, "  max_request_body: 1048576\n" SRV, NULL, FIELD(max_request_body), 1048576},
        {SRV, "  max_request_body: 64m\n" SRV, NULL, FIELD(max_request_body), 64u << 20},
        {SRV, "  max_request_body: 64M\n" SRV, NULL, FIELD(max_request_body), 64u << 20},
        {SRV, "  max_request_body: 65536k\n" SRV, NULL, FIELD(max_request_body), 64u << 20},
        {SRV, "  max_request_body: 67108864\n" SRV, NULL, FIELD(max_request_body), 64u << 20},
        {SRV, "  max_request_body: 67108865\n" SRV, "server.max_request_body"},
        {SRV, "  max_request_body: 65m\n" SRV, "server.max_request_body"},
        {SRV, "  max_request_body: 1g\n" SRV, "server.max_request_body"},
        {SRV, "  max_request_body: 1.5m\n" SRV, "server.max_request_body"},
        {SRV, "  max_request_body: -1m\n" SRV, "server.max_request_body"},
        {SRV, "  max_request_body: 1 m\n" SRV, "server.max_request_body"},
        {SRV, "  max_request_body: 18014398509481984m\n" SRV, "server.max_request_body"},
        {TOP, "session:\n  idle_timeout: 0\n" TOP, "session.idle_timeout"},
        {TOP, "session:\n  idle_timeout: 1\n" TOP, NULL, FIELD(session_idle_timeout), 1},
        {TOP, "session:\n  idle_timeout: 90\n" TOP, NULL, FIELD(session_idle_timeout), 90},
        {TOP, "session:\n  idle_timeout: -5m\n" TOP, "session.idle_timeout"},
        {TOP, "session:\n  idle_timeout: 5x\n" TOP, "session.idle_timeout"},
        {TOP, "session:\n  idle_timeout: 7d\n  absolute_timeout: 30d\n" TOP, NULL, FIELD(session_idle_timeout), 604800},
        {TOP, "session:\n  idle_timeout: 604801\n  absolute_timeout: 30d\n" TOP, "session.idle_timeout"},
        {TOP, "session:\n  absolute_timeout: 30d\n" TOP, NULL, FIELD(session_absolute_timeout), 2592000},
        {TOP, "session:\n  absolute_timeout: 2592001\n" TOP, "session.absolute_timeout"},
        {TOP, "session:\n  idle_timeout: 2h\n  absolute_timeout: 7200\n" TOP, NULL, FIELD(session_idle_timeout), 7200},
        {TOP, "session:\n  idle_timeout: 2h\n  absolute_timeout: 7199\n" TOP, "session.idle_timeout"},
        {TOP, "login:\n  password_min_length: 7\n" TOP, "login.password_min_length"},
        {TOP, "login:\n  password_min_length: 8\n" TOP, NULL, FIELD(password_min_length), 8},
        {TOP, "login:\n  password_min_length: 128\n" TOP, NULL, FIELD(password_min_length), 128},
        {TOP, "login:\n  password_min_length: 129\n" TOP, "login.password_min_length"},
        {TOP, "login:\n  invite_ttl: 59\n" TOP, "login.invite_ttl"},
        {TOP, "login:\n  invite_ttl: 1m\n" TOP, NULL, FIELD(invite_ttl), 60},
        {TOP, "login:\n  invite_ttl: 1d\n" TOP, NULL, FIELD(invite_ttl), 86400},
        {TOP, "login:\n  invite_ttl: 24h\n" TOP, NULL, FIELD(invite_ttl), 86400},
        {TOP, "login:\n  invite_ttl: 86401\n" TOP, "login.invite_ttl"},
        {TOP, "login:\n  invite_ttl: 25h\n" TOP, "login.invite_ttl"},
        {TOP, "login:\n  invite_ttl: 2d\n" TOP, "login.invite_ttl"},
        {"  signing_key", "  jwt_lifetime: 0\n  signing_key", "identity.jwt_lifetime"},
        {"  signing_key", "  jwt_lifetime: 1\n  signing_key", NULL, FIELD(jwt_lifetime), 1},
        {"  signing_key", "  jwt_lifetime: 300\n  signing_key", NULL, FIELD(jwt_lifetime), 300},
        {"  signing_key", "  jwt_lifetime: 5m\n  signing_key", NULL, FIELD(jwt_lifetime), 300},
        {"  signing_key", "  jwt_lifetime: 301\n  signing_key", "identity.jwt_lifetime"},
        {"  signing_key", "  jwt_lifetime: 6m\n  signing_key", "identity.jwt_lifetime"},
        {"  signing_key", "  jwt_lifetime: 18446744073709551615s\n  signing_key", "identity.jwt_lifetime"},
        {"  conninfo", "  pool_size: 0\n  conninfo", "database.pool_size"},
        {"  conninfo", "  pool_size: 1\n  conninfo", NULL, FIELD(db_pool_size), 1},
    };
    run_limit_cases(*state, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_range_message(void **state)
{
    fixture_t *fx = *state;
    expect_edit_error(fx, "  signing_key", "  jwt_lifetime: 10m\n  signing_key", "jwt_lifetime",
                      "identity.jwt_lifetime", "10m is out of range (1..300 seconds)");
    expect_edit_error(fx, "port: 8443", "port: http", "port:", "server.listen.port",
                      "\"http\" is not a valid port number");
    expect_edit_error(fx, TOP, "session:\n  idle_timeout: 2h\n  absolute_timeout: 1h\n" TOP, "idle_timeout",
                      "session.idle_timeout", "exceeds session.absolute_timeout");
    /* the default idle timeout (30m) against a shorter absolute one: blamed on the session mapping */
    expect_edit_error(fx, TOP, "session:\n  absolute_timeout: 29m\n" TOP, "session:", "session.idle_timeout",
                      "1800 s exceeds session.absolute_timeout (1740 s)");
}

/* ---- string-valued keys ---- */

typedef struct st_string_case_t {
    const char *from, *to;
    const char *key;  /* NULL: must load */
    size_t field;     /* when it loads: offsetof the char * field ... */
    const char *want; /* ... and its value */
} string_case_t;

#define SFIELD(f) offsetof(gw_config_t, f)
#define HDR       "  signing_key"

static void test_string_keys(void **state)
{
    fixture_t *fx = *state;
    static const string_case_t cases[] = {
        /* server.public_url: https://host[:port] only */
        {SRV, "  public_url: https://sso.example.com\n" SRV, NULL, SFIELD(public_url), "https://sso.example.com"},
        {SRV, "  public_url: https://sso.example.com/\n" SRV, NULL, SFIELD(public_url), "https://sso.example.com"},
        {SRV, "  public_url: https://127.0.0.1:1\n" SRV, NULL, SFIELD(public_url), "https://127.0.0.1:1"},
        {SRV, "  public_url: https://h:65535\n" SRV, NULL, SFIELD(public_url), "https://h:65535"},
        {SRV, "  public_url: \"https://[::1]:8443\"\n" SRV, NULL, SFIELD(public_url), "https://[::1]:8443"},
        {SRV, "  public_url: http://sso.example.com\n" SRV, "server.public_url"},
        {SRV, "  public_url: sso.example.com\n" SRV, "server.public_url"},
        {SRV, "  public_url: https://\n" SRV, "server.public_url"},
        {SRV, "  public_url: https:///\n" SRV, "server.public_url"},
        {SRV, "  public_url: https://sso.example.com/login\n" SRV, "server.public_url"},
        {SRV, "  public_url: https://sso.example.com//\n" SRV, "server.public_url"},
        {SRV, "  public_url: https://sso.example.com?x=1\n" SRV, "server.public_url"},
        {SRV, "  public_url: https://sso.example.com#x\n" SRV, "server.public_url"},
        {SRV, "  public_url: https://user@sso.example.com\n" SRV, "server.public_url"},
        {SRV, "  public_url: https://h:0\n" SRV, "server.public_url"},
        {SRV, "  public_url: https://h:65536\n" SRV, "server.public_url"},
        {SRV, "  public_url: \"https://h:\"\n" SRV, "server.public_url"},
        {SRV, "  public_url: https://h:12x\n" SRV, "server.public_url"},
        {SRV, "  public_url: \"https://[::g]:1\"\n" SRV, "server.public_url"},
        {SRV, "  public_url: https://-h\n" SRV, "server.public_url"},
        {SRV, "  public_url: https://h h\n" SRV, "server.public_url"},
        /* listen addresses: numeric */
        {"address: 127.0.0.1", "address: \"::1\"", NULL, SFIELD(listen_address), "::1"},
        {"address: 127.0.0.1", "address: 0.0.0.0", NULL, SFIELD(listen_address), "0.0.0.0"},
        {"address: 127.0.0.1", "address: localhost", "server.listen.address"},
        {"address: 127.0.0.1", "address: 127.0.0.256", "server.listen.address"},
        {"address: 127.0.0.1", "address: \"\"", "server.listen.address"},
        {"address: 127.0.0.1", "address:", "server.listen.address"},
        /* session.cookie_name */
        {TOP, "session:\n  cookie_name: __Host-x\n" TOP, NULL, SFIELD(session_cookie), "__Host-x"},
        {TOP, "session:\n  cookie_name: portier\n" TOP, "session.cookie_name"},
        {TOP, "session:\n  cookie_name: __Secure-portier\n" TOP, "session.cookie_name"},
        {TOP, "session:\n  cookie_name: __host-portier\n" TOP, "session.cookie_name"},
        {TOP, "session:\n  cookie_name: __Host-\n" TOP, "session.cookie_name"},
        {TOP, "session:\n  cookie_name: \"__Host-a b\"\n" TOP, "session.cookie_name"},
        {TOP, "session:\n  cookie_name: \"__Host-a;b\"\n" TOP, "session.cookie_name"},
        {TOP, "session:\n  cookie_name: \"__Host-a=b\"\n" TOP, "session.cookie_name"},
        {TOP, "session:\n  cookie_name: __Host-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n" TOP,
         "session.cookie_name"},
        /* identity.headers.* */
        {HDR, "  headers: { user: X-Remote-User }\n" HDR, NULL, SFIELD(hdr_user), "X-Remote-User"},
        {HDR, "  headers: { email: x_mail }\n" HDR, NULL, SFIELD(hdr_email), "x_mail"},
        {HDR, "  headers: { groups: \"X Groups\" }\n" HDR, "identity.headers.groups"},
        {HDR, "  headers: { jwt: \"X-Jwt:\" }\n" HDR, "identity.headers.jwt"},
        {HDR, "  headers: { jwt: \"X-J\\u00e9\" }\n" HDR, "identity.headers.jwt"},
        {HDR, "  headers: { user: \"\" }\n" HDR, "identity.headers.user"},
        {HDR, "  headers: { user: Cookie }\n" HDR, "identity.headers.user"},
        {HDR, "  headers: { user: x-forwarded-for }\n" HDR, "identity.headers.user"},
        {HDR, "  headers: { email: Authorization }\n" HDR, "identity.headers.email"},
        {HDR, "  headers: { email: X-Portier-User }\n" HDR, "identity.headers.email"}, /* = default user header */
        {HDR, "  headers: { jwt: x-portier-groups }\n" HDR, "identity.headers.jwt"},
        /* plain strings */
        {HDR, "  issuer: urn:example:sso\n" HDR, NULL, SFIELD(jwt_issuer), "urn:example:sso"},
        {HDR, "  issuer: \"a\\nb\"\n" HDR, "identity.issuer"},
        {"  conninfo: \"host=/run/pg dbname=portier\"", "  conninfo: \"host=x\\0password=y\"", "database.conninfo"},
        {"  conninfo: \"host=/run/pg dbname=portier\"", "  conninfo: \"\"", "database.conninfo"},
        {"  conninfo: \"host=/run/pg dbname=portier\"", "  conninfo: ~", "database.conninfo"},
        {"  conninfo: \"host=/run/pg dbname=portier\"", "  conninfo: \"null\"", NULL, SFIELD(db_conninfo), "null"},
        /* paths */
        {SRV, "  access_log: \"-\"\n" SRV, NULL, SFIELD(access_log), "-"},
        {SRV, "  access_log: /var/log/portier/access.log\n" SRV, NULL, SFIELD(access_log),
         "/var/log/portier/access.log"},
        {TOP, "state_dir: /var/lib/portier\n" TOP, NULL, SFIELD(state_dir), "/var/lib/portier"},
        {TOP, "templates_dir: \"\"\n" TOP, "templates_dir"},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        const string_case_t *t = &cases[i];
        char *yaml = edit(BASE, t->from, t->to);
        if (t->key == NULL) {
            load_ok(fx, yaml);
            const char *got = *(char *const *)((const char *)&fx->c + t->field);
            if (got == NULL || strcmp(got, t->want) != 0)
                fail_msg("case %zu (%s): got \"%s\", want \"%s\"", i, t->to, got ? got : "(null)", t->want);
        } else {
            const char *leaf = strrchr(t->key, '.') != NULL ? strrchr(t->key, '.') + 1 : t->key;
            char needle[64];
            snprintf(needle, sizeof(needle), "%s:", leaf);
            load_fails(fx, yaml);
            has_error(fx, line_with(yaml, needle), t->key, NULL);
        }
        free(yaml);
    }
    expect_edit_error(fx, SRV, "  public_url: http://x\n" SRV, "public_url", "server.public_url",
                      "must be https://host[:port] without a path");
    expect_edit_error(fx, TOP, "session:\n  cookie_name: sid\n" TOP, "cookie_name", "session.cookie_name",
                      "must start with \"__Host-\"");
    expect_edit_error(fx, HDR, "  headers: { jwt: \"X Jwt\" }\n" HDR, "headers", "identity.headers.jwt",
                      "not a valid HTTP header name");
    expect_edit_error(fx, HDR, "  headers: { user: a, email: A }\n" HDR, "headers", "identity.headers.email",
                      "\"A\" is also identity.headers.user");
    expect_edit_error(fx, "  conninfo: \"host=/run/pg dbname=portier\"", "  conninfo: \"a\\0b\"", "conninfo",
                      "database.conninfo", "contains a NUL character");
}

/* ---- unknown keys, structure, duplicates ---- */

static void test_unknown_keys(void **state)
{
    fixture_t *fx = *state;
    expect_edit_error(fx, "  listen:\n", "  lisen: 1\n  listen:\n", "lisen", "server.lisen", "unknown key");
    expect_edit_error(fx, TOP, "foo: bar\n" TOP, "foo", "foo", "unknown key");
    expect_edit_error(fx, "    key: tls/key.pem\n", "    key: tls/key.pem\n    keyy: x\n", "keyy", "server.tls.keyy",
                      "unknown key");
    expect_edit_error(fx, HDR, "  headers: { usr: X-U }\n" HDR, "usr", "identity.headers.usr", "unknown key");
    expect_edit_error(fx, "    backend:", "    prefx: /x\n    backend:", "prefx", "routes[0].prefx", "unknown key");
    expect_edit_error(fx, TOP, "server.listen.port: 1\n" TOP, "server.listen.port: 1", "server.listen.port",
                      "unknown key"); /* a dotted key is not a path */
    expect_edit_error(fx, TOP, "[a]: 1\n" TOP, "[a]", "(top level)", "keys must be plain names");
    expect_edit_error(fx, "    port: 8443\n", "    port: 8443\n    x.y: 1\n", "x.y", "server.listen.x.y",
                      "unknown key");
    /* a section whose keys are all commented out is empty, not an error */
    expect_edit_ok(fx, TOP, "session:\n  # idle_timeout: 5m\nlogin: ~\n" TOP);
    assert_int_equal(fx->c.session_idle_timeout, 1800);

    /* exact text, as an operator reads it */
    char *yaml = edit(BASE, "  listen:\n", "  lisen: 1\n  listen:\n");
    load_fails(fx, yaml);
    char want[256];
    snprintf(want, sizeof(want), "%s:2: server.lisen: unknown key", fx->conf);
    assert_string_equal(fx->errs.msgs[0], want);
    assert_int_equal(fx->errs.count, 1);
    free(yaml);
}

static void test_wrong_node_types(void **state)
{
    fixture_t *fx = *state;
    expect_edit_error(fx, "    port: 8443", "    port: [8443]", "port:", "server.listen.port",
                      "expected a single value, not a list");
    expect_edit_error(fx, "    port: 8443", "    port: { a: 1 }", "port:", "server.listen.port",
                      "expected a single value, not a mapping");
    expect_edit_error(fx, "database:\n  conninfo: \"host=/run/pg dbname=portier\"\n", "database: 5\n", "database",
                      "database", "expected a mapping");
    expect_edit_error(fx, HDR, "  previous_keys: keys/old.pem\n" HDR, "previous_keys", "identity.previous_keys",
                      "expected a list of file names");
    char *yaml = edit(BASE, "server:\n", "- a\n- b\nserver:\n");
    load_fails(fx, yaml); /* a syntax error (a sequence then a mapping) */
    free(yaml);
    const char *list = "- 1\n- 2\n";
    load_fails(fx, list);
    has_error(fx, 1, "(top level)", "expected a mapping");
}

static void test_duplicate_keys(void **state)
{
    fixture_t *fx = *state;
    expect_edit_error(fx, "    port: 8443\n", "    port: 8443\n    port: 8444\n", "port: 8444", "server.listen.port",
                      "duplicate key (first set on line 4)");
    char *dup = edit(BASE, TOP, "database:\n  pool_size: 2\n" TOP);
    load_fails(fx, dup);
    has_error(fx, 12, "database", "duplicate key (first set on line 8)");
    free(dup);
    char *yaml;
    assert_true(asprintf(&yaml, "%sroutes:\n  - { prefix: /b, backend: \"http://h:1\" }\n", BASE) > 0);
    load_fails(fx, yaml);
    has_error(fx, 15, "routes", "duplicate key (first set on line 12)");
    free(yaml);
    expect_edit_error(fx, "    backend: http://127.0.0.1:9000\n",
                      "    backend: http://127.0.0.1:9000\n    backend: http://127.0.0.1:9001\n", "9001",
                      "routes[0].backend", "duplicate key (first set on line 14)");
    expect_edit_error(fx, HDR, "  previous_keys: [keys/old.pem]\n  previous_keys: []\n" HDR, "previous_keys: []",
                      "identity.previous_keys", "duplicate key");
}

static void test_required_keys(void **state)
{
    fixture_t *fx = *state;
    expect_edit_error(fx, "    certificate: tls/cert.pem\n", "", "  tls:", "server.tls.certificate", "is required");
    expect_edit_error(fx, "    key: tls/key.pem\n", "", "  tls:", "server.tls.key", "is required");
    expect_edit_error(fx, "  conninfo: \"host=/run/pg dbname=portier\"\n", "  pool_size: 2\n",
                      "database:", "database.conninfo", "is required");
    expect_edit_error(fx, "  signing_key: keys/jwt.pem\n", "  jwt_lifetime: 30\n", "identity:", "identity.signing_key",
                      "is required");
    /* no enclosing section at all: line 1 */
    char *yaml = edit(BASE, "identity:\n  signing_key: keys/jwt.pem\n", "");
    load_fails(fx, yaml);
    has_error(fx, 1, "identity.signing_key", "is required");
    free(yaml);
    yaml = edit(BASE, "  tls:\n    certificate: tls/cert.pem\n    key: tls/key.pem\n", "");
    load_fails(fx, yaml);
    has_error(fx, 1, "server.tls.certificate", "is required");
    has_error(fx, 1, "server.tls.key", "is required");
    assert_int_equal(fx->errs.count, 2);
    free(yaml);
    /* routes: absent, empty list, null */
    yaml = edit(BASE, "routes:\n  - prefix: /\n    backend: http://127.0.0.1:9000\n", "");
    load_fails(fx, yaml);
    has_error(fx, 1, "routes", "at least one route is required");
    free(yaml);
    expect_edit_error(fx, "routes:\n  - prefix: /\n    backend: http://127.0.0.1:9000\n", "routes: []\n", "routes",
                      "routes", "at least one route is required");
    expect_edit_error(fx, "routes:\n  - prefix: /\n    backend: http://127.0.0.1:9000\n", "routes:\n", "routes",
                      "routes", "at least one route is required");
    /* an empty file */
    load_fails(fx, "");
    has_error(fx, 1, "(file)", "the file is empty");
    load_fails(fx, "# nothing but a comment\n");
    has_error(fx, 1, "(file)", "the file is empty");
}

static void test_errors_are_collected(void **state)
{
    fixture_t *fx = *state;
    char *a = edit(BASE, "port: 8443", "port: 0");
    char *b = edit(a, "  - prefix: /\n", "  - prefix: app\n");
    char *yaml = edit(b, TOP, "login: { password_min_length: 200 }\nbogus: 1\n" TOP);
    load_fails(fx, yaml);
    has_error(fx, 4, "server.listen.port", "out of range");
    has_error(fx, 12, "login.password_min_length", "out of range");
    has_error(fx, 13, "bogus", "unknown key");
    has_error(fx, 15, "routes[0].prefix", "must start with '/'");
    assert_int_equal(fx->errs.count, 4);
    free(a);
    free(b);
    free(yaml);
}

static void test_error_cap(void **state)
{
    fixture_t *fx = *state;
    size_t cap = 100 * 16 + sizeof(BASE);
    char *yaml = malloc(cap), *p = yaml;
    assert_non_null(yaml);
    for (int i = 0; i != 100; ++i)
        p += snprintf(p, 16, "unknown%d: 1\n", i);
    memcpy(p, BASE, sizeof(BASE));
    load_fails(fx, yaml);
    assert_int_equal(fx->errs.count, GW_MAX_ERRORS);
    has_error(fx, 1, "unknown0", "unknown key");
    has_error(fx, GW_MAX_ERRORS, "unknown63", "unknown key");
    free(yaml);

    /* errors are appended to what the caller already holds; a success adds nothing */
    gw_config_errors_dispose(&fx->errs);
    fx->errs.msgs[0] = strdup("earlier");
    fx->errs.count = 1;
    assert_int_equal(gw_config_load_buffer(&fx->c, fx->conf, BASE, strlen(BASE), &fx->errs), 0);
    assert_int_equal(fx->errs.count, 1);
    gw_config_dispose(&fx->c);
    assert_int_equal(gw_config_load_buffer(&fx->c, fx->conf, "x: 1\n", 5, &fx->errs), -1);
    assert_string_equal(fx->errs.msgs[0], "earlier");
    has_error(fx, 1, "x", "unknown key");
}

static void test_yaml_syntax_errors(void **state)
{
    fixture_t *fx = *state;
    load_fails(fx, "server:\n  listen: [1, 2\n");
    has_error(fx, 3, "yaml", "did not find expected ',' or ']' (while parsing a flow sequence on line 2)");
    assert_int_equal(fx->errs.count, 1);
    load_fails(fx, "server:\n  listen:\n\tport: 1\n");
    has_error(fx, 3, "yaml", NULL);
    load_fails(fx, "server:\n  listen: 1\n tls: 2\n");
    has_error(fx, 3, "yaml", NULL);
    load_fails(fx, "a: b: c\n");
    has_error(fx, 1, "yaml", "mapping values are not allowed");
    load_fails(fx, "a: 1\nb: \"\xff\xfe\"\n"); /* invalid UTF-8: reported by offset, turned into a line */
    has_error(fx, 2, "yaml", "UTF-8");
    load_fails(fx, "a: *nowhere\n");
    has_error(fx, 1, "yaml", "undefined alias");
    load_fails(fx, "a: 'open\n\n");
    has_error(fx, 3, "yaml", "end of stream");

    /* a second document is refused, at its line */
    char *yaml;
    assert_true(asprintf(&yaml, "%s---\nserver: {}\n", BASE) > 0);
    load_fails(fx, yaml);
    has_error(fx, 16, "yaml", "only one YAML document is allowed");
    free(yaml);
    assert_true(asprintf(&yaml, "%s---\n[\n", BASE) > 0);
    load_fails(fx, yaml);
    has_error(fx, 17, "yaml", NULL);
    free(yaml);
    /* an explicit end of document alone is fine */
    assert_true(asprintf(&yaml, "---\n%s...\n", BASE) > 0);
    load_ok(fx, yaml);
    free(yaml);
}

/* ---- files ---- */

static void test_key_file_permissions(void **state)
{
    fixture_t *fx = *state;
    char want[512];
    static const mode_t refused[] = {0644, 0640, 0604, 0660, 0606, 0610, 0601, 0700 | 0040};
    static const mode_t allowed[] = {0600, 0400, 0700};
    for (int which = 0; which != 2; ++which) {
        const char *file = which == 0 ? fx->key : fx->jwt,
                   *key = which == 0 ? "server.tls.key" : "identity.signing_key";
        size_t line = which == 0 ? 7 : 11;
        for (size_t i = 0; i != sizeof(refused) / sizeof(refused[0]); ++i) {
            assert_int_equal(chmod(file, refused[i]), 0);
            load_fails(fx, BASE);
            snprintf(want, sizeof(want), "%s is accessible by group/others (chmod 600)", file);
            has_error(fx, line, key, want);
            /* the exact message of the brief */
            snprintf(want, sizeof(want), "%s:%zu: %s: %s is accessible by group/others (chmod 600)", fx->conf, line,
                     key, file);
            assert_string_equal(fx->errs.msgs[0], want);
        }
        for (size_t i = 0; i != sizeof(allowed) / sizeof(allowed[0]); ++i) {
            assert_int_equal(chmod(file, allowed[i]), 0);
            load_ok(fx, BASE);
        }
        assert_int_equal(chmod(file, 0600), 0);
    }
    /* the certificate may be world-readable */
    assert_int_equal(chmod(fx->cert, 0644), 0);
    load_ok(fx, BASE);
    /* previous keys: a public key may be 0644, a private one may not */
    expect_edit_ok(fx, HDR, "  previous_keys: [keys/old.pem, keys/old-private.pem]\n" HDR);
    assert_int_equal(chmod(fx->old_priv, 0644), 0);
    snprintf(want, sizeof(want), "%s is accessible by group/others", fx->old_priv);
    expect_edit_error(fx, HDR, "  previous_keys:\n    - keys/old.pem\n    - keys/old-private.pem\n" HDR, "old-private",
                      "identity.previous_keys", want);
    assert_int_equal(fx->errs.count, 1);
}

static void test_missing_and_odd_files(void **state)
{
    fixture_t *fx = *state;
    char want[512];
    snprintf(want, sizeof(want), "%s: No such file or directory", in_dir(fx, "tls/nope.pem"));
    expect_edit_error(fx, "certificate: tls/cert.pem", "certificate: tls/nope.pem", "certificate",
                      "server.tls.certificate", want);
    snprintf(want, sizeof(want), "%s is not a regular file", in_dir(fx, "tls"));
    expect_edit_error(fx, "key: tls/key.pem", "key: tls", "key: tls", "server.tls.key", want);
    expect_edit_error(fx, "signing_key: keys/jwt.pem", "signing_key: /nonexistent/jwt.pem", "signing_key",
                      "identity.signing_key", "/nonexistent/jwt.pem: No such file or directory");
    expect_edit_error(fx, HDR, "  previous_keys: [keys/old.pem, keys/gone.pem]\n" HDR, "previous_keys",
                      "identity.previous_keys", "gone.pem: No such file");
    expect_edit_error(fx, HDR, "  previous_keys: [\"\"]\n" HDR, "previous_keys", "identity.previous_keys",
                      "empty entry in the list of file names");
    expect_edit_error(fx, HDR, "  previous_keys: [[keys/old.pem]]\n" HDR, "previous_keys", "identity.previous_keys",
                      "expected a single value");
    /* empty or null list of previous keys */
    expect_edit_ok(fx, HDR, "  previous_keys:\n" HDR);
    assert_null(fx->c.jwt_previous_keys[0]);
    expect_edit_ok(fx, HDR, "  previous_keys: []\n" HDR);
    assert_null(fx->c.jwt_previous_keys[0]);
    /* more than 64 previous keys */
    char list[64 * 16 + 64] = "  previous_keys: [", *p = list + strlen(list);
    for (int i = 0; i != 65; ++i)
        p += snprintf(p, 16, "%skeys/old.pem", i != 0 ? "," : "");
    snprintf(p, 32, "]\n" HDR);
    expect_edit_error(fx, HDR, list, "previous_keys", "identity.previous_keys", "too many entries");
}

static void test_paths_are_resolved(void **state)
{
    fixture_t *fx = *state;
    /* relative to the file's directory; absolute kept */
    char *yaml;
    assert_true(asprintf(&yaml, "state_dir: ./state\ntemplates_dir: tpl\n%s", BASE) > 0);
    char *y2 = edit(yaml, "certificate: tls/cert.pem", "certificate: ./tls/../tls/cert.pem");
    free(yaml);
    char line[300];
    snprintf(line, sizeof(line), "key: %s", fx->key);
    yaml = edit(y2, "key: tls/key.pem", line);
    free(y2);
    load_ok(fx, yaml);
    free(yaml);
    assert_string_equal(fx->c.state_dir, in_dir(fx, "./state"));
    assert_string_equal(fx->c.templates_dir, in_dir(fx, "tpl"));
    assert_string_equal(fx->c.tls_certificate, in_dir(fx, "./tls/../tls/cert.pem"));
    assert_string_equal(fx->c.tls_key, fx->key);
    assert_string_equal(fx->c.jwt_signing_key, fx->jwt);
    assert_int_equal(fx->c.tls_certificate[0], '/');

    /* a relative config path is made absolute against the working directory */
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    gw_config_dispose(&fx->c);
    assert_int_equal(chdir(fx->dir), 0);
    int rc = gw_config_load_buffer(&fx->c, "./portier.yaml", BASE, strlen(BASE), &fx->errs);
    assert_int_equal(chdir(cwd), 0);
    if (rc != 0)
        dump_errors(&fx->errs);
    assert_int_equal(rc, 0);
    char real[PATH_MAX];
    assert_non_null(realpath(fx->dir, real));
    char want[PATH_MAX + 32];
    snprintf(want, sizeof(want), "%s/portier.yaml", real);
    assert_string_equal(fx->c.path, want);
    snprintf(want, sizeof(want), "%s/tls/cert.pem", real);
    assert_string_equal(fx->c.tls_certificate, want);
    assert_string_equal(fx->c.state_dir, real);
}

static void test_load_from_file(void **state)
{
    fixture_t *fx = *state;
    write_file(fx->conf, BASE, strlen(BASE), 0600);
    assert_int_equal(gw_config_load(&fx->c, fx->conf, &fx->errs), 0);
    assert_int_equal(fx->c.num_routes, 1);
    assert_string_equal(fx->c.path, fx->conf);
    assert_string_equal(fx->c.tls_key, fx->key);
    gw_config_dispose(&fx->c);

    /* errors from a file carry its name and lines */
    char *yaml = edit(BASE, "port: 8443", "port: 70000");
    write_file(fx->conf, yaml, strlen(yaml), 0600);
    free(yaml);
    assert_int_equal(gw_config_load(&fx->c, fx->conf, &fx->errs), -1);
    has_error(fx, 4, "server.listen.port", "70000 is out of range (1..65535)");
    gw_config_errors_dispose(&fx->errs);

    /* missing, a directory, too large */
    char *missing = in_dir(fx, "missing.yaml");
    assert_int_equal(gw_config_load(&fx->c, missing, &fx->errs), -1);
    has_error_in(&fx->errs, missing, 1, "(file)", "cannot open: No such file or directory");
    assert_int_equal(gw_config_load(&fx->c, fx->dir, &fx->errs), -1);
    has_error_in(&fx->errs, fx->dir, 1, "(file)", "not a regular file");
    size_t big = 1024 * 1024 + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, '#', big);
    write_file(fx->conf, text, big, 0600);
    free(text);
    assert_int_equal(gw_config_load(&fx->c, fx->conf, &fx->errs), -1);
    has_error_in(&fx->errs, fx->conf, 1, "(file)", "larger than 1 MiB");
    assert_int_equal(fx->errs.count, 3);
    assert_null(fx->c.path);
}

/* ---- routes ---- */

static void test_routes(void **state)
{
    fixture_t *fx = *state;
    static const char routes[] = "routes:\n"
                                 "  - prefix: /admin\n"
                                 "    backend: http://10.0.0.1:8080/admin-app/\n"
                                 "    groups: &g [admins, ops.team, a_b-c@x]\n"
                                 "    mfa: TRUE\n"
                                 "  - prefix: /ops\n"
                                 "    backend: http://ops.internal:1\n"
                                 "    groups: *g\n"
                                 "    mfa: no\n"
                                 "  - prefix: /x:y@z;a=b\n"
                                 "    backend: http://h:65534\n"
                                 "    groups: ~\n"
                                 "    mfa: False\n"
                                 "    name: X route\n"
                                 "  - prefix: /\n"
                                 "    backend: http://127.0.0.1:9000\n";
    char *yaml = edit(BASE, "routes:\n  - prefix: /\n    backend: http://127.0.0.1:9000\n", routes);
    load_ok(fx, yaml);
    free(yaml);
    gw_config_t *c = &fx->c;
    assert_int_equal(c->num_routes, 4);
    assert_string_equal(c->routes[0].prefix, "/admin");
    assert_string_equal(c->routes[0].name, "/admin");
    assert_string_equal(c->routes[0].backend, "http://10.0.0.1:8080/admin-app/");
    assert_int_equal(c->routes[0].num_groups, 3);
    assert_string_equal(c->routes[0].groups[2], "a_b-c@x");
    assert_int_equal(c->routes[0].require_mfa, 1);
    assert_int_equal(c->routes[1].num_groups, 3); /* through the alias */
    assert_string_equal(c->routes[1].groups[0], "admins");
    assert_int_equal(c->routes[1].require_mfa, 0);
    assert_string_equal(c->routes[2].name, "X route");
    assert_int_equal(c->routes[2].num_groups, 0);
    assert_null(c->routes[2].groups[0]);
    assert_string_equal(c->routes[3].prefix, "/");
}

static void test_route_prefix_rules(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *prefix, *problem;
    } bad[] = {{"app", "must start with '/'"},
               {"\"\"", "must start with '/'"},
               {"/app/", "must not end with '/'"},
               {"/a/b/", "must not end with '/'"},
               {"//", "\"//\""},
               {"/a//b", "\"//\""},
               {"/a/../b", "\"..\""},
               {"/..", "\"..\""},
               {"/a..b", "\"..\""},
               {"\"/a?x=1\"", "query"},
               {"\"/a?\"", "query"},
               {"\"/a#x\"", "fragment"},
               {"/a%2e", "percent"},
               {"\"/a b\"", "blanks"},
               {"\"/a\\\\b\"", "may only contain"},
               {"\"/a\\tb\"", "may only contain"},
               {"\"/\\u00e9\"", "may only contain"},
               {"[/a]", "expected a single value"}};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        char to[128];
        snprintf(to, sizeof(to), "  - prefix: %s\n", bad[i].prefix);
        expect_edit_error(fx, "  - prefix: /\n", to, "prefix", "routes[0].prefix", bad[i].problem);
    }
    static const char *const good[] = {"/", "/a", "/a/b", "/a.b", "/A-Z_0.9~", "/a:b@c!$&'()*+,;="};
    for (size_t i = 0; i != sizeof(good) / sizeof(good[0]); ++i) {
        char to[128];
        snprintf(to, sizeof(to), "  - prefix: \"%s\"\n", good[i]);
        expect_edit_ok(fx, "  - prefix: /\n", to);
        assert_string_equal(fx->c.routes[0].prefix, good[i]);
    }
    char to[700] = "  - prefix: /";
    memset(to + strlen(to), 'a', 520); /* to[] stays NUL-terminated: 13 + 520 + "\n" < 700 */
    to[strlen(to)] = '\n';
    expect_edit_error(fx, "  - prefix: /\n", to, "prefix", "routes[0].prefix", "too long");
}

static void test_route_backend_rules(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *backend, *problem;
    } bad[] = {{"https://127.0.0.1:9000", "https backends are not supported"},
               {"HTTPS://127.0.0.1:9000", "https backends are not supported"},
               {"ftp://127.0.0.1:21", "must be http://host:port[/path]"},
               {"127.0.0.1:9000", "must be http://host:port[/path]"},
               {"unix:/run/app.sock", "must be http://host:port[/path]"},
               {"http://127.0.0.1", "a port 1-65534"},
               {"http://127.0.0.1/", "a port 1-65534"},
               {"\"http://127.0.0.1:\"", "a port 1-65534"},
               {"http://127.0.0.1:0", "a port 1-65534"},
               {"http://127.0.0.1:65535", "a port 1-65534"}, /* h2o's URL parser refuses it */
               {"http://127.0.0.1:65536", "a port 1-65534"},
               {"http://127.0.0.1:123456", "a port 1-65534"},
               {"http://127.0.0.1:9x", "a port 1-65534"},
               {"http://:9000", "host name"},
               {"http://user@h:9000", "host name"},
               {"http://user:pw@h:9000", "host name"},
               {"http://h_x:9000", "host name"},
               {"\"http://[::1:9000\"", "host name"},
               {"\"http://[zz]:9000\"", "host name"},
               {"http://h:9000/a?b", "query"},
               {"\"http://h:9000/a#b\"", "fragment"},
               {"\"http://h:9000/a b\"", "blanks"},
               {"http://h:9000/a/../b", "\"..\""},
               {"\"\"", "must be http://"}};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        char to[128];
        snprintf(to, sizeof(to), "    backend: %s\n", bad[i].backend);
        expect_edit_error(fx, "    backend: http://127.0.0.1:9000\n", to, "backend", "routes[0].backend",
                          bad[i].problem);
    }
    static const char *const good[] = {"http://127.0.0.1:1", "http://127.0.0.1:65534",
                                       "http://app:80/",     "http://app.internal:8080/base/path",
                                       "http://[::1]:9000",  "http://[::1]:9000/x"};
    for (size_t i = 0; i != sizeof(good) / sizeof(good[0]); ++i) {
        char to[128];
        snprintf(to, sizeof(to), "    backend: \"%s\"\n", good[i]);
        expect_edit_ok(fx, "    backend: http://127.0.0.1:9000\n", to);
        assert_string_equal(fx->c.routes[0].backend, good[i]);
    }
}

static void test_route_structure(void **state)
{
    fixture_t *fx = *state;
    const char *route = "  - prefix: /\n    backend: http://127.0.0.1:9000\n";
    expect_edit_error(fx, route, "  - /app\n", "/app", "routes[0]", "expected a mapping");
    expect_edit_error(fx, route, "  - [a]\n", "[a]", "routes[0]", "expected a mapping");
    expect_edit_error(fx, route, "  - backend: http://127.0.0.1:9000\n", "backend", "routes[0].prefix", "is required");
    expect_edit_error(fx, route, "  - prefix: /\n", "prefix", "routes[0].backend", "is required");
    expect_edit_error(fx, route, "  - { name: x }\n", "{ name", "routes[0].prefix", "is required");
    expect_edit_error(fx, "routes:\n  - prefix: /\n    backend: http://127.0.0.1:9000\n", "routes: /\n", "routes",
                      "routes", "expected a list of routes");
    expect_edit_error(fx, "routes:\n  - prefix: /\n    backend: http://127.0.0.1:9000\n", "routes: { prefix: / }\n",
                      "routes", "routes", "expected a list of routes");
    /* groups */
    expect_edit_error(fx, "    backend: http://127.0.0.1:9000\n",
                      "    backend: http://127.0.0.1:9000\n    groups: admins\n", "groups", "routes[0].groups",
                      "expected a list of group names");
    expect_edit_error(fx, "    backend: http://127.0.0.1:9000\n",
                      "    backend: http://127.0.0.1:9000\n    groups:\n      - ok\n      - \"no spaces\"\n",
                      "no spaces", "routes[0].groups", "\"no spaces\" is not a group name");
    expect_edit_error(fx, "    backend: http://127.0.0.1:9000\n",
                      "    backend: http://127.0.0.1:9000\n    groups: [\"\"]\n", "groups", "routes[0].groups",
                      "is not a group name");
    expect_edit_error(fx, "    backend: http://127.0.0.1:9000\n",
                      "    backend: http://127.0.0.1:9000\n    groups: [[a]]\n", "groups", "routes[0].groups",
                      "expected a single value");
    char many[1024] = "    backend: http://127.0.0.1:9000\n    groups: [", *p = many + strlen(many);
    for (int i = 0; i != 65; ++i)
        p += snprintf(p, 8, "%sg%d", i != 0 ? "," : "", i);
    snprintf(p, 4, "]\n");
    expect_edit_error(fx, "    backend: http://127.0.0.1:9000\n", many, "groups", "routes[0].groups",
                      "too many groups (at most 64)");
    /* mfa */
    static const struct {
        const char *text;
        int want;
    } bools[] = {{"true", 1}, {"false", 0}, {"yes", 1}, {"no", 0}, {"True", 1}, {"NO", 0}, {"\"yes\"", 1}};
    for (size_t i = 0; i != sizeof(bools) / sizeof(bools[0]); ++i) {
        char to[128];
        snprintf(to, sizeof(to), "    backend: http://127.0.0.1:9000\n    mfa: %s\n", bools[i].text);
        expect_edit_ok(fx, "    backend: http://127.0.0.1:9000\n", to);
        assert_int_equal(fx->c.routes[0].require_mfa, bools[i].want);
    }
    static const char *const notbools[] = {"1", "0", "on", "off", "maybe", "\"\"", "[true]"};
    for (size_t i = 0; i != sizeof(notbools) / sizeof(notbools[0]); ++i) {
        char to[128];
        snprintf(to, sizeof(to), "    backend: http://127.0.0.1:9000\n    mfa: %s\n", notbools[i]);
        expect_edit_error(fx, "    backend: http://127.0.0.1:9000\n", to, "mfa", "routes[0].mfa", NULL);
    }
    /* name */
    expect_edit_error(fx, "    backend: http://127.0.0.1:9000\n",
                      "    backend: http://127.0.0.1:9000\n    name: \"\"\n", "    name:", "routes[0].name",
                      "must be 1-128 characters");
    expect_edit_error(fx, "    backend: http://127.0.0.1:9000\n",
                      "    backend: http://127.0.0.1:9000\n    name: 'a\"b'\n", "    name:", "routes[0].name", NULL);
}

static void test_duplicate_prefix_and_name(void **state)
{
    fixture_t *fx = *state;
    static const char routes[] = "routes:\n"                            /* 12 */
                                 "  - prefix: /app\n"                   /* 13 */
                                 "    backend: http://127.0.0.1:9000\n" /* 14 */
                                 "  - prefix: /other\n"                 /* 15 */
                                 "    backend: http://127.0.0.1:9001\n" /* 16 */
                                 "  - backend: http://127.0.0.1:9002\n" /* 17 */
                                 "    prefix: /app\n";                  /* 18 */
    char *yaml = edit(BASE, "routes:\n  - prefix: /\n    backend: http://127.0.0.1:9000\n", routes);
    load_fails(fx, yaml);
    has_error(fx, 18, "routes[2].prefix", "duplicate prefix \"/app\" (also routes[0])");
    assert_int_equal(fx->errs.count, 1);
    free(yaml);
    /* two routes with one name would share a JWT audience */
    static const char names[] = "routes:\n"
                                "  - { prefix: /a, backend: \"http://h:1\", name: app }\n"
                                "  - { prefix: /b, backend: \"http://h:2\", name: app }\n";
    yaml = edit(BASE, "routes:\n  - prefix: /\n    backend: http://127.0.0.1:9000\n", names);
    load_fails(fx, yaml);
    has_error(fx, 14, "routes[1].name", "duplicate name \"app\" (also routes[0]");
    free(yaml);
}

static void test_route_limit(void **state)
{
    fixture_t *fx = *state;
    for (int n = GW_MAX_ROUTES; n <= GW_MAX_ROUTES + 1; ++n) {
        size_t cap = sizeof(BASE) + (size_t)n * 64;
        char *yaml = malloc(cap), *p;
        assert_non_null(yaml);
        const char *routes = strstr(BASE, "routes:\n");
        memcpy(yaml, BASE, (size_t)(routes - BASE));
        p = yaml + (routes - BASE);
        p += snprintf(p, 16, "routes:\n");
        for (int i = 0; i != n; ++i)
            p += snprintf(p, 64, "  - { prefix: /r%d, backend: \"http://h:%d\" }\n", i, i + 1);
        if (n == GW_MAX_ROUTES) {
            load_ok(fx, yaml);
            assert_int_equal(fx->c.num_routes, GW_MAX_ROUTES);
            assert_string_equal(fx->c.routes[GW_MAX_ROUTES - 1].prefix, "/r255");
        } else {
            load_fails(fx, yaml);
            has_error(fx, 13, "routes", "too many routes (257, at most 256)");
        }
        free(yaml);
    }
}

static void test_http_redirect(void **state)
{
    fixture_t *fx = *state;
    expect_edit_ok(fx, SRV, "  http_redirect: { port: 8080 }\n" SRV);
    assert_int_equal(fx->c.http_redirect_port, 8080);
    assert_string_equal(fx->c.http_redirect_address, "127.0.0.1");
    expect_edit_ok(fx, SRV, "  http_redirect:\n    address: 0.0.0.0\n    port: 80\n" SRV);
    assert_string_equal(fx->c.http_redirect_address, "0.0.0.0");
    expect_edit_error(fx, SRV, "  http_redirect: { port: 8443 }\n" SRV, "http_redirect", "server.http_redirect.port",
                      "must differ from server.listen.port");
    expect_edit_error(fx, SRV, "  http_redirect: { address: 0.0.0.0, port: 8443 }\n" SRV, "http_redirect",
                      "server.http_redirect.port", "must differ");
    expect_edit_ok(fx, SRV, "  http_redirect: { address: 127.0.0.2, port: 8443 }\n" SRV);
    expect_edit_error(fx, SRV, "  http_redirect: { address: 0.0.0.0 }\n" SRV, "http_redirect",
                      "server.http_redirect.port", "is required when server.http_redirect is set");
    expect_edit_error(fx, SRV, "  http_redirect: { port: 0 }\n" SRV, "http_redirect", "server.http_redirect.port",
                      "out of range");
    assert_int_equal(fx->errs.count, 1); /* not also "is required" */
}

/* ---- login hardening keys ---- */

static void test_login_defaults(void **state)
{
    fixture_t *fx = *state;
    char want[256];
    load_ok(fx, BASE);
    gw_config_t *c = &fx->c;
    assert_int_equal(c->reset_ttl, 3600);
    assert_int_equal(c->password_min_length_mfa, 8);
    snprintf(want, sizeof(want), "%s/pepper.key", fx->dir);
    assert_string_equal(c->pepper_file, want);
    assert_string_equal(c->blocklist_file, PORTIER_SOURCE_DIR "/conf/blocklist.txt");
    assert_string_equal(c->dictionary_file, access("/usr/share/dict/words", R_OK) == 0 ? "/usr/share/dict/words" : "");
    assert_int_equal(c->argon2_memory, 19u * 1024 * 1024);
    assert_int_equal(c->argon2_iterations, 2);
    assert_int_equal(c->throttle_free, 5);
    assert_int_equal(c->throttle_max_delay, 900);
    assert_int_equal(c->throttle_hard_lock, 100);
    assert_int_equal(c->spray_max_usernames, 20);
    assert_int_equal(c->spray_window, 600);
    assert_int_equal(c->spray_block, 900);
    assert_int_equal(c->spray_same_password, 10);
    assert_null(c->organization);
    assert_non_null(c->trusted_proxies);
    assert_null(c->trusted_proxies[0]);
    /* the pepper follows state_dir */
    expect_edit_ok(fx, TOP, "state_dir: /var/lib/portier\n" TOP);
    assert_string_equal(fx->c.pepper_file, "/var/lib/portier/pepper.key");
}

static void test_login_limits(void **state)
{
    static const limit_case_t cases[] = {
        {TOP, "login:\n  reset_ttl: 59\n" TOP, "login.reset_ttl"},
        {TOP, "login:\n  reset_ttl: 1m\n" TOP, NULL, FIELD(reset_ttl), 60},
        {TOP, "login:\n  reset_ttl: 24h\n" TOP, NULL, FIELD(reset_ttl), 86400},
        {TOP, "login:\n  reset_ttl: 86401\n" TOP, "login.reset_ttl"},
        {TOP, "login:\n  password_min_length_mfa: 7\n" TOP, "login.password_min_length_mfa"},
        {TOP, "login:\n  password_min_length_mfa: 8\n" TOP, NULL, FIELD(password_min_length_mfa), 8},
        {TOP, "login:\n  password_min_length_mfa: 15\n" TOP, NULL, FIELD(password_min_length_mfa), 15},
        {TOP, "login:\n  password_min_length_mfa: 16\n" TOP, "login.password_min_length_mfa"}, /* > 15 */
        {TOP, "login:\n  argon2:\n    memory: 19m\n" TOP, NULL, FIELD(argon2_memory), 19u << 20},
        {TOP, "login:\n  argon2:\n    memory: 19455k\n" TOP, "login.argon2.memory"},
        {TOP, "login:\n  argon2:\n    memory: 1024m\n" TOP, NULL, FIELD(argon2_memory), 1u << 30},
        {TOP, "login:\n  argon2:\n    memory: 1025m\n" TOP, "login.argon2.memory"},
        {TOP, "login:\n  argon2:\n    iterations: 1\n" TOP, "login.argon2.iterations"},
        {TOP, "login:\n  argon2:\n    iterations: 2\n" TOP, NULL, FIELD(argon2_iterations), 2},
        {TOP, "login:\n  argon2:\n    iterations: 16\n" TOP, NULL, FIELD(argon2_iterations), 16},
        {TOP, "login:\n  argon2:\n    iterations: 17\n" TOP, "login.argon2.iterations"},
        {TOP, "login:\n  throttle:\n    free_attempts: 0\n" TOP, "login.throttle.free_attempts"},
        {TOP, "login:\n  throttle:\n    free_attempts: 1\n" TOP, NULL, FIELD(throttle_free), 1},
        {TOP, "login:\n  throttle:\n    free_attempts: 99\n" TOP, NULL, FIELD(throttle_free), 99},
        {TOP, "login:\n  throttle:\n    free_attempts: 101\n" TOP, "login.throttle.free_attempts"},
        {TOP, "login:\n  throttle:\n    max_delay: 0\n" TOP, "login.throttle.max_delay"},
        {TOP, "login:\n  throttle:\n    max_delay: 1d\n" TOP, NULL, FIELD(throttle_max_delay), 86400},
        {TOP, "login:\n  throttle:\n    max_delay: 86401\n" TOP, "login.throttle.max_delay"},
        {TOP, "login:\n  throttle:\n    hard_lock: 1\n" TOP, "login.throttle.hard_lock"},
        {TOP, "login:\n  throttle:\n    hard_lock: 6\n" TOP, NULL, FIELD(throttle_hard_lock), 6},
        {TOP, "login:\n  throttle:\n    hard_lock: 100000\n" TOP, NULL, FIELD(throttle_hard_lock), 100000},
        {TOP, "login:\n  throttle:\n    hard_lock: 100001\n" TOP, "login.throttle.hard_lock"},
        {TOP, "login:\n  throttle:\n    hard_lock: 5\n" TOP, "login.throttle.hard_lock"}, /* not above 5 free */
        {TOP, "login:\n  spray:\n    max_usernames: 1\n" TOP, "login.spray.max_usernames"},
        {TOP, "login:\n  spray:\n    max_usernames: 2\n" TOP, NULL, FIELD(spray_max_usernames), 2},
        {TOP, "login:\n  spray:\n    max_usernames: 100001\n" TOP, "login.spray.max_usernames"},
        {TOP, "login:\n  spray:\n    window: 10m\n" TOP, NULL, FIELD(spray_window), 600},
        {TOP, "login:\n  spray:\n    window: 0\n" TOP, "login.spray.window"},
        {TOP, "login:\n  spray:\n    block: 1d\n" TOP, NULL, FIELD(spray_block), 86400},
        {TOP, "login:\n  spray:\n    block: 2d\n" TOP, "login.spray.block"},
        {TOP, "login:\n  spray:\n    same_password_usernames: 1\n" TOP, "login.spray.same_password_usernames"},
        {TOP, "login:\n  spray:\n    same_password_usernames: 2\n" TOP, NULL, FIELD(spray_same_password), 2},
    };
    run_limit_cases(*state, cases, sizeof(cases) / sizeof(cases[0]));
    fixture_t *fx = *state;
    expect_edit_error(fx, TOP, "login:\n  throttle: { free_attempts: 10, hard_lock: 10 }\n" TOP, "throttle",
                      "login.throttle.hard_lock", "must exceed login.throttle.free_attempts (10)");
    expect_edit_error(fx, TOP, "login:\n  password_min_length: 10\n  password_min_length_mfa: 12\n" TOP,
                      "password_min_length_mfa", "login.password_min_length_mfa",
                      "12 exceeds login.password_min_length (10)");
    expect_edit_error(fx, TOP, "login:\n  spray: { max_user: 3 }\n" TOP, "spray", "login.spray.max_user",
                      "unknown key");
}

static void test_mfa_settings(void **state)
{
    fixture_t *fx = *state;
    char want[256];
    load_ok(fx, BASE);
    gw_config_t *c = &fx->c;
    snprintf(want, sizeof(want), "%s/mfa.key", fx->dir);
    assert_string_equal(c->mfa_key_file, want);
    assert_non_null(c->mfa_required_groups);
    assert_null(c->mfa_required_groups[0]);
    assert_string_equal(c->mfa_issuer, "portier");
    assert_string_equal(c->mfa_algorithm, "SHA1");
    assert_int_equal(c->mfa_digits, 6);
    assert_int_equal(c->mfa_period, 30);
    assert_int_equal(c->mfa_window, 1);
    assert_int_equal(c->mfa_hotp_lookahead, 10);
    assert_int_equal(c->mfa_recovery_codes, 10);

    static const limit_case_t cases[] = {
        {TOP, "mfa:\n  totp: { digits: 5 }\n" TOP, "mfa.totp.digits"},
        {TOP, "mfa:\n  totp: { digits: 8 }\n" TOP, NULL, FIELD(mfa_digits), 8},
        {TOP, "mfa:\n  totp: { digits: 9 }\n" TOP, "mfa.totp.digits"},
        {TOP, "mfa:\n  totp: { period: 14 }\n" TOP, "mfa.totp.period"},
        {TOP, "mfa:\n  totp: { period: 1m }\n" TOP, NULL, FIELD(mfa_period), 60},
        {TOP, "mfa:\n  totp: { window: 0 }\n" TOP, NULL, FIELD(mfa_window), 0},
        {TOP, "mfa:\n  totp: { window: 11 }\n" TOP, "mfa.totp.window"},
        {TOP, "mfa:\n  hotp: { lookahead: 0 }\n" TOP, "mfa.hotp.lookahead"},
        {TOP, "mfa:\n  hotp: { lookahead: 100 }\n" TOP, NULL, FIELD(mfa_hotp_lookahead), 100},
        {TOP, "mfa:\n  recovery_codes: 4\n" TOP, "mfa.recovery_codes"},
        {TOP, "mfa:\n  recovery_codes: 20\n" TOP, NULL, FIELD(mfa_recovery_codes), 20},
    };
    run_limit_cases(fx, cases, sizeof(cases) / sizeof(cases[0]));

    expect_edit_ok(fx, TOP, "organization: Acme Corp\nmfa:\n  required_groups: [admins, ops]\n" TOP);
    assert_string_equal(fx->c.mfa_issuer, "Acme Corp"); /* follows the organisation */
    assert_string_equal(fx->c.mfa_required_groups[1], "ops");
    assert_null(fx->c.mfa_required_groups[2]);
    char *member[] = {"staff", "ops", NULL}, *outsider[] = {"staff", NULL};
    assert_true(gw_config_mfa_required(&fx->c, member));
    assert_false(gw_config_mfa_required(&fx->c, outsider));
    expect_edit_error(fx, TOP, "mfa:\n  totp: { algorithm: MD5 }\n" TOP, "algorithm", "mfa.totp.algorithm",
                      "\"MD5\" is not SHA1, SHA256 or SHA512");
    expect_edit_error(fx, TOP, "mfa:\n  required_groups: [\"bad group\"]\n" TOP, "bad group", "mfa.required_groups",
                      "is not a group name");
    expect_edit_error(fx, TOP, "mfa:\n  required_groups: admins\n" TOP, "required_groups", "mfa.required_groups",
                      "expected a list of group names");
}

static void test_login_files(void **state)
{
    fixture_t *fx = *state;
    char want[512];
    /* pepper: may be absent (created 0600 on first start); if present, private */
    expect_edit_ok(fx, TOP, "login: { pepper_file: keys/pepper.key }\n" TOP);
    assert_string_equal(fx->c.pepper_file, in_dir(fx, "keys/pepper.key"));
    write_file(in_dir(fx, "keys/pepper.key"), "0123456789abcdef0123456789abcdef", 32, 0600);
    expect_edit_ok(fx, TOP, "login: { pepper_file: keys/pepper.key }\n" TOP);
    assert_int_equal(chmod(in_dir(fx, "keys/pepper.key"), 0640), 0);
    snprintf(want, sizeof(want), "%s is accessible by group/others (chmod 600)", in_dir(fx, "keys/pepper.key"));
    expect_edit_error(fx, TOP, "login: { pepper_file: keys/pepper.key }\n" TOP, "pepper_file", "login.pepper_file",
                      want);
    expect_edit_error(fx, TOP, "login: { pepper_file: keys }\n" TOP, "pepper_file", "login.pepper_file",
                      "is not a regular file");
    /* blocklist: must exist */
    write_file(in_dir(fx, "blocklist.txt"), "password\n", 9, 0644);
    expect_edit_ok(fx, TOP, "login: { blocklist: blocklist.txt }\n" TOP);
    assert_string_equal(fx->c.blocklist_file, in_dir(fx, "blocklist.txt"));
    expect_edit_error(fx, TOP, "login: { blocklist: nope.txt }\n" TOP, "blocklist", "login.blocklist",
                      "nope.txt: No such file or directory");
    /* dictionary: a file, or "" for none */
    expect_edit_ok(fx, TOP, "login: { dictionary: blocklist.txt }\n" TOP);
    assert_string_equal(fx->c.dictionary_file, in_dir(fx, "blocklist.txt"));
    expect_edit_ok(fx, TOP, "login: { dictionary: \"\" }\n" TOP);
    assert_string_equal(fx->c.dictionary_file, "");
    expect_edit_error(fx, TOP, "login: { dictionary: words }\n" TOP, "dictionary", "login.dictionary", "No such file");
    expect_edit_error(fx, TOP, "login: { dictionary: }\n" TOP, "dictionary", "login.dictionary", "has no value");
    /* organization: a context word */
    expect_edit_ok(fx, TOP, "organization: Example Corp\n" TOP);
    assert_string_equal(fx->c.organization, "Example Corp");
}

static void test_trusted_proxies(void **state)
{
    fixture_t *fx = *state;
    expect_edit_ok(fx, SRV, "  trusted_proxies: [10.0.0.0/8, 192.0.2.1, \"fd00::/8\", \"::1\", 172.16.0.0/12]\n" SRV);
    char **t = fx->c.trusted_proxies;
    assert_string_equal(t[0], "10.0.0.0/8");
    assert_string_equal(t[1], "192.0.2.1");
    assert_string_equal(t[2], "fd00::/8");
    assert_string_equal(t[3], "::1");
    assert_string_equal(t[4], "172.16.0.0/12");
    assert_null(t[5]);
    expect_edit_ok(fx, SRV, "  trusted_proxies: []\n" SRV);
    assert_null(fx->c.trusted_proxies[0]);
    static const struct {
        const char *entry, *problem;
    } bad[] = {{"0.0.0.0/0", "would trust every client"},
               {"\"::/0\"", "would trust every client"},
               {"10.0.0.1/8", "is not an address or network"},
               {"10.0.0.0/33", "is not an address or network"},
               {"10.0.0.0/", "is not an address or network"},
               {"/8", "is not an address or network"},
               {"10.0.0.0/-1", "is not an address or network"},
               {"10.0.0.0/8x", "is not an address or network"},
               {"proxy.example", "is not an address or network"},
               {"\"fd00::/129\"", "is not an address or network"},
               {"\"\"", "empty entry"},
               {"[a]", "expected a single value"}};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        char to[128];
        snprintf(to, sizeof(to), "  trusted_proxies: [192.0.2.1, %s]\n" SRV, bad[i].entry);
        expect_edit_error(fx, SRV, to, "trusted_proxies", "server.trusted_proxies", bad[i].problem);
        assert_int_equal(fx->errs.count, 1);
    }
    expect_edit_error(fx, SRV, "  trusted_proxies: 10.0.0.0/8\n" SRV, "trusted_proxies", "server.trusted_proxies",
                      "expected a list of addresses or networks");
}

static void test_cidr(void **state)
{
    gw_cidr_t net;
    uint8_t a[16] = {0};
    a[10] = a[11] = 0xff; /* ::ffff:10.1.2.3 */
    a[12] = 10, a[13] = 1, a[14] = 2, a[15] = 3;

    assert_int_equal(gw_parse_cidr("10.0.0.0/8", &net), 0);
    assert_int_equal(net.family, AF_INET);
    assert_int_equal(net.bits, 104);
    assert_true(gw_cidr_contains(&net, a));
    assert_int_equal(gw_parse_cidr("10.1.2.0/23", &net), 0);
    assert_true(gw_cidr_contains(&net, a));
    assert_int_equal(gw_parse_cidr("10.1.4.0/23", &net), 0);
    assert_false(gw_cidr_contains(&net, a));
    assert_int_equal(gw_parse_cidr("10.1.2.3", &net), 0);
    assert_int_equal(net.bits, 128);
    assert_true(gw_cidr_contains(&net, a));
    assert_int_equal(gw_parse_cidr("10.1.2.4", &net), 0);
    assert_false(gw_cidr_contains(&net, a));
    assert_int_equal(gw_parse_cidr("11.0.0.0/8", &net), 0);
    assert_false(gw_cidr_contains(&net, a));
    assert_int_equal(gw_parse_cidr("::ffff:10.0.0.0/104", &net), 0); /* the v4-mapped form, written as v6 */
    assert_int_equal(net.family, AF_INET6);
    assert_true(gw_cidr_contains(&net, a));
    assert_int_equal(gw_parse_cidr("0.0.0.0/0", &net), 0); /* valid syntax; the config refuses it */
    assert_true(gw_cidr_contains(&net, a));

    uint8_t b[16] = {0xfd, 0x00, 0x12, 0x34};
    assert_int_equal(gw_parse_cidr("fd00::/8", &net), 0);
    assert_int_equal(net.family, AF_INET6);
    assert_int_equal(net.bits, 8);
    assert_true(gw_cidr_contains(&net, b));
    assert_false(gw_cidr_contains(&net, a));
    assert_int_equal(gw_parse_cidr("fd00:1200::/23", &net), 0);
    assert_true(gw_cidr_contains(&net, b));
    assert_int_equal(gw_parse_cidr("fd00:1400::/23", &net), 0);
    assert_false(gw_cidr_contains(&net, b));
    assert_int_equal(gw_parse_cidr("::/0", &net), 0);
    assert_true(gw_cidr_contains(&net, b));
    assert_true(gw_cidr_contains(&net, a));

    static const char *const bad[] = {"",
                                      "/",
                                      "/8",
                                      "10.0.0.0/",
                                      "10.0.0.0/33",
                                      "10.0.0.1/8",
                                      "10.0.0.0/8/8",
                                      "10.0.0.0/ 8",
                                      "10.0.0.0/+8",
                                      "10.0.0.0/0008",
                                      "10.0.0",
                                      "fd00::1/8",
                                      "fd00::/129",
                                      "host",
                                      " 10.0.0.0/8",
                                      "10.0.0.0/8 ",
                                      "1111:2222:3333:4444:5555:6666:7777:8888:9999/8"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        if (gw_parse_cidr(bad[i], NULL) != -1)
            fail_msg("\"%s\" accepted", bad[i]);
    assert_int_equal(gw_parse_cidr("10.0.0.0/8", NULL), 0); /* validation only */
}

static void test_dispose_is_idempotent(void **state)
{
    fixture_t *fx = *state;
    gw_config_t c;
    memset(&c, 0, sizeof(c));
    gw_config_dispose(&c);
    load_ok(fx, BASE);
    gw_config_dispose(&fx->c);
    gw_config_dispose(&fx->c);
    assert_null(fx->c.path);
    gw_config_errors_t errs = {0};
    gw_config_errors_dispose(&errs);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_full_file_round_trips), T(test_defaults),
        T(test_parse_duration),        T(test_numeric_limits),
        T(test_range_message),         T(test_string_keys),
        T(test_unknown_keys),          T(test_wrong_node_types),
        T(test_duplicate_keys),        T(test_required_keys),
        T(test_errors_are_collected),  T(test_error_cap),
        T(test_yaml_syntax_errors),    T(test_key_file_permissions),
        T(test_missing_and_odd_files), T(test_paths_are_resolved),
        T(test_load_from_file),        T(test_routes),
        T(test_route_prefix_rules),    T(test_route_backend_rules),
        T(test_route_structure),       T(test_duplicate_prefix_and_name),
        T(test_route_limit),           T(test_http_redirect),
        T(test_login_defaults),        T(test_mfa_settings),
        T(test_login_limits),          T(test_login_files),
        T(test_trusted_proxies),       T(test_cidr),
        T(test_dispose_is_idempotent),
    };
    return cmocka_run_group_tests_name("gateway/config", tests, NULL, NULL);
}
