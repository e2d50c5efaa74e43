/*
 * gateway internals shared between the gateway's own files (not for other modules).
 */
#ifndef PORTIER_GATEWAY_INTERNAL_H
#define PORTIER_GATEWAY_INTERNAL_H

#include "gateway/gateway.h"

/* worker.c */
gw_workers_t *gw_workers_create(gw_server_t *server, size_t count);
void gw_workers_destroy(gw_workers_t *pool);
void gw_workers_on_complete(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

/* proxy.c: registers the authenticating handler + reverse proxy for route `index` on pathconf. */
void gw_proxy_register(gw_server_t *server, h2o_pathconf_t *pathconf, size_t route_index);
/* Removes client-supplied identity headers and the X-Forwarded-* family, and portier's cookies from Cookie. */
void gw_strip_identity_headers(h2o_req_t *req, const gw_config_t *conf);

/* endpoints.c: /healthz, /readyz, /metrics, JWKS, stylesheet. */
void gw_endpoints_register(gw_server_t *server, h2o_hostconf_t *hostconf);

/* revocation.c */
void gw_revocation_start(gw_server_t *server);
void gw_revocation_stop(gw_server_t *server);

/* blocklist.c: the common passwords and dictionary words of the configuration, or NULL + message. */
struct st_pol_blocklist_t *gw_blocklist_load(const gw_config_t *conf, char *err, size_t errlen);

/* cli.c */
int gw_cli_main(int argc, char **argv);

#endif
