/*
 * One LassoServer per worker thread. lasso objects are not thread-safe and building one costs ~50 ms (xmlsec
 * loads the system CA bundle, each provider's metadata is parsed), so each worker builds its own on first use
 * and keeps it for the life of the process; a slot is only ever touched by its worker.
 *
 * The signing key is parsed once per worker, and more than once over: for sign.c (an xmlSecKey that signs the
 * SSO Responses of SPs without encryption, borrowed and never copied) and for lasso (lasso_key_new_for_signature_
 * from_memory, set on every SP's provider object with lasso_provider_set_server_signing_key). lasso then signs what
 * it still signs for an SP (single logout, Responses with an encrypted assertion) with a copy of that key instead
 * of decoding the PEM key and certificate files again for every signature, which cost ~40% of a signed response
 * (OpenSSL 3 decoders, RSA blinding set up again). Each copy also copies the certificate, and re-decodes it, when
 * it goes into KeyInfo (keyinfo_certificate): hence sign.c, and a second lasso key without the certificate, held
 * by an SP's provider while lasso only builds assertions for it that sign.c signs (lasso copies its key into each
 * assertion all the same); saml_lasso_key_for switches between the two, only when the use changes.
 *
 * The server itself is still given the files by name (lasso falls back to them only for a provider without its
 * own key, and every SP has one); xmlsec 1.2.37 leaks a BIO each time lasso first tries PEM text as a file name.
 * The files were checked (RSA 2048/3072, matching, mode 0600) at start-up by saml_keypair_load. Without the
 * certificate lasso signs without KeyInfo (peers take our key from our metadata, never from KeyInfo).
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

typedef struct st_lasso_slot_t {
    LassoServer *server;
    LassoKey *key;         /* what lasso signs with: the certificate in it when keyinfo_certificate */
    LassoKey *plain_key;   /* the same key without certificate, NULL when key has none */
    xmlSecKeyPtr sign_key; /* sign.c's, with the certificate when keyinfo_certificate */
    unsigned char *plain;  /* per peer: its provider holds plain_key */
} lasso_slot_t;

struct st_saml_lasso_t {
    size_t num_slots;
    lasso_slot_t *slots; /* slot i is only touched by worker i */
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
    if (p == NULL || (p->slots = calloc(slots, sizeof(*p->slots))) == NULL) {
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

static void slot_dispose(lasso_slot_t *slot)
{
    if (slot->server != NULL)
        lasso_server_destroy(slot->server);
    if (slot->key != NULL)
        g_object_unref(slot->key);
    if (slot->plain_key != NULL)
        g_object_unref(slot->plain_key);
    if (slot->sign_key != NULL)
        xmlSecKeyDestroy(slot->sign_key);
    free(slot->plain);
    memset(slot, 0, sizeof(*slot));
}

static LassoKey *lasso_key(const saml_keypair_t *kp, char *cert_file)
{
    return lasso_key_new_for_signature_from_memory(kp->key_pem, strlen(kp->key_pem), NULL,
                                                   LASSO_SIGNATURE_METHOD_RSA_SHA256, cert_file);
}

/* The slot's keys and server; every SP's provider holds slot->key. 0, or -1 with the slot disposed. */
static int build(saml_lasso_t *p, lasso_slot_t *slot)
{
    char *cert = p->keyinfo_certificate ? p->kp->cert_file : NULL;
    if ((slot->sign_key = saml_sign_key_load(p->kp, p->keyinfo_certificate)) == NULL ||
        (slot->key = lasso_key(p->kp, cert)) == NULL ||
        (cert != NULL && (slot->plain_key = lasso_key(p->kp, NULL)) == NULL) ||
        (slot->plain = calloc(p->num_peers + 1, 1)) == NULL ||
        (slot->server = lasso_server_new_from_buffers(p->own_metadata, p->kp->key_file, NULL, cert)) == NULL)
        goto fail;
    slot->server->signature_method = LASSO_SIGNATURE_METHOD_RSA_SHA256;
    for (size_t i = 0; i != p->num_peers; ++i) {
        const saml_peer_t *peer = &p->peers[i];
        if (lasso_server_add_provider_from_buffer(slot->server, (LassoProviderRole)peer->role, peer->metadata, NULL,
                                                  NULL) != 0) {
            gw_log("error", "saml", "provider.load_failed", "entity", peer->entity_id, NULL);
            continue;
        }
        LassoProvider *prov = lasso_server_get_provider(slot->server, peer->entity_id);
        if (prov == NULL || lasso_provider_set_server_signing_key(prov, slot->key) != 0) {
            gw_log("error", "saml", "provider.signing_key_failed", "entity", peer->entity_id, NULL);
            goto fail;
        }
        if (peer->encrypt) {
            lasso_provider_set_encryption_mode(prov, LASSO_ENCRYPTION_MODE_ASSERTION);
            lasso_provider_set_encryption_sym_key_type(prov, LASSO_ENCRYPTION_SYM_KEY_TYPE_AES_256);
        }
    }
    return 0;
fail:
    slot_dispose(slot);
    return -1;
}

LassoServer *saml_lasso_server(saml_lasso_t *p, size_t slot)
{
    if (slot >= p->num_slots)
        return NULL;
    if (p->slots[slot].server == NULL && build(p, &p->slots[slot]) != 0)
        gw_log("error", "saml", "lasso.server_failed", NULL);
    return p->slots[slot].server;
}

xmlSecKeyPtr saml_lasso_sign_key(saml_lasso_t *p, size_t slot)
{
    return slot < p->num_slots ? p->slots[slot].sign_key : NULL;
}

int saml_lasso_key_for(saml_lasso_t *p, size_t slot_index, size_t peer, int lasso_signs)
{
    if (slot_index >= p->num_slots || peer >= p->num_peers || p->slots[slot_index].server == NULL)
        return -1;
    lasso_slot_t *slot = &p->slots[slot_index];
    if (slot->plain_key == NULL || slot->plain[peer] == !lasso_signs)
        return 0; /* one key only (no certificate), or already the right one */
    LassoProvider *prov = lasso_server_get_provider(slot->server, p->peers[peer].entity_id);
    if (prov == NULL || lasso_provider_set_server_signing_key(prov, lasso_signs ? slot->key : slot->plain_key) != 0)
        return -1;
    slot->plain[peer] = !lasso_signs;
    return 0;
}

void saml_lasso_destroy(saml_lasso_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i != p->num_slots; ++i)
        slot_dispose(&p->slots[i]);
    free(p->slots);
    free(p);
}
