/*
 * Configuration loader: one YAML file (libyaml document API, so every node keeps its line), validated
 * completely before anything uses it. Scalar keys are described by one table (dotted path, kind, limits,
 * field); the walker checks every key of the file against it, so an unknown or misspelt key is an error, never
 * ignored. `routes` is the one list of mappings and has its own walker. Errors read "FILE:LINE: KEY: message"
 * and are all collected (up to GW_MAX_ERRORS) before giving up; on any error nothing is returned half-loaded.
 * Relative paths are resolved against the directory of the file; key files are opened and their modes checked.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, memmem, strndup, explicit_bzero (CMake defines it for the whole tree) */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "gateway/config.h"
#include "saml/saml.h"

#ifndef PORTIER_SOURCE_DIR
#define PORTIER_SOURCE_DIR "."
#endif

#define MAX_FILE_SIZE        (1024 * 1024) /* a configuration file larger than this is refused */
#define MAX_BODY_LIMIT       (64u * 1024 * 1024)
#define MIN_BODY_LIMIT       1024u
#define MAX_THREADS          256
#define MAX_LIST             64   /* previous_keys, groups of one route */
#define MAX_STRING           4096 /* any single string value */
#define MAX_PREFIX           512
#define MAX_ROUTE_NAME       128
#define MAX_GROUP_NAME       64 /* same rule as the CLI: letters, digits, '.', '_', '-', '@' */
#define MAX_HEADER_NAME      64
#define MAX_COOKIE_NAME      64
#define KEY_SNIFF_BYTES      65536 /* how much of a previous key file is searched for "PRIVATE KEY" */
#define MAX_SECTIONS         16
#define MAX_BACKEND_PORT     65534 /* h2o 2.2.5's URL parser refuses 65535 (and the proxy would abort at start) */
#define MAX_PATH_KEY         128
#define COOKIE_PREFIX        "__Host-"
#define SECRET_MODE_BITS     077
#define DEFAULT_PEPPER_FILE  "pepper.key"            /* in state_dir */
#define DEFAULT_MFA_KEY_FILE "mfa.key"               /* in state_dir */
#define DEFAULT_DICTIONARY   "/usr/share/dict/words" /* used when readable */

enum kind {
    K_STR,         /* non-empty string without control characters */
    K_ADDR,        /* numeric IPv4 or IPv6 address */
    K_PATH,        /* path, resolved against the config directory */
    K_LOG,         /* path, or "-" for stderr */
    K_FILE,        /* readable regular file */
    K_SECRET_FILE, /* readable regular file, no group/other permission bits */
    K_FILE_LIST,   /* list of readable files; those holding a private key must be 0600 */
    K_OPT_FILE,    /* readable regular file, or "" for none */
    K_SECRET_PATH, /* private file created on first use: if it exists, regular with no group/other bits */
    K_CIDR_LIST,   /* list of addresses or networks (gw_parse_cidr), never a /0 */
    K_NAME_LIST,   /* list of group names */
    K_BOOL,        /* true/false/yes/no into an int */
    K_PORT,        /* 1..65535 */
    K_UINT,        /* decimal integer in [min, max] */
    K_DURATION,    /* gw_parse_duration, in [min, max] seconds */
    K_BYTES,       /* bytes with optional k/m suffix, in [min, max] */
    K_ORIGIN,      /* https://host[:port] */
    K_HEADER,      /* HTTP header name, not one portier or the proxy owns */
    K_COOKIE       /* cookie name starting with __Host- */
};

typedef struct st_key_t {
    const char *path;
    enum kind kind;
    size_t offset;
    uint64_t min, max;
} key_t_;

#define F(field) offsetof(gw_config_t, field)
static const key_t_ keys[] = {
    {"server.listen.address", K_ADDR, F(listen_address), 0, 0},
    {"server.listen.port", K_PORT, F(listen_port), 1, 65535},
    {"server.http_redirect.address", K_ADDR, F(http_redirect_address), 0, 0},
    {"server.http_redirect.port", K_PORT, F(http_redirect_port), 1, 65535},
    {"server.public_url", K_ORIGIN, F(public_url), 0, 0},
    {"server.threads", K_UINT, F(threads), 0, MAX_THREADS},
    {"server.workers", K_UINT, F(workers), 0, MAX_THREADS},
    {"server.tls.certificate", K_FILE, F(tls_certificate), 0, 0},
    {"server.tls.key", K_SECRET_FILE, F(tls_key), 0, 0},
    {"server.access_log", K_LOG, F(access_log), 0, 0},
    {"server.max_request_body", K_BYTES, F(max_request_body), MIN_BODY_LIMIT, MAX_BODY_LIMIT},
    {"state_dir", K_PATH, F(state_dir), 0, 0},
    {"templates_dir", K_PATH, F(templates_dir), 0, 0},
    {"database.conninfo", K_STR, F(db_conninfo), 0, 0},
    {"database.admin_conninfo", K_STR, F(db_admin_conninfo), 0, 0},
    {"database.pool_size", K_UINT, F(db_pool_size), 1, MAX_THREADS},
    {"session.idle_timeout", K_DURATION, F(session_idle_timeout), 1, 7 * 86400},
    {"session.absolute_timeout", K_DURATION, F(session_absolute_timeout), 1, 30 * 86400},
    {"session.cookie_name", K_COOKIE, F(session_cookie), 0, 0},
    {"login.password_min_length", K_UINT, F(password_min_length), 8, 128},
    {"login.invite_ttl", K_DURATION, F(invite_ttl), 60, 86400},
    {"login.reset_ttl", K_DURATION, F(reset_ttl), 60, 86400},
    {"login.password_min_length_mfa", K_UINT, F(password_min_length_mfa), 8, 128},
    {"login.pepper_file", K_SECRET_PATH, F(pepper_file), 0, 0},
    {"login.blocklist", K_FILE, F(blocklist_file), 0, 0},
    {"login.dictionary", K_OPT_FILE, F(dictionary_file), 0, 0},
    {"login.argon2.memory", K_BYTES, F(argon2_memory), 19u * 1024 * 1024, 1024u * 1024 * 1024},
    {"login.argon2.iterations", K_UINT, F(argon2_iterations), 2, 16},
    {"login.throttle.free_attempts", K_UINT, F(throttle_free), 1, 100},
    {"login.throttle.max_delay", K_DURATION, F(throttle_max_delay), 1, 86400},
    {"login.throttle.hard_lock", K_UINT, F(throttle_hard_lock), 2, 100000},
    {"login.spray.max_usernames", K_UINT, F(spray_max_usernames), 2, 100000},
    {"login.spray.window", K_DURATION, F(spray_window), 1, 86400},
    {"login.spray.block", K_DURATION, F(spray_block), 1, 86400},
    {"login.spray.same_password_usernames", K_UINT, F(spray_same_password), 2, 100000},
    {"organization", K_STR, F(organization), 0, 0},
    {"server.http2", K_BOOL, F(http2), 0, 1},
    {"scim.accept_passwords", K_BOOL, F(scim_accept_passwords), 0, 1},
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
    {"mfa.key_file", K_SECRET_PATH, F(mfa_key_file), 0, 0},
    {"mfa.required_groups", K_NAME_LIST, F(mfa_required_groups), 0, 0},
    {"mfa.issuer", K_STR, F(mfa_issuer), 0, 0},
    {"mfa.totp.algorithm", K_STR, F(mfa_algorithm), 0, 0},
    {"mfa.totp.digits", K_UINT, F(mfa_digits), 6, 8},
    {"mfa.totp.period", K_DURATION, F(mfa_period), 15, 120},
    {"mfa.totp.window", K_UINT, F(mfa_window), 0, 10},
    {"mfa.hotp.lookahead", K_UINT, F(mfa_hotp_lookahead), 1, 100},
    {"mfa.recovery_codes", K_UINT, F(mfa_recovery_codes), 5, 20},
};
#define NUM_KEYS (sizeof(keys) / sizeof(keys[0]))

