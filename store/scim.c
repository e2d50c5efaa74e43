/*
 * SCIM provisioning storage: SCIM client tokens, users and groups as SCIM sees them, and memberships changed one
 * row at a time (a PATCH that adds one member to a group of thousands touches one row). Every change that alters
 * what a session may do (disable, delete, membership, group rename) NOTIFYs "user:<id>" inside the transaction
 * whose commit it announces, so every instance drops the cached identity when the change becomes visible.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static const int hash_len[] = {STORE_HASH_LEN};

int store_tx_begin(store_t *st)
{
    return store_begin(st);
}

int store_tx_end(store_t *st, int rc)
{
    return store_end(st, rc);
}

static int notify_user(store_t *st, int64_t id)
{
    char payload[STORE_PAYLOAD_LEN];
    store_user_payload(id, payload);
    return store_notify(st, payload);
}

static char *dup_or_null(PGresult *res, int row, int col, int *oom)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    char *s = strdup(PQgetvalue(res, row, col));
    if (s == NULL)
        *oom = 1;
    return s;
}

/* ---- tokens ---- */

int store_scim_token_create(store_t *st, const char *name, const uint8_t hash[STORE_HASH_LEN])
{
    const char *p[] = {(const char *)hash, name};
    const int lengths[] = {STORE_HASH_LEN, 0};
    return store_run(st, "INSERT INTO scim_tokens (hash, name) VALUES ($1, $2)", 2, p, lengths);
}

int store_scim_token_revoke(store_t *st, const char *name)
{
    const char *p[] = {name};
    return store_run_one(st, "UPDATE scim_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", 1, p,
                         NULL);
}

int store_scim_token_list(store_t *st, void (*cb)(void *ctx, const store_scim_token_t *t), void *ctx)
{
    PGresult *res = store_exec(st,
                               "SELECT name, " TS("created_at") ", " TS("revoked_at") ", " TS(
                                   "last_used_at") " FROM scim_tokens ORDER BY name",
                               0, NULL, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    for (int i = 0; i != PQntuples(res); ++i) {
        store_scim_token_t t = {PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                                PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2),
                                PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3)};
        cb(ctx, &t);
    }
    PQclear(res);
    return 0;
}

