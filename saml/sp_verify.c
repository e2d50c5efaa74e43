/*
 * The assertion gatekeeper of the broker: one function decides whether a decoded SAML Response from an enterprise
 * IdP is acceptable, and returns only values read from signature-covered nodes. It runs after the intake
 * (size limit, no DOCTYPE, no SHA-1 anywhere) and before the database checks (InResponseTo against the stored
 * request, the replay cache), which acs.c makes in the same order.
 *
 * lasso is not used here on purpose: XML Signature Wrapping lives in the gap between "a signature verified" and
 * "the assertion that was read". So the structure is pinned first (exactly one Assertion in the whole document,
 * a direct child of the Response, signatures only as direct children of those two, unique IDs), each signature
 * must reference exactly its parent by ID with only enveloped + exclusive c14n transforms, it is verified with
 * xmlsec against the certificates of the connection's metadata only (no keys manager: KeyInfo is never read),
 * and every value is then read from that same Assertion node.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/tree.h>
#include <libxml/valid.h>
#include <xmlsec/crypto.h>
#include <xmlsec/keysmngr.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlenc.h>
#include <xmlsec/xmlsec.h>

#include "saml/internal.h"

#define NS_PROTOCOL   "urn:oasis:names:tc:SAML:2.0:protocol"
#define NS_ASSERTION  "urn:oasis:names:tc:SAML:2.0:assertion"
#define STATUS_OK     "urn:oasis:names:tc:SAML:2.0:status:Success"
#define BEARER        "urn:oasis:names:tc:SAML:2.0:cm:bearer"
#define ALG_ENVELOPED "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
#define ALG_EXC_C14N  "http://www.w3.org/2001/10/xml-exc-c14n#"
#define MAX_VALUES    256 /* attribute values kept from one assertion */
#define MAX_VALUE_LEN 1024

static size_t count_children(xmlNodePtr parent, const char *ns, const char *name)
{
    size_t n = 0;
    for (xmlNodePtr c = parent != NULL ? parent->children : NULL; c != NULL; c = c->next)
        n += saml_xml_is(c, ns, name);
    return n;
}

/* Element text, only when it is made of text nodes alone: a comment or PI inside a value (the NameID truncation
 * trick) makes it unacceptable rather than silently shortened or joined. malloc'd, or NULL. */
static char *text_of(xmlNodePtr n, int *tainted)
{
    if (n == NULL)
        return NULL;
    for (xmlNodePtr c = n->children; c != NULL; c = c->next)
        if (c->type != XML_TEXT_NODE) {
            *tainted = 1;
            return NULL;
        }
    xmlChar *t = xmlNodeGetContent(n);
    char *out = t != NULL && strlen((const char *)t) <= MAX_VALUE_LEN ? strdup((const char *)t) : NULL;
    xmlFree(t);
    return out;
}

/* Document walk: counts assertions and signatures where they may not be, registers every ID attribute (libxml
 * knows no IDs without a DTD) and refuses duplicates, and refuses comments and PIs anywhere below the root. */
typedef struct st_walk_t {
    size_t assertions, encrypted, signatures, comments;
    int duplicate;
} walk_t;

static void walk(xmlDocPtr doc, xmlNodePtr n, walk_t *w)
{
    for (; n != NULL; n = n->next) {
        if (n->type == XML_COMMENT_NODE || n->type == XML_PI_NODE) {
            ++w->comments;
            continue;
        }
        if (n->type != XML_ELEMENT_NODE)
            continue;
        w->assertions += saml_xml_is(n, NS_ASSERTION, "Assertion");
        w->encrypted += saml_xml_is(n, NS_ASSERTION, "EncryptedAssertion");
        w->signatures += saml_xml_is(n, SAML_NS_DSIG, "Signature");
        xmlAttrPtr id = xmlHasProp(n, (const xmlChar *)"ID");
        if (id != NULL && id->ns == NULL) {
            xmlChar *v = xmlNodeListGetString(doc, id->children, 1);
            if (v == NULL || xmlGetID(doc, v) != NULL || xmlAddID(NULL, doc, v, id) == NULL)
                w->duplicate = 1;
            xmlFree(v);
        }
        walk(doc, n->children, w);
    }
}

