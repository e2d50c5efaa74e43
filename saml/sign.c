/*
 * The one XML signer: an enveloped RSA-SHA256 signature (exclusive c14n, SHA-256 digest, no SHA-1 anywhere) made
 * with xmlsec. Our IdP's signed metadata (a Reference URI="" over the whole document) and the broker's protocol
 * messages sent over the HTTP-POST binding (a Reference URI="#ID", the Signature right after saml:Issuer as the
 * schema wants) both come from here. The key is an EVP_PKEY parsed once at start (borrowed; xmlsec gets its own
 * reference), so a signature costs no PEM decoding. xmlsec is initialised by lasso_init (saml_lasso_init).
 */
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>
#include <openssl/evp.h>
#include <xmlsec/crypto.h>
#include <xmlsec/openssl/evp.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>

#include "saml/internal.h"

#define SAML_NS_ASSERTION "urn:oasis:names:tc:SAML:2.0:assertion"

/* An xmlsec key holding (a new reference to) pkey and, when given, the certificate for KeyInfo. NULL on failure. */
static xmlSecKeyPtr make_key(EVP_PKEY *pkey, const char *cert_pem)
{
    xmlSecKeyPtr key = xmlSecKeyCreate();
    xmlSecKeyDataPtr data = NULL;
    if (key == NULL || EVP_PKEY_up_ref(pkey) != 1)
        goto fail;
    if ((data = xmlSecOpenSSLEvpKeyAdopt(pkey)) == NULL) {
        EVP_PKEY_free(pkey);
        goto fail;
    }
    if (xmlSecKeySetValue(key, data) < 0) {
        xmlSecKeyDataDestroy(data);
        goto fail;
    }
    if (cert_pem != NULL && xmlSecCryptoAppKeyCertLoadMemory(key, (const xmlSecByte *)cert_pem, strlen(cert_pem),
                                                             xmlSecKeyDataFormatPem) < 0)
        goto fail;
    return key;
fail:
    if (key != NULL)
        xmlSecKeyDestroy(key);
    return NULL;
}

int saml_sign_enveloped(xmlNodePtr parent, xmlNodePtr after, const char *id, EVP_PKEY *pkey, const char *cert_pem)
{
    xmlDocPtr doc = parent->doc;
    xmlSecDSigCtxPtr ctx = NULL;
    char uri[SAML_SIGN_ID_MAX + 2] = "";
    int ret = -1;
    if (id != NULL) {
        xmlAttrPtr attr = xmlHasProp(parent, (const xmlChar *)"ID");
        char *have = saml_xml_attr(parent, "ID");
        int same = have != NULL && strcmp(have, id) == 0 && strlen(id) <= SAML_SIGN_ID_MAX;
        xmlFree(have);
        /* xmlsec resolves "#id" through libxml's ID table, which knows nothing without a DTD */
        if (!same || attr == NULL ||
            (xmlGetID(doc, (const xmlChar *)id) == NULL && xmlAddID(NULL, doc, (const xmlChar *)id, attr) == NULL))
            return -1;
        uri[0] = '#';
        memcpy(uri + 1, id, strlen(id) + 1);
    }
    xmlNodePtr sig = xmlSecTmplSignatureCreate(doc, xmlSecTransformExclC14NId, xmlSecTransformRsaSha256Id, NULL);
    if (sig == NULL)
        return -1;
    if (after != NULL)
        xmlAddNextSibling(after, sig);
    else if (parent->children != NULL)
        xmlAddPrevSibling(parent->children, sig);
    else
        xmlAddChild(parent, sig);
    xmlNodePtr ref = xmlSecTmplSignatureAddReference(sig, xmlSecTransformSha256Id, NULL, (const xmlChar *)uri, NULL);
    xmlNodePtr key_info = cert_pem != NULL ? xmlSecTmplSignatureEnsureKeyInfo(sig, NULL) : NULL;
    if (ref == NULL || (cert_pem != NULL && (key_info == NULL || xmlSecTmplKeyInfoAddX509Data(key_info) == NULL)) ||
        xmlSecTmplReferenceAddTransform(ref, xmlSecTransformEnvelopedId) == NULL ||
        xmlSecTmplReferenceAddTransform(ref, xmlSecTransformExclC14NId) == NULL ||
        (ctx = xmlSecDSigCtxCreate(NULL)) == NULL || (ctx->signKey = make_key(pkey, cert_pem)) == NULL ||
        xmlSecDSigCtxSign(ctx, sig) < 0)
        goto exit;
    ret = 0;
exit:
    if (ctx != NULL)
        xmlSecDSigCtxDestroy(ctx);
    if (ret != 0) {
        xmlUnlinkNode(sig);
        xmlFreeNode(sig);
    }
    return ret;
}

char *saml_sign_message(const char *xml, EVP_PKEY *pkey, const char *cert_pem)
{
    const char *reason;
    xmlDocPtr doc = saml_xml_parse(xml, strlen(xml), &reason);
    xmlChar *out = NULL;
    int len = 0;
    char *signed_xml = NULL, *id = NULL;
    if (doc == NULL)
        return NULL;
    xmlNodePtr root = xmlDocGetRootElement(doc), issuer = root->children;
    while (issuer != NULL && issuer->type != XML_ELEMENT_NODE)
        issuer = issuer->next;
    /* the schema of every protocol message: the Signature follows the Issuer, which comes first */
    if (issuer == NULL || issuer->ns == NULL || xmlStrcmp(issuer->ns->href, (const xmlChar *)SAML_NS_ASSERTION) != 0 ||
        xmlStrcmp(issuer->name, (const xmlChar *)"Issuer") != 0 || (id = saml_xml_attr(root, "ID")) == NULL)
        goto exit;
    if (saml_sign_enveloped(root, issuer, id, pkey, cert_pem) != 0)
        goto exit;
    xmlDocDumpMemoryEnc(doc, &out, &len, "UTF-8");
    if (out != NULL)
        signed_xml = strndup((const char *)out, (size_t)len);
exit:
    xmlFree(out);
    xmlFree(id);
    xmlFreeDoc(doc);
    return signed_xml;
}
