/*
 * SCIM filters to SQL. The parsed tree (store_filter_t, built by scim/filter.c) is compiled against a fixed
 * allowlist of attribute paths per resource type; each allowed path maps to a constant SQL expression written
 * here. Values are never pasted: every value becomes one $n parameter, bound as text. An unknown path, an
 * operator that does not fit the attribute's type (gt on a boolean, co on a date) or a value of the wrong kind
 * is -EINVAL with a message the SCIM layer returns as invalidFilter.
 *
 * Multi-valued attributes (emails, groups, members, ...) become EXISTS sub-queries over their elements, with
 * the element alias x (JSON arrays) or the join's own columns; a value path `emails[type eq "work" and value co
 * "@x"]` puts both conditions inside one EXISTS, so they must hold for the same element (RFC 7644 §3.4.2.2).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

enum attr_type { T_STRING, T_EXACT, T_BOOL, T_DATE, T_COMPLEX };

typedef struct st_attr_t {
    const char *name; /* lower-case path */
    enum attr_type type;
    const char *expr; /* SQL text for single-valued attributes */
} attr_t;

typedef struct st_multi_t {
    const char *name;     /* lower-case attribute */
    const char *from;     /* FROM ... WHERE <join>: the conditions are ANDed to it */
    const char *elements; /* the set-returning expression of a JSON array (sortable by its primary element) */
    const attr_t *subs;
} multi_t;

#define ENT           "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:"
#define ENT_JSON(key) "(u.scim->'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'->>'" key "')"
#define JSON_ELEMENTS(key)                                                                                             \
    "jsonb_array_elements(CASE WHEN jsonb_typeof(u.scim->'" key "') = 'array' THEN u.scim->'" key                      \
    "' ELSE '[]'::jsonb END)"
#define JSON_ARRAY(key) JSON_ELEMENTS(key) " x WHERE true", JSON_ELEMENTS(key)

static const attr_t user_attrs[] = {
    {"id", T_EXACT, "u.id::text"},
    {"username", T_STRING, "u.username"},
    {"externalid", T_EXACT, "u.external_id"},
    {"active", T_BOOL, "(NOT u.disabled)::text"},
    {"meta.created", T_DATE, "u.created_at"},
    {"meta.lastmodified", T_DATE, "u.updated_at"},
    {"meta.resourcetype", T_EXACT, "'User'::text"},
    {"meta.version", T_EXACT, "('W/\"' || u.version || '\"')"},
    {"displayname", T_STRING, "(u.scim->>'displayName')"},
    {"nickname", T_STRING, "(u.scim->>'nickName')"},
    {"profileurl", T_STRING, "(u.scim->>'profileUrl')"},
    {"title", T_STRING, "(u.scim->>'title')"},
    {"usertype", T_STRING, "(u.scim->>'userType')"},
    {"preferredlanguage", T_STRING, "(u.scim->>'preferredLanguage')"},
    {"locale", T_STRING, "(u.scim->>'locale')"},
    {"timezone", T_STRING, "(u.scim->>'timezone')"},
    {"name", T_COMPLEX, "(u.scim->'name')::text"},
    {"name.formatted", T_STRING, "(u.scim->'name'->>'formatted')"},
    {"name.familyname", T_STRING, "(u.scim->'name'->>'familyName')"},
    {"name.givenname", T_STRING, "(u.scim->'name'->>'givenName')"},
    {"name.middlename", T_STRING, "(u.scim->'name'->>'middleName')"},
    {"name.honorificprefix", T_STRING, "(u.scim->'name'->>'honorificPrefix')"},
    {"name.honorificsuffix", T_STRING, "(u.scim->'name'->>'honorificSuffix')"},
    {ENT "employeenumber", T_STRING, ENT_JSON("employeeNumber")},
    {ENT "costcenter", T_STRING, ENT_JSON("costCenter")},
    {ENT "organization", T_STRING, ENT_JSON("organization")},
    {ENT "division", T_STRING, ENT_JSON("division")},
    {ENT "department", T_STRING, ENT_JSON("department")},
    {ENT "manager", T_EXACT,
     "(u.scim->'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'->'manager'->>'value')"},
    {ENT "manager.value", T_EXACT,
     "(u.scim->'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'->'manager'->>'value')"},
    {ENT "manager.displayname", T_STRING,
     "(u.scim->'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'->'manager'->>'displayName')"},
    {NULL, 0, NULL}};

