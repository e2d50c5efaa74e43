/*
 * An enterprise IdP's metadata as the broker uses it: one gatekeeper (saml_idp_md_parse) turns a metadata document
 * into an immutable snapshot (SSO and SLO endpoints, signing certificates, validUntil), and a per-connection slot
 * holds the snapshot in use. The configuration loads the first snapshot from the `metadata` file; the refresher
 * (sp_refresh.c) replaces it at run time with metadata fetched from `metadata_url`.
 *
 * Threads: worker threads verify responses with a connection's keys while the refresher swaps in new ones. A reader
 * takes a reference under the slot's mutex (a pointer load and an increment, never I/O), so the snapshot it holds
 * cannot be freed under it; the swap replaces the pointer under the same mutex and drops the slot's reference; the
 * last reader to release frees the old snapshot. The reference count is atomic, so releasing needs no lock. A
 * snapshot is never written after it was published: readers share it without further synchronisation (the mutex
 * orders its construction before any reader sees it).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>
#include <libxml/valid.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "saml/internal.h"

#define MAX_CERT_B64  16384
#define MAX_URL       1024
#define MAX_ENTITIES  1000 /* EntityDescriptors searched in an EntitiesDescriptor */
#define MIN_RSA_BITS  2048
#define ALG_SHA1_PART "sha1"

struct st_saml_md_slot_t {
    pthread_mutex_t lock;
    saml_idp_md_t *cur; /* one reference held by the slot */
};

static const struct {
    const char *reason, *text;
} reasons[] = {
    {"too_large", "larger than the metadata size limit"},
    {"doctype", "has a DOCTYPE (refused)"},
    {"not_xml", "not well-formed XML"},
    {"root", "not an EntityDescriptor or EntitiesDescriptor"},
    {"entity_id", "no usable entityID, or not the connection's entityID"},
    {"duplicate_id", "duplicate ID attributes"},
    {"unsigned", "no enveloped signature on the root element"},
    {"signature_position", "more than one signature on the root element"},
    {"sha1", "signed with SHA-1 (refused)"},
    {"transform", "signature transforms other than enveloped + exclusive c14n"},
    {"reference", "the signature does not reference the root element by its ID"},
    {"bad_signature", "signature not valid for the pinned metadata_signing_certificate"},
    {"expired", "validUntil is in the past"},
    {"valid_until", "validUntil is not a dateTime"},
    {"no_idpsso", "no IDPSSODescriptor"},
    {"no_sso", "no SingleSignOnService for the HTTP-Redirect or HTTP-POST binding"},
    {"no_signing_key", "no RSA signing certificate in the IDPSSODescriptor"},
    {"internal", "out of memory"},
};

const char *saml_idp_md_endpoint(const saml_idp_md_t *md, int request_binding, int sso, int *post)
{
    const char *redirect = sso ? md->sso_url : md->slo_url, *form = sso ? md->sso_post_url : md->slo_post_url;
    switch (request_binding) {
    case SAML_REQUEST_BINDING_REDIRECT: *post = !sso && redirect == NULL && form != NULL; break;
    case SAML_REQUEST_BINDING_POST: *post = sso || form != NULL; break;
    default: *post = redirect == NULL && form != NULL; break;
    }
    return *post ? form : redirect;
}

const char *saml_idp_md_reason_text(const char *reason)
{
    for (size_t i = 0; i != sizeof(reasons) / sizeof(reasons[0]); ++i)
        if (strcmp(reasons[i].reason, reason) == 0)
            return reasons[i].text;
    return reason;
}

static int plain_value(const char *s, size_t max)
{
    if (*s == '\0' || strlen(s) > max)
        return 0;
    for (; *s != '\0'; ++s)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || strchr("\"<>&\\ ", *s) != NULL)
            return 0;
    return 1;
}

/* ---- the snapshot ---- */

