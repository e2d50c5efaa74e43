/*
 * SAML broker state (portier as a service provider to enterprise IdPs): AuthnRequests waiting for their answer,
 * the assertion-ID replay cache, and external identities linked to users. Hashes travel as binary bytea
 * parameters; every other value is a bound text parameter.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

int store_saml_sp_request_put(store_t *st, const uint8_t state[STORE_HASH_LEN], const uint8_t browser[STORE_HASH_LEN],
                              const char *request_id, const char *idp, const char *return_to, unsigned ttl)
{
    char secs[STORE_I64_LEN];
    const int lengths[] = {STORE_HASH_LEN, STORE_HASH_LEN, 0, 0, 0, 0};
    store_i64(secs, ttl);
    const char *p[] = {(const char *)state, (const char *)browser, request_id, idp, return_to, secs};
    return store_run(st,
                     "WITH purged AS (DELETE FROM saml_sp_requests WHERE expires_at < now()) "
                     "INSERT INTO saml_sp_requests (state_hash, browser_hash, request_id, idp, return_to, expires_at) "
                     "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::bigint))",
                     6, p, lengths);
}

int store_saml_sp_request_take(store_t *st, const uint8_t state[STORE_HASH_LEN], store_saml_sp_request_t *out)
{
    const int lengths[] = {STORE_HASH_LEN};
    const char *p[] = {(const char *)state};
    memset(out, 0, sizeof(*out));
    /* single use: whatever the response turns out to be, the request is spent */
    PGresult *res = store_exec(st,
                               "DELETE FROM saml_sp_requests WHERE state_hash = $1 "
                               "RETURNING browser_hash, request_id, idp, return_to, expires_at > now()",
                               1, p, lengths);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 4), "t") != 0) {
        rc = -ENOENT;
    } else {
        size_t n = 0;
        unsigned char *bin = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 0), &n);
        if (bin != NULL && n == STORE_HASH_LEN)
            memcpy(out->browser_hash, bin, STORE_HASH_LEN);
        PQfreemem(bin);
        out->request_id = strdup(PQgetvalue(res, 0, 1));
        out->idp = strdup(PQgetvalue(res, 0, 2));
        out->return_to = strdup(PQgetvalue(res, 0, 3));
        if (n != STORE_HASH_LEN || out->request_id == NULL || out->idp == NULL || out->return_to == NULL) {
            store_saml_sp_request_dispose(out);
            rc = -ENOMEM;
        }
    }
    PQclear(res);
    return rc;
}

void store_saml_sp_request_dispose(store_saml_sp_request_t *r)
{
    free(r->request_id);
    free(r->idp);
    free(r->return_to);
    memset(r, 0, sizeof(*r));
}

int store_saml_sp_assertion_seen(store_t *st, const char *idp, const char *assertion_id, int64_t expires_at)
{
    char until[STORE_I64_LEN];
    store_i64(until, expires_at);
    const char *p[] = {idp, assertion_id, until};
    int rc = store_run_one(st,
                           "WITH purged AS (DELETE FROM saml_sp_assertions WHERE expires_at < now()) "
                           "INSERT INTO saml_sp_assertions (idp, assertion_id, expires_at) "
                           "VALUES ($1, $2, to_timestamp($3::bigint)) ON CONFLICT DO NOTHING",
                           3, p, NULL);
    return rc == -ENOENT ? -EEXIST : rc;
}

int store_saml_sp_identity_user(store_t *st, const char *idp, const char *name_id, int64_t *user_id)
{
    const char *p[] = {idp, name_id};
    PGresult *res = store_exec(st,
                               "UPDATE saml_sp_identities SET last_login = now() WHERE idp = $1 AND name_id = $2 "
                               "RETURNING user_id",
                               2, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0)
        rc = -ENOENT;
    else
        *user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return rc;
}

int store_saml_sp_identity_link(store_t *st, const char *idp, const char *name_id, int64_t user_id)
{
    char id[STORE_I64_LEN];
    store_i64(id, user_id);
    const char *p[] = {idp, name_id, id};
    return store_run(st, "INSERT INTO saml_sp_identities (idp, name_id, user_id) VALUES ($1, $2, $3)", 3, p, NULL);
}

