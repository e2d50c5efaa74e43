/*
 * One-time tokens (invitation/setup, password reset): only the SHA-256 of the token is stored, bound to one
 * user and one purpose, valid until expires_at and used at most once. Issuing a token voids the user's earlier
 * unused tokens of the same purpose. Redeeming one for a password is a single transaction: lock the token row,
 * check it, set the password, void every other outstanding token of the user (a credential change), end the
 * user's sessions (NOTIFY "user:<id>") and open the new session.
 *
 * A token of a disabled user is reported as -ESTALE: it cannot be used, like an expired one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

static const int hash_len[] = {STORE_HASH_LEN, 0}; /* $1 is the token hash (binary), $2 text */

int store_token_create(store_t *st, const uint8_t hash[STORE_HASH_LEN], int64_t user_id, const char *purpose,
                       unsigned ttl)
{
    char uid[STORE_I64_LEN], ttls[STORE_I64_LEN];
    const int lengths[] = {STORE_HASH_LEN, 0, 0, 0};

    store_i64(uid, user_id);
    store_i64(ttls, ttl);
    const char *p[] = {(const char *)hash, uid, purpose, ttls};
    int rc = store_begin(st);
    if (rc == 0)
        rc = store_run(st,
                       "UPDATE one_time_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 AND used_at "
                       "IS NULL",
                       2, p + 1, NULL);
    if (rc == 0)
        rc = store_run(st,
                       "INSERT INTO one_time_tokens (token_hash, user_id, purpose, expires_at) "
                       "VALUES ($1, $2, $3, now() + make_interval(secs => $4::bigint))",
                       4, p, lengths);
    return store_end(st, rc);
}

/* Looks the token up: 0 + user id when usable, -ENOENT unknown (or another purpose), -ESTALE used, expired or
 * user disabled. With lock (inside a transaction), the token row stays locked until commit; a concurrent
 * redeemer waits, and PostgreSQL re-evaluates the row it then sees (used: -ESTALE). */
static int check(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *purpose, int lock, int64_t *user_id)
{
#define TOKEN_SELECT                                                                                                   \
    "SELECT t.user_id, t.used_at IS NULL AND t.expires_at > now() AND NOT u.disabled FROM one_time_tokens t "          \
    "JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 AND t.purpose = $2"
    const char *p[] = {(const char *)hash, purpose};
    PGresult *res = store_exec(st, lock ? TOKEN_SELECT " FOR UPDATE OF t" : TOKEN_SELECT, 2, p, hash_len);
#undef TOKEN_SELECT
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0)
        rc = -ENOENT;
    else if (PQgetvalue(res, 0, 1)[0] != 't')
        rc = -ESTALE;
    else if (user_id != NULL)
        *user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return rc;
}

int store_token_peek(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *purpose, int64_t *user_id)
{
    return check(st, hash, purpose, 0, user_id);
}

int store_token_redeem_password(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *purpose,
                                const char *password_hash, const uint8_t session_hash[STORE_HASH_LEN],
                                const char *public_id, unsigned absolute_ttl, unsigned idle_timeout,
                                const char *source_addr, int64_t *user_id)
{
    char uid[STORE_I64_LEN], payload[STORE_PAYLOAD_LEN];
    int64_t id = 0;
    int rc = store_begin(st);
    if (rc == 0)
        rc = check(st, hash, purpose, 1, &id);
    if (rc == 0) {
        store_i64(uid, id);
        const char *p[] = {uid, password_hash};
        rc = store_run(st,
                       "INSERT INTO password_credentials (user_id, hash) VALUES ($1, $2) ON CONFLICT (user_id) DO "
                       "UPDATE SET hash = EXCLUDED.hash, updated_at = now()",
                       2, p, NULL);
    }
    if (rc == 0) {
        /* Marks this token used, and voids every other outstanding token of the user (credential change). */
        const char *p[] = {uid};
        rc = store_run(st, "UPDATE one_time_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL", 1, p,
                       NULL);
        if (rc == 0)
            rc = store_run(st, "DELETE FROM sessions WHERE user_id = $1", 1, p, NULL);
        /* a reset link also lifts a lockout */
        if (rc == 0)
            rc = store_run(st, "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1", 1, p, NULL);
    }
    if (rc == 0) {
        store_user_payload(id, payload);
        rc = store_notify(st, payload);
    }
    if (rc == 0 && session_hash != NULL)
        rc = store_session_create(st, session_hash, public_id, id, absolute_ttl, idle_timeout, source_addr);
    if (rc == 0)
        rc = store_commit(st);
    if (rc != 0) {
        store_rollback(st);
        return rc;
    }
    if (user_id != NULL)
        *user_id = id;
    return 0;
}
