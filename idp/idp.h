/*
 * idp: the login flows (password login, first-login setup link, logout); later MFA, the account pages and
 * SAML. Handlers run on the event loops and hand all blocking work (SQL, argon2id) to the worker pool.
 */
#ifndef PORTIER_IDP_H
#define PORTIER_IDP_H

#include "gateway/gateway.h"

/* The half-authenticated state (after a first factor, before the second): also started by the SAML broker when
 * an enterprise IdP's sign-in does not satisfy portier's MFA policy. */
#define IDP_MFA_COOKIE        "__Host-portier-mfa"
#define IDP_MFA_CHALLENGE_TTL 300 /* seconds */

/* Registers /login, /setup, /logout on hostconf. Call once at start-up (computes the dummy hash). */
void idp_register(gw_server_t *server, h2o_hostconf_t *hostconf);

/* The password gatekeeper for passwords a provisioning client (SCIM) sets: the same policy as every other path
 * (idp_password_accept), then argon2id. ctx is the gw_server_t. 0 with the encoded hash in out (>= 128 bytes),
 * or -1 with a reason. Worker threads only. Matches scim_password_cb (wired in gateway/server.c). */
int idp_provisioned_password(void *ctx, const char *username, const char *email, const char *display_name,
                             const char *password, char *out, size_t outlen, char *reason, size_t reason_len);

#endif
