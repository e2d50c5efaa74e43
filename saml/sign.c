/*
 * The one XML signer (xmlsec): enveloped, RSA-SHA256, SHA-256 digest, exclusive c14n, never SHA-1. It signs the SSO
 * Responses portier issues (with a key parsed once per worker), the broker's protocol messages sent over the
 * HTTP-POST binding (with the broker's EVP_PKEY, parsed once at start) and our signed metadata (Reference URI="",
 * the whole document). xmlsec is initialised by lasso_init (saml_lasso_init).
 *
 * lasso builds the Response unsigned (sso.c asks it to) and we sign it: lasso copies its key for every signature
 * it makes, and with the certificate in the key (saml.idp.keyinfo_certificate) each copy re-decodes the
 * certificate (OpenSSL 3), which cost about a third of a signed response. Here the key is borrowed by the
 * signature context and never copied. Responses with an encrypted assertion are still signed by lasso, which must
 * sign the assertion before it encrypts it.
 *
 * The signatures are what lasso makes (and what the SPs and the xmlsec1 checks in tests/e2e expect): enveloped,
 * RSA-SHA256, SHA-256 digest, exclusive c14n, Reference URI="#ID", right after the element's saml:Issuer (where the
 * schema wants ds:Signature), KeyInfo with our certificate only when the key carries it. The Assertion is signed
 * first, so that the Response's signature covers the Assertion's.
 */
#include <stdlib.h>
#include <string.h>

#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <libxml/tree.h>
#include <libxml/valid.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <xmlsec/crypto.h>
#include <xmlsec/openssl/evp.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>

#include "saml/internal.h"

#define NS_PROTOCOL  "urn:oasis:names:tc:SAML:2.0:protocol"
#define NS_ASSERTION "urn:oasis:names:tc:SAML:2.0:assertion"
#define MAX_ID       256

/* lasso_login_build_assertion gives the assertion a signature context (lasso_node_set_signature, not exported) in
 * the node's private "lasso_custom_element" qdata, which holds nothing else for an assertion that is not to be
 * encrypted (sso.c never takes over one that is: the encryption key would be there too); without it, and with
 * sign_type NONE (lasso's legacy way), lasso_node_get_xmlNode leaves the assertion unsigned. tests/unit/saml and
 * the e2e tests count the signatures of each Response, so a lasso that signs anyway is noticed. */
#define LASSO_CUSTOM_ELEMENT_QDATA "lasso_custom_element"

int saml_sign_take_over_assertion(LassoLogin *login)
{
    GQuark q = g_quark_try_string(LASSO_CUSTOM_ELEMENT_QDATA);
    LassoNode *node = lasso_login_get_assertion(login);
    int ret = -1;
    if (q != 0 && node != NULL && LASSO_IS_SAML2_ASSERTION(node)) {
        LASSO_SAML2_ASSERTION(node)->sign_type = LASSO_SIGNATURE_TYPE_NONE;
        g_object_set_qdata(G_OBJECT(node), q, NULL); /* frees lasso's copy of the key */
        ret = 0;
    }
    if (node != NULL)
        g_object_unref(node);
    return ret;
}

xmlSecKeyPtr saml_sign_key_load(const saml_keypair_t *kp, int with_certificate)
{
    xmlSecKeyPtr key = xmlSecCryptoAppKeyLoadMemory((const xmlSecByte *)kp->key_pem, (xmlSecSize)strlen(kp->key_pem),
                                                    xmlSecKeyDataFormatPem, NULL, NULL, NULL);
    if (key == NULL)
        return NULL;
    if (with_certificate &&
        xmlSecCryptoAppKeyCertLoadMemory(key, (const xmlSecByte *)kp->cert_pem, (xmlSecSize)strlen(kp->cert_pem),
                                         xmlSecKeyDataFormatPem) < 0) {
        xmlSecKeyDestroy(key);
        return NULL;
    }
    return key;
}

/* The signature of parent over Reference uri ("#ID" or "" for the whole document), placed right after `after`, or
 * first in parent when after is NULL; KeyInfo with the certificate when the key carries one. key is borrowed.
 * 0, or -1 with the document unchanged. */
static int sign_node(xmlNodePtr parent, xmlNodePtr after, const char *uri, xmlSecKeyPtr key)
{
    xmlSecDSigCtxPtr ctx = NULL;
    int ret = -1;
    xmlNodePtr sig =
        xmlSecTmplSignatureCreate(parent->doc, xmlSecTransformExclC14NId, xmlSecTransformRsaSha256Id, NULL);
    if (sig == NULL)
        return -1;
    if (after != NULL)
        xmlAddNextSibling(after, sig);
    else if (parent->children != NULL)
        xmlAddPrevSibling(parent->children, sig);
    else
        xmlAddChild(parent, sig);
    xmlNodePtr ref = xmlSecTmplSignatureAddReference(sig, xmlSecTransformSha256Id, NULL, (const xmlChar *)uri, NULL);
    if (ref == NULL || xmlSecTmplReferenceAddTransform(ref, xmlSecTransformEnvelopedId) == NULL ||
        xmlSecTmplReferenceAddTransform(ref, xmlSecTransformExclC14NId) == NULL)
        goto exit;
    if (xmlSecKeyGetData(key, xmlSecKeyDataX509Id) != NULL) {
        xmlNodePtr key_info = xmlSecTmplSignatureEnsureKeyInfo(sig, NULL);
        if (key_info == NULL || xmlSecTmplKeyInfoAddX509Data(key_info) == NULL)
            goto exit;
    }
    if ((ctx = xmlSecDSigCtxCreate(NULL)) == NULL)
        goto exit;
    ctx->enabledReferenceUris = uri[0] == '\0' ? xmlSecTransformUriTypeEmpty : xmlSecTransformUriTypeSameDocument;
    ctx->signKey = key; /* borrowed: taken back before the context is destroyed */
    int rc = xmlSecDSigCtxSign(ctx, sig);
    ctx->signKey = NULL;
    ret = rc < 0 ? -1 : 0;
exit:
    if (ctx != NULL)
        xmlSecDSigCtxDestroy(ctx);
    if (ret != 0) {
        xmlUnlinkNode(sig);
        xmlFreeNode(sig);
    }
    return ret;
}

