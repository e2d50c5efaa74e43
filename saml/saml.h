/*
 * saml: SAML 2.0 on lasso, xmlsec1 and libxml2. Two halves:
 *
 *   common (reusable by the SP broker of issue #7): the `saml:` configuration section, signing key and
 *   certificate loading (RSA 2048/3072 only), one LassoServer per worker thread, SP/IdP metadata parsing, and the
 *   intake gatekeeper every inbound SAML message passes first (size limit, no DOCTYPE, SHA-1 refused);
 *   IdP (issue #6): /saml/metadata, /saml/sso (HTTP-Redirect and HTTP-POST), IdP-initiated SSO, attribute
 *   release, NameID formats, and the per-SP access policy.
 *
 * Threads: configuration is loaded on the main thread; lasso work happens only on worker threads, each with its
 * own LassoServer; event loops only parse HTTP and render.
 */
#ifndef PORTIER_SAML_H
#define PORTIER_SAML_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"

#define SAML_MAX_SPS             256
#define SAML_MAX_LIFETIME        300          /* seconds an assertion may be valid (security.md: at most 5 minutes) */
#define SAML_DEFAULT_MAX_MESSAGE (256 * 1024) /* bytes of an encoded inbound message */
#define SAML_MAX_RELAY_STATE     80           /* SAML bindings 3.4.3: at most 80 bytes */

typedef enum {
    SAML_NAMEID_PERSISTENT,  /* opaque pairwise identifier, stable per user and SP */
    SAML_NAMEID_EMAIL,       /* the user's email address */
    SAML_NAMEID_UNSPECIFIED, /* the user name */
    SAML_NAMEID_TRANSIENT    /* random, new for each assertion */
} saml_nameid_t;

typedef enum { SAML_SIGN_BOTH, SAML_SIGN_ASSERTION, SAML_SIGN_RESPONSE } saml_sign_t;

/* Released attributes (bit set). */
enum {
    SAML_ATTR_UID = 1 << 0,
    SAML_ATTR_MAIL = 1 << 1,
    SAML_ATTR_DISPLAY_NAME = 1 << 2,
    SAML_ATTR_GIVEN_NAME = 1 << 3,
    SAML_ATTR_SN = 1 << 4,
    SAML_ATTR_GROUPS = 1 << 5,
    SAML_ATTR_ALL = (1 << 6) - 1
};
#define SAML_ATTR_COUNT 6

/* What the SP's metadata says, parsed at configuration time. */
typedef struct st_saml_sp_metadata_t {
    char *xml;       /* the metadata document, handed to lasso by each worker */
    char *entity_id; /* EntityDescriptor/@entityID */
    char **acs_urls; /* HTTP-POST AssertionConsumerService locations, the default first; NULL-terminated */
    size_t num_acs;
    int wants_signed_requests; /* SPSSODescriptor/@AuthnRequestsSigned */
    int has_encryption_key;    /* a KeyDescriptor usable for encryption */
} saml_sp_metadata_t;

typedef struct st_saml_sp_config_t {
    char *name;          /* label in audit events and metrics; default: the entity id */
    char *metadata_file; /* absolute path */
    saml_sp_metadata_t md;
    char **groups; /* NULL-terminated; empty = every signed-in user */
    size_t num_groups;
    saml_nameid_t nameid;
    unsigned attributes;            /* SAML_ATTR_* */
    char *renamed[SAML_ATTR_COUNT]; /* attribute_map: the Name sent instead of the standard one, or NULL */
    int uri_names;                  /* attribute names as urn:oid (URI name format) rather than basic names */
    saml_sign_t sign;
    int encrypt;        /* encrypt the assertion with the SP's key */
    int require_signed; /* AuthnRequests must be signed (also forced by the metadata) */
    int idp_initiated;  /* /saml/idp/init?sp=... allowed */
    int require_mfa;    /* saml...mfa: a second factor for this SP (like routes[].mfa) */
    size_t line;        /* where it was configured, for messages */
} saml_sp_config_t;

struct yaml_node_s;
typedef struct st_gw_config_ctx_t gw_config_ctx_t;
/* ---- the broker: portier as a service provider to enterprise IdPs (issue #7) ---- */
#define SAML_MAX_CONNECTIONS 64

typedef enum { SAML_MATCH_EMAIL, SAML_MATCH_USERNAME } saml_match_t;

