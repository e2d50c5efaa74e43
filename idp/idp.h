/*
 * idp: the login flows (password login, first-login setup link, logout); later MFA, the account pages and
 * SAML. Handlers run on the event loops and hand all blocking work (SQL, argon2id) to the worker pool.
 */
#ifndef PORTIER_IDP_H
#define PORTIER_IDP_H

#include "gateway/gateway.h"

/* argon2id cost (libsodium crypto_pwhash): m = 19 MiB, t = 2, p = 1 (libsodium's argon2id uses p = 1). */
#define IDP_PWHASH_OPSLIMIT 2
#define IDP_PWHASH_MEMLIMIT (19u * 1024 * 1024)

/* Registers /login, /setup, /logout on hostconf. Call once at start-up (computes the dummy hash). */
void idp_register(gw_server_t *server, h2o_hostconf_t *hostconf);

/* Hashes a password with argon2id (worker threads / CLI only: ~30 ms). Returns 0 or -1. */
int idp_hash_password(const char *password, char out[128]);

#endif
