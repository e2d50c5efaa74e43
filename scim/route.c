/*
 * Routing of /scim/v2/<path> by method and path segments, and Bulk (RFC 7644 §3.7): each operation of a
 * BulkRequest runs as its own request through the same dispatcher (its own transaction), with "bulkId:<id>"
 * references in paths and data replaced by the ids created earlier in the same request; failOnErrors stops
 * processing after that many errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scim/internal.h"

#define BULK_ID_MAX 128

static int is(const char *method, const char *want)
{
    return strcmp(method, want) == 0;
}

static void method_not_allowed(scim_ctx_t *c)
{
    scim_error(c->resp, 405, NULL, "%s is not supported on %s", c->req->method, c->req->path);
}

static void resource(scim_ctx_t *c, int users, const char *id_text)
{
    const char *m = c->req->method;
    int64_t id = scim_parse_id(id_text);
    if (id <= 0) {
        scim_error(c->resp, 404, NULL, "no %s with id %.64s", users ? "user" : "group", id_text);
        return;
    }
    if (is(m, "GET")) {
        if (users)
            scim_user_get(c, id);
        else
            scim_group_get(c, id);
        return;
    }
    if (is(m, "DELETE")) {
        if (users)
            scim_user_delete(c, id);
        else
            scim_group_delete(c, id);
        return;
    }
    if (!is(m, "PUT") && !is(m, "PATCH"))
        return method_not_allowed(c);
    json_t *body = scim_parse_body(c);
    if (body == NULL)
        return;
    if (is(m, "PATCH")) {
        json_t *schemas = json_object_get(body, "schemas");
        if (schemas != NULL && !json_is_array(schemas)) {
            scim_error(c->resp, 400, "invalidSyntax", "schemas must be an array");
        } else if (users) {
            scim_user_modify(c, id, body, 1);
        } else {
            scim_group_patch(c, id, body);
        }
    } else if (users) {
        scim_user_modify(c, id, body, 0);
    } else {
        scim_group_replace(c, id, body);
    }
    json_decref(body);
}

static void collection(scim_ctx_t *c, int users)
{
    if (is(c->req->method, "GET"))
        return scim_list(c, users ? 0 : 1, NULL);
    if (!is(c->req->method, "POST"))
        return method_not_allowed(c);
    json_t *body = scim_parse_body(c);
    if (body == NULL)
        return;
    if (users)
        scim_user_create(c, body);
    else
        scim_group_create(c, body);
    json_decref(body);
}

static void search(scim_ctx_t *c, int type)
{
    if (!is(c->req->method, "POST"))
        return method_not_allowed(c);
    json_t *body = scim_parse_body(c);
    if (body != NULL)
        scim_list(c, type, body);
    json_decref(body);
}

static void discovery(scim_ctx_t *c, const char *what, const char *id)
{
    const char *base = c->set->base_url;
    json_t *o = NULL;
    if (!is(c->req->method, "GET"))
        return method_not_allowed(c);
    if (strcmp(what, "ServiceProviderConfig") == 0 && id == NULL) {
        o = scim_service_provider_config_json(base);
        json_object_set_new(json_object_get(o, "bulk"), "maxPayloadSize",
                            json_integer((json_int_t)c->set->bulk_max_bytes));
        json_object_set_new(json_object_get(o, "changePassword"), "supported", json_boolean(c->set->accept_passwords));
    } else if (strcmp(what, "Schemas") == 0) {
        if (id == NULL)
            o = scim_schemas_json(base);
        else if (strcasecmp(id, SCIM_URN_USER) == 0)
            o = scim_schema_json(&scim_schema_user, base);
        else if (strcasecmp(id, SCIM_URN_ENTERPRISE) == 0)
            o = scim_schema_json(&scim_schema_enterprise, base);
        else if (strcasecmp(id, SCIM_URN_GROUP) == 0)
            o = scim_schema_json(&scim_schema_group, base);
    } else if (strcmp(what, "ResourceTypes") == 0) {
        if (id == NULL)
            o = scim_resource_types_json(base);
        else if (strcmp(id, "User") == 0 || strcmp(id, "Group") == 0)
            o = scim_resource_type_json(strcmp(id, "User") == 0, base);
    }
    if (o == NULL)
        return scim_error(c->resp, 404, NULL, "no such resource");
    scim_send(c->resp, 200, o);
}

void scim_dispatch(scim_ctx_t *c, int in_bulk)
{
    char path[512], *seg[4] = {NULL, NULL, NULL, NULL};
    size_t n = 0;
    if (strlen(c->req->path) >= sizeof(path))
        return scim_error(c->resp, 404, NULL, "no such endpoint");
    snprintf(path, sizeof(path), "%s", c->req->path);
    for (char *p = path; *p != '\0' && n < 4;) {
        while (*p == '/')
            *p++ = '\0';
        if (*p == '\0')
            break;
        seg[n++] = p;
        while (*p != '\0' && *p != '/')
            ++p;
    }
    if (n == 0 || n > 2)
        return scim_error(c->resp, 404, NULL, "no such endpoint");
    if (strcmp(seg[0], "Users") == 0 || strcmp(seg[0], "Groups") == 0) {
        int users = seg[0][0] == 'U';
        if (n == 1)
            return collection(c, users);
        if (strcmp(seg[1], ".search") == 0)
            return search(c, users ? 0 : 1);
        return resource(c, users, seg[1]);
    }
    if (strcmp(seg[0], ".search") == 0 && n == 1)
        return search(c, -1);
    if (strcmp(seg[0], "Bulk") == 0 && n == 1) {
        if (in_bulk)
            return scim_error(c->resp, 400, "invalidValue", "Bulk cannot be nested");
        if (!is(c->req->method, "POST"))
            return method_not_allowed(c);
        return scim_bulk(c);
    }
    if (strcmp(seg[0], "Me") == 0)
        return scim_error(c->resp, 501, NULL, "/Me is not supported: SCIM clients are not users");
    if (strcmp(seg[0], "ServiceProviderConfig") == 0 || strcmp(seg[0], "Schemas") == 0 ||
        strcmp(seg[0], "ResourceTypes") == 0)
        return discovery(c, seg[0], n == 2 ? seg[1] : NULL);
    scim_error(c->resp, 404, NULL, "no such endpoint");
}

void scim_process(store_t *db, const scim_settings_t *settings, const scim_request_t *req, scim_response_t *resp)
{
    scim_ctx_t c = {.db = db, .set = settings, .req = req, .resp = resp};
    memset(resp, 0, sizeof(*resp));
    char *attrs = scim_query_param(req->query, "attributes"),
         *excl = scim_query_param(req->query, "excludedAttributes");
    c.attributes = attrs;
    c.excluded = excl;
    scim_dispatch(&c, 0);
    if (resp->status == 0)
        scim_error(resp, 500, NULL, "internal error");
    free(attrs);
    free(excl);
}

/* ---- Bulk ---- */

