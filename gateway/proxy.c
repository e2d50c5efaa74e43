/*
 * The authenticating reverse proxy: one handler per configured route, registered in front of h2o's proxy on the
 * same path. For each request it:
 *   1. finds the session (cookie -> SHA-256 -> cache; a miss is looked up by a worker, never on the loop);
 *   2. applies the route's group rule (401/redirect for no session, 403 page for a forbidden user);
 *   3. removes every client-supplied identity header, then adds portier's, including an ES256 JWT that is signed
 *      once per session and route and reused until shortly before it expires;
 *   4. falls through to h2o's proxy (returning -1 when synchronous, h2o_delegate_request after a lookup).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/internal.h"

#define SESSION_COOKIE_MAX 128

typedef struct st_route_handler_t {
    h2o_handler_t super;
    gw_server_t *server;
    size_t route;
    h2o_iovec_t name_user, name_email, name_groups, name_jwt; /* configured header names, lower-cased once */
} route_handler_t;

typedef struct st_lookup_job_t {
    gw_job_t super;
    route_handler_t *handler;
    uint8_t hash[STORE_HASH_LEN];
    uint64_t generation;
    int status; /* 0 found, -ENOENT, -EIO */
    store_session_t row;
} lookup_job_t;

typedef struct st_touch_job_t {
    gw_job_t super;
    uint8_t hash[STORE_HASH_LEN];
} touch_job_t;

/* ---- header hygiene ---- */

/* Compares a header name with `want` ignoring case and treating '_' as '-'. */
static int name_is(h2o_iovec_t name, const char *want)
{
    size_t len = strlen(want);
    if (name.len != len)
        return 0;
    for (size_t i = 0; i != len; ++i) {
        char c = h2o_tolower(name.base[i]);
        if (c == '_')
            c = '-';
        if (c != h2o_tolower(want[i]))
            return 0;
    }
    return 1;
}

static int name_has_prefix(h2o_iovec_t name, const char *prefix)
{
    size_t len = strlen(prefix);
    if (name.len < len)
        return 0;
    return name_is(h2o_iovec_init(name.base, len), prefix);
}

static int is_identity_header(h2o_iovec_t name, const gw_config_t *conf)
{
    static const char *const fixed[] = {"x-forwarded-user",
                                        "x-forwarded-email",
                                        "x-forwarded-groups",
                                        "x-forwarded-preferred-username",
                                        "remote-user",
                                        "x-remote-user",
                                        "x-forwarded-for",
                                        "x-forwarded-host",
                                        "x-forwarded-proto",
                                        "forwarded",
                                        "x-real-ip",
                                        "x-user",
                                        "x-email",
                                        "via",
                                        NULL};
    for (const char *const *f = fixed; *f != NULL; ++f)
        if (name_is(name, *f))
            return 1;
    if (name_has_prefix(name, "x-auth-") || name_has_prefix(name, "x-portier-"))
        return 1;
    return name_is(name, conf->hdr_user) || name_is(name, conf->hdr_email) || name_is(name, conf->hdr_groups) ||
           name_is(name, conf->hdr_jwt);
}

/* Rebuilds a Cookie header value without portier's own cookies (the backend never sees the session). */
static h2o_iovec_t strip_own_cookies(h2o_mem_pool_t *pool, h2o_iovec_t value, const char *session_cookie)
{
    size_t own_len = strlen(session_cookie);
    /* each kept pair is re-joined with "; ": a ";" of one byte may become two, so at most twice the input */
    char *out = h2o_mem_alloc_pool(pool, value.len * 2 + 1);
    size_t olen = 0;
    const char *p = value.base, *end = value.base + value.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ';'))
            ++p;
        const char *pair = p;
        while (p < end && *p != ';')
            ++p;
        if (p == pair)
            continue;
        const char *eq = memchr(pair, '=', (size_t)(p - pair));
        size_t nlen = eq != NULL ? (size_t)(eq - pair) : (size_t)(p - pair);
        /* ours: exactly the session cookie name, or it followed by a suffix such as "-csrf" */
        if (nlen >= own_len && memcmp(pair, session_cookie, own_len) == 0 && (nlen == own_len || pair[own_len] == '-'))
            continue;
        if (olen != 0) {
            out[olen++] = ';';
            out[olen++] = ' ';
        }
        memcpy(out + olen, pair, (size_t)(p - pair));
        olen += (size_t)(p - pair);
    }
    return h2o_iovec_init(out, olen);
}

