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

#endif
