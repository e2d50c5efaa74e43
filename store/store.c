/*
 * store: the connection, the one query helper every statement goes through (parameters only, never string
 * pasting), transactions, and the mapping of PostgreSQL errors to our error codes (SQLSTATE, never messages).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "store/internal.h"

#define SQLSTATE_UNIQUE_VIOLATION "23505"

static void ignore_notice(void *arg, const char *message)
{
}

static int connect_now(store_t *st, char *err, size_t errlen)
{
    st->conn = PQconnectdb(st->conninfo);
    if (PQstatus(st->conn) != CONNECTION_OK) {
        if (err != NULL) {
            snprintf(err, errlen, "%s", PQerrorMessage(st->conn));
            size_t l = strlen(err);
            while (l > 0 && (err[l - 1] == '\n' || err[l - 1] == ' '))
                err[--l] = '\0';
        }
        PQfinish(st->conn);
        st->conn = NULL;
        return -1;
    }
    PQsetNoticeProcessor(st->conn, ignore_notice, NULL);
    /* Predictable text rendering for anything we read back. */
    PGresult *res = PQexec(st->conn, "SET TIME ZONE 'UTC'");
    PQclear(res);
    return 0;
}

store_t *store_open(const char *conninfo, char *err, size_t errlen)
{
    store_t *st = calloc(1, sizeof(*st));
    if (st == NULL || (st->conninfo = strdup(conninfo)) == NULL) {
        free(st);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (connect_now(st, err, errlen) != 0) {
        free(st->conninfo);
        free(st);
        return NULL;
    }
    return st;
}

void store_close(store_t *st)
{
    if (st == NULL)
        return;
    if (st->conn != NULL)
        PQfinish(st->conn);
    OPENSSL_cleanse(st->audit_key, sizeof(st->audit_key));
    free(st->conninfo);
    free(st);
}

int store_set_audit_key(store_t *st, const uint8_t *key, size_t len)
{
    if (len > sizeof(st->audit_key))
        return -EINVAL;
    memcpy(st->audit_key, key, len);
    st->audit_key_len = len;
    return 0;
}

uint64_t store_query_count(const store_t *st)
{
    return st->queries;
}

PGresult *store_exec(store_t *st, const char *sql, int nparams, const char *const *values, const int *lengths)
{
    if (st->conn == NULL || PQstatus(st->conn) != CONNECTION_OK) {
        if (st->conn != NULL) {
            PQfinish(st->conn);
            st->conn = NULL;
        }
        if (connect_now(st, NULL, 0) != 0)
            return NULL;
    }
    int formats[16] = {0};
    for (int i = 0; i < nparams && i < 16; ++i)
        formats[i] = lengths != NULL && lengths[i] > 0;
    st->queries++;
    PGresult *res = PQexecParams(st->conn, sql, nparams, NULL, values, lengths, formats, 0);
    if (res == NULL || PQstatus(st->conn) != CONNECTION_OK) {
        PQclear(res);
        /* the next call reconnects; the caller reports -EIO */
        PQfinish(st->conn);
        st->conn = NULL;
        return NULL;
    }
    return res;
}

int store_result_status(PGresult *res, int keep)
{
    int rc;
    if (res == NULL)
        return -EIO;
    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
        rc = 0;
        break;
    default: {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        rc = state != NULL && strcmp(state, SQLSTATE_UNIQUE_VIOLATION) == 0 ? -EEXIST : -EIO;
        if (rc == -EIO)
            fprintf(stderr, "{\"level\":\"error\",\"module\":\"store\",\"event\":\"sql.error\",\"sqlstate\":\"%s\"}\n",
                    state != NULL ? state : "?");
    }
    }
    if (!keep || rc != 0)
        PQclear(res);
    return rc;
}

static int simple(store_t *st, const char *sql)
{
    return store_result_status(store_exec(st, sql, 0, NULL, NULL), 0);
}

int store_begin(store_t *st)
{
    return simple(st, "BEGIN");
}

int store_commit(store_t *st)
{
    return simple(st, "COMMIT");
}

void store_rollback(store_t *st)
{
    if (st->conn != NULL && PQtransactionStatus(st->conn) != PQTRANS_IDLE)
        (void)simple(st, "ROLLBACK");
}

int store_ping(store_t *st)
{
    return simple(st, "SELECT 1");
}

int store_notify(store_t *st, const char *payload)
{
    const char *params[] = {STORE_NOTIFY_CHANNEL, payload};
    return store_result_status(store_exec(st, "SELECT pg_notify($1, $2)", 2, params, NULL), 0);
}

void store_session_payload(const uint8_t hash[STORE_HASH_LEN], char *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t pos = (size_t)snprintf(buf, len, "session:");
    for (size_t i = 0; i != STORE_HASH_LEN && pos + 2 < len; ++i) {
        buf[pos++] = hex[hash[i] >> 4];
        buf[pos++] = hex[hash[i] & 15];
    }
    buf[pos] = '\0';
}

/* ---- migrations ---- */

#define MIGRATION_LOCK "7370001"

int store_migrate(store_t *st, void (*log)(void *ctx, const char *msg), void *ctx)
{
    int applied = 0, rc;
    if ((rc = simple(st, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")")) != 0)
        return rc;
    rc = simple(st, "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                    "applied_at timestamptz NOT NULL DEFAULT now())");
    for (const store_migration_t *m = store_migrations; rc == 0 && m->name != NULL; ++m) {
        char version[16];
        snprintf(version, sizeof(version), "%d", m->version);
        const char *p[] = {version};
        PGresult *res = store_exec(st, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, p, NULL);
        if ((rc = store_result_status(res, 1)) != 0)
            break;
        int done = PQntuples(res) > 0;
        PQclear(res);
        if (done)
            continue;
        if ((rc = store_begin(st)) != 0)
            break;
        /* A migration file may hold many statements: simple query protocol, inside our transaction. */
        st->queries++;
        res = PQexec(st->conn, m->sql);
        if ((rc = store_result_status(res, 0)) == 0) {
            const char *q[] = {version, m->name};
            rc = store_result_status(
                store_exec(st, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, q, NULL), 0);
        }
        if (rc == 0)
            rc = store_commit(st);
        if (rc != 0) {
            store_rollback(st);
            if (log != NULL)
                log(ctx, PQerrorMessage(st->conn));
            break;
        }
        ++applied;
        if (log != NULL) {
            char msg[160];
            snprintf(msg, sizeof(msg), "applied migration %s", m->name);
            log(ctx, msg);
        }
    }
    (void)simple(st, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")");
    return rc == 0 ? applied : -EIO;
}
