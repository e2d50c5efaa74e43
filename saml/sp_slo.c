/*
 * Single logout requested by an enterprise IdP: GET /saml/sp/slo (HTTP-Redirect binding).
 * What we send to the IdP (our LogoutResponse, our own LogoutRequest) goes in the connection's binding
 * (saml_idp_md_endpoint): Redirect, or an auto-submitting POST form with an enveloped signature (saml_broker_encode).
 *
 * The LogoutRequest passes the intake (size, DOCTYPE, SHA-1), must name a configured IdP as Issuer, carry a
 * Redirect-binding signature (RSA-SHA256 over the raw query, SAML bindings 3.4.4.1) that verifies with a
 * certificate of that IdP's metadata, name our SLO endpoint as Destination (when present), be fresh and not
 * replayed; then every portier session that IdP opened for the NameID (and SessionIndex, when given) ends on every
 * instance, and the IdP gets a signed LogoutResponse at its own SingleLogoutService.
 *
 * The other direction: when a user whose session an IdP opened signs out at portier, saml_broker_logout (called by
 * /logout before the session row goes) sends the browser to the IdP with a signed LogoutRequest; the IdP's
 * LogoutResponse comes back here (SAMLResponse) and the browser continues with portier's own logout walk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "gateway/gateway.h"
#include "saml/internal.h"

#define NS_PROTOCOL     "urn:oasis:names:tc:SAML:2.0:protocol"
#define NS_ASSERTION    "urn:oasis:names:tc:SAML:2.0:assertion"
#define SIG_ALG_SHA256  "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
#define REQUEST_MAX_AGE 600 /* seconds a LogoutRequest is accepted after its IssueInstant (plus skew) */
#define SIGNED_MAX      (64 * 1024)
#define LOCATION_MAX    16384
#define DETAILS_MAX     256

typedef struct st_slo_handler_t {
    h2o_handler_t super;
    saml_broker_t *broker;
} slo_handler_t;

typedef struct st_slo_job_t {
    gw_job_t super;
    saml_broker_t *broker;
    char *query; /* the raw query string */
    char source[64];
    const char *reason;
    int ok;
    char location[LOCATION_MAX]; /* where the browser goes next (POST binding: the form's target) */
    char *body, *relay_state;    /* POST binding: the signed LogoutResponse (base64) and RelayState (malloc'd) */
} slo_job_t;

/* Text of an element made of text nodes only (malloc'd), or NULL. */
static char *text_of(xmlNodePtr n)
{
    for (xmlNodePtr c = n != NULL ? n->children : NULL; c != NULL; c = c->next)
        if (c->type != XML_TEXT_NODE)
            return NULL;
    xmlChar *t = n != NULL ? xmlNodeGetContent(n) : NULL;
    char *out = t != NULL && *t != '\0' && strlen((const char *)t) <= 1024 ? strdup((const char *)t) : NULL;
    xmlFree(t);
    return out;
}

