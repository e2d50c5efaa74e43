/*
 * The broker's set-up and the start of a sign-in at an enterprise IdP.
 *
 *   GET /saml/sp/metadata                        our SP metadata (entityID, ACS for HTTP-POST, signing certificate)
 *   GET /saml/sp/login?idp=NAME[&return_to=...]  a signed AuthnRequest (RSA-SHA256) to the IdP
 *   GET /saml/sp/login?email=ADDRESS[&return_to] the same, the connection found by the address's domain
 *
 * The connection's request_binding (saml_idp_md_endpoint decides) sends it over HTTP-Redirect (DEFLATE, a query
 * signature, a 303) or over HTTP-POST (an enveloped XML signature by saml_sign_message, base64, in the IdP side's
 * auto-submitting form page, whose CSP lets the form go to that IdP's origin only).
 *
 * The request's state stays server-side (saml_sp_requests): the RelayState we send is a random token whose hash
 * keys the row, and the row also holds the hash of a random value in a SameSite=None cookie, because the IdP's
 * answer arrives as a cross-site POST where our SameSite=Lax cookies are not sent. Only the browser that started a
 * sign-in can finish it, and nothing the IdP echoes back is ever used as a URL: the return path was validated
 * here and is read back from the row.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <zlib.h>

#include "gateway/gateway.h"
#include "policy/policy.h"
#include "saml/internal.h"

#define SP_METADATA_PATH "/saml/sp/metadata"
#define SP_LOGIN_PATH    "/saml/sp/login"
#define SP_ACS_PATH      "/saml/sp/acs"
#define SP_GO_JS_PATH    "/saml/sp/go.js"
#define NAME_MAX_LEN     64
#define EMAIL_MAX_LEN    320
#define REQUEST_MAX      4096
#define LOCATION_MAX     16384
#define SIG_ALG_SHA256   "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"

static const char *const nameid_uris[] = {
    [SAML_NAMEID_PERSISTENT] = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    [SAML_NAMEID_EMAIL] = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    [SAML_NAMEID_UNSPECIFIED] = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    [SAML_NAMEID_TRANSIENT] = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"};

const saml_conn_config_t *saml_conn_by_name(const saml_broker_config_t *bc, const char *name)
{
    for (size_t i = 0; name != NULL && i != bc->num_conns; ++i)
        if (bc->conns[i].name != NULL && strcmp(bc->conns[i].name, name) == 0)
            return &bc->conns[i];
    return NULL;
}

const saml_conn_config_t *saml_conn_by_entity(const saml_broker_config_t *bc, const char *entity_id)
{
    for (size_t i = 0; entity_id != NULL && i != bc->num_conns; ++i)
        if (bc->conns[i].entity_id != NULL && strcmp(bc->conns[i].entity_id, entity_id) == 0)
            return &bc->conns[i];
    return NULL;
}

/* ---- set-up ---- */

static char *build_metadata(const saml_broker_t *b)
{
    char *out;
    int n = asprintf(&out,
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<md:EntityDescriptor xmlns:md=\"" SAML_NS_METADATA "\" xmlns:ds=\"" SAML_NS_DSIG
                     "\" entityID=\"%s\">\n"
                     "  <md:SPSSODescriptor AuthnRequestsSigned=\"true\" WantAssertionsSigned=\"true\" "
                     "protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\n"
                     "    <md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s"
                     "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\n"
                     "    <md:KeyDescriptor use=\"encryption\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s"
                     "</ds:X509Certificate></ds:X509Data></ds:KeyInfo><md:EncryptionMethod "
                     "Algorithm=\"http://www.w3.org/2009/xmlenc11#aes256-gcm\"/><md:EncryptionMethod "
                     "Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes256-cbc\"/><md:EncryptionMethod "
                     "Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\"/></md:KeyDescriptor>\n"
                     "    <md:SingleLogoutService Binding=\"" SAML_BINDING_REDIRECT "\" Location=\"%s\"/>\n"
                     "    <md:NameIDFormat>%s</md:NameIDFormat>\n"
                     "    <md:NameIDFormat>%s</md:NameIDFormat>\n"
                     "    <md:AssertionConsumerService Binding=\"" SAML_BINDING_POST
                     "\" Location=\"%s\" index=\"0\" isDefault=\"true\"/>\n"
                     "  </md:SPSSODescriptor>\n"
                     "</md:EntityDescriptor>\n",
                     b->entity_id, b->kp.cert_b64, b->kp.cert_b64, b->slo_url, nameid_uris[SAML_NAMEID_PERSISTENT],
                     nameid_uris[SAML_NAMEID_EMAIL], b->acs_url);
    return n < 0 ? NULL : out;
}

