/*
 * Configuration loader: one YAML file (libyaml document API, so every node keeps its line), validated
 * completely before anything uses it. Keys are described by one table (dotted path, kind, limits, field); the
 * walker checks every key of the file against it, so an unknown or misspelt key is an error, never ignored.
 * Errors read "FILE:LINE: KEY: message" and are all collected before giving up. Relative paths are resolved
 * against the directory of the file.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <yaml.h>

#include "gateway/config.h"

#ifndef PORTIER_SOURCE_DIR
#define PORTIER_SOURCE_DIR "."
#endif

#define MAX_BODY_LIMIT (64u * 1024 * 1024)
#define MAX_THREADS    256
#define MAX_LIST       64

enum kind {
    K_STR,
    K_PATH,
    K_FILE,
    K_SECRET_FILE,
    K_PORT,
    K_UINT,
    K_DURATION,
    K_BYTES,
    K_URL,
    K_HEADER,
    K_COOKIE,
    K_FILE_LIST,
    K_LOG,
    K_CIDR_LIST
};

typedef struct st_key_t {
    const char *path;
    enum kind kind;
    size_t offset;
    uint64_t min, max;
} key_t_;

#define F(field) offsetof(gw_config_t, field)
static const key_t_ keys[] = {
    {"server.listen.address", K_STR, F(listen_address), 0, 0},
    {"server.listen.port", K_PORT, F(listen_port), 1, 65535},
    {"server.http_redirect.address", K_STR, F(http_redirect_address), 0, 0},
    {"server.http_redirect.port", K_PORT, F(http_redirect_port), 1, 65535},
    {"server.public_url", K_URL, F(public_url), 0, 0},
    {"server.threads", K_UINT, F(threads), 0, MAX_THREADS},
    {"server.workers", K_UINT, F(workers), 0, MAX_THREADS},
    {"server.tls.certificate", K_FILE, F(tls_certificate), 0, 0},
    {"server.tls.key", K_SECRET_FILE, F(tls_key), 0, 0},
    {"server.access_log", K_LOG, F(access_log), 0, 0},
    {"server.max_request_body", K_BYTES, F(max_request_body), 1024, MAX_BODY_LIMIT},
    {"state_dir", K_PATH, F(state_dir), 0, 0},
    {"templates_dir", K_PATH, F(templates_dir), 0, 0},
    {"database.conninfo", K_STR, F(db_conninfo), 0, 0},
    {"database.pool_size", K_UINT, F(db_pool_size), 1, 256},
    {"session.idle_timeout", K_DURATION, F(session_idle_timeout), 1, 7 * 86400},
    {"session.absolute_timeout", K_DURATION, F(session_absolute_timeout), 1, 30 * 86400},
    {"session.cookie_name", K_COOKIE, F(session_cookie), 0, 0},
    {"login.password_min_length", K_UINT, F(password_min_length), 8, 128},
    {"login.invite_ttl", K_DURATION, F(invite_ttl), 60, 86400},
    {"login.reset_ttl", K_DURATION, F(reset_ttl), 60, 86400},
    {"login.password_min_length_mfa", K_UINT, F(password_min_length_mfa), 8, 128},
    {"login.pepper_file", K_PATH, F(pepper_file), 0, 0},
    {"login.blocklist", K_FILE, F(blocklist_file), 0, 0},
    {"login.dictionary", K_STR, F(dictionary_file), 0, 0},
    {"login.argon2.memory", K_BYTES, F(argon2_memory), 19u * 1024 * 1024, 1024u * 1024 * 1024},
    {"login.argon2.iterations", K_UINT, F(argon2_iterations), 2, 16},
    {"login.throttle.free_attempts", K_UINT, F(throttle_free), 1, 100000},
    {"login.throttle.max_delay", K_DURATION, F(throttle_max_delay), 1, 86400},
    {"login.throttle.hard_lock", K_UINT, F(throttle_hard_lock), 2, 1000000},
    {"login.spray.max_usernames", K_UINT, F(spray_max_usernames), 2, 100000},
    {"login.spray.window", K_DURATION, F(spray_window), 1, 86400},
    {"login.spray.block", K_DURATION, F(spray_block), 1, 86400},
    {"login.spray.same_password_usernames", K_UINT, F(spray_same_password), 2, 100000},
    {"organization", K_STR, F(organization), 0, 0},
    {"smtp.url", K_STR, F(smtp_url), 0, 0},
    {"smtp.from", K_STR, F(smtp_from), 0, 0},
    {"server.trusted_proxies", K_CIDR_LIST, F(trusted_proxies), 0, 0},
    {"identity.issuer", K_STR, F(jwt_issuer), 0, 0},
    {"identity.jwt_lifetime", K_DURATION, F(jwt_lifetime), 1, 300},
    {"identity.signing_key", K_SECRET_FILE, F(jwt_signing_key), 0, 0},
    {"identity.previous_keys", K_FILE_LIST, F(jwt_previous_keys), 0, 0},
    {"identity.headers.user", K_HEADER, F(hdr_user), 0, 0},
    {"identity.headers.email", K_HEADER, F(hdr_email), 0, 0},
    {"identity.headers.groups", K_HEADER, F(hdr_groups), 0, 0},
    {"identity.headers.jwt", K_HEADER, F(hdr_jwt), 0, 0},
};
#define NUM_KEYS (sizeof(keys) / sizeof(keys[0]))

typedef struct st_loader_t {
    gw_config_t *conf;
    gw_config_errors_t *errs;
    yaml_document_t doc;
    const char *file;
    char *dir;
    size_t lines[NUM_KEYS]; /* 1-based line of each key seen, 0 if absent */
    size_t routes_line;
} loader_t;

