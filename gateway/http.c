/*
 * HTTP helpers for portier's own pages and endpoints: security headers, page rendering, redirects, cookies,
 * form/query parsing, CSRF (double-submit with a __Host- cookie) and random tokens. Everything allocates from
 * the request pool.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "gateway/internal.h"

#define CSP_VALUE  "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
#define HSTS_VALUE "max-age=31536000"

gw_loop_t *gw_loop_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(gw_loop_t, ctx, req->conn->ctx);
}

static void set_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_set_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, value, strlen(value), 1);
}

void gw_add_security_headers(h2o_req_t *req)
{
    set_header(req, "content-security-policy", CSP_VALUE);
    set_header(req, "x-content-type-options", "nosniff");
    set_header(req, "referrer-policy", "no-referrer");
    set_header(req, "cache-control", "no-store");
    set_header(req, "x-frame-options", "DENY");
    if (req->scheme == &H2O_URL_SCHEME_HTTPS)
        set_header(req, "strict-transport-security", HSTS_VALUE);
}

static void send_body(h2o_req_t *req, int status, const char *reason, const char *type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    set_header(req, "content-type", type);
    gw_add_security_headers(req);
    h2o_send_inline(req, body, len);
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 302: return "Found";
    case 303: return "See Other";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return status < 500 ? "Error" : "Internal Server Error";
    }
}

void gw_send_page(h2o_req_t *req, int status, const char *tmpl, const gw_tpl_var_t *vars, size_t nvars)
{
    gw_server_t *server = gw_loop_of(req)->server;
    size_t len;
    char *html = gw_template_render(server->templates, tmpl, vars, nvars, &len);
    if (html == NULL) {
        gw_log("error", "gateway", "template.missing", "template", tmpl, NULL);
        send_body(req, 500, "Internal Server Error", "text/plain; charset=utf-8", "internal error\n", 15);
        return;
    }
    char *copy = h2o_mem_alloc_pool(&req->pool, len);
    memcpy(copy, html, len);
    free(html);
    send_body(req, status, reason_of(status), "text/html; charset=utf-8", copy, len);
}

void gw_send_body(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    send_body(req, status, reason_of(status), content_type, body, len);
}

void gw_send_message(h2o_req_t *req, int status, const char *title, const char *message, const char *link_href,
                     const char *link_text)
{
    gw_tpl_var_t vars[] = {{"title", title}, {"message", message}, {"link_href", link_href}, {"link_text", link_text}};
    gw_send_page(req, status, "message.html", vars, sizeof(vars) / sizeof(vars[0]));
}

void gw_send_redirect(h2o_req_t *req, int status, const char *location)
{
    set_header(req, "location", location);
    send_body(req, status, reason_of(status), "text/plain; charset=utf-8", "", 0);
}

void gw_send_json(h2o_req_t *req, int status, const char *json)
{
    send_body(req, status, reason_of(status), "application/json", json, strlen(json));
}

void gw_send_unavailable(h2o_req_t *req)
{
    set_header(req, "retry-after", "5");
    if (gw_wants_html(req))
        gw_send_message(req, 503, "Temporarily unavailable",
                        "portier cannot reach its database right now. Please try again in a moment.", NULL, NULL);
    else
        gw_send_json(req, 503, "{\"error\":\"unavailable\"}");
}

h2o_iovec_t gw_get_header(h2o_req_t *req, const char *lower_name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, lower_name, strlen(lower_name), -1);
    if (i < 0)
        return h2o_iovec_init(NULL, 0);
    return req->headers.entries[i].value;
}

int gw_wants_html(h2o_req_t *req)
{
    h2o_iovec_t accept = gw_get_header(req, "accept");
    return accept.base != NULL && h2o_strstr(accept.base, accept.len, H2O_STRLIT("text/html")) != SIZE_MAX;
}

/* The socket peer as 16 bytes (IPv4 v4-mapped); 0 or -1. */
static int peer16(h2o_req_t *req, uint8_t out[16], struct sockaddr_storage *ss)
{
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)ss);
    memset(out, 0, 16);
    if (len != 0 && ss->ss_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((struct sockaddr_in *)ss)->sin_addr, 4);
        return 0;
    }
    if (len != 0 && ss->ss_family == AF_INET6) {
        memcpy(out, &((struct sockaddr_in6 *)ss)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

static int trusted(const gw_server_t *server, const uint8_t addr[16])
{
    for (size_t i = 0; i != server->num_proxies; ++i)
        if (gw_cidr_contains(&server->proxies[i], addr))
            return 1;
    return 0;
}

/* Parses one X-Forwarded-For element (IPv4 or IPv6, blanks around allowed) into 16 bytes. */
static int parse_xff_item(const char *p, size_t len, uint8_t out[16])
{
    char buf[64];
    while (len > 0 && (*p == ' ' || *p == '\t'))
        ++p, --len;
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        --len;
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    memset(out, 0, 16);
    if (inet_pton(AF_INET, buf, out + 12) == 1) {
        out[10] = out[11] = 0xff;
        return 0;
    }
    return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
}

int gw_client_addr(h2o_req_t *req, uint8_t out[16])
{
    struct sockaddr_storage ss;
    if (peer16(req, out, &ss) != 0)
        return -1;
    gw_server_t *server = gw_loop_of(req)->server;
    if (server->num_proxies == 0 || !trusted(server, out))
        return 0;
    /* Behind trusted proxies: walk X-Forwarded-For from the right; the first hop that is not one of ours is the
     * client (anything further left was written by the client and proves nothing). */
    ssize_t last = -1;
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_X_FORWARDED_FOR, i)) != -1;)
        last = i;
    for (ssize_t hdr = last; hdr >= 0; --hdr) {
        if (req->headers.entries[hdr].name != &H2O_TOKEN_X_FORWARDED_FOR->buf)
            continue;
        h2o_iovec_t v = req->headers.entries[hdr].value;
        size_t end = v.len;
        while (end > 0) {
            size_t start = end;
            while (start > 0 && v.base[start - 1] != ',')
                --start;
            uint8_t hop[16];
            if (parse_xff_item(v.base + start, end - start, hop) != 0)
                return 0; /* garbage: stay with the proxy's own address */
            memcpy(out, hop, 16);
            if (!trusted(server, hop))
                return 0;
            end = start > 0 ? start - 1 : 0;
        }
    }
    return 0;
}