/* One enterprise IdP ("connection"): saml.sp.connections[]. */
typedef struct st_saml_conn_config_t {
    char *name;          /* ?idp=NAME, audit actor "saml:NAME", login page button */
    char *label;         /* button text; default: the name */
    char *metadata_file; /* the IdP's metadata (absolute path); with metadata_url: the backing file */
    char *entity_id;     /* EntityDescriptor/@entityID: the only accepted Issuer (a refresh cannot change it) */
    struct st_saml_md_slot_t *md; /* the metadata in use (endpoints, signing certificates): saml_conn_md() */
    char *metadata_url;           /* https URL refreshed from, or NULL */
    char *metadata_ca;            /* CA file for metadata_url's TLS (NULL: the system's) */
    char *metadata_signer_pem;    /* metadata_signing_certificate (PEM): fetched metadata must be signed by it */
    unsigned metadata_refresh;    /* seconds between fetches */
    size_t metadata_line, metadata_refresh_line; /* where they were configured (0: not) */
    char metadata_key[160];                      /* "saml.sp.connections[i].metadata", for messages */
    char **domains; /* email domains it owns (home-realm discovery, sso_only), lower case */
    size_t num_domains;
    saml_match_t match;            /* how a first login finds an existing user */
    int jit;                       /* create unknown users */
    int sso_only;                  /* users of `domains` cannot sign in with a password */
    int idp_initiated;             /* unsolicited responses accepted */
    saml_nameid_t nameid;          /* NameIDPolicy/@Format requested */
    int request_binding;           /* SAML_REQUEST_BINDING_*: how our requests and answers reach the IdP */
    char *attr[5];                 /* attribute names: SAML_CA_* */
    char **group_from, **group_to; /* group_map: IdP group -> portier group (empty: the IdP's names as they are) */
    size_t num_group_map;
    char **mfa_contexts; /* AuthnContextClassRef values that count as multi-factor */
    size_t num_mfa_contexts;
    size_t line;
} saml_conn_config_t;
/* request_binding: AUTO (unset) is Redirect when the IdP's metadata offers it, else POST */
enum { SAML_REQUEST_BINDING_AUTO, SAML_REQUEST_BINDING_REDIRECT, SAML_REQUEST_BINDING_POST };
enum { SAML_CA_USERNAME, SAML_CA_EMAIL, SAML_CA_DISPLAY_NAME, SAML_CA_GROUPS, SAML_CA_UNUSED };

typedef struct st_saml_broker_config_t {
    int enabled;     /* a saml.sp section exists */
    char *entity_id; /* NULL = <public_url>/saml/sp/metadata */
    char *key_file;  /* NULL = saml.idp.key */
    char *cert_file; /* NULL = saml.idp.certificate */
    saml_conn_config_t *conns;
    size_t num_conns;
    unsigned metadata_refresh_minimum; /* saml.sp.metadata_refresh_minimum (tests lower it) */
} saml_broker_config_t;
#define SAML_MD_REFRESH_DEFAULT 3600
#define SAML_MD_REFRESH_MINIMUM 60
#define SAML_MD_REFRESH_MAXIMUM (7 * 86400)

/* sp_config.c: the saml.sp section (called by saml_config_load). */
void saml_broker_config_load(gw_config_ctx_t *ctx, saml_broker_config_t *b, struct yaml_node_s *node);
void saml_broker_config_dispose(saml_broker_config_t *b);
/* The connection owning the domain of `email` (case-insensitive), or NULL. */
const saml_conn_config_t *saml_conn_for_email(const saml_broker_config_t *b, const char *email);
/* 1 when `login` (a user name or email address) belongs to a connection with sso_only set. */
int saml_sso_only(const saml_broker_config_t *b, const char *login);

typedef struct st_saml_config_t {
    char *entity_id;       /* saml.idp.entity_id; NULL = <public_url>/saml/metadata */
    char *key_file;        /* saml.idp.key: PEM RSA private key, 0600 */
    char *cert_file;       /* saml.idp.certificate: PEM certificate of that key */
    char *next_key_file;   /* <key>.next: made by `portier keys saml-rotate`, becomes the key at the next rotate */
    char *next_cert_file;  /* <certificate>.next: published in the metadata (when it exists) before the switch */
    char *nameid_key_file; /* saml.idp.persistent_id_key: secret of the pairwise identifiers */
    unsigned assertion_lifetime;
    size_t max_message;
    int sign_metadata;       /* saml.idp.sign_metadata: /saml/metadata carries an enveloped signature */
    int keyinfo_certificate; /* saml.idp.keyinfo_certificate: the certificate in each signature (default 1) */
    char *sp_dir;            /* saml.sp_dir: every *.xml there is an SP with default settings */
    saml_sp_config_t *sps;
    size_t num_sps;
    saml_broker_config_t broker; /* saml.sp */
} saml_config_t;

/* ---- configuration (config.c), called by gateway/config.c for the top-level `saml` key ---- */
/* Parses and validates the section; errors go through gw_config_error. Returns the section (possibly
 * incomplete when errors were reported: the whole configuration is then discarded). */
