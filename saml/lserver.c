/*
 * One LassoServer per worker thread. lasso objects are not thread-safe and building one costs ~50 ms (xmlsec
 * loads the system CA bundle, each provider's metadata is parsed), so each worker builds its own on first use
 * and keeps it for the life of the process; a slot is only ever touched by its worker.
 *
 * The signing key is parsed once per worker, twice over: for sign.c (an xmlSecKey that signs the SSO Responses
 * of SPs without encryption, borrowed and never copied) and for lasso (lasso_key_new_for_signature_from_memory,
 * set on every SP's provider object with lasso_provider_set_server_signing_key). lasso then signs what it still
 * signs for an SP (single logout, Responses with an encrypted assertion) with a copy of that key instead of
 * decoding the PEM key and certificate files again for every signature, which cost ~40% of a signed response
 * (OpenSSL 3 decoders, RSA blinding set up again). Each such copy still copies the certificate, and re-decodes
 * it, when it goes into KeyInfo: hence sign.c. The server itself is still given the files by name (lasso falls
 * back to them only for a provider without its own key, and every SP has one); xmlsec 1.2.37 leaks a BIO each
 * time lasso first tries PEM text as a file name. The files were checked (RSA 2048/3072, matching, mode 0600)
 * at start-up by saml_keypair_load. Without the certificate lasso signs without KeyInfo (peers take our key from
 * our metadata, never from KeyInfo).
 *
 * Every server signs with RSA-SHA256: Debian's lasso defaults to rsa-sha1, and the setter of the default is
 * not exported, so it is set on each object here, in the one place servers are made.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lasso/key.h>
#include <lasso/lasso.h>
#include <xmlsec/keys.h>

#include "gateway/gateway.h"
#include "saml/internal.h"

struct st_saml_lasso_t {
    size_t num_slots;
    LassoServer **slots;
    LassoKey **keys;         /* the signing key of each slot's server, parsed once */
    xmlSecKeyPtr *sign_keys; /* the same key for saml_sign_* (sign.c) */
    const char *own_metadata;
    const saml_keypair_t *kp;
    const saml_peer_t *peers;
    size_t num_peers;
    int keyinfo_certificate;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result = -1;

static void do_init(void)
{
    init_result = lasso_init() == 0 ? 0 : -1;
}

int saml_lasso_init(void)
{
    pthread_once(&init_once, do_init);
    return init_result;
}

saml_lasso_t *saml_lasso_create(size_t slots, const char *own_metadata, const saml_keypair_t *kp,
                                const saml_peer_t *peers, size_t num_peers, int keyinfo_certificate)
{
    saml_lasso_t *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->slots = calloc(slots, sizeof(*p->slots))) == NULL ||
        (p->keys = calloc(slots, sizeof(*p->keys))) == NULL ||
        (p->sign_keys = calloc(slots, sizeof(*p->sign_keys))) == NULL) {
        if (p != NULL) {
            free(p->slots);
            free(p->keys);
        }
        free(p);
        return NULL;
    }
    p->num_slots = slots;
    p->own_metadata = own_metadata;
    p->kp = kp;
    p->peers = peers;
    p->num_peers = num_peers;
    p->keyinfo_certificate = keyinfo_certificate;
    return p;
}

static LassoServer *build(saml_lasso_t *p, LassoKey **keyp, xmlSecKeyPtr *sign_keyp)
{
    char *cert = p->keyinfo_certificate ? p->kp->cert_file : NULL;
    if (*sign_keyp == NULL && (*sign_keyp = saml_sign_key_load(p->kp, p->keyinfo_certificate)) == NULL)
        return NULL;
    LassoKey *key = lasso_key_new_for_signature_from_memory(p->kp->key_pem, strlen(p->kp->key_pem), NULL,
                                                            LASSO_SIGNATURE_METHOD_RSA_SHA256, cert);
    if (key == NULL)
        return NULL;
    LassoServer *s = lasso_server_new_from_buffers(p->own_metadata, p->kp->key_file, NULL, cert);
    if (s == NULL) {
        g_object_unref(key);
        return NULL;
    }
    s->signature_method = LASSO_SIGNATURE_METHOD_RSA_SHA256;
    for (size_t i = 0; i != p->num_peers; ++i) {
        const saml_peer_t *peer = &p->peers[i];
        if (lasso_server_add_provider_from_buffer(s, (LassoProviderRole)peer->role, peer->metadata, NULL, NULL) != 0) {
            gw_log("error", "saml", "provider.load_failed", "entity", peer->entity_id, NULL);
            continue;
        }
        LassoProvider *prov = lasso_server_get_provider(s, peer->entity_id);
        if (prov == NULL || lasso_provider_set_server_signing_key(prov, key) != 0) {
            gw_log("error", "saml", "provider.signing_key_failed", "entity", peer->entity_id, NULL);
            lasso_server_destroy(s);
            g_object_unref(key);
            return NULL;
        }
        if (peer->encrypt) {
            lasso_provider_set_encryption_mode(prov, LASSO_ENCRYPTION_MODE_ASSERTION);
            lasso_provider_set_encryption_sym_key_type(prov, LASSO_ENCRYPTION_SYM_KEY_TYPE_AES_256);
        }
    }
    *keyp = key;
    return s;
}

LassoServer *saml_lasso_server(saml_lasso_t *p, size_t slot)
{
    if (slot >= p->num_slots)
        return NULL;
    if (p->slots[slot] == NULL && (p->slots[slot] = build(p, &p->keys[slot], &p->sign_keys[slot])) == NULL)
        gw_log("error", "saml", "lasso.server_failed", NULL);
    return p->slots[slot];
}

xmlSecKeyPtr saml_lasso_sign_key(saml_lasso_t *p, size_t slot)
{
    return slot < p->num_slots ? p->sign_keys[slot] : NULL;
}

void saml_lasso_destroy(saml_lasso_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i != p->num_slots; ++i) {
        if (p->slots[i] != NULL)
            lasso_server_destroy(p->slots[i]);
        if (p->keys[i] != NULL)
            g_object_unref(p->keys[i]);
        if (p->sign_keys[i] != NULL)
            xmlSecKeyDestroy(p->sign_keys[i]);
    }
    free(p->slots);
    free(p->keys);
    free(p->sign_keys);
    free(p);
}
