/*
 * ES256 identity tokens for backends and the JWKS that lets them verify those tokens (see jwt.h).
 *
 * Keys are parsed once at start-up: the current signing key (EC P-256, private) and any previous keys (private
 * or public PEM) that stay published until the tokens they signed have expired. For each key we compute the
 * public coordinates, its RFC 7638 thumbprint (the `kid`) and its JWK; the JWKS document and the base64url JWS
 * header of the signing key are built once as well. After loading, a keyset is read-only: gw_jwt_sign uses its
 * own EVP_MD_CTX per call, so any number of threads may sign with one keyset.
 *
 * OpenSSL produces DER ECDSA signatures; JWS (RFC 7518 §3.4) wants the raw 64-byte R||S, converted here.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "gateway/jwt.h"

#define COORD_LEN         32                    /* P-256 field element */
#define RAW_SIG_LEN       (2 * COORD_LEN)       /* JWS ES256 signature: R || S */
#define B64_COORD_LEN     43                    /* base64url of 32 bytes, unpadded */
#define B64_LEN(n)        ((((n) + 2) / 3) * 4) /* upper bound, unpadded */
#define KID_LEN           B64_COORD_LEN         /* base64url of a SHA-256 digest */
#define JTI_BYTES         16                    /* 128 random bits */
#define KEY_FILE_MAX      (64 * 1024)           /* a PEM key is a few hundred bytes; refuse anything absurd */
#define MAX_PREVIOUS_KEYS 16
#define CURVE_NAME        SN_X9_62_prime256v1 /* "prime256v1", OpenSSL's name for P-256 */

typedef struct st_jwt_key_t {
    EVP_PKEY *pkey;
    char x[B64_COORD_LEN + 1];
    char y[B64_COORD_LEN + 1];
    char kid[KID_LEN + 1];
} jwt_key_t;

struct st_gw_jwt_keyset_t {
    jwt_key_t *keys; /* keys[0] is the signing key */
    size_t num_keys;
    char *header_b64; /* base64url of {"alg":"ES256","typ":"JWT","kid":...} */
    size_t header_b64_len;
    char *jwks;
};

/* ---- base64url ---- */

static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t gw_base64url_encode(const uint8_t *in, size_t len, char *out, size_t outlen)
{
    if (len > (SIZE_MAX - 4) / 4 * 3)
        return 0;
    size_t need = len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
    if (out == NULL || outlen < need + 1)
        return 0;
    char *p = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = b64url_alphabet[v >> 18];
        *p++ = b64url_alphabet[(v >> 12) & 63];
        *p++ = b64url_alphabet[(v >> 6) & 63];
        *p++ = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *p++ = b64url_alphabet[v >> 18];
        *p++ = b64url_alphabet[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *p++ = b64url_alphabet[v >> 18];
        *p++ = b64url_alphabet[(v >> 12) & 63];
        *p++ = b64url_alphabet[(v >> 6) & 63];
    }
    *p = '\0';
    return (size_t)(p - out);
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Strict: only the URL-safe alphabet, padding (if any) complete and only at the end, no stray bits in the
 * last character (so every byte string has exactly one accepted encoding). */
long gw_base64url_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
    if (in == NULL || len > (size_t)LONG_MAX)
        return -1;
    if (len % 4 == 0 && len != 0 && in[len - 1] == '=') {
        len -= (in[len - 2] == '=') ? 2 : 1;
    }
    if (len % 4 == 1)
        return -1;
    size_t need = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    if (need > outlen || (need != 0 && out == NULL))
        return -1;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;
    for (size_t i = 0; i != len; ++i) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* non-zero padding bits: a non-canonical encoding */
        return -1;
    return (long)n;
}

/* ---- key loading ---- */

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1; /* encrypted keys are not supported; never prompt on the terminal */
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(err, errlen, fmt, ap) < 0)
        err[0] = '\0';
    va_end(ap);
}

