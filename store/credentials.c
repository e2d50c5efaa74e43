/*
 * Password credentials and the per-account throttle.
 *
 * The throttle is a gate taken *before* a password is checked: one UPDATE that increments the account's
 * consecutive-failure count and sets its next lock-out, but only when the account is not locked. Parallel
 * attempts (on any number of instances) therefore serialise on the row, and no more passwords are checked than
 * the policy allows; a successful check then resets the count. Lock-out after n consecutive failures:
 *   n < free_attempts: none; n >= free_attempts: min(2^(n - free_attempts), max_delay) seconds;
 *   n >= hard_lock: until an administrator unlocks the account or a reset link is used.
 *
 * The gate commits without waiting for its WAL to reach the disk (synchronous_commit off for that one
 * transaction): the row lock and the new count are visible to every other attempt at once either way, and a
 * wrong password must not cost a flush that an unknown or disabled account does not (the answer's timing would
 * tell them apart: measured 5 ms on a busy disk). A PostgreSQL crash may forget the last fraction of a second of
 * increments; the audit events of those attempts are flushed as usual.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

int store_throttle_reserve(store_t *st, int64_t user_id, const store_throttle_policy_t *pol, int *allowed,
                           unsigned *failures)
{
    char uid[STORE_I64_LEN], free_s[16], max_s[16], hard_s[16];
    store_i64(uid, user_id);
    snprintf(free_s, sizeof(free_s), "%u", pol->free_attempts);
    snprintf(max_s, sizeof(max_s), "%u", pol->max_delay);
    snprintf(hard_s, sizeof(hard_s), "%u", pol->hard_lock);
    const char *p[] = {uid, free_s, max_s, hard_s};
    int rc = store_begin(st);
    if (rc == 0 && (rc = store_run(st, "SET LOCAL synchronous_commit = off", 0, NULL, NULL)) != 0)
        store_rollback(st);
    if (rc != 0)
        return rc;
    PGresult *res =
        store_exec(st,
                   "UPDATE users SET failed_logins = failed_logins + 1, locked_until = CASE "
                   "WHEN failed_logins + 1 >= $4::int THEN 'infinity'::timestamptz "
                   "WHEN failed_logins + 1 >= $2::int THEN now() + make_interval(secs => least($3::int, "
                   "power(2, least(failed_logins + 1 - $2::int, 30))::int)) ELSE NULL END "
                   "WHERE id = $1 AND (locked_until IS NULL OR locked_until <= now()) RETURNING failed_logins",
                   4, p, NULL);
    if ((rc = store_result_status(res, 1)) != 0) {
        store_rollback(st);
        return rc;
    }
    *allowed = PQntuples(res) == 1;
    if (failures != NULL)
        *failures = *allowed ? (unsigned)strtoul(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    if ((rc = store_commit(st)) != 0)
        store_rollback(st);
    return rc;
}

int store_throttle_reset(store_t *st, int64_t user_id)
{
    char uid[STORE_I64_LEN];
    store_i64(uid, user_id);
    const char *p[] = {uid};
    return store_run_one(st, "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1", 1, p, NULL);
}

int store_password_set(store_t *st, int64_t user_id, const char *hash)
{
    char uid[STORE_I64_LEN];
    store_i64(uid, user_id);
    const char *p[] = {uid, hash};
    return store_run(st,
                     "INSERT INTO password_credentials (user_id, hash) VALUES ($1, $2) ON CONFLICT (user_id) DO "
                     "UPDATE SET hash = EXCLUDED.hash, updated_at = now()",
                     2, p, NULL);
}

int store_password_change(store_t *st, int64_t user_id, const char *hash, const uint8_t keep_session[STORE_HASH_LEN])
{
    char uid[STORE_I64_LEN], payload[STORE_PAYLOAD_LEN];
    store_i64(uid, user_id);
    const char *p[] = {uid, (const char *)keep_session};
    static const int lengths[] = {0, STORE_HASH_LEN};
    int rc = store_begin(st);
    if (rc == 0)
        rc = store_password_set(st, user_id, hash);
    if (rc == 0)
        rc = store_run(st, "UPDATE one_time_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL", 1, p,
                       NULL);
    if (rc == 0)
        rc = store_run(st, "DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2", 2, p, lengths);
    if (rc == 0) {
        store_user_payload(user_id, payload);
        rc = store_notify(st, payload);
    }
    return store_end(st, rc);
}
