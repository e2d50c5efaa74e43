/*
 * The PATCH engine for users (RFC 7644 §3.5.2): add / replace / remove, with and without `path`, with value
 * filters on multi-valued attributes and sub-attributes after them. It works on the user's canonical JSON
 * (scim_normalize output plus userName, active, externalId); the caller normalises the result again, which is
 * where values sent as strings ("False") become booleans. Groups' members are changed row by row elsewhere
 * (process.c), never through a whole-resource rewrite.
 *
 * Client habits accepted: op names in any case ("Replace"), no path with an object value whose keys are
 * themselves paths ({"active": false}, {"name.givenName": "A"}, extension URN keys), and `add` (or `replace` of
 * a sub-attribute) through a value filter that matches nothing, which creates the element (Entra ID's
 * `emails[type eq "work"].value`). A `remove` or whole-element `replace` that matches nothing is noTarget.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scim/internal.h"

#define ERR(e, st, type, ...)                                                                                          \
    do {                                                                                                               \
        (e)->status = (st);                                                                                            \
        (e)->scim_type = (type);                                                                                       \
        snprintf((e)->detail, sizeof((e)->detail), __VA_ARGS__);                                                       \
    } while (0)

const char *scim_patch_op(json_t *op)
{
    const char *name = json_string_value(json_object_get(op, "op"));
    if (name == NULL)
        return NULL;
    if (strcasecmp(name, "add") == 0)
        return "add";
    if (strcasecmp(name, "replace") == 0)
        return "replace";
    if (strcasecmp(name, "remove") == 0)
        return "remove";
    return NULL;
}

/* ---- value filters evaluated on one element ---- */

static const char *text_of(json_t *v, char *buf, size_t len)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_true(v))
        return "true";
    if (json_is_false(v))
        return "false";
    if (json_is_integer(v)) {
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return NULL;
}

static json_t *get_ci(json_t *obj, const char *name)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (strcasecmp(k, name) == 0)
            return v;
    }
    return NULL;
}

int scim_filter_match(const store_filter_t *f, json_t *el)
{
    switch (f->kind) {
    case STORE_FILTER_AND: return scim_filter_match(f->left, el) && scim_filter_match(f->right, el);
    case STORE_FILTER_OR: return scim_filter_match(f->left, el) || scim_filter_match(f->right, el);
    case STORE_FILTER_NOT: return !scim_filter_match(f->left, el);
    case STORE_FILTER_VALUE_PATH: return 0;
    case STORE_FILTER_CMP: break;
    }
    json_t *v = json_is_object(el) ? get_ci(el, f->attr) : NULL;
    char buf[32];
    const char *have = v != NULL ? text_of(v, buf, sizeof(buf)) : NULL;
    if (f->op == STORE_OP_PR)
        return have != NULL && have[0] != '\0';
    if (f->vtype == STORE_VAL_NULL)
        return f->op == STORE_OP_EQ ? have == NULL : f->op == STORE_OP_NE ? have != NULL : 0;
    const char *want = f->vtype == STORE_VAL_TRUE ? "true" : f->vtype == STORE_VAL_FALSE ? "false" : f->value;
    if (have == NULL)
        have = (f->vtype == STORE_VAL_TRUE || f->vtype == STORE_VAL_FALSE) ? "false" : NULL; /* primary absent */
    if (have == NULL)
        return f->op == STORE_OP_NE;
    size_t hl = strlen(have), wl = strlen(want);
    int cmp = strcasecmp(have, want);
    switch (f->op) {
    case STORE_OP_EQ: return cmp == 0;
    case STORE_OP_NE: return cmp != 0;
    case STORE_OP_CO: return strcasestr(have, want) != NULL;
    case STORE_OP_SW: return hl >= wl && strncasecmp(have, want, wl) == 0;
    case STORE_OP_EW: return hl >= wl && strcasecmp(have + hl - wl, want) == 0;
    case STORE_OP_GT: return cmp > 0;
    case STORE_OP_GE: return cmp >= 0;
    case STORE_OP_LT: return cmp < 0;
    case STORE_OP_LE: return cmp <= 0;
    default: return 0;
    }
}

