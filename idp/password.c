/*
 * Password hashing: argon2id (libsodium crypto_pwhash, p = 1) over HMAC-SHA256(pepper, password). The pepper
 * is a 256-bit key kept in a file outside the database (login.pepper_file, created 0600 on first start), so a
 * stolen database alone cannot be attacked offline. The cost (memory, iterations) comes from configuration;
 * a stored hash with another cost is re-hashed at the next successful login. A dummy hash of the same cost
 * stands in for accounts without one, so every login attempt runs the KDF once.
 * Set up once at start-up (idp_password_init); afterwards read-only and thread-safe. Worker threads only.
 */
#include <string.h>

#include <sodium.h>

#include "idp/internal.h"
#include "policy/policy.h"

static struct {
    uint8_t pepper[crypto_auth_hmacsha256_KEYBYTES];
    unsigned long long opslimit;
    size_t memlimit;
    char dummy[crypto_pwhash_STRBYTES];
} hasher;

static void prehash(const char *password, uint8_t out[crypto_auth_hmacsha256_BYTES])
{
    crypto_auth_hmacsha256(out, (const unsigned char *)password, strlen(password), hasher.pepper);
}

int idp_password_init(const uint8_t pepper[32], unsigned iterations, size_t memory)
{
    memcpy(hasher.pepper, pepper, sizeof(hasher.pepper));
    hasher.opslimit = iterations;
    hasher.memlimit = memory;
    char random_pw[32];
    randombytes_buf(random_pw, sizeof(random_pw) - 1);
    for (size_t i = 0; i + 1 < sizeof(random_pw); ++i)
        random_pw[i] = (char)('a' + (unsigned char)random_pw[i] % 26);
    random_pw[sizeof(random_pw) - 1] = '\0';
    int rc = idp_password_hash(random_pw, hasher.dummy);
    sodium_memzero(random_pw, sizeof(random_pw));
    return rc;
}

int idp_password_hash(const char *password, char out[crypto_pwhash_STRBYTES])
{
    uint8_t p[crypto_auth_hmacsha256_BYTES];
    prehash(password, p);
    int rc = crypto_pwhash_str(out, (const char *)p, sizeof(p), hasher.opslimit, hasher.memlimit);
    sodium_memzero(p, sizeof(p));
    return rc;
}

int idp_password_verify(const char *hash, const char *password)
{
    uint8_t p[crypto_auth_hmacsha256_BYTES];
    prehash(password, p);
    int ok = crypto_pwhash_str_verify(hash != NULL ? hash : hasher.dummy, (const char *)p, sizeof(p)) == 0;
    sodium_memzero(p, sizeof(p));
    return ok && hash != NULL;
}

int idp_password_accept(const gw_server_t *server, const store_user_t *user, int mfa_enrolled, const char *password,
                        char *out, size_t outlen, char *reason, size_t reason_len)
{
    pol_context_t ctx = {.username = user->username,
                         .email = user->email,
                         .display_name = user->display_name,
                         .product = "portier",
                         .organization = server->conf->organization};
    unsigned min = mfa_enrolled ? server->conf->password_min_length_mfa : server->conf->password_min_length;
    return pol_password_evaluate(server->blocklist, password, min, &ctx, out, outlen, reason, reason_len);
}

int idp_password_needs_rehash(const char *hash)
{
    return crypto_pwhash_str_needs_rehash(hash, hasher.opslimit, hasher.memlimit) != 0;
}