/* Signs el (a protocol message or saml:Assertion with an ID and a saml:Issuer), the signature right after the
 * Issuer. The ID is registered in the document (refused when another element holds it). key is borrowed. 0 or -1. */
static int sign_element(xmlNodePtr el, xmlSecKeyPtr key)
{
    xmlNodePtr issuer = saml_xml_child(el, NS_ASSERTION, "Issuer");
    xmlAttrPtr id_attr = xmlHasProp(el, (const xmlChar *)"ID");
    xmlChar *id = xmlGetProp(el, (const xmlChar *)"ID");
    char uri[MAX_ID + 2];
    int ret = -1;

    if (issuer == NULL || id_attr == NULL || id == NULL || *id == '\0' || strlen((const char *)id) > MAX_ID)
        goto exit;
    uri[0] = '#';
    memcpy(uri + 1, id, strlen((const char *)id) + 1);
    /* the reference resolves through the document's ID table: register the ID (it must be unique) */
    if (xmlGetID(el->doc, id) == NULL && xmlAddID(NULL, el->doc, id, id_attr) == NULL)
        goto exit;
    if (xmlGetID(el->doc, id) == id_attr)
        ret = sign_node(el, issuer, uri, key);
exit:
    xmlFree(id);
    return ret;
}

int saml_sign_document(xmlDocPtr doc, xmlSecKeyPtr key)
{
    xmlNodePtr root = xmlDocGetRootElement(doc);
    return root != NULL ? sign_node(root, NULL, "", key) : -1;
}

char *saml_sign_response(const char *b64, xmlSecKeyPtr key, int sign_response, int sign_assertion)
{
    size_t b64_len = b64 != NULL ? strlen(b64) : 0, xml_len;
    unsigned char *xml = malloc(b64_len / 4 * 3 + 3);
    const char *reason;
    xmlDocPtr doc = NULL;
    xmlBufferPtr buf = NULL;
    char *out = NULL;

    if (b64 == NULL || xml == NULL ||
        sodium_base642bin(xml, b64_len / 4 * 3 + 3, b64, b64_len, "\r\n", &xml_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        goto exit;
    if ((doc = saml_xml_parse((const char *)xml, xml_len, &reason)) == NULL)
        goto exit;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (root == NULL || root->ns == NULL || strcmp((const char *)root->ns->href, NS_PROTOCOL) != 0 ||
        strcmp((const char *)root->name, "Response") != 0)
        goto exit;
    xmlNodePtr assertion = saml_xml_child(root, NS_ASSERTION, "Assertion");
    if ((sign_assertion && (assertion == NULL || sign_element(assertion, key) != 0)) ||
        (sign_response && sign_element(root, key) != 0))
        goto exit;
    if ((buf = xmlBufferCreate()) == NULL || xmlNodeDump(buf, doc, root, 0, 0) <= 0)
        goto exit;
    size_t len = (size_t)xmlBufferLength(buf), out_len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    if ((out = malloc(out_len)) != NULL)
        sodium_bin2base64(out, out_len, xmlBufferContent(buf), len, sodium_base64_VARIANT_ORIGINAL);
exit:
    if (buf != NULL)
        xmlBufferFree(buf);
    if (doc != NULL)
        xmlFreeDoc(doc);
    free(xml);
    return out;
}

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

char *saml_sign_message(const char *xml, EVP_PKEY *pkey, const char *cert_pem)
{
    const char *reason;
    xmlDocPtr doc = saml_xml_parse(xml, strlen(xml), &reason);
    xmlSecKeyPtr key = doc != NULL ? make_key(pkey, cert_pem) : NULL;
    xmlChar *out = NULL;
    int len = 0;
    char *signed_xml = NULL;
    xmlNodePtr root = doc != NULL ? xmlDocGetRootElement(doc) : NULL, first = root != NULL ? root->children : NULL;
    while (first != NULL && first->type != XML_ELEMENT_NODE)
        first = first->next;
    /* the schema of every protocol message: the Issuer comes first, the Signature right after it */
    if (key != NULL && first != NULL && first == saml_xml_child(root, NS_ASSERTION, "Issuer") &&
        sign_element(root, key) == 0) {
        xmlDocDumpMemoryEnc(doc, &out, &len, "UTF-8");
        if (out != NULL)
            signed_xml = strndup((const char *)out, (size_t)len);
    }
    xmlFree(out);
    if (key != NULL)
        xmlSecKeyDestroy(key);
    xmlFreeDoc(doc);
    return signed_xml;
}