/* The Reference of a signature must point at exactly its parent, with only the two transforms SAML needs. */
static const char *check_references(xmlNodePtr sig, xmlNodePtr parent, int whole_document)
{
    xmlNodePtr si = saml_xml_child(sig, SAML_NS_DSIG, "SignedInfo");
    xmlNodePtr c14n = saml_xml_child(si, SAML_NS_DSIG, "CanonicalizationMethod");
    char *alg = c14n != NULL ? saml_xml_attr(c14n, "Algorithm") : NULL;
    int ok = alg != NULL && strcmp(alg, ALG_EXC_C14N) == 0;
    xmlFree(alg);
    if (!ok)
        return "transform";
    if (count_children(si, SAML_NS_DSIG, "Reference") != 1)
        return "reference";
    xmlNodePtr ref = saml_xml_child(si, SAML_NS_DSIG, "Reference");
    char *uri = saml_xml_attr(ref, "URI"), *id = saml_xml_attr(parent, "ID");
    ok = (uri != NULL && id != NULL && uri[0] == '#' && strcmp(uri + 1, id) == 0) ||
         (whole_document && uri != NULL && uri[0] == '\0' && parent == xmlDocGetRootElement(parent->doc));
    xmlFree(uri);
    xmlFree(id);
    if (!ok)
        return "reference";
    for (xmlNodePtr t = saml_xml_child(saml_xml_child(ref, SAML_NS_DSIG, "Transforms"), SAML_NS_DSIG, "Transform");
         t != NULL; t = t->next) {
        if (t->type != XML_ELEMENT_NODE)
            continue;
        char *a = saml_xml_is(t, SAML_NS_DSIG, "Transform") ? saml_xml_attr(t, "Algorithm") : NULL;
        ok = a != NULL && (strcmp(a, ALG_ENVELOPED) == 0 || strcmp(a, ALG_EXC_C14N) == 0) && t->children == NULL;
        xmlFree(a);
        if (!ok)
            return "transform";
    }
    return NULL;
}

static int restrict_transforms(xmlSecDSigCtxPtr ctx, int whole_document)
{
    ctx->enabledReferenceUris = xmlSecTransformUriTypeSameDocument |
                                (whole_document ? xmlSecTransformUriTypeEmpty : xmlSecTransformUriTypeNone);
    return xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformEnvelopedId) < 0 ||
                   xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformExclC14NId) < 0 ||
                   xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformSha256Id) < 0 ||
                   xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformSha384Id) < 0 ||
                   xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformSha512Id) < 0 ||
                   xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformExclC14NId) < 0 ||
                   xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformRsaSha256Id) < 0 ||
                   xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformRsaSha384Id) < 0 ||
                   xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformRsaSha512Id) < 0
               ? -1
               : 0;
}

/* Verifies with each certificate given (several during an IdP key rollover). No keys manager is given to xmlsec, so
 * it has nowhere to look a key up: whatever KeyInfo carries is ignored. */
static int verify_with(xmlNodePtr sig, const char *const *pems, size_t num_pems, int whole_document)
{
    for (size_t i = 0; i != num_pems; ++i) {
        xmlSecDSigCtxPtr ctx = xmlSecDSigCtxCreate(NULL);
        if (ctx == NULL)
            return 0;
        ctx->signKey = xmlSecCryptoAppKeyLoadMemory((const xmlSecByte *)pems[i], (xmlSecSize)strlen(pems[i]),
                                                    xmlSecKeyDataFormatCertPem, NULL, NULL, NULL);
        int ok = ctx->signKey != NULL && restrict_transforms(ctx, whole_document) == 0 &&
                 xmlSecDSigCtxVerify(ctx, sig) >= 0 && ctx->status == xmlSecDSigStatusSucceeded &&
                 xmlSecPtrListGetSize(&ctx->signedInfoReferences) == 1;
        xmlSecDSigCtxDestroy(ctx);
        if (ok)
            return 1;
    }
    return 0;
}

const char *saml_dsig_verify_enveloped(xmlNodePtr sig, xmlNodePtr parent, const char *const *pems, size_t num_pems,
                                       int whole_document)
{
    const char *why = check_references(sig, parent, whole_document);
    if (why != NULL)
        return why;
    return verify_with(sig, pems, num_pems, whole_document) ? NULL : "bad_signature";
}

