/*
 * Audit trail storage: append-only rows (a trigger refuses UPDATE, DELETE and TRUNCATE) chained with a keyed
 * MAC. Each row's mac = HMAC-SHA256(key, prev_mac || canonical text of the row), where prev_mac is the mac of
 * the row before it (nothing for the first row or after a row without a mac), so editing, removing or
 * reordering any row breaks every mac after it. Without a key (store_set_audit_key) prev_mac and mac stay NULL.
 *
 * Canonical text: the fields id, at, actor, action, target, outcome, source_addr, request_id, details, in that
 * order, joined with '\n'. Each field is written as in PostgreSQL's COPY text format: NULL as \N, a backslash as
 * \\ and a newline as \n, so no two different rows share a text. `id` is decimal; `at` is
 * to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') (microseconds, UTC, whatever the session's
 * settings); `details` is PostgreSQL's own rendering of the jsonb value (details::text). A verifier recomputes
 * the same text from the stored row alone.
 *
 * Since rows can never be updated, the mac cannot be added after an INSERT ... RETURNING id, at. So every value
 * the mac covers is fixed before the INSERT: `id` comes from nextval() and `at` from clock_timestamp(), both
 * selected first, then inserted explicitly together with the mac. Appends are serialised by a transaction-scoped
 * advisory lock taken before the previous mac is read, so the chain never forks and ids follow chain order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "store/internal.h"

#define AUDIT_LOCK_KEY "7370002" /* pg_advisory_xact_lock key reserved for audit appends */
#define AUDIT_MAC_LEN  32        /* HMAC-SHA256 */
#define NUM_MAC_FIELDS 9
#define STORE_STR_(x)  #x
#define STORE_STR(x)   STORE_STR_(x)

static int update(EVP_MAC_CTX *ctx, const char *s, size_t len)
{
    return EVP_MAC_update(ctx, (const unsigned char *)s, len) == 1;
}

/* Feeds one field in COPY text form, followed by '\n' unless it is the last. */
static int mac_field(EVP_MAC_CTX *ctx, const char *f, int last)
{
    if (f == NULL) {
        if (!update(ctx, "\\N", 2))
            return 0;
    } else {
        while (*f != '\0') {
            size_t run = strcspn(f, "\\\n");
            if (run != 0 && !update(ctx, f, run))
                return 0;
            f += run;
            if (*f == '\0')
                break;
            if (!update(ctx, *f == '\\' ? "\\\\" : "\\n", 2))
                return 0;
            ++f;
        }
    }
    return last || update(ctx, "\n", 1);
}

static int compute_mac(const store_t *st, const uint8_t *prev, size_t prev_len,
                       const char *const fields[NUM_MAC_FIELDS], uint8_t out[AUDIT_MAC_LEN])
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    size_t outlen = 0;
    int ok = ctx != NULL && EVP_MAC_init(ctx, st->audit_key, st->audit_key_len, params) == 1;

    if (ok && prev_len != 0)
        ok = EVP_MAC_update(ctx, prev, prev_len) == 1;
    for (size_t i = 0; ok && i != NUM_MAC_FIELDS; ++i)
        ok = mac_field(ctx, fields[i], i + 1 == NUM_MAC_FIELDS);
    ok = ok && EVP_MAC_final(ctx, out, &outlen, AUDIT_MAC_LEN) == 1 && outlen == AUDIT_MAC_LEN;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok ? 0 : -EIO;
}

