/* The metadata settings of an enterprise IdP connection (saml/sp_config.c) and the metadata gatekeeper
 * (saml/sp_metadata.c), through the configuration loader: metadata_url, metadata_signing_certificate, metadata_ca,
 * metadata_refresh and saml.sp.metadata_refresh_minimum are accepted in range and refused with "FILE:LINE: KEY:"
 * messages otherwise; a backing file must be signed by the pinned certificate; then the gatekeeper itself: entityID,
 * EntitiesDescriptor, validUntil, another signer, and the snapshot swap; the SSO / SLO endpoints of both bindings
 * and the binding request_binding picks (saml_idp_md_endpoint). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "gateway/config.h"
#include "saml/internal.h"

#define ENTITY "https://idp.test/saml"

static char dir[] = "/tmp/portier-sp-config.XXXXXX";
static char conf_path[256], fed_key[256], fed_crt[256], evil_key[256], evil_crt[256], idp_key[256], idp_crt[256];
static char unsigned_md[256], signed_md[256], expired_md[256], evil_md[256], not_cert[256];
static char *idp_b64;

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

#define B_REDIRECT "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
#define B_POST     "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"

/* An IdP's metadata with the given service elements (SingleLogoutService first, then SingleSignOnService). */
static char *metadata_with(const char *services)
{
    char *xml = NULL;
    int n = asprintf(&xml,
                     "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
                     "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"" ENTITY "\">"
                     "<md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">"
                     "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s"
                     "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>%s"
                     "</md:IDPSSODescriptor></md:EntityDescriptor>",
                     idp_b64, services);
    assert_true(n > 0);
    return xml;
}

static char *metadata(const char *entity, const char *valid_until)
{
    char *xml = NULL;
    int n = asprintf(&xml,
                     "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
                     "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" ID=\"_m\" entityID=\"%s\"%s%s%s>"
                     "<md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">"
                     "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s"
                     "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
                     "<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" "
                     "Location=\"https://idp.test/sso\"/></md:IDPSSODescriptor></md:EntityDescriptor>",
                     entity, valid_until != NULL ? " validUntil=\"" : "", valid_until != NULL ? valid_until : "",
                     valid_until != NULL ? "\"" : "", idp_b64);
    assert_true(n > 0);
    return xml;
}