saml_broker_t *saml_broker_create(const gw_config_t *conf, char *err, size_t errlen)
{
    const saml_config_t *sc = conf->saml;
    const saml_broker_config_t *bc = &sc->broker;
    saml_broker_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->conf = conf;
    b->bc = bc;
    const char *key = bc->key_file != NULL ? bc->key_file : sc->key_file;
    const char *cert = bc->cert_file != NULL ? bc->cert_file : sc->cert_file;
    if (saml_keypair_load(&b->kp, key, cert, err, errlen) != 0)
        goto fail;
    if (saml_lasso_init() != 0) { /* xmlsec signs POST-binding messages: initialised once, before any worker */
        snprintf(err, errlen, "saml.sp: cannot initialise lasso / xmlsec");
        goto fail;
    }
    BIO *bio = BIO_new_mem_buf(b->kp.key_pem, -1);
    b->key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (bc->entity_id != NULL)
        b->entity_id = strdup(bc->entity_id);
    else if (asprintf(&b->entity_id, "%s" SP_METADATA_PATH, conf->public_url) < 0)
        b->entity_id = NULL;
    if (asprintf(&b->acs_url, "%s" SP_ACS_PATH, conf->public_url) < 0)
        b->acs_url = NULL;
    if (asprintf(&b->slo_url, "%s" SAML_SP_SLO_PATH, conf->public_url) < 0)
        b->slo_url = NULL;
    if (b->key == NULL || b->entity_id == NULL || b->acs_url == NULL || b->slo_url == NULL ||
        (b->metadata = build_metadata(b)) == NULL) {
        snprintf(err, errlen, "saml.sp: cannot prepare the service provider");
        goto fail;
    }
    return b;
fail:
    saml_broker_destroy(b);
    return NULL;
}

void saml_broker_destroy(saml_broker_t *b)
{
    if (b == NULL)
        return;
    EVP_PKEY_free(b->key);
    saml_keypair_dispose(&b->kp);
    free(b->entity_id);
    free(b->acs_url);
    free(b->slo_url);
    free(b->metadata);
    free(b);
}

/* ---- the AuthnRequest (worker side) ---- */

/* raw DEFLATE + base64 of the request (HTTP-Redirect binding), malloc'd */
static char *deflate_b64(const char *xml)
{
    unsigned char buf[REQUEST_MAX];
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    z.next_in = (unsigned char *)xml;
    z.avail_in = (uInt)strlen(xml);
    z.next_out = buf;
    z.avail_out = sizeof(buf);
    int r = deflate(&z, Z_FINISH);
    size_t n = sizeof(buf) - z.avail_out;
    deflateEnd(&z);
    if (r != Z_STREAM_END)
        return NULL;
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, buf, (int)n);
    return out;
}

static void url_encode(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s != '\0' && o + 4 < outlen; ++s) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_.~", c) != NULL) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* Signs "SAMLRequest=..&RelayState=..&SigAlg=.." (SAML bindings 3.4.4.1) and returns the base64 signature. */
static char *sign_query(EVP_PKEY *key, const char *signed_part)
{
    unsigned char sig[1024];
    size_t len = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestSign(md, sig, &len, (const unsigned char *)signed_part, strlen(signed_part)) == 1;
    EVP_MD_CTX_free(md);
    char *out = ok ? malloc(4 * ((len + 2) / 3) + 1) : NULL;
    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, sig, (int)len);
    return out;
}