void saml_idp_md_release(saml_idp_md_t *md)
{
    if (md == NULL || atomic_fetch_sub_explicit(&md->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(md->entity_id);
    free(md->sso_url);
    free(md->sso_post_url);
    free(md->slo_url);
    free(md->slo_post_url);
    for (size_t i = 0; i != md->num_certs; ++i)
        free(md->certs[i]);
    free(md);
}

/* base64 DER of an X509Certificate element -> PEM, after checking it is a certificate with an RSA key. */
static char *cert_pem(xmlNodePtr n)
{
    xmlChar *text = xmlNodeGetContent(n);
    char b64[MAX_CERT_B64], *pem = NULL;
    size_t len = 0;
    for (const xmlChar *p = text; p != NULL && *p != '\0' && len + 1 < sizeof(b64); ++p)
        if (!isspace(*p))
            b64[len++] = (char)*p;
    b64[len] = '\0';
    xmlFree(text);
    unsigned char der[MAX_CERT_B64];
    int dlen = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)len);
    const unsigned char *dp = der;
    X509 *x = dlen > 0 ? d2i_X509(NULL, &dp, dlen) : NULL;
    EVP_PKEY *k = x != NULL ? X509_get0_pubkey(x) : NULL;
    if (k != NULL && EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *data;
        if (bio != NULL && PEM_write_bio_X509(bio, x) == 1) {
            long n2 = BIO_get_mem_data(bio, &data);
            pem = strndup(data, (size_t)n2);
        }
        BIO_free(bio);
    }
    X509_free(x);
    return pem;
}

static void collect_certs(saml_idp_md_t *md, xmlNodePtr idpsso)
{
    for (xmlNodePtr kd = idpsso->children; kd != NULL; kd = kd->next) {
        if (!saml_xml_is(kd, SAML_NS_METADATA, "KeyDescriptor"))
            continue;
        char *use = saml_xml_attr(kd, "use");
        int signing = use == NULL || strcmp(use, "signing") == 0;
        xmlFree(use);
        xmlNodePtr x509 =
            saml_xml_child(saml_xml_child(saml_xml_child(kd, SAML_NS_DSIG, "KeyInfo"), SAML_NS_DSIG, "X509Data"),
                           SAML_NS_DSIG, "X509Certificate");
        char *pem = signing && x509 != NULL && md->num_certs < SAML_MD_MAX_CERTS ? cert_pem(x509) : NULL;
        if (pem != NULL)
            md->certs[md->num_certs++] = pem;
    }
}

/* The Location of the first `service` element with `binding` (malloc'd), or NULL. */
static char *location_of(xmlNodePtr idpsso, const char *service, const char *want)
{
    char *out = NULL;
    for (xmlNodePtr s = idpsso->children; s != NULL && out == NULL; s = s->next) {
        char *binding = saml_xml_is(s, SAML_NS_METADATA, service) ? saml_xml_attr(s, "Binding") : NULL;
        char *loc = binding != NULL && strcmp(binding, want) == 0 ? saml_xml_attr(s, "Location") : NULL;
        if (loc != NULL && (strncmp(loc, "https://", 8) == 0 || strncmp(loc, "http://", 7) == 0) &&
            plain_value(loc, MAX_URL))
            out = strdup(loc);
        xmlFree(binding);
        xmlFree(loc);
    }
    return out;
}

/* ---- the checks ---- */

/* libxml knows no ID attributes without a DTD: registers every ID (xmlsec resolves "#id" through them) and refuses
 * duplicates (two elements claiming the signed ID is the wrapping trick). */
static int register_ids(xmlDocPtr doc, xmlNodePtr n)
{
    for (; n != NULL; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        xmlAttrPtr id = xmlHasProp(n, (const xmlChar *)"ID");
        if (id != NULL && id->ns == NULL) {
            xmlChar *v = xmlNodeListGetString(doc, id->children, 1);
            int bad = v == NULL || xmlGetID(doc, v) != NULL || xmlAddID(NULL, doc, v, id) == NULL;
            xmlFree(v);
            if (bad)
                return -1;
        }
        if (register_ids(doc, n->children) != 0)
            return -1;
    }
    return 0;
}

