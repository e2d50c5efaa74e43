/*
 * Users, groups and memberships, and password hashes. Changes that alter what a session may do (disable,
 * membership) NOTIFY "user:<id>" in the same transaction, so every instance drops its cached copy at commit.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/internal.h"

#define USER_COLUMNS                                                                                                \
    "u.id, u.username, u.email, u.display_name, u.disabled, "                                                       \
    "coalesce((SELECT json_agg(g.name ORDER BY g.name) FROM group_members m JOIN groups g ON g.id = m.group_id "  \
    "WHERE m.user_id = u.id), '[]')::text"

static char *col(PGresult *res, int row, int c)
{
    return PQgetisnull(res, row, c) ? NULL : strdup(PQgetvalue(res, row, c));
}

/* Fills u from columns first..first+5 of USER_COLUMNS. */
int store_user_from_row(PGresult *res, int row, int first, store_user_t *u)
{
    memset(u, 0, sizeof(*u));
    u->id = strtoll(PQgetvalue(res, row, first), NULL, 10);
    u->username = col(res, row, first + 1);
    u->email = col(res, row, first + 2);
    u->display_name = col(res, row, first + 3);
    u->disabled = PQgetvalue(res, row, first + 4)[0] == 't';
    json_t *groups = json_loads(PQgetvalue(res, row, first + 5), 0, NULL);
    size_t n = json_is_array(groups) ? json_array_size(groups) : 0;
    u->groups = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i != n; ++i) {
        const char *g = json_string_value(json_array_get(groups, i));
        if (g != NULL)
            u->groups[u->num_groups++] = strdup(g);
    }
    json_decref(groups);
    return 0;
}

void store_user_dispose(store_user_t *u)
{
    if (u == NULL)
        return;
    free(u->username);
    free(u->email);
    free(u->display_name);
    for (size_t i = 0; i != u->num_groups; ++i)
        free(u->groups[i]);
    free(u->groups);
    memset(u, 0, sizeof(*u));
}

int store_user_create(store_t *st, const char *username, const char *email, const char *display_name, int64_t *id)
{
    const char *p[] = {username, email, display_name};
    PGresult *res = store_exec(
        st, "INSERT INTO users (username, email, display_name) VALUES ($1, $2, $3) RETURNING id", 3, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc == 0) {
        *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
    }
    return rc;
}

static int get_one(store_t *st, const char *sql, const char *param, store_user_t *out)
{
    const char *p[] = {param};
    PGresult *res = store_exec(st, sql, 1, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    store_user_from_row(res, 0, 0, out);
    PQclear(res);
    return 0;
}

int store_user_get(store_t *st, const char *username, store_user_t *out)
{
    return get_one(st, "SELECT " USER_COLUMNS " FROM users u WHERE lower(u.username) = lower($1)", username, out);
}

int store_user_get_by_id(store_t *st, int64_t id, store_user_t *out)
{
    char idstr[24];
    snprintf(idstr, sizeof(idstr), "%" PRId64, id);
    return get_one(st, "SELECT " USER_COLUMNS " FROM users u WHERE u.id = $1", idstr, out);
}

static int notify_user(store_t *st, int64_t id)
{
    char payload[32];
    snprintf(payload, sizeof(payload), "user:%" PRId64, id);
    return store_notify(st, payload);
}

int store_user_set_disabled(store_t *st, int64_t id, int disabled)
{
    char idstr[24];
    snprintf(idstr, sizeof(idstr), "%" PRId64, id);
    const char *p[] = {idstr, disabled ? "true" : "false"};
    int rc = store_begin(st);
    if (rc == 0)
        rc = store_result_status(
            store_exec(st, "UPDATE users SET disabled = $2, updated_at = now(), version = version + 1 WHERE id = $1",
                       2, p, NULL),
            0);
    if (rc == 0 && disabled)
        rc = store_result_status(store_exec(st, "DELETE FROM sessions WHERE user_id = $1", 1, p, NULL), 0);
    if (rc == 0)
        rc = notify_user(st, id);
    if (rc == 0)
        rc = store_commit(st);
    if (rc != 0)
        store_rollback(st);
    return rc;
}

int store_user_list(store_t *st, void (*cb)(void *ctx, const store_user_t *u, int has_password), void *ctx)
{
    PGresult *res = store_exec(st,
                               "SELECT " USER_COLUMNS ", EXISTS (SELECT 1 FROM password_credentials c WHERE "
                               "c.user_id = u.id) FROM users u ORDER BY lower(u.username)",
                               0, NULL, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    for (int i = 0; i != PQntuples(res); ++i) {
        store_user_t u;
        store_user_from_row(res, i, 0, &u);
        cb(ctx, &u, PQgetvalue(res, i, 6)[0] == 't');
        store_user_dispose(&u);
    }
    PQclear(res);
    return 0;
}

int store_group_add_member(store_t *st, int64_t user_id, const char *group)
{
    char idstr[24];
    snprintf(idstr, sizeof(idstr), "%" PRId64, user_id);
    const char *p[] = {group, idstr};
    int rc = store_begin(st);
    if (rc == 0)
        rc = store_result_status(
            store_exec(st, "INSERT INTO groups (name) VALUES ($1) ON CONFLICT ((lower(name))) DO NOTHING", 1, p,
                       NULL),
            0);
    if (rc == 0)
        rc = store_result_status(store_exec(st,
                                            "INSERT INTO group_members (group_id, user_id) SELECT id, $2 FROM groups "
                                            "WHERE lower(name) = lower($1) ON CONFLICT DO NOTHING",
                                            2, p, NULL),
                                 0);
    if (rc == 0)
        rc = notify_user(st, user_id);
    if (rc == 0)
        rc = store_commit(st);
    if (rc != 0)
        store_rollback(st);
    return rc;
}

int store_group_remove_member(store_t *st, int64_t user_id, const char *group)
{
    char idstr[24];
    snprintf(idstr, sizeof(idstr), "%" PRId64, user_id);
    const char *p[] = {group, idstr};
    int rc = store_begin(st);
    PGresult *res = NULL;
    if (rc == 0) {
        res = store_exec(st,
                         "DELETE FROM group_members WHERE user_id = $2 AND group_id = (SELECT id FROM groups WHERE "
                         "lower(name) = lower($1))",
                         2, p, NULL);
        rc = store_result_status(res, 1);
    }
    if (rc == 0) {
        int removed = strcmp(PQcmdTuples(res), "0") != 0;
        PQclear(res);
        rc = removed ? notify_user(st, user_id) : -ENOENT;
    }
    if (rc == 0)
        rc = store_commit(st);
    if (rc != 0)
        store_rollback(st);
    return rc;
}

int store_password_get(store_t *st, int64_t user_id, char **hash)
{
    char idstr[24];
    snprintf(idstr, sizeof(idstr), "%" PRId64, user_id);
    const char *p[] = {idstr};
    PGresult *res = store_exec(st, "SELECT hash FROM password_credentials WHERE user_id = $1", 1, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        *hash = NULL;
        return -ENOENT;
    }
    *hash = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}
