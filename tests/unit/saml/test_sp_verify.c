/* The broker's assertion gatekeeper (saml/sp_verify.c) in process: a Response signed here with xmlsec (assertion or
 * response, RSA-SHA256, exclusive c14n, Reference "#ID") passes and yields its values; then each structural rule is
 * driven both ways: status, duplicate IDs, assertion count, encrypted assertions, comments, signature positions,
 * references and transforms, unsigned, a signature by another key (with its certificate in KeyInfo), issuers,
 * Destination/Recipient/Audience, InResponseTo consistency, and the validity window with its 180 s of skew. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <libxml/tree.h>
#include <xmlsec/crypto.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmltree.h>

#include "saml/internal.h"

#define ACS      "https://sp.test/saml/sp/acs"
#define AUDIENCE "https://sp.test/saml/sp/metadata"
#define ISSUER   "https://idp.test/saml"

static char dir[] = "/tmp/portier-sp-unit.XXXXXX";
static char idp_key[256], idp_crt[256], evil_key[256], evil_crt[256];
static saml_conn_config_t conn;
static saml_idp_md_t md;

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 65536);
    if (f != NULL && buf != NULL)
        fread(buf, 1, 65535, f);
    if (f != NULL)
        fclose(f);
    return buf;
}

static int setup(void **state)
{
    char err[256];
    (void)state;
    if (mkdtemp(dir) == NULL || saml_lasso_init() != 0)
        return -1;
    snprintf(idp_key, sizeof(idp_key), "%s/idp.key", dir);
    snprintf(idp_crt, sizeof(idp_crt), "%s/idp.crt", dir);
    snprintf(evil_key, sizeof(evil_key), "%s/evil.key", dir);
    snprintf(evil_crt, sizeof(evil_crt), "%s/evil.crt", dir);
    if (saml_keypair_generate(idp_key, idp_crt, "idp", err, sizeof(err)) != 0 ||
        saml_keypair_generate(evil_key, evil_crt, "evil", err, sizeof(err)) != 0)
        return -1;
    md.certs[0] = read_all(idp_crt);
    conn.name = "unit";
    conn.entity_id = ISSUER;
    md.num_certs = 1;
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    free(md.certs[0]);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void instant(char *out, size_t len, long offset)
{
    saml_time_format(time(NULL) + offset, out, len);
}

/* A Response with one bearer assertion for InResponseTo _req1, valid from now+not_before to now+not_after. */
static char *response(const char *status, const char *dest, const char *aud, const char *issuer, const char *name_id,
                      long not_before, long not_after)
{
    char nb[32], na[32], now[32], *out;
    instant(nb, sizeof(nb), not_before);
    instant(na, sizeof(na), not_after);
    instant(now, sizeof(now), 0);
    if (asprintf(&out,
                 "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" "
                 "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_r1\" Version=\"2.0\" IssueInstant=\"%s\" "
                 "Destination=\"%s\" InResponseTo=\"_req1\"><saml:Issuer>%s</saml:Issuer><samlp:Status>"
                 "<samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:%s\"/></samlp:Status>"
                 "<saml:Assertion ID=\"_a1\" Version=\"2.0\" IssueInstant=\"%s\"><saml:Issuer>%s</saml:Issuer>"
                 "<saml:Subject><saml:NameID>%s</saml:NameID><saml:SubjectConfirmation "
                 "Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"><saml:SubjectConfirmationData NotOnOrAfter=\"%s\" "
                 "Recipient=\"" ACS "\" InResponseTo=\"_req1\"/></saml:SubjectConfirmation></saml:Subject>"
                 "<saml:Conditions NotBefore=\"%s\" NotOnOrAfter=\"%s\"><saml:AudienceRestriction><saml:Audience>%s"
                 "</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement "
                 "AuthnInstant=\"%s\" SessionIndex=\"_s1\"><saml:AuthnContext><saml:AuthnContextClassRef>urn:c"
                 "</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>"
                 "<saml:Attribute Name=\"mail\"><saml:AttributeValue>a@b.test</saml:AttributeValue></saml:Attribute>"
                 "</saml:AttributeStatement></saml:Assertion></samlp:Response>",
                 now, dest, issuer, status, now, issuer, name_id, na, nb, na, aud, now) < 0)
        return NULL;
    return out;
}

static char *valid(void)
{
    return response("Success", ACS, AUDIENCE, ISSUER, "user-1", -60, 240);
}

static xmlNodePtr find(xmlNodePtr n, const char *name)
{
    for (; n != NULL; n = n->next) {
        if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
            return n;
        xmlNodePtr c = find(n->children, name);
        if (c != NULL)
            return c;
    }
    return NULL;
}

