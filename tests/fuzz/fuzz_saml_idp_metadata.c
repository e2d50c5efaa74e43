/*
 * libFuzzer: the metadata gatekeeper (saml/sp_metadata.c) as the refresher calls it on a fetched document: size,
 * DOCTYPE, the pinned signature (ID registration, references, transforms, SHA-1, xmlsec), the entityID search in an
 * EntitiesDescriptor, validUntil, endpoints and certificates. Each input is parsed twice: with a pinned certificate
 * made at start-up (nothing may ever pass: the fuzzer cannot sign with its key) and without one (the backing-file
 * path of a file-only connection), where a snapshot that passes must be complete.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "saml/internal.h"

static char *signer;

/* A throw-away RSA certificate: the only key the fuzzed responses would have to be signed with. */
static char *make_cert(void)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    X509 *x = X509_new();
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *pem = NULL;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    if (X509_sign(x, key, EVP_sha256()) > 0 && PEM_write_bio_X509(bio, x) == 1) {
        long n = BIO_get_mem_data(bio, &data);
        pem = strndup(data, (size_t)n);
    }
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(key);
    return pem;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (saml_lasso_init() != 0 || (signer = make_cert()) == NULL)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    saml_idp_md_t *md = NULL;
    saml_idp_md_check_t pinned = {.entity_id = "https://idp.fuzz/saml", .signer_pem = signer, .now = time(NULL)};
    if (saml_idp_md_parse((const char *)data, len, &pinned, &md) == NULL) /* accepted without our signature */
        abort();
    saml_idp_md_check_t any = {.now = time(NULL), .allow_expired = 1};
    if (saml_idp_md_parse((const char *)data, len, &any, &md) == NULL) {
        if (md == NULL || md->entity_id == NULL || (md->sso_url == NULL && md->sso_post_url == NULL) ||
            md->num_certs == 0)
            abort();
        saml_idp_md_release(md);
    }
    return 0;
}