typedef struct st_loader_t {
    gw_config_t *conf;
    gw_config_errors_t *errs;
    yaml_document_t doc;
    const char *file;       /* as given by the caller: used in messages */
    char *dir;              /* absolute directory of the file */
    size_t lines[NUM_KEYS]; /* 1-based line of each key seen, 0 if absent */
    struct {
        char path[MAX_PATH_KEY];
        size_t line;
    } sections[MAX_SECTIONS]; /* mappings seen ("server", "server.tls", ...), for duplicate and missing keys */
    size_t num_sections;
    size_t routes_line;
    int oom;
} loader_t;

/* ---- errors ---- */

static void error_at(loader_t *l, size_t line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void error_at(loader_t *l, size_t line, const char *key, const char *fmt, ...)
{
    if (l->errs->count >= GW_MAX_ERRORS)
        return;
    char msg[2048], *out;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    if (asprintf(&out, "%s:%zu: %s: %s", l->file, line, key, msg) < 0) {
        l->oom = 1;
        return;
    }
    l->errs->msgs[l->errs->count++] = out;
}

/* Once the error list is full, walking further only costs time (a hostile file can alias one big node often). */
static int full(const loader_t *l)
{
    return l->errs->count >= GW_MAX_ERRORS || l->oom;
}

static char *xstrdup(loader_t *l, const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        l->oom = 1;
    return d;
}

static void *xcalloc(loader_t *l, size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        l->oom = 1;
    return p;
}

/* ---- nodes ---- */

static size_t line_of(const yaml_node_t *n)
{
    return n->start_mark.line + 1;
}

static yaml_node_t *node(loader_t *l, int id)
{
    return yaml_document_get_node(&l->doc, id);
}

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

/* A plain empty, "~" or "null" scalar: YAML's null. */
static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)n->data.scalar.value;
    return *s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

/* The value of a scalar node, or NULL after reporting why it is not one (a list, a mapping, a NUL byte). */
static const char *scalar(loader_t *l, const yaml_node_t *n, const char *key)
{
    if (n->type != YAML_SCALAR_NODE) {
        error_at(l, line_of(n), key, "expected a single value, not a %s",
                 n->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
        return NULL;
    }
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length) {
        error_at(l, line_of(n), key, "contains a NUL character");
        return NULL;
    }
    if (n->data.scalar.length > MAX_STRING) {
        error_at(l, line_of(n), key, "is longer than %d bytes", MAX_STRING);
        return NULL;
    }
    return s;
}

/* ---- value parsers ---- */

static int parse_digits(const char *s, uint64_t *out, char **end)
{
    if (*s < '0' || *s > '9') /* strtoull would accept blanks, '+' and '-' */
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, end, 10);
    if (errno != 0)
        return -1;
    *out = v;
    return 0;
}

int gw_parse_duration(const char *s, uint64_t *out)
{
    uint64_t v, mult;
    char *end;
    if (s == NULL || parse_digits(s, &v, &end) != 0)
        return -1;
    switch (*end) {
    case '\0': mult = 1; break;
    case 's': mult = 1; break;
    case 'm': mult = 60; break;
    case 'h': mult = 3600; break;
    case 'd': mult = 86400; break;
    default: return -1;
    }
    if (*end != '\0' && end[1] != '\0')
        return -1;
    if (v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

static int parse_bytes(const char *s, uint64_t *out)
{
    uint64_t v, mult = 1;
    char *end;
    if (parse_digits(s, &v, &end) != 0)
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

static int parse_uint(const char *s, uint64_t *out)
{
    char *end;
    return parse_digits(s, out, &end) == 0 && *end == '\0' ? 0 : -1;
}

/* true/false/yes/no in any case; -1 for anything else. */
static int parse_bool(const char *s)
{
    if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0)
        return 1;
    if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0)
        return 0;
    return -1;
}

static int has_control(const char *s)
{
    for (; *s != '\0'; ++s)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static int is_tchar(char c) /* RFC 9110 token character (also RFC 6265 cookie-name) */
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int valid_token(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len == 0 || len > max)
        return 0;
    for (; *s != '\0'; ++s)
        if (!is_tchar(*s))
            return 0;
    return 1;
}

static int valid_group_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > MAX_GROUP_NAME)
        return 0;
    for (; *s != '\0'; ++s)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("._-@", *s) != NULL))
            return 0;
    return 1;
}

/* host (DNS name or IPv4) or [IPv6], then optionally ":port" (1..max_port), over [s, end). 0 or -1. */
static int valid_authority(const char *s, const char *end, int port_required, unsigned max_port)
{
    const char *p = s;
    if (p < end && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        char v6[INET6_ADDRSTRLEN];
        struct in6_addr a;
        if (close == NULL || (size_t)(close - p - 1) >= sizeof(v6))
            return -1;
        memcpy(v6, p + 1, (size_t)(close - p - 1));
        v6[close - p - 1] = '\0';
        if (inet_pton(AF_INET6, v6, &a) != 1)
            return -1;
        p = close + 1;
    } else {
        const char *h = p;
        while (p < end && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                           *p == '-' || *p == '.'))
            ++p;
        if (p == h || *h == '.' || *h == '-')
            return -1;
    }
    if (p == end)
        return port_required ? -1 : 0;
    if (*p != ':' || p + 1 == end || end - (p + 1) > 5)
        return -1;
    unsigned port = 0;
    for (++p; p < end; ++p) {
        if (*p < '0' || *p > '9')
            return -1;
        port = port * 10 + (unsigned)(*p - '0');
    }
    return port >= 1 && port <= max_port ? 0 : -1;
}

/* https://host[:port], with at most a lone trailing '/'; *len gets the length without that slash. */
static int valid_origin(const char *s, size_t *len)
{
    static const char scheme[] = "https://";
    size_t n = strlen(s);
    if (strncmp(s, scheme, sizeof(scheme) - 1) != 0)
        return -1;
    if (n > sizeof(scheme) - 1 && s[n - 1] == '/')
        --n;
    *len = n;
    return valid_authority(s + sizeof(scheme) - 1, s + n, 0, 65535);
}