/* Reads a whole (small) key file into a malloc'd NUL-terminated buffer; the caller wipes and frees it. */
static char *read_key_file(const char *path, size_t *len, char *err, size_t errlen)
{
    char *buf = NULL;
    FILE *fp = fopen(path, "re");
    if (fp == NULL) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if ((buf = malloc(KEY_FILE_MAX + 1)) == NULL) {
        set_err(err, errlen, "%s: out of memory", path);
        goto Exit;
    }
    *len = fread(buf, 1, KEY_FILE_MAX + 1, fp);
    if (ferror(fp)) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
    } else if (*len > KEY_FILE_MAX) {
        set_err(err, errlen, "%s: larger than %d bytes: not a PEM key file", path, KEY_FILE_MAX);
    } else {
        buf[*len] = '\0';
        goto Exit;
    }
    OPENSSL_cleanse(buf, KEY_FILE_MAX + 1);
    free(buf);
    buf = NULL;
Exit:
    fclose(fp);
    return buf;
}

static int get_coord(const EVP_PKEY *pkey, const char *param, char out[B64_COORD_LEN + 1], uint8_t raw[COORD_LEN])
{
    BIGNUM *bn = NULL;
    int ok = EVP_PKEY_get_bn_param(pkey, param, &bn) == 1 && BN_bn2binpad(bn, raw, COORD_LEN) == COORD_LEN &&
             gw_base64url_encode(raw, COORD_LEN, out, B64_COORD_LEN + 1) == B64_COORD_LEN;
    BN_free(bn);
    return ok ? 0 : -1;
}

/* Checks the key is EC P-256 and fills in x, y and the RFC 7638 thumbprint. */
static int describe_key(jwt_key_t *key, const char *path, char *err, size_t errlen)
{
    if (!EVP_PKEY_is_a(key->pkey, "EC")) {
        const char *type = EVP_PKEY_get0_type_name(key->pkey);
        set_err(err, errlen, "%s: not an EC key (%s); ES256 needs an EC P-256 key", path,
                type != NULL ? type : "unknown type");
        return -1;
    }
    char group[64];
    size_t group_len = 0;
    if (EVP_PKEY_get_utf8_string_param(key->pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &group_len) != 1)
        group[0] = '\0';
    if (strcmp(group, CURVE_NAME) != 0) {
        set_err(err, errlen, "%s: EC key on curve %s; ES256 needs P-256 (prime256v1)", path,
                group[0] != '\0' ? group : "(explicit parameters)");
        return -1;
    }
    uint8_t x[COORD_LEN], y[COORD_LEN];
    if (get_coord(key->pkey, OSSL_PKEY_PARAM_EC_PUB_X, key->x, x) != 0 ||
        get_coord(key->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, key->y, y) != 0) {
        set_err(err, errlen, "%s: cannot read the public point of the EC key", path);
        return -1;
    }
    /* RFC 7638 §3.2: required members only, lexicographic order, no whitespace. */
    char canon[128];
    int n =
        snprintf(canon, sizeof(canon), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", key->x, key->y);
    if (n < 0 || (size_t)n >= sizeof(canon)) {
        set_err(err, errlen, "%s: internal error computing the key thumbprint", path);
        return -1;
    }
    uint8_t digest[SHA256_DIGEST_LENGTH];
    if (SHA256((const uint8_t *)canon, (size_t)n, digest) == NULL ||
        gw_base64url_encode(digest, sizeof(digest), key->kid, sizeof(key->kid)) != KID_LEN) {
        set_err(err, errlen, "%s: internal error computing the key thumbprint", path);
        return -1;
    }
    return 0;
}

static int has_private_part(const EVP_PKEY *pkey)
{
    BIGNUM *d = NULL;
    int ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1 && d != NULL;
    BN_clear_free(d);
    return ok;
}

static EVP_PKEY *parse_pem(const char *buf, size_t len, int public)
{
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    if (bio == NULL)
        return NULL;
    EVP_PKEY *pkey = public ? PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL)
                            : PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    return pkey;
}