/* Signs element `what` ("Assertion" or "Response") with key/cert, the signature after its Issuer. */
static void sign(xmlDocPtr doc, const char *what, const char *key, const char *cert)
{
    xmlNodePtr target = find(xmlDocGetRootElement(doc), what);
    xmlAttrPtr id = xmlHasProp(target, (const xmlChar *)"ID");
    xmlChar *idv = xmlGetProp(target, (const xmlChar *)"ID");
    char uri[64];
    snprintf(uri, sizeof(uri), "#%s", (const char *)idv);
    xmlAddID(NULL, doc, idv, id);
    xmlFree(idv);
    xmlNodePtr sig = xmlSecTmplSignatureCreate(doc, xmlSecTransformExclC14NId, xmlSecTransformRsaSha256Id, NULL);
    xmlAddNextSibling(find(target->children, "Issuer"), sig);
    xmlNodePtr ref = xmlSecTmplSignatureAddReference(sig, xmlSecTransformSha256Id, NULL, (const xmlChar *)uri, NULL);
    xmlSecTmplReferenceAddTransform(ref, xmlSecTransformEnvelopedId);
    xmlSecTmplReferenceAddTransform(ref, xmlSecTransformExclC14NId);
    xmlSecTmplKeyInfoAddX509Data(xmlSecTmplSignatureEnsureKeyInfo(sig, NULL));
    xmlSecDSigCtxPtr ctx = xmlSecDSigCtxCreate(NULL);
    ctx->signKey = xmlSecCryptoAppKeyLoad(key, xmlSecKeyDataFormatPem, NULL, NULL, NULL);
    assert_non_null(ctx->signKey);
    assert_int_equal(xmlSecCryptoAppKeyCertLoad(ctx->signKey, cert, xmlSecKeyDataFormatPem), 0);
    assert_int_equal(xmlSecDSigCtxSign(ctx, sig), 0);
    xmlSecDSigCtxDestroy(ctx);
}

/* Re-parses a document the way the ACS does (from text: no IDs registered, as from the wire). */
static xmlDocPtr reparse(xmlDocPtr doc)
{
    xmlChar *buf;
    int len;
    const char *why;
    xmlDocDumpMemory(doc, &buf, &len);
    xmlFreeDoc(doc);
    xmlDocPtr out = saml_xml_parse((const char *)buf, (size_t)len, &why);
    xmlFree(buf);
    assert_non_null(out);
    return out;
}

/* Parses and frees xml (the strings built above). */
static xmlDocPtr parse(char *xml)
{
    const char *why = NULL;
    xmlDocPtr doc = saml_xml_parse(xml, strlen(xml), &why);
    free(xml);
    assert_non_null(doc);
    return doc;
}

static const char *verify(xmlDocPtr doc, saml_sp_assertion_t *a)
{
    saml_sp_expect_t x = {.conn = &conn, .md = &md, .acs_url = ACS, .own_entity_id = AUDIENCE, .now = time(NULL)};
    const char *why = saml_sp_verify(&doc, &x, a);
    xmlFreeDoc(doc);
    return why;
}

/* The reason for a (modified) document: signed as `what` (NULL: unsigned) with key/cert. */
static const char *reason_of(char *xml, const char *what, const char *key, const char *cert)
{
    saml_sp_assertion_t a;
    xmlDocPtr doc = parse(xml);
    if (what != NULL)
        sign(doc, what, key, cert);
    const char *why = verify(reparse(doc), &a);
    saml_sp_assertion_dispose(&a);
    return why;
}

static char *replace(char *xml, const char *from, const char *to)
{
    char *at = strstr(xml, from), *out;
    assert_non_null(at);
    assert_true(asprintf(&out, "%.*s%s%s", (int)(at - xml), xml, to, at + strlen(from)) > 0);
    free(xml);
    return out;
}