/* Why a backend URL is refused, or NULL: http://host:port[/path], nothing else. */
static const char *backend_problem(const char *b)
{
    static const char scheme[] = "http://";
    if (strncasecmp(b, "https://", 8) == 0)
        return "https backends are not supported (the upstream client speaks plain HTTP/1.1); use http://";
    if (strncmp(b, scheme, sizeof(scheme) - 1) != 0)
        return "must be http://host:port[/path]";
    const char *host = b + sizeof(scheme) - 1, *path = host + strcspn(host, "/");
    if (valid_authority(host, path, 1, MAX_BACKEND_PORT) != 0)
        return "must be http://host:port[/path] with a host name or address and a port 1-65534";
    for (const char *p = path; *p != '\0'; ++p)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("?#\\", *p) != NULL)
            return "the path must not contain a query, a fragment, blanks or backslashes";
    if (strstr(path, "..") != NULL)
        return "the path must not contain \"..\"";
    return NULL;
}

/* Why a route prefix is refused, or NULL. */
static const char *prefix_problem(const char *p)
{
    size_t len = strlen(p);
    if (p[0] != '/')
        return "must start with '/'";
    if (len > MAX_PREFIX)
        return "is too long";
    if (strchr(p, '?') != NULL || strchr(p, '#') != NULL)
        return "must not contain a query or fragment";
    if (strstr(p, "..") != NULL)
        return "must not contain \"..\"";
    if (strstr(p, "//") != NULL)
        return "must not contain \"//\"";
    for (const char *c = p; *c != '\0'; ++c) /* RFC 3986 pchar without percent-encoding */
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              strchr("/-._~!$&'()*+,;=:@", *c) != NULL))
            return "may only contain letters, digits and -._~!$&'()*+,;=:@/ (no percent-encoding or blanks)";
    if (len > 1 && p[len - 1] == '/')
        return "must not end with '/' (\"/app\" already covers \"/app/...\")";
    return NULL;
}

/* Identity header names must not collide with headers that HTTP, the proxy or the session machinery own. */
static int reserved_header(const char *name)
{
    static const char *const reserved[] = {"host",
                                           "cookie",
                                           "set-cookie",
                                           "authorization",
                                           "proxy-authorization",
                                           "content-length",
                                           "content-type",
                                           "transfer-encoding",
                                           "connection",
                                           "keep-alive",
                                           "te",
                                           "trailer",
                                           "upgrade",
                                           "expect",
                                           "forwarded",
                                           "via",
                                           "x-forwarded-for",
                                           "x-forwarded-host",
                                           "x-forwarded-proto",
                                           "x-real-ip",
                                           NULL};
    for (const char *const *r = reserved; *r != NULL; ++r)
        if (strcasecmp(name, *r) == 0)
            return 1;
    return 0;
}

/* ---- addresses and networks ---- */

int gw_parse_cidr(const char *s, gw_cidr_t *out)
{
    char addr[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t len = slash != NULL ? (size_t)(slash - s) : strlen(s);
    gw_cidr_t net = {{0}};
    uint64_t bits;
    char *end;

    if (len == 0 || len >= sizeof(addr))
        return -1;
    memcpy(addr, s, len);
    addr[len] = '\0';
    if (inet_pton(AF_INET, addr, net.addr + 12) == 1) {
        net.family = AF_INET;
        net.addr[10] = net.addr[11] = 0xff; /* ::ffff:a.b.c.d */
    } else if (inet_pton(AF_INET6, addr, net.addr) == 1) {
        net.family = AF_INET6;
    } else {
        return -1;
    }
    unsigned max = net.family == AF_INET ? 32 : 128;
    if (slash == NULL)
        bits = max;
    else if (parse_digits(slash + 1, &bits, &end) != 0 || *end != '\0' || bits > max || end - (slash + 1) > 3)
        return -1;
    net.bits = (unsigned)bits + (net.family == AF_INET ? 96 : 0);
    for (unsigned i = net.bits; i != 128; ++i) /* no host bits below the prefix: "10.0.0.1/8" is a typo */
        if (net.addr[i / 8] & (0x80 >> (i % 8)))
            return -1;
    if (out != NULL)
        *out = net;
    return 0;
}

int gw_cidr_contains(const gw_cidr_t *net, const uint8_t addr16[16])
{
    unsigned full_bytes = net->bits / 8, rest = net->bits % 8;
    if (memcmp(net->addr, addr16, full_bytes) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (net->addr[full_bytes] & mask) == (addr16[full_bytes] & mask);
}

/* ---- paths and files ---- */

static char *resolve(loader_t *l, const char *p)
{
    char *out;
    if (p[0] == '/')
        return xstrdup(l, p);
    if (asprintf(&out, "%s/%s", l->dir, p) < 0) {
        l->oom = 1;
        return NULL;
    }
    return out;
}

/* Opens `path` for reading (so ACLs and root are judged as the kernel judges them) and checks its type and,
 * for private keys, its mode. With sniff = 1 the mode is checked only if the file holds a private key. */
static int check_file(loader_t *l, size_t line, const char *key, const char *path, int secret, int sniff)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), ret = -1;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        error_at(l, line, key, "%s: %s", path, strerror(errno));
        goto exit;
    }
    if (!S_ISREG(st.st_mode)) {
        error_at(l, line, key, "%s is not a regular file", path);
        goto exit;
    }
    if (sniff) {
        char *buf = malloc(KEY_SNIFF_BYTES);
        ssize_t n = buf != NULL ? read(fd, buf, KEY_SNIFF_BYTES) : -1;
        secret = n > 0 && memmem(buf, (size_t)n, "PRIVATE KEY", 11) != NULL;
        if (buf != NULL) {
            explicit_bzero(buf, KEY_SNIFF_BYTES);
            free(buf);
        }
    }
    if (secret && (st.st_mode & SECRET_MODE_BITS) != 0) {
        error_at(l, line, key, "%s is accessible by group/others (chmod 600)", path);
        goto exit;
    }
    ret = 0;
exit:
    if (fd >= 0)
        close(fd);
    return ret;
}

/* ---- scalar keys ---- */

static void set_string(char **field, char *value)
{
    free(*field);
    *field = value;
}

static void free_list(char **list)
{
    for (char **p = list; p != NULL && *p != NULL; ++p)
        free(*p);
    free(list);
}

/* One entry of a K_CIDR_LIST: a copy of `s`, or NULL after reporting why not. */
static char *cidr_entry(loader_t *l, const key_t_ *k, const char *s, size_t line)
{
    gw_cidr_t net;
    if (gw_parse_cidr(s, &net) != 0) {
        error_at(l, line, k->path, "\"%.80s\" is not an address or network (e.g. 10.0.0.5, 10.0.0.0/8, fd00::/8)", s);
        return NULL;
    }
    if (net.bits == (net.family == AF_INET ? 96u : 0u)) {
        error_at(l, line, k->path, "\"%.80s\" would trust every client", s);
        return NULL;
    }
    return xstrdup(l, s);
}