static void error_at(loader_t *l, size_t line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void error_at(loader_t *l, size_t line, const char *key, const char *fmt, ...)
{
    if (l->errs->count == GW_MAX_ERRORS)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char *out;
    if (asprintf(&out, "%s:%zu: %s: %s", l->file, line, key, msg) >= 0)
        l->errs->msgs[l->errs->count++] = out;
}

static size_t line_of(const yaml_node_t *n)
{
    return n->start_mark.line + 1;
}

static const char *scalar(const yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

int gw_parse_duration(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    uint64_t mult = 1;
    if (*end != '\0') {
        switch (*end) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        default: return -1;
        }
        if (end[1] != '\0')
            return -1;
    }
    if (v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

static int parse_bytes(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mult = 1;
    if (errno != 0)
        return -1;
    if (*end == 'k' || *end == 'K')
        mult = 1024, ++end;
    else if (*end == 'm' || *end == 'M')
        mult = 1024 * 1024, ++end;
    if (*end != '\0' || v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

static char *resolve(loader_t *l, const char *p)
{
    char *out;
    if (p[0] == '/')
        return strdup(p);
    return asprintf(&out, "%s/%s", l->dir, p) >= 0 ? out : NULL;
}

static int is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int valid_token(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; ++s)
        if (!is_token_char(*s))
            return 0;
    return 1;
}

static int check_file(loader_t *l, size_t line, const char *key, const char *path, int secret)
{
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        error_at(l, line, key, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        error_at(l, line, key, "%s is not a regular file", path);
        return -1;
    }
    if (secret && (st.st_mode & 077) != 0) {
        error_at(l, line, key, "%s is accessible by group/others (chmod 600)", path);
        return -1;
    }
    return 0;
}

static void set_value(loader_t *l, size_t ki, yaml_node_t *v)
{
    const key_t_ *k = &keys[ki];
    void *field = (char *)l->conf + k->offset;
    size_t line = line_of(v);
    const char *s = scalar(v);
    uint64_t n = 0;
    l->lines[ki] = line;

    if (k->kind == K_CIDR_LIST) {
        if (v->type != YAML_SEQUENCE_NODE) {
            error_at(l, line, k->path, "expected a list of addresses or networks (CIDR)");
            return;
        }
        size_t count = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start), out = 0;
        char **list = calloc(count + 1, sizeof(char *));
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; ++it) {
            yaml_node_t *item = yaml_document_get_node(&l->doc, *it);
            const char *c = scalar(item);
            if (c == NULL || gw_parse_cidr(c, NULL) != 0)
                error_at(l, line_of(item), k->path, "\"%s\" is not an address or CIDR network", c != NULL ? c : "");
            else
                list[out++] = strdup(c);
        }
        free(*(char ***)field);
        *(char ***)field = list;
        return;
    }
    if (k->kind == K_FILE_LIST) {
        if (v->type != YAML_SEQUENCE_NODE) {
            error_at(l, line, k->path, "expected a list of file names");
            return;
        }
        size_t count = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (count > MAX_LIST) {
            error_at(l, line, k->path, "too many entries (at most %d)", MAX_LIST);
            return;
        }
        char **list = calloc(count + 1, sizeof(char *));
        size_t out = 0;
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; ++it) {
            yaml_node_t *item = yaml_document_get_node(&l->doc, *it);
            const char *p = scalar(item);
            if (p == NULL || *p == '\0') {
                error_at(l, line_of(item), k->path, "expected a file name");
                continue;
            }
            list[out] = resolve(l, p);
            if (check_file(l, line_of(item), k->path, list[out], 0) == 0)
                ++out;
            else
                free(list[out]), list[out] = NULL;
        }
        *(char ***)field = list;
        return;
    }
    if (s == NULL) {
        error_at(l, line, k->path, "expected a single value");
        return;
    }
    switch (k->kind) {
    case K_STR:
    case K_LOG:
    case K_PATH:
    case K_FILE:
    case K_SECRET_FILE:
        if (*s == '\0') {
            error_at(l, line, k->path, "must not be empty");
            return;
        }
        free(*(char **)field);
        *(char **)field = (k->kind == K_STR || (k->kind == K_LOG && strcmp(s, "-") == 0)) ? strdup(s) : resolve(l, s);
        if (k->kind == K_FILE || k->kind == K_SECRET_FILE)
            check_file(l, line, k->path, *(char **)field, k->kind == K_SECRET_FILE);
        return;
    case K_URL: {
        const char *host = strncmp(s, "https://", 8) == 0 ? s + 8 : NULL;
        if (host == NULL || *host == '\0' || strpbrk(host, "/?#@\\ ") != NULL) {
            error_at(l, line, k->path, "must be https://host[:port] without a path");
            return;
        }
        free(*(char **)field);
        *(char **)field = strdup(s);
        return;
    }
    case K_HEADER:
    case K_COOKIE:
        if (!valid_token(s)) {
            error_at(l, line, k->path, "\"%s\" is not a valid %s name", s, k->kind == K_HEADER ? "header" : "cookie");
            return;
        }
        if (k->kind == K_COOKIE && strncmp(s, "__Host-", 7) != 0) {
            error_at(l, line, k->path, "must start with \"__Host-\" (bound to this host, Secure, Path=/)");
            return;
        }
        free(*(char **)field);
        *(char **)field = strdup(s);
        return;
    case K_PORT:
    case K_UINT:
    case K_DURATION:
    case K_BYTES: {
        int bad = k->kind == K_DURATION ? gw_parse_duration(s, &n) : k->kind == K_BYTES ? parse_bytes(s, &n) : -1;
        if (k->kind == K_PORT || k->kind == K_UINT) {
            char *end;
            errno = 0;
            n = (*s >= '0' && *s <= '9') ? strtoull(s, &end, 10) : 0;
            bad = (*s < '0' || *s > '9' || errno != 0 || *end != '\0') ? -1 : 0;
        }
        if (bad != 0) {
            error_at(l, line, k->path, "\"%s\" is not a valid %s", s,
                     k->kind == K_DURATION ? "duration (e.g. 90s, 30m, 12h, 1d)"
                     : k->kind == K_BYTES  ? "size (e.g. 1048576, 512k, 1m)"
                                           : "number");
            return;
        }
        if (n < k->min || n > k->max) {
            error_at(l, line, k->path, "%s is out of range (%llu..%llu%s)", s, (unsigned long long)k->min,
                     (unsigned long long)k->max, k->kind == K_DURATION ? " seconds" : "");
            return;
        }
        if (k->kind == K_PORT)
            *(uint16_t *)field = (uint16_t)n;
        else if (k->kind == K_BYTES)
            *(uint64_t *)field = n;
        else
            *(unsigned *)field = (unsigned)n;
        return;
    }
    default: return;
    }
}

int gw_parse_cidr(const char *s, gw_cidr_t *out)
{
    char addr[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof(addr))
        return -1;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    gw_cidr_t c = {0};
    unsigned max;
    if (inet_pton(AF_INET, addr, c.addr + 12) == 1) {
        c.addr[10] = c.addr[11] = 0xff; /* v4-mapped */
        c.family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, c.addr) == 1) {
        c.family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    c.bits = max;
    if (slash != NULL) {
        char *end;
        errno = 0;
        unsigned long bits = strtoul(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || errno != 0 || bits > max)
            return -1;
        c.bits = (unsigned)bits;
    }
    if (c.family == AF_INET)
        c.bits += 96;
    if (out != NULL)
        *out = c;
    return 0;
}

int gw_cidr_contains(const gw_cidr_t *net, const uint8_t addr16[16])
{
    unsigned full = net->bits / 8, rest = net->bits % 8;
    if (memcmp(net->addr, addr16, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (net->addr[full] & mask) == (addr16[full] & mask);
}

static int prefix_of_some_key(const char *path)
{
    size_t len = strlen(path);
    for (size_t i = 0; i != NUM_KEYS; ++i)
        if (strncmp(keys[i].path, path, len) == 0 && keys[i].path[len] == '.')
            return 1;
    return 0;
}

static void load_routes(loader_t *l, yaml_node_t *seq);

static void walk(loader_t *l, yaml_node_t *map, const char *prefix)
{
    if (map->type != YAML_MAPPING_NODE) {
        error_at(l, line_of(map), prefix[0] != '\0' ? prefix : "(top level)", "expected a mapping of keys");
        return;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; ++p) {
        yaml_node_t *kn = yaml_document_get_node(&l->doc, p->key), *vn = yaml_document_get_node(&l->doc, p->value);
        const char *k = scalar(kn);
        char path[256];
        if (k == NULL) {
            error_at(l, line_of(kn), prefix, "keys must be plain names");
            continue;
        }
        snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] != '\0' ? "." : "", k);
        if (prefix[0] == '\0' && strcmp(k, "routes") == 0) {
            l->routes_line = line_of(kn);
            load_routes(l, vn);
            continue;
        }
        size_t ki;
        for (ki = 0; ki != NUM_KEYS && strcmp(keys[ki].path, path) != 0; ++ki)
            ;
        if (ki != NUM_KEYS) {
            if (l->lines[ki] != 0)
                error_at(l, line_of(kn), path, "duplicate key (first set on line %zu)", l->lines[ki]);
            set_value(l, ki, vn);
        } else if (prefix_of_some_key(path)) {
            walk(l, vn, path);
        } else {
            error_at(l, line_of(kn), path, "unknown key");
        }
    }
}

static int valid_prefix(const char *p)
{
    size_t len = strlen(p);
    if (p[0] != '/' || strstr(p, "..") != NULL || strstr(p, "//") != NULL || strpbrk(p, "?#% \\") != NULL)
        return 0;
    return len == 1 || p[len - 1] != '/';
}

static int valid_backend(const char *b)
{
    if (strncmp(b, "http://", 7) != 0)
        return 0;
    const char *host = b + 7, *end = host + strcspn(host, "/");
    const char *colon = memchr(host, ':', (size_t)(end - host));
    if (host == end || colon == host || strpbrk(b, "?#@ \\") != NULL)
        return 0;
    if (colon != NULL) {
        char *e;
        unsigned long port = strtoul(colon + 1, &e, 10);
        if (e != end || port == 0 || port > 65535)
            return 0;
    }
    return 1;
}

static void load_routes(loader_t *l, yaml_node_t *seq)
{
    if (seq->type != YAML_SEQUENCE_NODE) {
        error_at(l, line_of(seq), "routes", "expected a list of routes");
        return;
    }
    size_t count = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (count > GW_MAX_ROUTES) {
        error_at(l, line_of(seq), "routes", "too many routes (at most %d)", GW_MAX_ROUTES);
        return;
    }
    l->conf->routes = calloc(count + 1, sizeof(gw_route_t));
    for (size_t i = 0; i != count; ++i) {
        yaml_node_t *rn = yaml_document_get_node(&l->doc, seq->data.sequence.items.start[i]);
        gw_route_t *r = &l->conf->routes[l->conf->num_routes++];
        char key[64];
        r->groups = calloc(1, sizeof(char *));
        if (rn->type != YAML_MAPPING_NODE) {
            snprintf(key, sizeof(key), "routes[%zu]", i);
            error_at(l, line_of(rn), key, "expected a mapping (prefix, backend, name, groups, mfa)");
            continue;
        }
        for (yaml_node_pair_t *p = rn->data.mapping.pairs.start; p < rn->data.mapping.pairs.top; ++p) {
            yaml_node_t *kn = yaml_document_get_node(&l->doc, p->key), *vn = yaml_document_get_node(&l->doc, p->value);
            const char *k = scalar(kn), *v = scalar(vn);
            snprintf(key, sizeof(key), "routes[%zu].%s", i, k != NULL ? k : "?");
            if (k != NULL && strcmp(k, "groups") == 0) {
                if (vn->type != YAML_SEQUENCE_NODE) {
                    error_at(l, line_of(vn), key, "expected a list of group names");
                    continue;
                }
                size_t n = (size_t)(vn->data.sequence.items.top - vn->data.sequence.items.start);
                free(r->groups);
                r->groups = calloc(n + 1, sizeof(char *));
                for (size_t g = 0; g != n; ++g) {
                    yaml_node_t *gn = yaml_document_get_node(&l->doc, vn->data.sequence.items.start[g]);
                    const char *gs = scalar(gn);
                    if (gs == NULL || *gs == '\0')
                        error_at(l, line_of(gn), key, "expected a group name");
                    else
                        r->groups[r->num_groups++] = strdup(gs);
                }
                continue;
            }
            if (v == NULL) {
                error_at(l, line_of(vn), key, "expected a single value");
                continue;
            }
            if (k != NULL && strcmp(k, "prefix") == 0) {
                if (!valid_prefix(v))
                    error_at(l, line_of(vn), key,
                             "\"%s\" must start with '/', have no trailing '/', '..', '//', '?', '#', '%%'", v);
                else
                    r->prefix = strdup(v);
            } else if (k != NULL && strcmp(k, "backend") == 0) {
                if (!valid_backend(v))
                    error_at(l, line_of(vn), key,
                             "\"%s\" must be http://host[:port][/path] (https upstreams are "
                             "not supported)",
                             v);
                else
                    r->backend = strdup(v);
            } else if (k != NULL && strcmp(k, "name") == 0) {
                if (*v == '\0' || strlen(v) > 128 || strpbrk(v, "\"\\\n") != NULL)
                    error_at(l, line_of(vn), key, "must be 1-128 characters without quotes or backslashes");
                else
                    r->name = strdup(v);
            } else if (k != NULL && strcmp(k, "mfa") == 0) {
                if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0)
                    r->require_mfa = 1;
                else if (strcmp(v, "false") != 0 && strcmp(v, "no") != 0)
                    error_at(l, line_of(vn), key, "expected true or false");
            } else {
                error_at(l, line_of(kn), key, "unknown key");
            }
        }
        snprintf(key, sizeof(key), "routes[%zu]", i);
        if (r->prefix == NULL)
            error_at(l, line_of(rn), key, "prefix is required");
        if (r->backend == NULL)
            error_at(l, line_of(rn), key, "backend is required");
        if (r->prefix != NULL && r->name == NULL)
            r->name = strdup(r->prefix);
        for (size_t j = 0; r->prefix != NULL && j != i; ++j)
            if (l->conf->routes[j].prefix != NULL && strcmp(l->conf->routes[j].prefix, r->prefix) == 0)
                error_at(l, line_of(rn), key, "duplicate prefix \"%s\" (also routes[%zu])", r->prefix, j);
    }
}

