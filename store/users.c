/*
 * Users, groups and memberships, and password hashes. Usernames and group names are unique case-insensitively
 * (unique indexes on lower(...)). Changes that alter what a session may do (disable, membership) NOTIFY
 * "user:<id>" in the same transaction, so every instance drops its cached identity when the change commits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

static int dup_col(PGresult *res, int row, int c, char **out)
{
    if (PQgetisnull(res, row, c)) {
        *out = NULL;
        return 0;
    }
    return (*out = strdup(PQgetvalue(res, row, c))) != NULL ? 0 : -ENOMEM;
}

int store_user_read(PGresult *res, int *row, int first, store_user_t *out)
{
    int r = *row, n = PQntuples(res);
    const char *id = PQgetvalue(res, r, first);
    size_t cap = 0;

    memset(out, 0, sizeof(*out));
    out->id = strtoll(id, NULL, 10);
    out->disabled = PQgetvalue(res, r, first + 4)[0] == 't';
    if (dup_col(res, r, first + 1, &out->username) != 0 || dup_col(res, r, first + 2, &out->email) != 0 ||
        dup_col(res, r, first + 3, &out->display_name) != 0)
        goto nomem;
    /* One row per group of this user (a single row with a NULL group when there is none). */
    for (; r < n && strcmp(PQgetvalue(res, r, first), id) == 0; ++r) {
        if (PQgetisnull(res, r, first + 5))
            continue;
        if (out->num_groups + 1 >= cap) {
            size_t ncap = cap == 0 ? 4 : 2 * cap;
            char **g = realloc(out->groups, ncap * sizeof(*g));
            if (g == NULL)
                goto nomem;
            out->groups = g;
            cap = ncap;
        }
        if ((out->groups[out->num_groups] = strdup(PQgetvalue(res, r, first + 5))) == NULL)
            goto nomem;
        out->groups[++out->num_groups] = NULL;
    }
    if (out->groups == NULL && (out->groups = calloc(1, sizeof(*out->groups))) == NULL)
        goto nomem;
    *row = r;
    return 0;
