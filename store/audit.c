/*
 * Audit trail: append-only rows, hash-chained. Each row's MAC is HMAC-SHA256(key, canonical row) where the
 * canonical row includes the previous row's MAC, so removing, reordering or editing any row breaks every MAC
 * after it. Appends are serialised by a transaction-scoped advisory lock so the chain has no forks. The values
 * that go into the MAC are fixed before the INSERT (id from the sequence, time as integer microseconds, details
 * as PostgreSQL's own jsonb rendering), so a verifier can recompute the MAC from the stored row alone:
 *   id \n at_us \n actor \n action \n target \n outcome \n source_addr \n request_id \n details \n hex(prev_mac)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include "store/internal.h"

#define AUDIT_LOCK "7370002"

static void hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i != len; ++i) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static const char *or_empty(const char *s)
{
    return s != NULL ? s : "";
}

int store_audit_append(store_t *st, const store_audit_event_t *ev)
{
    int rc = store_begin(st);
    PGresult *res = NULL;
    if (rc == 0)
        rc = store_result_status(store_exec(st, "SELECT pg_advisory_xact_lock(" AUDIT_LOCK ")", 0, NULL, NULL), 0);
    if (rc == 0) {
        const char *p[] = {ev->details};
        res = store_exec(st,
                         "SELECT nextval('audit_events_id_seq'), (extract(epoch FROM clock_timestamp()) * 1000000)"
                         "::bigint, $1::jsonb::text, (SELECT encode(mac, 'hex') FROM audit_events ORDER BY id DESC "
                         "LIMIT 1)",
                         1, p, NULL);
        rc = store_result_status(res, 1);
    }
    if (rc != 0) {
        store_rollback(st);
        return rc;
    }
    char id[24], at_us[24], mac_hex[2 * EVP_MAX_MD_SIZE + 1] = "";
    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    snprintf(at_us, sizeof(at_us), "%s", PQgetvalue(res, 0, 1));
    char *details = PQgetisnull(res, 0, 2) ? NULL : strdup(PQgetvalue(res, 0, 2));
    char *prev = PQgetisnull(res, 0, 3) ? NULL : strdup(PQgetvalue(res, 0, 3));
    PQclear(res);

    if (st->audit_key_len != 0) {
        const char *fields[] = {id,          at_us,          ev->actor,           ev->action,
                                ev->target,  ev->outcome,    ev->source_addr,     ev->request_id,
                                details,     prev};
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0), OSSL_PARAM_construct_end()};
        unsigned char out[EVP_MAX_MD_SIZE];
        size_t outlen = 0;
        int ok = ctx != NULL && EVP_MAC_init(ctx, st->audit_key, st->audit_key_len, params) == 1;
        for (size_t i = 0; ok && i != sizeof(fields) / sizeof(fields[0]); ++i) {
            const char *f = or_empty(fields[i]);
            ok = EVP_MAC_update(ctx, (const unsigned char *)f, strlen(f)) == 1 &&
                 (i + 1 == sizeof(fields) / sizeof(fields[0]) ||
                  EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) == 1);
        }
        ok = ok && EVP_MAC_final(ctx, out, &outlen, sizeof(out)) == 1;
        EVP_MAC_CTX_free(ctx);
        EVP_MAC_free(mac);
        if (!ok) {
            free(details);
            free(prev);
            store_rollback(st);
            return -EIO;
        }
        hex(out, outlen, mac_hex);
    }
    const char *p[] = {id,          at_us,      ev->actor,   ev->action, ev->target, ev->outcome, ev->source_addr,
                       ev->request_id, details, prev,       mac_hex[0] != '\0' ? mac_hex : NULL};
    rc = store_result_status(
        store_exec(st,
                   "INSERT INTO audit_events (id, at, actor, action, target, outcome, source_addr, request_id, "
                   "details, prev_mac, mac) VALUES ($1, timestamptz 'epoch' + ($2 || ' microseconds')::interval, $3, "
                   "$4, $5, $6, $7, $8, $9::jsonb, decode($10, 'hex'), decode($11, 'hex'))",
                   11, p, NULL),
        0);
    free(details);
    free(prev);
    if (rc == 0)
        rc = store_commit(st);
    if (rc != 0)
        store_rollback(st);
    return rc;
}
