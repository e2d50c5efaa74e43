/*
 * mfa: the pure building blocks of second factors: TOTP/HOTP verification with replay protection (liboath),
 * provisioning (secret generation, base32, otpauth:// URI, QR code as SVG), recovery codes, and sealing of OTP
 * secrets at rest (AES-256-GCM). No HTTP, no SQL, no logging: callers persist last_step / counters / hashes.
 *
 * Threading: call mfa_global_init() once on the main thread before any other thread starts. Afterwards every
 * function here is thread-safe: none keeps state between calls; randomness comes from libsodium's CSPRNG.
 * Ownership: all pointer arguments are borrowed for the duration of the call; functions returning char * hand
 * a malloc'd string to the caller, who frees it with free(). Secrets held in temporaries are wiped.
 */
#ifndef PORTIER_MFA_H
#define PORTIER_MFA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define MFA_SECRET_LEN 20 /* 160-bit TOTP/HOTP secret */
/* Secret lengths the verifiers accept (RFC 4226 asks for >= 128 bits; RFC 6238's SHA-512 vectors use 64). */
#define MFA_SECRET_MIN 16
#define MFA_SECRET_MAX 64
/* Code lengths the verifiers accept (liboath's range). */
#define MFA_DIGITS_MIN 6
#define MFA_DIGITS_MAX 8
/* Largest +/- step window and HOTP look-ahead accepted (larger values are refused, not clamped). */
#define MFA_WINDOW_MAX    10
#define MFA_LOOKAHEAD_MAX 100

typedef enum { MFA_SHA1, MFA_SHA256, MFA_SHA512 } mfa_alg_t;
typedef struct st_mfa_params_t {
    mfa_alg_t alg;
    unsigned digits; /* 6 or 8 (7 also works) */
    unsigned period; /* seconds, 30 */
    unsigned window; /* +/- steps, 1 */
} mfa_params_t;
#define MFA_PARAMS_DEFAULT ((mfa_params_t){MFA_SHA1, 6, 30, 1})

/* Initialises liboath and libsodium. Call once before threads start; returns 0, or -1 on failure. */
__attribute__((warn_unused_result)) int mfa_global_init(void);

/* Fills out with MFA_SECRET_LEN bytes from the CSPRNG. */
void mfa_secret_generate(uint8_t out[MFA_SECRET_LEN]);

/* Base32 (RFC 4648 alphabet, upper case, no padding). Writes ceil(len * 8 / 5) characters plus a NUL into out
 * and returns the number of characters; returns 0 (and out = "" when outlen > 0) if outlen is too small. */
#define MFA_BASE32_LEN(n) (((n)*8 + 4) / 5)
size_t mfa_base32_encode(const uint8_t *in, size_t len, char *out, size_t outlen);

/* otpauth://totp/<issuer>:<account>?secret=..&issuer=..&algorithm=SHA1&digits=6&period=30 (Key Uri Format).
 * issuer and account are percent-encoded (everything but RFC 3986 unreserved characters, so "Acme Corp" ->
 * "Acme%20Corp", '@' -> "%40"). Returns a malloc'd string, or NULL when an argument is invalid: issuer or
 * account NULL, empty, longer than MFA_LABEL_MAX or containing ':'; secret length outside
 * [MFA_SECRET_MIN, MFA_SECRET_MAX]; params invalid. The URI contains the secret: wipe and free it after use. */
#define MFA_LABEL_MAX 256
__attribute__((warn_unused_result)) char *mfa_otpauth_uri(const char *issuer, const char *account,
                                                          const uint8_t *secret, size_t len, const mfa_params_t *p);

/* otpauth://hotp/<issuer>:<account>?secret=..&issuer=..&algorithm=SHA1&digits=6&counter=N: the same rules. */
__attribute__((warn_unused_result)) char *mfa_otpauth_uri_hotp(const char *issuer, const char *account,
                                                               const uint8_t *secret, size_t len, unsigned digits,
                                                               uint64_t counter);

/* QR code of text (libqrencode, 8-bit mode, level M) as a standalone SVG document: an <svg> with a viewBox of
 * (modules + 8) units (4-module quiet zone), a white background <rect> and one black <path> of the dark
 * modules; no width/height (size it with CSS), no scripts, no external references. Returns a malloc'd string,
 * or NULL when text is NULL, longer than MFA_QR_TEXT_MAX, too long for a QR code, or allocation fails. */
