/*
 * libFuzzer: the SAML intake gatekeeper (saml_intake_peek, saml/intake.c) on arbitrary bytes, the code every
 * inbound SAML message passes before lasso. Input: one byte selecting the binding (even: POST, odd: Redirect),
 * then the message. For POST it is base64-encoded first (half the time; else passed raw, to reach the base64
 * checks), for Redirect DEFLATE-compressed, base64-encoded and percent-encoded into a query string with an
 * arbitrary SigAlg. Checked: no memory error; a refusal has one of the known reasons; an accepted message has a
 * root element name and never held a DOCTYPE.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "saml/internal.h"

#define MAX_MESSAGE (64 * 1024)

static const char *const reasons[] = {"missing", "too_large", "sha1",   "algorithm", "bad_encoding",
                                      "doctype", "not_xml",   NULL};

static char *b64(const unsigned char *data, size_t len)
{
    char *out = malloc(4 * (len + 2) / 3 + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static char *query(const uint8_t *data, size_t len)
{
    uLongf cap = compressBound(len) + 64;
    unsigned char *z = malloc(cap);
    z_stream s;
    memset(&s, 0, sizeof(s));
    deflateInit2(&s, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    s.next_in = (unsigned char *)data;
    s.avail_in = (uInt)len;
    s.next_out = z;
    s.avail_out = (uInt)cap;
    deflate(&s, Z_FINISH);
    char *enc = b64(z, s.total_out);
    deflateEnd(&s);
    free(z);
    size_t elen = strlen(enc);
    char *q = malloc(3 * elen + 128), *o = q;
    o += sprintf(o, "SAMLRequest=");
    for (size_t i = 0; i != elen; ++i)
        o += enc[i] == '+' ? sprintf(o, "%%2B") : enc[i] == '/' ? sprintf(o, "%%2F") : enc[i] == '=' ? sprintf(o, "%%3D")
                                                                                                   : (*o = enc[i], 1);
    sprintf(o, "&SigAlg=%s", len % 3 == 0 ? "http%3A%2F%2Fwww.w3.org%2F2000%2F09%2Fxmldsig%23rsa-sha1"
                                          : "http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256");
    free(enc);
    return q;
}

static int known(const char *r)
{
    for (const char *const *k = reasons; *k != NULL; ++k)
        if (strcmp(*k, r) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int redirect = data[0] & 1, raw = (data[0] & 2) != 0;
    ++data, --size;
    char *msg;
    if (redirect)
        msg = query(data, size);
    else if (raw)
        msg = strndup((const char *)data, size);
    else
        msg = b64(data, size);
    saml_peek_t peek;
    const char *reason = saml_intake_peek(redirect ? SAML_BINDING_KIND_REDIRECT : SAML_BINDING_KIND_POST, msg,
                                          "SAMLRequest", MAX_MESSAGE, &peek);
    if (reason != NULL) {
        if (!known(reason)) {
            fprintf(stderr, "unknown refusal reason %s\n", reason);
            abort();
        }
    } else {
        if (peek.root[0] == '\0' || memmem(data, size, "<!DOCTYPE", 9) != NULL)
            abort();
        saml_peek_dispose(&peek);
    }
    free(msg);
    return 0;
}