/* One entry of a K_FILE_LIST: the resolved path, or NULL after reporting why not. */
static char *file_entry(loader_t *l, const key_t_ *k, const char *s, size_t line)
{
    char *path = resolve(l, s);
    if (path != NULL && check_file(l, line, k->path, path, 0, 1) != 0) {
        free(path);
        return NULL;
    }
    return path;
}

/* One entry of a K_NAME_LIST: a copy of `s`, or NULL after reporting why not. */
static char *name_entry(loader_t *l, const key_t_ *k, const char *s, size_t line)
{
    if (!valid_group_name(s)) {
        error_at(l, line, k->path, "\"%.80s\" is not a group name (1-64 letters, digits, '.', '_', '-', '@')", s);
        return NULL;
    }
    return xstrdup(l, s);
}

/* A list of strings (NULL-terminated; null or [] = empty), each entry checked according to the kind. */
static void set_list(loader_t *l, const key_t_ *k, char ***field, yaml_node_t *v)
{
    const char *what = k->kind == K_CIDR_LIST   ? "addresses or networks"
                       : k->kind == K_NAME_LIST ? "group names"
                                                : "file names";
    char **list;
    if (is_null(v)) {
        list = xcalloc(l, 1, sizeof(char *));
    } else if (v->type != YAML_SEQUENCE_NODE) {
        error_at(l, line_of(v), k->path, "expected a list of %s", what);
        return;
    } else if (seq_len(v) > MAX_LIST) {
        error_at(l, line_of(v), k->path, "too many entries (at most %d)", MAX_LIST);
        return;
    } else if ((list = xcalloc(l, seq_len(v) + 1, sizeof(char *))) != NULL) {
        size_t out = 0;
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top && !full(l); ++it) {
            yaml_node_t *item = node(l, *it);
            const char *s = scalar(l, item, k->path);
            if (s == NULL)
                continue;
            if (*s == '\0' || is_null(item)) {
                error_at(l, line_of(item), k->path, "empty entry in the list of %s", what);
                continue;
            }
            char *entry = k->kind == K_CIDR_LIST   ? cidr_entry(l, k, s, line_of(item))
                          : k->kind == K_NAME_LIST ? name_entry(l, k, s, line_of(item))
                                                   : file_entry(l, k, s, line_of(item));
            if (entry != NULL)
                list[out++] = entry;
        }
    }
    free_list(*field);
    *field = list;
}

static void set_number(loader_t *l, const key_t_ *k, void *field, const char *s, size_t line)
{
    uint64_t n;
    int bad;
    const char *what;
    switch (k->kind) {
    case K_DURATION:
        bad = gw_parse_duration(s, &n);
        what = "duration (seconds, or a number with s, m, h or d)";
        break;
    case K_BYTES:
        bad = parse_bytes(s, &n);
        what = "size (bytes, or a number with k or m)";
        break;
    default:
        bad = parse_uint(s, &n);
        what = k->kind == K_PORT ? "port number" : "non-negative integer";
        break;
    }
    if (bad != 0) {
        error_at(l, line, k->path, "\"%.80s\" is not a valid %s", s, what);
        return;
    }
    if (n < k->min || n > k->max) {
        error_at(l, line, k->path, "%s is out of range (%llu..%llu%s)", s, (unsigned long long)k->min,
                 (unsigned long long)k->max,
                 k->kind == K_DURATION ? " seconds"
                 : k->kind == K_BYTES  ? " bytes"
                                       : "");
        return;
    }
    if (k->kind == K_PORT)
        *(uint16_t *)field = (uint16_t)n;
    else if (k->kind == K_BYTES)
        *(uint64_t *)field = n;
    else
        *(unsigned *)field = (unsigned)n;
}

static void set_value(loader_t *l, size_t ki, yaml_node_t *v)
{
    const key_t_ *k = &keys[ki];
    void *field = (char *)l->conf + k->offset;
    size_t line = line_of(v);
    l->lines[ki] = line;

    if (k->kind == K_FILE_LIST || k->kind == K_CIDR_LIST || k->kind == K_NAME_LIST) {
        set_list(l, k, (char ***)field, v);
        return;
    }
    const char *s = scalar(l, v, k->path);
    if (s == NULL)
        return;
    if (k->kind == K_OPT_FILE && *s == '\0' && !is_null(v)) { /* "" = none */
        set_string(field, xstrdup(l, ""));
        return;
    }
    if (*s == '\0' || is_null(v)) {
        error_at(l, line, k->path, "has no value");
        return;
    }
    switch (k->kind) {
    case K_PORT:
    case K_UINT:
    case K_DURATION:
    case K_BYTES: set_number(l, k, field, s, line); return;
    case K_BOOL: {
        int b = parse_bool(s);
        if (b < 0)
            error_at(l, line, k->path, "\"%.80s\" is not a boolean (true, false, yes, no)", s);
        else
            *(int *)field = b;
        return;
    }
    case K_STR:
        if (has_control(s)) {
            error_at(l, line, k->path, "must not contain control characters");
            return;
        }
        set_string(field, xstrdup(l, s));
        return;
    case K_ADDR: {
        unsigned char a[sizeof(struct in6_addr)];
        if (inet_pton(AF_INET, s, a) != 1 && inet_pton(AF_INET6, s, a) != 1) {
            error_at(l, line, k->path, "\"%.80s\" is not a numeric IPv4 or IPv6 address", s);
            return;
        }
        set_string(field, xstrdup(l, s));
        return;
    }
    case K_PATH:
    case K_LOG:
    case K_FILE:
    case K_OPT_FILE:
    case K_SECRET_FILE:
    case K_SECRET_PATH: {
        if (has_control(s)) {
            error_at(l, line, k->path, "must not contain control characters");
            return;
        }
        set_string(field, k->kind == K_LOG && strcmp(s, "-") == 0 ? xstrdup(l, s) : resolve(l, s));
        const char *path = *(char **)field;
        if (path == NULL || k->kind == K_PATH || k->kind == K_LOG)
            return;
        if (k->kind == K_SECRET_PATH && access(path, F_OK) != 0 && errno == ENOENT)
            return; /* created on first use */
        check_file(l, line, k->path, path, k->kind == K_SECRET_FILE || k->kind == K_SECRET_PATH, 0);
        return;
    }
    case K_ORIGIN: {
        size_t len;
        if (valid_origin(s, &len) != 0) {
            error_at(l, line, k->path, "\"%.80s\" must be https://host[:port] without a path", s);
            return;
        }
        char *d = strndup(s, len);
        if (d == NULL)
            l->oom = 1;
        set_string(field, d);
        return;
    }
    case K_HEADER:
        if (!valid_token(s, MAX_HEADER_NAME)) {
            error_at(l, line, k->path, "\"%.80s\" is not a valid HTTP header name", s);
            return;
        }
        if (reserved_header(s)) {
            error_at(l, line, k->path, "\"%.80s\" is a header HTTP or the proxy itself uses", s);
            return;
        }
        set_string(field, xstrdup(l, s));
        return;
    case K_COOKIE:
        if (!valid_token(s, MAX_COOKIE_NAME)) {
            error_at(l, line, k->path, "\"%.80s\" is not a valid cookie name", s);
            return;
        }
        if (strncmp(s, COOKIE_PREFIX, sizeof(COOKIE_PREFIX) - 1) != 0 || s[sizeof(COOKIE_PREFIX) - 1] == '\0') {
            error_at(l, line, k->path, "\"%.80s\" must start with \"" COOKIE_PREFIX "\" (host-only, Secure, Path=/)",
                     s);
            return;
        }
        set_string(field, xstrdup(l, s));
        return;
    default: return;
    }
}

