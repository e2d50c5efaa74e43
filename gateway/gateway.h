/*
 * gateway: the server process. This header is what other modules (idp/) may use: the server object, the worker
 * pool, the session cache, HTTP page/form/cookie helpers, metrics and logging. Everything here is used on an
 * event-loop thread unless a comment says otherwise.
 */
#ifndef PORTIER_GATEWAY_H
#define PORTIER_GATEWAY_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "gateway/config.h"
#include "gateway/jwt.h"
#include "gateway/template.h"
#include "store/store.h"

/* "acr" claim (and SAML AuthnContextClassRef mapping): what a session's sign-in proved */
#define GW_ACR_PWD             "urn:portier:acr:password"
#define GW_ACR_MFA             "urn:portier:acr:mfa"
#define GW_SESSION_TOKEN_BYTES 32 /* 256-bit session id */
#define GW_CSRF_TOKEN_BYTES    16
#define GW_CSRF_COOKIE_SUFFIX  "-csrf"
#define GW_TOUCH_INTERVAL      60 /* seconds between last_seen writes of one session */
#define GW_AUDIT_KEY_LEN       32
#define GW_MFA_KEY_LEN         32          /* AES-256-GCM key sealing OTP secrets */
#define GW_AUDIT_KEY_FILE      "audit.key" /* in state_dir */

typedef struct st_gw_server_t gw_server_t;
typedef struct st_gw_loop_t gw_loop_t;
typedef struct st_gw_workers_t gw_workers_t;
typedef struct st_gw_cache_t gw_cache_t;
typedef struct st_gw_spray_t gw_spray_t;

/* ---- logging (log.c): one JSON object per line on stderr. Never pass secrets. ---- */
/* kv: NULL-terminated list of key, value string pairs; values are escaped and truncated to 256 bytes. */
void gw_log(const char *level, const char *module, const char *event, ...) __attribute__((sentinel));

/* ---- metrics (metrics.c) ---- */
typedef struct st_gw_metrics_t {
    atomic_uint_fast64_t cache_hits, cache_misses, db_queries, revocations, cache_flushes;
    atomic_uint_fast64_t logins_success, logins_failure, setups, logouts;
    atomic_uint_fast64_t lockouts, spray_triggers, spray_refusals;
    atomic_uint_fast64_t jwt_signed, jwt_reused;
    atomic_uint_fast64_t *route_status;      /* [route][class 1xx..5xx -> 0..4], route == num_routes: portier pages */
    atomic_uint_fast64_t latency_bucket[12]; /* proxied request latency histogram (see metrics.c) */
    atomic_uint_fast64_t latency_sum_us, latency_count;
    atomic_uint_fast64_t scim_status[5]; /* SCIM responses by status class 1xx..5xx */
} gw_metrics_t;
extern gw_metrics_t gw_metrics;
void gw_metrics_init(size_t num_routes);
void gw_metrics_count_status(size_t route, int status);
void gw_metrics_observe_latency(uint64_t micros);
/* Renders the Prometheus text exposition into a malloc'd buffer. */
char *gw_metrics_render(const gw_config_t *conf, size_t *len);

/* ---- worker pool (worker.c) ---- */
typedef struct st_gw_worker_t {
    gw_workers_t *pool;
    size_t index;
    store_t *db; /* this worker's connection; NULL when the database is unreachable (reconnect is attempted) */
} gw_worker_t;

typedef struct st_gw_job_t gw_job_t;
/* run: on a worker thread; must not touch the request. done: back on the submitting loop; job->req is NULL when
 * the client went away. done frees the job (jobs are malloc'd, never in the request pool). */
typedef void (*gw_job_cb)(gw_job_t *job, gw_worker_t *worker);
typedef void (*gw_job_done_cb)(gw_job_t *job);
struct st_gw_job_t {
    h2o_multithread_message_t _msg; /* internal */
    gw_job_t *_next;                /* internal */
    gw_loop_t *loop;                /* NULL for fire-and-forget jobs (no done callback) */
    h2o_req_t *req;
    gw_job_t **_guard;
    gw_job_cb run;
    gw_job_done_cb done;
};
/* Queues `job` (already allocated and filled by the caller). When req is non-NULL, the job is linked to the
 * request's lifetime: if the request is freed first, job->req becomes NULL before done runs. */
void gw_job_submit(gw_loop_t *loop, h2o_req_t *req, gw_job_t *job, gw_job_cb run, gw_job_done_cb done);
/* Fire-and-forget: runs on a worker, then free(job) is called. */
void gw_job_submit_detached(gw_server_t *server, gw_job_t *job, gw_job_cb run);
/* Ensures worker->db is connected; returns it or NULL. */
store_t *gw_worker_db(gw_worker_t *worker);

