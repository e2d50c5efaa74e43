/*
 * The h2o side of SCIM: /scim/v2/... The loop copies what the request says (method, path, query, body, the
 * bearer token's hash, If-Match / If-None-Match) into a job and returns; a worker checks the token, runs
 * scim_process and leaves the response in the job; back on the loop it is sent. Cookies are never read here:
 * a browser's session is no authority for provisioning. Tokens never reach a log (only their hash leaves the
 * loop).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "gateway/gateway.h"
#include "scim/internal.h"

#define SCIM_ROOT         "/scim" /* every version lands here; only v2 is served (others: invalidVers) */
#define SCIM_PREFIX       "/scim/v2"
#define AUTH_SCHEME       "bearer "
#define TOKEN_MAX_LEN     256
#define SCIM_CONTENT_TYPE "application/scim+json"

typedef struct st_scim_handler_t {
    h2o_handler_t super;
    gw_server_t *server;
    scim_settings_t settings;
    char base_url[512];
} scim_handler_t;

typedef struct st_scim_job_t {
    gw_job_t super;
    scim_handler_t *handler;
    uint8_t token_hash[STORE_HASH_LEN];
    int has_token, version_mismatch;
    char *method, *path, *query, *body, *if_match, *if_none_match;
    size_t body_len;
    char source[64];
    scim_response_t resp;
} scim_job_t;

static char *dup_iovec(h2o_iovec_t v)
{
    if (v.base == NULL)
        return NULL;
    char *s = malloc(v.len + 1);
    if (s != NULL) {
        memcpy(s, v.base, v.len);
        s[v.len] = '\0';
    }
    return s;
}

static void job_free(scim_job_t *j)
{
    free(j->method);
    free(j->path);
    free(j->query);
    if (j->body != NULL)
        sodium_memzero(j->body, j->body_len); /* may carry a password */
    free(j->body);
    free(j->if_match);
    free(j->if_none_match);
    scim_response_dispose(&j->resp);
    free(j);
}

static void unauthorized(scim_response_t *resp)
{
    scim_error(resp, 401, NULL, "a valid bearer token is required (portier scim-token create NAME)");
}

static void scim_run(gw_job_t *job, gw_worker_t *w)
{
    scim_job_t *j = (scim_job_t *)job;
    store_t *db = gw_worker_db(w);
    char name[SCIM_TOKEN_NAME_MAX + 8], actor[SCIM_TOKEN_NAME_MAX + 16];
    if (db == NULL)
        return scim_error(&j->resp, 503, NULL, "the database is not available; try again");
    if (!j->has_token)
        return unauthorized(&j->resp);
    int rc = store_scim_token_check(db, j->token_hash, name, sizeof(name));
    if (rc == -ENOENT)
        return unauthorized(&j->resp);
    if (rc != 0)
        return scim_error(&j->resp, 503, NULL, "the database is not available; try again");
    snprintf(actor, sizeof(actor), "scim:%s", name);
    if (j->version_mismatch)
        return scim_error(&j->resp, 400, "invalidVers", "only SCIM 2.0 is served, under " SCIM_PREFIX);
    scim_request_t req = {.method = j->method,
                          .path = j->path,
                          .query = j->query,
                          .body = j->body,
                          .body_len = j->body_len,
                          .if_match = j->if_match,
                          .if_none_match = j->if_none_match,
                          .actor = actor,
                          .source = j->source};
    scim_process(db, &j->handler->settings, &req, &j->resp);
    char status[8];
    snprintf(status, sizeof(status), "%d", j->resp.status);
    gw_log("info", "scim", "request", "actor", actor, "method", j->method, "path", j->path, "status", status, NULL);
}

static void set_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_set_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, value, strlen(value), 1);
}

static void send_response(h2o_req_t *req, scim_response_t *r)
{
    static const char *const reasons[][2] = {{"200", "OK"},
                                             {"201", "Created"},
                                             {"204", "No Content"},
                                             {"304", "Not Modified"},
                                             {"400", "Bad Request"},
                                             {"401", "Unauthorized"},
                                             {"403", "Forbidden"},
                                             {"404", "Not Found"},
                                             {"405", "Not Allowed"},
                                             {"409", "Conflict"},
                                             {"412", "Precondition Failed"},
                                             {"413", "Too Large"},
                                             {"500", "Internal Error"},
                                             {"501", "Not Implemented"},
                                             {"503", "Unavailable"}};
    char code[8];
    snprintf(code, sizeof(code), "%d", r->status);
    req->res.status = r->status;
    req->res.reason = "OK";
    for (size_t i = 0; i != sizeof(reasons) / sizeof(reasons[0]); ++i)
        if (strcmp(reasons[i][0], code) == 0)
            req->res.reason = reasons[i][1];
    gw_add_security_headers(req);
    if (r->etag[0] != '\0')
        set_header(req, "etag", h2o_strdup(&req->pool, r->etag, SIZE_MAX).base);
    if (r->location != NULL)
        set_header(req, "location", h2o_strdup(&req->pool, r->location, SIZE_MAX).base);
    if (r->status == 401)
        set_header(req, "www-authenticate", "Bearer realm=\"portier SCIM\"");
    if (r->status == 503)
        set_header(req, "retry-after", "5");
    if (r->body == NULL || r->status == 204 || r->status == 304) {
        req->res.content_length = 0;
        h2o_send_inline(req, "", 0);
        return;
    }
    size_t len = strlen(r->body);
    set_header(req, "content-type", SCIM_CONTENT_TYPE "; charset=utf-8");
    req->res.content_length = len;
    h2o_send_inline(req, h2o_strdup(&req->pool, r->body, len).base, len);
}