static void test_valid_assertion_or_response_signature(void **state)
{
    (void)state;
    for (int i = 0; i != 2; ++i) {
        saml_sp_assertion_t a;
        xmlDocPtr doc = parse(valid());
        sign(doc, i == 0 ? "Assertion" : "Response", idp_key, idp_crt);
        assert_null(verify(reparse(doc), &a));
        assert_string_equal(a.name_id, "user-1");
        assert_string_equal(a.assertion_id, "_a1");
        assert_string_equal(a.in_response_to, "_req1");
        assert_string_equal(a.session_index, "_s1");
        assert_string_equal(a.authn_class, "urn:c");
        assert_int_equal(a.num_attrs, 1);
        assert_string_equal(a.attrs[0].value, "a@b.test");
        assert_null(saml_sp_check_times(&a, time(NULL)));
        saml_sp_assertion_dispose(&a);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    char *x;
    assert_string_equal(
        reason_of(response("Responder", ACS, AUDIENCE, ISSUER, "u", -60, 240), "Assertion", idp_key, idp_crt),
        "status");
    assert_string_equal(reason_of(valid(), NULL, NULL, NULL), "unsigned");
    assert_string_equal(reason_of(valid(), "Assertion", evil_key, evil_crt), "bad_signature");
    assert_string_equal(reason_of(response("Success", ACS, AUDIENCE, "https://evil.test", "u", -60, 240), "Assertion",
                                  idp_key, idp_crt),
                        "issuer");
    assert_string_equal(reason_of(response("Success", "https://x.test/acs", AUDIENCE, ISSUER, "u", -60, 240),
                                  "Assertion", idp_key, idp_crt),
                        "destination");
    assert_string_equal(
        reason_of(response("Success", ACS, "https://other.test", ISSUER, "u", -60, 240), "Assertion", idp_key, idp_crt),
        "audience");
    x = replace(valid(), "Recipient=\"" ACS "\"", "Recipient=\"https://x.test/acs\"");
    assert_string_equal(reason_of(x, "Assertion", idp_key, idp_crt), "recipient");
    x = replace(valid(), "InResponseTo=\"_req1\"><saml:Issuer>", "InResponseTo=\"_other\"><saml:Issuer>");
    assert_string_equal(reason_of(x, "Assertion", idp_key, idp_crt), "in_response_to");
    x = replace(valid(), "<saml:AttributeStatement>", "<saml:AttributeStatement><!-- c -->");
    assert_string_equal(reason_of(x, "Assertion", idp_key, idp_crt), "comment");
    x = replace(valid(), "<samlp:Status>", "<samlp:Extensions ID=\"_a1\"/><samlp:Status>");
    assert_string_equal(reason_of(x, NULL, NULL, NULL), "duplicate_id");
    x = replace(valid(), "<samlp:Status>", "<saml:EncryptedAssertion/><samlp:Status>");
    assert_string_equal(reason_of(x, "Response", idp_key, idp_crt), "encrypted_assertion");
    x = replace(valid(), "</samlp:Response>", "<saml:Assertion ID=\"_a2\"/></samlp:Response>");
    assert_string_equal(reason_of(x, "Assertion", idp_key, idp_crt), "assertion_count");
    x = replace(valid(), "<saml:Subject>",
                "<saml:Advice><ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/></saml:Advice>"
                "<saml:Subject>");
    assert_string_equal(reason_of(x, "Assertion", idp_key, idp_crt), "signature_position");
}

static void test_references_and_transforms(void **state)
{
    (void)state;
    saml_sp_assertion_t a;
    xmlDocPtr doc = parse(valid());
    sign(doc, "Assertion", idp_key, idp_crt);
    xmlNodePtr ref = find(xmlDocGetRootElement(doc), "Reference");
    xmlSetProp(ref, (const xmlChar *)"URI", (const xmlChar *)"#_r1"); /* points at another element */
    assert_string_equal(verify(reparse(doc), &a), "reference");
    saml_sp_assertion_dispose(&a);

    doc = parse(valid());
    sign(doc, "Assertion", idp_key, idp_crt);
    xmlNodePtr t = find(xmlDocGetRootElement(doc), "Transforms");
    xmlNodePtr x = xmlNewChild(t, t->ns, (const xmlChar *)"Transform", NULL);
    xmlSetProp(x, (const xmlChar *)"Algorithm", (const xmlChar *)"http://www.w3.org/TR/1999/REC-xslt-19991116");
    assert_string_equal(verify(reparse(doc), &a), "transform");
    saml_sp_assertion_dispose(&a);
}

static void test_validity_window_and_skew(void **state)
{
    (void)state;
    saml_sp_assertion_t a;
    xmlDocPtr doc = parse(response("Success", ACS, AUDIENCE, ISSUER, "u", -600, -100));
    sign(doc, "Assertion", idp_key, idp_crt);
    assert_null(verify(reparse(doc), &a));
    time_t now = time(NULL);
    assert_null(saml_sp_check_times(&a, now));                                /* 100 s past: inside the skew */
    assert_string_equal(saml_sp_check_times(&a, now + 100), "expired");       /* 200 s past */
    assert_string_equal(saml_sp_check_times(&a, now - 900), "not_yet_valid"); /* 300 s before NotBefore */
    assert_null(saml_sp_check_times(&a, now - 770));                          /* 170 s before NotBefore */
    saml_sp_assertion_dispose(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_assertion_or_response_signature),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_references_and_transforms),
        cmocka_unit_test(test_validity_window_and_skew),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
