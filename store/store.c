/*
 * store: the connection, the one query helper every statement goes through (PQexecParams with $n parameters,
 * bytea in binary format, never string pasting), transactions, NOTIFY, and the mapping of PostgreSQL errors
 * to our error codes (by SQLSTATE, never by message). A lost connection makes the current call fail with
 * -EIO; the next call outside a transaction reconnects (PQreset).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "store/internal.h"

#define SQLSTATE_UNIQUE_VIOLATION      "23505"
#define SQLSTATE_FOREIGN_KEY_VIOLATION "23503"
#define SQLSTATE_NOT_NULL_VIOLATION    "23502"
#define SQLSTATE_CHECK_VIOLATION       "23514"
#define SQLSTATE_CLASS_DATA_EXCEPTION  "22"

/* Notices ("relation already exists, skipping", ...) are expected and carry no information we act on. */
static void ignore_notice(void *arg, const char *message)
{
}

static void copy_error(PGconn *conn, char *err, size_t errlen)
{
    if (err == NULL || errlen == 0)
        return;
    snprintf(err, errlen, "%s", conn != NULL ? PQerrorMessage(conn) : "out of memory");
    size_t l = strlen(err);
    while (l > 0 && (err[l - 1] == '\n' || err[l - 1] == ' '))
        err[--l] = '\0';
}

store_t *store_open(const char *conninfo, char *err, size_t errlen)
{
    store_t *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        copy_error(NULL, err, errlen);
        return NULL;
    }
    st->conn = PQconnectdb(conninfo);
    if (st->conn == NULL || PQstatus(st->conn) != CONNECTION_OK) {
        copy_error(st->conn, err, errlen);
        PQfinish(st->conn);
        free(st);
        return NULL;
    }
    PQsetNoticeProcessor(st->conn, ignore_notice, NULL); /* kept across PQreset */
    return st;
}

void store_close(store_t *st)
{
    if (st == NULL)
        return;
    PQfinish(st->conn);
    OPENSSL_cleanse(st->audit_key, sizeof(st->audit_key));
    free(st);
}

int store_set_audit_key(store_t *st, const uint8_t *key, size_t len)
{
    if (len > sizeof(st->audit_key) || (len != 0 && key == NULL))
        return -EINVAL;
    OPENSSL_cleanse(st->audit_key, sizeof(st->audit_key));
    if (len != 0)
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
    int formats[STORE_MAX_PARAMS];

    if (nparams < 0 || nparams > STORE_MAX_PARAMS)
        return NULL;
    if (PQstatus(st->conn) != CONNECTION_OK) {
        /* Inside a transaction a new connection would run the rest of it in autocommit: fail instead. */
        if (st->in_tx)
            return NULL;
        PQreset(st->conn);
        if (PQstatus(st->conn) != CONNECTION_OK)
            return NULL;
        if (st->on_notify != NULL) { /* a new session listens on nothing */
            PGresult *listen = PQexec(st->conn, "LISTEN " STORE_NOTIFY_CHANNEL);
            int ok = PQresultStatus(listen) == PGRES_COMMAND_OK;
            PQclear(listen);
            if (!ok)
                return NULL;
        }
    }
    for (int i = 0; i < nparams; ++i)
        formats[i] = lengths != NULL && lengths[i] > 0;
    st->queries++;
    PGresult *res = PQexecParams(st->conn, sql, nparams, NULL, values, lengths, formats, 0);
    if (res == NULL || PQstatus(st->conn) != CONNECTION_OK) {
        PQclear(res); /* the caller reports -EIO; the next call outside a transaction reconnects */
        return NULL;
    }
    /* PostgreSQL sends a session its own notifications with the COMMIT's answer. Those of other sessions are the
     * listener thread's business: applied here, late, they would also spoil a cache fill running meanwhile. */
    if (st->on_notify != NULL)
        for (PGnotify *n; (n = PQnotifies(st->conn)) != NULL; PQfreemem(n))
            if (n->be_pid == PQbackendPID(st->conn))
                st->on_notify(st->notify_ctx, n->extra);
    return res;
}

int store_follow_own_notifications(store_t *st, void (*cb)(void *ctx, const char *payload), void *ctx)
{
    st->on_notify = cb;
    st->notify_ctx = ctx;
    return store_run(st, "LISTEN " STORE_NOTIFY_CHANNEL, 0, NULL, NULL);
}