static int load_key(jwt_key_t *key, const char *path, int allow_public, char *err, size_t errlen)
{
    size_t len = 0;
    char *buf = read_key_file(path, &len, err, errlen);
    if (buf == NULL)
        return -1;
    ERR_clear_error();
    key->pkey = parse_pem(buf, len, 0);
    if (key->pkey == NULL && allow_public) {
        ERR_clear_error();
        key->pkey = parse_pem(buf, len, 1);
    }
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    if (key->pkey == NULL) {
        char reason[256] = "no PEM key found";
        if (e != 0)
            ERR_error_string_n(e, reason, sizeof(reason));
        if (strstr(buf, "ENCRYPTED") != NULL) { /* buf is NUL-terminated */
            set_err(err, errlen, "%s: encrypted PEM keys are not supported (store the key unencrypted, mode 0600)",
                    path);
        } else if (!allow_public && (key->pkey = parse_pem(buf, len, 1)) != NULL) {
            EVP_PKEY_free(key->pkey);
            key->pkey = NULL;
            set_err(err, errlen, "%s: a public key; the signing key must be a PEM private key", path);
        } else {
            set_err(err, errlen, "%s: no PEM %s key found (%s)", path, allow_public ? "private or public" : "private",
                    reason);
        }
        ERR_clear_error();
    }
    OPENSSL_cleanse(buf, len);
    free(buf);
    if (key->pkey == NULL)
        return -1;
    if (describe_key(key, path, err, errlen) != 0)
        return -1;
    if (!allow_public && !has_private_part(key->pkey)) {
        set_err(err, errlen, "%s: the signing key has no private part", path);
        return -1;
    }
    return 0;
}

/* ---- documents built at load ---- */

static char *dump_compact(json_t *obj)
{
    char *s = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return s;
}

static char *build_jwks(const gw_jwt_keyset_t *ks)
{
    json_t *keys = json_array();
    json_t *doc = json_object();
    if (keys == NULL || doc == NULL || json_object_set(doc, "keys", keys) != 0)
        goto Fail;
    for (size_t i = 0; i != ks->num_keys; ++i) {
        const jwt_key_t *k = &ks->keys[i];
        json_t *jwk = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", k->x, "y",
                                k->y, "kid", k->kid, "use", "sig", "alg", "ES256");
        if (jwk == NULL || json_array_append_new(keys, jwk) != 0)
            goto Fail;
    }
    json_decref(keys);
    return dump_compact(doc);
Fail:
    json_decref(keys);
    json_decref(doc);
    return NULL;
}