static int algorithm_is_sha1(xmlNodePtr n)
{
    char *alg = n != NULL ? saml_xml_attr(n, "Algorithm") : NULL;
    int sha1 = alg != NULL && strstr(alg, ALG_SHA1_PART) != NULL;
    xmlFree(alg);
    return sha1;
}

/* The root must carry exactly one enveloped signature, by the pinned certificate, over itself. */
static const char *check_signature(xmlDocPtr doc, xmlNodePtr root, const char *signer_pem)
{
    size_t n = 0;
    xmlNodePtr sig = NULL;
    for (xmlNodePtr c = root->children; c != NULL; c = c->next)
        if (saml_xml_is(c, SAML_NS_DSIG, "Signature")) {
            sig = c;
            ++n;
        }
    if (n == 0)
        return "unsigned";
    if (n > 1)
        return "signature_position";
    if (register_ids(doc, root) != 0)
        return "duplicate_id";
    xmlNodePtr si = saml_xml_child(sig, SAML_NS_DSIG, "SignedInfo");
    if (algorithm_is_sha1(saml_xml_child(si, SAML_NS_DSIG, "SignatureMethod")))
        return "sha1";
    for (xmlNodePtr r = si != NULL ? si->children : NULL; r != NULL; r = r->next)
        if (saml_xml_is(r, SAML_NS_DSIG, "Reference") &&
            algorithm_is_sha1(saml_xml_child(r, SAML_NS_DSIG, "DigestMethod")))
            return "sha1";
    return saml_dsig_verify_enveloped(sig, root, &signer_pem, 1, 1);
}

static const char *check_valid_until(xmlNodePtr n, time_t now, int allow_expired, time_t *until)
{
    char *v = saml_xml_attr(n, "validUntil");
    time_t t = 0;
    const char *why = NULL;
    if (v != NULL && saml_sp_parse_instant(v, &t) != 0)
        why = "valid_until";
    else if (v != NULL && (*until == 0 || t < *until))
        *until = t;
    xmlFree(v);
    if (why == NULL && !allow_expired && *until != 0 && *until <= now)
        why = "expired";
    return why;
}

/* The EntityDescriptor to use: the root, or the one of an EntitiesDescriptor (with entity_id: that one; without:
 * the only one with an IDPSSODescriptor). */
static xmlNodePtr find_entity(xmlNodePtr root, const char *entity_id)
{
    if (saml_xml_is(root, SAML_NS_METADATA, "EntityDescriptor"))
        return root;
    xmlNodePtr found = NULL;
    size_t seen = 0;
    for (xmlNodePtr e = root->children; e != NULL && seen < MAX_ENTITIES; e = e->next) {
        if (!saml_xml_is(e, SAML_NS_METADATA, "EntityDescriptor"))
            continue;
        ++seen;
        char *id = saml_xml_attr(e, "entityID");
        int match = entity_id != NULL ? id != NULL && strcmp(id, entity_id) == 0
                                      : saml_xml_child(e, SAML_NS_METADATA, "IDPSSODescriptor") != NULL;
        xmlFree(id);
        if (match && found != NULL && entity_id == NULL)
            return NULL; /* several IdPs: the configuration cannot tell which */
        if (match)
            found = found != NULL ? found : e;
    }
    return found;
}

