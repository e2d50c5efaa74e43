/*
 * Small helpers shared by the idp pages: request method, secret strings, audit events, handler registration.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "idp/internal.h"

int idp_is_post(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
}

void idp_free_secret(char *s)
{
    if (s != NULL) {
        sodium_memzero(s, strlen(s));
        free(s);
    }
}

char *idp_dup_secret(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

void idp_audit(store_t *db, const char *actor, const char *action, const char *target, const char *outcome,
               const char *source, const char *details)
{
    store_audit_event_t ev = {.actor = actor,
                              .action = action,
                              .target = target,
                              .outcome = outcome,
                              .source_addr = source,
                              .details = details};
    if (store_audit_append(db, &ev) != 0)
        gw_log("error", "audit", "append_failed", "action", action, NULL);
}

void idp_add_handler(gw_server_t *server, h2o_hostconf_t *hostconf, const char *path,
                     int (*cb)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, path, 0);
    idp_handler_t *h = (idp_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = cb;
    h->server = server;
}

int idp_new_session(store_t *db, gw_server_t *server, int64_t user_id, const char *source, unsigned amr, char *cookie,
                    size_t cookie_len)
{
    uint8_t hash[STORE_HASH_LEN];
    char public_id[32];
    gw_random_token(GW_SESSION_TOKEN_BYTES, cookie, cookie_len, hash);
    gw_random_token(IDP_SESSION_PUBLIC_ID_BYTES, public_id, sizeof(public_id), NULL);
    int r = store_session_create_amr(db, hash, public_id, user_id, server->conf->session_absolute_timeout,
                                     server->conf->session_idle_timeout, source, amr);
    sodium_memzero(hash, sizeof(hash));
    return r;
}