const char *gw_peer_addr(h2o_req_t *req, char *buf, size_t len)
{
    uint8_t a[16];
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (gw_client_addr(req, a) != 0 || len < INET6_ADDRSTRLEN)
        snprintf(buf, len, "unknown");
    else if (memcmp(a, v4mapped, 12) == 0)
        inet_ntop(AF_INET, a + 12, buf, (socklen_t)len);
    else
        inet_ntop(AF_INET6, a, buf, (socklen_t)len);
    return buf;
}

/* ---- cookies ---- */

h2o_iovec_t gw_get_cookie(h2o_req_t *req, const char *name)
{
    size_t name_len = strlen(name);
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1;) {
        h2o_iovec_t v = req->headers.entries[i].value;
        const char *p = v.base, *end = v.base + v.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                ++p;
            const char *pair = p;
            while (p < end && *p != ';')
                ++p;
            const char *eq = memchr(pair, '=', (size_t)(p - pair));
            if (eq != NULL && (size_t)(eq - pair) == name_len && memcmp(pair, name, name_len) == 0) {
                const char *val = eq + 1;
                size_t vlen = (size_t)(p - val);
                while (vlen > 0 && val[vlen - 1] == ' ')
                    --vlen;
                return h2o_strdup(&req->pool, val, vlen);
            }
        }
    }
    return h2o_iovec_init(NULL, 0);
}

int gw_cookie_hash(h2o_req_t *req, const char *name, uint8_t out[STORE_HASH_LEN])
{
    h2o_iovec_t c = gw_get_cookie(req, name);
    if (c.base == NULL || c.len == 0 || c.len > 128)
        return 0;
    gw_sha256(c.base, c.len, out);
    return 1;
}

void gw_set_cookie(h2o_req_t *req, const char *name, const char *value, long max_age)
{
    char age[64] = "";
    if (max_age >= 0)
        snprintf(age, sizeof(age), "; Max-Age=%ld", max_age);
    h2o_iovec_t v = h2o_concat(&req->pool, h2o_iovec_init(name, strlen(name)), h2o_iovec_init(H2O_STRLIT("=")),
                               h2o_iovec_init(value, strlen(value)),
                               h2o_iovec_init(H2O_STRLIT("; Path=/; Secure; HttpOnly; SameSite=Lax")),
                               h2o_iovec_init(age, strlen(age)));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, v.base, v.len);
}