/* The eq conditions of a value filter, as the attributes of a new element (add through a filter). */
static void filter_seed(const store_filter_t *f, json_t *el)
{
    if (f->kind == STORE_FILTER_AND) {
        filter_seed(f->left, el);
        filter_seed(f->right, el);
    } else if (f->kind == STORE_FILTER_CMP && f->op == STORE_OP_EQ) {
        if (f->vtype == STORE_VAL_STRING)
            json_object_set_new(el, f->attr, json_string(f->value));
        else if (f->vtype == STORE_VAL_TRUE || f->vtype == STORE_VAL_FALSE)
            json_object_set_new(el, f->attr, json_boolean(f->vtype == STORE_VAL_TRUE));
    }
}

/* ---- applying one operation ---- */

typedef struct st_target_t {
    const scim_attr_t *attr; /* the (top-level or extension) attribute */
    json_t *container;       /* object holding it: the resource, or the extension object */
    const char *key;         /* its canonical name in container */
} target_t;

static int resolve(json_t *res, const char *path_attr, target_t *t, int create, scim_error_t *e)
{
    static const char ent_prefix[] = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:";
    const scim_attr_t *attrs = scim_schema_user.attrs;
    const char *name = path_attr;
    t->container = res;
    if (strncmp(path_attr, ent_prefix, sizeof(ent_prefix) - 1) == 0) {
        attrs = scim_schema_enterprise.attrs;
        name = path_attr + sizeof(ent_prefix) - 1;
        t->container = json_object_get(res, SCIM_URN_ENTERPRISE);
        if (t->container == NULL && create) {
            t->container = json_object();
            json_object_set_new(res, SCIM_URN_ENTERPRISE, t->container);
        }
    } else if (strncmp(path_attr, "urn:", 4) == 0) {
        ERR(e, 400, "invalidPath", "%s: unknown schema", path_attr);
        return -1;
    }
    t->attr = scim_attr_find(attrs, name, strlen(name));
    if (t->attr == NULL) {
        if (strcasecmp(name, "id") == 0 || strcasecmp(name, "meta") == 0 || strcasecmp(name, "schemas") == 0)
            ERR(e, 400, "mutability", "%s is read-only", name);
        else
            ERR(e, 400, "invalidPath", "%s is not an attribute of User", path_attr);
        return -1;
    }
    if (t->attr->flags & SCIM_F_READ_ONLY) {
        ERR(e, 400, "mutability", "%s is read-only (change group membership on the Group)", t->attr->name);
        return -1;
    }
    t->key = t->attr->name;
    return 0;
}

/* Multi-valued "add": append each new value unless an equal one is already there. */
static void append_values(json_t *arr, json_t *value)
{
    json_t *vals = json_is_array(value) ? json_incref(value) : json_pack("[O]", value);
    size_t i, j;
    json_t *v, *have;
    json_array_foreach(vals, i, v)
    {
        int dup = 0;
        json_array_foreach(arr, j, have) dup |= json_equal(have, v);
        if (!dup)
            json_array_append(arr, v);
    }
    json_decref(vals);
}

