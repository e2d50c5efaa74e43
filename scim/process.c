/*
 * One SCIM request, start to finish, on a worker thread: route, parse, run the operation against the store in
 * one transaction together with its audit event (actor scim:<token name>, before/after of what changed, the
 * password redacted), and build the response. Errors follow RFC 7644 §3.12: status as a string, a scimType and
 * a detail; a failed request leaves nothing behind (the transaction rolls back, the audit row included).
 *
 * This file holds the shared plumbing (errors, ETags, bodies, audit) and the user operations; groups are in
 * group.c, lists and search in list.c, routing and Bulk in route.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scim/internal.h"

/* ---- responses ---- */

void scim_response_dispose(scim_response_t *resp)
{
    free(resp->body);
    free(resp->location);
    memset(resp, 0, sizeof(*resp));
}

void scim_error(scim_response_t *resp, int status, const char *scim_type, const char *fmt, ...)
{
    char detail[512], code[8];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    snprintf(code, sizeof(code), "%d", status);
    json_t *o = json_pack("{s:[s], s:s, s:s}", "schemas", SCIM_URN_ERROR, "status", code, "detail", detail);
    if (scim_type != NULL)
        json_object_set_new(o, "scimType", json_string(scim_type));
    free(resp->body);
    free(resp->location);
    resp->location = NULL;
    resp->etag[0] = '\0';
    resp->status = status;
    resp->body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
}

void scim_error_from(scim_response_t *resp, const scim_error_t *e)
{
    scim_error(resp, e->status, e->scim_type, "%s", e->detail);
}

void scim_send(scim_response_t *resp, int status, json_t *o)
{
    free(resp->body);
    resp->status = status;
    resp->body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
}

void scim_db_error(scim_response_t *resp, int rc)
{
    if (rc == -EIO || rc == -ENOMEM)
        scim_error(resp, 503, NULL, "the database is not available; try again");
    else
        scim_error(resp, 500, NULL, "internal error");
}

void scim_etag(char *out, size_t len, int64_t version)
{
    snprintf(out, len, "W/\"%lld\"", (long long)version);
}

/* If-Match / If-None-Match: a list of entity tags, or "*". Weak and strong forms compare equal (our tags are
 * weak: the version of the resource). */
int scim_etag_listed(const char *header, const char *etag)
{
    const char *opaque = strncmp(etag, "W/", 2) == 0 ? etag + 2 : etag;
    size_t olen = strlen(opaque);
    const char *p = header;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',' || *p == '\t')
            ++p;
        if (*p == '*')
            return 1;
        const char *start = p;
        while (*p != '\0' && *p != ',')
            ++p;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            --end;
        if (end - start >= 2 && strncmp(start, "W/", 2) == 0)
            start += 2;
        if ((size_t)(end - start) == olen && memcmp(start, opaque, olen) == 0)
            return 1;
    }
    return 0;
}

/* The answer to a GET of one resource: its ETag, then 304 when If-None-Match lists it, else the resource as
 * attributes / excludedAttributes ask (steals o). */
void scim_send_resource(scim_ctx_t *c, int64_t version, json_t *o)
{
    scim_etag(c->resp->etag, sizeof(c->resp->etag), version);
    if (c->req->if_none_match != NULL && scim_etag_listed(c->req->if_none_match, c->resp->etag)) {
        json_decref(o);
        c->resp->status = 304;
        return;
    }
    scim_project(c, o);
    scim_send(c->resp, 200, o);
}

/* 412 when If-Match is present and does not list the current version. */
int scim_precondition(const scim_ctx_t *c, int64_t version)
{
    char etag[48];
    scim_etag(etag, sizeof(etag), version);
    if (c->req->if_match != NULL && !scim_etag_listed(c->req->if_match, etag)) {
        scim_error(c->resp, 412, NULL, "the resource was changed (If-Match does not match its version %s)", etag);
        return -1;
    }
    return 0;
}