static const attr_t plural_subs[] = {{"value", T_STRING, "(x->>'value')"},
                                     {"display", T_STRING, "(x->>'display')"},
                                     {"type", T_STRING, "(x->>'type')"},
                                     {"primary", T_BOOL, "coalesce(x->>'primary', 'false')"},
                                     {NULL, 0, NULL}};
static const attr_t address_subs[] = {{"formatted", T_STRING, "(x->>'formatted')"},
                                      {"streetaddress", T_STRING, "(x->>'streetAddress')"},
                                      {"locality", T_STRING, "(x->>'locality')"},
                                      {"region", T_STRING, "(x->>'region')"},
                                      {"postalcode", T_STRING, "(x->>'postalCode')"},
                                      {"country", T_STRING, "(x->>'country')"},
                                      {"type", T_STRING, "(x->>'type')"},
                                      {"primary", T_BOOL, "coalesce(x->>'primary', 'false')"},
                                      {NULL, 0, NULL}};
static const attr_t group_ref_subs[] = {{"value", T_EXACT, "g2.id::text"},
                                        {"display", T_STRING, "g2.name"},
                                        {"type", T_STRING, "'direct'::text"},
                                        {NULL, 0, NULL}};

static const multi_t user_multis[] = {
    {"emails", JSON_ARRAY("emails"), plural_subs},
    {"phonenumbers", JSON_ARRAY("phoneNumbers"), plural_subs},
    {"ims", JSON_ARRAY("ims"), plural_subs},
    {"photos", JSON_ARRAY("photos"), plural_subs},
    {"addresses", JSON_ARRAY("addresses"), address_subs},
    {"entitlements", JSON_ARRAY("entitlements"), plural_subs},
    {"roles", JSON_ARRAY("roles"), plural_subs},
    {"x509certificates", JSON_ARRAY("x509Certificates"), plural_subs},
    {"groups", "group_members gm JOIN groups g2 ON g2.id = gm.group_id WHERE gm.user_id = u.id", NULL, group_ref_subs},
    {NULL, NULL, NULL, NULL}};

static const attr_t group_attrs[] = {{"id", T_EXACT, "g.id::text"},
                                     {"displayname", T_STRING, "g.name"},
                                     {"externalid", T_EXACT, "g.external_id"},
                                     {"meta.created", T_DATE, "g.created_at"},
                                     {"meta.lastmodified", T_DATE, "g.updated_at"},
                                     {"meta.resourcetype", T_EXACT, "'Group'::text"},
                                     {"meta.version", T_EXACT, "('W/\"' || g.version || '\"')"},
                                     {NULL, 0, NULL}};
static const attr_t member_subs[] = {{"value", T_EXACT, "mu.id::text"},
                                     {"display", T_STRING, "coalesce(mu.display_name, mu.username)"},
                                     {"type", T_STRING, "'User'::text"},
                                     {NULL, 0, NULL}};
static const multi_t group_multis[] = {
    {"members", "group_members gm JOIN users mu ON mu.id = gm.user_id WHERE gm.group_id = g.id", NULL, member_subs},
    {NULL, NULL, NULL, NULL}};

typedef struct st_compiler_t {
    const attr_t *attrs;
    const multi_t *multis;
    char *buf;
    size_t len, cap;
    const char **params;
    int nparams, max_params;
    char *err;
    size_t errlen;
    int failed, too_many;
} compiler_t;

__attribute__((format(printf, 2, 3))) static void fail(compiler_t *c, const char *fmt, ...)
{
    if (c->failed)
        return;
    c->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
}

static void emit(compiler_t *c, const char *s)
{
    size_t l = strlen(s);
    if (c->failed)
        return;
    if (c->len + l + 1 > c->cap) {
        size_t ncap = (c->len + l + 1) * 2;
        char *n = realloc(c->buf, ncap);
        if (n == NULL) {
            fail(c, "out of memory");
            return;
        }
        c->buf = n;
        c->cap = ncap;
    }
    memcpy(c->buf + c->len, s, l + 1);
    c->len += l;
}