/* ---- session cache (cache.c) ---- */
typedef struct st_gw_session_t {
    atomic_int refcnt;
    uint8_t hash[STORE_HASH_LEN];
    int64_t user_id;
    char *username, *email, *name, *public_id;
    char **groups; /* NULL-terminated */
    size_t num_groups;
    char *groups_joined;                      /* "a,b,c" */
    h2o_iovec_t hv_user, hv_email, hv_groups; /* header-safe copies (no control characters), made once */
    time_t expires_at;
    unsigned idle_timeout;
    unsigned amr;               /* STORE_AMR_* bits */
    atomic_llong last_seen;     /* local view of activity */
    atomic_llong last_db_touch; /* last time a touch job was queued */
    pthread_mutex_t jwt_lock;
    struct {
        char *token;
        int64_t exp;
    } * jwts; /* one slot per route */
    size_t num_jwts;
} gw_session_t;

gw_cache_t *gw_cache_create(size_t num_routes);
void gw_cache_destroy(gw_cache_t *c);
/* Returns a referenced session or NULL. Caller releases with gw_session_release. */
gw_session_t *gw_cache_get(gw_cache_t *c, const uint8_t hash[STORE_HASH_LEN]);
void gw_session_release(gw_session_t *s);
/* Generation: read before a database lookup, pass to insert; the insert is dropped when any eviction happened
 * in between (the looked-up row may already be revoked). */
uint64_t gw_cache_generation(gw_cache_t *c);
/* Builds a session from a store row and inserts it (unless the generation moved). Returns a referenced
 * session (even when not inserted), or NULL on allocation failure. */
gw_session_t *gw_cache_insert(gw_cache_t *c, const store_session_t *row, const uint8_t hash[STORE_HASH_LEN],
                              uint64_t generation);
void gw_cache_evict_session(gw_cache_t *c, const uint8_t hash[STORE_HASH_LEN]);
void gw_cache_evict_user(gw_cache_t *c, int64_t user_id);
void gw_cache_flush(gw_cache_t *c);
/* A copy of s without control characters (header values must not be split); malloc'd. */
h2o_iovec_t gw_header_safe_dup(const char *s);

/* ---- the server ---- */
struct st_gw_server_t {
    gw_config_t *conf;
    gw_jwt_keyset_t *keys;
    gw_templates_t *templates;
    gw_workers_t *workers;
    gw_cache_t *cache;
    h2o_globalconf_t globalconf;
    h2o_globalconf_t redirect_globalconf;
    SSL_CTX *ssl_ctx;
    gw_loop_t *loops;
    size_t num_loops;
    pthread_t revocation_thread;
    atomic_int shutting_down;
    atomic_int db_ready; /* last known database reachability */
    uint8_t audit_key[GW_AUDIT_KEY_LEN];
    uint8_t pepper[GW_AUDIT_KEY_LEN];
    uint8_t mfa_key[GW_MFA_KEY_LEN];
    gw_spray_t *spray;
    struct st_pol_blocklist_t *blocklist; /* common passwords + dictionary words, read-only after start */
    gw_cidr_t *proxies;                   /* server.trusted_proxies, parsed */
    struct st_saml_idp_t *saml;           /* the SAML IdP (saml/), NULL without a `saml` section */
    size_t num_proxies;
};

struct st_gw_loop_t {
    gw_server_t *server;
    size_t index;
    pthread_t tid;
    h2o_context_t ctx;
    h2o_multithread_receiver_t job_receiver;
    h2o_accept_ctx_t accept_ctx;
    h2o_accept_ctx_t redirect_accept_ctx;
    h2o_socket_t *listener;
    h2o_socket_t *redirect_listener;
};

/* The server object of the loop serving this request. */
gw_loop_t *gw_loop_of(h2o_req_t *req);

/* ---- HTTP helpers (http.c) ---- */
/* Adds portier's page headers (CSP, nosniff, no-referrer, no-store, HSTS, frame deny). */
void gw_add_security_headers(h2o_req_t *req);
/* Renders a template and sends it with `status` and the security headers. vars as in template.h. */
void gw_send_page(h2o_req_t *req, int status, const char *tmpl, const gw_tpl_var_t *vars, size_t nvars);
/* Any body (copied) with the security headers. */
void gw_send_body(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len);
/* A message page (message.html): title + text (+ optional link). */
void gw_send_message(h2o_req_t *req, int status, const char *title, const char *message, const char *link_href,
                     const char *link_text);
/* Sends a redirect (status 302/303) to an already validated location, with the security headers. */
void gw_send_redirect(h2o_req_t *req, int status, const char *location);
/* Sends a small JSON body. */
void gw_send_json(h2o_req_t *req, int status, const char *json);
/* 503 with Retry-After when the database is unavailable. */
void gw_send_unavailable(h2o_req_t *req);

/* Value of cookie `name` from the request (pool-allocated, NULL if absent). */
h2o_iovec_t gw_get_cookie(h2o_req_t *req, const char *name);
/* Adds a Set-Cookie: name=value; Path=/; Secure; HttpOnly; SameSite=Lax (max_age < 0: session cookie;
 * 0: delete). */
void gw_set_cookie(h2o_req_t *req, const char *name, const char *value, long max_age);
/* SHA-256 of cookie `name` into out and 1, or 0 when the request has none (or one longer than 128 bytes, which
 * portier never issues). Cookies that stand for a row in the database are looked up by this hash only. */
