/*
 * Database roles: the audit trail is append-only in fact only when the role portier runs as (database.conninfo)
 * neither owns the schema's objects nor is a superuser. An owner can disable the audit table's triggers, grant
 * itself UPDATE again, or replace the trigger function with one that lets everything through.
 *
 * So migrations run as a separate owner role (database.admin_conninfo), and store_grant_runtime then gives the
 * runtime role exactly what it needs: rows of every table (read, insert, update, delete), except audit_events
 * (read and insert only) and schema_migrations (read only); sequences to draw ids from. Objects an earlier
 * single-role installation left owned by the runtime role (tables and functions) are handed to the owner role
 * first. Role and schema names go into the statements through quote_ident, computed by the server.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/internal.h"

/* One text value of a one-row query into out; 0 or -EIO. */
static int one_value(store_t *st, const char *sql, int nparams, const char *const *params, char *out, size_t outlen)
{
    PGresult *res = store_exec(st, sql, nparams, params, NULL);
    if (store_result_status(res, 1) != 0) /* res is freed */
        return -EIO;
    int rc = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && (size_t)PQgetlength(res, 0, 0) < outlen ? 0 : -EIO;
    if (rc == 0)
        memcpy(out, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0) + 1);
    PQclear(res);
    return rc;
}

int store_role_owns_audit(store_t *st)
{
    char v[8];
    int rc =
        one_value(st,
                  "SELECT r.rolsuper OR c.relowner = r.oid OR pg_has_role(c.relowner, 'USAGE') "
                  "FROM pg_class c, pg_roles r WHERE c.oid = 'audit_events'::regclass AND r.rolname = current_user",
                  0, NULL, v, sizeof(v));
    return rc != 0 ? rc : strcmp(v, "t") == 0;
}

/* Runs each statement of a NULL-terminated list of format strings, with %1$s the quoted runtime role and %2$s
 * the quoted schema. */
static int run_all(store_t *st, const char *const *stmts, const char *role, const char *schema,
                   void (*log)(void *ctx, const char *msg), void *ctx)
{
    for (; *stmts != NULL; ++stmts) {
        char sql[512];
        snprintf(sql, sizeof(sql), *stmts, role, schema);
        PGresult *res = store_exec(st, sql, 0, NULL, NULL);
        int ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok) /* the message names roles and tables, never values */
            store_say(log, ctx, "granting failed: %s", res != NULL ? PQresultErrorMessage(res) : "no connection");
        PQclear(res);
        if (!ok)
            return -EIO;
    }
    return 0;
}

/* Hands the schema's tables and functions that `role` owns to the current (owner) role. */
static int take_ownership(store_t *st, const char *role_name, void (*log)(void *ctx, const char *msg), void *ctx)
{
    const char *p[] = {role_name};
    PGresult *res = store_exec(st,
                               "SELECT 'ALTER TABLE ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
                               "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                               "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
                               "AND pg_get_userbyid(c.relowner) = $1 "
                               "UNION ALL SELECT 'ALTER FUNCTION ' || f.oid::regprocedure::text "
                               "FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace "
                               "WHERE n.nspname = current_schema() AND pg_get_userbyid(f.proowner) = $1",
                               1, p, NULL);
    if (store_result_status(res, 1) != 0) /* res is freed */
        return -EIO;
    int rc = 0;
    for (int i = 0; rc == 0 && i != PQntuples(res); ++i) {
        char sql[512];
        snprintf(sql, sizeof(sql), "%s OWNER TO CURRENT_USER", PQgetvalue(res, i, 0));
        if ((rc = store_run(st, sql, 0, NULL, NULL)) != 0)
            store_say(log, ctx, "cannot take over %s from %s (the owner role must be a superuser or a member of it)",
                      PQgetvalue(res, i, 0) + strlen("ALTER "), role_name);
        else
            store_say(log, ctx, "now owned by the owner role: %s", PQgetvalue(res, i, 0) + strlen("ALTER "));
    }
    PQclear(res);
    return rc;
}

int store_grant_runtime(store_t *admin, store_t *runtime, void (*log)(void *ctx, const char *msg), void *ctx)
{
    static const char *const grants[] = {
        "GRANT USAGE ON SCHEMA %2$s TO %1$s",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %2$s TO %1$s",
        "REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON %2$s.audit_events FROM %1$s",
        "REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON %2$s.schema_migrations FROM %1$s",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %2$s TO %1$s",
        NULL};
    char role[256], admin_role[256], quoted[600], schema[600], super[8];
    if (one_value(runtime, "SELECT current_user", 0, NULL, role, sizeof(role)) != 0 ||
        one_value(admin, "SELECT current_user", 0, NULL, admin_role, sizeof(admin_role)) != 0)
        return -EIO;
    if (strcmp(role, admin_role) == 0) {
        store_say(
            log, ctx,
            "database.conninfo and database.admin_conninfo use the same role (%s): the audit trail is append-only "
            "by trigger only; see README, 'Database roles'",
            role);
        return 0;
    }
    const char *p[] = {role};
    if (one_value(admin, "SELECT quote_ident($1)", 1, p, quoted, sizeof(quoted)) != 0 ||
        one_value(admin, "SELECT quote_ident(current_schema())", 0, NULL, schema, sizeof(schema)) != 0 ||
        one_value(admin, "SELECT rolsuper FROM pg_roles WHERE rolname = $1", 1, p, super, sizeof(super)) != 0)
        return -EIO;
    if (strcmp(super, "t") == 0)
        store_say(log, ctx, "the runtime role %s is a superuser: it can change the audit trail whatever is granted",
                  role);
    int rc = store_begin(admin);
    if (rc == 0 && (rc = take_ownership(admin, role, log, ctx)) == 0 &&
        (rc = run_all(admin, grants, quoted, schema, log, ctx)) == 0)
        rc = store_commit(admin);
    if (rc != 0) {
        store_rollback(admin);
        return -EIO;
    }
    store_say(log, ctx, "granted %s what it needs at run time (audit_events: read and insert only)", role);
    return 0;
}
