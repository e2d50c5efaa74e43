/*
 * Schema migrations: the SQL files of store/migrations/ are compiled into the binary (store_migrations[],
 * generated) and applied in version order. Each file runs with its bookkeeping row in schema_migrations in one
 * transaction, so a failed migration leaves nothing behind. A session-level advisory lock serialises instances
 * that migrate at the same time: the second one waits, then finds nothing left to do.
 *
 * A migration file holds many statements, which the extended protocol (PQexecParams) refuses; it is sent with
 * PQexec (simple protocol). That is the only statement not sent through store_exec, and it carries no values.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

#define MIGRATION_LOCK_KEY "7370001" /* pg_advisory_lock key reserved for migrations */
#define LOG_MSG_LEN        512

void store_say(void (*log)(void *ctx, const char *msg), void *ctx, const char *fmt, ...)
{
    char msg[LOG_MSG_LEN];
    va_list ap;
    if (log == NULL)
        return;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        msg[0] = '\0';
    va_end(ap);
    size_t l = strlen(msg);
    while (l > 0 && (msg[l - 1] == '\n' || msg[l - 1] == ' '))
        msg[--l] = '\0';
    log(ctx, msg);
}

static int is_applied(PGresult *applied, int version)
{
    for (int i = 0; i != PQntuples(applied); ++i)
        if (strtol(PQgetvalue(applied, i, 0), NULL, 10) == version)
            return 1;
    return 0;
}

static int is_known(int version)
{
    for (const store_migration_t *m = store_migrations; m->name != NULL; ++m)
        if (m->version == version)
            return 1;
    return 0;
}

/* Applies one migration with its bookkeeping row in one transaction. */
static int apply(store_t *st, const store_migration_t *m, void (*log)(void *ctx, const char *msg), void *ctx)
{
    char version[STORE_I64_LEN];
    int rc;

    store_i64(version, m->version);
    if ((rc = store_begin(st)) != 0)
        return rc;
    st->queries++;
    PGresult *res = PQexec(st->conn, m->sql);
    if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)) {
        store_say(log, ctx, "migration %s failed: %s", m->name,
                  res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(st->conn));
        PQclear(res);
        store_rollback(st);
        return -EIO;
    }
    PQclear(res);
    const char *p[] = {version, m->name};
    rc = store_run(st, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, p, NULL);
    if (rc == 0)
        rc = store_commit(st);
    if (rc != 0) {
        store_rollback(st);
        store_say(log, ctx, "migration %s failed: could not record it", m->name);
        return -EIO;
    }
    store_say(log, ctx, "applied migration %s", m->name);
    return 0;
}

int store_migrate(store_t *st, void (*log)(void *ctx, const char *msg), void *ctx)
{
    static const char *const lock_key[] = {MIGRATION_LOCK_KEY};
    PGresult *applied = NULL;
    int count = 0, rc;

    if ((rc = store_run(st, "SELECT pg_advisory_lock($1::bigint)", 1, lock_key, NULL)) != 0)
        return -EIO;
    rc = store_run(st,
                   "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                   "applied_at timestamptz NOT NULL DEFAULT now())",
                   0, NULL, NULL);
    if (rc == 0) {
        applied = store_exec(st, "SELECT version FROM schema_migrations ORDER BY version", 0, NULL, NULL);
        rc = store_result_status(applied, 1);
        if (rc != 0)
            applied = NULL;
    }
    if (rc == 0) {
        for (int i = 0; i != PQntuples(applied); ++i) /* the database is newer than this binary: say so */
            if (!is_known((int)strtol(PQgetvalue(applied, i, 0), NULL, 10)))
                store_say(log, ctx, "database has migration %s, unknown to this binary", PQgetvalue(applied, i, 0));
        for (const store_migration_t *m = store_migrations; m->name != NULL; ++m) {
            if (is_applied(applied, m->version))
                continue;
            if ((rc = apply(st, m, log, ctx)) != 0)
                break;
            ++count;
        }
    }
    PQclear(applied);
    /* On a lost connection the lock went with the session; this then runs (harmlessly) on the new one. */
    (void)store_run(st, "SELECT pg_advisory_unlock($1::bigint)", 1, lock_key, NULL);
    return rc == 0 ? count : -EIO;
}