/* Binds a value: emits "$n". */
static void param(compiler_t *c, const char *value, const char *cast)
{
    char ref[32];
    if (c->nparams == c->max_params) {
        fail(c, "the filter has more comparisons than the server processes (%d)", c->max_params);
        c->too_many = 1;
        return;
    }
    c->params[c->nparams++] = value;
    snprintf(ref, sizeof(ref), "$%d%s", c->nparams, cast);
    emit(c, ref);
}

static const attr_t *find_attr(const attr_t *list, const char *name)
{
    for (; list->name != NULL; ++list)
        if (strcmp(list->name, name) == 0)
            return list;
    return NULL;
}

static const multi_t *find_multi(const multi_t *list, const char *name, size_t len)
{
    for (; list->name != NULL; ++list)
        if (strlen(list->name) == len && memcmp(list->name, name, len) == 0)
            return list;
    return NULL;
}

/* A loose RFC 3339 check (the cast decides the rest): digits, '-', ':', 'T', '.', 'Z', '+'. */
static int looks_like_date(const char *s)
{
    size_t l = strlen(s);
    if (l < 10 || l > 40 || !isdigit((unsigned char)s[0]) || s[4] != '-' || s[7] != '-')
        return 0;
    for (; *s != '\0'; ++s)
        if (!isdigit((unsigned char)*s) && strchr("-:T.Z+ ", *s) == NULL)
            return 0;
    return 1;
}

/* One comparison of an attribute expression. */
static void comparison(compiler_t *c, const attr_t *a, const store_filter_t *f)
{
    static const char *const ops[] = {"=", "<>", NULL, NULL, NULL, ">", ">=", "<", "<="};
    const char *e = a->expr;
    if (f->op == STORE_OP_PR) {
        emit(c, "(");
        emit(c, e);
        emit(c, a->type == T_STRING || a->type == T_EXACT ? " IS NOT NULL AND " : " IS NOT NULL)");
        if (a->type == T_STRING || a->type == T_EXACT) {
            emit(c, e);
            emit(c, " <> '')");
        }
        return;
    }
    if (f->vtype == STORE_VAL_NULL) {
        if (f->op != STORE_OP_EQ && f->op != STORE_OP_NE)
            return fail(c, "null can only be compared with eq or ne");
        emit(c, "(");
        emit(c, e);
        emit(c, f->op == STORE_OP_EQ ? " IS NULL)" : " IS NOT NULL)");
        return;
    }
    switch (a->type) {
    case T_COMPLEX: return fail(c, "%s is complex: compare one of its sub-attributes", a->name);
    case T_BOOL:
        if (f->vtype != STORE_VAL_TRUE && f->vtype != STORE_VAL_FALSE)
            return fail(c, "%s is a boolean: compare it with true or false", a->name);
        if (f->op != STORE_OP_EQ && f->op != STORE_OP_NE)
            return fail(c, "%s is a boolean: only eq, ne and pr apply", a->name);
        emit(c, "(");
        emit(c, e);
        emit(c, f->op == STORE_OP_EQ ? " = " : " <> ");
        param(c, f->vtype == STORE_VAL_TRUE ? "true" : "false", "");
        emit(c, ")");
        return;
    case T_DATE:
        if (f->vtype != STORE_VAL_STRING || !looks_like_date(f->value))
            return fail(c, "%s is a date: compare it with an RFC 3339 date string", a->name);
        if (ops[f->op] == NULL)
            return fail(c, "%s is a date: co, sw and ew do not apply", a->name);
        emit(c, "(");
        emit(c, e);
        emit(c, " ");
        emit(c, ops[f->op]);
        emit(c, " ");
        param(c, f->value, "::timestamptz");
        emit(c, ")");
        return;
    default: break;
    }
    if (f->vtype != STORE_VAL_STRING && f->vtype != STORE_VAL_NUMBER)
        return fail(c, "%s is a string: compare it with a string", a->name);
    /* Strings: case-insensitive unless caseExact (id, externalId, references). */
    int fold = a->type == T_STRING;
    const char *lhs_open = fold ? "lower(" : "(", *rhs_cast = fold ? "" : "::text";
    emit(c, "(");
    switch (f->op) {
    case STORE_OP_CO:
        emit(c, "strpos(");
        emit(c, lhs_open);
        emit(c, e);
        emit(c, "), ");
        emit(c, fold ? "lower(" : "(");
        param(c, f->value, rhs_cast);
        emit(c, ")) > 0");
        break;
    case STORE_OP_SW:
        emit(c, "starts_with(");
        emit(c, lhs_open);
        emit(c, e);
        emit(c, "), ");
        emit(c, fold ? "lower(" : "(");
        param(c, f->value, rhs_cast);
        emit(c, "))");
        break;
    case STORE_OP_EW:
        emit(c, "right(");
        emit(c, lhs_open);
        emit(c, e);
        emit(c, "), length(");
        param(c, f->value, rhs_cast);
        emit(c, ")) = ");
        emit(c, fold ? "lower(" : "(");
        param(c, f->value, rhs_cast);
        emit(c, ")");
        break;
    case STORE_OP_NE:
        /* an absent attribute is "not equal" too */
        emit(c, lhs_open);
        emit(c, e);
        emit(c, ") IS DISTINCT FROM ");
        emit(c, fold ? "lower(" : "(");
        param(c, f->value, rhs_cast);
        emit(c, ")");
        break;
    default:
        emit(c, lhs_open);
        emit(c, e);
        emit(c, ") ");
        emit(c, ops[f->op]);
        emit(c, " ");
        emit(c, fold ? "lower(" : "(");
        param(c, f->value, rhs_cast);
        emit(c, ")");
    }
    emit(c, ")");
}

