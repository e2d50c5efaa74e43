/*
 * Metadata both ways: our IdP's EntityDescriptor (served at /saml/metadata), and what we need from an SP's
 * metadata (entity id, HTTP-POST assertion consumer services, whether it signs its requests, whether it has an
 * encryption key). The SP's document is parsed here with the safe parser and then handed to lasso as is, which
 * takes its keys from it: keys never come from the messages themselves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>
#include <xmlsec/keys.h>

#include "saml/internal.h"

#define MAX_ACS 64

static int is_md(xmlNodePtr n, const char *name)
{
    return n != NULL && n->type == XML_ELEMENT_NODE && n->ns != NULL &&
           xmlStrcmp(n->ns->href, (const xmlChar *)SAML_NS_METADATA) == 0 &&
           xmlStrcmp(n->name, (const xmlChar *)name) == 0;
}

static int attr_is_true(xmlNodePtr n, const char *name)
{
    char *v = saml_xml_attr(n, name);
    int t = v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
    xmlFree(v);
    return t;
}

static xmlNodePtr child(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr c = parent->children; c != NULL; c = c->next)
        if (is_md(c, name))
            return c;
    return NULL;
}

/* ACS with the HTTP-POST binding: isDefault="true" first, then by index. */
static int collect_acs(xmlNodePtr spsso, saml_sp_metadata_t *md)
{
    struct {
        char *url;
        long index;
        int is_default;
    } found[MAX_ACS];
    size_t n = 0;
    for (xmlNodePtr c = spsso->children; c != NULL && n != MAX_ACS; c = c->next) {
        if (!is_md(c, "AssertionConsumerService"))
            continue;
        char *binding = saml_xml_attr(c, "Binding"), *loc = saml_xml_attr(c, "Location"),
             *idx = saml_xml_attr(c, "index");
        if (binding != NULL && loc != NULL && strcmp(binding, SAML_BINDING_POST) == 0 && strncmp(loc, "http", 4) == 0) {
            found[n].url = strdup(loc);
            found[n].index = idx != NULL ? strtol(idx, NULL, 10) : (long)n;
            found[n].is_default = attr_is_true(c, "isDefault");
            ++n;
        }
        xmlFree(binding);
        xmlFree(loc);
        xmlFree(idx);
    }
    if (n == 0)
        return -1;
    md->acs_urls = calloc(n + 1, sizeof(char *));
    for (size_t placed = 0; placed != n; ++placed) { /* selection by (default first, lowest index) */
        size_t best = n;
        for (size_t i = 0; i != n; ++i)
            if (found[i].url != NULL &&
                (best == n || found[i].is_default > found[best].is_default ||
                 (found[i].is_default == found[best].is_default && found[i].index < found[best].index)))
                best = i;
        md->acs_urls[placed] = found[best].url;
        found[best].url = NULL;
    }
    md->num_acs = n;
    return 0;
}

static int has_encryption_key(xmlNodePtr spsso)
{
    for (xmlNodePtr c = spsso->children; c != NULL; c = c->next) {
        if (!is_md(c, "KeyDescriptor"))
            continue;
        char *use = saml_xml_attr(c, "use");
        int usable = use == NULL || strcmp(use, "encryption") == 0;
        xmlFree(use);
        if (usable)
            return 1;
    }
    return 0;
}

int saml_sp_metadata_parse(const char *xml, size_t len, saml_sp_metadata_t *md, char *err, size_t errlen)
{
    const char *reason = NULL;
    xmlDocPtr doc = saml_xml_parse(xml, len, &reason);
    int ret = -1;
    memset(md, 0, sizeof(*md));
    if (doc == NULL) {
        snprintf(err, errlen, "not usable XML (%s)", reason);
        return -1;
    }
    xmlNodePtr root = xmlDocGetRootElement(doc), spsso;
    char *entity = NULL;
    if (!is_md(root, "EntityDescriptor")) {
        snprintf(err, errlen, "the root element must be one md:EntityDescriptor");
        goto exit;
    }
    entity = saml_xml_attr(root, "entityID");
    if (entity == NULL || *entity == '\0' || strlen(entity) > 1024) {
        snprintf(err, errlen, "EntityDescriptor has no usable entityID");
        goto exit;
    }
    if ((spsso = child(root, "SPSSODescriptor")) == NULL) {
        snprintf(err, errlen, "no SPSSODescriptor");
        goto exit;
    }
    if (collect_acs(spsso, md) != 0) {
        snprintf(err, errlen, "no AssertionConsumerService with the HTTP-POST binding");
        goto exit;
    }
    md->entity_id = strdup(entity);
    md->wants_signed_requests = attr_is_true(spsso, "AuthnRequestsSigned");
    md->has_encryption_key = has_encryption_key(spsso);
    md->xml = strndup(xml, len);
    ret = 0;
exit:
    xmlFree(entity);
    xmlFreeDoc(doc);
    if (ret != 0)
        saml_sp_metadata_dispose(md);
    return ret;
}

