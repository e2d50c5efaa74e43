/*
 * Sessions and one-time tokens. Both are keyed by the SHA-256 of a random secret; the secret itself never
 * reaches the database. Deleting sessions NOTIFYs in the same transaction (see store.h for payloads).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

int store_user_from_row(PGresult *res, int row, int first, store_user_t *u);

static const int hash_len[] = {STORE_HASH_LEN, 0, 0, 0, 0, 0, 0, 0};

void store_session_dispose(store_session_t *s)
{
    if (s == NULL)
        return;
    store_user_dispose(&s->user);
    free(s->public_id);
    memset(s, 0, sizeof(*s));
}

int store_session_create(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *public_id, int64_t user_id,
                         unsigned absolute_ttl, unsigned idle_timeout, const char *source_addr)
{
    char uid[24], abs[16], idle[16];
    snprintf(uid, sizeof(uid), "%" PRId64, user_id);
    snprintf(abs, sizeof(abs), "%u", absolute_ttl);
    snprintf(idle, sizeof(idle), "%u", idle_timeout);
    const char *p[] = {(const char *)hash, public_id, uid, abs, idle, source_addr};
    return store_result_status(store_exec(st,
                                          "INSERT INTO sessions (id_hash, public_id, user_id, expires_at, "
                                          "idle_timeout, source_addr) VALUES ($1, $2, $3, now() + "
                                          "make_interval(secs => $4::int), $5, $6)",
                                          6, p, hash_len),
                               0);
}

int store_session_lookup(store_t *st, const uint8_t hash[STORE_HASH_LEN], store_session_t *out)
{
    const char *p[] = {(const char *)hash};
    PGresult *res = store_exec(
        st,
        "SELECT u.id, u.username, u.email, u.display_name, u.disabled, "
        "coalesce((SELECT json_agg(g.name ORDER BY g.name) FROM group_members m JOIN groups g ON g.id = m.group_id "
        "WHERE m.user_id = u.id), '[]')::text, s.public_id, extract(epoch FROM s.created_at)::bigint, "
        "extract(epoch FROM s.last_seen)::bigint, extract(epoch FROM s.expires_at)::bigint, s.idle_timeout "
        "FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.expires_at > now() "
        "AND s.last_seen + make_interval(secs => s.idle_timeout) > now() AND NOT u.disabled",
        1, p, hash_len);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    memset(out, 0, sizeof(*out));
    store_user_from_row(res, 0, 0, &out->user);
    out->public_id = strdup(PQgetvalue(res, 0, 6));
    out->created_at = (time_t)strtoll(PQgetvalue(res, 0, 7), NULL, 10);
    out->last_seen = (time_t)strtoll(PQgetvalue(res, 0, 8), NULL, 10);
    out->expires_at = (time_t)strtoll(PQgetvalue(res, 0, 9), NULL, 10);
    out->idle_timeout = (unsigned)strtoul(PQgetvalue(res, 0, 10), NULL, 10);
    PQclear(res);
    return 0;
}

int store_session_touch(store_t *st, const uint8_t hash[STORE_HASH_LEN])
{
    const char *p[] = {(const char *)hash};
    return store_result_status(
        store_exec(st, "UPDATE sessions SET last_seen = now() WHERE id_hash = $1", 1, p, hash_len), 0);
}

int store_session_delete(store_t *st, const uint8_t hash[STORE_HASH_LEN])
{
    const char *p[] = {(const char *)hash};
    char payload[8 + 2 * STORE_HASH_LEN + 1];
    int rc = store_begin(st);
    PGresult *res = NULL;
    if (rc == 0) {
        res = store_exec(st, "DELETE FROM sessions WHERE id_hash = $1", 1, p, hash_len);
        rc = store_result_status(res, 1);
    }
    if (rc == 0) {
        int deleted = strcmp(PQcmdTuples(res), "0") != 0;
        PQclear(res);
        store_session_payload(hash, payload, sizeof(payload));
        rc = deleted ? store_notify(st, payload) : -ENOENT;
    }
    if (rc == 0)
        rc = store_commit(st);
    if (rc != 0)
        store_rollback(st);
    return rc;
}

/* ---- one-time tokens ---- */