static void node(compiler_t *c, const store_filter_t *f, const multi_t *inside);

/* An attribute path at the top level, or inside a value path (inside != NULL: sub-attribute names only). */
static void attr_expression(compiler_t *c, const store_filter_t *f, const multi_t *inside)
{
    const char *path = f->attr;
    if (inside != NULL) {
        const attr_t *a = find_attr(inside->subs, path);
        if (a == NULL)
            return fail(c, "%s has no sub-attribute %s that can be filtered", inside->name, path);
        return comparison(c, a, f);
    }
    const attr_t *a = find_attr(c->attrs, path);
    if (a != NULL)
        return comparison(c, a, f);
    /* multi-valued: "emails" (its value) or "emails.type" */
    const char *dot = strrchr(path, '.');
    size_t base_len = dot != NULL ? (size_t)(dot - path) : strlen(path);
    const multi_t *m = find_multi(c->multis, path, base_len);
    if (m == NULL)
        return fail(c, "%s is not an attribute that can be filtered", path);
    const attr_t *sub = find_attr(m->subs, dot != NULL ? dot + 1 : "value");
    emit(c, "EXISTS (SELECT 1 FROM ");
    emit(c, m->from);
    if (f->op == STORE_OP_PR && dot == NULL) { /* "emails pr": has at least one element */
        emit(c, ")");
        return;
    }
    if (sub == NULL)
        return fail(c, "%s has no sub-attribute %s that can be filtered", m->name, dot + 1);
    emit(c, " AND ");
    comparison(c, sub, f);
    emit(c, ")");
}

static void node(compiler_t *c, const store_filter_t *f, const multi_t *inside)
{
    if (c->failed)
        return;
    switch (f->kind) {
    case STORE_FILTER_AND:
    case STORE_FILTER_OR:
        emit(c, "(");
        node(c, f->left, inside);
        emit(c, f->kind == STORE_FILTER_AND ? " AND " : " OR ");
        node(c, f->right, inside);
        emit(c, ")");
        return;
    case STORE_FILTER_NOT:
        /* three-valued logic: an absent attribute makes the inner comparison NULL; "not" of it is true */
        emit(c, "(NOT coalesce(");
        node(c, f->left, inside);
        emit(c, ", false))");
        return;
    case STORE_FILTER_CMP: attr_expression(c, f, inside); return;
    case STORE_FILTER_VALUE_PATH: {
        if (inside != NULL)
            return fail(c, "value paths cannot be nested");
        const multi_t *m = find_multi(c->multis, f->attr, strlen(f->attr));
        if (m == NULL)
            return fail(c, "%s is not a multi-valued attribute that can be filtered", f->attr);
        emit(c, "EXISTS (SELECT 1 FROM ");
        emit(c, m->from);
        emit(c, " AND ");
        node(c, f->left, m);
        emit(c, ")");
        return;
    }
    }
}