static char *b64url_dup(const char *s, size_t *outlen)
{
    size_t len = strlen(s), cap = B64_LEN(len) + 1;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    *outlen = gw_base64url_encode((const uint8_t *)s, len, out, cap);
    if (*outlen == 0 && len != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static int build_header(gw_jwt_keyset_t *ks)
{
    char *json = dump_compact(json_pack("{s:s, s:s, s:s}", "alg", "ES256", "typ", "JWT", "kid", ks->keys[0].kid));
    if (json == NULL)
        return -1;
    ks->header_b64 = b64url_dup(json, &ks->header_b64_len);
    free(json);
    return ks->header_b64 != NULL ? 0 : -1;
}

gw_jwt_keyset_t *gw_jwt_keyset_load(const char *signing_key_path, const char *const *previous_key_paths, char *err,
                                    size_t errlen)
{
    if (err != NULL && errlen != 0)
        err[0] = '\0';
    if (signing_key_path == NULL || signing_key_path[0] == '\0') {
        set_err(err, errlen, "no signing key configured");
        return NULL;
    }
    size_t num_prev = 0;
    if (previous_key_paths != NULL)
        while (previous_key_paths[num_prev] != NULL)
            ++num_prev;
    if (num_prev > MAX_PREVIOUS_KEYS) {
        set_err(err, errlen, "too many previous keys (max %d)", MAX_PREVIOUS_KEYS);
        return NULL;
    }

    gw_jwt_keyset_t *ks = calloc(1, sizeof(*ks));
    if (ks == NULL || (ks->keys = calloc(num_prev + 1, sizeof(*ks->keys))) == NULL) {
        set_err(err, errlen, "out of memory");
        goto Fail;
    }
    if (load_key(&ks->keys[ks->num_keys++], signing_key_path, 0, err, errlen) != 0)
        goto Fail;
    for (size_t i = 0; i != num_prev; ++i) {
        jwt_key_t *k = &ks->keys[ks->num_keys++];
        if (load_key(k, previous_key_paths[i], 1, err, errlen) != 0)
            goto Fail;
        /* The same key listed twice (e.g. the current key kept in previous_keys) is published once. */
        for (size_t j = 0; j + 1 != ks->num_keys; ++j) {
            if (strcmp(ks->keys[j].kid, k->kid) == 0) {
                EVP_PKEY_free(k->pkey);
                memset(k, 0, sizeof(*k));
                --ks->num_keys;
                break;
            }
        }
    }
    if (build_header(ks) != 0 || (ks->jwks = build_jwks(ks)) == NULL) {
        set_err(err, errlen, "out of memory building the JWKS");
        goto Fail;
    }
    return ks;
Fail:
    gw_jwt_keyset_destroy(ks);
    return NULL;
}

void gw_jwt_keyset_destroy(gw_jwt_keyset_t *ks)
{
    if (ks == NULL)
        return;
    if (ks->keys != NULL) {
        for (size_t i = 0; i != ks->num_keys; ++i)
            EVP_PKEY_free(ks->keys[i].pkey);
        free(ks->keys);
    }
    free(ks->header_b64);
    free(ks->jwks);
    free(ks);
}

const char *gw_jwt_kid(const gw_jwt_keyset_t *ks)
{
    return ks->keys[0].kid;
}

const char *gw_jwt_jwks(const gw_jwt_keyset_t *ks)
{
    return ks->jwks;
}

/* ---- key generation ---- */

static int write_all(int fd, const char *p, size_t len)
{
    while (len != 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int gw_jwt_generate_key(const char *path)
{
    int ret = -1, fd = -1, saved_errno = EIO;
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    char *pem = NULL;
    long pem_len = 0;

    if (path == NULL || path[0] == '\0') {
        saved_errno = EINVAL;
        goto Exit;
    }
    if ((pkey = EVP_EC_gen(CURVE_NAME)) == NULL || (bio = BIO_new(BIO_s_mem())) == NULL ||
        PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
        (pem_len = BIO_get_mem_data(bio, &pem)) <= 0)
        goto Exit; /* EIO */
    /* 0600 from the start (whatever the umask), and again with fchmod for a file that already existed. */
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, S_IRUSR | S_IWUSR)) < 0 ||
        fchmod(fd, S_IRUSR | S_IWUSR) != 0 || write_all(fd, pem, (size_t)pem_len) != 0 || fsync(fd) != 0) {
        saved_errno = errno;
        goto Exit;
    }
    if (close(fd) != 0) {
        fd = -1;
        saved_errno = errno;
        goto Exit;
    }
    fd = -1;
    ret = 0;
Exit:
    if (fd >= 0)
        close(fd);
    if (pem != NULL && pem_len > 0)
        OPENSSL_cleanse(pem, (size_t)pem_len);
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    if (ret != 0)
        errno = saved_errno;
    return ret;
}

/* ---- signing ---- */

static int set_str(json_t *obj, const char *name, const char *value)
{
    return value != NULL ? json_object_set_new(obj, name, json_string(value)) : 0;
}

static json_t *build_claims(const gw_jwt_claims_t *c, const char *jti)
{
    json_t *obj = json_object(), *groups = json_array();
    if (obj == NULL || groups == NULL)
        goto Fail;
    if (json_object_set_new(obj, "iss", json_string(c->iss)) != 0 ||
        json_object_set_new(obj, "aud", json_string(c->aud)) != 0 ||
        json_object_set_new(obj, "sub", json_string(c->sub)) != 0 || set_str(obj, "email", c->email) != 0 ||
        set_str(obj, "name", c->name) != 0)
        goto Fail;
    for (size_t i = 0; i != c->num_groups; ++i)
        if (json_array_append_new(groups, json_string(c->groups[i])) != 0)
            goto Fail;
    int rc = json_object_set_new(obj, "groups", groups);
    groups = NULL;
    if (rc != 0 || set_str(obj, "sid", c->sid) != 0 || json_object_set_new(obj, "iat", json_integer(c->iat)) != 0 ||
        json_object_set_new(obj, "exp", json_integer(c->exp)) != 0 || set_str(obj, "jti", jti) != 0)
        goto Fail;
    if (c->amr != NULL) {
        json_t *amr = json_array();
        if (amr == NULL || json_object_set_new(obj, "amr", amr) != 0)
            goto Fail;
        for (const char *const *m = c->amr; *m != NULL; ++m)
            if (json_array_append_new(amr, json_string(*m)) != 0)
                goto Fail;
    }
    if (set_str(obj, "acr", c->acr) != 0)
        goto Fail;
    if (c->act_sub != NULL && json_object_set_new(obj, "act", json_pack("{s:s}", "sub", c->act_sub)) != 0)
        goto Fail;
    return obj;
Fail:
    json_decref(groups);
    json_decref(obj);
    return NULL;
}

/* ES256 over input, written as raw R || S. */
static int sign_es256(EVP_PKEY *pkey, const char *input, size_t len, uint8_t out[RAW_SIG_LEN])
{
    int ret = -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t der[80]; /* ECDSA_size() for P-256 is 72 */
    size_t der_len = sizeof(der);
    ECDSA_SIG *sig = NULL;
    if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
        EVP_DigestSign(md, der, &der_len, (const uint8_t *)input, len) != 1)
        goto Exit;
    const uint8_t *p = der;
    if ((sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) == NULL)
        goto Exit;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, out, COORD_LEN) != COORD_LEN || BN_bn2binpad(s, out + COORD_LEN, COORD_LEN) != COORD_LEN)
        goto Exit;
    ret = 0;