int saml_broker_redirect(const saml_broker_t *b, const char *dest, const char *param, const char *xml,
                         const char *relay_state, char *location, size_t len)
{
    char *b64 = NULL, *sig = NULL;
    char enc_msg[REQUEST_MAX * 2], enc_rs[SAML_MAX_RELAY_STATE * 3 + 1] = "", enc_alg[128], enc_sig[1500];
    char signed_part[REQUEST_MAX * 2 + 512];
    int rc = -1;
    if ((b64 = deflate_b64(xml)) == NULL || strlen(b64) * 3 + 1 > sizeof(enc_msg))
        goto exit;
    url_encode(b64, enc_msg, sizeof(enc_msg));
    if (relay_state != NULL)
        url_encode(relay_state, enc_rs, sizeof(enc_rs));
    url_encode(SIG_ALG_SHA256, enc_alg, sizeof(enc_alg));
    snprintf(signed_part, sizeof(signed_part), "%s=%s%s%s&SigAlg=%s", param, enc_msg,
             relay_state != NULL ? "&RelayState=" : "", enc_rs, enc_alg);
    if ((sig = sign_query(b->key, signed_part)) == NULL)
        goto exit;
    url_encode(sig, enc_sig, sizeof(enc_sig));
    int n = snprintf(location, len, "%s%c%s&Signature=%s", dest, strchr(dest, '?') != NULL ? '&' : '?', signed_part,
                     enc_sig);
    rc = n > 0 && (size_t)n < len ? 0 : -1;
exit:
    free(b64);
    free(sig);
    return rc;
}

int saml_broker_encode(const saml_broker_t *b, int post, const char *dest, const char *param, const char *xml,
                       const char *relay_state, char *location, size_t len, char **body)
{
    *body = NULL;
    if (!post)
        return saml_broker_redirect(b, dest, param, xml, relay_state, location, len);
    size_t n = strlen(dest);
    char *signed_xml = n < len ? saml_sign_message(xml, b->key, b->kp.cert_pem) : NULL;
    if (signed_xml == NULL)
        return -1;
    size_t xlen = strlen(signed_xml);
    if ((*body = malloc(4 * ((xlen + 2) / 3) + 1)) != NULL) {
        EVP_EncodeBlock((unsigned char *)*body, (const unsigned char *)signed_xml, (int)xlen);
        memcpy(location, dest, n + 1);
    }
    free(signed_xml);
    return *body != NULL ? 0 : -1;
}

/* The signed request for the IdP's SSO endpoint in the connection's binding: the URL into location (with the
 * request for Redirect; the form's target for POST, *body then the form's SAMLRequest, malloc'd). 0 or -1. */
int saml_broker_request_url(const saml_broker_t *b, const saml_conn_config_t *c, const char *request_id,
                            const char *relay_state, char *location, size_t len, char **body)
{
    char instant[32], *xml = NULL;
    time_t now = time(NULL);
    saml_idp_md_t *md = saml_conn_md(c);
    int rc = -1, post;
    const char *sso_url = saml_idp_md_endpoint(md, c->request_binding, 1, &post);
    *body = NULL;
    if (saml_idp_md_expired(md, now)) { /* refreshed metadata is overdue: the IdP's keys can no longer be trusted */
        gw_log("error", "saml", "sp.metadata_expired", "idp", c->name, NULL);
        goto exit;
    }
    if (sso_url == NULL) { /* refreshed metadata dropped the binding request_binding names */
        gw_log("error", "saml", "sp.no_sso_endpoint", "idp", c->name, "binding", post ? "post" : "redirect", NULL);
        goto exit;
    }
    saml_time_format(now, instant, sizeof(instant));
    if (asprintf(&xml,
                 "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" "
                 "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"%s\" Version=\"2.0\" "
                 "IssueInstant=\"%s\" Destination=\"%s\" AssertionConsumerServiceURL=\"%s\" "
                 "ProtocolBinding=\"" SAML_BINDING_POST "\"><saml:Issuer>%s</saml:Issuer>"
                 "<samlp:NameIDPolicy Format=\"%s\" AllowCreate=\"true\"/></samlp:AuthnRequest>",
                 request_id, instant, sso_url, b->acs_url, b->entity_id, nameid_uris[c->nameid]) < 0) {
        xml = NULL;
        goto exit;
    }
    rc = saml_broker_encode(b, post, sso_url, "SAMLRequest", xml, relay_state, location, len, body);
exit:
    free(xml);
    saml_idp_md_release(md);
    return rc;
}