void gw_strip_identity_headers(h2o_req_t *req, const gw_config_t *conf)
{
    for (size_t i = 0; i < req->headers.size;) {
        h2o_header_t *h = req->headers.entries + i;
        if (is_identity_header(*h->name, conf)) {
            h2o_delete_header(&req->headers, (ssize_t)i);
            continue;
        }
        if (h->name == &H2O_TOKEN_COOKIE->buf) {
            h2o_iovec_t v = strip_own_cookies(&req->pool, h->value, conf->session_cookie);
            if (v.len == 0) {
                h2o_delete_header(&req->headers, (ssize_t)i);
                continue;
            }
            h->value = v;
        }
        ++i;
    }
}

static h2o_iovec_t lowercase_dup(const char *name)
{
    h2o_iovec_t v = h2o_strdup(NULL, name, strlen(name));
    h2o_strtolower(v.base, v.len);
    return v;
}

static void add_header(h2o_req_t *req, h2o_iovec_t name, const char *value, size_t len)
{
    h2o_add_header_by_str(&req->pool, &req->headers, name.base, name.len, 0, NULL, value, len);
}

/* ---- identity JWT, cached per session and route ---- */

/* RFC 8176 method names of a session, for the "amr" claim */
static const char *const amr_pwd[] = {"pwd", NULL};
static const char *const amr_mfa[] = {"pwd", "otp", NULL};

static const char *identity_jwt(route_handler_t *h, h2o_req_t *req, gw_session_t *s, time_t now)
{
    const gw_config_t *conf = h->server->conf;
    int64_t refresh_margin = conf->jwt_lifetime / 4;
    if (refresh_margin < 5)
        refresh_margin = 5;
    const char *out = NULL;

    pthread_mutex_lock(&s->jwt_lock);
    if (s->jwts[h->route].token != NULL && s->jwts[h->route].exp - (int64_t)now > refresh_margin)
        out = h2o_strdup(&req->pool, s->jwts[h->route].token, SIZE_MAX).base;
    pthread_mutex_unlock(&s->jwt_lock);
    if (out != NULL) {
        atomic_fetch_add(&gw_metrics.jwt_reused, 1);
        return out;
    }

    gw_jwt_claims_t claims = {
        .iss = conf->jwt_issuer,
        .aud = conf->routes[h->route].name,
        .sub = s->username,
        .email = s->email,
        .name = s->name,
        .groups = (const char *const *)s->groups,
        .num_groups = s->num_groups,
        .sid = s->public_id,
        .iat = (int64_t)now,
        .exp = (int64_t)now + conf->jwt_lifetime,
        .amr = (s->amr & STORE_AMR_OTP) ? amr_mfa : amr_pwd,
        .acr = (s->amr & STORE_AMR_OTP) ? GW_ACR_MFA : GW_ACR_PWD,
    };
    char *token = gw_jwt_sign(h->server->keys, &claims);
    if (token == NULL)
        return NULL;
    atomic_fetch_add(&gw_metrics.jwt_signed, 1);
    out = h2o_strdup(&req->pool, token, SIZE_MAX).base;
    pthread_mutex_lock(&s->jwt_lock);
    free(s->jwts[h->route].token);
    s->jwts[h->route].token = token;
    s->jwts[h->route].exp = claims.exp;
    pthread_mutex_unlock(&s->jwt_lock);
    return out;
}

/* ---- decisions ---- */

