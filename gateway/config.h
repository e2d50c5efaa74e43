/*
 * Configuration of one portier instance, loaded from a single YAML file.
 *
 * gw_config_load() parses the whole file, validates every key and every cross-reference, and either
 * returns a complete configuration or a list of errors, each formatted as "FILE:LINE: KEY: message"
 * (KEY is the dotted path, e.g. "routes[2].backend"). Nothing is half-loaded: on error the config is
 * disposed. Relative file paths in the config are resolved against the directory of the config file.
 * Durations accept an integer (seconds) or a number with a unit suffix: "90s", "30m", "12h", "1d".
 */
#ifndef PORTIER_GATEWAY_CONFIG_H
#define PORTIER_GATEWAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define GW_MAX_ROUTES 256
#define GW_MAX_ERRORS 64

typedef struct st_gw_route_t {
    char *prefix;  /* path prefix, starts with '/', e.g. "/app" or "/" */
    char *backend; /* upstream URL, http:// only (h2o upstream is HTTP/1.1), e.g. "http://127.0.0.1:9000" */
    char *name;    /* route name: JWT audience; default = prefix */
    char **groups; /* allowed groups; NULL-terminated; empty (groups[0] == NULL) = any signed-in user */
    size_t num_groups;
    int require_mfa; /* routes[].mfa: a session without a second factor is stepped up first */
} gw_route_t;

typedef struct st_gw_config_t {
    char *path; /* the file this was loaded from (absolute) */

    /* server */
    char *listen_address;        /* server.listen.address, default "0.0.0.0" */
    uint16_t listen_port;        /* server.listen.port, default 8443 */
    char *http_redirect_address; /* server.http_redirect.address, default = listen_address */
    uint16_t http_redirect_port; /* server.http_redirect.port, 0 = no plain-HTTP listener (default) */
    char *public_url;            /* server.public_url, e.g. "https://sso.example.com" (no trailing slash);
                                    default "https://localhost:<listen_port>". Own origin for redirects. */
    unsigned threads;            /* server.threads, event loops; 0 in file = number of cores (resolved at load) */
    unsigned workers;            /* server.workers, worker pool size; 0 in file = number of cores */
    char *tls_certificate;       /* server.tls.certificate (PEM chain file), required */
    char *tls_key;               /* server.tls.key (PEM), required; must not be readable by group/others */
    char *access_log;            /* server.access_log: file path, "-" = stderr, default NULL = off */
    uint64_t max_request_body;   /* server.max_request_body bytes, default 1 MiB */

    char *state_dir;     /* state_dir, default: directory of the config file */
    char *templates_dir; /* templates_dir, default PORTIER_SOURCE_DIR "/templates" */

    /* database */
    char *db_conninfo;       /* database.conninfo (libpq conninfo string), required */
    char *db_admin_conninfo; /* database.admin_conninfo: the owner role `migrate` uses; NULL: db_conninfo */
    unsigned db_pool_size;   /* reserved; workers each hold one connection */

    /* sessions */
    unsigned session_idle_timeout;     /* session.idle_timeout seconds, default 1800 */
    unsigned session_absolute_timeout; /* session.absolute_timeout seconds, default 43200 */
    char *session_cookie;              /* session.cookie_name, default "__Host-portier"; must start "__Host-" */

    /* login */
    unsigned password_min_length;     /* login.password_min_length, default 15 (password is the only factor) */
    unsigned password_min_length_mfa; /* login.password_min_length_mfa, default 8 (MFA enrolled) */
    unsigned invite_ttl;              /* login.invite_ttl seconds, default 86400, max 86400 */
    unsigned reset_ttl;               /* login.reset_ttl seconds, default 3600, max 86400 */
    char *organization;               /* organization: name used as a context word in password checks */
    char *pepper_file;                /* login.pepper_file, default <state_dir>/pepper.key (created 0600) */
    char *blocklist_file;             /* login.blocklist, default PORTIER_SOURCE_DIR "/conf/blocklist.txt" */
    char *dictionary_file;            /* login.dictionary, default /usr/share/dict/words when present; "" none */
    uint64_t argon2_memory;           /* login.argon2.memory bytes, default 19 MiB (min 19 MiB) */
    unsigned argon2_iterations;       /* login.argon2.iterations, default 2 (min 2) */
    unsigned throttle_free;           /* login.throttle.free_attempts, default 5 */
    unsigned throttle_max_delay;      /* login.throttle.max_delay seconds, default 900 */
    unsigned throttle_hard_lock;      /* login.throttle.hard_lock, default 100 */
    unsigned spray_max_usernames;     /* login.spray.max_usernames per source network and window, default 20 */
    unsigned spray_window;            /* login.spray.window seconds, default 600 */
    unsigned spray_block;             /* login.spray.block seconds a source over budget is refused, default 900 */
    unsigned spray_same_password;     /* login.spray.same_password_usernames, default 10 */
    char *smtp_url;                   /* smtp.url, e.g. "smtp://mail.example.com:587"; NULL = no email */
    char *smtp_from;                  /* smtp.from, sender address */
    int http2;                        /* server.http2: offer HTTP/2 by ALPN, default true */
    int scim_accept_passwords;        /* scim.accept_passwords: SCIM may set passwords (policy), default no */
    char **trusted_proxies;           /* server.trusted_proxies: CIDRs whose X-Forwarded-For is believed */

    /* second factors */
    char *mfa_key_file;          /* mfa.key_file: 32-byte key sealing OTP secrets, default <state_dir>/mfa.key
                                    (created 0600); the environment variable PORTIER_MFA_KEY (64 hex) overrides */
    char **mfa_required_groups;  /* mfa.required_groups: members must use a second factor; NULL-terminated */
    char *mfa_issuer;            /* mfa.issuer: name shown in authenticator apps, default organization/"portier" */
    char *mfa_algorithm;         /* mfa.totp.algorithm: SHA1 (default, what every app supports), SHA256, SHA512 */
    unsigned mfa_digits;         /* mfa.totp.digits: 6 (default) to 8 */
    unsigned mfa_period;         /* mfa.totp.period seconds, default 30 */
    unsigned mfa_window;         /* mfa.totp.window: steps of clock drift accepted either way, default 1 */
    unsigned mfa_hotp_lookahead; /* mfa.hotp.lookahead: counters skipped ahead at most, default 10 */
    unsigned mfa_recovery_codes; /* mfa.recovery_codes: codes per set, default 10 */

    /* identity headers + JWT */
    char *jwt_issuer;         /* identity.issuer, default public_url */
    unsigned jwt_lifetime;    /* identity.jwt_lifetime seconds, default 60, max 300 */
    char *jwt_signing_key;    /* identity.signing_key: PEM EC P-256 private key file, required; 0600 */
    char **jwt_previous_keys; /* identity.previous_keys: PEM files (private or public) still published; NULL-term. */
    char *hdr_user;           /* identity.headers.user,   default "X-Portier-User" */
    char *hdr_email;          /* identity.headers.email,  default "X-Portier-Email" */
    char *hdr_groups;         /* identity.headers.groups, default "X-Portier-Groups" */
    char *hdr_jwt;            /* identity.headers.jwt,    default "X-Portier-Jwt-Assertion" */

    /* saml: the `saml` section (saml/saml.h), NULL when absent */
    struct st_saml_config_t *saml;

    /* routes, in file order; a request goes to the first route whose prefix matches (segment-wise) */
    gw_route_t *routes;
    size_t num_routes;
} gw_config_t;