typedef struct st_bulk_ids_t {
    json_t *map; /* bulkId -> id */
} bulk_ids_t;

/* Replaces "bulkId:x" strings in v (recursively); -1 and *missing when one is not (yet) known. */
static int resolve_refs(json_t *v, json_t *map, const char **missing)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strncmp(s, "bulkId:", 7) != 0)
            return 0;
        json_t *id = json_object_get(map, s + 7);
        if (id == NULL) {
            *missing = s + 7;
            return -1;
        }
        json_string_set(v, json_string_value(id));
        return 0;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (resolve_refs(e, map, missing) != 0)
                return -1;
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
        {
            if (resolve_refs(e, map, missing) != 0)
                return -1;
        }
    }
    return 0;
}

static json_t *bulk_one(scim_ctx_t *c, json_t *op, json_t *map, int *failed)
{
    const char *method = json_string_value(json_object_get(op, "method"));
    const char *path = json_string_value(json_object_get(op, "path"));
    const char *bulk_id = json_string_value(json_object_get(op, "bulkId"));
    const char *version = json_string_value(json_object_get(op, "version"));
    json_t *data = json_object_get(op, "data"), *out = json_object();
    scim_response_t resp = {0};
    char mbuf[8] = "", pbuf[512];
    char *body = NULL;

    if (method != NULL && strlen(method) < sizeof(mbuf)) {
        for (size_t i = 0; method[i] != '\0'; ++i)
            mbuf[i] = (char)(method[i] >= 'a' && method[i] <= 'z' ? method[i] - 32 : method[i]);
    }
    json_object_set_new(out, "method", json_string(mbuf[0] != '\0' ? mbuf : "?"));
    if (bulk_id != NULL)
        json_object_set_new(out, "bulkId", json_string(bulk_id));
    if (!(strcmp(mbuf, "POST") == 0 || strcmp(mbuf, "PUT") == 0 || strcmp(mbuf, "PATCH") == 0 ||
          strcmp(mbuf, "DELETE") == 0) ||
        path == NULL || path[0] != '/' || strlen(path) >= sizeof(pbuf) ||
        (strcmp(mbuf, "POST") == 0 && bulk_id == NULL)) {
        scim_error(&resp, 400, "invalidSyntax", "an operation needs method, path (and bulkId for POST)");
        goto done;
    }
    /* "/Groups/bulkId:x" */
    const char *ref = strstr(path, "bulkId:");
    if (ref != NULL) {
        json_t *id = json_object_get(map, ref + 7);
        if (id == NULL) {
            scim_error(&resp, 409, "invalidValue", "bulkId %.64s is not defined by an earlier operation", ref + 7);
            goto done;
        }
        snprintf(pbuf, sizeof(pbuf), "%.*s%s", (int)(ref - path), path, json_string_value(id));
        path = pbuf;
    }
    json_t *copy = data != NULL ? json_deep_copy(data) : NULL;
    const char *missing = NULL;
    if (copy != NULL && resolve_refs(copy, map, &missing) != 0) {
        scim_error(&resp, 409, "invalidValue", "bulkId %.64s is not defined by an earlier operation", missing);
        json_decref(copy); /* missing points into it */
        goto done;
    }
    body = copy != NULL ? json_dumps(copy, JSON_COMPACT) : NULL;
    json_decref(copy);
    char ifmatch[64];
    if (version != NULL)
        snprintf(ifmatch, sizeof(ifmatch), "%s", version);
    scim_request_t sub = {.method = mbuf,
                          .path = path,
                          .query = NULL,
                          .body = body,
                          .body_len = body != NULL ? strlen(body) : 0,
                          .if_match = version != NULL ? ifmatch : NULL,
                          .actor = c->req->actor,
                          .source = c->req->source};
    scim_ctx_t sc = {.db = c->db, .set = c->set, .req = &sub, .resp = &resp};
    scim_dispatch(&sc, 1);
done:
    if (resp.status == 0)
        scim_error(&resp, 500, NULL, "internal error");
    char code[8];
    snprintf(code, sizeof(code), "%d", resp.status);
    json_object_set_new(out, "status", json_string(code));
    if (resp.location != NULL)
        json_object_set_new(out, "location", json_string(resp.location));
    if (resp.etag[0] != '\0')
        json_object_set_new(out, "version", json_string(resp.etag));
    if (resp.status >= 400) {
        *failed = 1;
        json_t *err = resp.body != NULL ? json_loads(resp.body, 0, NULL) : NULL;
        if (err != NULL)
            json_object_set_new(out, "response", err);
    } else if (strcmp(mbuf, "POST") == 0 && bulk_id != NULL && resp.location != NULL) {
        const char *slash = strrchr(resp.location, '/');
        json_object_set_new(map, bulk_id, json_string(slash != NULL ? slash + 1 : ""));
    }
    free(body);
    scim_response_dispose(&resp);
    return out;
}

