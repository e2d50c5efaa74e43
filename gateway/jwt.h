/*
 * ES256 JSON Web Tokens for backends, and the JWKS that lets them verify those tokens.
 *
 * A gw_jwt_keyset_t holds the current signing key (P-256, parsed once at start-up) and any previous keys that
 * stay published in the JWKS until tokens signed with them have expired. Every key's `kid` is its RFC 7638
 * JWK thumbprint (base64url of SHA-256 over {"crv","kty","x","y"}). Signing is thread-safe (EVP_PKEY is only
 * read; each call uses its own EVP_MD_CTX) and costs ~30 µs, so it may run on an event loop, but callers cache
 * the result per session and route anyway.
 */
#ifndef PORTIER_GATEWAY_JWT_H
#define PORTIER_GATEWAY_JWT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct st_gw_jwt_keyset_t gw_jwt_keyset_t;

/* Claims of an identity token. All strings borrowed. `groups` may be empty (num_groups 0) but the token always
 * carries a "groups" array. `act_sub` (support principal) is optional (NULL = no "act" claim).
 * `amr` is an optional NULL-terminated list (NULL = claim omitted); `acr` optional. */
typedef struct st_gw_jwt_claims_t {
    const char *iss;
    const char *aud;
    const char *sub;
    const char *email; /* may be NULL -> claim omitted */
    const char *name;  /* may be NULL -> claim omitted */
    const char *const *groups;
    size_t num_groups;
    const char *sid; /* session identifier safe to disclose (NOT the cookie; e.g. a public session id) */
    int64_t iat;
    int64_t exp;
    const char *jti; /* NULL -> a random 128-bit base64url value is generated */
    const char *act_sub;
    const char *const *amr;
    const char *acr;
} gw_jwt_claims_t;

/* Loads the signing key (PEM, EC P-256 private key) and previous keys (PEM, private or public; may be NULL).
 * Returns NULL and writes a message to err on failure (wrong curve, unreadable, not EC). */
gw_jwt_keyset_t *gw_jwt_keyset_load(const char *signing_key_path, const char *const *previous_key_paths, char *err,
                                    size_t errlen);
void gw_jwt_keyset_destroy(gw_jwt_keyset_t *ks);

/* Writes a P-256 private key in PEM (PKCS#8) to path with mode 0600. Returns 0 or -1 (errno set). */
int gw_jwt_generate_key(const char *path) __attribute__((warn_unused_result));

/* The `kid` of the signing key (borrowed, lives as long as the keyset). */
const char *gw_jwt_kid(const gw_jwt_keyset_t *ks);

/* Signs the claims as a compact JWS {"alg":"ES256","typ":"JWT","kid":...}. Returns a malloc'd NUL-terminated
 * string (caller frees) or NULL on failure. */
char *gw_jwt_sign(const gw_jwt_keyset_t *ks, const gw_jwt_claims_t *claims);

/* The JWKS document {"keys":[{kty,crv,x,y,kid,use:"sig",alg:"ES256"}, ...]} for all keys, current first.
 * Borrowed string, built once at load. */
const char *gw_jwt_jwks(const gw_jwt_keyset_t *ks);

/* base64url without padding. Returns bytes written (excluding the NUL), or 0 if out is too small.
 * out needs at least ((len + 2) / 3) * 4 + 1 bytes. */
size_t gw_base64url_encode(const uint8_t *in, size_t len, char *out, size_t outlen);
/* Decodes base64url (padding optional). Returns bytes written or -1 on invalid input / overflow. */
long gw_base64url_decode(const char *in, size_t len, uint8_t *out, size_t outlen);

#endif
