/*
 * SAML IdP state: the AuthnRequest replay cache, requests waiting for a sign-in, and which SPs a session has
 * signed in to. Hashes travel as binary bytea parameters; every other value is a bound text parameter.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

int store_saml_request_seen(store_t *st, const char *sp, const char *request_id, unsigned ttl)
{
    char secs[STORE_I64_LEN];
    store_i64(secs, ttl);
    const char *p[] = {sp, request_id, secs};
    /* one round trip: purge what expired (indexed; keeps the table at a few minutes of traffic), then record */
    int rc = store_run_one(st,
                           "WITH purged AS (DELETE FROM saml_request_ids WHERE expires_at < now()) "
                           "INSERT INTO saml_request_ids (sp, request_id, expires_at) "
                           "VALUES ($1, $2, now() + make_interval(secs => $3::bigint)) ON CONFLICT DO NOTHING",
                           3, p, NULL);
    return rc == -ENOENT ? -EEXIST : rc;
}

int store_saml_pending_put(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *sp, const char *binding,
                           const char *message, const char *relay_state, unsigned ttl)
{
    char secs[STORE_I64_LEN];
    const int lengths[] = {STORE_HASH_LEN, 0, 0, 0, 0, 0};
    store_i64(secs, ttl);
    const char *p[] = {(const char *)hash, sp, binding, message, relay_state, secs};
    return store_run(st,
                     "WITH purged AS (DELETE FROM saml_pending WHERE expires_at < now()) "
                     "INSERT INTO saml_pending (id_hash, sp, binding, message, relay_state, expires_at) "
                     "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::bigint))",
                     6, p, lengths);
}

int store_saml_pending_get(store_t *st, const uint8_t hash[STORE_HASH_LEN], store_saml_pending_t *out)
{
    const int lengths[] = {STORE_HASH_LEN};
    const char *p[] = {(const char *)hash};
    PGresult *res = store_exec(st,
                               "SELECT sp, binding, message, relay_state, extract(epoch FROM created_at)::bigint "
                               "FROM saml_pending WHERE id_hash = $1 AND expires_at > now()",
                               1, p, lengths);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    memset(out, 0, sizeof(*out));
    if (PQntuples(res) == 0) {
        rc = -ENOENT;
    } else {
        out->sp = strdup(PQgetvalue(res, 0, 0));
        out->binding = strdup(PQgetvalue(res, 0, 1));
        out->message = strdup(PQgetvalue(res, 0, 2));
        out->relay_state = PQgetisnull(res, 0, 3) ? NULL : strdup(PQgetvalue(res, 0, 3));
        out->created_at = (time_t)strtoll(PQgetvalue(res, 0, 4), NULL, 10);
        if (out->sp == NULL || out->binding == NULL || out->message == NULL) {
            store_saml_pending_dispose(out);
            rc = -ENOMEM;
        }
    }
    PQclear(res);
    return rc;
}

int store_saml_pending_take(store_t *st, const uint8_t hash[STORE_HASH_LEN])
{
    const int lengths[] = {STORE_HASH_LEN};
    const char *p[] = {(const char *)hash};
    return store_run_one(st, "DELETE FROM saml_pending WHERE id_hash = $1", 1, p, lengths);
}

void store_saml_pending_dispose(store_saml_pending_t *p)
{
    free(p->sp);
    free(p->binding);
    free(p->message);
    free(p->relay_state);
    memset(p, 0, sizeof(*p));
}

#define SP_SESSION_MAX_AGE "31 days" /* longer than any session (session.absolute_timeout <= 30d) */

