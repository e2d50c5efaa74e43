/*
 * idp internals shared between the idp's own files.
 */
#ifndef PORTIER_IDP_INTERNAL_H
#define PORTIER_IDP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "idp/idp.h"

/* password.c: argon2id over a peppered HMAC. Worker threads only (each call costs ~30 ms). */
int idp_password_init(const uint8_t pepper[32], unsigned iterations, size_t memory);
int idp_password_hash(const char *password, char out[128]);
/* 1 when `password` matches `hash`; 0 otherwise. hash NULL: runs the KDF on a dummy hash and returns 0. */
int idp_password_verify(const char *hash, const char *password);
int idp_password_needs_rehash(const char *hash);
/* The password gatekeeper for every path that sets one (setup, reset, change): NFKC + length + blocklist +
 * patterns + context words (user name, email, name, product, organisation). The minimum length is
 * login.password_min_length_mfa for a user with a second factor (mfa_enrolled), else login.password_min_length. 0 with
 * the normalised password (what is hashed) in out (>= POL_NORMALIZED_MAX), or -1 with a reason to show. */
int idp_password_accept(const gw_server_t *server, const store_user_t *user, int mfa_enrolled, const char *password,
                        char *out, size_t outlen, char *reason, size_t reason_len);

/* mfa.c: /login/mfa, /account/mfa, /account/mfa/qr.svg */
#define IDP_SESSION_PUBLIC_ID_BYTES 16
void idp_mfa_register(gw_server_t *server, h2o_hostconf_t *hostconf);

/* common.c: a session row for user_id with methods `amr` (STORE_AMR_*); fills cookie (base64url of 256 random
 * bits). Worker thread. */
int idp_new_session(store_t *db, gw_server_t *server, int64_t user_id, const char *source, unsigned amr, char *cookie,
                    size_t cookie_len);

/* account.c, forgot.c */
void idp_account_register(gw_server_t *server, h2o_hostconf_t *hostconf);
void idp_forgot_register(gw_server_t *server, h2o_hostconf_t *hostconf);
/* Emails the user that their password changed (when SMTP is set up and they have an address). Worker. */
void idp_notify_password_changed(const gw_config_t *conf, const store_user_t *u, const char *how);
/* Emails "Hello <name>, <what> If this was not you, ..." when SMTP is set up and the user has an address. */
void idp_notify(const gw_config_t *conf, const store_user_t *u, const char *subject, const char *what);

/* common.c */
typedef struct st_idp_handler_t {
    h2o_handler_t super;
    gw_server_t *server;
} idp_handler_t;
int idp_is_post(h2o_req_t *req);
/* Wipes and frees a malloc'd secret string (NULL is fine). */
void idp_free_secret(char *s);
char *idp_dup_secret(const char *s);
/* Appends an audit event; failures are logged, never fatal to the request. Worker threads. */
void idp_audit(store_t *db, const char *actor, const char *action, const char *target, const char *outcome,
               const char *source, const char *details);
void idp_add_handler(gw_server_t *server, h2o_hostconf_t *hostconf, const char *path,
                     int (*cb)(h2o_handler_t *, h2o_req_t *));

#endif