/* "name=<raw value>" of the query, as received (the signature covers the encoded form). */
static int raw_param(const char *query, const char *name, const char **start, size_t *len)
{
    size_t nlen = strlen(name);
    for (const char *p = query; p != NULL && *p != '\0';) {
        const char *end = strchr(p, '&');
        size_t l = end != NULL ? (size_t)(end - p) : strlen(p);
        if (l > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            *start = p;
            *len = l;
            return 0;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return -1;
}

static int verify_query(const saml_conn_config_t *c, const char *query, const char *param, const char *sig_b64)
{
    const char *p;
    size_t l;
    char signed_part[SIGNED_MAX];
    size_t used = 0;
    const char *const order[] = {param, "RelayState", "SigAlg"};
    for (size_t i = 0; i != 3; ++i) {
        if (raw_param(query, order[i], &p, &l) != 0) {
            if (i == 1)
                continue; /* RelayState is optional */
            return 0;
        }
        if (used + l + 2 > sizeof(signed_part))
            return 0;
        if (used != 0)
            signed_part[used++] = '&';
        memcpy(signed_part + used, p, l);
        used += l;
    }
    size_t slen = strlen(sig_b64);
    unsigned char sig[1024];
    if (slen == 0 || slen > 4 * sizeof(sig) / 3)
        return 0;
    int n = EVP_DecodeBlock(sig, (const unsigned char *)sig_b64, (int)slen);
    if (n <= 0)
        return 0;
    n -= (slen >= 1 && sig_b64[slen - 1] == '=') + (slen >= 2 && sig_b64[slen - 2] == '=');
    saml_idp_md_t *md = saml_conn_md(c);
    int verified = 0;
    for (size_t i = 0; i != md->num_certs && !verified; ++i) {
        BIO *bio = BIO_new_mem_buf(md->certs[i], -1);
        X509 *x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        EVP_MD_CTX *mdc = EVP_MD_CTX_new();
        int ok = x != NULL && mdc != NULL &&
                 EVP_DigestVerifyInit(mdc, NULL, EVP_sha256(), NULL, X509_get0_pubkey(x)) == 1 &&
                 EVP_DigestVerify(mdc, sig, (size_t)n, (const unsigned char *)signed_part, used) == 1;
        EVP_MD_CTX_free(mdc);
        X509_free(x);
        BIO_free(bio);
        verified = ok;
    }
    saml_idp_md_release(md);
    return verified;
}

static const char *check_fresh(xmlNodePtr root)
{
    time_t now = time(NULL), issued, until;
    char *ii = saml_xml_attr(root, "IssueInstant"), *noa = saml_xml_attr(root, "NotOnOrAfter");
    const char *why = NULL;
    if (ii == NULL || saml_sp_parse_instant(ii, &issued) != 0 || issued > now + SAML_CLOCK_SKEW ||
        issued < now - REQUEST_MAX_AGE - SAML_CLOCK_SKEW)
        why = "stale";
    else if (noa != NULL && (saml_sp_parse_instant(noa, &until) != 0 || now - SAML_CLOCK_SKEW >= until))
        why = "expired";
    xmlFree(ii);
    xmlFree(noa);
    return why;
}

static const char *answer_to(slo_job_t *j, const char *slo_url, int post, const char *request_id,
                             const char *relay_state)
{
    char instant[32], id[40] = "_", *xml = NULL;
    uint8_t rnd[16];
    char *irt = saml_xml_escape(request_id);
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(id + 1, sizeof(id) - 1, rnd, sizeof(rnd));
    saml_time_format(time(NULL), instant, sizeof(instant));
    int n = irt != NULL ? asprintf(&xml,
                                   "<samlp:LogoutResponse xmlns:samlp=\"" NS_PROTOCOL "\" xmlns:saml=\"" NS_ASSERTION
                                   "\" ID=\"%s\" Version=\"2.0\" IssueInstant=\"%s\" Destination=\"%s\" "
                                   "InResponseTo=\"%s\"><saml:Issuer>%s</saml:Issuer><samlp:Status>"
                                   "<samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/>"
                                   "</samlp:Status></samlp:LogoutResponse>",
                                   id, instant, slo_url, irt, j->broker->entity_id)
                        : -1;
    free(irt);
    if (n < 0)
        return "internal";
    int rc = saml_broker_encode(j->broker, post, slo_url, "SAMLResponse", xml, relay_state, j->location,
                                sizeof(j->location), &j->body);
    if (rc == 0 && j->body != NULL && relay_state != NULL && (j->relay_state = strdup(relay_state)) == NULL)
        rc = -1;
    free(xml);
    return rc == 0 ? NULL : "internal";
}

/* The signed LogoutResponse to the IdP's logout endpoint in the connection's binding, into j->location (and j->body
 * for POST); nothing when its metadata has none. */
static const char *answer(slo_job_t *j, const saml_conn_config_t *c, const char *request_id, const char *relay_state)
{
    saml_idp_md_t *md = saml_conn_md(c);
    int post;
    const char *slo_url = saml_idp_md_endpoint(md, c->request_binding, 0, &post);
    const char *why = slo_url != NULL ? answer_to(j, slo_url, post, request_id, relay_state) : NULL;
    saml_idp_md_release(md);
    return why;
}

/* The gatekeeper of an IdP's LogoutRequest, then the logout. */
static const char *slo(slo_job_t *j, store_t *db, const saml_conn_config_t **conn, int *ended)
{
    const saml_broker_t *b = j->broker;
    char *msg = saml_query_param(j->query, "SAMLRequest"), *alg = saml_query_param(j->query, "SigAlg");
    char *sig = saml_query_param(j->query, "Signature"), *rs = saml_query_param(j->query, "RelayState");
    char *issuer = NULL, *name_id = NULL, *index = NULL, *id = NULL;
    saml_intake_t in = {0};
    const char *why = NULL;
    if (msg == NULL) {
        why = "missing";
        goto exit;
    }
    if (saml_intake(SAML_BINDING_KIND_REDIRECT, msg, strlen(msg), alg, b->conf->saml->max_message, &in) != 0) {
        why = in.reason != NULL ? in.reason : "intake";
        goto exit;
    }
    xmlNodePtr root = xmlDocGetRootElement(in.doc);
    if (strcmp(in.root, "LogoutRequest") != 0) {
        why = "not_logout_request";
        goto exit;
    }
    issuer = text_of(saml_xml_child(root, NS_ASSERTION, "Issuer"));
    if ((*conn = saml_conn_by_entity(b->bc, issuer)) == NULL) {
        why = "unknown_issuer";
        goto exit;
    }
    if (alg == NULL || sig == NULL) {
        why = "unsigned";
        goto exit;
    }
    if (strcmp(alg, SIG_ALG_SHA256) != 0) {
        why = "algorithm";
        goto exit;
    }
    if (!verify_query(*conn, j->query, "SAMLRequest", sig)) {
        why = "bad_signature";
        goto exit;
    }
    char *dest = saml_xml_attr(root, "Destination");
    int dest_ok = dest == NULL || strcmp(dest, b->slo_url) == 0;
    xmlFree(dest);
    if (!dest_ok) {
        why = "destination";
        goto exit;
    }
    if ((why = check_fresh(root)) != NULL)
        goto exit;
    char *xid = saml_xml_attr(root, "ID");
    id = xid != NULL && strlen(xid) <= 256 ? strdup(xid) : NULL;
    xmlFree(xid);
    name_id = text_of(saml_xml_child(root, NS_ASSERTION, "NameID"));
    index = text_of(saml_xml_child(root, NS_PROTOCOL, "SessionIndex"));
    if (id == NULL || name_id == NULL) {
        why = "no_subject";
        goto exit;
    }
    char key[300];
    snprintf(key, sizeof(key), "logout:%s", id);
    int r = store_saml_sp_assertion_seen(db, (*conn)->entity_id, key,
                                         (int64_t)time(NULL) + REQUEST_MAX_AGE + 2 * SAML_CLOCK_SKEW);
    if (r != 0) {
        why = r == -EEXIST ? "replay" : "database";
        goto exit;
    }
    if ((*ended = store_saml_sp_logout(db, (*conn)->entity_id, name_id, index)) < 0) {
        why = "database";
        goto exit;
    }
    why = answer(j, *conn, id, rs != NULL && strlen(rs) <= SAML_MAX_RELAY_STATE ? rs : NULL);
exit:
    saml_intake_dispose(&in);
    free(msg);
    free(alg);
    free(sig);
    free(rs);
    free(issuer);
    free(name_id);
    free(index);
    free(id);
    return why;
}

/* The IdP's LogoutResponse to a LogoutRequest portier sent when the user signed out (the portier session is gone
 * already): checked like a request (known issuer, query signature, the state and request ID it answers), then the
 * browser continues where the sign-out was going. */
static const char *logout_response(slo_job_t *j, store_t *db, const saml_conn_config_t **conn)
{
    const saml_broker_t *b = j->broker;
    char *msg = saml_query_param(j->query, "SAMLResponse"), *alg = saml_query_param(j->query, "SigAlg");
    char *sig = saml_query_param(j->query, "Signature"), *rs = saml_query_param(j->query, "RelayState");
    char *issuer = NULL, *request_id = NULL, *idp = NULL, *next = NULL;
    saml_intake_t in = {0};
    const char *why = NULL;
    uint8_t state[STORE_HASH_LEN];
    if (msg == NULL) {
        why = "missing";
        goto exit;
    }
    if (saml_intake(SAML_BINDING_KIND_REDIRECT, msg, strlen(msg), alg, b->conf->saml->max_message, &in) != 0) {
        why = in.reason != NULL ? in.reason : "intake";
        goto exit;
    }
    xmlNodePtr root = xmlDocGetRootElement(in.doc);
    if (strcmp(in.root, "LogoutResponse") != 0) {
        why = "not_logout_response";
        goto exit;
    }
    if (rs == NULL || strlen(rs) > SAML_SP_STATE_MAX) {
        why = "unknown_request";
        goto exit;
    }
    gw_sha256(rs, strlen(rs), state);
    int r = store_saml_sp_logout_take(db, state, &request_id, &idp, &next);
    if (r != 0) {
        why = r == -ENOENT ? "unknown_request" : "database";
        goto exit;
    }
    snprintf(j->location, sizeof(j->location), "%s", next); /* ours: wherever the outcome, the browser moves on */
    issuer = text_of(saml_xml_child(root, NS_ASSERTION, "Issuer"));
    *conn = saml_conn_by_name(b->bc, idp);
    if (*conn == NULL || issuer == NULL || strcmp(issuer, (*conn)->entity_id) != 0) {
        why = "issuer";
        goto exit;
    }
    if (alg == NULL || sig == NULL) {
        why = "unsigned";
        goto exit;
    }
    if (strcmp(alg, SIG_ALG_SHA256) != 0 || !verify_query(*conn, j->query, "SAMLResponse", sig)) {
        why = strcmp(alg, SIG_ALG_SHA256) != 0 ? "algorithm" : "bad_signature";
        goto exit;
    }
    char *irt = saml_xml_attr(root, "InResponseTo");
    int irt_ok = irt != NULL && strcmp(irt, request_id) == 0;
    xmlFree(irt);
    xmlNodePtr code = saml_xml_child(saml_xml_child(root, NS_PROTOCOL, "Status"), NS_PROTOCOL, "StatusCode");
    char *status = code != NULL ? saml_xml_attr(code, "Value") : NULL;
    int ok = status != NULL && strcmp(status, "urn:oasis:names:tc:SAML:2.0:status:Success") == 0;
    xmlFree(status);
    why = !irt_ok ? "in_response_to" : !ok ? "status" : NULL;
exit:
    saml_intake_dispose(&in);
    free(msg);
    free(alg);
    free(sig);
    free(rs);
    free(issuer);
    free(request_id);
    free(idp);
    free(next);
    return why;
}

int saml_broker_logout(saml_idp_t *saml, struct st_store_t *db, const uint8_t session[STORE_HASH_LEN], const char *next,
                       saml_outbound_t *out)
{
    saml_broker_t *b = saml != NULL ? saml->broker : NULL;
    char *entity = NULL, *name_id = NULL, *format = NULL, *index = NULL, *xml = NULL;
    char *e_name = NULL, *e_format = NULL, *e_index = NULL;
    char id[40] = "_", instant[32], state[SAML_SP_STATE_MAX];
    uint8_t rnd[16], state_hash[STORE_HASH_LEN];
    saml_idp_md_t *md = NULL;
    const char *slo_url = NULL;
    int rc = 0, post = 0;
    memset(out, 0, sizeof(*out));
    if (b == NULL)
        return 0;
    int r = store_saml_sp_login_get(db, session, &entity, &name_id, &format, &index);
    const saml_conn_config_t *c = r == 0 ? saml_conn_by_entity(b->bc, entity) : NULL;
    md = c != NULL ? saml_conn_md(c) : NULL;
    if (md != NULL)
        slo_url = saml_idp_md_endpoint(md, c->request_binding, 0, &post);
    if (r != 0 || slo_url == NULL) { /* not an IdP session, or an IdP without single logout */
        rc = r == 0 || r == -ENOENT ? 0 : -1;
        goto exit;
    }
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(id + 1, sizeof(id) - 1, rnd, sizeof(rnd));
    saml_time_format(time(NULL), instant, sizeof(instant));
    e_name = saml_xml_escape(name_id);
    e_format = format != NULL ? saml_xml_escape(format) : NULL;
    e_index = index != NULL ? saml_xml_escape(index) : NULL;
    if (e_name == NULL ||
        asprintf(&xml,
                 "<samlp:LogoutRequest xmlns:samlp=\"" NS_PROTOCOL "\" xmlns:saml=\"" NS_ASSERTION "\" ID=\"%s\" "
                 "Version=\"2.0\" IssueInstant=\"%s\" Destination=\"%s\"><saml:Issuer>%s</saml:Issuer>"
                 "<saml:NameID%s%s%s>%s</saml:NameID>%s%s%s</samlp:LogoutRequest>",
                 id, instant, slo_url, b->entity_id, e_format != NULL ? " Format=\"" : "",
                 e_format != NULL ? e_format : "", e_format != NULL ? "\"" : "", e_name,
                 e_index != NULL ? "<samlp:SessionIndex>" : "", e_index != NULL ? e_index : "",
                 e_index != NULL ? "</samlp:SessionIndex>" : "") < 0) {
        xml = NULL;
        rc = -1;
        goto exit;
    }
    gw_random_token(SAML_SP_STATE_BYTES, state, sizeof(state), state_hash);
    if (store_saml_sp_logout_put(db, state_hash, id, c->name, next, SAML_SP_REQUEST_TTL) != 0 ||
        (out->url = malloc(LOCATION_MAX)) == NULL ||
        saml_broker_encode(b, post, slo_url, "SAMLRequest", xml, state, out->url, LOCATION_MAX, &out->body) != 0 ||
        (out->body != NULL && (out->relay_state = strdup(state)) == NULL)) {
        saml_outbound_dispose(out);
        rc = -1;
    }
    sodium_memzero(state, sizeof(state));
exit:
    free(entity);
    free(name_id);
    free(format);
    free(index);
    free(e_name);
    free(e_format);
    free(e_index);
    free(xml);
    saml_idp_md_release(md);
    return rc;
}

static void slo_run(gw_job_t *job, gw_worker_t *w)
{
    slo_job_t *j = (slo_job_t *)job;
    store_t *db = gw_worker_db(w);
    const saml_conn_config_t *c = NULL;
    char actor[96], details[DETAILS_MAX];
    int ended = 0;
    if (db == NULL) {
        j->reason = "database";
        return;
    }
    int response = strstr(j->query, "SAMLResponse=") != NULL && strstr(j->query, "SAMLRequest=") == NULL;
    j->reason = response ? logout_response(j, db, &c) : slo(j, db, &c, &ended);
    j->ok = j->reason == NULL;
    snprintf(actor, sizeof(actor), "saml:%s", c != NULL ? c->name : "(unknown)");
    if (j->ok)
        snprintf(details, sizeof(details), "{\"sessions\":%d}", ended);
    else
        snprintf(details, sizeof(details), "{\"reason\":\"%s\"}", j->reason);
    store_audit_event_t ev = {.actor = actor,
                              .action = response ? "saml.sp.logout_response" : "saml.sp.logout",
                              .target = "anonymous",
                              .outcome = j->ok ? "success" : "failure",
                              .source_addr = j->source,
                              .details = details};
    if (store_audit_append(db, &ev) != 0)
        gw_log("error", "audit", "append_failed", "action", "saml.sp.logout", NULL);
    gw_log("info", "saml",
           response ? "sp.logout_response"
           : j->ok  ? "sp.logout"
                    : "sp.logout_refused",
           "idp", c != NULL ? c->name : "(unknown)", "reason", j->reason, NULL);
}

static void slo_done(gw_job_t *job)
{
    slo_job_t *j = (slo_job_t *)job;
    h2o_req_t *req = job->req;
    if (req != NULL) {
        if (j->ok && j->body != NULL)
            saml_send_post_form(req, j->location, "SAMLResponse", j->body, j->relay_state);
        else if (j->location[0] != '\0' && (j->ok || j->location[0] == '/')) /* a refused answer still moves on */
            gw_send_redirect(req, 303, h2o_strdup(&req->pool, j->location, SIZE_MAX).base);
        else if (j->ok)
            gw_send_message(req, 200, "Signed out", "You are signed out of portier.", "/login", "Sign in again");
        else if (strcmp(j->reason, "database") == 0)
            gw_send_unavailable(req);
        else
            gw_send_message(req, 400, "Sign-out refused",
                            "The sign-out request from your company's sign-in service could not be accepted.", NULL,
                            NULL);
    }
    free(j->query);
    free(j->body);
    free(j->relay_state);
    free(j);
}

void saml_outbound_send(h2o_req_t *req, const saml_outbound_t *o, const char *field)
{
    if (o->body != NULL)
        saml_send_post_form(req, o->url, field, o->body, o->relay_state);
    else
        gw_send_redirect(req, 303, h2o_strdup(&req->pool, o->url, SIZE_MAX).base);
}

void saml_outbound_dispose(saml_outbound_t *o)
{
    free(o->url);
    free(o->body);
    free(o->relay_state);
    memset(o, 0, sizeof(*o));
}

static int on_slo(h2o_handler_t *self, h2o_req_t *req)
{
    saml_broker_t *b = ((slo_handler_t *)self)->broker;
    size_t qlen = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;
    if (qlen == 0 || qlen > 3 * b->conf->saml->max_message) {
        gw_send_message(req, 400, "Sign-out refused", "This address expects a SAML LogoutRequest.", NULL, NULL);
        return 0;
    }
    slo_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->query = strndup(req->path.base + req->query_at + 1, qlen)) == NULL) {
        free(j);
        return -1;
    }
    j->broker = b;
    gw_peer_addr(req, j->source, sizeof(j->source));
    gw_job_submit(gw_loop_of(req), req, &j->super, slo_run, slo_done);
    return 0;
}

void saml_slo_sp_register(saml_broker_t *b, h2o_hostconf_t *hostconf)
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, SAML_SP_SLO_PATH, 0);
    slo_handler_t *h = (slo_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_slo;
    h->broker = b;
}