int store_saml_sp_session_put(store_t *st, const uint8_t session[STORE_HASH_LEN], const char *sp, const char *name_id,
                              const char *format, const char *session_index, const char *lasso_session)
{
    const int lengths[] = {STORE_HASH_LEN, 0, 0, 0, 0, 0};
    const char *p[] = {(const char *)session, sp, name_id, format, session_index, lasso_session};
    return store_run(
        st,
        "WITH purged AS (DELETE FROM saml_sp_sessions WHERE created_at < now() - interval '" SP_SESSION_MAX_AGE
        "') INSERT INTO saml_sp_sessions (session_hash, sp, name_id, name_id_format, session_index, "
        "lasso_session) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_hash, sp) DO UPDATE SET "
        "name_id = EXCLUDED.name_id, name_id_format = EXCLUDED.name_id_format, "
        "session_index = EXCLUDED.session_index, lasso_session = EXCLUDED.lasso_session, "
        "logout_state = NULL, created_at = now()",
        6, p, lengths);
}

int store_saml_sp_session_find(store_t *st, const char *sp, const char *name_id, const char *session_index,
                               uint8_t session[STORE_HASH_LEN], char **lasso_session)
{
    /* the SessionIndex names one sign-in; the NameID is then the caller's to check against the issued one */
    const char *p[] = {sp, session_index != NULL ? session_index : name_id};
    PGresult *res = store_exec(st,
                               session_index != NULL
                                   ? "SELECT session_hash, lasso_session FROM saml_sp_sessions WHERE sp = $1 AND "
                                     "session_index = $2 AND logout_state IS NULL ORDER BY created_at DESC LIMIT 1"
                                   : "SELECT session_hash, lasso_session FROM saml_sp_sessions WHERE sp = $1 AND "
                                     "name_id = $2 AND logout_state IS NULL ORDER BY created_at DESC LIMIT 1",
                               2, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0 || PQgetlength(res, 0, 0) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    /* bytea comes back in hex text form: \x + 64 digits */
    const char *hex = PQgetvalue(res, 0, 0);
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)hex, &len);
    if (raw == NULL || len != STORE_HASH_LEN) {
        PQfreemem(raw);
        PQclear(res);
        return -EIO;
    }
    memcpy(session, raw, STORE_HASH_LEN);
    PQfreemem(raw);
    *lasso_session = strdup(PQgetvalue(res, 0, 1));
    PQclear(res);
    return *lasso_session != NULL ? 0 : -ENOMEM;
}

int store_saml_sp_sessions_forget(store_t *st, const uint8_t session[STORE_HASH_LEN])
{
    const int lengths[] = {STORE_HASH_LEN};
    const char *p[] = {(const char *)session};
    return store_run(st, "DELETE FROM saml_sp_sessions WHERE session_hash = $1 AND logout_state IS NULL", 1, p,
                     lengths);
}

int store_saml_logout_start(store_t *st, const uint8_t session[STORE_HASH_LEN], const uint8_t state[STORE_HASH_LEN],
                            const store_saml_walk_t *walk, unsigned ttl)
{
    char secs[STORE_I64_LEN];
    store_i64(secs, ttl);
    const int lengths[] = {STORE_HASH_LEN, STORE_HASH_LEN, 0, 0, 0, 0, 0, STORE_HASH_LEN, 0};
    const char *p[] = {(const char *)session,
                       (const char *)state,
                       walk->initiator,
                       walk->binding,
                       walk->message,
                       walk->relay_state,
                       walk->lasso_session,
                       walk->has_browser ? (const char *)walk->browser : NULL,
                       secs};
    /* one statement: the walk row exists exactly when there is something to walk */
    PGresult *res = store_exec(
        st,
        "WITH purged AS (DELETE FROM saml_logout_walks WHERE expires_at < now()), "
        "marked AS (UPDATE saml_sp_sessions SET logout_state = $2 WHERE session_hash = $1 AND logout_state IS NULL "
        "AND sp IS DISTINCT FROM $3::text RETURNING 1), "
        "walk AS (INSERT INTO saml_logout_walks (state_hash, initiator, binding, message, relay_state, lasso_session, "
        "browser_hash, expires_at) SELECT $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9::bigint) "
        "WHERE EXISTS (SELECT 1 FROM marked)) "
        "SELECT count(*) FROM marked",
        9, p, lengths);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    rc = PQntuples(res) == 1 ? (int)strtol(PQgetvalue(res, 0, 0), NULL, 10) : -EIO;
    PQclear(res);
    return rc;
}

