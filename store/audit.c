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
#include <openssl/evp.h>
#include <openssl/params.h>

#include "store/internal.h"

#define AUDIT_LOCK_KEY "7370002" /* pg_advisory_xact_lock key reserved for audit appends */
#define AUDIT_MAC_LEN  32        /* HMAC-SHA256 */
#define NUM_MAC_FIELDS 9

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
