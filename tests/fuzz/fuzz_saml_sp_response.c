/*
 * libFuzzer: the broker's response path before any signature is trusted -- the intake gatekeeper (POST binding)
 * and then saml_sp_verify (saml/sp_verify.c): status, the structure pins against wrapping (assertion count, ID
 * registration, comments, signature positions), reference and transform checks, and the xmlsec verification
 * against a connection certificate made at start-up. Input: the Response XML (base64-encoded here). Checked: no
 * memory error, and nothing is ever accepted (the fuzzer cannot sign with the connection's key).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "saml/internal.h"

#define MAX_MESSAGE (64 * 1024)

static saml_conn_config_t conn;
static saml_idp_md_t md;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (saml_lasso_init() != 0 || (md.certs[0] = saml_self_signed_pem("fuzz")) == NULL)
        abort();
    conn.name = "fuzz";
    conn.entity_id = "https://idp.fuzz/saml";
    md.num_certs = 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len > MAX_MESSAGE)
        return 0;
    char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, data, (int)len);
    saml_intake_t in;
    if (saml_intake(SAML_BINDING_KIND_POST, b64, strlen(b64), NULL, 2 * MAX_MESSAGE, &in) == 0) {
        saml_sp_expect_t x = {.conn = &conn,
                              .md = &md,
                              .acs_url = "https://sp.fuzz/saml/sp/acs",
                              .own_entity_id = "https://sp.fuzz/saml/sp/metadata",
                              .now = time(NULL)};
        saml_sp_assertion_t a;
        const char *why = saml_sp_verify(&in.doc, &x, &a);
        if (why == NULL) /* accepted without our key's signature: the gatekeeper is broken */
            abort();
        saml_sp_assertion_dispose(&a);
    }
    saml_intake_dispose(&in);
    free(b64);
    return 0;
}
