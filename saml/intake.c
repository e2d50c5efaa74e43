/*
 * The intake gatekeeper: every inbound SAML message (AuthnRequest, LogoutRequest, LogoutResponse; later the
 * broker's Responses) passes here before lasso sees it. Debian's lasso accepts rsa-sha1 signatures and will
 * parse whatever libxml2 parses, so the checks lasso does not make are made here, in one place:
 *   - encoded size and decoded size (a DEFLATE bomb is stopped while inflating),
 *   - strict base64 and raw DEFLATE (Redirect binding),
 *   - well-formed XML without any DOCTYPE,
 *   - the Redirect SigAlg and every SignatureMethod / DigestMethod in the document: SHA-2 RSA only.
 * The caller still hands the original message to lasso, which verifies the signature with the peer's key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "saml/internal.h"

static const char *const allowed_sig[] = {"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                                          "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
                                          "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512", NULL};
static const char *const allowed_digest[] = {"http://www.w3.org/2001/04/xmlenc#sha256",
                                             "http://www.w3.org/2001/04/xmldsig-more#sha384",
                                             "http://www.w3.org/2001/04/xmlenc#sha512", NULL};

static int in_list(const char *const *list, const char *s)
{
    for (; *list != NULL; ++list)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

/* Why an algorithm URI is refused: "sha1" for anything SHA-1 (the case the logs should name), else "algorithm". */
static const char *algorithm_problem(const char *const *allowed, const char *uri)
{
    if (uri == NULL)
        return "algorithm";
    if (in_list(allowed, uri))
        return NULL;
    return strstr(uri, "sha1") != NULL ? "sha1" : "algorithm";
}

/* Strict base64 (RFC 4648 alphabet, padding; blanks and line breaks tolerated as some SPs wrap). */
static unsigned char *base64_decode(const char *in, size_t len, size_t *outlen)
{
    char *clean = malloc(len + 1);
    size_t n = 0;
    if (clean == NULL)
        return NULL;
    for (size_t i = 0; i != len; ++i) {
        char c = in[i];
        if (c == '\r' || c == '\n' || c == ' ' || c == '\t')
            continue;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
              c == '=')) {
            free(clean);
            return NULL;
        }
        clean[n++] = c;
    }
    unsigned char *out = NULL;
    if (n == 0 || n % 4 != 0 || (out = malloc(n / 4 * 3 + 1)) == NULL) {
        free(clean);
        return NULL;
    }
    int r = EVP_DecodeBlock(out, (const unsigned char *)clean, (int)n);
    size_t pad = (clean[n - 1] == '=') + (clean[n - 2] == '=');
    free(clean);
    if (r < 0 || (size_t)r < pad) {
        free(out);
        return NULL;
    }
    *outlen = (size_t)r - pad;
    return out;
}

/* Raw DEFLATE (RFC 1951) into a buffer of at most max bytes; -1 on error, -2 when larger. */
static int inflate_bounded(const unsigned char *in, size_t len, size_t max, char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK)
        return -1;
    char *buf = malloc(max + 1);
    int ret = -1;
    if (buf == NULL)
        goto exit;
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)len;
    z.next_out = (unsigned char *)buf;
    z.avail_out = (uInt)max + 1;
    int zr = inflate(&z, Z_FINISH);
    if (zr == Z_STREAM_END && z.total_out <= max) {
        *out = buf;
        *outlen = z.total_out;
        buf = NULL;
        ret = 0;
    } else if (zr == Z_BUF_ERROR || z.total_out > max) {
        ret = z.avail_out == 0 ? -2 : -1;
    }
exit:
    free(buf);
    inflateEnd(&z);
    return ret;
}

static int is_dsig(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && n->ns != NULL && xmlStrcmp(n->ns->href, (const xmlChar *)SAML_NS_DSIG) == 0 &&
           xmlStrcmp(n->name, (const xmlChar *)name) == 0;
}