static int apply_path(json_t *res, const char *op, const scim_path_t *path, json_t *value, scim_error_t *e)
{
    target_t t;
    int removing = strcmp(op, "remove") == 0;
    if (resolve(res, path->attr, &t, !removing, e) != 0)
        return -1;
    if (!removing && value == NULL) {
        ERR(e, 400, "invalidSyntax", "%s needs a value", op);
        return -1;
    }
    if (t.container == NULL) { /* removing from an extension the user does not have */
        if (path->filter != NULL) {
            ERR(e, 400, "noTarget", "no value matches the filter");
            return -1;
        }
        return 0;
    }
    int multi = (t.attr->flags & SCIM_F_MULTI) != 0;
    if (path->sub != NULL &&
        (t.attr->type != SCIM_T_COMPLEX || scim_attr_find(t.attr->subs, path->sub, strlen(path->sub)) == NULL)) {
        ERR(e, 400, "invalidPath", "%s has no sub-attribute %s", t.attr->name, path->sub);
        return -1;
    }
    /* the canonical spelling, so that "name.givenname" replaces "givenName" instead of adding a twin */
    const char *sub = path->sub;
    if (sub != NULL && t.attr->subs != NULL)
        sub = scim_attr_find(t.attr->subs, sub, strlen(sub))->name;
    if (path->filter != NULL) {
        if (!multi) {
            ERR(e, 400, "invalidPath", "a value filter applies to multi-valued attributes only");
            return -1;
        }
        json_t *arr = json_object_get(t.container, t.key);
        if (!json_is_array(arr)) {
            arr = json_array();
            json_object_set_new(t.container, t.key, arr);
        }
        size_t matched = 0;
        for (size_t i = 0; i < json_array_size(arr);) {
            json_t *el = json_array_get(arr, i);
            if (!scim_filter_match(path->filter, el)) {
                ++i;
                continue;
            }
            ++matched;
            if (removing && sub == NULL) {
                json_array_remove(arr, i);
                continue;
            }
            if (removing)
                json_object_del(el, sub);
            else if (sub != NULL)
                json_object_set(el, sub, value);
            else if (json_is_object(value))
                json_object_update(el, value);
            else {
                ERR(e, 400, "invalidValue", "the value for %s[...] must be an object", t.attr->name);
                return -1;
            }
            ++i;
        }
        if (matched == 0) {
            /* add creates the element the filter describes; so does replace of a sub-attribute (Entra ID
             * replaces emails[type eq "work"].value on users that have no work address yet) */
            if (removing || (strcmp(op, "replace") == 0 && sub == NULL)) {
                ERR(e, 400, "noTarget", "no value of %s matches the filter", t.attr->name);
                return -1;
            }
            json_t *el = json_object();
            filter_seed(path->filter, el);
            if (sub != NULL)
                json_object_set(el, sub, value);
            else if (json_is_object(value))
                json_object_update(el, value);
            json_array_append_new(arr, el);
        }
        if (json_array_size(arr) == 0)
            json_object_del(t.container, t.key);
        return 0;
    }
    if (sub != NULL) {
        if (multi) { /* "emails.value" without a filter: every element */
            json_t *arr = json_object_get(t.container, t.key), *el;
            size_t i;
            if (!json_is_array(arr) || json_array_size(arr) == 0) {
                if (removing)
                    return 0;
                json_object_set_new(t.container, t.key, json_pack("[{s:O}]", sub, value));
                return 0;
            }
            json_array_foreach(arr, i, el)
            {
                if (removing)
                    json_object_del(el, sub);
                else
                    json_object_set(el, sub, value);
            }
            return 0;
        }
        json_t *parent = json_object_get(t.container, t.key);
        if (!json_is_object(parent)) {
            if (removing)
                return 0;
            parent = json_object();
            json_object_set_new(t.container, t.key, parent);
        }
        if (removing)
            json_object_del(parent, sub);
        else
            json_object_set(parent, sub, value);
        return 0;
    }
    if (removing) {
        if (multi && value != NULL && json_object_get(t.container, t.key) != NULL) {
            /* remove given values only (Entra ID style: "value": [{"value": "x"}]) */
            json_t *arr = json_object_get(t.container, t.key), *vals = json_is_array(value) ? value : NULL, *v;
            size_t i;
            json_array_foreach(vals, i, v)
            {
                for (size_t j = 0; j < json_array_size(arr);) {
                    json_t *have = json_array_get(arr, j);
                    if (json_equal(have, v) ||
                        (json_is_object(v) && json_equal(json_object_get(have, "value"), json_object_get(v, "value"))))
                        json_array_remove(arr, j);
                    else
                        ++j;
                }
            }
            return 0;
        }
        json_object_del(t.container, t.key);
        return 0;
    }
    if (multi && strcmp(op, "add") == 0) {
        json_t *arr = json_object_get(t.container, t.key);
        if (!json_is_array(arr)) {
            arr = json_array();
            json_object_set_new(t.container, t.key, arr);
        }
        append_values(arr, value);
        return 0;
    }
    if (t.attr->type == SCIM_T_COMPLEX && !multi && strcmp(op, "add") == 0 && json_is_object(value) &&
        json_is_object(json_object_get(t.container, t.key))) {
        json_object_update(json_object_get(t.container, t.key), value); /* add merges sub-attributes */
        return 0;
    }
    json_object_set(t.container, t.key, value);
    return 0;
}