saml_config_t *saml_config_load(gw_config_ctx_t *ctx, struct yaml_node_s *node);
void saml_config_free(saml_config_t *c);
/* Parses an SP metadata document into md (caller disposes). 0, or -1 with a reason. */
int saml_sp_metadata_parse(const char *xml, size_t len, saml_sp_metadata_t *md, char *err, size_t errlen);
void saml_sp_metadata_dispose(saml_sp_metadata_t *md);

/* ---- the IdP in the server ---- */
typedef struct st_saml_idp_t saml_idp_t;
struct st_gw_server_t;
struct st_h2o_hostconf_t;
/* Loads keys and builds the IdP; NULL with a message. Call on the main thread before the workers start (it calls
 * lasso_init). */
saml_idp_t *saml_idp_create(const gw_config_t *conf, const char *state_dir, char *err, size_t errlen);
void saml_idp_destroy(saml_idp_t *idp);
/* Per-SP counters in the Prometheus text format (malloc'd), appended to /metrics. */
char *saml_metrics_render(const saml_idp_t *idp, size_t *len);
/* Registers /saml/... on hostconf. */
void saml_register(saml_idp_t *idp, struct st_gw_server_t *server, struct st_h2o_hostconf_t *hostconf);

/* Seconds a single logout walk across the SPs (saml/slo.c; started by /logout or by an SP's LogoutRequest) may
 * take before its state is void. */
#define SAML_LOGOUT_WALK_TTL 600
/* The cookie that binds a walk to the browser that started it: only that browser can continue the walk (and receive
 * the answer to the SP that asked). Set for SAML_LOGOUT_WALK_TTL seconds. */
#define SAML_LOGOUT_WALK_COOKIE "__Host-portier-slo"
#define SAML_LOGOUT_TOKEN_MAX   64 /* a walk's state and cookie value, without the NUL */

/* /logout's walk (worker thread, before the session row is deleted): marks the SP sign-ins of `session` for a walk
 * bound to this browser. Returns how many SPs are to be walked (then `state` is the walk's state for
 * /saml/slo/next?state= and `cookie` the value of SAML_LOGOUT_WALK_COOKIE, both secrets the caller wipes), 0 when
 * there are none, or a negative error. */
struct st_store_t;
int saml_logout_walk_start(struct st_store_t *db, const uint8_t session[32], char state[SAML_LOGOUT_TOKEN_MAX + 1],
                           char cookie[SAML_LOGOUT_TOKEN_MAX + 1]) __attribute__((warn_unused_result));

/* A signed message on its way to an enterprise IdP through the browser. */
typedef struct st_saml_outbound_t {
    char *url;         /* HTTP-Redirect: the signed URL; HTTP-POST: the form's target (malloc'd; NULL: nothing) */
    char *body;        /* HTTP-POST: the signed message in base64 (malloc'd); NULL for HTTP-Redirect */
    char *relay_state; /* HTTP-POST: the form's RelayState (malloc'd) or NULL */
} saml_outbound_t;
struct st_h2o_req_t;
/* A 303 to o->url (Redirect), or the auto-submitting form page (POST) carrying o->body as `field`. Loop thread. */
void saml_outbound_send(struct st_h2o_req_t *req, const saml_outbound_t *o, const char *field);
void saml_outbound_dispose(saml_outbound_t *o);

/* SP-initiated single logout towards an enterprise IdP. Worker thread, before the session row is deleted: when an
 * IdP with a logout endpoint opened `session`, records a signed LogoutRequest and fills *out (the connection's
 * binding) with where the browser goes; its answer continues to `next` (a path of ours). out->url NULL: nothing to
 * do. 0 or -1. Send with saml_outbound_send(req, out, "SAMLRequest"), then saml_outbound_dispose. */
struct st_store_t;
int saml_broker_logout(saml_idp_t *saml, struct st_store_t *db, const uint8_t session[32], const char *next,
                       saml_outbound_t *out);

/* Metadata refresh of the broker's connections with a metadata_url (sp_refresh.c): a background thread, started
 * after the worker pool (audit events go through it) and stopped before it. No-op without such connections. */
void saml_broker_refresh_start(saml_idp_t *saml, struct st_gw_server_t *server);
void saml_broker_refresh_stop(saml_idp_t *saml);

/* ---- CLI ---- */
/* `portier keys saml-rotate`: without a next key, makes <key>.next and <certificate>.next (published from the next
 * start on); with one, moves them into place (the old files are kept as *.prev). Returns an exit code. */
int saml_cli_rotate(const gw_config_t *conf);
/* `portier saml add-sp FILE NAME`: checks the metadata and copies it to <sp_dir>/NAME.xml. Exit code. */
int saml_cli_add_sp(const gw_config_t *conf, const char *file, const char *name);
/* check-config: the SAML key pair loads and passes the key rules. 0 or -1 with a message. */
int saml_check(const gw_config_t *conf, char *err, size_t errlen);

#endif
