/*
 * Second factors, recovery codes and the half-authenticated challenges of store.h. Secrets arrive sealed and
 * recovery codes hashed: nothing stored here opens without the key kept outside the database.
 *
 * Replay protection lives in the UPDATEs: a TOTP step is recorded only when it is later than the stored one,
 * an HOTP counter only moves from the value the caller verified against, a recovery code is marked used only
 * while unused. Two instances racing with the same code: one UPDATE wins, the other touches no row.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

#define FACTOR_COLUMNS                                                                                                 \
    "id, confirmed_at IS NOT NULL, kind, algorithm, digits, period, last_step, counter, "                              \
    "extract(epoch FROM created_at)::bigint, secret_sealed"

static const int hash_len[] = {STORE_HASH_LEN};

void store_mfa_factor_dispose(store_mfa_factor_t *f)
{
    if (f == NULL)
        return;
    free(f->sealed);
    memset(f, 0, sizeof(*f));
}

int store_mfa_get(store_t *st, int64_t user_id, int confirmed, store_mfa_factor_t *out)
{
    char uid[STORE_I64_LEN];
    store_i64(uid, user_id);
    const char *p[] = {uid};
    /* the sealed secret comes back in binary (no bytea hex decoding) */
    PGresult *res = store_exec(
        st,
        confirmed ? "SELECT " FACTOR_COLUMNS " FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL"
                  : "SELECT " FACTOR_COLUMNS " FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NULL",
        1, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    memset(out, 0, sizeof(*out));
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    out->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    out->confirmed = PQgetvalue(res, 0, 1)[0] == 't';
    snprintf(out->kind, sizeof(out->kind), "%s", PQgetvalue(res, 0, 2));
    snprintf(out->algorithm, sizeof(out->algorithm), "%s", PQgetvalue(res, 0, 3));
    out->digits = (unsigned)strtoul(PQgetvalue(res, 0, 4), NULL, 10);
    out->period = (unsigned)strtoul(PQgetvalue(res, 0, 5), NULL, 10);
    out->last_step = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
    out->counter = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
    out->created_at = (time_t)strtoll(PQgetvalue(res, 0, 8), NULL, 10);
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 9), &len);
    if (raw == NULL || (out->sealed = malloc(len ? len : 1)) == NULL) {
        PQfreemem(raw);
        PQclear(res);
        return -ENOMEM;
    }
    memcpy(out->sealed, raw, len);
    out->sealed_len = len;
    PQfreemem(raw);
    PQclear(res);
    return 0;
}

