/*
 * scim: the SCIM 2.0 provisioning server (RFC 7643 schemas, RFC 7644 protocol) under /scim/v2: Users, Groups,
 * discovery (ServiceProviderConfig, Schemas, ResourceTypes), POST .search and Bulk. Clients authenticate with
 * a bearer token made by `portier scim-token create`; cookies are never looked at.
 *
 * The event loop only copies the request into a job; a worker authenticates the token, runs the operation in
 * one transaction together with its audit event, and builds the response, which the loop then sends.
 * The parsers (filter, PATCH path) and the request processing (scim_process) need no server and are what the
 * unit tests and fuzz targets drive.
 */
#ifndef PORTIER_SCIM_H
#define PORTIER_SCIM_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store/store.h"

#define SCIM_URN_USER         "urn:ietf:params:scim:schemas:core:2.0:User"
#define SCIM_URN_GROUP        "urn:ietf:params:scim:schemas:core:2.0:Group"
#define SCIM_URN_ENTERPRISE   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#define SCIM_URN_ERROR        "urn:ietf:params:scim:api:messages:2.0:Error"
#define SCIM_URN_LIST         "urn:ietf:params:scim:api:messages:2.0:ListResponse"
#define SCIM_URN_PATCH        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#define SCIM_URN_SEARCH       "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
#define SCIM_URN_BULK_REQ     "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
#define SCIM_URN_BULK_RESP    "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
#define SCIM_FILTER_MAX_LEN   1024 /* bytes of one filter */
#define SCIM_FILTER_MAX_DEPTH 8    /* nesting of parentheses, not and value paths */
#define SCIM_MAX_RESULTS      200  /* page size cap (count) */
#define SCIM_BULK_MAX_OPS     1000
#define SCIM_BULK_MAX_BYTES   (1024 * 1024)
#define SCIM_MAX_BODY         (1024 * 1024) /* any other request body */
#define SCIM_TOKEN_BYTES      32            /* 256-bit bearer tokens */
#define SCIM_TOKEN_NAME_MAX   64

/* ---- filter.c: filters and PATCH paths (attacker input; bounded, no recursion beyond the depth limit) ---- */
/* Parses a filter into a tree (free with scim_filter_free). 0, or -EINVAL with a message for invalidFilter. */
int scim_filter_parse(const char *text, size_t len, store_filter_t **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void scim_filter_free(store_filter_t *f);
/* A PATCH path: attr (lower-case; an extension attribute keeps its URN prefix), an optional value filter on a
 * multi-valued attribute, and an optional sub-attribute ("name.givenName", `emails[type eq "work"].value`). */
typedef struct st_scim_path_t {
    char *attr;
    store_filter_t *filter; /* NULL when none */
    char *sub;              /* NULL when none */
} scim_path_t;
int scim_path_parse(const char *text, size_t len, scim_path_t *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void scim_path_dispose(scim_path_t *path);
/* Lower-cases an attribute path and removes the core schema URN; -1 when it is not a path of ours. */
int scim_attr_normalize(const char *in, size_t len, char *out, size_t outlen);

/* ---- process.c: one SCIM request, transport-independent (runs on a worker thread) ---- */
/* Password gatekeeper (policy + argon2id hash) for scim.accept_passwords: 0 and the encoded hash in out, or -1
 * and a reason. ctx is the server. Worker threads only. */
typedef int (*scim_password_cb)(void *ctx, const char *username, const char *email, const char *display_name,
                                const char *password, char *out, size_t outlen, char *reason, size_t reason_len);

typedef struct st_scim_settings_t {
    const char *base_url;           /* public URL + "/scim/v2", for meta.location */
    int accept_passwords;           /* scim.accept_passwords */
    size_t bulk_max_bytes;          /* maxPayloadSize: SCIM_BULK_MAX_BYTES or server.max_request_body if less */
    scim_password_cb password_hash; /* may be NULL: passwords refused */
    /* Invitation for a user SCIM created (worker thread; may be NULL). */
    void (*invite)(void *ctx, store_t *db, int64_t user_id, const char *username, const char *email);
    void *ctx;
} scim_settings_t;

typedef struct st_scim_request_t {
    const char *method; /* "GET", ... */
    const char *path;   /* below /scim/v2, e.g. "/Users/12" (no query) */
    const char *query;  /* raw query string without '?', or NULL */
    const char *body;   /* may be NULL */
    size_t body_len;
    const char *if_match; /* header values or NULL */
    const char *if_none_match;
    const char *actor;  /* "scim:<token name>" */
    const char *source; /* client address */
} scim_request_t;

typedef struct st_scim_response_t {
    int status;
    char *body;     /* malloc'd JSON or NULL (204/304) */
    char etag[48];  /* "" when none */
    char *location; /* malloc'd or NULL */
} scim_response_t;

/* Processes one request against db (authentication already done). Always fills resp. */
void scim_process(store_t *db, const scim_settings_t *settings, const scim_request_t *req, scim_response_t *resp);
void scim_response_dispose(scim_response_t *resp);

/* ---- handler.c: the h2o side ---- */
struct st_gw_server_t;
struct st_h2o_hostconf_t;
/* Registers /scim/v2 on hostconf (before the routes). password_hash may be NULL. */
void scim_register(struct st_gw_server_t *server, struct st_h2o_hostconf_t *hostconf, scim_password_cb password_hash);

#endif