int gw_cookie_hash(h2o_req_t *req, const char *name, uint8_t out[STORE_HASH_LEN]);
/* URL-decoded value of a form field of an application/x-www-form-urlencoded body, or of the query string.
 * Pool-allocated NUL-terminated string or NULL. Values longer than max_len are treated as absent. */
char *gw_form_get(h2o_req_t *req, h2o_iovec_t body, const char *name, size_t max_len);
char *gw_query_get(h2o_req_t *req, const char *name, size_t max_len);
/* Percent-encodes for a query parameter (pool). */
char *gw_url_encode(h2o_mem_pool_t *pool, const char *s);
/* The request header value (first), or NULL iovec base. */
h2o_iovec_t gw_get_header(h2o_req_t *req, const char *lower_name);
/* True when the client prefers HTML (browser navigation). */
int gw_wants_html(h2o_req_t *req);
/* The client's address as 16 bytes (IPv4 v4-mapped): the socket peer, or, when the peer is one of
 * server.trusted_proxies, the rightmost X-Forwarded-For hop that is not. 0 or -1. */
int gw_client_addr(h2o_req_t *req, uint8_t out[16]);
/* The same as text into buf (>= 64 bytes). */
const char *gw_peer_addr(h2o_req_t *req, char *buf, size_t len);

/* CSRF (double-submit with a __Host- cookie): returns the token to embed in a form, setting the cookie if
 * needed. */
const char *gw_csrf_token(h2o_req_t *req);
/* Checks a state-changing form POST: Sec-Fetch-Site not cross-site, csrf field equals the cookie (constant
 * time). Returns 0 or -1. */
int gw_csrf_check(h2o_req_t *req, const char *form_token);

/* Random token: `bytes` random bytes, base64url into out (>= bytes*4/3+4). Also its SHA-256. */
void gw_random_token(size_t bytes, char *out, size_t outlen, uint8_t hash[STORE_HASH_LEN]);
void gw_sha256(const void *data, size_t len, uint8_t out[STORE_HASH_LEN]);

/* ---- spraying / stuffing defence (spray.c) ---- */
typedef enum { GW_SPRAY_OK, GW_SPRAY_SLOW, GW_SPRAY_REFUSE } gw_spray_verdict_t;
#define GW_SPRAY_TRIGGER_NETWORK  1 /* a network went over its distinct-user-name budget */
#define GW_SPRAY_TRIGGER_PASSWORD 2 /* one wrong password was tried against many user names */
gw_spray_t *gw_spray_create(unsigned max_usernames, unsigned window, unsigned block, unsigned same_password);
void gw_spray_destroy(gw_spray_t *s);
/* The /24 (IPv4, v4-mapped) or /64 (IPv6) network of a 16-byte address. */
void gw_spray_network(const uint8_t addr[16], uint8_t out[16]);
/* Keyed fingerprint of a password (HMAC under a per-process key); the password is not kept. */
void gw_spray_fingerprint(const gw_spray_t *s, const char *password, uint8_t out[16]);
/* Before a login is processed. */
gw_spray_verdict_t gw_spray_check(gw_spray_t *s, const uint8_t network[16], time_t now);
/* After a failed login; returns GW_SPRAY_TRIGGER_* bits when this failure crossed a threshold. */
int gw_spray_record_failure(gw_spray_t *s, const uint8_t network[16], const char *username,
                            const uint8_t fingerprint[16], time_t now);

/* ---- email (mail.c; worker threads only) ---- */
int gw_mail_configured(const gw_config_t *conf);
/* Sends a plain-text message; 0 or -1 (logged, without the message). */
int gw_mail_send(const gw_config_t *conf, const char *to, const char *subject, const char *body);

/* ---- key files (secrets.c) ---- */
/* Reads a key file of exactly len bytes, creating it (0600, random) when missing. Returns 0 or -1 + message. */
int gw_key_file(const char *path, uint8_t *key, size_t len, char *err, size_t errlen);
/* The key sealing OTP secrets: PORTIER_MFA_KEY (hex) when set, else mfa.key_file (created on first use). */
int gw_mfa_key(const gw_config_t *conf, uint8_t key[GW_MFA_KEY_LEN], char *err, size_t errlen);
/* Opens a database connection with the audit chain key set (audit_key may be NULL). */
store_t *gw_store_open(const gw_config_t *conf, const uint8_t *audit_key, char *err, size_t errlen);

/* ---- sub-systems ---- */
/* Activity of session `hash` outside the proxy (a SAML assertion issued with it), on a loop thread: the proxy's own
 * idle bookkeeping (proxy.c) applies, i.e. the cached entry's last_seen now and the database's last_seen at most
 * every GW_TOUCH_INTERVAL; a session not cached here has its database row touched. Database work runs on a
 * worker, never on the loop. */
void gw_session_activity(gw_server_t *server, const uint8_t hash[STORE_HASH_LEN]);
int gw_serve(gw_config_t *conf); /* runs until SIGTERM/SIGINT; returns exit code */
void gw_revocation_apply(gw_server_t *server, const char *payload);

#endif
