/*
 * Group operations. Members are changed one membership row at a time (add, remove, clear), never by rewriting
 * the group, so a PATCH that adds one member to a group of thousands costs one INSERT; each changed membership
 * NOTIFYs the user so the identity header carries the new group on their next request. A PATCH answers 204
 * with the new ETag (RFC 7644 §3.5.2 allows it), sparing clients the member list of large groups.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scim/internal.h"

#define AUDIT_MAX_IDS 100 /* member ids listed in one audit event; the counts are always complete */

json_t *scim_group_json(const store_scim_group_t *g, const char *base)
{
    char id[24], location[512], etag[48];
    snprintf(id, sizeof(id), "%lld", (long long)g->id);
    json_t *o = json_pack("{s:[s], s:s, s:s}", "schemas", SCIM_URN_GROUP, "id", id, "displayName", g->name);
    if (g->external_id != NULL)
        json_object_set_new(o, "externalId", json_string(g->external_id));
    if (g->members_json != NULL) {
        json_t *members = json_loads(g->members_json, 0, NULL), *m;
        size_t i;
        json_array_foreach(members, i, m)
        {
            char ref[512];
            snprintf(ref, sizeof(ref), "%s/Users/%s", base, json_string_value(json_object_get(m, "value")));
            json_object_set_new(m, "$ref", json_string(ref));
            json_object_set_new(m, "type", json_string("User"));
        }
        json_object_set_new(o, "members", members != NULL ? members : json_array());
    }
    snprintf(location, sizeof(location), "%s/Groups/%s", base, id);
    scim_etag(etag, sizeof(etag), g->version);
    json_object_set_new(o, "meta",
                        json_pack("{s:s, s:s, s:s, s:s, s:s}", "resourceType", "Group", "created", g->created,
                                  "lastModified", g->modified, "location", location, "version", etag));
    return o;
}

/* Member changes collected for the audit event. */
typedef struct st_changes_t {
    json_t *added, *removed;
    size_t num_added, num_removed;
    int cleared;
} changes_t;

static void note(json_t *list, size_t *count, int64_t id)
{
    if ((*count)++ < AUDIT_MAX_IDS)
        json_array_append_new(list, json_integer(id));
}

static json_t *changes_json(changes_t *ch)
{
    return json_pack("{s:o, s:o, s:I, s:I, s:b}", "members_added", ch->added, "members_removed", ch->removed,
                     "num_added", (json_int_t)ch->num_added, "num_removed", (json_int_t)ch->num_removed,
                     "members_cleared", ch->cleared);
}

/* A member reference: {"value": "<user id>"} (or a bare id). -1 with the response set. */
static int64_t member_id(scim_ctx_t *c, json_t *m)
{
    json_t *v = json_is_object(m) ? json_object_get(m, "value") : m, *type = json_object_get(m, "type");
    if (json_is_string(type) && strcasecmp(json_string_value(type), "User") != 0) {
        scim_error(c->resp, 400, "invalidValue", "members are users: nested groups are not supported");
        return -1;
    }
    int64_t id = json_is_string(v)    ? scim_parse_id(json_string_value(v))
                 : json_is_integer(v) ? json_integer_value(v)
                                      : -1;
    if (id <= 0)
        scim_error(c->resp, 400, "invalidValue", "a member needs a value that is the id of a user");
    return id;
}

/* Adds (add) or removes each member of value (array or single); rc, or -EINVAL with the response set. */
static int change_members(scim_ctx_t *c, int64_t gid, json_t *value, int add, changes_t *ch)
{
    json_t *vals = json_is_array(value) ? json_incref(value) : json_pack("[O]", value), *m;
    size_t i;
    int rc = 0;
    json_array_foreach(vals, i, m)
    {
        int64_t uid = member_id(c, m);
        int changed = 0;
        if (uid <= 0) {
            rc = -EINVAL;
            break;
        }
        rc = add ? store_scim_member_add(c->db, gid, uid, &changed)
                 : store_scim_member_remove(c->db, gid, uid, &changed);
        if (rc == -ENOENT && add) {
            scim_error(c->resp, 400, "invalidValue", "member %lld is not a user", (long long)uid);
            rc = -EINVAL;
        }
        if (rc != 0)
            break;
        if (changed && add)
            note(ch->added, &ch->num_added, uid);
        else if (changed)
            note(ch->removed, &ch->num_removed, uid);
    }
    json_decref(vals);
    return rc;
}

static int add_members(scim_ctx_t *c, int64_t gid, json_t *value, changes_t *ch)
{
    return change_members(c, gid, value, 1, ch);
}

static int remove_members(scim_ctx_t *c, int64_t gid, json_t *value, changes_t *ch)
{
    return change_members(c, gid, value, 0, ch);
}