void scim_bulk(scim_ctx_t *c)
{
    if (c->req->body_len > c->set->bulk_max_bytes)
        return scim_error(c->resp, 413, NULL, "the bulk request is larger than maxPayloadSize (%zu bytes)",
                          c->set->bulk_max_bytes);
    json_t *body = scim_parse_body(c);
    if (body == NULL)
        return;
    json_t *ops = json_object_get(body, "Operations"), *fail_on = json_object_get(body, "failOnErrors");
    if (!json_is_array(ops)) {
        scim_error(c->resp, 400, "invalidSyntax", "Operations must be an array");
        goto done;
    }
    if (json_array_size(ops) > SCIM_BULK_MAX_OPS) {
        scim_error(c->resp, 413, NULL, "the bulk request has more than maxOperations (%d) operations",
                   SCIM_BULK_MAX_OPS);
        goto done;
    }
    if (fail_on != NULL && (!json_is_integer(fail_on) || json_integer_value(fail_on) < 1)) {
        scim_error(c->resp, 400, "invalidValue", "failOnErrors must be a positive integer");
        goto done;
    }
    json_int_t max_errors = fail_on != NULL ? json_integer_value(fail_on) : 0, errors = 0;
    json_t *results = json_array(), *map = json_object(), *op;
    size_t i;
    json_array_foreach(ops, i, op)
    {
        int failed = 0;
        json_array_append_new(results, bulk_one(c, op, map, &failed));
        if (failed && max_errors != 0 && ++errors >= max_errors)
            break;
    }
    json_decref(map);
    scim_send(c->resp, 200, json_pack("{s:[s], s:o}", "schemas", SCIM_URN_BULK_RESP, "Operations", results));
done:
    json_decref(body);
}