/* A session with only a password, on a route that needs more (routes[].mfa, or the user is in a group of
 * mfa.required_groups): a browser goes to the second-factor step (no new password), anything else gets 401. */
static int needs_step_up(const gw_config_t *conf, const gw_route_t *route, const gw_session_t *s)
{
    return !(s->amr & STORE_AMR_OTP) && (route->require_mfa || gw_config_mfa_required(conf, s->groups));
}

static void send_step_up(h2o_req_t *req)
{
    if (gw_wants_html(req) && (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
                               h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))) {
        char *path = h2o_strdup(&req->pool, req->path.base, req->path.len).base;
        char *enc = gw_url_encode(&req->pool, path);
        h2o_iovec_t loc = h2o_concat(&req->pool, h2o_iovec_init(H2O_STRLIT("/login/mfa?return_to=")),
                                     h2o_iovec_init(enc, strlen(enc)));
        gw_send_redirect(req, 302, loc.base);
    } else {
        h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("www-authenticate"), 0,
                              H2O_STRLIT("Cookie realm=\"portier\", error=\"mfa_required\""), 1);
        gw_send_json(req, 401, "{\"error\":\"mfa_required\"}");
    }
}

static void send_unauthenticated(route_handler_t *h, h2o_req_t *req)
{
    if (gw_wants_html(req) && (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
                               h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))) {
        char *path = h2o_strdup(&req->pool, req->path.base, req->path.len).base;
        char *enc = gw_url_encode(&req->pool, path);
        h2o_iovec_t loc =
            h2o_concat(&req->pool, h2o_iovec_init(H2O_STRLIT("/login?return_to=")), h2o_iovec_init(enc, strlen(enc)));
        gw_send_redirect(req, 302, loc.base);
    } else {
        h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("www-authenticate"), 0,
                              H2O_STRLIT("Cookie realm=\"portier\""), 1);
        gw_send_json(req, 401, "{\"error\":\"unauthenticated\"}");
    }
}

static int allowed(const gw_route_t *route, const gw_session_t *s)
{
    if (route->num_groups == 0)
        return 1;
    for (size_t i = 0; i != route->num_groups; ++i)
        for (size_t j = 0; j != s->num_groups; ++j)
            if (strcmp(route->groups[i], s->groups[j]) == 0)
                return 1;
    return 0;
}

static void touch_run(gw_job_t *job, gw_worker_t *w)
{
    touch_job_t *t = (touch_job_t *)job;
    store_t *db = gw_worker_db(w);
    if (db != NULL && store_session_touch(db, t->hash) != 0)
        gw_log("warn", "gateway", "session.touch_failed", NULL);
}

static void touch_later(gw_server_t *server, const uint8_t hash[STORE_HASH_LEN])
{
    touch_job_t *t = malloc(sizeof(*t));
    if (t != NULL) {
        memcpy(t->hash, hash, STORE_HASH_LEN);
        gw_job_submit_detached(server, &t->super, touch_run);
    }
}

static void note_activity(gw_server_t *server, gw_session_t *s, time_t now)
{
    atomic_store(&s->last_seen, (long long)now);
    long long last = atomic_load(&s->last_db_touch);
    if (now - last >= GW_TOUCH_INTERVAL && atomic_compare_exchange_strong(&s->last_db_touch, &last, (long long)now))
        touch_later(server, s->hash);
}

void gw_session_activity(gw_server_t *server, const uint8_t hash[STORE_HASH_LEN])
{
    gw_session_t *s = gw_cache_get(server->cache, hash);
    if (s == NULL) { /* the next proxied request reads last_seen from the database */
        touch_later(server, hash);
        return;
    }
    note_activity(server, s, time(NULL));
    gw_session_release(s);
}

static void release_held_session(void *p)
{
    gw_session_release(*(gw_session_t **)p);
}

/* h2o's proxy serialises the upstream request after on_req returns (once the upstream connection is ready);
 * a revocation may evict and release the session before that, so the request takes its own reference. */