/* Every ds:SignatureMethod and ds:DigestMethod anywhere in the tree must be SHA-2. */
static const char *check_algorithms(xmlNodePtr n)
{
    for (; n != NULL; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        const char *problem = NULL;
        if (is_dsig(n, "SignatureMethod") || is_dsig(n, "DigestMethod")) {
            char *alg = saml_xml_attr(n, "Algorithm");
            problem = algorithm_problem(is_dsig(n, "SignatureMethod") ? allowed_sig : allowed_digest, alg);
            xmlFree(alg);
        }
        if (problem == NULL)
            problem = check_algorithms(n->children);
        if (problem != NULL)
            return problem;
    }
    return NULL;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static int refuse(saml_intake_t *in, const char *reason)
{
    in->reason = reason;
    return -1;
}

int saml_intake(saml_binding_kind_t binding, const char *message, size_t len, const char *sig_alg, size_t max,
                saml_intake_t *in)
{
    unsigned char *raw = NULL;
    char *xml = NULL;
    size_t raw_len = 0, xml_len = 0;
    int ret = -1;

    memset(in, 0, sizeof(*in));
    if (message == NULL || len == 0)
        return refuse(in, "missing");
    if (len > max)
        return refuse(in, "too_large");
    if (sig_alg != NULL && algorithm_problem(allowed_sig, sig_alg) != NULL)
        return refuse(in, algorithm_problem(allowed_sig, sig_alg));
    if ((raw = base64_decode(message, len, &raw_len)) == NULL)
        return refuse(in, "bad_encoding");
    if (binding == SAML_BINDING_KIND_REDIRECT) {
        int r = inflate_bounded(raw, raw_len, max, &xml, &xml_len);
        if (r != 0) {
            refuse(in, r == -2 ? "too_large" : "bad_encoding");
            goto exit;
        }
    } else {
        xml = (char *)raw;
        xml_len = raw_len;
        raw = NULL;
    }
    if ((in->doc = saml_xml_parse(xml, xml_len, &in->reason)) == NULL)
        goto exit;
    xmlNodePtr root = xmlDocGetRootElement(in->doc);
    if ((in->reason = check_algorithms(root)) != NULL) {
        xmlFreeDoc(in->doc);
        in->doc = NULL;
        goto exit;
    }
    in->root = (const char *)root->name;
    ret = 0;
exit:
    free(raw);
    free(xml);
    return ret;
}

void saml_intake_dispose(saml_intake_t *in)
{
    xmlFreeDoc(in->doc);
    memset(in, 0, sizeof(*in));
}

/* ---- a look inside, for the checks that come before lasso ---- */

char *saml_query_param(const char *query, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *p = query; p != NULL && *p != '\0';) {
        const char *end = strchr(p, '&');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            char *out = malloc(len - nlen), *o = out;
            if (out == NULL)
                return NULL;
            for (const char *s = p + nlen + 1; s < p + len; ++s) {
                int hi, lo;
                if (*s == '%' && p + len - s >= 3 && (hi = hexval(s[1])) >= 0 && (lo = hexval(s[2])) >= 0) {
                    *o++ = (char)(hi * 16 + lo);
                    s += 2;
                } else {
                    *o++ = *s == '+' ? ' ' : *s;
                }
            }
            *o = '\0';
            return out;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return NULL;
}

static char *child_text(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr c = parent->children; c != NULL; c = c->next)
        if (c->type == XML_ELEMENT_NODE && xmlStrcmp(c->name, (const xmlChar *)name) == 0) {
            xmlChar *t = xmlNodeGetContent(c);
            char *out = t != NULL ? strdup((const char *)t) : NULL;
            xmlFree(t);
            return out;
        }
    return NULL;
}

static int has_child(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr c = parent->children; c != NULL; c = c->next)
        if (c->type == XML_ELEMENT_NODE && xmlStrcmp(c->name, (const xmlChar *)name) == 0)
            return 1;
    return 0;
}

const char *saml_intake_peek(saml_binding_kind_t binding, const char *message, const char *param, size_t max,
                             saml_peek_t *peek)
{
    saml_intake_t in;
    int r;
    memset(peek, 0, sizeof(*peek));
    if (binding == SAML_BINDING_KIND_REDIRECT) {
        char *msg = saml_query_param(message, param), *alg = saml_query_param(message, "SigAlg"),
             *sig = saml_query_param(message, "Signature");
        r = saml_intake(binding, msg, msg != NULL ? strlen(msg) : 0, alg, max, &in);
        peek->signed_ = sig != NULL && *sig != '\0';
        free(msg);
        free(alg);
        free(sig);
    } else {
        r = saml_intake(binding, message, strlen(message), NULL, max, &in);
    }
    if (r != 0)
        return in.reason;
    xmlNodePtr root = xmlDocGetRootElement(in.doc);
    snprintf(peek->root, sizeof(peek->root), "%s", (const char *)root->name);
    if (binding == SAML_BINDING_KIND_POST)
        peek->signed_ = has_child(root, "Signature");
    peek->issuer = child_text(root, "Issuer");
    char *acs = saml_xml_attr(root, "AssertionConsumerServiceURL");
    peek->acs = acs != NULL ? strdup(acs) : NULL;
    xmlFree(acs);
    saml_intake_dispose(&in);
    return NULL;
}

void saml_peek_dispose(saml_peek_t *peek)
{
    free(peek->issuer);
    free(peek->acs);
    memset(peek, 0, sizeof(*peek));
}
