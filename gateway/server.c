/*
 * The server: TLS context, h2o configuration (portier's own paths first, then the routes, longest prefix
 * first), one event loop per thread with its own SO_REUSEPORT listener, the worker pool, the revocation
 * listener, and a graceful stop on SIGTERM/SIGINT. All h2o contexts are created on the main thread before any
 * loop starts (h2o's proxy set-up is not thread-safe).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <limits.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "gateway/internal.h"
#include "idp/idp.h"
#include "mfa/mfa.h"
#include "scim/scim.h"
#include "policy/policy.h"
#include "saml/saml.h"

#define GRACEFUL_STOP_MS 3000
#define TLS12_CIPHERS                                                                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                         \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define ACCESS_LOG_FORMAT                                                                                              \
    "{\"time\":\"%{%Y-%m-%dT%H:%M:%S%z}t\",\"type\":\"access\",\"remote\":\"%h\",\"method\":\"%m\",\"path\":\"%U\","   \
    "\"protocol\":\"%H\",\"status\":%s,\"bytes\":%b,\"duration\":\"%{duration}x\"}"

static SSL_CTX *create_ssl_ctx(const gw_config_t *conf)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, conf->tls_certificate) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, conf->tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        char err[256];
        ERR_error_string_n(ERR_get_error(), err, sizeof(err));
        gw_log("error", "gateway", "tls.setup_failed", "detail", err, NULL);
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* h2o 2.2.5 has no defence against HTTP/2 Rapid Reset (CVE-2023-44487) beyond its stream limits; operators
     * who cannot filter it in front of portier can turn HTTP/2 off (server.http2: false) */
    if (conf->http2)
        h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
}