json_t *scim_parse_body(scim_ctx_t *c)
{
    json_error_t jerr;
    if (c->req->body == NULL || c->req->body_len == 0) {
        scim_error(c->resp, 400, "invalidSyntax", "the request needs a JSON body");
        return NULL;
    }
    json_t *o = json_loadb(c->req->body, c->req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL || !json_is_object(o)) {
        scim_error(c->resp, 400, "invalidSyntax", "the body is not a JSON object: %s", o == NULL ? jerr.text : "");
        json_decref(o);
        return NULL;
    }
    /* SCIM 1.x messages ("urn:scim:schemas:core:1.0") are another protocol version */
    json_t *schemas = json_object_get(o, "schemas"), *urn;
    size_t i;
    json_array_foreach(schemas, i, urn)
    {
        if (json_is_string(urn) && strncasecmp(json_string_value(urn), "urn:scim:schemas:", 17) == 0) {
            scim_error(c->resp, 400, "invalidVers", "SCIM 1.x schemas are not supported; this is SCIM 2.0");
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* ---- audit ---- */

/* Top-level attributes that differ between before and after (either may be NULL). */
static json_t *diff(json_t *before, json_t *after)
{
    json_t *b = json_object(), *a = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(before, k, v)
    {
        json_t *w = json_object_get(after, k);
        if (w == NULL || !json_equal(v, w))
            json_object_set(b, k, v);
    }
    json_object_foreach(after, k, v)
    {
        json_t *w = json_object_get(before, k);
        if (w == NULL || !json_equal(v, w))
            json_object_set(a, k, v);
    }
    return json_pack("{s:o, s:o}", "before", b, "after", a);
}

int scim_audit(scim_ctx_t *c, const char *action, const char *target, json_t *before, json_t *after, json_t *extra)
{
    json_t *d = diff(before, after);
    if (extra != NULL)
        json_object_update(d, extra);
    json_decref(extra);
    char *details = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    store_audit_event_t ev = {.actor = c->req->actor,
                              .action = action,
                              .target = target,
                              .outcome = "success",
                              .source_addr = c->req->source,
                              .details = details};
    int rc = details != NULL ? store_audit_append(c->db, &ev) : -ENOMEM;
    free(details);
    return rc;
}

/* ---- users: store row <-> JSON ---- */

static void meta(json_t *o, const char *type, const char *base, const char *plural, int64_t id, const char *created,
                 const char *modified, int64_t version)
{
    char location[512], etag[48];
    snprintf(location, sizeof(location), "%s/%s/%lld", base, plural, (long long)id);
    scim_etag(etag, sizeof(etag), version);
    json_object_set_new(o, "meta",
                        json_pack("{s:s, s:s, s:s, s:s, s:s}", "resourceType", type, "created", created, "lastModified",
                                  modified, "location", location, "version", etag));
}

/* The attributes a client may change (no id/meta/groups), for PATCH and for audit diffs. */
json_t *scim_user_attributes(const store_scim_user_t *u)
{
    json_t *o = json_loads(u->doc != NULL ? u->doc : "{}", 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    json_object_set_new(o, "userName", json_string(u->username));
    if (u->external_id != NULL)
        json_object_set_new(o, "externalId", json_string(u->external_id));
    json_object_set_new(o, "active", json_boolean(!u->disabled));
    return o;
}

json_t *scim_user_json(const store_scim_user_t *u, const char *base)
{
    json_t *o = json_object(), *attrs = scim_user_attributes(u);
    json_t *schemas = json_pack("[s]", SCIM_URN_USER);
    if (json_object_get(attrs, SCIM_URN_ENTERPRISE) != NULL)
        json_array_append_new(schemas, json_string(SCIM_URN_ENTERPRISE));
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)u->id);
    json_object_set_new(o, "schemas", schemas);
    json_object_set_new(o, "id", json_string(id));
    json_object_update(o, attrs);
    json_decref(attrs);
    json_t *groups = json_loads(u->groups_json != NULL ? u->groups_json : "[]", 0, NULL), *g;
    size_t i;
    json_array_foreach(groups, i, g)
    {
        char ref[512];
        snprintf(ref, sizeof(ref), "%s/Groups/%s", base, json_string_value(json_object_get(g, "value")));
        json_object_set_new(g, "$ref", json_string(ref));
        json_object_set_new(g, "type", json_string("direct"));
    }
    if (json_array_size(groups) != 0)
        json_object_set(o, "groups", groups);
    json_decref(groups);
    meta(o, "User", base, "Users", u->id, u->created, u->modified, u->version);
    return o;
}

/* The primary email: the one marked primary, else the first work address, else the first. */
static const char *primary_email(json_t *n)
{
    json_t *emails = json_object_get(n, "emails"), *e, *work = NULL;
    size_t i;
    json_array_foreach(emails, i, e)
    {
        if (json_is_true(json_object_get(e, "primary")))
            return json_string_value(json_object_get(e, "value"));
        if (work == NULL && json_is_string(json_object_get(e, "type")) &&
            strcasecmp(json_string_value(json_object_get(e, "type")), "work") == 0)
            work = e;
    }
    e = work != NULL ? work : json_array_get(emails, 0);
    return e != NULL ? json_string_value(json_object_get(e, "value")) : NULL;
}

/* Fills a write from a normalised user; doc (malloc'd) and display (pool of size len) are the caller's. */
int scim_user_write(scim_ctx_t *c, json_t *n, int default_active, store_scim_user_write_t *w, char **doc, char *display,
                    size_t len)
{
    const char *username = json_string_value(json_object_get(n, "userName"));
    if (username == NULL || username[0] == '\0') {
        scim_error(c->resp, 400, "invalidValue", "userName is required");
        return -1;
    }
    if (strlen(username) > 256) {
        scim_error(c->resp, 400, "invalidValue", "userName is longer than 256 characters");
        return -1;
    }
    w->username = username;
    w->external_id = json_string_value(json_object_get(n, "externalId"));
    json_t *active = json_object_get(n, "active");
    w->disabled = active != NULL ? !json_is_true(active) : !default_active;
    w->email = primary_email(n);
    const char *dn = json_string_value(json_object_get(n, "displayName"));
    json_t *name = json_object_get(n, "name");
    if (dn == NULL)
        dn = json_string_value(json_object_get(name, "formatted"));
    if (dn == NULL && json_object_get(name, "givenName") != NULL) {
        const char *given = json_string_value(json_object_get(name, "givenName")),
                   *family = json_string_value(json_object_get(name, "familyName"));
        snprintf(display, len, "%s%s%s", given, family != NULL ? " " : "", family != NULL ? family : "");
        dn = display;
    }
    w->display_name = dn;
    json_t *d = json_deep_copy(n);
    json_object_del(d, "userName");
    json_object_del(d, "externalId");
    json_object_del(d, "active");
    json_object_del(d, "password");
    *doc = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    w->doc = *doc;
    return *doc != NULL ? 0 : -1;
}

/* The password of a write, through the configured gatekeeper; -1 with the response set. */
static int password_hash(scim_ctx_t *c, json_t *n, const store_scim_user_write_t *w, char *hash, size_t len)
{
    const char *pw = json_string_value(json_object_get(n, "password"));
    hash[0] = '\0';
    if (pw == NULL)
        return 0;
    if (!c->set->accept_passwords || c->set->password_hash == NULL) {
        scim_error(c->resp, 400, "invalidValue",
                   "passwords are not accepted through SCIM (scim.accept_passwords is off); the user sets one "
                   "through the invitation link");
        return -1;
    }
    char reason[256];
    if (c->set->password_hash(c->set->ctx, w->username, w->email, w->display_name, pw, hash, len, reason,
                              sizeof(reason)) != 0) {
        scim_error(c->resp, 400, "invalidValue", "password: %s", reason);
        return -1;
    }
    return 0;
}

static void redact_password(json_t *after, json_t *n)
{
    if (json_object_get(n, "password") != NULL)
        json_object_set_new(after, "password", json_string("[redacted]"));
}

static int64_t parse_id(const char *s)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9' || strlen(s) > 18)
        return -1;
    long long v = strtoll(s, &end, 10);
    return *end == '\0' && v > 0 ? v : -1;
}

int64_t scim_parse_id(const char *s)
{
    return parse_id(s);
}

/* Sends the user as it is now (after a write: outside the transaction). */
static void send_user(scim_ctx_t *c, int status, int64_t id)
{
    store_scim_user_t u;
    int rc = store_scim_user_get(c->db, id, 0, &u);
    if (rc != 0)
        return scim_db_error(c->resp, rc);
    json_t *o = scim_user_json(&u, c->set->base_url);
    scim_etag(c->resp->etag, sizeof(c->resp->etag), u.version);
    if (status == 201)
        c->resp->location = strdup(json_string_value(json_object_get(json_object_get(o, "meta"), "location")));
    scim_project(c, o);
    scim_send(c->resp, status, o);
    store_scim_user_dispose(&u);
}

static void target_of(char *buf, size_t len, const char *username)
{
    snprintf(buf, len, "user:%s", username);
}

void scim_user_create(scim_ctx_t *c, json_t *body)
{
    char err[300], display[600], hash[256], target[320];
    json_t *n = scim_normalize(&scim_schema_user, body, err, sizeof(err));
    char *doc = NULL;
    store_scim_user_write_t w = {0};
    int64_t id = 0;
    if (n == NULL)
        return scim_error(c->resp, 400, "invalidValue", "%s", err);
    if (scim_user_write(c, n, 1, &w, &doc, display, sizeof(display)) != 0 ||
        password_hash(c, n, &w, hash, sizeof(hash)) != 0)
        goto done;
    int rc = store_tx_begin(c->db);
    if (rc == 0)
        rc = store_scim_user_insert(c->db, &w, &id);
    if (rc == 0 && hash[0] != '\0')
        rc = store_password_set(c->db, id, hash);
    if (rc == 0) {
        json_t *after = json_deep_copy(n);
        json_object_del(after, "password");
        redact_password(after, n);
        target_of(target, sizeof(target), w.username);
        rc = scim_audit(c, "scim.user.create", target, NULL, after, NULL);
        json_decref(after);
    }
    rc = store_tx_end(c->db, rc);
    if (rc == -EEXIST) {
        scim_error(c->resp, 409, "uniqueness", "userName %s is already taken", w.username);
    } else if (rc == -EINVAL) {
        scim_error(c->resp, 400, "invalidValue", "a value is out of range");
    } else if (rc != 0) {
        scim_db_error(c->resp, rc);
    } else {
        if (c->set->invite != NULL && hash[0] == '\0' && !w.disabled)
            c->set->invite(c->set->ctx, c->db, id, w.username, w.email);
        send_user(c, 201, id);
    }
done:
    explicit_bzero(hash, sizeof(hash));
    free(doc);
    json_decref(n);
}

void scim_user_get(scim_ctx_t *c, int64_t id)
{
    store_scim_user_t u;
    int rc = store_scim_user_get(c->db, id, 0, &u);
    if (rc == -ENOENT)
        return scim_error(c->resp, 404, NULL, "no user with id %lld", (long long)id);
    if (rc != 0)
        return scim_db_error(c->resp, rc);
    scim_send_resource(c, u.version, scim_user_json(&u, c->set->base_url));
    store_scim_user_dispose(&u);
}

/* PUT and PATCH: lock, check If-Match, compute the new attributes, write, audit, in one transaction. */
void scim_user_modify(scim_ctx_t *c, int64_t id, json_t *body, int is_patch)
{
    store_scim_user_t u = {0};
    json_t *before = NULL, *next = NULL, *n = NULL;
    char *doc = NULL, err[300], display[600], hash[256] = "", target[320];
    store_scim_user_write_t w = {0};
    scim_error_t e = {0};
    int responded = 0;

    int rc = store_tx_begin(c->db);
    if (rc == 0)
        rc = store_scim_user_get(c->db, id, 1, &u);
    if (rc == -ENOENT) {
        scim_error(c->resp, 404, NULL, "no user with id %lld", (long long)id);
        responded = 1;
        goto end;
    }
    if (rc != 0)
        goto end;
    if (scim_precondition(c, u.version) != 0) {
        responded = 1;
        rc = -EAGAIN;
        goto end;
    }
    before = scim_user_attributes(&u);
    if (is_patch) {
        next = json_deep_copy(before);
        if (scim_patch_user(next, json_object_get(body, "Operations"), &e) != 0) {
            scim_error_from(c->resp, &e);
            responded = 1;
            rc = -EINVAL;
            goto end;
        }
    } else {
        next = json_incref(body);
        /* PUT replaces; a missing "active" keeps the current state rather than silently re-enabling */
        if (json_object_get(next, "active") == NULL)
            json_object_set_new(next, "active", json_boolean(!u.disabled));
    }
    if ((n = scim_normalize(&scim_schema_user, next, err, sizeof(err))) == NULL) {
        scim_error(c->resp, 400, "invalidValue", "%s", err);
        responded = 1;
        rc = -EINVAL;
        goto end;
    }
    if (scim_user_write(c, n, !u.disabled, &w, &doc, display, sizeof(display)) != 0 ||
        password_hash(c, n, &w, hash, sizeof(hash)) != 0) {
        responded = 1;
        rc = -EINVAL;
        goto end;
    }
    rc = store_scim_user_update(c->db, id, &w);
    if (rc == 0 && hash[0] != '\0') {
        static const uint8_t none[STORE_HASH_LEN] = {0}; /* keep no session: every one of them ends */
        rc = store_password_change(c->db, id, hash, none);
    }
    if (rc == 0) {
        json_t *after = json_deep_copy(n);
        json_object_del(after, "password");
        redact_password(after, n);
        target_of(target, sizeof(target), w.username);
        json_t *extra = u.disabled != w.disabled ? json_pack("{s:s}", "sessions", w.disabled ? "ended" : "none") : NULL;
        rc = scim_audit(c, is_patch ? "scim.user.patch" : "scim.user.replace", target, before, after, extra);
        json_decref(after);
    }
end:
    rc = store_tx_end(c->db, rc);
    if (!responded) {
        if (rc == -EEXIST)
            scim_error(c->resp, 409, "uniqueness", "userName %s is already taken", w.username);
        else if (rc == -EINVAL)
            scim_error(c->resp, 400, "invalidValue", "a value is out of range");
        else if (rc != 0)
            scim_db_error(c->resp, rc);
        else
            send_user(c, 200, id);
    }
    explicit_bzero(hash, sizeof(hash));
    free(doc);
    json_decref(n);
    json_decref(next);
    json_decref(before);
    store_scim_user_dispose(&u);
}

void scim_user_delete(scim_ctx_t *c, int64_t id)
{
    store_scim_user_t u = {0};
    char target[320];
    int responded = 0;
    int rc = store_tx_begin(c->db);
    if (rc == 0)
        rc = store_scim_user_get(c->db, id, 1, &u);
    if (rc == -ENOENT) {
        scim_error(c->resp, 404, NULL, "no user with id %lld", (long long)id);
        responded = 1;
    } else if (rc == 0 && scim_precondition(c, u.version) != 0) {
        responded = 1;
        rc = -EAGAIN;
    }
    if (rc == 0)
        rc = store_scim_user_delete(c->db, id);
    if (rc == 0) {
        json_t *before = scim_user_attributes(&u);
        target_of(target, sizeof(target), u.username);
        rc = scim_audit(c, "scim.user.delete", target, before, NULL, json_pack("{s:s}", "sessions", "ended"));
        json_decref(before);
    }
    rc = store_tx_end(c->db, rc);
    if (!responded) {
        if (rc != 0)
            scim_db_error(c->resp, rc);
        else
            c->resp->status = 204;
    }
    store_scim_user_dispose(&u);
}