/* ---- forms and query strings ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes application/x-www-form-urlencoded text; returns NULL on a malformed escape or an embedded NUL. */
static char *url_decode(h2o_mem_pool_t *pool, const char *s, size_t len)
{
    char *out = h2o_mem_alloc_pool(pool, len + 1), *o = out;
    for (size_t i = 0; i < len; ++i) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return NULL;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0')
            return NULL;
        *o++ = c;
    }
    *o = '\0';
    return out;
}

static char *find_param(h2o_req_t *req, const char *s, size_t len, const char *name, size_t max_len)
{
    size_t name_len = strlen(name);
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *pair = p;
        while (p < end && *p != '&')
            ++p;
        const char *eq = memchr(pair, '=', (size_t)(p - pair));
        if (eq != NULL && (size_t)(eq - pair) == name_len && memcmp(pair, name, name_len) == 0) {
            size_t vlen = (size_t)(p - eq - 1);
            if (vlen > max_len * 3)
                return NULL;
            char *v = url_decode(&req->pool, eq + 1, vlen);
            if (v == NULL || strlen(v) > max_len)
                return NULL;
            return v;
        }
        if (p < end)
            ++p;
    }
    return NULL;
}

char *gw_form_get(h2o_req_t *req, h2o_iovec_t body, const char *name, size_t max_len)
{
    return find_param(req, body.base, body.len, name, max_len);
}

char *gw_query_get(h2o_req_t *req, const char *name, size_t max_len)
{
    if (req->query_at == SIZE_MAX)
        return NULL;
    return find_param(req, req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, name, max_len);
}

char *gw_url_encode(h2o_mem_pool_t *pool, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(s);
    char *out = h2o_mem_alloc_pool(pool, len * 3 + 1), *o = out;
    for (; *s != '\0'; ++s) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

/* ---- tokens and CSRF ---- */

void gw_sha256(const void *data, size_t len, uint8_t out[STORE_HASH_LEN])
{
    /* libsodium's one-shot SHA-256: ~10x fewer instructions than OpenSSL 3's SHA256(), which fetches the
     * algorithm on every call (measured with callgrind on the proxy hot path). */
    crypto_hash_sha256(out, data, len);
}

void gw_random_token(size_t bytes, char *out, size_t outlen, uint8_t hash[STORE_HASH_LEN])
{
    uint8_t raw[64];
    if (bytes > sizeof(raw) || RAND_bytes(raw, (int)bytes) != 1)
        abort(); /* no randomness: nothing safe to do */
    gw_base64url_encode(raw, bytes, out, outlen);
    OPENSSL_cleanse(raw, sizeof(raw));
    if (hash != NULL)
        gw_sha256(out, strlen(out), hash);
}

static const char *csrf_cookie_name(h2o_req_t *req)
{
    gw_server_t *server = gw_loop_of(req)->server;
    return h2o_concat(&req->pool, h2o_iovec_init(server->conf->session_cookie, strlen(server->conf->session_cookie)),
                      h2o_iovec_init(H2O_STRLIT(GW_CSRF_COOKIE_SUFFIX)))
        .base;
}

const char *gw_csrf_token(h2o_req_t *req)
{
    const char *name = csrf_cookie_name(req);
    h2o_iovec_t existing = gw_get_cookie(req, name);
    if (existing.base != NULL && existing.len >= 16 && existing.len <= 64)
        return existing.base;
    char *token = h2o_mem_alloc_pool(&req->pool, 64);
    gw_random_token(GW_CSRF_TOKEN_BYTES, token, 64, NULL);
    gw_set_cookie(req, name, token, -1);
    return token;
}

int gw_csrf_check(h2o_req_t *req, const char *form_token)
{
    h2o_iovec_t site = gw_get_header(req, "sec-fetch-site");
    if (site.base != NULL && h2o_lcstris(site.base, site.len, H2O_STRLIT("cross-site")))
        return -1;
    h2o_iovec_t cookie = gw_get_cookie(req, csrf_cookie_name(req));
    if (form_token == NULL || cookie.base == NULL || cookie.len < 16 || strlen(form_token) != cookie.len)
        return -1;
    return CRYPTO_memcmp(form_token, cookie.base, cookie.len) == 0 ? 0 : -1;
}