int store_mfa_begin(store_t *st, int64_t user_id, store_mfa_factor_t *f)
{
    char uid[STORE_I64_LEN], digits[STORE_I64_LEN], period[STORE_I64_LEN];
    store_i64(uid, user_id);
    store_i64(digits, f->digits);
    store_i64(period, f->period);
    int rc = store_begin(st);
    if (rc == 0) {
        const char *p[] = {uid};
        rc = store_run(st, "DELETE FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NULL", 1, p, NULL);
    }
    if (rc == 0) {
        const char *p[] = {uid, f->kind, (const char *)f->sealed, f->algorithm, digits, period};
        const int lengths[] = {0, 0, (int)f->sealed_len, 0, 0, 0};
        PGresult *res = store_exec(st,
                                   "INSERT INTO mfa_factors (user_id, kind, secret_sealed, algorithm, digits, period) "
                                   "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                                   6, p, lengths);
        rc = store_result_status(res, 1);
        if (rc == 0) {
            f->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            PQclear(res);
        }
    }
    return store_end(st, rc);
}

static int insert_codes(store_t *st, const char *uid, const uint8_t (*hashes)[STORE_HASH_LEN], size_t n)
{
    const char *p[] = {uid};
    int rc = store_run(st, "DELETE FROM mfa_recovery_codes WHERE user_id = $1", 1, p, NULL);
    for (size_t i = 0; rc == 0 && i != n; ++i) {
        const char *q[] = {uid, (const char *)hashes[i]};
        const int lengths[] = {0, STORE_HASH_LEN};
        rc = store_run(st, "INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES ($1, $2)", 2, q, lengths);
    }
    return rc;
}

int store_mfa_confirm(store_t *st, int64_t user_id, int64_t factor_id, int64_t last_step, int64_t counter,
                      const uint8_t (*hashes)[STORE_HASH_LEN], size_t n)
{
    char uid[STORE_I64_LEN], fid[STORE_I64_LEN], step[STORE_I64_LEN], ctr[STORE_I64_LEN];
    store_i64(uid, user_id);
    store_i64(fid, factor_id);
    store_i64(step, last_step);
    store_i64(ctr, counter);
    int rc = store_begin(st);
    if (rc == 0) {
        const char *p[] = {uid, fid};
        rc = store_run(st, "DELETE FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL AND id <> $2", 2, p,
                       NULL);
    }
    if (rc == 0) {
        const char *p[] = {fid, uid, step, ctr};
        rc = store_run_one(st,
                           "UPDATE mfa_factors SET confirmed_at = now(), last_step = $3, counter = $4 "
                           "WHERE id = $1 AND user_id = $2 AND confirmed_at IS NULL",
                           4, p, NULL);
    }
    if (rc == 0)
        rc = insert_codes(st, uid, hashes, n);
    return store_end(st, rc);
}

int store_mfa_accept_step(store_t *st, int64_t factor_id, int64_t step)
{
    char fid[STORE_I64_LEN], s[STORE_I64_LEN];
    store_i64(fid, factor_id);
    store_i64(s, step);
    const char *p[] = {fid, s};
    int rc = store_run_one(st, "UPDATE mfa_factors SET last_step = $2 WHERE id = $1 AND last_step < $2", 2, p, NULL);
    return rc == -ENOENT ? -ESTALE : rc;
}

int store_mfa_accept_counter(store_t *st, int64_t factor_id, int64_t expected, int64_t next)
{
    char fid[STORE_I64_LEN], e[STORE_I64_LEN], n[STORE_I64_LEN];
    store_i64(fid, factor_id);
    store_i64(e, expected);
    store_i64(n, next);
    const char *p[] = {fid, e, n};
    int rc =
        store_run_one(st, "UPDATE mfa_factors SET counter = $3 WHERE id = $1 AND counter = $2 AND $3 > $2", 3, p, NULL);
    return rc == -ENOENT ? -ESTALE : rc;
}

static int count_left(store_t *st, const char *uid, unsigned *left)
{
    const char *p[] = {uid};
    PGresult *res =
        store_exec(st, "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL", 1, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc == 0) {
        *left = (unsigned)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
    }
    return rc;
}

int store_mfa_recovery_left(store_t *st, int64_t user_id, unsigned *left)
{
    char uid[STORE_I64_LEN];
    store_i64(uid, user_id);
    return count_left(st, uid, left);
}

int store_mfa_recovery_use(store_t *st, int64_t user_id, const uint8_t hash[STORE_HASH_LEN], unsigned *left)
{
    char uid[STORE_I64_LEN];
    store_i64(uid, user_id);
    const char *p[] = {uid, (const char *)hash};
    const int lengths[] = {0, STORE_HASH_LEN};
    int rc = store_run_one(st,
                           "UPDATE mfa_recovery_codes SET used_at = now() "
                           "WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
                           2, p, lengths);
    if (rc != 0 || left == NULL)
        return rc;
    (void)count_left(st, uid, left); /* the code is spent either way */
    return 0;
}

int store_mfa_recovery_replace(store_t *st, int64_t user_id, const uint8_t (*hashes)[STORE_HASH_LEN], size_t n)
{
    char uid[STORE_I64_LEN];
    store_i64(uid, user_id);
    int rc = store_begin(st);
    if (rc == 0)
        rc = insert_codes(st, uid, hashes, n);
    return store_end(st, rc);
}

int store_mfa_remove(store_t *st, int64_t user_id, int end_sessions)
{
    char uid[STORE_I64_LEN], payload[STORE_PAYLOAD_LEN];
    store_i64(uid, user_id);
    const char *p[] = {uid};
    static const char *const statements[] = {
        "DELETE FROM mfa_factors WHERE user_id = $1",
        "DELETE FROM mfa_recovery_codes WHERE user_id = $1",
        "DELETE FROM mfa_challenges WHERE user_id = $1",
        "DELETE FROM sessions WHERE user_id = $1",
    };
    size_t n = end_sessions ? 4 : 3;
    int rc = store_begin(st);
    for (size_t i = 0; rc == 0 && i != n; ++i)
        rc = store_run(st, statements[i], 1, p, NULL);
    if (rc == 0 && end_sessions) {
        store_user_payload(user_id, payload);
        rc = store_notify(st, payload);
    }
    return store_end(st, rc);
}

int store_challenge_create(store_t *st, const uint8_t hash[STORE_HASH_LEN], int64_t user_id, const char *purpose,
                           const char *return_to, unsigned ttl)
{
    char uid[STORE_I64_LEN], t[STORE_I64_LEN];
    store_i64(uid, user_id);
    store_i64(t, ttl);
    const char *p[] = {(const char *)hash, uid, purpose, return_to, t};
    const int lengths[] = {STORE_HASH_LEN, 0, 0, 0, 0};
    /* a user has one pending challenge per browser; stale ones are swept on the way */
    int rc = store_run(st, "DELETE FROM mfa_challenges WHERE expires_at < now()", 0, NULL, NULL);
    if (rc == 0)
        rc = store_run(st,
                       "INSERT INTO mfa_challenges (id_hash, user_id, purpose, return_to, expires_at) "
                       "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::bigint))",
                       5, p, lengths);
    return rc;
}

int store_challenge_get(store_t *st, const uint8_t hash[STORE_HASH_LEN], int attempt, unsigned max_attempts,
                        int64_t *user_id, char purpose[8], char **return_to)
{
    char inc[2] = {attempt ? '1' : '0', '\0'};
    const char *p[] = {(const char *)hash, inc};
    const int lengths[] = {STORE_HASH_LEN, 0};
    PGresult *res =
        store_exec(st,
                   "UPDATE mfa_challenges SET attempts = attempts + $2::int "
                   "WHERE id_hash = $1 AND expires_at > now() RETURNING user_id, purpose, return_to, attempts",
                   2, p, lengths);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    if (strtoul(PQgetvalue(res, 0, 3), NULL, 10) > max_attempts) {
        PQclear(res);
        return store_challenge_delete(st, hash) == -EIO ? -EIO : -ESTALE;
    }
    *user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(purpose, 8, "%s", PQgetvalue(res, 0, 1));
    *return_to = strdup(PQgetvalue(res, 0, 2));
    PQclear(res);
    return *return_to != NULL ? 0 : -ENOMEM;
}

int store_challenge_delete(store_t *st, const uint8_t hash[STORE_HASH_LEN])
{
    const char *p[] = {(const char *)hash};
    return store_run(st, "DELETE FROM mfa_challenges WHERE id_hash = $1", 1, p, hash_len);
}
