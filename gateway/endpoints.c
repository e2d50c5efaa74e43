/*
 * portier's own small endpoints: liveness (/healthz), readiness (/readyz: the database answers), Prometheus
 * metrics (/metrics, loopback clients only), the JWKS backends use to verify identity headers, and the
 * stylesheet of the login pages.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "gateway/internal.h"
#include "saml/saml.h"

typedef struct st_endpoint_t {
    h2o_handler_t super;
    gw_server_t *server;
} endpoint_t;

typedef struct st_ping_job_t {
    gw_job_t super;
    int ok;
} ping_job_t;

static void send_text(h2o_req_t *req, int status, const char *reason, const char *type, const char *body, size_t len,
                      const char *cache)
{
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, cache, strlen(cache));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL,
                          H2O_STRLIT("nosniff"));
    h2o_send_inline(req, body, len);
}

static int on_healthz(h2o_handler_t *self, h2o_req_t *req)
{
    send_text(req, 200, "OK", "text/plain; charset=utf-8", H2O_STRLIT("ok\n"), "no-store");
    return 0;
}

static void ping_run(gw_job_t *job, gw_worker_t *w)
{
    ping_job_t *p = (ping_job_t *)job;
    store_t *db = gw_worker_db(w);
    p->ok = db != NULL && store_ping(db) == 0;
}

static void ping_done(gw_job_t *job)
{
    ping_job_t *p = (ping_job_t *)job;
    if (job->req != NULL) {
        gw_server_t *server = gw_loop_of(job->req)->server;
        atomic_store(&server->db_ready, p->ok);
        if (p->ok)
            send_text(job->req, 200, "OK", "text/plain; charset=utf-8", H2O_STRLIT("ready\n"), "no-store");
        else
            send_text(job->req, 503, "Service Unavailable", "text/plain; charset=utf-8",
                      H2O_STRLIT("database unreachable\n"), "no-store");
    }
    free(p);
}

static int on_readyz(h2o_handler_t *self, h2o_req_t *req)
{
    ping_job_t *p = calloc(1, sizeof(*p));
    gw_job_submit(gw_loop_of(req), req, &p->super, ping_run, ping_done);
    return 0;
}

static int is_loopback(h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (len == 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

static int on_metrics(h2o_handler_t *self, h2o_req_t *req)
{
    endpoint_t *e = (endpoint_t *)self;
    if (!is_loopback(req)) {
        send_text(req, 403, "Forbidden", "text/plain; charset=utf-8", H2O_STRLIT("forbidden\n"), "no-store");
        return 0;
    }
    size_t len;
    char *text = gw_metrics_render(e->server->conf, &len);
    if (text == NULL)
        return -1;
    size_t saml_len = 0;
    char *saml = e->server->saml != NULL ? saml_metrics_render(e->server->saml, &saml_len) : NULL;
    char *copy = h2o_mem_alloc_pool(&req->pool, len + saml_len);
    memcpy(copy, text, len);
    if (saml != NULL)
        memcpy(copy + len, saml, saml_len);
    free(text);
    free(saml);
    send_text(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", copy, len + saml_len, "no-store");
    return 0;
}

static int on_jwks(h2o_handler_t *self, h2o_req_t *req)
{
    endpoint_t *e = (endpoint_t *)self;
    const char *jwks = gw_jwt_jwks(e->server->keys);
    send_text(req, 200, "OK", "application/json", jwks, strlen(jwks), "public, max-age=300");
    return 0;
}

static int on_css(h2o_handler_t *self, h2o_req_t *req)
{
    endpoint_t *e = (endpoint_t *)self;
    size_t len;
    const char *css = gw_templates_css(e->server->templates, &len);
    if (css == NULL)
        return -1;
    send_text(req, 200, "OK", "text/css; charset=utf-8", css, len, "public, max-age=3600");
    return 0;
}

static void add(gw_server_t *server, h2o_hostconf_t *hostconf, const char *path,
                int (*cb)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, path, 0);
    endpoint_t *e = (endpoint_t *)h2o_create_handler(pathconf, sizeof(*e));
    e->super.on_req = cb;
    e->server = server;
}

void gw_endpoints_register(gw_server_t *server, h2o_hostconf_t *hostconf)
{
    add(server, hostconf, "/healthz", on_healthz);
    add(server, hostconf, "/readyz", on_readyz);
    add(server, hostconf, "/metrics", on_metrics);
    add(server, hostconf, "/.well-known/jwks.json", on_jwks);
    add(server, hostconf, "/_portier/style.css", on_css);
}