int store_token_create(store_t *st, const uint8_t hash[STORE_HASH_LEN], int64_t user_id, const char *purpose,
                       unsigned ttl)
{
    char uid[24], ttls[16];
    snprintf(uid, sizeof(uid), "%" PRId64, user_id);
    snprintf(ttls, sizeof(ttls), "%u", ttl);
    const char *p[] = {(const char *)hash, uid, purpose, ttls};
    int rc = store_begin(st);
    if (rc == 0)
        rc = store_result_status(store_exec(st,
                                            "UPDATE one_time_tokens SET used_at = now() WHERE user_id = $1 AND "
                                            "purpose = $2 AND used_at IS NULL",
                                            2, p + 1, NULL),
                                 0);
    if (rc == 0)
        rc = store_result_status(store_exec(st,
                                            "INSERT INTO one_time_tokens (token_hash, user_id, purpose, expires_at) "
                                            "VALUES ($1, $2, $3, now() + make_interval(secs => $4::int))",
                                            4, p, hash_len),
                                 0);
    if (rc == 0)
        rc = store_commit(st);
    if (rc != 0)
        store_rollback(st);
    return rc;
}

/* Looks the token up (optionally FOR UPDATE): 0 valid, -ENOENT, -ESTALE (used, expired, or user disabled). */
static int token_check(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *purpose, int lock,
                       int64_t *user_id)
{
    const char *p[] = {(const char *)hash, purpose};
    PGresult *res = store_exec(st,
                               lock ? "SELECT t.user_id, t.used_at IS NULL AND t.expires_at > now() AND NOT "
                                      "u.disabled FROM one_time_tokens t JOIN users u ON u.id = t.user_id WHERE "
                                      "t.token_hash = $1 AND t.purpose = $2 FOR UPDATE OF t"
                                    : "SELECT t.user_id, t.used_at IS NULL AND t.expires_at > now() AND NOT "
                                      "u.disabled FROM one_time_tokens t JOIN users u ON u.id = t.user_id WHERE "
                                      "t.token_hash = $1 AND t.purpose = $2",
                               2, p, hash_len);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0)
        rc = -ENOENT;
    else if (PQgetvalue(res, 0, 1)[0] != 't')
        rc = -ESTALE;
    else
        *user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return rc;
}

int store_token_peek(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *purpose, int64_t *user_id)
{
    return token_check(st, hash, purpose, 0, user_id);
}

int store_token_redeem_password(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *purpose,
                                const char *password_hash, const uint8_t session_hash[STORE_HASH_LEN],
                                const char *public_id, unsigned absolute_ttl, unsigned idle_timeout,
                                const char *source_addr, int64_t *user_id)
{
    char uid[24], payload[32];
    int rc = store_begin(st);
    if (rc == 0)
        rc = token_check(st, hash, purpose, 1, user_id);
    if (rc == 0) {
        snprintf(uid, sizeof(uid), "%" PRId64, *user_id);
        const char *p[] = {uid, password_hash};
        rc = store_result_status(store_exec(st,
                                            "INSERT INTO password_credentials (user_id, hash) VALUES ($1, $2) ON "
                                            "CONFLICT (user_id) DO UPDATE SET hash = EXCLUDED.hash, updated_at = now()",
                                            2, p, NULL),
                                 0);
    }
    if (rc == 0) { /* a credential change voids every outstanding token and session of the user */
        const char *p[] = {uid};
        rc = store_result_status(
            store_exec(st, "UPDATE one_time_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL", 1, p,
                       NULL),
            0);
        if (rc == 0)
            rc = store_result_status(store_exec(st, "DELETE FROM sessions WHERE user_id = $1", 1, p, NULL), 0);
    }
    if (rc == 0) {
        snprintf(payload, sizeof(payload), "user:%s", uid);
        rc = store_notify(st, payload);
    }
    if (rc == 0)
        rc = store_session_create(st, session_hash, public_id, *user_id, absolute_ttl, idle_timeout, source_addr);
    if (rc == 0)
        rc = store_commit(st);
    if (rc != 0)
        store_rollback(st);
    return rc;
}