static void scim_done(gw_job_t *job)
{
    scim_job_t *j = (scim_job_t *)job;
    if (j->resp.status >= 100 && j->resp.status < 600)
        atomic_fetch_add(&gw_metrics.scim_status[j->resp.status / 100 - 1], 1);
    if (job->req != NULL)
        send_response(job->req, &j->resp);
    job_free(j);
}

static char *header_dup(h2o_req_t *req, const char *name)
{
    return dup_iovec(gw_get_header(req, name));
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    scim_handler_t *h = (scim_handler_t *)self;
    h2o_iovec_t path = req->path_normalized;
    size_t plen = sizeof(SCIM_PREFIX) - 1;
    scim_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -1;
    j->handler = h;
    j->version_mismatch = !(path.len >= plen && memcmp(path.base, SCIM_PREFIX, plen) == 0 &&
                            (path.len == plen || path.base[plen] == '/'));
    j->method = dup_iovec(req->method);
    j->path = j->version_mismatch ? strdup("/") : dup_iovec(h2o_iovec_init(path.base + plen, path.len - plen));
    if (req->query_at != SIZE_MAX)
        j->query = dup_iovec(h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1));
    if (req->entity.base != NULL && req->entity.len != 0) {
        j->body_len = req->entity.len;
        j->body = dup_iovec(req->entity);
    }
    j->if_match = header_dup(req, "if-match");
    j->if_none_match = header_dup(req, "if-none-match");
    h2o_iovec_t auth = gw_get_header(req, "authorization");
    size_t scheme = sizeof(AUTH_SCHEME) - 1;
    if (auth.base != NULL && auth.len > scheme && auth.len - scheme <= TOKEN_MAX_LEN &&
        h2o_lcstris(auth.base, scheme, H2O_STRLIT(AUTH_SCHEME))) {
        const char *tok = auth.base + scheme;
        size_t tlen = auth.len - scheme;
        while (tlen > 0 && *tok == ' ')
            ++tok, --tlen;
        if (tlen != 0) {
            gw_sha256(tok, tlen, j->token_hash);
            j->has_token = 1;
        }
    }
    gw_peer_addr(req, j->source, sizeof(j->source));
    if (j->method == NULL || j->path == NULL) {
        job_free(j);
        return -1;
    }
    gw_job_submit(gw_loop_of(req), req, &j->super, scim_run, scim_done);
    return 0;
}

/* ---- invitations for users SCIM creates (worker thread) ---- */

static void invite(void *ctx, store_t *db, int64_t user_id, const char *username, const char *email)
{
    gw_server_t *server = ctx;
    const gw_config_t *conf = server->conf;
    if (!gw_mail_configured(conf) || email == NULL) /* the operator issues the link: portier user invite NAME */
        return;
    char token[64], *body = NULL;
    uint8_t hash[STORE_HASH_LEN];
    gw_random_token(32, token, sizeof(token), hash);
    if (store_token_create(db, hash, user_id, "setup", conf->invite_ttl) == 0 &&
        asprintf(&body,
                 "An account was created for you (user name: %s).\r\n\r\nTo choose your password, open this link "
                 "within %u hours:\r\n\r\n%s/setup?token=%s\r\n",
                 username, conf->invite_ttl / 3600, conf->public_url, token) >= 0) {
        int sent = gw_mail_send(conf, email, "Your new portier account", body) == 0;
        char target[320];
        snprintf(target, sizeof(target), "user:%s", username);
        store_audit_event_t ev = {.actor = "system",
                                  .action = "user.setup_link_issued",
                                  .target = target,
                                  .outcome = sent ? "success" : "failure",
                                  .details =
                                      sent ? "{\"via\":\"email\",\"by\":\"scim\"}" : "{\"reason\":\"mail_failed\"}"};
        if (store_audit_append(db, &ev) != 0)
            gw_log("error", "audit", "append_failed", "action", ev.action, NULL);
        sodium_memzero(body, strlen(body));
        free(body);
    }
    sodium_memzero(token, sizeof(token));
}

void scim_register(gw_server_t *server, h2o_hostconf_t *hostconf, scim_password_cb password_hash)
{
    /* jansson's hash seed is chosen on first use; choose it here, before any thread exists */
    json_object_seed(0);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, SCIM_ROOT, 0);
    scim_handler_t *h = (scim_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->server = server;
    snprintf(h->base_url, sizeof(h->base_url), "%s" SCIM_PREFIX, server->conf->public_url);
    h->settings = (scim_settings_t){.base_url = h->base_url,
                                    .accept_passwords = server->conf->scim_accept_passwords,
                                    /* larger bodies never reach us: h2o refuses them first */
                                    .bulk_max_bytes = server->conf->max_request_body < SCIM_BULK_MAX_BYTES
                                                          ? (size_t)server->conf->max_request_body
                                                          : SCIM_BULK_MAX_BYTES,
                                    .password_hash = password_hash,
                                    .invite = invite,
                                    .ctx = server};
}