int store_saml_logout_next(store_t *st, const uint8_t state[STORE_HASH_LEN], const uint8_t *browser, char **sp,
                           char **lasso_session)
{
    const int lengths[] = {STORE_HASH_LEN, STORE_HASH_LEN};
    const char *p[] = {(const char *)state, (const char *)browser};
    PGresult *res = store_exec(st,
                               "DELETE FROM saml_sp_sessions WHERE ctid = (SELECT s.ctid FROM saml_sp_sessions s "
                               "JOIN saml_logout_walks w ON w.state_hash = s.logout_state WHERE s.logout_state = $1 "
                               "AND w.expires_at > now() AND w.browser_hash = $2 "
                               "ORDER BY s.sp LIMIT 1 FOR UPDATE OF s SKIP LOCKED) RETURNING sp, lasso_session",
                               2, p, lengths);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    *sp = strdup(PQgetvalue(res, 0, 0));
    *lasso_session = strdup(PQgetvalue(res, 0, 1));
    PQclear(res);
    if (*sp == NULL || *lasso_session == NULL) {
        free(*sp);
        free(*lasso_session);
        return -ENOMEM;
    }
    return 0;
}

int store_saml_logout_partial(store_t *st, const uint8_t state[STORE_HASH_LEN])
{
    const int lengths[] = {STORE_HASH_LEN};
    const char *p[] = {(const char *)state};
    return store_run(st, "UPDATE saml_logout_walks SET partial = true WHERE state_hash = $1", 1, p, lengths);
}

static char *dup_or_null(PGresult *res, int col, int *failed)
{
    if (PQgetisnull(res, 0, col))
        return NULL;
    char *s = strdup(PQgetvalue(res, 0, col));
    *failed |= s == NULL;
    return s;
}

int store_saml_logout_walk_get(store_t *st, const uint8_t state[STORE_HASH_LEN], store_saml_walk_t *out)
{
    const int lengths[] = {STORE_HASH_LEN};
    const char *p[] = {(const char *)state};
    memset(out, 0, sizeof(*out));
    PGresult *res = store_exec(st,
                               "SELECT initiator, binding, message, relay_state, lasso_session, browser_hash, partial "
                               "FROM saml_logout_walks WHERE state_hash = $1 AND expires_at > now()",
                               1, p, lengths);
    int rc = store_result_status(res, 1), failed = 0;
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    out->initiator = dup_or_null(res, 0, &failed);
    out->binding = dup_or_null(res, 1, &failed);
    out->message = dup_or_null(res, 2, &failed);
    out->relay_state = dup_or_null(res, 3, &failed);
    out->lasso_session = dup_or_null(res, 4, &failed);
    out->partial = strcmp(PQgetvalue(res, 0, 6), "t") == 0;
    if (!PQgetisnull(res, 0, 5)) { /* bytea comes back in hex text form */
        size_t len = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 5), &len);
        if (raw != NULL && len == STORE_HASH_LEN) {
            memcpy(out->browser, raw, STORE_HASH_LEN);
            out->has_browser = 1;
        } else {
            failed = 1;
        }
        PQfreemem(raw);
    }
    PQclear(res);
    if (failed) {
        store_saml_walk_dispose(out);
        return -EIO;
    }
    return 0;
}

int store_saml_logout_walk_take(store_t *st, const uint8_t state[STORE_HASH_LEN])
{
    const int lengths[] = {STORE_HASH_LEN};
    const char *p[] = {(const char *)state};
    return store_run_one(st, "DELETE FROM saml_logout_walks WHERE state_hash = $1", 1, p, lengths);
}

void store_saml_walk_dispose(store_saml_walk_t *w)
{
    free(w->initiator);
    free(w->binding);
    free(w->message);
    free(w->relay_state);
    free(w->lasso_session);
    memset(w, 0, sizeof(*w));
}