/* 1 when parent carries a valid signature, 0 when it carries none, or a refusal. */
static const char *signature_of(xmlNodePtr parent, const saml_idp_md_t *md, int *covered)
{
    size_t n = count_children(parent, SAML_NS_DSIG, "Signature");
    if (n == 0)
        return NULL;
    if (n > 1)
        return "signature_count";
    const char *why = saml_dsig_verify_enveloped(saml_xml_child(parent, SAML_NS_DSIG, "Signature"), parent,
                                                 (const char *const *)md->certs, md->num_certs, 0);
    if (why != NULL)
        return why;
    *covered = 1;
    return NULL;
}

int saml_sp_parse_instant(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = s != NULL ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (end == NULL)
        return -1;
    if (*end == '.')
        for (++end; *end >= '0' && *end <= '9'; ++end)
            ;
    if (*end != 'Z' || end[1] != '\0')
        return -1;
    *out = timegm(&tm);
    return 0;
}

/* Attribute value of n, compared with `expected` (NULL attribute: `missing` decides). */
static int attr_is(xmlNodePtr n, const char *name, const char *expected)
{
    char *v = n != NULL ? saml_xml_attr(n, name) : NULL;
    int ok = v != NULL && expected != NULL && strcmp(v, expected) == 0;
    xmlFree(v);
    return ok;
}

static int time_attr(xmlNodePtr n, const char *name, time_t *out)
{
    char *v = n != NULL ? saml_xml_attr(n, name) : NULL;
    int r = v != NULL ? saml_sp_parse_instant(v, out) : 1; /* 1: absent */
    xmlFree(v);
    return r;
}

static const char *check_issuer(xmlNodePtr parent, const char *entity_id, int required)
{
    xmlNodePtr iss = saml_xml_child(parent, NS_ASSERTION, "Issuer");
    int tainted = 0;
    if (iss == NULL)
        return required ? "issuer" : NULL;
    char *v = text_of(iss, &tainted);
    int ok = v != NULL && strcmp(v, entity_id) == 0;
    free(v);
    return tainted ? "comment" : ok ? NULL : "issuer";
}

static const char *check_audience(xmlNodePtr conditions, const char *own_entity_id)
{
    int found = 0, tainted = 0;
    for (xmlNodePtr ar = conditions != NULL ? conditions->children : NULL; ar != NULL; ar = ar->next) {
        if (!saml_xml_is(ar, NS_ASSERTION, "AudienceRestriction"))
            continue;
        int this_one = 0; /* each AudienceRestriction must name us (SAML core 2.5.1.4) */
        for (xmlNodePtr a = ar->children; a != NULL; a = a->next) {
            char *v = saml_xml_is(a, NS_ASSERTION, "Audience") ? text_of(a, &tainted) : NULL;
            this_one |= v != NULL && strcmp(v, own_entity_id) == 0;
            free(v);
        }
        if (!this_one)
            return "audience";
        found = 1;
    }
    return tainted ? "comment" : found ? NULL : "audience";
}

/* The bearer SubjectConfirmation whose data names our ACS; its InResponseTo and NotOnOrAfter are returned. */
static xmlNodePtr bearer_data(xmlNodePtr subject, const char *acs)
{
    for (xmlNodePtr sc = subject != NULL ? subject->children : NULL; sc != NULL; sc = sc->next) {
        if (!saml_xml_is(sc, NS_ASSERTION, "SubjectConfirmation") || !attr_is(sc, "Method", BEARER))
            continue;
        xmlNodePtr d = saml_xml_child(sc, NS_ASSERTION, "SubjectConfirmationData");
        if (d != NULL && attr_is(d, "Recipient", acs))
            return d;
    }
    return NULL;
}

static void add_value(saml_sp_assertion_t *out, const char *name, const char *value)
{
    if (out->num_attrs == MAX_VALUES)
        return;
    if (out->attrs == NULL && (out->attrs = calloc(MAX_VALUES, sizeof(*out->attrs))) == NULL)
        return;
    out->attrs[out->num_attrs].name = strdup(name);
    out->attrs[out->num_attrs].value = strdup(value);
    ++out->num_attrs;
}