static const char *display_name(scim_ctx_t *c, json_t *n)
{
    const char *name = json_string_value(json_object_get(n, "displayName"));
    if (name == NULL || name[0] == '\0' || strlen(name) > 256) {
        scim_error(c->resp, 400, "invalidValue", "displayName is required (1 to 256 characters)");
        return NULL;
    }
    return name;
}

/* Ends a write: commit or roll back, then the answer. */
static void finish(scim_ctx_t *c, int rc, int responded, int64_t gid, int status, const char *name)
{
    rc = store_tx_end(c->db, rc);
    if (responded)
        return;
    if (rc == -EEXIST)
        return scim_error(c->resp, 409, "uniqueness", "a group named %s exists", name != NULL ? name : "");
    if (rc != 0)
        return scim_db_error(c->resp, rc);
    store_scim_group_t g;
    if ((rc = store_scim_group_get(c->db, gid, 0, status != 204, &g)) != 0)
        return scim_db_error(c->resp, rc);
    scim_etag(c->resp->etag, sizeof(c->resp->etag), g.version);
    if (status == 204) {
        c->resp->status = 204;
    } else {
        json_t *o = scim_group_json(&g, c->set->base_url);
        if (status == 201)
            c->resp->location = strdup(json_string_value(json_object_get(json_object_get(o, "meta"), "location")));
        scim_project(c, o);
        scim_send(c->resp, status, o);
    }
    store_scim_group_dispose(&g);
}

static void group_target(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "group:%s", name);
}

static json_t *group_attrs(const char *name, const char *external_id)
{
    json_t *o = json_pack("{s:s}", "displayName", name);
    if (external_id != NULL)
        json_object_set_new(o, "externalId", json_string(external_id));
    return o;
}

void scim_group_create(scim_ctx_t *c, json_t *body)
{
    char err[300], target[300];
    changes_t ch = {json_array(), json_array(), 0, 0, 0};
    json_t *n = scim_normalize(&scim_schema_group, body, err, sizeof(err));
    int64_t gid = 0;
    int rc = 0, responded = 1;
    const char *name = NULL;
    if (n == NULL) {
        scim_error(c->resp, 400, "invalidValue", "%s", err);
        goto done;
    }
    if ((name = display_name(c, n)) == NULL)
        goto done;
    const char *ext = json_string_value(json_object_get(n, "externalId"));
    responded = 0;
    rc = store_tx_begin(c->db);
    if (rc == 0)
        rc = store_scim_group_insert(c->db, name, ext, &gid);
    if (rc == 0 && json_object_get(n, "members") != NULL &&
        (rc = add_members(c, gid, json_object_get(n, "members"), &ch)) == -EINVAL)
        responded = 1;
    if (rc == 0) {
        group_target(target, sizeof(target), name);
        json_t *after = group_attrs(name, ext);
        rc = scim_audit(c, "scim.group.create", target, NULL, after, changes_json(&ch));
        ch.added = ch.removed = NULL;
        json_decref(after);
    }
    finish(c, rc, responded, gid, 201, name);
    responded = 1;
done:
    json_decref(ch.added);
    json_decref(ch.removed);
    json_decref(n);
}

void scim_group_get(scim_ctx_t *c, int64_t id)
{
    store_scim_group_t g;
    int with_members = 1;
    if (c->excluded != NULL && strcasestr(c->excluded, "members") != NULL)
        with_members = 0;
    if (c->attributes != NULL && strcasestr(c->attributes, "members") == NULL)
        with_members = 0;
    int rc = store_scim_group_get(c->db, id, 0, with_members, &g);
    if (rc == -ENOENT)
        return scim_error(c->resp, 404, NULL, "no group with id %lld", (long long)id);
    if (rc != 0)
        return scim_db_error(c->resp, rc);
    scim_send_resource(c, g.version, scim_group_json(&g, c->set->base_url));
    store_scim_group_dispose(&g);
}

/* Locks the group and checks If-Match; 0, or rc with *responded. */
static int lock_group(scim_ctx_t *c, int64_t id, int with_members, store_scim_group_t *g, int *responded)
{
    int rc = store_tx_begin(c->db);
    if (rc == 0)
        rc = store_scim_group_get(c->db, id, 1, with_members, g);
    if (rc == -ENOENT) {
        scim_error(c->resp, 404, NULL, "no group with id %lld", (long long)id);
        *responded = 1;
    } else if (rc == 0 && scim_precondition(c, g->version) != 0) {
        *responded = 1;
        rc = -EAGAIN;
    }
    return rc;
}