/* ---- /saml/sp/login ---- */

typedef struct st_broker_handler_t {
    h2o_handler_t super;
    saml_broker_t *broker;
} broker_handler_t;

typedef struct st_login_job_t {
    gw_job_t super;
    saml_broker_t *broker;
    const saml_conn_config_t *conn;
    char return_to[POL_RETURN_TO_MAX + 1];
    char state[SAML_SP_STATE_MAX], browser[SAML_SP_STATE_MAX];
    int from_form; /* discovery by email from the login page's form */
    char source[64];
    int ok;
    char location[LOCATION_MAX]; /* Redirect: the signed URL; POST: the form's target */
    char *body;                  /* POST: the signed AuthnRequest (base64, malloc'd); NULL for Redirect */
} login_job_t;

static void login_run(gw_job_t *job, gw_worker_t *w)
{
    login_job_t *j = (login_job_t *)job;
    store_t *db = gw_worker_db(w);
    uint8_t state_hash[STORE_HASH_LEN], browser_hash[STORE_HASH_LEN], rnd[16];
    char request_id[2 * sizeof(rnd) + 2] = "_";
    if (db == NULL)
        return;
    randombytes_buf(rnd, sizeof(rnd)); /* an xs:ID must not start with a digit: "_" + hex */
    sodium_bin2hex(request_id + 1, sizeof(request_id) - 1, rnd, sizeof(rnd));
    gw_random_token(SAML_SP_STATE_BYTES, j->state, sizeof(j->state), state_hash);
    gw_sha256(j->browser, strlen(j->browser), browser_hash);
    if (store_saml_sp_request_put(db, state_hash, browser_hash, request_id, j->conn->name, j->return_to,
                                  SAML_SP_REQUEST_TTL) != 0 ||
        saml_broker_request_url(j->broker, j->conn, request_id, j->state, j->location, sizeof(j->location), &j->body) !=
            0)
        return;
    j->ok = 1;
    gw_log("info", "saml", "sp.request", "idp", j->conn->name, "source", j->source, NULL);
}

static void set_browser_cookie(h2o_req_t *req, const char *value)
{
    char line[256];
    int n = snprintf(line, sizeof(line),
                     SAML_SP_BROWSER_COOKIE "=%s; Path=/; Max-Age=%d; Secure; HttpOnly; "
                                            "SameSite=None",
                     value, SAML_SP_REQUEST_TTL);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, h2o_strdup(&req->pool, line, n).base,
                   (size_t)n);
}

/* The login page's discovery form may only submit to 'self' (CSP form-action), and browsers apply that to the
 * redirects that follow a submission too: so the form gets a page that moves on to the IdP by script (and a link
 * without script), a plain navigation outside the form's reach. */
static void send_continue_page(h2o_req_t *req, const char *location)
{
    char *href = saml_xml_escape(location);
    if (href == NULL) {
        gw_send_unavailable(req);
        return;
    }
    size_t cap = strlen(href) + 1024;
    char *body = h2o_mem_alloc_pool(&req->pool, cap);
    int n = snprintf(body, cap,
                     "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signing in · portier"
                     "</title><link rel=\"stylesheet\" href=\"/_portier/style.css\"></head><body><main class=\"card\">"
                     "<p>Taking you to your company's sign-in…</p><p><a id=\"sso-continue\" class=\"button "
                     "button-primary\" href=\"%s\">Continue</a></p></main><script src=\"" SP_GO_JS_PATH
                     "\"></script></body></html>\n",
                     href);
    free(href);
    gw_send_body(req, 200, "text/html; charset=utf-8", body, (size_t)n);
}