/* saml_metadata_sign with a key pair read from files for this one signature. */
static char *sign_with(const char *xml, const char *key, const char *crt)
{
    saml_keypair_t kp = {0};
    char err[256];
    if (saml_keypair_load(&kp, key, crt, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    char *s = saml_metadata_sign(xml, &kp);
    saml_keypair_dispose(&kp);
    return s;
}

static void write_signed(const char *path, const char *xml, const char *key, const char *crt)
{
    char *s = sign_with(xml, key, crt);
    assert_non_null(s);
    write_text(path, s);
    free(s);
}

static int setup(void **state)
{
    char err[256];
    saml_keypair_t kp = {0};
    (void)state;
    if (mkdtemp(dir) == NULL || saml_lasso_init() != 0)
        return -1;
#define IN(var, name) snprintf(var, sizeof(var), "%s/" name, dir)
    IN(conf_path, "portier.yaml");
    IN(fed_key, "fed.key");
    IN(fed_crt, "fed.crt");
    IN(evil_key, "evil.key");
    IN(evil_crt, "evil.crt");
    IN(idp_key, "idp.key");
    IN(idp_crt, "idp.crt");
    IN(unsigned_md, "unsigned.xml");
    IN(signed_md, "signed.xml");
    IN(expired_md, "expired.xml");
    IN(evil_md, "evil.xml");
    IN(not_cert, "not-a-cert.pem");
#undef IN
    if (saml_keypair_generate(fed_key, fed_crt, "fed", err, sizeof(err)) != 0 ||
        saml_keypair_generate(evil_key, evil_crt, "evil", err, sizeof(err)) != 0 ||
        saml_keypair_generate(idp_key, idp_crt, "idp", err, sizeof(err)) != 0 ||
        saml_cert_load(&kp, idp_crt, err, sizeof(err)) != 0)
        return -1;
    idp_b64 = strdup(kp.cert_b64);
    saml_keypair_dispose(&kp);
    char *xml = metadata(ENTITY, NULL);
    write_text(unsigned_md, xml);
    write_signed(signed_md, xml, fed_key, fed_crt);
    write_signed(evil_md, xml, evil_key, evil_crt);
    free(xml);
    xml = metadata(ENTITY, "2001-01-01T00:00:00Z");
    write_signed(expired_md, xml, fed_key, fed_crt);
    free(xml);
    write_text(not_cert, "hello\n");
    /* the files the rest of the configuration names (never parsed by the loader) */
    char p[300];
    snprintf(p, sizeof(p), "%s/tls.pem", dir);
    write_text(p, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    snprintf(p, sizeof(p), "%s/tls.key", dir);
    write_text(p, "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n");
    chmod(p, 0600);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    free(idp_b64);
    return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The configuration with one connection whose settings are `conn` (a YAML flow mapping's inside) and `sp_extra`
 * (lines under saml.sp). Line 18 is the connection. */
static int load(const char *conn, const char *sp_extra, gw_config_t *c, gw_config_errors_t *errs)
{
    char *yaml = NULL;
    int n = asprintf(&yaml,
                     "server:\n"                                       /* 1 */
                     "  listen: { address: 127.0.0.1, port: 8443 }\n"  /* 2 */
                     "  tls: { certificate: tls.pem, key: tls.key }\n" /* 3 */
                     "database:\n"                                     /* 4 */
                     "  conninfo: \"host=/run/pg dbname=portier\"\n"   /* 5 */
                     "identity:\n"                                     /* 6 */
                     "  signing_key: tls.key\n"                        /* 7 */
                     "routes:\n"                                       /* 8 */
                     "  - prefix: /\n"                                 /* 9 */
                     "    backend: http://127.0.0.1:9000\n"            /* 10 */
                     "saml:\n"                                         /* 11 */
                     "  idp: { key: %s, certificate: %s }\n"           /* 12 */
                     "  sp:\n"                                         /* 13 */
                     "%s"                                              /* 14 */
                     "    connections:\n"                              /* 15 */
                     "      - name: x\n"                               /* 16 */
                     "        label: X\n"                              /* 17 */
                     "        %s\n",                                   /* 18 */
                     idp_key, idp_crt, sp_extra != NULL ? sp_extra : "    entity_id: https://sp.test/md\n", conn);
    assert_true(n > 0);
    memset(c, 0, sizeof(*c));
    memset(errs, 0, sizeof(*errs));
    int rc = gw_config_load_buffer(c, conf_path, yaml, strlen(yaml), errs);
    free(yaml);
    return rc;
}

static void expect_ok(const char *conn, const char *sp_extra, gw_config_t *c)
{
    gw_config_errors_t errs;
    if (load(conn, sp_extra, c, &errs) != 0) {
        for (size_t i = 0; i != errs.count; ++i)
            print_message("  %s\n", errs.msgs[i]);
        fail_msg("refused: %s", conn);
    }
    gw_config_errors_dispose(&errs);
}

/* Expects an error starting "portier.yaml:LINE: KEY: " and containing part. */
static void expect_error(const char *conn, const char *sp_extra, size_t line, const char *key, const char *part)
{
    gw_config_t c;
    gw_config_errors_t errs;
    char prefix[512];
    assert_int_equal(load(conn, sp_extra, &c, &errs), -1);
    snprintf(prefix, sizeof(prefix), "%s:%zu: %s: ", conf_path, line, key);
    int found = 0;
    for (size_t i = 0; i != errs.count; ++i)
        found |= strncmp(errs.msgs[i], prefix, strlen(prefix)) == 0 && strstr(errs.msgs[i], part) != NULL;
    if (!found) {
        for (size_t i = 0; i != errs.count; ++i)
            print_message("  %s\n", errs.msgs[i]);
        fail_msg("no error \"%s...%s\"", prefix, part);
    }
    gw_config_errors_dispose(&errs);
    gw_config_dispose(&c);
}

static const saml_conn_config_t *conn0(const gw_config_t *c)
{
    return &c->saml->broker.conns[0];
}

static void test_metadata_url_settings_accepted(void **state)
{
    (void)state;
    gw_config_t c;
    char conn[1024];
    snprintf(conn, sizeof(conn),
             "metadata: %s\n        metadata_url: https://login.example.test/fed/metadata.xml\n"
             "        metadata_signing_certificate: %s\n        metadata_ca: %s\n        metadata_refresh: 2h",
             signed_md, fed_crt, fed_crt);
    expect_ok(conn, NULL, &c);
    const saml_conn_config_t *x = conn0(&c);
    assert_string_equal(x->metadata_url, "https://login.example.test/fed/metadata.xml");
    assert_string_equal(x->metadata_ca, fed_crt);
    assert_non_null(strstr(x->metadata_signer_pem, "BEGIN CERTIFICATE"));
    assert_int_equal(x->metadata_refresh, 7200);
    assert_string_equal(x->entity_id, ENTITY);
    saml_idp_md_t *md = saml_conn_md(x);
    assert_string_equal(md->sso_url, "https://idp.test/sso");
    assert_int_equal(md->num_certs, 1);
    saml_idp_md_release(md);
    gw_config_dispose(&c);

    /* the default interval; a file-only connection keeps working unsigned */
    snprintf(conn, sizeof(conn),
             "metadata: %s\n        metadata_url: https://idp.test/md\n"
             "        metadata_signing_certificate: %s",
             signed_md, fed_crt);
    expect_ok(conn, NULL, &c);
    assert_int_equal(conn0(&c)->metadata_refresh, SAML_MD_REFRESH_DEFAULT);
    gw_config_dispose(&c);
    snprintf(conn, sizeof(conn), "metadata: %s", unsigned_md);
    expect_ok(conn, NULL, &c);
    assert_null(conn0(&c)->metadata_url);
    gw_config_dispose(&c);

    /* below a minute only with saml.sp.metadata_refresh_minimum (tests) */
    snprintf(conn, sizeof(conn),
             "metadata: %s\n        metadata_url: https://idp.test/md\n"
             "        metadata_signing_certificate: %s\n        metadata_refresh: 1s",
             signed_md, fed_crt);
    expect_ok(conn, "    metadata_refresh_minimum: 1s\n", &c);
    assert_int_equal(conn0(&c)->metadata_refresh, 1);
    assert_int_equal(c.saml->broker.metadata_refresh_minimum, 1);
    gw_config_dispose(&c);

    /* an expired backing file loads (the network may be down) but the connection refuses sign-ins until refreshed */
    snprintf(conn, sizeof(conn),
             "metadata: %s\n        metadata_url: https://idp.test/md\n"
             "        metadata_signing_certificate: %s",
             expired_md, fed_crt);
    expect_ok(conn, NULL, &c);
    md = saml_conn_md(conn0(&c));
    assert_true(saml_idp_md_expired(md, time(NULL)));
    saml_idp_md_release(md);
    gw_config_dispose(&c);
}

static void test_metadata_url_errors_name_file_line_and_key(void **state)
{
    (void)state;
    char conn[1024];
    const char *k = "saml.sp.connections[0]";
    snprintf(conn, sizeof(conn),
             "metadata: %s\n        metadata_url: http://idp.test/md\n"
             "        metadata_signing_certificate: %s",
             signed_md, fed_crt);
    expect_error(conn, NULL, 19, "saml.sp.connections[0].metadata_url", "must be an https:// URL");
    snprintf(conn, sizeof(conn), "metadata: %s\n        metadata_url: https://idp.test/md", signed_md);
    expect_error(conn, NULL, 16, k, "metadata_url needs metadata_signing_certificate");
    snprintf(conn, sizeof(conn), "metadata: %s\n        metadata_refresh: 1h", unsigned_md);
    expect_error(conn, NULL, 16, k, "go with metadata_url");
    snprintf(conn, sizeof(conn),
             "metadata: %s\n        metadata_url: https://idp.test/md\n"
             "        metadata_signing_certificate: %s",
             signed_md, not_cert);
    expect_error(conn, NULL, 20, "saml.sp.connections[0].metadata_signing_certificate", "not a PEM certificate");
    snprintf(conn, sizeof(conn),
             "metadata: %s\n        metadata_url: https://idp.test/md\n"
             "        metadata_signing_certificate: %s\n        metadata_refresh: 30s",
             signed_md, fed_crt);
    expect_error(conn, NULL, 21, "saml.sp.connections[0].metadata_refresh", "at least 60s");
    snprintf(conn, sizeof(conn),
             "metadata: %s\n        metadata_url: https://idp.test/md\n"
             "        metadata_signing_certificate: %s\n        metadata_refresh: soon",
             signed_md, fed_crt);
    expect_error(conn, NULL, 21, "saml.sp.connections[0].metadata_refresh", "is not a duration");
    snprintf(conn, sizeof(conn),
             "metadata: %s\n        metadata_url: https://idp.test/md\n"
             "        metadata_signing_certificate: %s\n        metadata_refresh: 8d",
             signed_md, fed_crt);
    expect_error(conn, NULL, 21, "saml.sp.connections[0].metadata_refresh", "at most 7d");
    snprintf(conn, sizeof(conn), "metadata: %s", unsigned_md);
    expect_error(conn, "    metadata_refresh_minimum: 2m\n", 14, "saml.sp.metadata_refresh_minimum",
                 "is not a duration of 1 to 60 seconds");
    /* the backing file is checked like fetched metadata: signed by the pinned certificate, by no other */
    snprintf(conn, sizeof(conn),
             "metadata: %s\n        metadata_url: https://idp.test/md\n"
             "        metadata_signing_certificate: %s",
             unsigned_md, fed_crt);
    expect_error(conn, NULL, 18, "saml.sp.connections[0].metadata", "no enveloped signature on the root element");
    snprintf(conn, sizeof(conn),
             "metadata: %s\n        metadata_url: https://idp.test/md\n"
             "        metadata_signing_certificate: %s",
             evil_md, fed_crt);
    expect_error(conn, NULL, 18, "saml.sp.connections[0].metadata", "not valid for the pinned");
}

static const char *parse(const char *xml, const char *entity, const char *signer, saml_idp_md_t **md)
{
    saml_idp_md_check_t chk = {.entity_id = entity, .signer_pem = signer, .now = time(NULL)};
    return saml_idp_md_parse(xml, strlen(xml), &chk, md);
}

static void test_gatekeeper_and_swap(void **state)
{
    (void)state;
    char err[256];
    char *signer = saml_md_signer_load(fed_crt, err, sizeof(err));
    assert_non_null(signer);
    saml_idp_md_t *md = NULL, *held = NULL;
    char *xml = metadata(ENTITY, NULL), *other = metadata("https://other.test/saml", NULL);
    assert_null(parse(xml, ENTITY, NULL, &md));
    assert_string_equal(md->entity_id, ENTITY);
    assert_int_equal(md->valid_until, 0);
    assert_string_equal(parse(other, ENTITY, NULL, &held), "entity_id");
    assert_null(held);
    /* in an EntitiesDescriptor: the connection's entity, found among others */
    char *group = NULL;
    assert_true(asprintf(&group,
                         "<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\">%s%s"
                         "</md:EntitiesDescriptor>",
                         other, xml) > 0);
    assert_null(parse(group, ENTITY, NULL, &held));
    assert_string_equal(held->entity_id, ENTITY);
    saml_idp_md_release(held);
    assert_string_equal(parse(group, NULL, NULL, &held), "entity_id"); /* two IdPs: which one? */
    free(group);
    /* signatures: unsigned, and by another key, refused when a signer is pinned */
    assert_string_equal(parse(xml, ENTITY, signer, &held), "unsigned");
    char *evil = sign_with(xml, evil_key, evil_crt), *good = sign_with(xml, fed_key, fed_crt);
    assert_string_equal(parse(evil, ENTITY, signer, &held), "bad_signature");
    assert_null(parse(good, ENTITY, signer, &held));
    saml_idp_md_release(held);
    char *past = metadata(ENTITY, "2001-01-01T00:00:00Z"), *bad_time = metadata(ENTITY, "tomorrow");
    assert_string_equal(parse(past, ENTITY, NULL, &held), "expired");
    assert_string_equal(parse(bad_time, ENTITY, NULL, &held), "valid_until");
    assert_string_equal(parse("<!DOCTYPE x><x/>", ENTITY, NULL, &held), "doctype");

    /* the swap: a reader's reference outlives the replacement */
    saml_conn_config_t conn = {.name = "x", .entity_id = ENTITY};
    conn.md = saml_md_slot_create(md);
    held = saml_conn_md(&conn);
    assert_ptr_equal(held, md);
    saml_idp_md_t *next = NULL;
    assert_null(parse(good, ENTITY, signer, &next));
    saml_conn_md_replace(&conn, next);
    assert_string_equal(held->sso_url, "https://idp.test/sso"); /* still valid (ASan would say otherwise) */
    saml_idp_md_release(held);
    held = saml_conn_md(&conn);
    assert_ptr_equal(held, next);
    saml_idp_md_release(held);
    saml_md_slot_destroy(conn.md);
    free(xml);
    free(other);
    free(evil);
    free(good);
    free(past);
    free(bad_time);
    free(signer);
}

static void test_endpoints_of_both_bindings_and_request_binding(void **state)
{
    (void)state;
    saml_idp_md_check_t chk = {.entity_id = ENTITY, .now = time(NULL)};
    saml_idp_md_t *md = NULL;
    int post = -1;
    /* neither binding: the clear error */
    char *xml = metadata_with("<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:SOAP\" "
                              "Location=\"https://idp.test/soap\"/>");
    assert_string_equal(saml_idp_md_parse(xml, strlen(xml), &chk, &md), "no_sso");
    assert_non_null(strstr(saml_idp_md_reason_text("no_sso"), "HTTP-Redirect or HTTP-POST"));
    assert_null(md);
    free(xml);
    /* POST only (and POST-only single logout): the default is POST, redirect cannot be had */
    xml = metadata_with("<md:SingleLogoutService Binding=\"" B_POST "\" Location=\"https://idp.test/slo-post\"/>"
                        "<md:SingleSignOnService Binding=\"" B_POST "\" Location=\"https://idp.test/sso-post\"/>");
    assert_null(saml_idp_md_parse(xml, strlen(xml), &chk, &md));
    assert_null(md->sso_url);
    assert_string_equal(md->sso_post_url, "https://idp.test/sso-post");
    assert_string_equal(saml_idp_md_endpoint(md, SAML_REQUEST_BINDING_AUTO, 1, &post), "https://idp.test/sso-post");
    assert_int_equal(post, 1);
    assert_string_equal(saml_idp_md_endpoint(md, SAML_REQUEST_BINDING_POST, 1, &post), "https://idp.test/sso-post");
    assert_null(saml_idp_md_endpoint(md, SAML_REQUEST_BINDING_REDIRECT, 1, &post));
    /* single logout falls back to the binding the IdP has */
    assert_string_equal(saml_idp_md_endpoint(md, SAML_REQUEST_BINDING_REDIRECT, 0, &post), "https://idp.test/slo-post");
    assert_int_equal(post, 1);
    saml_idp_md_release(md);
    free(xml);
    /* both: Redirect by default, POST when asked; Redirect-only logout stays Redirect under post */
    xml = metadata_with("<md:SingleLogoutService Binding=\"" B_REDIRECT "\" Location=\"https://idp.test/slo\"/>"
                        "<md:SingleSignOnService Binding=\"" B_POST "\" Location=\"https://idp.test/sso-post\"/>"
                        "<md:SingleSignOnService Binding=\"" B_REDIRECT "\" Location=\"https://idp.test/sso\"/>");
    assert_null(saml_idp_md_parse(xml, strlen(xml), &chk, &md));
    assert_string_equal(saml_idp_md_endpoint(md, SAML_REQUEST_BINDING_AUTO, 1, &post), "https://idp.test/sso");
    assert_int_equal(post, 0);
    assert_string_equal(saml_idp_md_endpoint(md, SAML_REQUEST_BINDING_POST, 1, &post), "https://idp.test/sso-post");
    assert_int_equal(post, 1);
    assert_string_equal(saml_idp_md_endpoint(md, SAML_REQUEST_BINDING_POST, 0, &post), "https://idp.test/slo");
    assert_int_equal(post, 0);
    assert_null(md->slo_post_url);
    saml_idp_md_release(md);
    free(xml);

    /* the setting: accepted values, and a binding the metadata does not offer refused at load */
    gw_config_t c;
    char conn[1024];
    snprintf(conn, sizeof(conn), "metadata: %s\n        request_binding: redirect", unsigned_md);
    expect_ok(conn, NULL, &c);
    assert_int_equal(conn0(&c)->request_binding, SAML_REQUEST_BINDING_REDIRECT);
    gw_config_dispose(&c);
    snprintf(conn, sizeof(conn), "metadata: %s", unsigned_md);
    expect_ok(conn, NULL, &c);
    assert_int_equal(conn0(&c)->request_binding, SAML_REQUEST_BINDING_AUTO);
    gw_config_dispose(&c);
    snprintf(conn, sizeof(conn), "metadata: %s\n        request_binding: artifact", unsigned_md);
    expect_error(conn, NULL, 19, "saml.sp.connections[0].request_binding", "is not one of redirect, post");
    snprintf(conn, sizeof(conn), "metadata: %s\n        request_binding: post", unsigned_md);
    expect_error(conn, NULL, 16, "saml.sp.connections[0]", "request_binding post");
}

/* The one signer (saml/sign.c): an enveloped RSA-SHA256 signature after the Issuer, referencing the root's ID,
 * that the broker's own verifier accepts with the signing certificate and refuses with another. */
static void test_sign_message_after_issuer(void **state)
{
    (void)state;
    char err[256];
    saml_keypair_t kp = {0}, evil = {0};
    assert_int_equal(saml_keypair_load(&kp, fed_key, fed_crt, err, sizeof(err)), 0);
    assert_int_equal(saml_keypair_load(&evil, evil_key, evil_crt, err, sizeof(err)), 0);
    FILE *f = fopen(fed_key, "r");
    assert_non_null(f);
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(key);
    const char *xml = "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" "
                      "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_abc\" Version=\"2.0\">"
                      "<saml:Issuer>https://sp.test/md</saml:Issuer><samlp:NameIDPolicy AllowCreate=\"true\"/>"
                      "</samlp:AuthnRequest>";
    char *signed_xml = saml_sign_message(xml, key, kp.cert_pem);
    assert_non_null(signed_xml);
    assert_null(strstr(signed_xml, "sha1"));
    assert_non_null(strstr(signed_xml, "URI=\"#_abc\""));
    const char *reason;
    xmlDocPtr doc = saml_xml_parse(signed_xml, strlen(signed_xml), &reason);
    assert_non_null(doc);
    xmlNodePtr root = xmlDocGetRootElement(doc), issuer = root->children, sig = issuer->next;
    assert_string_equal((const char *)issuer->name, "Issuer");
    assert_string_equal((const char *)sig->name, "Signature");
    assert_non_null(xmlAddID(NULL, doc, (const xmlChar *)"_abc", xmlHasProp(root, (const xmlChar *)"ID")));
    const char *good[] = {kp.cert_pem}, *bad[] = {evil.cert_pem};
    assert_null(saml_dsig_verify_enveloped(sig, root, good, 1, 0));
    assert_non_null(saml_dsig_verify_enveloped(sig, root, bad, 1, 0));
    xmlFreeDoc(doc);
    /* not a protocol message: no Issuer first, or no ID */
    assert_null(saml_sign_message("<x ID=\"_a\"><y/></x>", key, kp.cert_pem));
    assert_null(saml_sign_message("<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" "
                                  "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"><saml:Issuer>i</saml:Issuer>"
                                  "</samlp:LogoutRequest>",
                                  key, kp.cert_pem));
    free(signed_xml);
    EVP_PKEY_free(key);
    saml_keypair_dispose(&kp);
    saml_keypair_dispose(&evil);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata_url_settings_accepted),
        cmocka_unit_test(test_metadata_url_errors_name_file_line_and_key),
        cmocka_unit_test(test_gatekeeper_and_swap),
        cmocka_unit_test(test_endpoints_of_both_bindings_and_request_binding),
        cmocka_unit_test(test_sign_message_after_issuer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