static char *dup_default(char *v, const char *def)
{
    return v != NULL ? v : strdup(def);
}

static void apply_defaults_and_check(loader_t *l)
{
    gw_config_t *c = l->conf;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c->listen_address = dup_default(c->listen_address, "0.0.0.0");
    if (c->listen_port == 0)
        c->listen_port = 8443;
    c->http_redirect_address = dup_default(c->http_redirect_address, c->listen_address);
    if (c->public_url == NULL && asprintf(&c->public_url, "https://localhost:%u", c->listen_port) < 0)
        c->public_url = NULL;
    if (c->threads == 0)
        c->threads = cores > 0 ? (unsigned)cores : 1;
    if (c->workers == 0)
        c->workers = cores > 0 ? (unsigned)cores : 1;
    if (c->max_request_body == 0)
        c->max_request_body = 1024 * 1024;
    c->state_dir = dup_default(c->state_dir, l->dir);
    c->templates_dir = dup_default(c->templates_dir, PORTIER_SOURCE_DIR "/templates");
    if (c->db_pool_size == 0)
        c->db_pool_size = c->workers;
    if (c->session_idle_timeout == 0)
        c->session_idle_timeout = 1800;
    if (c->session_absolute_timeout == 0)
        c->session_absolute_timeout = 43200;
    c->session_cookie = dup_default(c->session_cookie, "__Host-portier");
    if (c->password_min_length == 0)
        c->password_min_length = 15;
    if (c->invite_ttl == 0)
        c->invite_ttl = 86400;
    if (c->reset_ttl == 0)
        c->reset_ttl = 3600;
    if (c->password_min_length_mfa == 0)
        c->password_min_length_mfa = c->password_min_length < 8 ? c->password_min_length : 8;
    if (c->pepper_file == NULL && asprintf(&c->pepper_file, "%s/pepper.key", c->state_dir) < 0)
        c->pepper_file = NULL;
    c->blocklist_file = dup_default(c->blocklist_file, PORTIER_SOURCE_DIR "/conf/blocklist.txt");
    c->dictionary_file =
        dup_default(c->dictionary_file, access("/usr/share/dict/words", R_OK) == 0 ? "/usr/share/dict/words" : "");
    if (c->argon2_memory == 0)
        c->argon2_memory = 19u * 1024 * 1024;
    if (c->argon2_iterations == 0)
        c->argon2_iterations = 2;
    if (c->throttle_free == 0)
        c->throttle_free = 5;
    if (c->throttle_max_delay == 0)
        c->throttle_max_delay = 900;
    if (c->throttle_hard_lock == 0)
        c->throttle_hard_lock = 100;
    if (c->spray_max_usernames == 0)
        c->spray_max_usernames = 20;
    if (c->spray_window == 0)
        c->spray_window = 600;
    if (c->spray_block == 0)
        c->spray_block = 900;
    if (c->spray_same_password == 0)
        c->spray_same_password = 10;
    if (c->trusted_proxies == NULL)
        c->trusted_proxies = calloc(1, sizeof(char *));
    c->jwt_issuer = dup_default(c->jwt_issuer, c->public_url);
    if (c->jwt_lifetime == 0)
        c->jwt_lifetime = 60;
    if (c->jwt_previous_keys == NULL)
        c->jwt_previous_keys = calloc(1, sizeof(char *));
    c->hdr_user = dup_default(c->hdr_user, "X-Portier-User");
    c->hdr_email = dup_default(c->hdr_email, "X-Portier-Email");
    c->hdr_groups = dup_default(c->hdr_groups, "X-Portier-Groups");
    c->hdr_jwt = dup_default(c->hdr_jwt, "X-Portier-Jwt-Assertion");

    static const struct {
        const char *path;
        size_t offset;
    } required[] = {{"server.tls.certificate", F(tls_certificate)},
                    {"server.tls.key", F(tls_key)},
                    {"database.conninfo", F(db_conninfo)},
                    {"identity.signing_key", F(jwt_signing_key)}};
    for (size_t i = 0; i != sizeof(required) / sizeof(required[0]); ++i) {
        size_t ki;
        for (ki = 0; strcmp(keys[ki].path, required[i].path) != 0; ++ki)
            ;
        if (l->lines[ki] == 0)
            error_at(l, 1, required[i].path, "is required");
    }
    if (c->num_routes == 0 && l->routes_line == 0)
        error_at(l, 1, "routes", "at least one route is required");
    size_t idle_line = 1;
    for (size_t ki = 0; ki != NUM_KEYS; ++ki)
        if (strcmp(keys[ki].path, "session.idle_timeout") == 0 && l->lines[ki] != 0)
            idle_line = l->lines[ki];
    if (c->session_idle_timeout > c->session_absolute_timeout)
        error_at(l, idle_line, "session.idle_timeout", "must not exceed session.absolute_timeout");
    if (c->http_redirect_port != 0 && c->http_redirect_port == c->listen_port &&
        strcmp(c->http_redirect_address, c->listen_address) == 0)
        error_at(l, 1, "server.http_redirect.port", "must differ from server.listen.port");
}

