/* saml common part and the IdP's assertion path, in process: the intake gatekeeper (DOCTYPE, SHA-1 in SigAlg,
 * SignatureMethod and DigestMethod, DEFLATE bombs, bad base64), key loading (RSA 2048/3072 only, certificate must
 * match), SP metadata parsing, and a full SP -> IdP round trip with lasso on both sides (signed Redirect
 * AuthnRequest in, signed RSA-SHA256 Response with our NameID and attributes out). The round trip also prints the
 * signed responses per second on this core (the figure tests/bench reports). */
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

#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/samlp2_authn_request.h>
#include <openssl/evp.h>
#include <xmlsec/crypto.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmltree.h>
#include <zlib.h>

#include "saml/internal.h"
#include "store/store.h"

static char dir[] = "/tmp/portier-saml-unit.XXXXXX";
static char idp_key[256], idp_crt[256], sp_key[256], sp_crt[256];

static int setup(void **state)
{
    char err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(idp_key, sizeof(idp_key), "%s/idp.key", dir);
    snprintf(idp_crt, sizeof(idp_crt), "%s/idp.crt", dir);
    snprintf(sp_key, sizeof(sp_key), "%s/sp.key", dir);
    snprintf(sp_crt, sizeof(sp_crt), "%s/sp.crt", dir);
    if (saml_keypair_generate(idp_key, idp_crt, "idp", err, sizeof(err)) != 0 ||
        saml_keypair_generate(sp_key, sp_crt, "sp", err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return saml_lasso_init();
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- intake ---- */

static char *b64(const char *data, size_t len)
{
    char *out = malloc(4 * (len + 2) / 3 + 1);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);
    return out;
}

static char *deflate_b64(const char *xml, size_t len)
{
    uLongf cap = compressBound(len) + 16;
    unsigned char *buf = malloc(cap);
    z_stream z = {0};
    deflateInit2(&z, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (unsigned char *)xml;
    z.avail_in = (uInt)len;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    char *out = b64((char *)buf, z.total_out);
    deflateEnd(&z);
    free(buf);
    return out;
}

#define REQ_OPEN  "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_1\" Version=\"2.0\">"
#define REQ_CLOSE "</samlp:AuthnRequest>"

static const char *intake_post(const char *xml, size_t max)
{
    saml_intake_t in;
    char *m = b64(xml, strlen(xml));
    int r = saml_intake(SAML_BINDING_KIND_POST, m, strlen(m), NULL, max, &in);
    free(m);
    if (r == 0) {
        assert_string_equal(in.root, "AuthnRequest");
        saml_intake_dispose(&in);
        return NULL;
    }
    assert_null(in.doc);
    return in.reason;
}

static void test_intake_accepts_a_plain_request(void **state)
{
    assert_null(intake_post(REQ_OPEN REQ_CLOSE, 4096));
}

static void test_intake_refuses_doctype_in_every_form(void **state)
{
    assert_string_equal(
        intake_post("<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>" REQ_OPEN "&x;" REQ_CLOSE, 4096),
        "doctype");
    assert_string_equal(intake_post("<?xml version=\"1.0\"?>\n<!doctype r>" REQ_OPEN REQ_CLOSE, 4096), "doctype");
    /* billion laughs never gets to expand */
    assert_string_equal(
        intake_post("<!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;\">]>" REQ_OPEN
                    "&b;" REQ_CLOSE,
                    4096),
        "doctype");
}

static void test_intake_refuses_sha1_anywhere(void **state)
{
    saml_intake_t in;
    const char *xml = REQ_OPEN REQ_CLOSE;
    char *m = deflate_b64(xml, strlen(xml));
    assert_int_equal(
        saml_intake(SAML_BINDING_KIND_REDIRECT, m, strlen(m), "http://www.w3.org/2000/09/xmldsig#rsa-sha1", 4096, &in),
        -1);
    assert_string_equal(in.reason, "sha1");
    assert_int_equal(saml_intake(SAML_BINDING_KIND_REDIRECT, m, strlen(m),
                                 "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", 4096, &in),
                     0);
    saml_intake_dispose(&in);
    free(m);
    assert_string_equal(intake_post(REQ_OPEN
                                    "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>"
                                    "<ds:SignatureMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#rsa-sha1\"/>"
                                    "</ds:SignedInfo></ds:Signature>" REQ_CLOSE,
                                    4096),
                        "sha1");
    assert_string_equal(
        intake_post(REQ_OPEN "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>"
                             "<ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>"
                             "<ds:Reference><ds:DigestMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#sha1\"/>"
                             "</ds:Reference></ds:SignedInfo></ds:Signature>" REQ_CLOSE,
                    4096),
        "sha1");
    assert_string_equal(intake_post(REQ_OPEN
                                    "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>"
                                    "<ds:SignatureMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#hmac-sha256\"/>"
                                    "</ds:SignedInfo></ds:Signature>" REQ_CLOSE,
                                    4096),
                        "algorithm");
}

static void test_intake_limits_size_before_and_after_inflating(void **state)
{
    saml_intake_t in;
    size_t n = 4 * 1024 * 1024;
    char *xml = malloc(n + 1);
    memset(xml, ' ', n);
    memcpy(xml, REQ_OPEN, strlen(REQ_OPEN));
    memcpy(xml + n - strlen(REQ_CLOSE), REQ_CLOSE, strlen(REQ_CLOSE));
    xml[n] = '\0';
    char *bomb = deflate_b64(xml, n);
    assert_true(strlen(bomb) < 64 * 1024); /* small on the wire */
    assert_int_equal(saml_intake(SAML_BINDING_KIND_REDIRECT, bomb, strlen(bomb), NULL, 64 * 1024, &in), -1);
    assert_string_equal(in.reason, "too_large");
    free(bomb);
    free(xml);
    assert_string_equal(intake_post(REQ_OPEN REQ_CLOSE, 16), "too_large");
}

static void test_intake_refuses_bad_encodings(void **state)
{
    saml_intake_t in;
    assert_int_equal(saml_intake(SAML_BINDING_KIND_POST, "not*base64", 10, NULL, 4096, &in), -1);
    assert_string_equal(in.reason, "bad_encoding");
    char *m = b64("plain, not deflated", 19);
    assert_int_equal(saml_intake(SAML_BINDING_KIND_REDIRECT, m, strlen(m), NULL, 4096, &in), -1);
    assert_string_equal(in.reason, "bad_encoding");
    free(m);
    assert_string_equal(intake_post("<a><b></a>", 4096), "not_xml");
    assert_int_equal(saml_intake(SAML_BINDING_KIND_POST, "", 0, NULL, 4096, &in), -1);
    assert_string_equal(in.reason, "missing");
}

/* ---- keys ---- */

static void test_keypair_rules(void **state)
{
    saml_keypair_t kp;
    char err[256], cmd[1200], ec[300], small[300], smallcrt[300];
    assert_int_equal(saml_keypair_load(&kp, idp_key, idp_crt, err, sizeof(err)), 0);
    assert_int_equal(kp.bits, 2048);
    assert_non_null(kp.cert_b64);
    saml_keypair_dispose(&kp);
    /* a certificate of another key */
    assert_int_equal(saml_keypair_load(&kp, idp_key, sp_crt, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is not the certificate of"));
    /* EC and 1024-bit RSA keys are refused */
    snprintf(ec, sizeof(ec), "%s/ec.key", dir);
    snprintf(small, sizeof(small), "%s/small.key", dir);
    snprintf(smallcrt, sizeof(smallcrt), "%s/small.crt", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s 2>/dev/null && "
             "openssl req -x509 -newkey rsa:1024 -nodes -keyout %s -out %s -days 1 -subj /CN=s 2>/dev/null",
             ec, small, smallcrt);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(saml_keypair_load(&kp, ec, idp_crt, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "must be RSA"));
    assert_int_equal(saml_keypair_load(&kp, small, smallcrt, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "1024 bits"));
}

/* ---- metadata ---- */

static char *sp_metadata(int signed_requests)
{
    saml_keypair_t kp;
    char err[256], *out;
    assert_int_equal(saml_cert_load(&kp, sp_crt, err, sizeof(err)), 0);
    assert_true(asprintf(&out,
                         "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
                         "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"https://sp.test/md\">"
                         "<md:SPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\" "
                         "AuthnRequestsSigned=\"%s\"><md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data>"
                         "<ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
                         "<md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact\" "
                         "Location=\"https://sp.test/art\" index=\"0\"/>"
                         "<md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" "
                         "Location=\"https://sp.test/acs2\" index=\"2\"/>"
                         "<md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" "
                         "Location=\"https://sp.test/acs\" index=\"1\" isDefault=\"true\"/>"
                         "</md:SPSSODescriptor></md:EntityDescriptor>",
                         signed_requests ? "true" : "false", kp.cert_b64) > 0);
    saml_keypair_dispose(&kp);
    return out;
}

static void test_sp_metadata_parse(void **state)
{
    saml_sp_metadata_t md;
    char err[256], *xml = sp_metadata(1);
    assert_int_equal(saml_sp_metadata_parse(xml, strlen(xml), &md, err, sizeof(err)), 0);
    assert_string_equal(md.entity_id, "https://sp.test/md");
    assert_int_equal(md.num_acs, 2); /* POST only, the default first */
    assert_string_equal(md.acs_urls[0], "https://sp.test/acs");
    assert_string_equal(md.acs_urls[1], "https://sp.test/acs2");
    assert_true(md.wants_signed_requests);
    assert_false(md.has_encryption_key);
    saml_sp_metadata_dispose(&md);
    free(xml);
    const char *doctype = "<!DOCTYPE x><md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\"/>";
    assert_int_equal(saml_sp_metadata_parse(doctype, strlen(doctype), &md, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "doctype"));
}

/* ---- a full round trip ---- */

static size_t count_plain(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr(s, what); p != NULL; p = strstr(p + 1, what))
        ++n;
    return n;
}

/* occurrences of `what` in a base64 XML message */
static size_t count(const char *b64msg, const char *what)
{
    gsize len;
    guchar *xml = g_base64_decode(b64msg, &len);
    char *s = g_strndup((char *)xml, len);
    size_t n = count_plain(s, what);
    g_free(s);
    g_free(xml);
    return n;
}

static void test_round_trip_and_rate(void **state)
{
    saml_keypair_t idp_kp, sp_kp;
    char err[256];
    assert_int_equal(saml_keypair_load(&idp_kp, idp_key, idp_crt, err, sizeof(err)), 0);
    assert_int_equal(saml_keypair_load(&sp_kp, sp_key, sp_crt, err, sizeof(err)), 0);
    char *idp_md = saml_idp_metadata_build("https://idp.test/saml/metadata", "https://idp.test", idp_kp.cert_b64, NULL);
    char *sp_md = sp_metadata(1);
    saml_sp_config_t sp = {.name = "sp", .nameid = SAML_NAMEID_PERSISTENT, .attributes = SAML_ATTR_ALL};
    assert_int_equal(saml_sp_metadata_parse(sp_md, strlen(sp_md), &sp.md, err, sizeof(err)), 0);
    saml_config_t sc = {.sps = &sp, .num_sps = 1, .assertion_lifetime = 300};
    saml_idp_t idp = {.sc = &sc, .entity_id = "https://idp.test/saml/metadata"};
    memset(idp.nameid_key, 7, sizeof(idp.nameid_key));
    saml_peer_t peer = {.role = LASSO_PROVIDER_ROLE_SP, .metadata = sp.md.xml, .entity_id = sp.md.entity_id};
    saml_lasso_t *pool = saml_lasso_create(1, idp_md, &idp_kp, &peer, 1, 1);
    LassoServer *ls = saml_lasso_server(pool, 0);
    assert_non_null(ls);
    assert_int_equal(ls->signature_method, LASSO_SIGNATURE_METHOD_RSA_SHA256);
    LassoServer *sps = lasso_server_new_from_buffers(sp.md.xml, sp_key, NULL, sp_crt);
    sps->signature_method = LASSO_SIGNATURE_METHOD_RSA_SHA256;
    assert_int_equal(lasso_server_add_provider_from_buffer(sps, LASSO_PROVIDER_ROLE_IDP, idp_md, NULL, NULL), 0);

    char *groups[] = {"staff", "eng", NULL};
    store_user_t user = {.id = 42,
                         .username = "ada",
                         .email = "ada@example.com",
                         .display_name = "Ada Lovelace",
                         .groups = groups,
                         .num_groups = 2};
    const int rounds = 30;
    double idp_secs = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i != rounds; ++i) {
        LassoLogin *spl = lasso_login_new(sps);
        assert_int_equal(
            lasso_login_init_authn_request(spl, "https://idp.test/saml/metadata", LASSO_HTTP_METHOD_REDIRECT), 0);
        assert_int_equal(lasso_login_build_authn_request_msg(spl), 0);
        const char *query = strchr(LASSO_PROFILE(spl)->msg_url, '?') + 1;

        struct timespec i0, i1;
        clock_gettime(CLOCK_MONOTONIC, &i0);
        /* as sso.c does for an SP without encryption: lasso builds the Response unsigned, sign.c signs it; the
         * last round as for an SP with encryption, where lasso signs (with the key holding the certificate again) */
        int own = i != rounds - 1;
        LassoLogin *login = lasso_login_new(ls);
        if (own)
            lasso_profile_set_signature_hint(LASSO_PROFILE(login), LASSO_PROFILE_SIGNATURE_HINT_FORBID);
        assert_int_equal(lasso_login_process_authn_request_msg(login, query), 0);
        assert_int_equal(lasso_profile_get_signature_status(LASSO_PROFILE(login)), 0);
        assert_int_equal(lasso_login_validate_request_msg(login, TRUE, TRUE), 0);
        assert_int_equal(saml_lasso_key_for(pool, 0, 0, !own), 0);
        assert_int_equal(lasso_login_build_assertion(login, LASSO_SAML2_AUTHN_CONTEXT_PASSWORD_PROTECTED_TRANSPORT,
                                                     "2026-01-01T00:00:00Z", NULL, "2026-01-01T00:00:00Z",
                                                     "2026-01-01T00:05:00Z"),
                         0);
        char name_id[128], released[256];
        const char *format;
        assert_int_equal(saml_nameid_for(&idp, &sp, &user, name_id, sizeof(name_id), &format), 0);
        assert_int_equal(saml_assertion_fill(login, &idp, &sp, &user, name_id, format, released, sizeof(released)), 0);
        assert_string_equal(released, "[\"uid\",\"mail\",\"displayName\",\"givenName\",\"sn\",\"groups\"]");
        if (own)
            assert_int_equal(saml_sign_take_over_assertion(login), 0);
        assert_int_equal(lasso_login_build_authn_response_msg(login), 0);
        if (i == 0)
            assert_int_equal(count(LASSO_PROFILE(login)->msg_body, "<Signature xmlns="), 0);
        char *signed_ = own ? saml_sign_response(LASSO_PROFILE(login)->msg_body, saml_lasso_sign_key(pool, 0), 1, 1)
                            : strdup(LASSO_PROFILE(login)->msg_body);
        assert_non_null(signed_);
        clock_gettime(CLOCK_MONOTONIC, &i1);
        idp_secs += (double)(i1.tv_sec - i0.tv_sec) + (double)(i1.tv_nsec - i0.tv_nsec) / 1e9;
        assert_string_equal(LASSO_PROFILE(login)->msg_url, "https://sp.test/acs");
        /* the SP's lasso takes it: both signatures verify with the key from our metadata */
        assert_int_equal(lasso_login_process_authn_response_msg(spl, signed_), 0);
        assert_int_equal(lasso_profile_get_signature_status(LASSO_PROFILE(spl)), 0);
        assert_int_equal(lasso_login_accept_sso(spl), 0);
        if (i == 0 || !own) {
            assert_int_equal(count(signed_, "<Signature xmlns="), 2);
            gsize n;
            guchar *xml = g_base64_decode(signed_, &n);
            char *s = g_strndup((char *)xml, n);
            assert_non_null(strstr(s, "</saml:Issuer><Signature xmlns="));
            assert_int_equal(count_plain(s, "<X509Certificate>"), 2);
            assert_non_null(strstr(s, "rsa-sha256"));
            assert_null(strstr(s, "rsa-sha1"));
            assert_null(strstr(s, "xmldsig#sha1"));
            assert_non_null(strstr(s, ">ada@example.com</saml:AttributeValue>"));
            assert_non_null(strstr(s, ">Lovelace</saml:AttributeValue>"));
            assert_non_null(strstr(s, name_id));
            assert_non_null(strstr(s, "nameid-format:persistent"));
            g_free(s);
            g_free(xml);
        }
        free(signed_);
        lasso_login_destroy(login);
        lasso_login_destroy(spl);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    /* each round also builds and signs the SP's request and verifies it: an upper bound on the IdP's cost */
    printf("saml round trip (SP request signed + IdP verify + signed response): %.0f/s on one core\n", rounds / secs);
    printf("saml IdP part alone (verify the signed request, build, sign Response + Assertion): %.0f/s on one core\n",
           rounds / idp_secs);
    lasso_server_destroy(sps);
    saml_lasso_destroy(pool);
    saml_sp_metadata_dispose(&sp.md);
    free(sp_md);
    free(idp_md);
    saml_keypair_dispose(&idp_kp);
    saml_keypair_dispose(&sp_kp);
}

/* ---- sign.c ---- */

#define UNSIGNED_RESPONSE                                                                                              \
    "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" "                                            \
    "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_r1\" Version=\"2.0\" "                                 \
    "IssueInstant=\"2026-01-01T00:00:00Z\"><saml:Issuer>https://idp.test</saml:Issuer><samlp:Status>"                  \
    "<samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status><saml:Assertion "          \
    "ID=\"_a1\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\"><saml:Issuer>https://idp.test</saml:Issuer>"     \
    "<saml:Subject><saml:NameID>ada</saml:NameID></saml:Subject></saml:Assertion></samlp:Response>"

static xmlNodePtr next_signature(xmlNodePtr n)
{
    for (; n != NULL; n = n->next) {
        if (n->type == XML_ELEMENT_NODE && xmlSecCheckNodeName(n, xmlSecNodeSignature, xmlSecDSigNs))
            return n;
        xmlNodePtr c = next_signature(n->children);
        if (c != NULL)
            return c;
    }
    return NULL;
}

/* How many signatures the decoded message carries, all verified with the certificate's key; -1 if one fails. */
static int verify_signatures(const char *xml)
{
    const char *why;
    int n = 0;
    xmlDocPtr doc = saml_xml_parse(xml, strlen(xml), &why);
    assert_non_null(doc);
    xmlNodePtr root = xmlDocGetRootElement(doc);
    xmlAddID(NULL, doc, (const xmlChar *)"_r1", xmlHasProp(root, (const xmlChar *)"ID"));
    for (xmlNodePtr c = root->children; c != NULL; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, "Assertion") == 0)
            xmlAddID(NULL, doc, (const xmlChar *)"_a1", xmlHasProp(c, (const xmlChar *)"ID"));
    xmlSecKeyPtr pub = xmlSecCryptoAppKeyLoad(idp_crt, xmlSecKeyDataFormatCertPem, NULL, NULL, NULL);
    assert_non_null(pub);
    for (xmlNodePtr sig = next_signature(root); sig != NULL; sig = next_signature(sig->next)) {
        xmlSecDSigCtxPtr ctx = xmlSecDSigCtxCreate(NULL);
        ctx->signKey = xmlSecKeyDuplicate(pub);
        int ok = xmlSecDSigCtxVerify(ctx, sig) == 0 && ctx->status == xmlSecDSigStatusSucceeded;
        xmlSecDSigCtxDestroy(ctx);
        n = ok && n >= 0 ? n + 1 : -1;
    }
    xmlSecKeyDestroy(pub);
    xmlFreeDoc(doc);
    return n;
}

static char *decoded(const char *b64msg)
{
    gsize len;
    guchar *xml = g_base64_decode(b64msg, &len);
    char *s = strndup((char *)xml, len);
    g_free(xml);
    return s;
}

static void test_sign_response(void **state)
{
    saml_keypair_t kp;
    char err[256];
    (void)state;
    assert_int_equal(saml_keypair_load(&kp, idp_key, idp_crt, err, sizeof(err)), 0);
    char *in = b64(UNSIGNED_RESPONSE, strlen(UNSIGNED_RESPONSE));
    for (int with_cert = 0; with_cert != 2; ++with_cert) {
        xmlSecKeyPtr key = saml_sign_key_load(&kp, with_cert);
        assert_non_null(key);
        for (int mode = 0; mode != 3; ++mode) { /* both, the response only, the assertion only */
            char *out = saml_sign_response(in, key, mode != 2, mode != 1);
            assert_non_null(out);
            char *xml = decoded(out);
            assert_int_equal(verify_signatures(xml), mode == 0 ? 2 : 1);
            assert_int_equal(count_plain(xml, "<X509Certificate>"), with_cert ? (mode == 0 ? 2 : 1) : 0);
            assert_int_equal(count_plain(xml, "<KeyInfo>"), with_cert ? (mode == 0 ? 2 : 1) : 0);
            assert_null(strstr(xml, "rsa-sha1"));
            assert_null(strstr(xml, "xmldsig#sha1"));
            /* right after each signed element's Issuer (the schema's place), referring to its ID */
            if (mode != 2)
                assert_non_null(strstr(xml, "<saml:Issuer>https://idp.test</saml:Issuer><Signature xmlns=\""
                                            "http://www.w3.org/2000/09/xmldsig#\">\n<SignedInfo>"));
            if (mode != 1)
                assert_non_null(strstr(xml, "URI=\"#_a1\""));
            if (mode != 2)
                assert_non_null(strstr(xml, "URI=\"#_r1\""));
            /* one byte changed in the signed content: a signature fails */
            char *name = strstr(xml, ">ada<");
            assert_non_null(name);
            name[1] = 'b';
            assert_int_equal(verify_signatures(xml), -1);
            free(xml);
            free(out);
        }
        xmlSecKeyDestroy(key);
    }
    free(in);
    /* what cannot be signed: no Issuer, an ID held twice, not a Response, not base64 */
    xmlSecKeyPtr key = saml_sign_key_load(&kp, 1);
    const char *bad[] = {
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_r1\"/>",
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" "
        "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_x\"><saml:Issuer>i</saml:Issuer>"
        "<saml:Assertion ID=\"_x\"><saml:Issuer>i</saml:Issuer></saml:Assertion></samlp:Response>",
        "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_a\"><saml:Issuer>i"
        "</saml:Issuer></saml:Assertion>",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        char *m = b64(bad[i], strlen(bad[i]));
        assert_null(saml_sign_response(m, key, 1, 1));
        free(m);
    }
    assert_null(saml_sign_response("not base64!", key, 1, 1));
    xmlSecKeyDestroy(key);
    saml_keypair_dispose(&kp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intake_accepts_a_plain_request),
        cmocka_unit_test(test_intake_refuses_doctype_in_every_form),
        cmocka_unit_test(test_intake_refuses_sha1_anywhere),
        cmocka_unit_test(test_intake_limits_size_before_and_after_inflating),
        cmocka_unit_test(test_intake_refuses_bad_encodings),
        cmocka_unit_test(test_keypair_rules),
        cmocka_unit_test(test_sp_metadata_parse),
        cmocka_unit_test(test_round_trip_and_rate),
        cmocka_unit_test(test_sign_response),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