static int unhex(const char *in, uint8_t *out, size_t outlen)
{
    if (strlen(in) != 2 * outlen)
        return -1;
    for (size_t i = 0; i != 2 * outlen; ++i) {
        char c = in[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        out[i / 2] = (uint8_t)(i % 2 == 0 ? v << 4 : out[i / 2] | v);
    }
    return 0;
}

int store_audit_append(store_t *st, const store_audit_event_t *ev)
{
    static const char *const lock_key[] = {AUDIT_LOCK_KEY};
    PGresult *res = NULL;
    uint8_t prev[AUDIT_MAC_LEN], mac[AUDIT_MAC_LEN];
    size_t prev_len = 0;
    int rc;

    if (ev->actor == NULL || ev->action == NULL)
        return -EINVAL;
    if ((rc = store_begin(st)) != 0)
        return rc;
    rc = store_run(st, "SELECT pg_advisory_xact_lock($1::bigint)", 1, lock_key, NULL);
    if (rc == 0) {
        /* Everything the mac covers, fixed before the INSERT (see the top of this file). */
        const char *p[] = {ev->details};
        res = store_exec(st,
                         "SELECT nextval(pg_get_serial_sequence('audit_events', 'id')), "
                         "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                         "$1::jsonb::text, (SELECT encode(mac, 'hex') FROM audit_events ORDER BY id DESC LIMIT 1)",
                         1, p, NULL);
        if ((rc = store_result_status(res, 1)) != 0)
            res = NULL;
    }
    if (rc == 0 && st->audit_key_len != 0 && !PQgetisnull(res, 0, 3)) {
        if (unhex(PQgetvalue(res, 0, 3), prev, sizeof(prev)) == 0)
            prev_len = sizeof(prev);
        else
            rc = -EIO; /* a mac that is not ours: the chain is damaged, refuse to extend it */
    }
    const char *id = res != NULL ? PQgetvalue(res, 0, 0) : NULL;
    const char *at = res != NULL ? PQgetvalue(res, 0, 1) : NULL;
    const char *details = res != NULL && !PQgetisnull(res, 0, 2) ? PQgetvalue(res, 0, 2) : NULL;
    if (rc == 0 && st->audit_key_len != 0) {
        const char *fields[NUM_MAC_FIELDS] = {
            id, at, ev->actor, ev->action, ev->target, ev->outcome, ev->source_addr, ev->request_id, details};
        rc = compute_mac(st, prev, prev_len, fields, mac);
    }
    if (rc == 0) {
        int keyed = st->audit_key_len != 0;
        const char *p[] = {id,
                           at,
                           ev->actor,
                           ev->action,
                           ev->target,
                           ev->outcome,
                           ev->source_addr,
                           ev->request_id,
                           details,
                           keyed && prev_len != 0 ? (const char *)prev : NULL,
                           keyed ? (const char *)mac : NULL};
        const int lengths[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, AUDIT_MAC_LEN, AUDIT_MAC_LEN};
        rc = store_run(st,
                       "INSERT INTO audit_events (id, at, actor, action, target, outcome, source_addr, request_id, "
                       "details, prev_mac, mac) VALUES ($1, $2::timestamptz, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, "
                       "$11)",
                       11, p, lengths);
    }
    PQclear(res);
    return store_end(st, rc);
}

/* ---- reading the trail back ---- */

#define AUDIT_BATCH 1000
#define AUDIT_SELECT                                                                                                   \
    "SELECT id::text, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor, action, target, "    \
    "outcome, source_addr, request_id, details::text, encode(prev_mac, 'hex'), encode(mac, 'hex') "                    \
    "FROM audit_events WHERE id > $1 ORDER BY id LIMIT " STORE_STR(AUDIT_BATCH)

static const char *field(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* Calls cb for each row with id > after, in id order, in batches; stops early when cb returns non-zero (that
 * value is returned). */
static int each_row(store_t *st, int64_t after, int (*cb)(void *ctx, PGresult *res, int row), void *ctx)
{
    for (;;) {
        char last[STORE_I64_LEN];
        store_i64(last, after);
        const char *p[] = {last};
        PGresult *res = store_exec(st, AUDIT_SELECT, 1, p, NULL);
        int rc = store_result_status(res, 1);
        if (rc != 0)
            return rc;
        int n = PQntuples(res);
        for (int i = 0; i != n && rc == 0; ++i)
            rc = cb(ctx, res, i);
        if (n != 0)
            after = strtoll(PQgetvalue(res, n - 1, 0), NULL, 10);
        PQclear(res);
        if (rc != 0 || n < AUDIT_BATCH)
            return rc;
    }
}

static void row_to_event(PGresult *res, int row, store_audit_row_t *out)
{
    out->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    out->at = field(res, row, 1);
    out->ev = (store_audit_event_t){.actor = field(res, row, 2),
                                    .action = field(res, row, 3),
                                    .target = field(res, row, 4),
                                    .outcome = field(res, row, 5),
                                    .source_addr = field(res, row, 6),
                                    .request_id = field(res, row, 7),
                                    .details = field(res, row, 8)};
    out->mac_hex = field(res, row, 10);
}

typedef struct st_verify_t {
    store_t *st;
    store_audit_verify_t *out;
    uint8_t prev[AUDIT_MAC_LEN];
    size_t prev_len;
} verify_t;

static int verify_row(void *ctx, PGresult *res, int row)
{
    verify_t *v = ctx;
    store_audit_verify_t *out = v->out;
    int64_t id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    const char *prev_hex = field(res, row, 9), *mac_hex = field(res, row, 10);
    uint8_t prev[AUDIT_MAC_LEN], stored[AUDIT_MAC_LEN], want[AUDIT_MAC_LEN];
    const char *fields[NUM_MAC_FIELDS];
    for (int i = 0; i != NUM_MAC_FIELDS; ++i)
        fields[i] = field(res, row, i);

    out->bad_id = id;
    if (mac_hex == NULL) { /* written without a key: nothing to check, and the chain restarts after it */
        ++out->unkeyed;
        v->prev_len = 0;
        out->bad_id = 0;
        return 0;
    }
    if (unhex(mac_hex, stored, sizeof(stored)) != 0) {
        out->reason = "malformed mac";
        return 1;
    }
    /* prev_mac must be exactly the previous row's mac: a removed or reordered row shows here */
    int prev_ok = prev_hex == NULL ? v->prev_len == 0
                                   : unhex(prev_hex, prev, sizeof(prev)) == 0 && v->prev_len == sizeof(prev) &&
                                         CRYPTO_memcmp(prev, v->prev, sizeof(prev)) == 0;
    if (!prev_ok) {
        out->reason = "chain broken: prev_mac is not the mac of the row before (a row was removed or reordered)";
        return 1;
    }
    if (compute_mac(v->st, v->prev, v->prev_len, fields, want) != 0)
        return -EIO;
    if (CRYPTO_memcmp(want, stored, sizeof(want)) != 0) {
        out->reason = "mac mismatch: the row was changed, or written with another key";
        return 1;
    }
    memcpy(v->prev, stored, sizeof(stored));
    v->prev_len = sizeof(stored);
    ++out->verified;
    out->head_id = id;
    snprintf(out->head_mac, sizeof(out->head_mac), "%s", mac_hex);
    out->bad_id = 0;
    return 0;
}

int store_audit_verify(store_t *st, store_audit_verify_t *out)
{
    memset(out, 0, sizeof(*out));
    if (st->audit_key_len == 0)
        return -EINVAL;
    verify_t v = {.st = st, .out = out};
    int rc = each_row(st, 0, verify_row, &v);
    return rc < 0 ? rc : 0; /* rc 1: out->bad_id and out->reason say where and why */
}

typedef struct st_export_t {
    int (*cb)(void *ctx, const store_audit_row_t *row);
    void *ctx;
} export_t;

static int export_row(void *ctx, PGresult *res, int row)
{
    export_t *e = ctx;
    store_audit_row_t r;
    row_to_event(res, row, &r);
    return e->cb(e->ctx, &r);
}

int store_audit_export(store_t *st, int64_t after, int (*cb)(void *ctx, const store_audit_row_t *row), void *ctx)
{
    export_t e = {cb, ctx};
    int rc = each_row(st, after, export_row, &e);
    return rc < 0 ? rc : 0;
}