void scim_group_replace(scim_ctx_t *c, int64_t id, json_t *body)
{
    store_scim_group_t g = {0};
    changes_t ch = {json_array(), json_array(), 0, 0, 0};
    char err[300], target[300];
    int responded = 0;
    const char *name = NULL;
    json_t *n = NULL, *current = NULL, *m;
    int rc = lock_group(c, id, 1, &g, &responded);
    if (rc != 0)
        goto end;
    if ((n = scim_normalize(&scim_schema_group, body, err, sizeof(err))) == NULL) {
        scim_error(c->resp, 400, "invalidValue", "%s", err);
        responded = 1;
        rc = -EINVAL;
        goto end;
    }
    if ((name = display_name(c, n)) == NULL) {
        responded = 1;
        rc = -EINVAL;
        goto end;
    }
    const char *ext = json_string_value(json_object_get(n, "externalId"));
    rc = store_scim_group_update(c->db, id, name, ext, strcmp(name, g.name) != 0);
    /* members: remove those not wanted, add the new ones (rows that stay are not touched); the wanted ids go
     * into an object used as a set, so a group of thousands is compared in linear time */
    json_t *wanted = json_object_get(n, "members"), *wanted_set = json_object(), *w;
    size_t i;
    json_array_foreach(wanted, i, w)
    {
        if (json_is_string(json_object_get(w, "value")))
            json_object_set(wanted_set, json_string_value(json_object_get(w, "value")), json_true());
    }
    current = json_loads(g.members_json != NULL ? g.members_json : "[]", 0, NULL);
    json_array_foreach(current, i, m)
    {
        const char *v = json_string_value(json_object_get(m, "value"));
        if (rc == 0 && v != NULL && json_object_get(wanted_set, v) == NULL)
            rc = remove_members(c, id, m, &ch);
    }
    json_decref(wanted_set);
    if (rc == 0 && wanted != NULL && (rc = add_members(c, id, wanted, &ch)) == -EINVAL)
        responded = 1;
    if (rc == 0) {
        group_target(target, sizeof(target), name);
        json_t *before = group_attrs(g.name, g.external_id), *after = group_attrs(name, ext);
        rc = scim_audit(c, "scim.group.replace", target, before, after, changes_json(&ch));
        ch.added = ch.removed = NULL;
        json_decref(before);
        json_decref(after);
    }
end:
    finish(c, rc, responded, id, 200, name);
    json_decref(ch.added);
    json_decref(ch.removed);
    json_decref(current);
    json_decref(n);
    store_scim_group_dispose(&g);
}