static const char *read_attributes(xmlNodePtr assertion, saml_sp_assertion_t *out)
{
    int tainted = 0;
    for (xmlNodePtr st = assertion->children; st != NULL; st = st->next) {
        if (!saml_xml_is(st, NS_ASSERTION, "AttributeStatement"))
            continue;
        for (xmlNodePtr a = st->children; a != NULL; a = a->next) {
            char *name = saml_xml_is(a, NS_ASSERTION, "Attribute") ? saml_xml_attr(a, "Name") : NULL;
            for (xmlNodePtr v = a->children; name != NULL && v != NULL; v = v->next) {
                char *val = saml_xml_is(v, NS_ASSERTION, "AttributeValue") ? text_of(v, &tainted) : NULL;
                if (val != NULL)
                    add_value(out, name, val);
                free(val);
            }
            xmlFree(name);
        }
    }
    return tainted ? "comment" : NULL;
}

static void read_authn(xmlNodePtr assertion, saml_sp_assertion_t *out)
{
    int tainted = 0;
    xmlNodePtr as = saml_xml_child(assertion, NS_ASSERTION, "AuthnStatement");
    out->authn_class =
        text_of(saml_xml_child(saml_xml_child(as, NS_ASSERTION, "AuthnContext"), NS_ASSERTION, "AuthnContextClassRef"),
                &tainted);
    char *idx = as != NULL ? saml_xml_attr(as, "SessionIndex") : NULL;
    out->session_index = idx != NULL && strlen(idx) <= MAX_VALUE_LEN ? strdup(idx) : NULL;
    xmlFree(idx);
}

/* Reads the validity window (Conditions and the bearer data); the window itself is judged by
 * saml_sp_check_times, after InResponseTo, as issue #7 orders the checks. */
static const char *read_times(xmlNodePtr conditions, xmlNodePtr data, saml_sp_assertion_t *out)
{
    time_t nb = 0, na = 0, dna = 0, unused;
    int r1 = time_attr(conditions, "NotBefore", &nb), r2 = time_attr(conditions, "NotOnOrAfter", &na),
        r3 = time_attr(data, "NotOnOrAfter", &dna), r4 = time_attr(data, "NotBefore", &unused);
    if (r1 < 0 || r2 < 0 || r3 != 0 || r4 == 0) /* malformed; the bearer data must have an expiry, no NotBefore */
        return "time";
    out->not_before = r1 == 0 ? nb : 0;
    out->not_on_or_after = r2 == 0 && na < dna ? na : dna;
    return NULL;
}

const char *saml_sp_check_times(const saml_sp_assertion_t *a, time_t now)
{
    if (a->not_before != 0 && now + SAML_CLOCK_SKEW < a->not_before)
        return "not_yet_valid";
    if (now - SAML_CLOCK_SKEW >= a->not_on_or_after)
        return "expired";
    return NULL;
}

/* Only these algorithms may protect an encrypted assertion (no RSA PKCS#1 v1.5 key transport: padding oracles). */
static int encryption_algorithms_ok(xmlNodePtr n)
{
    static const char *const allowed[] = {"http://www.w3.org/2001/04/xmlenc#aes128-cbc",
                                          "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
                                          "http://www.w3.org/2009/xmlenc11#aes128-gcm",
                                          "http://www.w3.org/2009/xmlenc11#aes256-gcm",
                                          "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
                                          "http://www.w3.org/2009/xmlenc11#rsa-oaep",
                                          NULL};
    for (; n != NULL; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (strcmp((const char *)n->name, "EncryptionMethod") == 0) {
            char *alg = saml_xml_attr(n, "Algorithm");
            size_t i = 0;
            while (alg != NULL && allowed[i] != NULL && strcmp(allowed[i], alg) != 0)
                ++i;
            int ok = alg != NULL && allowed[i] != NULL;
            xmlFree(alg);
            if (!ok)
                return 0;
        }
        if (!encryption_algorithms_ok(n->children))
            return 0;
    }
    return 1;
}