/* ---- for sections parsed by other modules (gw_config_ctx_t is the loader) ---- */

struct yaml_node_s *gw_config_node(gw_config_ctx_t *ctx, int id)
{
    return node((loader_t *)ctx, id);
}

void gw_config_error(gw_config_ctx_t *ctx, size_t line, const char *key, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    error_at((loader_t *)ctx, line, key, "%s", n < 0 ? "" : msg);
}

const char *gw_config_scalar(gw_config_ctx_t *ctx, struct yaml_node_s *n, const char *key)
{
    return scalar((loader_t *)ctx, n, key);
}

char *gw_config_resolve(gw_config_ctx_t *ctx, const char *value)
{
    return resolve((loader_t *)ctx, value);
}

char *gw_config_file(gw_config_ctx_t *ctx, size_t line, const char *key, const char *value, int secret)
{
    loader_t *l = (loader_t *)ctx;
    if (*value == '\0' || has_control(value)) {
        error_at(l, line, key, "must be a file name without control characters");
        return NULL;
    }
    char *path = resolve(l, value);
    if (path != NULL && check_file(l, line, key, path, secret, 0) != 0) {
        free(path);
        return NULL;
    }
    return path;
}

int gw_config_parse_bool(const char *s)
{
    return parse_bool(s);
}

int gw_config_parse_size(const char *s, uint64_t *out)
{
    return parse_bytes(s, out);
}

int gw_config_valid_group(const char *s)
{
    return valid_group_name(s);
}

/* ---- mappings ---- */

static int is_section(const char *path)
{
    size_t len = strlen(path);
    for (size_t i = 0; i != NUM_KEYS; ++i)
        if (strncmp(keys[i].path, path, len) == 0 && keys[i].path[len] == '.')
            return 1;
    return 0;
}

static size_t section_line(const loader_t *l, const char *path)
{
    for (size_t i = 0; i != l->num_sections; ++i)
        if (strcmp(l->sections[i].path, path) == 0)
            return l->sections[i].line;
    return 0;
}

/* Line to blame for a key that is missing or involved in a cross-check: the key itself, else its nearest
 * enclosing mapping, else line 1. */
static size_t key_line(const loader_t *l, const char *path)
{
    for (size_t ki = 0; ki != NUM_KEYS; ++ki)
        if (strcmp(keys[ki].path, path) == 0)
            return l->lines[ki];
    return 0;
}

static size_t blame_line(const loader_t *l, const char *path)
{
    char p[MAX_PATH_KEY];
    if (key_line(l, path) != 0)
        return key_line(l, path);
    snprintf(p, sizeof(p), "%s", path);
    for (char *dot; (dot = strrchr(p, '.')) != NULL;) {
        *dot = '\0';
        size_t line = section_line(l, p);
        if (line != 0)
            return line;
    }
    return 1;
}

static void load_routes(loader_t *l, yaml_node_t *seq);

static void walk(loader_t *l, yaml_node_t *map, const char *prefix)
{
    const char *where = prefix[0] != '\0' ? prefix : "(top level)";
    if (is_null(map)) /* "session:" with every key commented out */
        return;
    if (map->type != YAML_MAPPING_NODE) {
        error_at(l, line_of(map), where, "expected a mapping of keys");
        return;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top && !full(l); ++p) {
        yaml_node_t *kn = node(l, p->key), *vn = node(l, p->value);
        const char *k = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : NULL;
        char path[MAX_PATH_KEY];
        if (k == NULL || strlen(k) != kn->data.scalar.length || has_control(k)) {
            error_at(l, line_of(kn), where, "keys must be plain names");
            continue;
        }
        int n = snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] != '\0' ? "." : "", k);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            error_at(l, line_of(kn), where, "unknown key \"%.80s...\"", k);
            continue;
        }
        if (strchr(k, '.') != NULL) { /* "server.listen.port: 1" at the top is a key, not a path */
            error_at(l, line_of(kn), path, "unknown key");
            continue;
        }
        if (prefix[0] == '\0' && strcmp(k, "saml") == 0) {
            if (l->conf->saml != NULL) {
                error_at(l, line_of(kn), path, "duplicate key");
                continue;
            }
            l->conf->saml = saml_config_load((gw_config_ctx_t *)l, vn);
            continue;
        }
        if (prefix[0] == '\0' && strcmp(k, "routes") == 0) {
            if (l->routes_line != 0) {
                error_at(l, line_of(kn), path, "duplicate key (first set on line %zu)", l->routes_line);
                continue;
            }
            l->routes_line = line_of(kn);
            load_routes(l, vn);
            continue;
        }
        size_t ki;
        for (ki = 0; ki != NUM_KEYS && strcmp(keys[ki].path, path) != 0; ++ki)
            ;
        if (ki != NUM_KEYS) {
            if (l->lines[ki] != 0) {
                error_at(l, line_of(kn), path, "duplicate key (first set on line %zu)", l->lines[ki]);
                continue;
            }
            set_value(l, ki, vn);
        } else if (is_section(path)) {
            size_t first = section_line(l, path);
            if (first != 0) {
                error_at(l, line_of(kn), path, "duplicate key (first set on line %zu)", first);
                continue;
            }
            if (l->num_sections != MAX_SECTIONS) {
                snprintf(l->sections[l->num_sections].path, MAX_PATH_KEY, "%s", path);
                l->sections[l->num_sections++].line = line_of(kn);
            }
            walk(l, vn, path);
        } else {
            error_at(l, line_of(kn), path, "unknown key");
        }
    }
}

/* ---- routes ---- */

