/*
 * Single logout requested by an enterprise IdP: GET /saml/sp/slo (HTTP-Redirect binding).
 *
 * The LogoutRequest passes the intake (size, DOCTYPE, SHA-1), must name a configured IdP as Issuer, carry a
 * Redirect-binding signature (RSA-SHA256 over the raw query, SAML bindings 3.4.4.1) that verifies with a
 * certificate of that IdP's metadata, name our SLO endpoint as Destination (when present), be fresh and not
 * replayed; then every portier session that IdP opened for the NameID (and SessionIndex, when given) ends on every
 * instance, and the IdP gets a signed LogoutResponse at its own SingleLogoutService.
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
    char location[LOCATION_MAX];
} slo_job_t;

static xmlNodePtr child(xmlNodePtr parent, const char *ns, const char *name)
{
    for (xmlNodePtr c = parent != NULL ? parent->children : NULL; c != NULL; c = c->next)
        if (c->type == XML_ELEMENT_NODE && c->ns != NULL && strcmp((const char *)c->ns->href, ns) == 0 &&
            strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

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

static int verify_query(const saml_conn_config_t *c, const char *query, const char *sig_b64)
{
    const char *p;
    size_t l;
    char signed_part[SIGNED_MAX];
    size_t used = 0;
    static const char *const order[] = {"SAMLRequest", "RelayState", "SigAlg"};
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
    for (size_t i = 0; i != c->num_certs; ++i) {
        BIO *bio = BIO_new_mem_buf(c->certs[i], -1);
        X509 *x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        int ok = x != NULL && md != NULL &&
                 EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(x)) == 1 &&
                 EVP_DigestVerify(md, sig, (size_t)n, (const unsigned char *)signed_part, used) == 1;
        EVP_MD_CTX_free(md);
        X509_free(x);
        BIO_free(bio);
        if (ok)
            return 1;
    }
    return 0;
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

static const char *answer(slo_job_t *j, const saml_conn_config_t *c, const char *request_id, const char *relay_state)
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
                                   id, instant, c->slo_url, irt, j->broker->entity_id)
                        : -1;
    free(irt);
    if (n < 0)
        return "internal";
    int rc =
        saml_broker_redirect(j->broker, c->slo_url, "SAMLResponse", xml, relay_state, j->location, sizeof(j->location));
    free(xml);
    return rc == 0 ? NULL : "internal";
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
    issuer = text_of(child(root, NS_ASSERTION, "Issuer"));
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
    if (!verify_query(*conn, j->query, sig)) {
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
    name_id = text_of(child(root, NS_ASSERTION, "NameID"));
    index = text_of(child(root, NS_PROTOCOL, "SessionIndex"));
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
    if ((*conn)->slo_url != NULL)
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
    j->reason = slo(j, db, &c, &ended);
    j->ok = j->reason == NULL;
    snprintf(actor, sizeof(actor), "saml:%s", c != NULL ? c->name : "(unknown)");
    if (j->ok)
        snprintf(details, sizeof(details), "{\"sessions\":%d}", ended);
    else
        snprintf(details, sizeof(details), "{\"reason\":\"%s\"}", j->reason);
    store_audit_event_t ev = {.actor = actor,
                              .action = "saml.sp.logout",
                              .target = "anonymous",
                              .outcome = j->ok ? "success" : "failure",
                              .source_addr = j->source,
                              .details = details};
    if (store_audit_append(db, &ev) != 0)
        gw_log("error", "audit", "append_failed", "action", "saml.sp.logout", NULL);
    gw_log("info", "saml", j->ok ? "sp.logout" : "sp.logout_refused", "idp", c != NULL ? c->name : "(unknown)",
           "reason", j->reason, NULL);
}

static void slo_done(gw_job_t *job)
{
    slo_job_t *j = (slo_job_t *)job;
    h2o_req_t *req = job->req;
    if (req != NULL) {
        if (j->ok && j->location[0] != '\0')
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
    free(j);
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