static int open_listener(const char *address, uint16_t port)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST};
    struct addrinfo *res;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    if (getaddrinfo(address, portstr, &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        errno = saved;
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    h2o_accept_ctx_t *actx = listener->data;
    h2o_socket_t *sock;
    for (int i = 0; i < 64 && (sock = h2o_evloop_socket_accept(listener)) != NULL; ++i)
        h2o_accept(actx, sock);
}

static h2o_socket_t *attach_listener(gw_loop_t *l, int fd, h2o_accept_ctx_t *actx)
{
    h2o_socket_t *sock = h2o_evloop_socket_create(l->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    sock->data = actx;
    h2o_socket_read_start(sock, on_accept);
    return sock;
}

/* Plain-HTTP listener: every request is sent to the HTTPS public URL with the same path. */
typedef struct st_redirect_handler_t {
    h2o_handler_t super;
    const char *public_url;
} redirect_handler_t;

static int on_redirect(h2o_handler_t *self, h2o_req_t *req)
{
    redirect_handler_t *h = (redirect_handler_t *)self;
    h2o_iovec_t loc = h2o_concat(&req->pool, h2o_iovec_init(h->public_url, strlen(h->public_url)), req->path);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, loc.base, loc.len);
    req->res.status = 308;
    req->res.reason = "Permanent Redirect";
    req->res.content_length = 0;
    h2o_send_inline(req, "", 0);
    return 0;
}

static int cmp_route_len(const void *a, const void *b)
{
    size_t la = strlen(((const gw_route_t *)a)->prefix), lb = strlen(((const gw_route_t *)b)->prefix);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

static void setup_globalconf(gw_server_t *server, h2o_access_log_filehandle_t *alog)
{
    gw_config_t *conf = server->conf;
    h2o_globalconf_t *g = &server->globalconf;
    h2o_config_init(g);
    g->server_name = h2o_iovec_init(H2O_STRLIT("portier"));
    g->max_request_entity_size = conf->max_request_body;
    g->proxy.emit_x_forwarded_headers = 1;
    g->proxy.emit_via_header = 0;
    h2o_hostconf_t *host = h2o_config_register_host(g, h2o_iovec_init(H2O_STRLIT("default")), 65535);

    gw_endpoints_register(server, host);
    idp_register(server, host);
    scim_register(server, host, idp_provisioned_password);
    if (server->saml != NULL)
        saml_register(server->saml, server, host);
    /* Longest prefix first: h2o picks the first registered path that matches. Routes keep their config index
     * (metrics and JWT slots), so sort a copy of the indices. */
    size_t *order = malloc(conf->num_routes * sizeof(*order));
    gw_route_t *sorted = malloc(conf->num_routes * sizeof(*sorted));
    memcpy(sorted, conf->routes, conf->num_routes * sizeof(*sorted));
    qsort(sorted, conf->num_routes, sizeof(*sorted), cmp_route_len);
    for (size_t i = 0; i != conf->num_routes; ++i)
        for (size_t j = 0; j != conf->num_routes; ++j)
            if (conf->routes[j].prefix == sorted[i].prefix)
                order[i] = j;
    for (size_t i = 0; i != conf->num_routes; ++i) {
        h2o_pathconf_t *pathconf = h2o_config_register_path(host, conf->routes[order[i]].prefix, 0);
        gw_proxy_register(server, pathconf, order[i]);
    }
    free(sorted);
    free(order);
    if (alog != NULL) {
        for (size_t i = 0; i != host->paths.size; ++i)
            h2o_access_log_register(host->paths.entries + i, alog);
        h2o_access_log_register(&host->fallback_path, alog);
    }

    if (conf->http_redirect_port != 0) {
        h2o_globalconf_t *r = &server->redirect_globalconf;
        h2o_config_init(r);
        r->server_name = g->server_name;
        h2o_hostconf_t *rhost = h2o_config_register_host(r, h2o_iovec_init(H2O_STRLIT("default")), 65535);
        h2o_pathconf_t *pathconf = h2o_config_register_path(rhost, "/", 0);
        redirect_handler_t *rh = (redirect_handler_t *)h2o_create_handler(pathconf, sizeof(*rh));
        rh->super.on_req = on_redirect;
        rh->public_url = conf->public_url;
    }
}

static void *loop_main(void *arg)
{
    gw_loop_t *l = arg;
    gw_server_t *server = l->server;
    while (!atomic_load(&server->shutting_down))
        h2o_evloop_run(l->ctx.loop, 100);

    /* graceful stop: no new connections, finish what is in flight (bounded) */
    h2o_socket_read_stop(l->listener);
    h2o_socket_close(l->listener);
    if (l->redirect_listener != NULL) {
        h2o_socket_read_stop(l->redirect_listener);
        h2o_socket_close(l->redirect_listener);
    }
    h2o_context_request_shutdown(&l->ctx);
    uint64_t until = h2o_now(l->ctx.loop) + GRACEFUL_STOP_MS;
    while (h2o_now(l->ctx.loop) < until &&
           !(h2o_linklist_is_empty(&l->ctx.http1._conns) && h2o_linklist_is_empty(&l->ctx.http2._conns)))
        h2o_evloop_run(l->ctx.loop, 50);
    return NULL;
}

int gw_serve(gw_config_t *conf)
{
    gw_server_t server = {.conf = conf};
    char err[512];
    int exit_code = 1;
    h2o_access_log_filehandle_t *alog = NULL;

    signal(SIGPIPE, SIG_IGN);
    gw_metrics_init(conf->num_routes);
    if ((server.keys = gw_jwt_keyset_load(conf->jwt_signing_key, (const char *const *)conf->jwt_previous_keys, err,
                                          sizeof(err))) == NULL) {
        gw_log("error", "gateway", "startup.failed", "reason", "signing key", "detail", err, NULL);
        return 1;
    }
    char key_path[PATH_MAX];
    snprintf(key_path, sizeof(key_path), "%s/" GW_AUDIT_KEY_FILE, conf->state_dir);
    if (gw_key_file(key_path, server.audit_key, sizeof(server.audit_key), err, sizeof(err)) != 0) {
        gw_log("error", "gateway", "startup.failed", "reason", "audit key", "detail", err, NULL);
        return 1;
    }
    if (gw_key_file(conf->pepper_file, server.pepper, sizeof(server.pepper), err, sizeof(err)) != 0) {
        gw_log("error", "gateway", "startup.failed", "reason", "pepper", "detail", err, NULL);
        return 1;
    }
    if (gw_mfa_key(conf, server.mfa_key, err, sizeof(err)) != 0) {
        gw_log("error", "gateway", "startup.failed", "reason", "mfa key", "detail", err, NULL);
        return 1;
    }
    if (mfa_global_init() != 0) {
        gw_log("error", "gateway", "startup.failed", "reason", "mfa init", NULL);
        return 1;
    }
    for (char **c = conf->trusted_proxies; c != NULL && *c != NULL; ++c)
        ++server.num_proxies;
    server.proxies = calloc(server.num_proxies + 1, sizeof(*server.proxies));
    for (size_t i = 0; i != server.num_proxies; ++i)
        if (gw_parse_cidr(conf->trusted_proxies[i], &server.proxies[i]) != 0)
            return 1; /* validated at load */
    if ((server.blocklist = gw_blocklist_load(conf, err, sizeof(err))) == NULL) {
        gw_log("error", "gateway", "startup.failed", "reason", "blocklist", "detail", err, NULL);
        return 1;
    }
    char entries[24];
    snprintf(entries, sizeof(entries), "%zu", pol_blocklist_size(server.blocklist));
    gw_log("info", "policy", "blocklist.loaded", "entries", entries, NULL);
    server.spray =
        gw_spray_create(conf->spray_max_usernames, conf->spray_window, conf->spray_block, conf->spray_same_password);
    if ((server.templates = gw_templates_load(conf->templates_dir, err, sizeof(err))) == NULL) {
        gw_log("error", "gateway", "startup.failed", "reason", "templates", "detail", err, NULL);
        return 1;
    }
    if ((server.ssl_ctx = create_ssl_ctx(conf)) == NULL)
        return 1;
    if (conf->access_log != NULL &&
        (alog = h2o_access_log_open_handle(strcmp(conf->access_log, "-") == 0 ? "/dev/stderr" : conf->access_log,
                                           ACCESS_LOG_FORMAT, H2O_LOGCONF_ESCAPE_JSON)) == NULL) {
        gw_log("error", "gateway", "startup.failed", "reason", "access log", "path", conf->access_log, NULL);
        return 1;
    }
    if (conf->saml != NULL && (server.saml = saml_idp_create(conf, conf->state_dir, err, sizeof(err))) == NULL) {
        gw_log("error", "gateway", "startup.failed", "reason", "saml", "detail", err, NULL);
        return 1;
    }
    server.cache = gw_cache_create(conf->num_routes);
    setup_globalconf(&server, alog);
    /* h2o's socket buffer prototype is thread-local, and a buffer is recycled into the prototype of the thread
     * that created its socket. Each context's multithread queue (the pipe that brings finished worker jobs
     * back) is created here, on the main thread, but read by its loop thread: with recycling on, every loop
     * pushed and popped the main thread's free list concurrently and corrupted the heap under a steady stream
     * of jobs (use after free found by ASan: /readyz or SCIM under wrk). No recycling for the main thread's
     * sockets: plain malloc/free, which is thread-safe. Loop threads keep their own recycling. */
    h2o_socket_buffer_prototype.allocator.max = 0;

    /* Signals are taken by the main thread only (sigwait below); every thread inherits this mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    server.num_loops = conf->threads;
    server.loops = calloc(server.num_loops, sizeof(*server.loops));
    for (size_t i = 0; i != server.num_loops; ++i) {
        gw_loop_t *l = &server.loops[i];
        l->server = &server;
        l->index = i;
        h2o_context_init(&l->ctx, h2o_evloop_create(), &server.globalconf);
        h2o_multithread_register_receiver(l->ctx.queue, &l->job_receiver, gw_workers_on_complete);
        l->accept_ctx = (h2o_accept_ctx_t){.ctx = &l->ctx, .hosts = server.globalconf.hosts, .ssl_ctx = server.ssl_ctx};
        int fd = open_listener(conf->listen_address, conf->listen_port);
        if (fd < 0) {
            snprintf(err, sizeof(err), "%s:%u: %s", conf->listen_address, conf->listen_port, strerror(errno));
            gw_log("error", "gateway", "startup.failed", "reason", "listen", "detail", err, NULL);
            return 1;
        }
        l->listener = attach_listener(l, fd, &l->accept_ctx);
        if (conf->http_redirect_port != 0) {
            l->redirect_accept_ctx = (h2o_accept_ctx_t){.ctx = &l->ctx, .hosts = server.redirect_globalconf.hosts};
            if ((fd = open_listener(conf->http_redirect_address, conf->http_redirect_port)) < 0) {
                snprintf(err, sizeof(err), "%s:%u: %s", conf->http_redirect_address, conf->http_redirect_port,
                         strerror(errno));
                gw_log("error", "gateway", "startup.failed", "reason", "listen", "detail", err, NULL);
                return 1;
            }
            l->redirect_listener = attach_listener(l, fd, &l->redirect_accept_ctx);
        }
    }

    server.workers = gw_workers_create(&server, conf->workers);
    atomic_store(&server.db_ready, 1);
    saml_broker_refresh_start(server.saml, &server); /* needs the workers (audit events) */
    gw_revocation_start(&server);
    for (size_t i = 0; i != server.num_loops; ++i)
        pthread_create(&server.loops[i].tid, NULL, loop_main, &server.loops[i]);

    char port[8], threads[8];
    snprintf(port, sizeof(port), "%u", conf->listen_port);
    snprintf(threads, sizeof(threads), "%u", conf->threads);
    gw_log("info", "gateway", "listening", "address", conf->listen_address, "port", port, "threads", threads, NULL);

    int sig;
    sigwait(&sigs, &sig);
    gw_log("info", "gateway", "shutdown", "signal", sig == SIGTERM ? "TERM" : "INT", NULL);
    atomic_store(&server.shutting_down, 1);
    for (size_t i = 0; i != server.num_loops; ++i)
        pthread_join(server.loops[i].tid, NULL);
    gw_revocation_stop(&server);
    saml_broker_refresh_stop(server.saml); /* before the workers: it queues audit jobs */
    gw_workers_destroy(server.workers);
    saml_idp_destroy(server.saml); /* after the workers: their LassoServers live in it */
    /* Jobs completed after the loops stopped are still queued in the receivers: drain them (their requests are
     * gone, so done() only frees). */
    for (size_t i = 0; i != server.num_loops; ++i)
        h2o_evloop_run(server.loops[i].ctx.loop, 0);
    exit_code = 0;

    /* h2o 2.2.5 cannot dispose a context that still has armed timers (idle keep-alive connections, the
     * upstream pool), and asserts; the contexts, loops and h2o configuration are left to process exit
     * (tests/lsan.supp names those allocations). Everything portier allocated itself is released below. */
    gw_cache_destroy(server.cache);
    SSL_CTX_free(server.ssl_ctx);
    gw_templates_destroy(server.templates);
    gw_jwt_keyset_destroy(server.keys);
    free(server.loops);
    free(gw_metrics.route_status);
    OPENSSL_cleanse(server.audit_key, sizeof(server.audit_key));
    OPENSSL_cleanse(server.pepper, sizeof(server.pepper));
    gw_spray_destroy(server.spray);
    free(server.proxies);
    pol_blocklist_destroy(server.blocklist);
    gw_log("info", "gateway", "stopped", NULL);
    return exit_code;
}