const char *saml_idp_md_parse(const char *xml, size_t len, const saml_idp_md_check_t *chk, saml_idp_md_t **out)
{
    const char *why = NULL;
    saml_idp_md_t *md = NULL;
    xmlDocPtr doc = NULL;
    *out = NULL;
    if (len > SAML_MAX_METADATA)
        return "too_large";
    if ((doc = saml_xml_parse(xml, len, &why)) == NULL)
        return why;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (!saml_xml_is(root, SAML_NS_METADATA, "EntityDescriptor") &&
        !saml_xml_is(root, SAML_NS_METADATA, "EntitiesDescriptor")) {
        why = "root";
        goto exit;
    }
    if (chk->signer_pem != NULL && (why = check_signature(doc, root, chk->signer_pem)) != NULL)
        goto exit;
    xmlNodePtr entity = find_entity(root, chk->entity_id);
    char *eid = entity != NULL ? saml_xml_attr(entity, "entityID") : NULL;
    int eid_ok =
        eid != NULL && plain_value(eid, MAX_URL) && (chk->entity_id == NULL || strcmp(eid, chk->entity_id) == 0);
    if (!eid_ok) {
        xmlFree(eid);
        why = "entity_id";
        goto exit;
    }
    if ((md = calloc(1, sizeof(*md))) == NULL || (md->entity_id = strdup(eid)) == NULL) {
        xmlFree(eid);
        why = "internal";
        goto exit;
    }
    xmlFree(eid);
    atomic_init(&md->refs, 1);
    if ((why = check_valid_until(root, chk->now, chk->allow_expired, &md->valid_until)) != NULL ||
        (entity != root && (why = check_valid_until(entity, chk->now, chk->allow_expired, &md->valid_until)) != NULL))
        goto exit;
    xmlNodePtr idpsso = saml_xml_child(entity, SAML_NS_METADATA, "IDPSSODescriptor");
    if (idpsso == NULL) {
        why = "no_idpsso";
        goto exit;
    }
    md->sso_url = location_of(idpsso, "SingleSignOnService", SAML_BINDING_REDIRECT);
    md->sso_post_url = location_of(idpsso, "SingleSignOnService", SAML_BINDING_POST);
    if (md->sso_url == NULL && md->sso_post_url == NULL) {
        why = "no_sso";
        goto exit;
    }
    md->slo_url = location_of(idpsso, "SingleLogoutService", SAML_BINDING_REDIRECT);
    md->slo_post_url = location_of(idpsso, "SingleLogoutService", SAML_BINDING_POST);
    collect_certs(md, idpsso);
    if (md->num_certs == 0) {
        why = "no_signing_key";
        goto exit;
    }
    SHA256((const unsigned char *)xml, len, md->digest);
    *out = md;
    md = NULL;
exit:
    saml_idp_md_release(md);
    xmlFreeDoc(doc);
    return why;
}

int saml_idp_md_expired(const saml_idp_md_t *md, time_t now)
{
    return md->valid_until != 0 && md->valid_until <= now;
}

/* ---- the pinned signer ---- */

char *saml_md_signer_load(const char *path, char *err, size_t errlen)
{
    BIO *in = BIO_new_file(path, "r"), *out = NULL;
    X509 *x = in != NULL ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = x != NULL ? X509_get0_pubkey(x) : NULL;
    char *pem = NULL, *data;
    if (k == NULL)
        snprintf(err, errlen, "%s: not a PEM certificate", path);
    else if (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA || EVP_PKEY_get_bits(k) < MIN_RSA_BITS)
        snprintf(err, errlen, "%s: not a certificate of an RSA key of at least %d bits", path, MIN_RSA_BITS);
    else if ((out = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509(out, x) != 1)
        snprintf(err, errlen, "%s: cannot read", path);
    else {
        long n = BIO_get_mem_data(out, &data);
        pem = strndup(data, (size_t)n);
    }
    BIO_free(out);
    BIO_free(in);
    X509_free(x);
    return pem;
}

/* ---- the slot ---- */

saml_md_slot_t *saml_md_slot_create(saml_idp_md_t *md)
{
    saml_md_slot_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->cur = md;
    return s;
}

void saml_md_slot_destroy(saml_md_slot_t *s)
{
    if (s == NULL)
        return;
    saml_idp_md_release(s->cur);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

saml_idp_md_t *saml_conn_md(const saml_conn_config_t *c)
{
    saml_md_slot_t *s = c->md;
    pthread_mutex_lock(&s->lock);
    saml_idp_md_t *md = s->cur;
    atomic_fetch_add_explicit(&md->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s->lock);
    return md;
}

void saml_conn_md_replace(const saml_conn_config_t *c, saml_idp_md_t *md)
{
    saml_md_slot_t *s = c->md;
    pthread_mutex_lock(&s->lock);
    saml_idp_md_t *old = s->cur;
    s->cur = md;
    pthread_mutex_unlock(&s->lock);
    saml_idp_md_release(old); /* freed here, or by the last worker still using it */
}