#define MFA_QR_TEXT_MAX 2048
__attribute__((warn_unused_result)) char *mfa_qr_svg(const char *text);

/* TOTP check with replay protection (NIST SP 800-63B: each code accepted once). Accepts a code of exactly
 * p->digits ASCII digits (nothing stripped: spaces are the caller's job) that matches the time step
 * floor(now / p->period) + d for |d| <= p->window, and only if that step is > last_step (pass -1 when none).
 * Returns the accepted step (store it as the new last_step) or -1 (also for invalid parameters, a secret
 * length outside [MFA_SECRET_MIN, MFA_SECRET_MAX], now < 0, p->window > MFA_WINDOW_MAX). The code comparison
 * is constant-time (CRYPTO_memcmp); liboath generates the candidate codes. */
__attribute__((warn_unused_result)) int64_t mfa_totp_verify(const uint8_t *secret, size_t len, const mfa_params_t *p,
                                                            const char *code, time_t now, int64_t last_step);

/* HOTP (RFC 4226, HMAC-SHA1) with a look-ahead window: if code matches counter c in
 * [counter, counter + lookahead], returns c + 1 (the next counter to store), else -1. lookahead is at most
 * MFA_LOOKAHEAD_MAX; counter + lookahead + 1 must fit in int64_t. Constant-time code comparison. */
__attribute__((warn_unused_result)) int64_t mfa_hotp_verify(const uint8_t *secret, size_t len, unsigned digits,
                                                            const char *code, uint64_t counter, unsigned lookahead);

/* Recovery codes: n codes, each 80 random bits shown as 16 base32 chars in 4 groups "ABCD-EFGH-IJKL-MNOP";
 * hashes[i] = SHA-256 of the normalised code (16 chars, no dashes). Show codes once, store only hashes, wipe
 * codes after display. */
#define MFA_RECOVERY_CODE_CHARS 20 /* "XXXX-XXXX-XXXX-XXXX" + NUL */
#define MFA_RECOVERY_NORM_LEN   16 /* characters of a normalised code (out of mfa_recovery_normalize: + NUL) */
void mfa_recovery_generate(size_t n, char (*codes)[MFA_RECOVERY_CODE_CHARS], uint8_t (*hashes)[32]);
/* Upper-cases, drops '-' and ' ', maps the look-alikes 0->O, 1->I, 8->B; the result must be exactly
 * MFA_RECOVERY_NORM_LEN base32 characters. Writes it NUL-terminated to out (outlen >= 17) and returns 0; else
 * returns -1 with out wiped to "" (when outlen > 0). Input is read up to MFA_RECOVERY_INPUT_MAX bytes. */
#define MFA_RECOVERY_INPUT_MAX 64
__attribute__((warn_unused_result)) int mfa_recovery_normalize(const char *in, char *out, size_t outlen);
/* SHA-256 of the normalised code (its strlen bytes). Compare stored hashes with CRYPTO_memcmp/sodium_memcmp. */
void mfa_recovery_hash(const char *normalized, uint8_t out[32]);

/* Secrets at rest: AES-256-GCM under a 32-byte master key, with the user id as decimal text as associated
 * data. Sealed form: version byte MFA_SEAL_VERSION || 12-byte random nonce || ciphertext || 16-byte tag, i.e.
 * len + MFA_SEAL_OVERHEAD bytes. Both return 0 and set *written, or -1 (outlen too small, len > MFA_SEAL_MAX,
 * OpenSSL failure; for open also: unknown version, too short, any tampering, wrong key or wrong user id, in
 * which case out is wiped). */
#define MFA_SEAL_VERSION   1
#define MFA_SEAL_NONCE_LEN 12
#define MFA_SEAL_TAG_LEN   16
#define MFA_SEAL_OVERHEAD  (1 + MFA_SEAL_NONCE_LEN + MFA_SEAL_TAG_LEN)
#define MFA_SEAL_MAX       65536 /* plaintext bytes */
__attribute__((warn_unused_result)) int mfa_seal(const uint8_t key[32], int64_t user_id, const uint8_t *plain,
                                                 size_t len, uint8_t *out, size_t outlen, size_t *written);
__attribute__((warn_unused_result)) int mfa_open(const uint8_t key[32], int64_t user_id, const uint8_t *sealed,
                                                 size_t len, uint8_t *out, size_t outlen, size_t *written);

#endif
