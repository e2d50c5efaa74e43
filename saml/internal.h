/*
 * saml internals shared between the module's files. The "common" part (keys, safe XML, intake, per-worker
 * LassoServer, metadata) knows nothing of the IdP flows, so the SP broker can reuse it as is.
 */
#ifndef PORTIER_SAML_INTERNAL_H
#define PORTIER_SAML_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <libxml/tree.h>

#include "saml/saml.h"
#include "gateway/config.h"

#define SAML_MAX_METADATA (1024 * 1024)
#define SAML_CLOCK_SKEW   180 /* seconds of clock difference tolerated on inbound messages */

#define SAML_BINDING_REDIRECT "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
#define SAML_BINDING_POST     "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
#define SAML_NS_METADATA      "urn:oasis:names:tc:SAML:2.0:metadata"
#define SAML_NS_DSIG          "http://www.w3.org/2000/09/xmldsig#"

/* ---- keys.c: a signing key pair, read and checked once ---- */
typedef struct st_saml_keypair_t {
    char *key_file, *cert_file; /* what lasso is given: see lserver.c */
    char *key_pem;              /* the private key file's text (wiped on dispose) */
    char *cert_pem;             /* the certificate file's text */
    char *cert_b64;             /* the certificate's DER in base64 without line breaks, for metadata */
    unsigned bits;
} saml_keypair_t;
/* Loads an RSA (2048 or 3072 bit) key and its certificate; refuses other key types and sizes and a certificate
 * of another key. 0 or -1 with a message. */