/* An EncryptedAssertion: the encrypted document's structure is pinned like a plain one (one EncryptedAssertion, a
 * child of the Response; unique IDs; no comments; a signature only on the Response), the Response signature, when
 * there is one, is verified now (it covers the ciphertext, not the plaintext), then the assertion is decrypted
 * with our own key (a keys manager that holds nothing else: it decrypts, it never vouches for a signature), put in
 * the EncryptedAssertion's place, and the document re-parsed by the safe parser, so everything after this runs on
 * a plain Response. *response_signed: the Response signature was valid. */
static const char *decrypt(xmlDocPtr *doc, const saml_sp_expect_t *x, int *response_signed)
{
    xmlNodePtr root = xmlDocGetRootElement(*doc), enc = saml_xml_child(root, NS_ASSERTION, "EncryptedAssertion");
    walk_t w = {0};
    const char *why = NULL;
    walk(*doc, root, &w);
    if (w.duplicate)
        return "duplicate_id";
    if (w.encrypted != 1 || w.assertions != 0 || count_children(root, NS_ASSERTION, "EncryptedAssertion") != 1)
        return "assertion_count";
    if (w.comments != 0)
        return "comment";
    if (w.signatures != count_children(root, SAML_NS_DSIG, "Signature"))
        return "signature_position";
    if ((why = signature_of(root, x->md, response_signed)) != NULL)
        return why;
    if (!encryption_algorithms_ok(enc->children))
        return "encryption_algorithm";
    xmlNodePtr data = saml_xml_child(enc, "http://www.w3.org/2001/04/xmlenc#", "EncryptedData");
    xmlSecKeysMngrPtr mngr = xmlSecKeysMngrCreate();
    xmlSecKeyPtr key =
        xmlSecCryptoAppKeyLoadMemory((const xmlSecByte *)x->decrypt_key_pem, (xmlSecSize)strlen(x->decrypt_key_pem),
                                     xmlSecKeyDataFormatPem, NULL, NULL, NULL);
    xmlSecEncCtxPtr ctx = NULL;
    if (data == NULL || mngr == NULL || key == NULL || xmlSecCryptoAppDefaultKeysMngrInit(mngr) < 0 ||
        xmlSecCryptoAppDefaultKeysMngrAdoptKey(mngr, key) < 0) {
        if (key != NULL)
            xmlSecKeyDestroy(key);
        why = "decrypt";
        goto exit;
    }
    key = NULL; /* the manager owns it */
    if ((ctx = xmlSecEncCtxCreate(mngr)) == NULL || xmlSecEncCtxDecrypt(ctx, data) < 0 || !ctx->resultReplaced) {
        why = "decrypt";
        goto exit;
    }
    xmlNodePtr assertion = saml_xml_child(enc, NS_ASSERTION, "Assertion");
    if (assertion == NULL || count_children(enc, NS_ASSERTION, "Assertion") != 1) {
        why = "assertion_count";
        goto exit;
    }
    xmlUnlinkNode(assertion);
    xmlReplaceNode(enc, assertion);
    xmlFreeNode(enc);
    xmlChar *buf = NULL;
    int len = 0;
    xmlDocDumpMemory(*doc, &buf, &len);
    const char *parse_why = NULL;
    xmlDocPtr plain = buf != NULL ? saml_xml_parse((const char *)buf, (size_t)len, &parse_why) : NULL;
    xmlFree(buf);
    if (plain == NULL) {
        why = "decrypt";
        goto exit;
    }
    xmlFreeDoc(*doc);
    *doc = plain;
exit:
    if (ctx != NULL)
        xmlSecEncCtxDestroy(ctx);
    if (mngr != NULL)
        xmlSecKeysMngrDestroy(mngr);
    return why;
}