static int apply_no_path(json_t *res, const char *op, json_t *value, scim_error_t *e)
{
    if (strcmp(op, "remove") == 0) {
        ERR(e, 400, "noTarget", "remove needs a path");
        return -1;
    }
    if (!json_is_object(value)) {
        ERR(e, 400, "invalidValue", "without a path, the value must be an object of attributes");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(value, k, v)
    {
        /* Okta may echo "id" (and clients "schemas"/"meta") in a path-less value: read-only, ignored */
        if (strcasecmp(k, "schemas") == 0 || strcasecmp(k, "id") == 0 || strcasecmp(k, "meta") == 0)
            continue;
        if (strcasecmp(k, SCIM_URN_ENTERPRISE) == 0 && json_is_object(v)) {
            /* {"urn:...:User": {"department": "x"}}: each attribute of the extension */
            const char *ek;
            json_t *ev;
            json_object_foreach(v, ek, ev)
            {
                char p[256];
                scim_path_t path = {0};
                snprintf(p, sizeof(p), "%s:%s", SCIM_URN_ENTERPRISE, ek);
                char err[200];
                if (scim_path_parse(p, strlen(p), &path, err, sizeof(err)) != 0) {
                    ERR(e, 400, "invalidPath", "%s", err);
                    return -1;
                }
                int r = apply_path(res, op, &path, ev, e);
                scim_path_dispose(&path);
                if (r != 0)
                    return -1;
            }
            continue;
        }
        scim_path_t path = {0};
        char err[200];
        if (scim_path_parse(k, strlen(k), &path, err, sizeof(err)) != 0) {
            ERR(e, 400, "invalidPath", "%s", err);
            return -1;
        }
        int r = apply_path(res, op, &path, v, e);
        scim_path_dispose(&path);
        if (r != 0)
            return -1;
    }
    return 0;
}

int scim_patch_user(json_t *res, json_t *operations, scim_error_t *e)
{
    size_t i;
    json_t *opj;
    if (!json_is_array(operations) || json_array_size(operations) == 0) {
        ERR(e, 400, "invalidSyntax", "Operations must be a non-empty array");
        return -1;
    }
    json_array_foreach(operations, i, opj)
    {
        const char *op = scim_patch_op(opj);
        if (op == NULL) {
            ERR(e, 400, "invalidSyntax", "Operations[%zu].op must be add, replace or remove", i);
            return -1;
        }
        json_t *pathj = json_object_get(opj, "path"), *value = json_object_get(opj, "value");
        if (pathj == NULL || (json_is_string(pathj) && json_string_length(pathj) == 0)) {
            if (apply_no_path(res, op, value, e) != 0)
                return -1;
            continue;
        }
        if (!json_is_string(pathj)) {
            ERR(e, 400, "invalidPath", "Operations[%zu].path must be a string", i);
            return -1;
        }
        scim_path_t path;
        char err[200];
        if (scim_path_parse(json_string_value(pathj), json_string_length(pathj), &path, err, sizeof(err)) != 0) {
            ERR(e, 400, "invalidPath", "%s", err);
            return -1;
        }
        int r = apply_path(res, op, &path, value, e);
        scim_path_dispose(&path);
        if (r != 0)
            return -1;
    }
    return 0;
}