static void hold_session(h2o_req_t *req, gw_session_t *s)
{
    gw_session_t **ref = h2o_mem_alloc_shared(&req->pool, sizeof(*ref), release_held_session);
    atomic_fetch_add(&s->refcnt, 1);
    *ref = s;
}

/* Authorizes and decorates the request. Returns 0 when it should go on to the proxy; otherwise a response has
 * been sent. */
static int admit(route_handler_t *h, h2o_req_t *req, gw_session_t *s, time_t now)
{
    const gw_config_t *conf = h->server->conf;
    const gw_route_t *route = &conf->routes[h->route];

    if (!allowed(route, s)) {
        gw_log("info", "gateway", "access.denied", "user", s->username, "route", route->name, NULL);
        if (gw_wants_html(req))
            gw_send_message(req, 403, "Access denied",
                            "Your account is not allowed to use this application. Ask your administrator for access.",
                            NULL, NULL);
        else
            gw_send_json(req, 403, "{\"error\":\"forbidden\"}");
        return 1;
    }
    if (needs_step_up(conf, route, s)) {
        gw_log("info", "gateway", "access.step_up", "user", s->username, "route", route->name, NULL);
        send_step_up(req);
        return 1;
    }
    const char *jwt = identity_jwt(h, req, s, now);
    if (jwt == NULL) {
        gw_log("error", "gateway", "jwt.sign_failed", NULL);
        gw_send_json(req, 500, "{\"error\":\"internal\"}");
        return 1;
    }
    note_activity(h->server, s, now);
    hold_session(req, s); /* the header values below point into the session: keep it alive with the request */
    char client[INET6_ADDRSTRLEN + 1] = "";
    if (h->server->num_proxies != 0) /* read X-Forwarded-For before it is stripped */
        gw_peer_addr(req, client, sizeof(client));
    gw_strip_identity_headers(req, conf);
    add_header(req, h->name_user, s->hv_user.base, s->hv_user.len);
    if (s->email != NULL)
        add_header(req, h->name_email, s->hv_email.base, s->hv_email.len);
    add_header(req, h->name_groups, s->hv_groups.base, s->hv_groups.len);
    add_header(req, h->name_jwt, jwt, strlen(jwt)); /* base64url: nothing to filter */
    if (client[0] != '\0') {
        /* behind trusted proxies: tell the backend who the client is; h2o appends the proxy's address */
        h2o_iovec_t v = h2o_strdup(&req->pool, client, SIZE_MAX);
        h2o_add_header(&req->pool, &req->headers, H2O_TOKEN_X_FORWARDED_FOR, NULL, v.base, v.len);
    }
    return 0;
}

static void lookup_run(gw_job_t *job, gw_worker_t *w)
{
    lookup_job_t *j = (lookup_job_t *)job;
    store_t *db = gw_worker_db(w);
    j->status = db != NULL ? store_session_lookup(db, j->hash, &j->row) : -EIO;
}

