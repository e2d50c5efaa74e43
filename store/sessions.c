/*
 * Sessions, keyed by the SHA-256 of the cookie value (the cookie itself never reaches the database; the hash
 * travels as a binary bytea parameter). A session is valid while now() is before its absolute expiry and
 * within idle_timeout seconds of last_seen, and while its user is enabled; lookup and touch see valid sessions
 * only, so an expired session cannot be revived. Deleting a session NOTIFYs "session:<hex of the hash>".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

static const int hash_len[] = {STORE_HASH_LEN}; /* $1 is the hash (binary); any further params are text */

#define SESSION_VALID "s.expires_at > now() AND s.last_seen + make_interval(secs => s.idle_timeout) > now()"

void store_session_dispose(store_session_t *s)
{
    if (s == NULL)
        return;
    store_user_dispose(&s->user);
    free(s->public_id);
    memset(s, 0, sizeof(*s));
}

/* sessions.auth_methods as an array literal ("{pwd}", "{pwd,otp}") */
static const char *amr_literal(unsigned amr)
{
    return (amr & STORE_AMR_OTP) ? "{pwd,otp}" : "{pwd}";
}

int store_session_create_amr(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *public_id, int64_t user_id,
                             unsigned absolute_ttl, unsigned idle_timeout, const char *source_addr, unsigned amr)
{
    char uid[STORE_I64_LEN], abs_ttl[STORE_I64_LEN], idle[STORE_I64_LEN];
    const int lengths[] = {STORE_HASH_LEN, 0, 0, 0, 0, 0, 0};

    store_i64(uid, user_id);
    store_i64(abs_ttl, absolute_ttl);
    store_i64(idle, idle_timeout);
    const char *p[] = {(const char *)hash, public_id, uid, abs_ttl, idle, source_addr, amr_literal(amr)};
    return store_run(st,
                     "INSERT INTO sessions (id_hash, public_id, user_id, expires_at, idle_timeout, source_addr, "
                     "auth_methods) VALUES ($1, $2, $3, now() + make_interval(secs => $4::bigint), $5, $6, $7)",
                     7, p, lengths);
}

int store_session_create(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *public_id, int64_t user_id,
                         unsigned absolute_ttl, unsigned idle_timeout, const char *source_addr)
{
    return store_session_create_amr(st, hash, public_id, user_id, absolute_ttl, idle_timeout, source_addr,
                                    STORE_AMR_PWD);
}

int store_session_elevate(store_t *st, const uint8_t old_hash[STORE_HASH_LEN], const uint8_t new_hash[STORE_HASH_LEN],
                          const char *public_id, unsigned amr)
{
    const int lengths[] = {STORE_HASH_LEN, STORE_HASH_LEN, 0, 0};
    const char *p[] = {(const char *)old_hash, (const char *)new_hash, public_id, amr_literal(amr)};
    char payload[STORE_PAYLOAD_LEN];
    int rc = store_begin(st);
    if (rc == 0)
        rc = store_run_one(st,
                           "INSERT INTO sessions (id_hash, public_id, user_id, created_at, last_seen, expires_at, "
                           "idle_timeout, auth_methods, source_addr) "
                           "SELECT $2, $3, s.user_id, s.created_at, now(), s.expires_at, s.idle_timeout, "
                           "ARRAY(SELECT DISTINCT unnest(s.auth_methods || $4::text[]) ORDER BY 1 DESC), s.source_addr"
                           " FROM sessions s JOIN users u ON u.id = s.user_id"
                           " WHERE s.id_hash = $1 AND " SESSION_VALID " AND NOT u.disabled",
                           4, p, lengths);
    if (rc == 0)
        rc = store_run_one(st, "DELETE FROM sessions WHERE id_hash = $1", 1, p, hash_len);
    if (rc == 0) {
        store_session_payload(old_hash, payload);
        rc = store_notify(st, payload);
    }
    return store_end(st, rc);
}

int store_session_lookup(store_t *st, const uint8_t hash[STORE_HASH_LEN], store_session_t *out)
{
    const char *p[] = {(const char *)hash};
    int row = 0;
    PGresult *res = store_exec(st,
                               "SELECT s.public_id, extract(epoch FROM s.created_at)::bigint, "
                               "extract(epoch FROM s.last_seen)::bigint, extract(epoch FROM s.expires_at)::bigint, "
                               "s.idle_timeout, 'otp' = ANY (s.auth_methods), " STORE_USER_COLUMNS
                               " FROM sessions s JOIN users u ON u.id = s.user_id" STORE_USER_JOIN
                               " WHERE s.id_hash = $1 AND " SESSION_VALID " AND NOT u.disabled"
                               " ORDER BY " STORE_GROUP_ORDER,
                               1, p, hash_len);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    memset(out, 0, sizeof(*out));
    if (PQntuples(res) == 0) {
        rc = -ENOENT;
    } else if ((out->public_id = strdup(PQgetvalue(res, 0, 0))) == NULL) {
        rc = -ENOMEM;
    } else {
        out->created_at = (time_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        out->last_seen = (time_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        out->expires_at = (time_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10);
        out->idle_timeout = (unsigned)strtoul(PQgetvalue(res, 0, 4), NULL, 10);
        out->amr = STORE_AMR_PWD | (PQgetvalue(res, 0, 5)[0] == 't' ? STORE_AMR_OTP : 0);
        rc = store_user_read(res, &row, 6, &out->user);
    }
    if (rc != 0)
        store_session_dispose(out);
    PQclear(res);
    return rc;
}

int store_session_touch(store_t *st, const uint8_t hash[STORE_HASH_LEN])
{
    const char *p[] = {(const char *)hash};
    return store_run_one(st, "UPDATE sessions s SET last_seen = now() WHERE s.id_hash = $1 AND " SESSION_VALID, 1, p,
                         hash_len);
}

int store_session_delete(store_t *st, const uint8_t hash[STORE_HASH_LEN])
{
    const char *p[] = {(const char *)hash};
    char payload[STORE_PAYLOAD_LEN];
    int rc = store_begin(st);
    if (rc == 0)
        rc = store_run_one(st, "DELETE FROM sessions WHERE id_hash = $1", 1, p, hash_len);
    if (rc == 0) {
        store_session_payload(hash, payload);
        rc = store_notify(st, payload);
    }
    return store_end(st, rc);
}