int store_user_get_by_email(store_t *st, const char *email, store_user_t *out)
{
    const char *p[] = {email};
    int row = 0;
    /* an address shared by two users identifies neither */
    PGresult *res = store_exec(st,
                               "SELECT " STORE_USER_COLUMNS " FROM users u" STORE_USER_JOIN
                               " WHERE u.id = (SELECT min(id) FROM users WHERE lower(email) = lower($1) "
                               "HAVING count(*) = 1) ORDER BY " STORE_GROUP_ORDER,
                               1, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    rc = PQntuples(res) == 0 ? -ENOENT : store_user_read(res, &row, 0, out);
    PQclear(res);
    return rc;
}

int store_user_set_profile(store_t *st, int64_t user_id, const char *email, const char *display_name)
{
    char id[STORE_I64_LEN], payload[STORE_PAYLOAD_LEN];
    store_i64(id, user_id);
    const char *p[] = {id, email, display_name};
    int rc = store_begin(st);
    if (rc != 0)
        return rc;
    /* NULL keeps the current value; only a real change counts (and refreshes cached identities) */
    rc = store_run_one(st,
                       "UPDATE users SET email = coalesce($2, email), display_name = coalesce($3, display_name), "
                       "updated_at = now(), version = version + 1 WHERE id = $1 AND "
                       "(email, display_name) IS DISTINCT FROM (coalesce($2, email), coalesce($3, display_name))",
                       3, p, NULL);
    if (rc == 0) {
        store_user_payload(user_id, payload);
        rc = store_notify(st, payload);
    }
    int changed = rc == 0;
    if (rc == -ENOENT)
        rc = 0;
    rc = store_end(st, rc);
    return rc != 0 ? rc : changed;
}

int store_saml_sp_login_put(store_t *st, const uint8_t session[STORE_HASH_LEN], const char *idp, const char *name_id,
                            const char *format, const char *session_index)
{
    const int lengths[] = {STORE_HASH_LEN, 0, 0, 0, 0};
    const char *p[] = {(const char *)session, idp, name_id, format, session_index};
    return store_run(st,
                     "INSERT INTO saml_sp_logins (session_hash, idp, name_id, name_id_format, session_index) "
                     "VALUES ($1, $2, $3, $4, $5)",
                     5, p, lengths);
}

int store_saml_sp_logout(store_t *st, const char *idp, const char *name_id, const char *session_index)
{
    const char *p[] = {idp, name_id, session_index};
    PGresult *res = store_exec(st,
                               "SELECT session_hash FROM saml_sp_logins WHERE idp = $1 AND name_id = $2 AND "
                               "($3::text IS NULL OR session_index = $3)",
                               3, p, NULL);
    int rc = store_result_status(res, 1), ended = 0;
    if (rc != 0)
        return rc;
    /* each session is deleted (and announced to every instance) as a logout of its own would be */
    for (int i = 0; i != PQntuples(res) && rc == 0; ++i) {
        size_t n = 0;
        unsigned char *bin = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 0), &n);
        if (bin != NULL && n == STORE_HASH_LEN) {
            int r = store_session_delete(st, bin);
            ended += r == 0;
            rc = r == -ENOENT ? 0 : r;
        }
        PQfreemem(bin);
    }
    PQclear(res);
    return rc != 0 ? rc : ended;
}

int store_saml_sp_login_get(store_t *st, const uint8_t session[STORE_HASH_LEN], char **idp, char **name_id,
                            char **format, char **session_index)
{
    const int lengths[] = {STORE_HASH_LEN};
    const char *p[] = {(const char *)session};
    *idp = *name_id = *format = *session_index = NULL;
    PGresult *res =
        store_exec(st, "SELECT idp, name_id, session_index, name_id_format FROM saml_sp_logins WHERE session_hash = $1",
                   1, p, lengths);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0) {
        rc = -ENOENT;
    } else {
        *idp = strdup(PQgetvalue(res, 0, 0));
        *name_id = strdup(PQgetvalue(res, 0, 1));
        *session_index = PQgetisnull(res, 0, 2) ? NULL : strdup(PQgetvalue(res, 0, 2));
        *format = PQgetisnull(res, 0, 3) ? NULL : strdup(PQgetvalue(res, 0, 3));
        if (*idp == NULL || *name_id == NULL)
            rc = -ENOMEM;
    }
    PQclear(res);
    return rc;
}

int store_saml_sp_logout_put(store_t *st, const uint8_t state[STORE_HASH_LEN], const char *request_id, const char *idp,
                             const char *next, unsigned ttl)
{
    char secs[STORE_I64_LEN];
    const int lengths[] = {STORE_HASH_LEN, 0, 0, 0, 0};
    store_i64(secs, ttl);
    const char *p[] = {(const char *)state, request_id, idp, next, secs};
    return store_run(st,
                     "WITH purged AS (DELETE FROM saml_sp_logouts WHERE expires_at < now()) "
                     "INSERT INTO saml_sp_logouts (state_hash, request_id, idp, next, expires_at) "
                     "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::bigint))",
                     5, p, lengths);
}

int store_saml_sp_logout_take(store_t *st, const uint8_t state[STORE_HASH_LEN], char **request_id, char **idp,
                              char **next)
{
    const int lengths[] = {STORE_HASH_LEN};
    const char *p[] = {(const char *)state};
    *request_id = *idp = *next = NULL;
    PGresult *res = store_exec(st,
                               "DELETE FROM saml_sp_logouts WHERE state_hash = $1 RETURNING request_id, idp, next, "
                               "expires_at > now()",
                               1, p, lengths);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 3), "t") != 0) {
        rc = -ENOENT;
    } else {
        *request_id = strdup(PQgetvalue(res, 0, 0));
        *idp = strdup(PQgetvalue(res, 0, 1));
        *next = strdup(PQgetvalue(res, 0, 2));
        if (*request_id == NULL || *idp == NULL || *next == NULL)
            rc = -ENOMEM;
    }
    PQclear(res);
    return rc;
}