static void route_groups(loader_t *l, gw_route_t *r, yaml_node_t *vn, const char *key)
{
    if (is_null(vn))
        return;
    if (vn->type != YAML_SEQUENCE_NODE) {
        error_at(l, line_of(vn), key, "expected a list of group names");
        return;
    }
    size_t n = seq_len(vn);
    if (n > MAX_LIST) {
        error_at(l, line_of(vn), key, "too many groups (at most %d)", MAX_LIST);
        return;
    }
    char **groups = xcalloc(l, n + 1, sizeof(char *));
    if (groups == NULL)
        return;
    free(r->groups);
    r->groups = groups;
    for (size_t g = 0; g != n; ++g) {
        yaml_node_t *gn = node(l, vn->data.sequence.items.start[g]);
        const char *gs = scalar(l, gn, key);
        if (gs == NULL)
            continue;
        if (!valid_group_name(gs))
            error_at(l, line_of(gn), key, "\"%.80s\" is not a group name (1-64 letters, digits, '.', '_', '-', '@')",
                     gs);
        else if ((r->groups[r->num_groups] = xstrdup(l, gs)) != NULL)
            ++r->num_groups;
    }
}

static void route_value(loader_t *l, gw_route_t *r, const char *k, yaml_node_t *vn, const char *key)
{
    const char *v = scalar(l, vn, key), *problem;
    if (v == NULL)
        return;
    if (strcmp(k, "prefix") == 0) {
        if ((problem = prefix_problem(v)) != NULL)
            error_at(l, line_of(vn), key, "\"%.80s\" %s", v, problem);
        else
            set_string(&r->prefix, xstrdup(l, v));
    } else if (strcmp(k, "backend") == 0) {
        if ((problem = backend_problem(v)) != NULL)
            error_at(l, line_of(vn), key, "\"%.80s\": %s", v, problem);
        else
            set_string(&r->backend, xstrdup(l, v));
    } else if (strcmp(k, "name") == 0) {
        if (*v == '\0' || strlen(v) > MAX_ROUTE_NAME || has_control(v) || strpbrk(v, "\"\\") != NULL)
            error_at(l, line_of(vn), key, "must be 1-%d characters without quotes, backslashes or control characters",
                     MAX_ROUTE_NAME);
        else
            set_string(&r->name, xstrdup(l, v));
    } else { /* mfa */
        int b = parse_bool(v);
        if (b < 0)
            error_at(l, line_of(vn), key, "\"%.80s\" is not a boolean (true, false, yes, no)", v);
        else
            r->require_mfa = b;
    }
}

/* One route mapping into r; `i` is its index. */
static void load_route(loader_t *l, gw_route_t *r, size_t i, yaml_node_t *rn)
{
    static const char *const route_keys[] = {"prefix", "backend", "name", "groups", "mfa"};
    size_t seen[sizeof(route_keys) / sizeof(route_keys[0])] = {0}, prefix_line = line_of(rn);
    char key[MAX_PATH_KEY];
    snprintf(key, sizeof(key), "routes[%zu]", i);
    if (rn->type != YAML_MAPPING_NODE) {
        error_at(l, line_of(rn), key, "expected a mapping (prefix, backend, name, groups, mfa)");
        return;
    }
    for (yaml_node_pair_t *p = rn->data.mapping.pairs.start; p < rn->data.mapping.pairs.top && !full(l); ++p) {
        yaml_node_t *kn = node(l, p->key), *vn = node(l, p->value);
        const char *k = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : NULL;
        if (k == NULL || strlen(k) != kn->data.scalar.length || has_control(k)) {
            snprintf(key, sizeof(key), "routes[%zu]", i);
            error_at(l, line_of(kn), key, "keys must be plain names");
            continue;
        }
        snprintf(key, sizeof(key), "routes[%zu].%.64s", i, k);
        size_t ki;
        for (ki = 0; ki != sizeof(route_keys) / sizeof(route_keys[0]) && strcmp(route_keys[ki], k) != 0; ++ki)
            ;
        if (ki == sizeof(route_keys) / sizeof(route_keys[0])) {
            error_at(l, line_of(kn), key, "unknown key");
            continue;
        }
        if (seen[ki] != 0) {
            error_at(l, line_of(kn), key, "duplicate key (first set on line %zu)", seen[ki]);
            continue;
        }
        seen[ki] = line_of(kn);
        if (ki == 0)
            prefix_line = line_of(vn);
        if (strcmp(k, "groups") == 0)
            route_groups(l, r, vn, key);
        else
            route_value(l, r, k, vn, key);
    }
    for (size_t req = 0; req != 2; ++req) {
        if (seen[req] == 0) {
            snprintf(key, sizeof(key), "routes[%zu].%s", i, route_keys[req]);
            error_at(l, line_of(rn), key, "is required");
        }
    }
    if (r->prefix != NULL && r->name == NULL)
        r->name = xstrdup(l, r->prefix);
    for (size_t j = 0; j != i; ++j) {
        const gw_route_t *o = &l->conf->routes[j];
        if (r->prefix != NULL && o->prefix != NULL && strcmp(o->prefix, r->prefix) == 0) {
            snprintf(key, sizeof(key), "routes[%zu].prefix", i);
            error_at(l, prefix_line, key, "duplicate prefix \"%.80s\" (also routes[%zu])", r->prefix, j);
        }
        if (r->name != NULL && o->name != NULL && strcmp(o->name, r->name) == 0 &&
            (r->prefix == NULL || o->prefix == NULL || strcmp(o->prefix, r->prefix) != 0)) {
            snprintf(key, sizeof(key), "routes[%zu].name", i);
            error_at(l, prefix_line, key, "duplicate name \"%.80s\" (also routes[%zu]; the name is the JWT audience)",
                     r->name, j);
        }
    }
}

static void load_routes(loader_t *l, yaml_node_t *seq)
{
    if (is_null(seq))
        return; /* reported as "at least one route" */
    if (seq->type != YAML_SEQUENCE_NODE) {
        error_at(l, line_of(seq), "routes", "expected a list of routes");
        return;
    }
    size_t count = seq_len(seq);
    if (count > GW_MAX_ROUTES) {
        error_at(l, line_of(seq), "routes", "too many routes (%zu, at most %d)", count, GW_MAX_ROUTES);
        return;
    }
    if ((l->conf->routes = xcalloc(l, count + 1, sizeof(gw_route_t))) == NULL)
        return;
    for (size_t i = 0; i != count && !full(l); ++i) {
        gw_route_t *r = &l->conf->routes[l->conf->num_routes++];
        if ((r->groups = xcalloc(l, 1, sizeof(char *))) == NULL)
            return;
        load_route(l, r, i, node(l, seq->data.sequence.items.start[i]));
    }
}

/* ---- defaults and cross-checks ---- */

static void dup_default(loader_t *l, char **field, const char *def)
{
    if (*field == NULL && def != NULL)
        *field = xstrdup(l, def);
}

static int is_wildcard(const char *addr)
{
    return strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "::") == 0;
}