int gw_config_load_buffer(gw_config_t *conf, const char *path, const char *yaml, size_t len, gw_config_errors_t *errs)
{
    loader_t l = {.conf = conf, .errs = errs, .file = path};
    yaml_parser_t parser;
    memset(conf, 0, sizeof(*conf));

    char *abs = realpath(path, NULL);
    conf->path = abs != NULL ? abs : strdup(path);
    const char *slash = strrchr(conf->path, '/');
    l.dir = slash == NULL         ? strdup(".")
            : slash == conf->path ? strdup("/")
                                  : strndup(conf->path, (size_t)(slash - conf->path));

    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &l.doc)) {
        error_at(&l, parser.problem_mark.line + 1, "(syntax)", "%s%s%s",
                 parser.problem != NULL ? parser.problem : "invalid YAML", parser.context != NULL ? " " : "",
                 parser.context != NULL ? parser.context : "");
        yaml_parser_delete(&parser);
        free(l.dir);
        gw_config_dispose(conf);
        return -1;
    }
    yaml_parser_delete(&parser);
    yaml_node_t *root = yaml_document_get_root_node(&l.doc);
    if (root == NULL)
        error_at(&l, 1, "(top level)", "the file is empty");
    else
        walk(&l, root, "");
    apply_defaults_and_check(&l);
    yaml_document_delete(&l.doc);
    free(l.dir);
    if (errs->count != 0) {
        gw_config_dispose(conf);
        return -1;
    }
    return 0;
}

