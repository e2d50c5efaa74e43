/*
 * Queries: GET /Users|/Groups with filter, sortBy, sortOrder, startIndex, count (RFC 7644 §3.4.2) and the same
 * through POST .search (§3.4.3, parameters in the body), plus the attributes / excludedAttributes projection
 * of every resource returned. The filter text is parsed here (scim/filter.c) and compiled by the store against
 * its allowlist; a page is at most SCIM_MAX_RESULTS resources.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scim/internal.h"

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? tolower(c) - 'a' + 10 : -1;
}

char *scim_query_param(const char *query, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *p = query; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&'), *end = amp != NULL ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        /* parameter names are case-insensitive in practice (Entra sends "excludedAttributes" as written) */
        if (eq != NULL && (size_t)(eq - p) == nlen && strncasecmp(p, name, nlen) == 0) {
            char *out = malloc((size_t)(end - eq)), *o = out;
            if (out == NULL)
                return NULL;
            for (const char *s = eq + 1; s < end; ++s) {
                int hi, lo;
                if (*s == '+') {
                    *o++ = ' ';
                } else if (*s == '%' && end - s >= 3 && (hi = hexval((unsigned char)s[1])) >= 0 &&
                           (lo = hexval((unsigned char)s[2])) >= 0) {
                    *o++ = (char)(hi * 16 + lo);
                    s += 2;
                } else {
                    *o++ = *s;
                }
            }
            *o = '\0';
            return out;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return NULL;
}

/* ---- projection ---- */

/* Does the comma-separated list name this attribute (top-level name, or "name.sub")? */
static int listed(const char *list, const char *attr, const char *sub)
{
    char want[300], item[300];
    snprintf(want, sizeof(want), "%s%s%s", attr, sub != NULL ? "." : "", sub != NULL ? sub : "");
    for (const char *p = list; *p != '\0';) {
        while (*p == ' ' || *p == ',')
            ++p;
        const char *start = p;
        while (*p != '\0' && *p != ',')
            ++p;
        size_t len = (size_t)(p - start);
        while (len > 0 && start[len - 1] == ' ')
            --len;
        if (len == 0 || scim_attr_normalize(start, len, item, sizeof(item)) != 0)
            continue;
        if (strcasecmp(item, want) == 0)
            return 1;
    }
    return 0;
}

/* Does the list name a sub-attribute of attr ("name.givenName" for "name")? */
static int listed_below(const char *list, const char *attr)
{
    char item[300];
    size_t alen = strlen(attr);
    for (const char *p = list; *p != '\0';) {
        while (*p == ' ' || *p == ',')
            ++p;
        const char *start = p;
        while (*p != '\0' && *p != ',')
            ++p;
        if (p != start && scim_attr_normalize(start, (size_t)(p - start), item, sizeof(item)) == 0 &&
            strncasecmp(item, attr, alen) == 0 && item[alen] == '.')
            return 1;
    }
    return 0;
}

static void keep_subs(json_t *v, const char *attributes, const char *attr)
{
    const char *sk;
    json_t *sv;
    void *stmp;
    json_object_foreach_safe(v, stmp, sk, sv)
    {
        char sub[100];
        snprintf(sub, sizeof(sub), "%s", sk);
        for (char *s = sub; *s != '\0'; ++s)
            *s = (char)tolower((unsigned char)*s);
        if (!listed(attributes, attr, sub))
            json_object_del(v, sk);
    }
}