int saml_keypair_load(saml_keypair_t *kp, const char *key_file, const char *cert_file, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Only a certificate (the next one, published before a rotation). */
int saml_cert_load(saml_keypair_t *kp, const char *cert_file, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void saml_keypair_dispose(saml_keypair_t *kp);
/* Writes a new RSA-2048 key (0600) and a self-signed certificate (10 years) for `cn`. 0 or -1. */
int saml_keypair_generate(const char *key_file, const char *cert_file, const char *cn, char *err, size_t errlen);
/* The self-signed certificate (PEM, malloc'd) of a new RSA key that is thrown away, or NULL: a key nobody holds,
 * for tests that need an IdP whose signatures can never be forged. */
char *saml_self_signed_pem(const char *cn);

/* ---- xml.c: the only way SAML XML is parsed here ---- */
/* Parses without network access, entity substitution or DTD loading, and refuses any DOCTYPE. NULL + reason. */
xmlDocPtr saml_xml_parse(const char *buf, size_t len, const char **reason);
/* Attribute value (libxml-allocated, xmlFree) or NULL. */
char *saml_xml_attr(xmlNodePtr n, const char *name);
/* XML-escapes s into a malloc'd string. */
char *saml_xml_escape(const char *s);
/* 1 when n is the element {ns}name. */
int saml_xml_is(xmlNodePtr n, const char *ns, const char *name);
/* parent's first child element {ns}name, or NULL (parent may be NULL). */
xmlNodePtr saml_xml_child(xmlNodePtr parent, const char *ns, const char *name);

/* ---- intake.c: the gatekeeper every inbound SAML message passes before lasso sees it ---- */
typedef enum { SAML_BINDING_KIND_REDIRECT, SAML_BINDING_KIND_POST } saml_binding_kind_t;
typedef struct st_saml_intake_t {
    xmlDocPtr doc;      /* the decoded message (caller frees with xmlFreeDoc) */
    const char *root;   /* local name of the root element ("AuthnRequest", "LogoutRequest", ...) */
    const char *reason; /* on refusal: a short reason for audit events ("sha1", "doctype", "too_large", ...) */
} saml_intake_t;
/* message: the SAMLRequest/SAMLResponse value, URL-decoded (base64; DEFLATE for Redirect). sig_alg: the
 * Redirect binding's SigAlg parameter or NULL. Checks: encoded and decoded size <= max, valid base64 and
 * DEFLATE, well-formed XML without DOCTYPE, and no SHA-1 (or unknown) SigAlg, SignatureMethod or DigestMethod.
 * 0, or -1 with in->reason set. */
int saml_intake(saml_binding_kind_t binding, const char *message, size_t len, const char *sig_alg, size_t max,
                saml_intake_t *in) __attribute__((warn_unused_result));
void saml_intake_dispose(saml_intake_t *in);
/* The value of `name` in a raw query string, percent-decoded (malloc'd), or NULL. */
char *saml_query_param(const char *query, const char *name);
typedef struct st_saml_peek_t {
    char root[32];      /* local name of the root element */
    char *issuer, *acs; /* malloc'd or NULL */
    int signed_;        /* a signature is present (Redirect: the Signature parameter; POST: an enveloped one) */
} saml_peek_t;
/* saml_intake on a received message (Redirect: the raw query string holding `param`; POST: the base64 value),
 * then what the message says about itself, for the checks made before lasso. NULL, or the refusal reason. */
const char *saml_intake_peek(saml_binding_kind_t binding, const char *message, const char *param, size_t max,
                             saml_peek_t *peek);
void saml_peek_dispose(saml_peek_t *peek);

/* ---- metadata.c ---- */
/* The IdP's metadata document (malloc'd). next_cert_b64 may be NULL. */
char *saml_idp_metadata_build(const char *entity_id, const char *base_url, const char *cert_b64,
                              const char *next_cert_b64);

/* The same document with an enveloped RSA-SHA256 signature by kp's key, its certificate in KeyInfo (malloc'd), or
 * NULL. */
char *saml_metadata_sign(const char *xml, const saml_keypair_t *kp);

/* ---- sign.c: enveloped signatures with a key parsed once ---- */
struct _xmlSecKey;
/* Our signing key for xmlsec, with our certificate (for KeyInfo) when with_certificate. NULL on failure; the caller
 * frees it with xmlSecKeyDestroy. */
struct _xmlSecKey *saml_sign_key_load(const saml_keypair_t *kp, int with_certificate);
/* Makes lasso leave the assertion of `login` (built by lasso_login_build_assertion) unsigned, so that
 * saml_sign_response signs it. -1 when this lasso keeps its signature setting elsewhere (then lasso signs). */
struct _LassoLogin;
int saml_sign_take_over_assertion(struct _LassoLogin *login) __attribute__((warn_unused_result));
/* lasso's unsigned samlp:Response (base64, as in msg_body; NULL gives NULL) with the Assertion and/or the Response
 * signed, base64 (malloc'd), or NULL: enveloped RSA-SHA256, exclusive c14n, Reference "#ID", each signature right
 * after its element's Issuer, KeyInfo with the certificate when the key has one. key is borrowed. */
char *saml_sign_response(const char *b64, struct _xmlSecKey *key, int sign_response, int sign_assertion);

/* Signs the whole document (Reference URI=""), the Signature first in the root (where the metadata schema wants
 * it). key is borrowed. 0, or -1 with the document unchanged. */
int saml_sign_document(xmlDocPtr doc, struct _xmlSecKey *key) __attribute__((warn_unused_result));
/* A protocol message (root with an ID, saml:Issuer its first child) with an enveloped signature of the root right
 * after the Issuer, serialised (malloc'd), or NULL. key is borrowed (RSA); cert_pem, when not NULL, goes into
 * KeyInfo. */
struct evp_pkey_st;
char *saml_sign_message(const char *xml, struct evp_pkey_st *key, const char *cert_pem);

/* ---- lserver.c: one LassoServer per worker thread ---- */
typedef struct st_saml_lasso_t saml_lasso_t;
typedef struct st_saml_peer_t {
    int role;             /* LassoProviderRole of the peer */
    const char *metadata; /* borrowed for the pool's lifetime */
    const char *entity_id;
    int encrypt; /* encrypt assertions for this peer */
} saml_peer_t;
/* Calls lasso_init() once (main thread, before workers start). */
int saml_lasso_init(void);
/* own_metadata, kp and peers are borrowed for the pool's lifetime. */
/* keyinfo_certificate: put our certificate into every signature's KeyInfo. */
saml_lasso_t *saml_lasso_create(size_t slots, const char *own_metadata, const saml_keypair_t *kp,
                                const saml_peer_t *peers, size_t num_peers, int keyinfo_certificate);
/* The LassoServer of worker `slot`, built on first use by that worker (only that thread touches the slot).
 * Borrowed; NULL when it could not be built (logged). Worker threads only. */
struct _LassoServer *saml_lasso_server(saml_lasso_t *pool, size_t slot);
/* The signing key of worker `slot` for saml_sign_*, parsed with its server (NULL until saml_lasso_server built
 * it). Borrowed; worker threads only. */
struct _xmlSecKey *saml_lasso_sign_key(saml_lasso_t *pool, size_t slot);
/* Which key the provider of SP `peer` (index in peers) holds in worker `slot`'s server: the signing one (as built:
 * with the certificate when keyinfo_certificate) before lasso signs anything for that SP (lasso_signs), or one
 * without certificate, cheaper to copy, before lasso builds an assertion for it that sign.c signs. Switches only
 * when the use changes. 0, or -1 (no server or provider). Worker threads only. */
int saml_lasso_key_for(saml_lasso_t *pool, size_t slot, size_t peer, int lasso_signs)
    __attribute__((warn_unused_result));
void saml_lasso_destroy(saml_lasso_t *pool);

/* ---- the IdP (idp.c, sso.c, assertion.c) ---- */
#define SAML_NAMEID_KEY_LEN  32
#define SAML_NAMEID_KEY_FILE "saml-nameid.key" /* in state_dir unless saml.idp.persistent_id_key says */

typedef struct st_saml_sp_stats_t {
    _Atomic unsigned long long issued, denied, failed;
} saml_sp_stats_t;

struct st_saml_idp_t {
    const gw_config_t *conf;
    const saml_config_t *sc;
    char *entity_id;
    char *metadata;        /* our EntityDescriptor, as lasso is given it */
    char *served_metadata; /* what /saml/metadata answers: the same, signed when saml.idp.sign_metadata is set */
    saml_keypair_t kp, next;
    int has_next;
    uint8_t nameid_key[SAML_NAMEID_KEY_LEN];
    saml_peer_t *peers; /* one per SP, same order as sc->sps */
    saml_lasso_t *lasso;
    saml_sp_stats_t *stats; /* one per SP */
    _Atomic unsigned long long unknown_sp;
    struct st_saml_broker_t *broker; /* saml.sp: NULL when not configured */
};

const saml_sp_config_t *saml_sp_by_entity(const saml_idp_t *idp, const char *entity_id, size_t *index);
const saml_sp_config_t *saml_sp_by_name(const saml_idp_t *idp, const char *name, size_t *index);

struct st_store_user_t;
struct st_store_session_t;
struct _LassoLogin;
struct _LassoSamlp2AuthnRequest;
/* The NameID for user at sp: 0 with value and format URI, -1 when the user lacks what the format needs (no email
 * address for emailAddress). */
int saml_nameid_for(const saml_idp_t *idp, const saml_sp_config_t *sp, const struct st_store_user_t *user, char *value,
                    size_t len, const char **format);
/* Fills lasso's freshly built assertion: NameID, released attributes, signing choices. `released` receives the
 * released attribute names as a JSON array (for the audit event). 0 or -1. */
int saml_assertion_fill(struct _LassoLogin *login, const saml_idp_t *idp, const saml_sp_config_t *sp,
                        const struct st_store_user_t *user, const char *name_id, const char *format, char *released,
                        size_t released_len);
/* The authentication context (issue #4's MFA): which AuthnContextClassRef this session earns for this request,
 * the one place that decides. A second factor is needed when the SP requires it (`mfa`), one of the user's groups
 * is in mfa.required_groups, or the request asks for a multi-factor class (or "better" than password); then, for
 * a password-only session, *step_up is set and NULL returned (the caller sends the user to /login/mfa). NULL
 * without *step_up: the request asks only for classes portier cannot vouch for. */
#define SAML_ACR_MFA "https://refeds.org/profile/mfa"
const char *saml_authn_context(const gw_config_t *conf, const saml_sp_config_t *sp,
                               const struct st_store_session_t *session, const struct _LassoSamlp2AuthnRequest *req,
                               int *step_up);

/* sso.c */
struct st_h2o_hostconf_t;
struct st_h2o_req_t;
void saml_sso_register(saml_idp_t *idp, struct st_h2o_hostconf_t *hostconf);
/* slo.c */
void saml_slo_register(saml_idp_t *idp, struct st_h2o_hostconf_t *hostconf);
/* idp.c: the auto-submitting form of the HTTP-POST binding (to an ACS from the SP's metadata). */
void saml_send_post_form(struct st_h2o_req_t *req, const char *url, const char *field, const char *value,
                         const char *relay_state);

/* ---- time ---- */
/* "YYYY-MM-DDThh:mm:ssZ" of t (UTC, gmtime_r). out >= 21 bytes. */
void saml_time_format(time_t t, char *out, size_t outlen);

/* ---- the broker (sp_*.c): portier as a service provider to enterprise IdPs ---- */
#define SAML_MD_MAX_CERTS 4
/* sp_metadata.c: an enterprise IdP's metadata, parsed into an immutable, reference-counted snapshot. */
typedef struct st_saml_idp_md_t {
    _Atomic unsigned refs;
    char *entity_id;
    char *sso_url;                  /* SingleSignOnService, HTTP-Redirect binding, or NULL */
    char *sso_post_url;             /* SingleSignOnService, HTTP-POST binding, or NULL (not both NULL) */
    char *slo_url;                  /* SingleLogoutService, HTTP-Redirect binding, or NULL */
    char *slo_post_url;             /* SingleLogoutService, HTTP-POST binding, or NULL */
    char *certs[SAML_MD_MAX_CERTS]; /* signing certificates (PEM) from the metadata: the only keys ever trusted */
    size_t num_certs;
    time_t valid_until;       /* the earliest validUntil of the document and the entity; 0: none */
    unsigned char digest[32]; /* SHA-256 of the document (a refresh bringing the same bytes changes nothing) */
} saml_idp_md_t;
typedef struct st_saml_idp_md_check_t {
    const char *entity_id;  /* required entityID (root EntityDescriptor, or inside an EntitiesDescriptor); NULL: any */
    const char *signer_pem; /* the document must carry an enveloped signature by this certificate; NULL: unsigned ok */
    time_t now;
    int allow_expired; /* keep (and record) a past validUntil instead of refusing it (the backing file at start) */
} saml_idp_md_check_t;
/* The metadata gatekeeper: size limit, no DOCTYPE, the signature (RSA-SHA256 or stronger over the root, by the pinned
 * certificate only, KeyInfo ignored), the entityID, validUntil, an IDPSSODescriptor with a Redirect or POST SSO
 * endpoint and RSA signing certificates. NULL with *out (a reference for the caller), or a short refusal reason. */
const char *saml_idp_md_parse(const char *xml, size_t len, const saml_idp_md_check_t *chk, saml_idp_md_t **out)
    __attribute__((warn_unused_result));
/* The one place that picks the binding of a message to the IdP. sso: SingleSignOnService, else SingleLogoutService.
 * request_binding (SAML_REQUEST_BINDING_*) names the binding; AUTO is Redirect when offered, else POST. For
 * SingleSignOnService a named binding the IdP does not offer gives NULL; single logout falls back to the other
 * binding. The Location (borrowed from md), *post telling the binding; NULL when there is none. */
const char *saml_idp_md_endpoint(const saml_idp_md_t *md, int request_binding, int sso, int *post);
const char *saml_idp_md_reason_text(const char *reason); /* for people: "no SingleSignOnService for ..." */
int saml_idp_md_expired(const saml_idp_md_t *md, time_t now);
void saml_idp_md_release(saml_idp_md_t *md);
/* metadata_signing_certificate: a PEM certificate of an RSA key >= 2048 bits. PEM (malloc'd), or NULL + message. */
char *saml_md_signer_load(const char *path, char *err, size_t errlen);
typedef struct st_saml_md_slot_t saml_md_slot_t;
saml_md_slot_t *saml_md_slot_create(saml_idp_md_t *md); /* takes md's reference */
void saml_md_slot_destroy(saml_md_slot_t *s);
/* The connection's current metadata: a reference, released with saml_idp_md_release. Any thread. */
saml_idp_md_t *saml_conn_md(const saml_conn_config_t *c);
/* Publishes md (takes its reference); the previous snapshot is freed when its last reader releases it. */
void saml_conn_md_replace(const saml_conn_config_t *c, saml_idp_md_t *md);
/* sp_verify.c: the one enveloped signature `sig` of `parent` (Reference to parent's ID, only enveloped + exclusive
 * c14n, RSA-SHA256/384/512) verified with one of the certificates `pems` and nothing else. whole_document: a Reference
 * URI="" is also accepted when parent is the root (signed metadata; never for protocol messages). NULL or a reason. */
const char *saml_dsig_verify_enveloped(xmlNodePtr sig, xmlNodePtr parent, const char *const *pems, size_t num_pems,
                                       int whole_document);

typedef struct st_saml_sp_expect_t {
    const saml_conn_config_t *conn; /* the connection whose entityID applies */
    const saml_idp_md_t *md;        /* its metadata (keys), held by the caller */
    const char *acs_url;            /* Destination and Recipient */
    const char *own_entity_id;      /* Audience */
    const char *decrypt_key_pem;    /* our private key for EncryptedAssertion; NULL: encrypted ones are refused */
    time_t now;
} saml_sp_expect_t;
typedef struct st_saml_sp_assertion_t {
    char *in_response_to; /* of the bearer SubjectConfirmationData (the Response's, when present, agrees); or NULL */
    char *assertion_id, *name_id, *name_id_format, *authn_class, *session_index;
    time_t not_before;      /* Conditions/@NotBefore, 0 when absent */
    time_t not_on_or_after; /* the earlier of Conditions' and the bearer data's */
    struct {
        char *name, *value;
    } * attrs; /* one entry per AttributeValue */
    size_t num_attrs;
} saml_sp_assertion_t;
/* sp_verify.c: the XML half of the assertion gatekeeper, in the order of issue #7: status Success; structure (one
 * assertion, unique IDs, signatures only on Response/Assertion) and signatures (metadata keys only, the
 * assertion covered); Issuer(s); Destination, Recipient, Audience; InResponseTo consistency; the validity window
 * is read (judged by saml_sp_check_times). An EncryptedAssertion is decrypted first (see decrypt()): *doc is then
 * replaced by the decrypted document (the caller frees whatever *doc is afterwards). NULL with out filled from the
 * covered assertion, or the refusal reason (out is then partially filled; dispose it either way). The caller makes the
 * stored-request and replay checks. */
const char *saml_sp_verify(xmlDocPtr *doc, const saml_sp_expect_t *x, saml_sp_assertion_t *out);
/* The validity window of a verified assertion at `now`, with SAML_CLOCK_SKEW: NULL, "not_yet_valid" or "expired". */
const char *saml_sp_check_times(const saml_sp_assertion_t *a, time_t now);
void saml_sp_assertion_dispose(saml_sp_assertion_t *a);
int saml_sp_parse_instant(const char *s, time_t *out);

/* sp_broker.c: the broker's state, built once at start (main thread), read-only afterwards. */
typedef struct st_saml_broker_t {
    const gw_config_t *conf;
    const saml_broker_config_t *bc;
    struct st_gw_server_t *server;
    char *entity_id, *acs_url, *slo_url, *metadata;
    saml_keypair_t kp;
    struct evp_pkey_st *key;           /* signs our messages to IdPs (RSA-SHA256, both bindings) */
    struct st_saml_refresh_t *refresh; /* sp_refresh.c; NULL when no connection has a metadata_url */
} saml_broker_t;
/* sp_refresh.c: Prometheus lines of the metadata refresh counters (appended to out, at most cap; bytes written). */
size_t saml_refresh_metrics(const saml_broker_t *b, char *out, size_t cap);
saml_broker_t *saml_broker_create(const gw_config_t *conf, char *err, size_t errlen);
void saml_broker_destroy(saml_broker_t *b);
void saml_broker_register(saml_broker_t *b, struct st_gw_server_t *server, struct st_h2o_hostconf_t *hostconf);
const saml_conn_config_t *saml_conn_by_name(const saml_broker_config_t *bc, const char *name);
const saml_conn_config_t *saml_conn_by_entity(const saml_broker_config_t *bc, const char *entity_id);
/* A signed HTTP-Redirect binding URL: dest?param=DEFLATE+base64(xml)[&RelayState]&SigAlg(RSA-SHA256)&Signature. */
int saml_broker_redirect(const saml_broker_t *b, const char *dest, const char *param, const char *xml,
                         const char *relay_state, char *location, size_t len);
/* The message in the binding `post` names. Redirect: location = the signed URL (saml_broker_redirect), *body NULL.
 * POST: location = dest, *body = base64 of xml with an enveloped signature after its Issuer (malloc'd), for
 * saml_send_post_form(req, location, param, *body, relay_state). 0 or -1 (*body NULL). */
int saml_broker_encode(const saml_broker_t *b, int post, const char *dest, const char *param, const char *xml,
                       const char *relay_state, char *location, size_t len, char **body)
    __attribute__((warn_unused_result));
/* sp_acs.c */
void saml_acs_register(saml_broker_t *b, struct st_h2o_hostconf_t *hostconf);
/* sp_slo.c: /saml/sp/slo, single logout requested by an enterprise IdP */
#define SAML_SP_SLO_PATH "/saml/sp/slo"
void saml_slo_sp_register(saml_broker_t *b, struct st_h2o_hostconf_t *hostconf);
#define SAML_SP_BROWSER_COOKIE "__Host-portier-saml-sp" /* SameSite=None: it must ride along the IdP's POST */
#define SAML_SP_STATE_BYTES    32
#define SAML_SP_STATE_MAX      48
#define SAML_SP_REQUEST_TTL    600 /* seconds a user may spend at the IdP */

#endif