int gw_config_load(gw_config_t *conf, const char *path, gw_config_errors_t *errs)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        memset(conf, 0, sizeof(*conf));
        char *msg;
        if (errs->count < GW_MAX_ERRORS && asprintf(&msg, "%s:0: (file): %s", path, strerror(errno)) >= 0)
            errs->msgs[errs->count++] = msg;
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[8192];
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0 && len + n <= 1024 * 1024) {
        if (len + n > cap) {
            cap = (len + n) * 2;
            buf = realloc(buf, cap);
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(fp);
    int rc = gw_config_load_buffer(conf, path, buf != NULL ? buf : "", len, errs);
    free(buf);
    return rc;
}

void gw_config_dispose(gw_config_t *c)
{
    char **strs[] = {&c->path,
                     &c->listen_address,
                     &c->http_redirect_address,
                     &c->public_url,
                     &c->tls_certificate,
                     &c->tls_key,
                     &c->access_log,
                     &c->state_dir,
                     &c->templates_dir,
                     &c->db_conninfo,
                     &c->session_cookie,
                     &c->jwt_issuer,
                     &c->jwt_signing_key,
                     &c->hdr_user,
                     &c->hdr_email,
                     &c->hdr_groups,
                     &c->hdr_jwt,
                     &c->organization,
                     &c->pepper_file,
                     &c->blocklist_file,
                     &c->dictionary_file,
                     &c->smtp_url,
                     &c->smtp_from};
    for (size_t i = 0; i != sizeof(strs) / sizeof(strs[0]); ++i) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    for (char **k = c->jwt_previous_keys; k != NULL && *k != NULL; ++k)
        free(*k);
    free(c->jwt_previous_keys);
    for (char **k = c->trusted_proxies; k != NULL && *k != NULL; ++k)
        free(*k);
    free(c->trusted_proxies);
    for (size_t i = 0; i != c->num_routes; ++i) {
        gw_route_t *r = &c->routes[i];
        free(r->prefix);
        free(r->backend);
        free(r->name);
        for (size_t g = 0; g != r->num_groups; ++g)
            free(r->groups[g]);
        free(r->groups);
    }
    free(c->routes);
    memset(c, 0, sizeof(*c));
}

void gw_config_errors_dispose(gw_config_errors_t *errs)
{
    for (size_t i = 0; i != errs->count; ++i)
        free(errs->msgs[i]);
    errs->count = 0;
}