static void apply_defaults(loader_t *l)
{
    gw_config_t *c = l->conf;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned ncores = cores > 0 && cores <= MAX_THREADS ? (unsigned)cores : cores > 0 ? MAX_THREADS : 1;

    dup_default(l, &c->listen_address, "0.0.0.0");
    if (c->listen_port == 0)
        c->listen_port = 8443;
    dup_default(l, &c->http_redirect_address, c->listen_address);
    if (c->public_url == NULL && asprintf(&c->public_url, "https://localhost:%u", c->listen_port) < 0) {
        c->public_url = NULL;
        l->oom = 1;
    }
    if (c->threads == 0)
        c->threads = ncores;
    if (c->workers == 0)
        c->workers = ncores;
    if (c->max_request_body == 0)
        c->max_request_body = 1024 * 1024;
    dup_default(l, &c->state_dir, l->dir);
    dup_default(l, &c->templates_dir, PORTIER_SOURCE_DIR "/templates");
    if (c->db_pool_size == 0)
        c->db_pool_size = c->workers;
    if (c->session_idle_timeout == 0)
        c->session_idle_timeout = 1800;
    if (c->session_absolute_timeout == 0)
        c->session_absolute_timeout = 43200;
    dup_default(l, &c->session_cookie, "__Host-portier");
    if (c->password_min_length == 0)
        c->password_min_length = 15;
    if (key_line(l, "server.http2") == 0)
        c->http2 = 1;
    if (c->invite_ttl == 0)
        c->invite_ttl = 86400;
    if (c->reset_ttl == 0)
        c->reset_ttl = 3600;
    if (c->password_min_length_mfa == 0)
        c->password_min_length_mfa = 8;
    if (c->mfa_key_file == NULL && c->state_dir != NULL &&
        asprintf(&c->mfa_key_file, "%s/" DEFAULT_MFA_KEY_FILE, c->state_dir) < 0) {
        c->mfa_key_file = NULL;
        l->oom = 1;
    }
    if (c->mfa_required_groups == NULL)
        c->mfa_required_groups = xcalloc(l, 1, sizeof(char *));
    dup_default(l, &c->mfa_issuer, c->organization != NULL ? c->organization : "portier");
    dup_default(l, &c->mfa_algorithm, "SHA1");
    if (c->mfa_digits == 0)
        c->mfa_digits = 6;
    if (c->mfa_period == 0)
        c->mfa_period = 30;
    if (key_line(l, "mfa.totp.window") == 0)
        c->mfa_window = 1;
    if (c->mfa_hotp_lookahead == 0)
        c->mfa_hotp_lookahead = 10;
    if (c->mfa_recovery_codes == 0)
        c->mfa_recovery_codes = 10;
    if (c->pepper_file == NULL && c->state_dir != NULL &&
        asprintf(&c->pepper_file, "%s/" DEFAULT_PEPPER_FILE, c->state_dir) < 0) {
        c->pepper_file = NULL;
        l->oom = 1;
    }
    dup_default(l, &c->blocklist_file, PORTIER_SOURCE_DIR "/conf/blocklist.txt");
    dup_default(l, &c->dictionary_file, access(DEFAULT_DICTIONARY, R_OK) == 0 ? DEFAULT_DICTIONARY : "");
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
        c->trusted_proxies = xcalloc(l, 1, sizeof(char *));
    dup_default(l, &c->jwt_issuer, c->public_url);
    if (c->jwt_lifetime == 0)
        c->jwt_lifetime = 60;
    if (c->jwt_previous_keys == NULL)
        c->jwt_previous_keys = xcalloc(l, 1, sizeof(char *));
    dup_default(l, &c->hdr_user, "X-Portier-User");
    dup_default(l, &c->hdr_email, "X-Portier-Email");
    dup_default(l, &c->hdr_groups, "X-Portier-Groups");
    dup_default(l, &c->hdr_jwt, "X-Portier-Jwt-Assertion");
}

static void cross_check(loader_t *l)
{
    static const char *const required[] = {"server.tls.certificate", "server.tls.key", "database.conninfo",
                                           "identity.signing_key"};
    gw_config_t *c = l->conf;
    for (size_t i = 0; i != sizeof(required) / sizeof(required[0]); ++i)
        if (key_line(l, required[i]) == 0)
            error_at(l, blame_line(l, required[i]), required[i], "is required");
    if (c->num_routes == 0)
        error_at(l, l->routes_line != 0 ? l->routes_line : 1, "routes", "at least one route is required");
    if (c->password_min_length_mfa > c->password_min_length)
        error_at(l, blame_line(l, "login.password_min_length_mfa"), "login.password_min_length_mfa",
                 "%u exceeds login.password_min_length (%u)", c->password_min_length_mfa, c->password_min_length);
    if (c->mfa_algorithm != NULL && strcmp(c->mfa_algorithm, "SHA1") != 0 && strcmp(c->mfa_algorithm, "SHA256") != 0 &&
        strcmp(c->mfa_algorithm, "SHA512") != 0)
        error_at(l, blame_line(l, "mfa.totp.algorithm"), "mfa.totp.algorithm",
                 "\"%.80s\" is not SHA1, SHA256 or SHA512", c->mfa_algorithm);
    if (c->throttle_hard_lock <= c->throttle_free)
        error_at(l, blame_line(l, "login.throttle.hard_lock"), "login.throttle.hard_lock",
                 "%u must exceed login.throttle.free_attempts (%u)", c->throttle_hard_lock, c->throttle_free);
    if (c->session_idle_timeout > c->session_absolute_timeout)
        error_at(l, blame_line(l, "session.idle_timeout"), "session.idle_timeout",
                 "%u s exceeds session.absolute_timeout (%u s)", c->session_idle_timeout, c->session_absolute_timeout);
    if (section_line(l, "server.http_redirect") != 0 && key_line(l, "server.http_redirect.port") == 0)
        error_at(l, section_line(l, "server.http_redirect"), "server.http_redirect.port",
                 "is required when server.http_redirect is set");
    if (c->http_redirect_port != 0 && c->http_redirect_port == c->listen_port && c->listen_address != NULL &&
        c->http_redirect_address != NULL &&
        (strcmp(c->http_redirect_address, c->listen_address) == 0 || is_wildcard(c->http_redirect_address) ||
         is_wildcard(c->listen_address)))
        error_at(l, blame_line(l, "server.http_redirect.port"), "server.http_redirect.port",
                 "must differ from server.listen.port");

    static const char *const hdr_keys[] = {"identity.headers.user", "identity.headers.email", "identity.headers.groups",
                                           "identity.headers.jwt"};
    const char *hdrs[] = {c->hdr_user, c->hdr_email, c->hdr_groups, c->hdr_jwt};
    for (size_t i = 0; i != 4; ++i)
        for (size_t j = 0; j != i; ++j)
            if (hdrs[i] != NULL && hdrs[j] != NULL && strcasecmp(hdrs[i], hdrs[j]) == 0)
                error_at(l, blame_line(l, hdr_keys[i]), hdr_keys[i], "\"%.80s\" is also %s", hdrs[i], hdr_keys[j]);
}

/* ---- entry points ---- */

/* The absolute form of `path` (not resolving symlinks: relative paths in the file are relative to where the
 * operator put it) and its directory. */