typedef struct st_gw_config_errors_t {
    char *msgs[GW_MAX_ERRORS]; /* "FILE:LINE: KEY: message" */
    size_t count;
} gw_config_errors_t;

/* Loads and validates `path` into `conf` (caller-owned struct, zeroed by the callee). Returns 0, or -1 with
 * errors appended to `errs` (caller disposes them with gw_config_errors_dispose). Also checks that files it names
 * exist and are readable, and that private-key files (tls.key, signing_key) are not group/other readable. */
int gw_config_load(gw_config_t *conf, const char *path, gw_config_errors_t *errs) __attribute__((warn_unused_result));
/* Same, from an in-memory YAML buffer; `path` is used in messages and to resolve relative paths. */
int gw_config_load_buffer(gw_config_t *conf, const char *path, const char *yaml, size_t len, gw_config_errors_t *errs)
    __attribute__((warn_unused_result));
void gw_config_dispose(gw_config_t *conf);
void gw_config_errors_dispose(gw_config_errors_t *errs);

/* 1 when one of `groups` (NULL-terminated) is in mfa.required_groups. */
int gw_config_mfa_required(const gw_config_t *conf, char *const *groups);

/* For configuration sections parsed by other modules (the `saml` section): the loader, its document, its error
 * list and its file checks, so that their keys read and fail exactly like the table's. */
struct yaml_document_s;
struct yaml_node_s;
typedef struct st_gw_config_ctx_t gw_config_ctx_t;
struct yaml_node_s *gw_config_node(gw_config_ctx_t *ctx, int id);
void gw_config_error(gw_config_ctx_t *ctx, size_t line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The scalar value of n (NULL after reporting a list, mapping or NUL byte). */
const char *gw_config_scalar(gw_config_ctx_t *ctx, struct yaml_node_s *n, const char *key);
/* A file path from the configuration, resolved against the file's directory and checked (exists, regular,
 * readable; secret: no group/other bits). Malloc'd, or NULL after an error. */
char *gw_config_file(gw_config_ctx_t *ctx, size_t line, const char *key, const char *value, int secret);
/* Resolved path without checks (directories, files created later). Malloc'd or NULL. */
char *gw_config_resolve(gw_config_ctx_t *ctx, const char *value);
int gw_config_parse_bool(const char *s);                /* 1, 0, or -1 */
int gw_config_parse_size(const char *s, uint64_t *out); /* "256k", "1m", bytes; 0 or -1 */
int gw_config_valid_group(const char *s);

/* An address or network, IPv4 held v4-mapped in 16 bytes (bits counted on the 128-bit form). */
typedef struct st_gw_cidr_t {
    uint8_t addr[16];
    unsigned bits;
    int family; /* AF_INET or AF_INET6 as written */
} gw_cidr_t;
/* Parses "192.0.2.1", "10.0.0.0/8", "2001:db8::/32". out may be NULL (validation only). 0 or -1. */
int gw_parse_cidr(const char *s, gw_cidr_t *out) __attribute__((warn_unused_result));
int gw_cidr_contains(const gw_cidr_t *net, const uint8_t addr16[16]);

/* Parses a duration ("90", "90s", "30m", "12h", "1d") into seconds; returns 0 or -1. */
int gw_parse_duration(const char *s, uint64_t *out) __attribute__((warn_unused_result));

#endif