int store_scim_token_check(store_t *st, const uint8_t hash[STORE_HASH_LEN], char *name, size_t name_len)
{
    const char *p[] = {(const char *)hash};
    /* One statement: find the live token and note its use (at most once a minute: no write per request). */
    PGresult *res = store_exec(st,
                               "WITH t AS (SELECT id, name, last_used_at FROM scim_tokens WHERE hash = $1 AND "
                               "revoked_at IS NULL), u AS (UPDATE scim_tokens s SET last_used_at = now() FROM t "
                               "WHERE s.id = t.id AND (t.last_used_at IS NULL OR t.last_used_at < now() - "
                               "interval '1 minute')) SELECT name FROM t",
                               1, p, hash_len);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) != 1)
        rc = -ENOENT;
    else
        snprintf(name, name_len, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

/* ---- users ---- */

#define USER_SELECT                                                                                                    \
    "SELECT u.id, u.username, u.external_id, u.disabled, u.scim::text, " TS("u.created_at") ", " TS(                   \
        "u.updated_at") ", u.version, (SELECT coalesce(json_agg(json_build_object('value', g.id::text, 'display', "    \
                        "g.name) ORDER BY g.name), '[]')::text FROM group_members gm JOIN groups g ON g.id = "         \
                        "gm.group_id WHERE gm.user_id = u.id) FROM users u"

void store_scim_user_dispose(store_scim_user_t *u)
{
    if (u == NULL)
        return;
    free(u->username);
    free(u->external_id);
    free(u->doc);
    free(u->groups_json);
    free(u->created);
    free(u->modified);
    memset(u, 0, sizeof(*u));
}

static int read_user(PGresult *res, int row, store_scim_user_t *out)
{
    int oom = 0;
    memset(out, 0, sizeof(*out));
    out->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    out->username = dup_or_null(res, row, 1, &oom);
    out->external_id = dup_or_null(res, row, 2, &oom);
    out->disabled = PQgetvalue(res, row, 3)[0] == 't';
    out->doc = dup_or_null(res, row, 4, &oom);
    out->created = dup_or_null(res, row, 5, &oom);
    out->modified = dup_or_null(res, row, 6, &oom);
    out->version = strtoll(PQgetvalue(res, row, 7), NULL, 10);
    out->groups_json = dup_or_null(res, row, 8, &oom);
    if (oom) {
        store_scim_user_dispose(out);
        return -ENOMEM;
    }
    return 0;
}

int store_scim_user_get(store_t *st, int64_t id, int lock, store_scim_user_t *out)
{
    char idstr[STORE_I64_LEN];
    store_i64(idstr, id);
    const char *p[] = {idstr};
    memset(out, 0, sizeof(*out));
    PGresult *res = store_exec(
        st, lock ? USER_SELECT " WHERE u.id = $1 FOR UPDATE OF u" : USER_SELECT " WHERE u.id = $1", 1, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    rc = PQntuples(res) == 1 ? read_user(res, 0, out) : -ENOENT;
    PQclear(res);
    return rc;
}

int store_scim_user_insert(store_t *st, const store_scim_user_write_t *w, int64_t *id)
{
    const char *p[] = {w->username, w->external_id, w->email, w->display_name, w->doc, w->disabled ? "t" : "f"};
    PGresult *res = store_exec(st,
                               "INSERT INTO users (username, external_id, email, display_name, scim, disabled) "
                               "VALUES ($1, $2, $3, $4, $5::jsonb, $6::boolean) RETURNING id",
                               6, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

int store_scim_user_update(store_t *st, int64_t id, const store_scim_user_write_t *w)
{
    char idstr[STORE_I64_LEN];
    store_i64(idstr, id);
    const char *p[] = {idstr, w->username, w->external_id, w->email, w->display_name, w->doc, w->disabled ? "t" : "f"};
    int rc = store_begin(st);
    if (rc == 0)
        rc = store_run_one(st,
                           "UPDATE users SET username = $2, external_id = $3, email = $4, display_name = $5, "
                           "scim = $6::jsonb, disabled = $7::boolean, updated_at = now(), version = version + 1 "
                           "WHERE id = $1",
                           7, p, NULL);
    if (rc == 0 && w->disabled)
        rc = store_run(st, "DELETE FROM sessions WHERE user_id = $1", 1, p, NULL);
    /* Any change may alter the identity header (name, email, disabled): drop the cached identity everywhere. */
    if (rc == 0)
        rc = notify_user(st, id);
    return store_end(st, rc);
}

int store_scim_user_delete(store_t *st, int64_t id)
{
    char idstr[STORE_I64_LEN];
    store_i64(idstr, id);
    const char *p[] = {idstr};
    int rc = store_begin(st);
    if (rc == 0)
        rc = store_run_one(st, "DELETE FROM users WHERE id = $1", 1, p, NULL);
    if (rc == 0)
        rc = notify_user(st, id);
    return store_end(st, rc);
}

/* ---- groups ---- */

#define GROUP_COLUMNS "g.id, g.name, g.external_id, " TS("g.created_at") ", " TS("g.updated_at") ", g.version"
#define MEMBERS_JSON                                                                                                   \
    "(SELECT coalesce(json_agg(json_build_object('value', mu.id::text, 'display', coalesce(mu.display_name, "          \
    "mu.username)) ORDER BY mu.id), '[]')::text FROM group_members gm JOIN users mu ON mu.id = gm.user_id WHERE "      \
    "gm.group_id = g.id)"

void store_scim_group_dispose(store_scim_group_t *g)
{
    if (g == NULL)
        return;
    free(g->name);
    free(g->external_id);
    free(g->members_json);
    free(g->created);
    free(g->modified);
    memset(g, 0, sizeof(*g));
}

static int read_group(PGresult *res, int row, int with_members, store_scim_group_t *out)
{
    int oom = 0;
    memset(out, 0, sizeof(*out));
    out->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    out->name = dup_or_null(res, row, 1, &oom);
    out->external_id = dup_or_null(res, row, 2, &oom);
    out->created = dup_or_null(res, row, 3, &oom);
    out->modified = dup_or_null(res, row, 4, &oom);
    out->version = strtoll(PQgetvalue(res, row, 5), NULL, 10);
    if (with_members)
        out->members_json = dup_or_null(res, row, 6, &oom);
    if (oom) {
        store_scim_group_dispose(out);
        return -ENOMEM;
    }
    return 0;
}

int store_scim_group_get(store_t *st, int64_t id, int lock, int with_members, store_scim_group_t *out)
{
    char idstr[STORE_I64_LEN];
    store_i64(idstr, id);
    const char *p[] = {idstr};
    static const char *const sql[2][2] = {{"SELECT " GROUP_COLUMNS " FROM groups g WHERE g.id = $1",
                                           "SELECT " GROUP_COLUMNS " FROM groups g WHERE g.id = $1 FOR UPDATE"},
                                          {"SELECT " GROUP_COLUMNS ", " MEMBERS_JSON " FROM groups g WHERE g.id = $1",
                                           "SELECT " GROUP_COLUMNS ", " MEMBERS_JSON
                                           " FROM groups g WHERE g.id = $1 FOR UPDATE OF g"}};
    memset(out, 0, sizeof(*out));
    PGresult *res = store_exec(st, sql[with_members != 0][lock != 0], 1, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    rc = PQntuples(res) == 1 ? read_group(res, 0, with_members, out) : -ENOENT;
    PQclear(res);
    return rc;
}

int store_scim_group_insert(store_t *st, const char *name, const char *external_id, int64_t *id)
{
    const char *p[] = {name, external_id};
    PGresult *res = store_exec(st, "INSERT INTO groups (name, external_id) VALUES ($1, $2) RETURNING id", 2, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* NOTIFYs every member of the group (its name is part of their identity). */
static int notify_members(store_t *st, const char *gid)
{
    const char *p[] = {STORE_NOTIFY_CHANNEL, gid};
    return store_run(st, "SELECT pg_notify($1, 'user:' || user_id) FROM group_members WHERE group_id = $2", 2, p, NULL);
}

int store_scim_group_update(store_t *st, int64_t id, const char *name, const char *external_id, int renamed)
{
    char idstr[STORE_I64_LEN];
    store_i64(idstr, id);
    const char *p[] = {idstr, name, external_id};
    int rc = store_begin(st);
    if (rc == 0)
        rc = store_run_one(st,
                           "UPDATE groups SET name = $2, external_id = $3, updated_at = now(), version = version + 1 "
                           "WHERE id = $1",
                           3, p, NULL);
    if (rc == 0 && renamed)
        rc = notify_members(st, idstr);
    return store_end(st, rc);
}

int store_scim_group_delete(store_t *st, int64_t id)
{
    char idstr[STORE_I64_LEN];
    store_i64(idstr, id);
    const char *p[] = {idstr};
    int rc = store_begin(st);
    if (rc == 0)
        rc = notify_members(st, idstr);
    if (rc == 0)
        rc = store_run_one(st, "DELETE FROM groups WHERE id = $1", 1, p, NULL);
    return store_end(st, rc);
}

static int member_change(store_t *st, int64_t group_id, int64_t user_id, const char *sql, int *changed)
{
    char gid[STORE_I64_LEN], uid[STORE_I64_LEN];
    store_i64(gid, group_id);
    store_i64(uid, user_id);
    const char *p[] = {gid, uid};
    *changed = 0;
    int rc = store_begin(st);
    if (rc == 0) {
        PGresult *res = store_exec(st, sql, 2, p, NULL);
        if ((rc = store_result_status(res, 1)) == 0) {
            *changed = strcmp(PQcmdTuples(res), "0") != 0;
            PQclear(res);
        }
    }
    if (rc == 0 && *changed)
        rc = notify_user(st, user_id);
    return store_end(st, rc);
}

int store_scim_member_add(store_t *st, int64_t group_id, int64_t user_id, int *changed)
{
    return member_change(st, group_id, user_id,
                         "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                         changed);
}

int store_scim_member_remove(store_t *st, int64_t group_id, int64_t user_id, int *changed)
{
    return member_change(st, group_id, user_id, "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2",
                         changed);
}

int store_scim_members_clear(store_t *st, int64_t group_id)
{
    char gid[STORE_I64_LEN];
    store_i64(gid, group_id);
    const char *p[] = {STORE_NOTIFY_CHANNEL, gid};
    return store_run(st,
                     "WITH d AS (DELETE FROM group_members WHERE group_id = $2 RETURNING user_id) SELECT "
                     "pg_notify($1, 'user:' || user_id) FROM d",
                     2, p, NULL);
}

/* ---- queries (the compiler is in scim_query.c) ---- */

int store_scim_run_query(store_t *st, const store_scim_query_t *q, const char *where, const char *const *params,
                         int nparams, const char *order, int64_t *total,
                         void (*user_cb)(void *ctx, const store_scim_user_t *u),
                         void (*group_cb)(void *ctx, const store_scim_group_t *g), void *ctx)
{
    int users = q->type == STORE_SCIM_USERS, rows = 0, rc = 0;
    char limits[2 * STORE_I64_LEN + 32], *sql = NULL;
    PGresult *res;
    snprintf(limits, sizeof(limits), " LIMIT %lld OFFSET %lld", (long long)q->count, (long long)q->offset);

    /* The page first: when it is the first page and not full, its size is the total and the count(*) query is
     * not needed (the common lookup, `userName eq`, costs one query). */
    if (q->count != 0) {
        const char *select = users                  ? USER_SELECT
                             : q->with_members != 0 ? "SELECT " GROUP_COLUMNS ", " MEMBERS_JSON " FROM groups g"
                                                    : "SELECT " GROUP_COLUMNS " FROM groups g";
        if (asprintf(&sql, "%s WHERE %s ORDER BY %s%s", select, where, order, limits) < 0)
            return -ENOMEM;
        res = store_exec(st, sql, nparams, params, NULL);
        free(sql);
        if ((rc = store_result_status(res, 1)) != 0)
            return rc;
        rows = PQntuples(res);
        for (int i = 0; rc == 0 && i != rows; ++i) {
            if (users) {
                store_scim_user_t u;
                if ((rc = read_user(res, i, &u)) == 0) {
                    user_cb(ctx, &u);
                    store_scim_user_dispose(&u);
                }
            } else {
                store_scim_group_t g;
                if ((rc = read_group(res, i, q->with_members, &g)) == 0) {
                    group_cb(ctx, &g);
                    store_scim_group_dispose(&g);
                }
            }
        }
        PQclear(res);
        if (rc != 0)
            return rc;
        if (q->offset == 0 && rows < q->count) {
            *total = rows;
            return 0;
        }
    }
    if (asprintf(&sql, "SELECT count(*) FROM %s WHERE %s", users ? "users u" : "groups g", where) < 0)
        return -ENOMEM;
    res = store_exec(st, sql, nparams, params, NULL);
    free(sql);
    if ((rc = store_result_status(res, 1)) != 0)
        return rc;
    *total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}
