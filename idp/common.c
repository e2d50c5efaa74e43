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