Exit:
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(md);
    if (ret != 0)
        ERR_clear_error();
    return ret;
}

char *gw_jwt_sign(const gw_jwt_keyset_t *ks, const gw_jwt_claims_t *claims)
{
    char *token = NULL, *payload = NULL;
    char jti[B64_LEN(JTI_BYTES) + 1];

    if (ks == NULL || claims == NULL || claims->iss == NULL || claims->aud == NULL || claims->sub == NULL ||
        (claims->num_groups != 0 && claims->groups == NULL))
        return NULL;
    if (claims->jti == NULL) {
        uint8_t raw[JTI_BYTES];
        if (RAND_bytes(raw, sizeof(raw)) != 1 || gw_base64url_encode(raw, sizeof(raw), jti, sizeof(jti)) == 0)
            return NULL;
    }
    /* json_string() refuses invalid UTF-8, so a claim that is not valid UTF-8 makes build_claims fail. */
    if ((payload = dump_compact(build_claims(claims, claims->jti != NULL ? claims->jti : jti))) == NULL)
        return NULL;

    size_t payload_len = strlen(payload);
    size_t cap = ks->header_b64_len + 1 + B64_LEN(payload_len) + 1 + B64_LEN(RAW_SIG_LEN) + 1;
    if ((token = malloc(cap)) == NULL)
        goto Fail;
    size_t off = ks->header_b64_len;
    memcpy(token, ks->header_b64, off);
    token[off++] = '.';
    size_t n = gw_base64url_encode((const uint8_t *)payload, payload_len, token + off, cap - off);
    if (n == 0)
        goto Fail;
    off += n;

    uint8_t sig[RAW_SIG_LEN];
    if (sign_es256(ks->keys[0].pkey, token, off, sig) != 0)
        goto Fail;
    token[off++] = '.';
    if (gw_base64url_encode(sig, sizeof(sig), token + off, cap - off) == 0)
        goto Fail;
    free(payload);
    return token;
Fail:
    free(payload);
    free(token);
    return NULL;
}