static void project_object(json_t *o, const char *attributes, const char *excluded, const char *prefix)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(o, tmp, k, v)
    {
        char name[300];
        snprintf(name, sizeof(name), "%s%s", prefix, k);
        if (prefix[0] == '\0' && (strcmp(k, "id") == 0 || strcmp(k, "schemas") == 0))
            continue; /* returned always */
        if (prefix[0] == '\0' && strcmp(k, SCIM_URN_ENTERPRISE) == 0 && json_is_object(v)) {
            char p[300];
            snprintf(p, sizeof(p), "%s:", SCIM_URN_ENTERPRISE);
            project_object(v, attributes, excluded, p);
            if (json_object_size(v) == 0)
                json_object_del(o, k);
            continue;
        }
        char lower[300];
        if (scim_attr_normalize(name, strlen(name), lower, sizeof(lower)) != 0)
            continue;
        if (excluded != NULL && listed(excluded, lower, NULL)) {
            json_object_del(o, k);
            continue;
        }
        if (attributes == NULL || listed(attributes, lower, NULL))
            continue;
        if ((json_is_object(v) || json_is_array(v)) && listed_below(attributes, lower)) {
            /* keep only the sub-attributes asked for (of each element of a multi-valued attribute) */
            size_t i;
            json_t *el;
            if (json_is_object(v))
                keep_subs(v, attributes, lower);
            else
                json_array_foreach(v, i, el) keep_subs(el, attributes, lower);
            continue;
        }
        json_object_del(o, k);
    }
}

void scim_project(const scim_ctx_t *c, json_t *resource)
{
    if (c->attributes == NULL && c->excluded == NULL)
        return;
    project_object(resource, c->attributes, c->excluded, "");
    if (c->attributes != NULL && json_object_get(resource, "meta") == NULL) {
        /* meta is not asked for: RFC 7643 lets it go, but keep the version clients use for If-Match */
    }
}

/* ---- lists ---- */

typedef struct st_page_t {
    scim_ctx_t *c;
    json_t *resources;
} page_t;

static void on_user(void *ctx, const store_scim_user_t *u)
{
    page_t *p = ctx;
    json_t *o = scim_user_json(u, p->c->set->base_url);
    scim_project(p->c, o);
    json_array_append_new(p->resources, o);
}

static void on_group(void *ctx, const store_scim_group_t *g)
{
    page_t *p = ctx;
    json_t *o = scim_group_json(g, p->c->set->base_url);
    scim_project(p->c, o);
    json_array_append_new(p->resources, o);
}

/* A positive integer parameter; def when absent; -1 when malformed. */
static long long int_param(json_t *search, const char *query, const char *name, long long def)
{
    if (search != NULL) {
        json_t *v = json_object_get(search, name);
        if (v == NULL)
            return def;
        if (json_is_integer(v))
            return json_integer_value(v);
        if (!json_is_string(v))
            return -1;
        query = NULL;
        char *end;
        long long r = strtoll(json_string_value(v), &end, 10);
        return *end == '\0' && end != json_string_value(v) ? r : -1;
    }
    char *s = scim_query_param(query, name), *end;
    if (s == NULL)
        return def;
    long long r = strtoll(s, &end, 10);
    int ok = *end == '\0' && end != s && strlen(s) < 19;
    free(s);
    return ok ? r : -1;
}

static char *str_param(json_t *search, const char *query, const char *name)
{
    if (search == NULL)
        return scim_query_param(query, name);
    json_t *v = json_object_get(search, name);
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_array(v)) { /* attributes: ["userName", "emails"] in a SearchRequest */
        size_t i, len = 1;
        json_t *e;
        json_array_foreach(v, i, e) len += json_string_length(e) + 1;
        char *out = calloc(1, len);
        size_t used = 0;
        json_array_foreach(v, i, e)
        {
            if (out == NULL || !json_is_string(e))
                continue;
            if (used != 0)
                out[used++] = ',';
            memcpy(out + used, json_string_value(e), json_string_length(e));
            used += json_string_length(e);
        }
        return out;
    }
    return NULL;
}