/* One PATCH operation on a group: attributes change *name / *ext (owned by attrs), members change rows. */
static int patch_op(scim_ctx_t *c, int64_t gid, json_t *op, json_t *attrs, changes_t *ch)
{
    const char *name = scim_patch_op(op);
    json_t *pathj = json_object_get(op, "path"), *value = json_object_get(op, "value");
    if (name == NULL) {
        scim_error(c->resp, 400, "invalidSyntax", "op must be add, replace or remove");
        return -EINVAL;
    }
    if (pathj == NULL || (json_is_string(pathj) && json_string_length(pathj) == 0)) {
        /* no path: the value holds attributes ({"displayName": ...}, {"members": [...]}, Okta's {"id", ...}) */
        if (strcmp(name, "remove") == 0 || !json_is_object(value)) {
            scim_error(c->resp, 400, strcmp(name, "remove") == 0 ? "noTarget" : "invalidValue",
                       "without a path, add and replace take an object of attributes");
            return -EINVAL;
        }
        const char *k;
        json_t *v;
        json_object_foreach(value, k, v)
        {
            json_t *sub = json_pack("{s:s, s:s, s:O}", "op", name, "path", k, "value", v);
            int rc = strcasecmp(k, "id") == 0 || strcasecmp(k, "schemas") == 0 || strcasecmp(k, "meta") == 0
                         ? 0
                         : patch_op(c, gid, sub, attrs, ch);
            json_decref(sub);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (!json_is_string(pathj)) {
        scim_error(c->resp, 400, "invalidPath", "path must be a string");
        return -EINVAL;
    }
    scim_path_t path;
    char err[300];
    if (scim_path_parse(json_string_value(pathj), json_string_length(pathj), &path, err, sizeof(err)) != 0) {
        scim_error(c->resp, 400, "invalidPath", "%s", err);
        return -EINVAL;
    }
    int rc = 0;
    if (strcmp(path.attr, "members") == 0 && path.sub == NULL) {
        if (path.filter != NULL) { /* members[value eq "12"]: remove that member */
            const store_filter_t *f = path.filter;
            if (strcmp(name, "remove") != 0 || f->kind != STORE_FILTER_CMP || f->op != STORE_OP_EQ ||
                strcmp(f->attr, "value") != 0 || f->vtype != STORE_VAL_STRING) {
                scim_error(c->resp, 400, "invalidPath", "members[value eq \"id\"] is supported with remove only");
                rc = -EINVAL;
            } else {
                json_t *v = json_string(f->value);
                rc = remove_members(c, gid, v, ch);
                json_decref(v);
            }
        } else if (strcmp(name, "add") == 0) {
            rc = value != NULL ? add_members(c, gid, value, ch) : -EINVAL;
        } else if (strcmp(name, "remove") == 0 && value != NULL) {
            rc = remove_members(c, gid, value, ch); /* Entra ID: remove with a value list */
        } else {
            /* remove without value, replace: the member list starts empty */
            if ((rc = store_scim_members_clear(c->db, gid)) == 0)
                ch->cleared = 1;
            if (rc == 0 && strcmp(name, "replace") == 0 && value != NULL)
                rc = add_members(c, gid, value, ch);
        }
        if (rc == -EINVAL && c->resp->body == NULL)
            scim_error(c->resp, 400, "invalidValue", "members: a value is required");
    } else if ((strcmp(path.attr, "displayname") == 0 || strcmp(path.attr, "externalid") == 0) && path.sub == NULL &&
               path.filter == NULL) {
        const char *key = strcmp(path.attr, "displayname") == 0 ? "displayName" : "externalId";
        if (strcmp(name, "remove") == 0) {
            if (strcmp(key, "displayName") == 0) {
                scim_error(c->resp, 400, "mutability", "displayName is required and cannot be removed");
                rc = -EINVAL;
            } else {
                json_object_del(attrs, key);
            }
        } else if (!json_is_string(value)) {
            scim_error(c->resp, 400, "invalidValue", "%s must be a string", key);
            rc = -EINVAL;
        } else {
            json_object_set(attrs, key, value);
        }
    } else if (strcmp(path.attr, "id") == 0 || strcmp(path.attr, "meta") == 0) {
        scim_error(c->resp, 400, "mutability", "%s is read-only", path.attr);
        rc = -EINVAL;
    } else {
        scim_error(c->resp, 400, "invalidPath", "%s is not an attribute of Group that can be patched", path.attr);
        rc = -EINVAL;
    }
    scim_path_dispose(&path);
    return rc;
}

void scim_group_patch(scim_ctx_t *c, int64_t id, json_t *body)
{
    store_scim_group_t g = {0};
    changes_t ch = {json_array(), json_array(), 0, 0, 0};
    char target[300];
    int responded = 0;
    json_t *before = NULL, *attrs = NULL, *ops = json_object_get(body, "Operations"), *op;
    const char *name = NULL;
    int rc = lock_group(c, id, 0, &g, &responded);
    if (rc != 0)
        goto end;
    if (!json_is_array(ops) || json_array_size(ops) == 0) {
        scim_error(c->resp, 400, "invalidSyntax", "Operations must be a non-empty array");
        responded = 1;
        rc = -EINVAL;
        goto end;
    }
    before = group_attrs(g.name, g.external_id);
    attrs = json_deep_copy(before);
    size_t i;
    json_array_foreach(ops, i, op)
    {
        if ((rc = patch_op(c, id, op, attrs, &ch)) != 0) {
            responded = rc == -EINVAL;
            goto end;
        }
    }
    name = json_string_value(json_object_get(attrs, "displayName"));
    if (name == NULL || name[0] == '\0' || strlen(name) > 256) {
        scim_error(c->resp, 400, "invalidValue", "displayName must be 1 to 256 characters");
        responded = 1;
        rc = -EINVAL;
        goto end;
    }
    rc = store_scim_group_update(c->db, id, name, json_string_value(json_object_get(attrs, "externalId")),
                                 strcmp(name, g.name) != 0);
    if (rc == 0) {
        group_target(target, sizeof(target), name);
        rc = scim_audit(c, "scim.group.patch", target, before, attrs, changes_json(&ch));
        ch.added = ch.removed = NULL;
    }
end:
    finish(c, rc, responded, id, 204, name);
    json_decref(ch.added);
    json_decref(ch.removed);
    json_decref(attrs);
    json_decref(before);
    store_scim_group_dispose(&g);
}

void scim_group_delete(scim_ctx_t *c, int64_t id)
{
    store_scim_group_t g = {0};
    char target[300];
    int responded = 0;
    int rc = lock_group(c, id, 0, &g, &responded);
    if (rc == 0)
        rc = store_scim_group_delete(c->db, id);
    if (rc == 0) {
        json_t *before = group_attrs(g.name, g.external_id);
        group_target(target, sizeof(target), g.name);
        rc = scim_audit(c, "scim.group.delete", target, before, NULL, NULL);
        json_decref(before);
    }
    rc = store_tx_end(c->db, rc);
    if (!responded) {
        if (rc != 0)
            scim_db_error(c->resp, rc);
        else
            c->resp->status = 204;
    }
    store_scim_group_dispose(&g);
}