static int absolute_path(const char *path, char **abs, char **dir)
{
    char cwd[PATH_MAX];
    *abs = *dir = NULL;
    if (path[0] == '/') {
        *abs = strdup(path);
    } else {
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            return -1;
        while (strncmp(path, "./", 2) == 0)
            path += 2;
        if (asprintf(abs, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", path) < 0)
            *abs = NULL;
    }
    if (*abs == NULL)
        return -1;
    const char *slash = strrchr(*abs, '/');
    *dir = slash == *abs ? strdup("/") : strndup(*abs, (size_t)(slash - *abs));
    return *dir != NULL ? 0 : -1;
}

static size_t line_at_offset(const char *yaml, size_t len, size_t offset)
{
    size_t line = 1;
    for (size_t i = 0; i < offset && i < len; ++i)
        line += yaml[i] == '\n';
    return line;
}

static void syntax_error(loader_t *l, yaml_parser_t *parser, const char *yaml, size_t len)
{
    size_t line = parser->error == YAML_READER_ERROR ? line_at_offset(yaml, len, parser->problem_offset)
                                                     : parser->problem_mark.line + 1;
    const char *problem = parser->problem != NULL ? parser->problem : "invalid YAML";
    if (parser->context != NULL)
        error_at(l, line, "yaml", "%s (%s on line %zu)", problem, parser->context, parser->context_mark.line + 1);
    else
        error_at(l, line, "yaml", "%s", problem);
}

/* The document's scalars may hold the database password: wipe them before libyaml frees them. */
static void wipe_document(yaml_document_t *doc)
{
    for (yaml_node_t *n = doc->nodes.start; n != NULL && n < doc->nodes.top; ++n)
        if (n->type == YAML_SCALAR_NODE)
            explicit_bzero(n->data.scalar.value, n->data.scalar.length);
}

int gw_config_load_buffer(gw_config_t *conf, const char *path, const char *yaml, size_t len, gw_config_errors_t *errs)
{
    loader_t l = {.conf = conf, .errs = errs, .file = path};
    yaml_parser_t parser;
    yaml_document_t extra;
    size_t errs_before = errs->count;
    int parsed = 0;

    memset(conf, 0, sizeof(*conf));
    if (absolute_path(path, &conf->path, &l.dir) != 0) {
        error_at(&l, 1, "(file)", "cannot make the path absolute: %s", strerror(errno));
        goto exit;
    }
    if (!yaml_parser_initialize(&parser)) {
        l.oom = 1;
        goto exit;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &l.doc)) {
        syntax_error(&l, &parser, yaml, len);
        yaml_parser_delete(&parser);
        goto exit;
    }
    parsed = 1;
    yaml_node_t *root = yaml_document_get_root_node(&l.doc);
    if (root == NULL) {
        error_at(&l, 1, "(file)", "the file is empty");
        yaml_parser_delete(&parser);
        goto exit;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        syntax_error(&l, &parser, yaml, len);
    } else {
        yaml_node_t *second = yaml_document_get_root_node(&extra);
        if (second != NULL)
            error_at(&l, line_of(second), "yaml", "only one YAML document is allowed");
        wipe_document(&extra);
        yaml_document_delete(&extra);
    }
    yaml_parser_delete(&parser);

    walk(&l, root, "");
    apply_defaults(&l);
    cross_check(&l);

exit:
    if (parsed) {
        wipe_document(&l.doc);
        yaml_document_delete(&l.doc);
    }
    free(l.dir);
    if (l.oom && errs->count < GW_MAX_ERRORS) {
        l.oom = 0;
        error_at(&l, 1, "(file)", "out of memory");
    }
    if (l.oom || errs->count != errs_before) {
        gw_config_dispose(conf);
        return -1;
    }
    return 0;
}

static int file_error(gw_config_errors_t *errs, const char *path, const char *msg, int err)
{
    char *out;
    if (errs->count < GW_MAX_ERRORS &&
        asprintf(&out, "%s:1: (file): %s%s%s", path, msg, err != 0 ? ": " : "", err != 0 ? strerror(err) : "") >= 0)
        errs->msgs[errs->count++] = out;
    return -1;
}

int gw_config_load(gw_config_t *conf, const char *path, gw_config_errors_t *errs)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd, rc = -1;

    memset(conf, 0, sizeof(*conf));
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
        return file_error(errs, path, "cannot open", errno);
    if (fstat(fd, &st) != 0) {
        rc = file_error(errs, path, "cannot stat", errno);
        goto exit;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = file_error(errs, path, "not a regular file", 0);
        goto exit;
    }
    if (st.st_size > MAX_FILE_SIZE) {
        rc = file_error(errs, path, "larger than 1 MiB", 0);
        goto exit;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        rc = file_error(errs, path, "out of memory", 0);
        goto exit;
    }
    for (;;) { /* read until EOF, never past the limit (the file may grow while we read) */
        ssize_t n = read(fd, buf + len, (size_t)st.st_size + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = file_error(errs, path, "cannot read", errno);
            goto exit;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > (size_t)st.st_size) {
            rc = file_error(errs, path, "changed while being read", 0);
            goto exit;
        }
    }
    rc = gw_config_load_buffer(conf, path, buf, len, errs);
exit:
    if (buf != NULL) {
        explicit_bzero(buf, (size_t)st.st_size + 1);
        free(buf);
    }
    close(fd);
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
                     &c->db_admin_conninfo,
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
                     &c->smtp_from,
                     &c->mfa_key_file,
                     &c->mfa_issuer,
                     &c->mfa_algorithm};
    if (c->db_conninfo != NULL) /* may carry a password */
        explicit_bzero(c->db_conninfo, strlen(c->db_conninfo));
    if (c->db_admin_conninfo != NULL)
        explicit_bzero(c->db_admin_conninfo, strlen(c->db_admin_conninfo));
    for (size_t i = 0; i != sizeof(strs) / sizeof(strs[0]); ++i)
        free(*strs[i]);
    free_list(c->jwt_previous_keys);
    free_list(c->trusted_proxies);
    free_list(c->mfa_required_groups);
    for (size_t i = 0; c->routes != NULL && i != c->num_routes; ++i) {
        gw_route_t *r = &c->routes[i];
        free(r->prefix);
        free(r->backend);
        free(r->name);
        free_list(r->groups);
    }
    free(c->routes);
    saml_config_free(c->saml);
    memset(c, 0, sizeof(*c));
}

int gw_config_mfa_required(const gw_config_t *conf, char *const *groups)
{
    for (char *const *r = conf->mfa_required_groups; r != NULL && *r != NULL; ++r)
        for (char *const *g = groups; g != NULL && *g != NULL; ++g)
            if (strcmp(*r, *g) == 0)
                return 1;
    return 0;
}

void gw_config_errors_dispose(gw_config_errors_t *errs)
{
    for (size_t i = 0; i != errs->count; ++i)
        free(errs->msgs[i]);
    errs->count = 0;
}