void scim_list(scim_ctx_t *c, int type, json_t *search)
{
    const char *q = c->req->query;
    char *filter_text = str_param(search, q, "filter"), *sort_by = str_param(search, q, "sortBy"),
         *sort_order = str_param(search, q, "sortOrder"), *attributes = str_param(search, q, "attributes"),
         *excluded = str_param(search, q, "excludedAttributes"), err[300];
    long long start = int_param(search, q, "startIndex", 1), count = int_param(search, q, "count", SCIM_MAX_RESULTS);
    store_filter_t *filter = NULL;
    page_t page = {c, json_array()};
    int64_t total = 0;
    char sort_norm[300];

    c->attributes = attributes;
    c->excluded = excluded;
    if (start == -1 || count == -1) {
        scim_error(c->resp, 400, "invalidValue", "startIndex and count must be integers");
        goto done;
    }
    if (start < 1) /* RFC 7644 §3.4.2.4: less than 1 is interpreted as 1 */
        start = 1;
    if (count < 0)
        count = 0;
    if (count > SCIM_MAX_RESULTS)
        count = SCIM_MAX_RESULTS;
    if (filter_text != NULL && scim_filter_parse(filter_text, strlen(filter_text), &filter, err, sizeof(err)) != 0) {
        scim_error(c->resp, 400, "invalidFilter", "%s", err);
        goto done;
    }
    if (sort_by != NULL && scim_attr_normalize(sort_by, strlen(sort_by), sort_norm, sizeof(sort_norm)) != 0) {
        scim_error(c->resp, 400, "invalidValue", "sortBy: not an attribute path");
        goto done;
    }
    if (sort_order != NULL && strcasecmp(sort_order, "ascending") != 0 && strcasecmp(sort_order, "descending") != 0) {
        scim_error(c->resp, 400, "invalidValue", "sortOrder must be ascending or descending");
        goto done;
    }
    int with_members = !(excluded != NULL && strcasestr(excluded, "members") != NULL) &&
                       !(attributes != NULL && strcasestr(attributes, "members") == NULL);
    int64_t skip = start - 1, remaining = count;
    int answered = 0;
    for (int t = 0; t != 2; ++t) {
        if (type != -1 && type != t)
            continue;
        store_scim_query_t query = {.type = t == 0 ? STORE_SCIM_USERS : STORE_SCIM_GROUPS,
                                    .filter = filter,
                                    .sort_by = sort_by != NULL ? sort_norm : NULL,
                                    .descending = sort_order != NULL && strcasecmp(sort_order, "descending") == 0,
                                    .offset = skip,
                                    .count = remaining,
                                    .with_members = with_members};
        int64_t n = 0;
        size_t before = json_array_size(page.resources);
        int rc = store_scim_query(c->db, &query, &n, on_user, on_group, &page, err, sizeof(err));
        if (rc == -E2BIG) {
            scim_error(c->resp, 400, "tooMany", "%s", err);
            goto done;
        }
        if (rc == -EINVAL && type == -1 && (t == 0 || answered)) /* /.search: a type without the attribute */
            continue;                                            /* matches nothing (unless neither has it) */
        if (rc == -EINVAL) {
            scim_error(c->resp, 400,
                       sort_by != NULL && strstr(err, "sortBy") != NULL ? "invalidValue" : "invalidFilter", "%s", err);
            goto done;
        }
        if (rc != 0) {
            scim_db_error(c->resp, rc);
            goto done;
        }
        answered = 1;
        total += n;
        remaining -= (int64_t)(json_array_size(page.resources) - before);
        skip = skip > n ? skip - n : 0;
    }
    size_t got = json_array_size(page.resources);
    scim_send(c->resp, 200,
              json_pack("{s:[s], s:I, s:I, s:I, s:O}", "schemas", SCIM_URN_LIST, "totalResults", (json_int_t)total,
                        "startIndex", (json_int_t)start, "itemsPerPage", (json_int_t)got, "Resources", page.resources));
done:
    json_decref(page.resources);
    scim_filter_free(filter);
    free(filter_text);
    free(sort_by);
    free(sort_order);
    free(attributes);
    free(excluded);
    c->attributes = c->excluded = NULL;
}
