/*
 * One LassoServer per worker thread. lasso objects are not thread-safe and building one costs ~50 ms (xmlsec
 * loads the system CA bundle, each provider's metadata is parsed), so each worker builds its own on first use
 * and keeps it for the life of the process; a slot is only ever touched by its worker.
 *
 * lasso is given the key and certificate as file names, not as PEM text: it loads them again for every signature
 * either way, and xmlsec 1.2.37 leaks a BIO each time lasso first tries PEM text as a file name (~400 bytes per
 * signed response, measured with LeakSanitizer). The files were checked (RSA 2048/3072, matching, mode 0600) at
 * start-up by saml_keypair_load. Without a certificate file lasso signs without KeyInfo and saves parsing the
 * certificate for every signature (peers take our key from our metadata, never from KeyInfo).
 *
 * Every server signs with RSA-SHA256: Debian's lasso defaults to rsa-sha1, and the setter of the default is
 * not exported, so it is set on each object here, in the one place servers are made.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lasso/lasso.h>

#include "gateway/gateway.h"
#include "saml/internal.h"

struct st_saml_lasso_t {
    size_t num_slots;
    LassoServer **slots;
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

static LassoServer *build(saml_lasso_t *p)
{
    LassoServer *s = lasso_server_new_from_buffers(p->own_metadata, p->kp->key_file, NULL,
                                                   p->keyinfo_certificate ? p->kp->cert_file : NULL);
    if (s == NULL)
        return NULL;
    s->signature_method = LASSO_SIGNATURE_METHOD_RSA_SHA256;
    for (size_t i = 0; i != p->num_peers; ++i) {
        const saml_peer_t *peer = &p->peers[i];
        if (lasso_server_add_provider_from_buffer(s, (LassoProviderRole)peer->role, peer->metadata, NULL, NULL) != 0) {
            gw_log("error", "saml", "provider.load_failed", "entity", peer->entity_id, NULL);
            continue;
        }
        LassoProvider *prov = lasso_server_get_provider(s, peer->entity_id);
        if (prov != NULL && peer->encrypt) {
            lasso_provider_set_encryption_mode(prov, LASSO_ENCRYPTION_MODE_ASSERTION);
            lasso_provider_set_encryption_sym_key_type(prov, LASSO_ENCRYPTION_SYM_KEY_TYPE_AES_256);
        }
    }
    return s;
}

LassoServer *saml_lasso_server(saml_lasso_t *p, size_t slot)
{
    if (slot >= p->num_slots)
        return NULL;
    if (p->slots[slot] == NULL && (p->slots[slot] = build(p)) == NULL)
        gw_log("error", "saml", "lasso.server_failed", NULL);
    return p->slots[slot];
}

void saml_lasso_destroy(saml_lasso_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i != p->num_slots; ++i)
        if (p->slots[i] != NULL)
            lasso_server_destroy(p->slots[i]);
    free(p->slots);
    free(p);
}