nomem:
    store_user_dispose(out);
    return -ENOMEM;
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
    PGresult *res = store_exec(st, "INSERT INTO users (username, email, display_name) VALUES ($1, $2, $3) RETURNING id",
                               3, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

static int get_one(store_t *st, const char *sql, const char *param, store_user_t *out)
{
    const char *p[] = {param};
    int row = 0;
    PGresult *res = store_exec(st, sql, 1, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    rc = PQntuples(res) == 0 ? -ENOENT : store_user_read(res, &row, 0, out);
    PQclear(res);
    return rc;
}

int store_user_get(store_t *st, const char *username, store_user_t *out)
{
    return get_one(st,
                   "SELECT " STORE_USER_COLUMNS " FROM users u" STORE_USER_JOIN
                   " WHERE lower(u.username) = lower($1) ORDER BY " STORE_GROUP_ORDER,
                   username, out);
}

int store_user_get_by_id(store_t *st, int64_t id, store_user_t *out)
{
    char idstr[STORE_I64_LEN];
    store_i64(idstr, id);
    return get_one(
        st, "SELECT " STORE_USER_COLUMNS " FROM users u" STORE_USER_JOIN " WHERE u.id = $1 ORDER BY " STORE_GROUP_ORDER,
        idstr, out);
}

int store_user_find_login(store_t *st, const char *name_or_email, store_user_t *out)
{
    /* the user name wins; an email address must belong to exactly one user */
    int rc = store_user_get(st, name_or_email, out);
    if (rc != -ENOENT)
        return rc;
    return get_one(st,
                   "SELECT " STORE_USER_COLUMNS " FROM users u" STORE_USER_JOIN
                   " WHERE u.id = (SELECT min(id) FROM users WHERE lower(email) = lower($1) HAVING count(*) = 1)"
                   " ORDER BY " STORE_GROUP_ORDER,
                   name_or_email, out);
}

int store_user_set_disabled(store_t *st, int64_t id, int disabled)
{
    char idstr[STORE_I64_LEN], payload[STORE_PAYLOAD_LEN];
    store_i64(idstr, id);
    const char *p[] = {idstr, disabled ? "true" : "false"};
    int rc = store_begin(st);
    if (rc == 0)
        rc = store_run_one(
            st, "UPDATE users SET disabled = $2, updated_at = now(), version = version + 1 WHERE id = $1", 2, p, NULL);
    if (rc == 0 && disabled) {
        rc = store_run(st, "DELETE FROM sessions WHERE user_id = $1", 1, p, NULL);
        if (rc == 0) {
            store_user_payload(id, payload);
            rc = store_notify(st, payload);
        }
    }
    return store_end(st, rc);
}

int store_user_list(store_t *st, void (*cb)(void *ctx, const store_user_t *u, int has_password), void *ctx)
{
    PGresult *res =
        store_exec(st,
                   "SELECT EXISTS (SELECT 1 FROM password_credentials c WHERE c.user_id = u.id), " STORE_USER_COLUMNS
                   " FROM users u" STORE_USER_JOIN " ORDER BY lower(u.username), u.id, " STORE_GROUP_ORDER,
                   0, NULL, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    for (int row = 0; rc == 0 && row < PQntuples(res);) {
        store_user_t u;
        int has_password = PQgetvalue(res, row, 0)[0] == 't';
        if ((rc = store_user_read(res, &row, 1, &u)) == 0) {
            cb(ctx, &u, has_password);
            store_user_dispose(&u);
        }
    }
    PQclear(res);
    return rc;
}

/* Runs one membership statement (params: group name, user id) in a transaction, with the NOTIFY when it
 * changed something. No change: 0 when adding (already a member), -ENOENT when removing (not a member). An
 * unknown user makes the INSERT fail on the foreign key: -ENOENT. */
static int change_membership(store_t *st, int64_t user_id, const char *group, int adding, const char *sql)
{
    char idstr[STORE_I64_LEN], payload[STORE_PAYLOAD_LEN];
    store_i64(idstr, user_id);
    const char *p[] = {group, idstr};
    int rc = store_begin(st);
    if (rc == 0 && adding)
        rc = store_run(st, "INSERT INTO groups (name) VALUES ($1) ON CONFLICT ((lower(name))) DO NOTHING", 1, p, NULL);
    if (rc == 0)
        rc = store_run_one(st, sql, 2, p, NULL);
    if (rc == 0) {
        store_user_payload(user_id, payload);
        rc = store_notify(st, payload);
    } else if (rc == -ENOENT && adding && PQtransactionStatus(st->conn) == PQTRANS_INTRANS) {
        rc = 0; /* no row inserted, and no error: the user already was a member */
    }
    return store_end(st, rc);
}

int store_group_add_member(store_t *st, int64_t user_id, const char *group)
{
    return change_membership(st, user_id, group, 1,
                             "INSERT INTO group_members (group_id, user_id) SELECT id, $2 FROM groups "
                             "WHERE lower(name) = lower($1) ON CONFLICT DO NOTHING");
}

int store_group_remove_member(store_t *st, int64_t user_id, const char *group)
{
    return change_membership(st, user_id, group, 0,
                             "DELETE FROM group_members WHERE user_id = $2 AND group_id = (SELECT id FROM groups "
                             "WHERE lower(name) = lower($1))");
}

int store_password_get(store_t *st, int64_t user_id, char **hash)
{
    char idstr[STORE_I64_LEN];
    store_i64(idstr, user_id);
    const char *p[] = {idstr};
    *hash = NULL;
    PGresult *res = store_exec(st, "SELECT hash FROM password_credentials WHERE user_id = $1", 1, p, NULL);
    int rc = store_result_status(res, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 0)
        rc = -ENOENT;
    else if ((*hash = strdup(PQgetvalue(res, 0, 0))) == NULL)
        rc = -ENOMEM;
    PQclear(res);
    return rc;
}