static void lookup_done(gw_job_t *job)
{
    lookup_job_t *j = (lookup_job_t *)job;
    h2o_req_t *req = job->req;
    route_handler_t *h = j->handler;
    gw_session_t *s = NULL;

    if (j->status == 0)
        s = gw_cache_insert(h->server->cache, &j->row, j->hash, j->generation);
    if (req != NULL) {
        if (j->status == -EIO) {
            gw_send_unavailable(req);
        } else if (s == NULL) {
            send_unauthenticated(h, req);
        } else if (admit(h, req, s, time(NULL)) == 0) {
            h2o_delegate_request_deferred(req, &h->super);
        }
    }
    gw_session_release(s);
    if (j->status == 0)
        store_session_dispose(&j->row);
    OPENSSL_cleanse(j->hash, sizeof(j->hash));
    free(j);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    route_handler_t *h = (route_handler_t *)self;
    gw_server_t *server = h->server;
    h2o_iovec_t cookie = gw_get_cookie(req, server->conf->session_cookie);
    if (cookie.base == NULL || cookie.len == 0 || cookie.len > SESSION_COOKIE_MAX) {
        send_unauthenticated(h, req);
        return 0;
    }
    uint8_t hash[STORE_HASH_LEN];
    gw_sha256(cookie.base, cookie.len, hash);
    time_t now = time(NULL);

    gw_session_t *s = gw_cache_get(server->cache, hash);
    if (s != NULL) {
        if (now >= s->expires_at) {
            gw_cache_evict_session(server->cache, hash);
            gw_session_release(s);
            send_unauthenticated(h, req);
            return 0;
        }
        if (now - (time_t)atomic_load(&s->last_seen) < (time_t)s->idle_timeout) {
            atomic_fetch_add(&gw_metrics.cache_hits, 1);
            int r = admit(h, req, s, now);
            gw_session_release(s);
            return r == 0 ? -1 : 0;
        }
        /* idle by our local view; another instance may have seen activity: ask the database */
        gw_cache_evict_session(server->cache, hash);
        gw_session_release(s);
    }

    atomic_fetch_add(&gw_metrics.cache_misses, 1);
    lookup_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        gw_send_unavailable(req);
        return 0;
    }
    j->handler = h;
    memcpy(j->hash, hash, sizeof(hash));
    j->generation = gw_cache_generation(server->cache);
    gw_job_submit(gw_loop_of(req), req, &j->super, lookup_run, lookup_done);
    return 0;
}

/* Counts responses per route and observes proxied latency. */
typedef struct st_route_logger_t {
    h2o_logger_t super;
    size_t route;
} route_logger_t;

static void on_log(h2o_logger_t *self, h2o_req_t *req)
{
    route_logger_t *l = (route_logger_t *)self;
    gw_metrics_count_status(l->route, req->res.status);
    const struct timeval *b = &req->timestamps.request_begin_at, *e = &req->timestamps.response_start_at;
    if (e->tv_sec != 0) {
        int64_t us = (int64_t)(e->tv_sec - b->tv_sec) * 1000000 + (e->tv_usec - b->tv_usec);
        if (us >= 0)
            gw_metrics_observe_latency((uint64_t)us);
    }
}

void gw_proxy_register(gw_server_t *server, h2o_pathconf_t *pathconf, size_t route_index)
{
    const gw_route_t *route = &server->conf->routes[route_index];
    route_handler_t *h = (route_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->server = server;
    h->route = route_index;
    h->name_user = lowercase_dup(server->conf->hdr_user);
    h->name_email = lowercase_dup(server->conf->hdr_email);
    h->name_groups = lowercase_dup(server->conf->hdr_groups);
    h->name_jwt = lowercase_dup(server->conf->hdr_jwt);

    /* Without a path in the backend URL the whole request path is forwarded (the prefix is kept); with one, it
     * replaces the prefix (nginx proxy_pass semantics). */
    h2o_url_t parsed, upstream;
    if (h2o_url_parse(route->backend, SIZE_MAX, &parsed) != 0)
        abort(); /* validated at config load */
    char *url = parsed.path.len <= 1 ? h2o_concat(NULL, h2o_iovec_init(H2O_STRLIT("http://")), parsed.authority,
                                                  h2o_iovec_init(route->prefix, strlen(route->prefix)))
                                           .base
                                     : strdup(route->backend);
    if (h2o_url_parse(url, SIZE_MAX, &upstream) != 0)
        abort();

    h2o_proxy_config_vars_t vars = {
        .io_timeout = 30000,
        .keepalive_timeout = 2000,
        .preserve_host = 0,
    };
    h2o_proxy_register_reverse_proxy(pathconf, &upstream, &vars); /* copies the URL */
    free(url);
    route_logger_t *l = (route_logger_t *)h2o_create_logger(pathconf, sizeof(*l));
    l->super.log_access = on_log;
    l->route = route_index;
}