static int on_go_js(h2o_handler_t *self, h2o_req_t *req)
{
    static const char js[] = "document.getElementById('sso-continue').click();\n";
    gw_send_body(req, 200, "text/javascript; charset=utf-8", js, sizeof(js) - 1);
    return 0;
}

static void login_done(gw_job_t *job)
{
    login_job_t *j = (login_job_t *)job;
    h2o_req_t *req = job->req;
    if (req != NULL) {
        if (!j->ok) {
            gw_send_unavailable(req);
        } else {
            set_browser_cookie(req, j->browser); /* also renews its lifetime for this sign-in */
            if (j->body != NULL)                 /* a page of its own, whose CSP lets its form go to this IdP only */
                saml_send_post_form(req, j->location, "SAMLRequest", j->body, j->state);
            else if (j->from_form)
                send_continue_page(req, j->location);
            else
                gw_send_redirect(req, 303, h2o_strdup(&req->pool, j->location, SIZE_MAX).base);
        }
    }
    sodium_memzero(j->state, sizeof(j->state));
    sodium_memzero(j->browser, sizeof(j->browser));
    free(j->body);
    free(j);
}

static int token_chars(const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '-' || s[i] == '_'))
            return 0;
    return 1;
}

static int on_login(h2o_handler_t *self, h2o_req_t *req)
{
    saml_broker_t *b = ((broker_handler_t *)self)->broker;
    const char *name = gw_query_get(req, "idp", NAME_MAX_LEN);
    const char *email = gw_query_get(req, "email", EMAIL_MAX_LEN);
    const saml_conn_config_t *c = name != NULL ? saml_conn_by_name(b->bc, name) : saml_conn_for_email(b->bc, email);
    if (c == NULL) {
        gw_send_message(req, 404, "No company sign-in",
                        "No company account sign-in is set up for this name or address. Sign in with your portier "
                        "password instead.",
                        "/login", "Back to sign-in");
        return 0;
    }
    login_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -1;
    j->broker = b;
    j->conn = c;
    j->from_form = name == NULL;
    pol_return_to(gw_query_get(req, "return_to", POL_RETURN_TO_MAX), b->conf->public_url, j->return_to,
                  sizeof(j->return_to));
    /* one browser value for all the sign-ins this browser starts (two tabs must not invalidate each other) */
    h2o_iovec_t have = gw_get_cookie(req, SAML_SP_BROWSER_COOKIE);
    if (have.base != NULL && have.len >= 40 && have.len < sizeof(j->browser) && token_chars(have.base, have.len))
        memcpy(j->browser, have.base, have.len);
    else
        gw_random_token(SAML_SP_STATE_BYTES, j->browser, sizeof(j->browser), NULL);
    gw_peer_addr(req, j->source, sizeof(j->source));
    gw_job_submit(gw_loop_of(req), req, &j->super, login_run, login_done);
    return 0;
}

static int on_metadata(h2o_handler_t *self, h2o_req_t *req)
{
    saml_broker_t *b = ((broker_handler_t *)self)->broker;
    gw_send_body(req, 200, "application/samlmetadata+xml", b->metadata, strlen(b->metadata));
    return 0;
}

static void add(h2o_hostconf_t *hostconf, saml_broker_t *b, const char *path, int (*cb)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, path, 0);
    broker_handler_t *h = (broker_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = cb;
    h->broker = b;
}

void saml_broker_register(saml_broker_t *b, gw_server_t *server, h2o_hostconf_t *hostconf)
{
    b->server = server;
    add(hostconf, b, SP_METADATA_PATH, on_metadata);
    add(hostconf, b, SP_LOGIN_PATH, on_login);
    add(hostconf, b, SP_GO_JS_PATH, on_go_js);
    saml_acs_register(b, hostconf);
    saml_slo_sp_register(b, hostconf);
}