int store_scim_compile(store_scim_type_t type, const store_filter_t *f, char **sql, const char **params, int *nparams,
                       int max_params, char *err, size_t errlen)
{
    compiler_t c = {.attrs = type == STORE_SCIM_USERS ? user_attrs : group_attrs,
                    .multis = type == STORE_SCIM_USERS ? user_multis : group_multis,
                    .params = params,
                    .max_params = max_params,
                    .err = err,
                    .errlen = errlen};
    if (f == NULL)
        emit(&c, "true");
    else
        node(&c, f, NULL);
    if (c.failed) {
        free(c.buf);
        *sql = NULL;
        return c.too_many ? -E2BIG : -EINVAL;
    }
    *sql = c.buf;
    *nparams = c.nparams;
    return 0;
}

/* The sort key of a multi-valued attribute (`emails`, `emails.value`, `addresses.locality`): that sub-attribute
 * of the primary element, or of the first when none is primary (RFC 7644 §3.4.2.3). NULL when `path` is not one
 * (group references and members are joins, not sortable). */
static const char *multi_sort_key(store_scim_type_t type, const char *path, char *out, size_t outlen)
{
    if (type != STORE_SCIM_USERS)
        return NULL;
    const char *dot = strchr(path, '.');
    const multi_t *m = find_multi(user_multis, path, dot != NULL ? (size_t)(dot - path) : strlen(path));
    const attr_t *sub = m != NULL && m->elements != NULL ? find_attr(m->subs, dot != NULL ? dot + 1 : "value") : NULL;
    if (sub == NULL || sub->type == T_BOOL)
        return NULL;
    int n = snprintf(out, outlen,
                     "(SELECT lower%s FROM %s WITH ORDINALITY AS e(x, n) "
                     "ORDER BY lower(x->>'primary') = 'true' DESC NULLS LAST, n LIMIT 1)",
                     sub->expr, m->elements);
    return n > 0 && (size_t)n < outlen ? out : NULL;
}

/* ORDER BY for sortBy: a single-valued attribute, or the primary value of a multi-valued one. */
static int order_by(store_scim_type_t type, const char *sort_by, int descending, char *out, size_t outlen, char *err,
                    size_t errlen)
{
    const char *id = type == STORE_SCIM_USERS ? "u.id" : "g.id";
    const char *dir = descending ? " DESC NULLS LAST" : " ASC NULLS LAST";
    char key[512];
    if (sort_by == NULL) {
        snprintf(out, outlen, "%s", id);
        return 0;
    }
    const attr_t *a = find_attr(type == STORE_SCIM_USERS ? user_attrs : group_attrs, sort_by);
    if (a != NULL && a->type != T_COMPLEX)
        snprintf(key, sizeof(key), "%s(%s)", a->type == T_STRING ? "lower" : "", a->expr);
    else if (a != NULL || multi_sort_key(type, sort_by, key, sizeof(key)) == NULL) {
        snprintf(err, errlen, "sortBy: %s is not an attribute results can be sorted by", sort_by);
        return -EINVAL;
    }
    int n = snprintf(out, outlen, "%s%s, %s%s", key, dir, id, dir);
    if (n < 0 || (size_t)n >= outlen) {
        snprintf(err, errlen, "sortBy: %s is too long", sort_by);
        return -EINVAL;
    }
    return 0;
}

int store_scim_query(store_t *st, const store_scim_query_t *q, int64_t *total,
                     void (*user_cb)(void *ctx, const store_scim_user_t *u),
                     void (*group_cb)(void *ctx, const store_scim_group_t *g), void *ctx, char *err, size_t errlen)
{
    const char *params[STORE_MAX_PARAMS];
    char *where = NULL, order[1024];
    int nparams = 0;
    *total = 0;
    if (order_by(q->type, q->sort_by, q->descending, order, sizeof(order), err, errlen) != 0)
        return -EINVAL;
    int rc = store_scim_compile(q->type, q->filter, &where, params, &nparams, STORE_MAX_PARAMS, err, errlen);
    if (rc != 0)
        return rc;
    rc = store_scim_run_query(st, q, where, params, nparams, order, total, user_cb, group_cb, ctx);
    if (rc == -EINVAL)
        snprintf(err, errlen, "a filter value does not fit the attribute's type");
    free(where);
    return rc;
}