int store_result_status(PGresult *res, int keep)
{
    int rc;

    if (res == NULL)
        return -EIO;
    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
        if (keep)
            return 0;
        rc = 0;
        break;
    default: {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state == NULL) {
            rc = -EIO;
        } else if (strcmp(state, SQLSTATE_UNIQUE_VIOLATION) == 0) {
            rc = -EEXIST;
        } else if (strcmp(state, SQLSTATE_FOREIGN_KEY_VIOLATION) == 0) {
            rc = -ENOENT;
        } else if (strncmp(state, SQLSTATE_CLASS_DATA_EXCEPTION, 2) == 0 ||
                   strcmp(state, SQLSTATE_NOT_NULL_VIOLATION) == 0 || strcmp(state, SQLSTATE_CHECK_VIOLATION) == 0) {
            rc = -EINVAL;
        } else {
            rc = -EIO;
        }
        if (rc == -EIO) /* the message may quote values: log the SQLSTATE only */
            fprintf(stderr,
                    "{\"level\":\"error\",\"module\":\"store\",\"event\":\"sql.error\",\"sqlstate\":\"%.5s\"}\n",
                    state != NULL ? state : "?????");
    }
    }
    PQclear(res);
    return rc;
}

int store_run(store_t *st, const char *sql, int nparams, const char *const *values, const int *lengths)
{
    return store_result_status(store_exec(st, sql, nparams, values, lengths), 0);
}

int store_run_one(store_t *st, const char *sql, int nparams, const char *const *values, const int *lengths)
{
    PGresult *res = store_exec(st, sql, nparams, values, lengths);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    rc = strcmp(PQcmdTuples(res), "0") == 0 ? -ENOENT : 0;
    PQclear(res);
    return rc;
}

int store_begin(store_t *st)
{
    if (st->in_tx) {
        st->nest++;
        return 0;
    }
    int rc = store_run(st, "BEGIN", 0, NULL, NULL);
    st->in_tx = rc == 0;
    return rc;
}

int store_commit(store_t *st)
{
    if (st->nest > 0) {
        st->nest--;
        return 0;
    }
    PGresult *res = store_exec(st, "COMMIT", 0, NULL, NULL);
    int rc = store_result_status(res, 1);
    if (rc == 0) {
        /* COMMIT of a failed transaction "succeeds" with the tag ROLLBACK: that is an error for us. */
        rc = strcmp(PQcmdStatus(res), "COMMIT") == 0 ? 0 : -EIO;
        PQclear(res);
        st->in_tx = 0;
    }
    return rc;
}

void store_rollback(store_t *st)
{
    if (st->nest > 0) { /* the outermost level rolls back (its callee reported the error) */
        st->nest--;
        return;
    }
    PGTransactionStatusType ts = PQtransactionStatus(st->conn);
    if (PQstatus(st->conn) == CONNECTION_OK && ts != PQTRANS_IDLE && ts != PQTRANS_UNKNOWN)
        (void)store_run(st, "ROLLBACK", 0, NULL, NULL);
    st->in_tx = 0;
    st->nest = 0;
}

int store_end(store_t *st, int rc)
{
    if (rc == 0)
        rc = store_commit(st);
    if (rc != 0)
        store_rollback(st);
    return rc;
}

int store_ping(store_t *st)
{
    return store_run(st, "SELECT 1", 0, NULL, NULL);
}

int store_notify(store_t *st, const char *payload)
{
    const char *p[] = {STORE_NOTIFY_CHANNEL, payload};
    return store_run(st, "SELECT pg_notify($1, $2)", 2, p, NULL);
}

void store_user_payload(int64_t id, char buf[STORE_PAYLOAD_LEN])
{
    snprintf(buf, STORE_PAYLOAD_LEN, "user:%" PRId64, id);
}

void store_session_payload(const uint8_t hash[STORE_HASH_LEN], char buf[STORE_PAYLOAD_LEN])
{
    static const char digits[] = "0123456789abcdef";
    static const char prefix[] = "session:";
    size_t pos = sizeof(prefix) - 1;

    memcpy(buf, prefix, pos);
    for (size_t i = 0; i != STORE_HASH_LEN; ++i) {
        buf[pos++] = digits[hash[i] >> 4];
        buf[pos++] = digits[hash[i] & 15];
    }
    buf[pos] = '\0';
}