const char *saml_sp_verify(xmlDocPtr *docp, const saml_sp_expect_t *x, saml_sp_assertion_t *out)
{
    xmlNodePtr root = xmlDocGetRootElement(*docp);
    walk_t w = {0};
    int covered = 0, tainted = 0, response_signed = 0;
    const char *why;
    memset(out, 0, sizeof(*out));
    if (!saml_xml_is(root, NS_PROTOCOL, "Response"))
        return "not_response";
    if (saml_idp_md_expired(x->md, x->now))
        return "metadata_expired";
    /* 1. status */
    xmlNodePtr code = saml_xml_child(saml_xml_child(root, NS_PROTOCOL, "Status"), NS_PROTOCOL, "StatusCode");
    if (!attr_is(code, "Value", STATUS_OK))
        return "status";
    if (saml_xml_child(root, NS_ASSERTION, "EncryptedAssertion") != NULL) {
        if (x->decrypt_key_pem == NULL)
            return "encrypted_assertion";
        if ((why = decrypt(docp, x, &response_signed)) != NULL)
            return why;
        root = xmlDocGetRootElement(*docp);
    }
    xmlDocPtr doc = *docp;
    /* 2. structure, then signatures: only the metadata's keys, and the assertion must be covered */
    walk(doc, root, &w);
    if (w.duplicate)
        return "duplicate_id";
    if (w.encrypted != 0)
        return "encrypted_assertion";
    if (w.assertions != 1 || count_children(root, NS_ASSERTION, "Assertion") != 1)
        return "assertion_count";
    xmlNodePtr assertion = saml_xml_child(root, NS_ASSERTION, "Assertion");
    if (w.comments != 0)
        return "comment";
    if (w.signatures !=
        count_children(root, SAML_NS_DSIG, "Signature") + count_children(assertion, SAML_NS_DSIG, "Signature"))
        return "signature_position";
    /* a Response signature over an encrypted assertion was verified before decryption (it no longer matches) */
    if ((!response_signed && (why = signature_of(root, x->md, &covered)) != NULL) ||
        (why = signature_of(assertion, x->md, &covered)) != NULL)
        return why;
    covered |= response_signed;
    if (!covered)
        return "unsigned";
    /* 3. issuers */
    if ((why = check_issuer(root, x->conn->entity_id, 0)) != NULL ||
        (why = check_issuer(assertion, x->conn->entity_id, 1)) != NULL)
        return why;
    /* 4. Destination, Recipient, Audience */
    if (!attr_is(root, "Destination", x->acs_url))
        return "destination";
    xmlNodePtr subject = saml_xml_child(assertion, NS_ASSERTION, "Subject");
    xmlNodePtr data = bearer_data(subject, x->acs_url);
    if (data == NULL)
        return "recipient";
    xmlNodePtr conditions = saml_xml_child(assertion, NS_ASSERTION, "Conditions");
    if ((why = check_audience(conditions, x->own_entity_id)) != NULL)
        return why;
    /* what the database checks need, read from the covered nodes */
    char *rid = saml_xml_attr(root, "InResponseTo"), *did = saml_xml_attr(data, "InResponseTo");
    char *aid = saml_xml_attr(assertion, "ID");
    out->in_response_to = did != NULL ? strdup(did) : NULL;
    /* the Response's InResponseTo, when present, must agree with the confirmation's */
    int irt_ok = rid == NULL || (did != NULL && strcmp(rid, did) == 0);
    out->assertion_id = aid != NULL ? strdup(aid) : NULL;
    xmlFree(rid);
    xmlFree(did);
    xmlFree(aid);
    if (!irt_ok)
        return "in_response_to";
    if ((why = read_times(conditions, data, out)) != NULL)
        return why;
    /* the subject and the rest */
    xmlNodePtr nid = saml_xml_child(subject, NS_ASSERTION, "NameID");
    out->name_id = text_of(nid, &tainted);
    char *fmt = nid != NULL ? saml_xml_attr(nid, "Format") : NULL;
    out->name_id_format = fmt != NULL ? strdup(fmt) : NULL;
    xmlFree(fmt);
    if (tainted)
        return "comment";
    if (out->name_id == NULL || *out->name_id == '\0' || out->assertion_id == NULL)
        return "no_subject";
    read_authn(assertion, out);
    return read_attributes(assertion, out);
}

void saml_sp_assertion_dispose(saml_sp_assertion_t *a)
{
    free(a->in_response_to);
    free(a->assertion_id);
    free(a->name_id);
    free(a->name_id_format);
    free(a->authn_class);
    free(a->session_index);
    for (size_t i = 0; i != a->num_attrs; ++i) {
        free(a->attrs[i].name);
        free(a->attrs[i].value);
    }
    free(a->attrs);
    memset(a, 0, sizeof(*a));
}
