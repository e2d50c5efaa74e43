/*
 * scim internals shared between the module's files: the schema tables, resource <-> JSON, the PATCH engine,
 * errors and responses.
 */
#ifndef PORTIER_SCIM_INTERNAL_H
#define PORTIER_SCIM_INTERNAL_H

#include "scim/scim.h"

/* ---- schema.c ---- */
enum {
    SCIM_T_STRING = 1,
    SCIM_T_BOOLEAN,
    SCIM_T_COMPLEX,
    SCIM_T_REFERENCE,
    SCIM_T_DATETIME,
    SCIM_T_BINARY,
    SCIM_T_INTEGER
};
#define SCIM_F_MULTI      0x01
#define SCIM_F_REQUIRED   0x02
#define SCIM_F_CASE_EXACT 0x04
#define SCIM_F_READ_ONLY  0x08
#define SCIM_F_WRITE_ONLY 0x10 /* password: returned never */
#define SCIM_F_UNIQUE     0x20 /* uniqueness "server" */
#define SCIM_F_IMMUTABLE  0x40

typedef struct st_scim_attr_t {
    const char *name; /* canonical spelling */
    int type;
    unsigned flags;
    const struct st_scim_attr_t *subs; /* NULL-name terminated, or NULL */
    const char *description;
} scim_attr_t;

typedef struct st_scim_schema_t {
    const char *urn, *name, *description;
    const scim_attr_t *attrs;
} scim_schema_t;

extern const scim_schema_t scim_schema_user, scim_schema_enterprise, scim_schema_group;

/* Finds an attribute by name, case-insensitively (NULL if none). */
const scim_attr_t *scim_attr_find(const scim_attr_t *attrs, const char *name, size_t len);
/* Normalises a resource from a client (POST/PUT body, PATCH result): attribute names to their canonical
 * spelling, values checked against their types ("True"/"False" strings become booleans, a single object for a
 * multi-valued attribute becomes a one-element array), read-only attributes and unknown ones dropped, the
 * enterprise extension under its URN key. schema: &scim_schema_user or &scim_schema_group. Returns a new
 * object, or NULL with a message for invalidValue. */
json_t *scim_normalize(const scim_schema_t *schema, json_t *in, char *err, size_t errlen);
/* The discovery documents (new references). */
json_t *scim_schemas_json(const char *base_url);
json_t *scim_schema_json(const scim_schema_t *s, const char *base_url);
json_t *scim_resource_types_json(const char *base_url);
json_t *scim_resource_type_json(int users, const char *base_url);
json_t *scim_service_provider_config_json(const char *base_url);

/* ---- patch.c ---- */
/* Applies the Operations of a PatchOp body to a user resource (canonical JSON, modified in place). 0 or -1
 * with status/scimType/detail set. */
typedef struct st_scim_error_t {
    int status;
    const char *scim_type; /* static or NULL */
    char detail[300];
} scim_error_t;
int scim_patch_user(json_t *resource, json_t *operations, scim_error_t *e);
/* Evaluates a value filter on one element of a multi-valued attribute (JSON object). */
int scim_filter_match(const store_filter_t *f, json_t *element);
/* Lower-case op name ("Replace" from Entra ID) or NULL when not add/replace/remove. */
const char *scim_patch_op(json_t *op);

/* ---- process.c and friends: request context and shared helpers ---- */
typedef struct st_scim_ctx_t {
    store_t *db;
    const scim_settings_t *set;
    const scim_request_t *req;
    scim_response_t *resp;
    const char *attributes, *excluded; /* projection (query or search body), decoded; NULL when absent */
} scim_ctx_t;
__attribute__((format(printf, 4, 5))) void scim_error(scim_response_t *resp, int status, const char *scim_type,
                                                      const char *fmt, ...);
void scim_error_from(scim_response_t *resp, const scim_error_t *e);
/* Sets status and body (steals o; NULL: no body). */
void scim_send(scim_response_t *resp, int status, json_t *o);
void scim_db_error(scim_response_t *resp, int rc);
void scim_etag(char *out, size_t len, int64_t version);
int scim_etag_listed(const char *header, const char *etag);
int scim_precondition(const scim_ctx_t *c, int64_t version);
/* GET of one resource: ETag, 304 on a matching If-None-Match, else 200 with the projected resource (steals o). */
void scim_send_resource(scim_ctx_t *c, int64_t version, json_t *o);
json_t *scim_parse_body(scim_ctx_t *c);
/* Appends the audit event of a change (steals extra, which is merged into the details). */
int scim_audit(scim_ctx_t *c, const char *action, const char *target, json_t *before, json_t *after, json_t *extra);
int64_t scim_parse_id(const char *s);
/* Applies attributes / excludedAttributes of the request to a resource (in place). */
void scim_project(const scim_ctx_t *c, json_t *resource);
json_t *scim_user_attributes(const store_scim_user_t *u);
json_t *scim_user_json(const store_scim_user_t *u, const char *base);
json_t *scim_group_json(const store_scim_group_t *g, const char *base);
void scim_user_create(scim_ctx_t *c, json_t *body);
void scim_user_get(scim_ctx_t *c, int64_t id);
void scim_user_modify(scim_ctx_t *c, int64_t id, json_t *body, int is_patch);
void scim_user_delete(scim_ctx_t *c, int64_t id);
/* group.c */
void scim_group_create(scim_ctx_t *c, json_t *body);
void scim_group_get(scim_ctx_t *c, int64_t id);
void scim_group_replace(scim_ctx_t *c, int64_t id, json_t *body);
void scim_group_patch(scim_ctx_t *c, int64_t id, json_t *body);
void scim_group_delete(scim_ctx_t *c, int64_t id);
/* list.c: GET list (params from the query) or POST .search (params from the body); type -1: both. */
void scim_list(scim_ctx_t *c, int type, json_t *search);
/* route.c: dispatches one request (Bulk refused when in_bulk); Bulk runs each operation through it. */
void scim_dispatch(scim_ctx_t *c, int in_bulk);
void scim_bulk(scim_ctx_t *c);
/* list.c: a decoded query parameter (malloc'd) or NULL. */
char *scim_query_param(const char *query, const char *name);

#endif
