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

#include "saml/internal.h"

static char *signer;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (saml_lasso_init() != 0 || (signer = saml_self_signed_pem("fuzz")) == NULL)
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