void saml_sp_metadata_dispose(saml_sp_metadata_t *md)
{
    for (size_t i = 0; md->acs_urls != NULL && md->acs_urls[i] != NULL; ++i)
        free(md->acs_urls[i]);
    free(md->acs_urls);
    free(md->entity_id);
    free(md->xml);
    memset(md, 0, sizeof(*md));
}

/* ---- our own metadata ---- */

static void append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*buf == NULL)
        return;
    if (*len + n + 1 > *cap) {
        size_t ncap = (*len + n + 1) * 2;
        char *nb = realloc(*buf, ncap);
        if (nb == NULL) {
            free(*buf);
            *buf = NULL;
            return;
        }
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

static void key_descriptor(char **b, size_t *len, size_t *cap, const char *cert_b64)
{
    append(b, len, cap, "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>");
    append(b, len, cap, cert_b64);
    append(b, len, cap, "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>");
}

static void endpoint(char **b, size_t *len, size_t *cap, const char *element, const char *binding, const char *base,
                     const char *path)
{
    char line[2048];
    snprintf(line, sizeof(line), "<md:%s Binding=\"%s\" Location=\"%s%s\"/>", element, binding, base, path);
    append(b, len, cap, line);
}

char *saml_idp_metadata_build(const char *entity_id, const char *base_url, const char *cert_b64,
                              const char *next_cert_b64)
{
    static const char *const formats[] = {"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
                                          "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
                                          "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
                                          "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"};
    size_t len = 0, cap = 4096;
    char *b = malloc(cap), *eid = saml_xml_escape(entity_id), *base = saml_xml_escape(base_url);
    if (b != NULL)
        b[0] = '\0';
    append(&b, &len, &cap,
           "<?xml version=\"1.0\"?>\n<md:EntityDescriptor xmlns:md=\"" SAML_NS_METADATA "\" xmlns:ds=\"" SAML_NS_DSIG
           "\" entityID=\"");
    append(&b, &len, &cap, eid != NULL ? eid : "");
    append(&b, &len, &cap,
           "\"><md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\" "
           "WantAuthnRequestsSigned=\"false\">");
    key_descriptor(&b, &len, &cap, cert_b64);
    if (next_cert_b64 != NULL)
        key_descriptor(&b, &len, &cap, next_cert_b64);
    endpoint(&b, &len, &cap, "SingleLogoutService", SAML_BINDING_REDIRECT, base, "/saml/slo");
    endpoint(&b, &len, &cap, "SingleLogoutService", SAML_BINDING_POST, base, "/saml/slo");
    for (size_t i = 0; i != sizeof(formats) / sizeof(formats[0]); ++i) {
        append(&b, &len, &cap, "<md:NameIDFormat>");
        append(&b, &len, &cap, formats[i]);
        append(&b, &len, &cap, "</md:NameIDFormat>");
    }
    endpoint(&b, &len, &cap, "SingleSignOnService", SAML_BINDING_REDIRECT, base, "/saml/sso");
    endpoint(&b, &len, &cap, "SingleSignOnService", SAML_BINDING_POST, base, "/saml/sso");
    append(&b, &len, &cap, "</md:IDPSSODescriptor></md:EntityDescriptor>\n");
    free(eid);
    free(base);
    return b;
}

/* ---- signed metadata ---- */

/* An enveloped RSA-SHA256 signature over the whole document, as the first child of the root, with the
 * certificate in KeyInfo; the key read and checked at start-up, not the file again. */
static int sign_document(xmlDocPtr doc, const saml_keypair_t *kp)
{
    struct _xmlSecKey *key = saml_sign_key_load(kp, 1);
    int ret = key != NULL ? saml_sign_document(doc, key) : -1;
    if (key != NULL)
        xmlSecKeyDestroy(key);
    return ret;
}

char *saml_metadata_sign(const char *xml, const saml_keypair_t *kp)
{
    const char *reason;
    xmlDocPtr doc = saml_xml_parse(xml, strlen(xml), &reason);
    xmlChar *out = NULL;
    int len = 0;
    char *signed_xml = NULL;
    if (doc != NULL && sign_document(doc, kp) == 0) {
        xmlDocDumpMemory(doc, &out, &len);
        if (out != NULL)
            signed_xml = strndup((const char *)out, (size_t)len);
        xmlFree(out);
    }
    xmlFreeDoc(doc);
    return signed_xml;
}
