/*
 * SAML signing keys: read once at start-up, checked (RSA 2048 or 3072 only: lasso has no ECDSA, and smaller
 * keys are too weak), and kept as PEM text that each worker's LassoServer is built from. The certificate must
 * belong to the key, or every SP would reject our signatures after a botched rotation.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "saml/internal.h"

#define MAX_PEM        (64 * 1024)
#define CERT_DAYS      3650
#define GENERATED_BITS 2048

static char *read_pem(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    char *buf = NULL;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > MAX_PEM) {
        snprintf(err, errlen, "%s: cannot read a PEM file of at most %d bytes", path, MAX_PEM);
        goto exit;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL || read(fd, buf, (size_t)st.st_size) != st.st_size) {
        snprintf(err, errlen, "%s: short read", path);
        free(buf);
        buf = NULL;
        goto exit;
    }
    buf[st.st_size] = '\0';
exit:
    if (fd >= 0)
        close(fd);
    return buf;
}

static X509 *parse_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return x;
}

static char *cert_base64(X509 *x)
{
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    if (len <= 0)
        return NULL;
    char *out = malloc(4 * ((size_t)len + 2) / 3 + 1);
    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, der, len);
    OPENSSL_free(der);
    return out;
}

int saml_cert_load(saml_keypair_t *kp, const char *cert_file, char *err, size_t errlen)
{
    memset(kp, 0, sizeof(*kp));
    if ((kp->cert_pem = read_pem(cert_file, err, errlen)) == NULL)
        return -1;
    X509 *x = parse_cert(kp->cert_pem);
    if (x == NULL || (kp->cert_b64 = cert_base64(x)) == NULL) {
        snprintf(err, errlen, "%s: not a PEM certificate", cert_file);
        X509_free(x);
        saml_keypair_dispose(kp);
        return -1;
    }
    X509_free(x);
    return 0;
}

int saml_keypair_load(saml_keypair_t *kp, const char *key_file, const char *cert_file, char *err, size_t errlen)
{
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    BIO *b = NULL;
    int ret = -1;

    if (saml_cert_load(kp, cert_file, err, errlen) != 0)
        return -1;
    if ((kp->key_pem = read_pem(key_file, err, errlen)) == NULL || (kp->key_file = strdup(key_file)) == NULL ||
        (kp->cert_file = strdup(cert_file)) == NULL)
        goto exit;
    if ((b = BIO_new_mem_buf(kp->key_pem, -1)) == NULL ||
        (key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL) {
        snprintf(err, errlen, "%s: not an unencrypted PEM private key", key_file);
        goto exit;
    }
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        snprintf(err, errlen, "%s: SAML signing keys must be RSA (lasso has no ECDSA)", key_file);
        goto exit;
    }
    kp->bits = (unsigned)EVP_PKEY_get_bits(key);
    if (kp->bits != 2048 && kp->bits != 3072) {
        snprintf(err, errlen, "%s: RSA key of %u bits; use 2048 or 3072", key_file, kp->bits);
        goto exit;
    }
    x = parse_cert(kp->cert_pem);
    if (x == NULL || X509_check_private_key(x, key) != 1) {
        snprintf(err, errlen, "%s is not the certificate of %s", cert_file, key_file);
        goto exit;
    }
    ret = 0;
exit:
    X509_free(x);
    EVP_PKEY_free(key);
    BIO_free(b);
    if (ret != 0)
        saml_keypair_dispose(kp);
    return ret;
}

void saml_keypair_dispose(saml_keypair_t *kp)
{
    if (kp->key_pem != NULL) {
        OPENSSL_cleanse(kp->key_pem, strlen(kp->key_pem));
        free(kp->key_pem);
    }
    free(kp->cert_pem);
    free(kp->cert_b64);
    free(kp->key_file);
    free(kp->cert_file);
    memset(kp, 0, sizeof(*kp));
}

static int write_private(const char *path, EVP_PKEY *key)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static X509 *self_signed(EVP_PKEY *key, const char *cn)
{
    X509 *x = X509_new();
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    if (x == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
        goto fail;
    serial[0] &= 0x7f; /* positive */
    if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto fail;
    X509_NAME *name = X509_get_subject_name(x);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), (long)CERT_DAYS * 86400);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    if (X509_sign(x, key, EVP_sha256()) <= 0)
        goto fail;
    BN_free(bn);
    return x;
fail:
    BN_free(bn);
    X509_free(x);
    return NULL;
}

char *saml_self_signed_pem(const char *cn)
{
    EVP_PKEY *key = EVP_RSA_gen(GENERATED_BITS);
    X509 *x = key != NULL ? self_signed(key, cn) : NULL;
    BIO *bio = x != NULL ? BIO_new(BIO_s_mem()) : NULL;
    char *data, *pem = NULL;
    if (bio != NULL && PEM_write_bio_X509(bio, x) == 1) {
        long n = BIO_get_mem_data(bio, &data);
        pem = strndup(data, (size_t)n);
    }
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(key);
    return pem;
}

int saml_keypair_generate(const char *key_file, const char *cert_file, const char *cn, char *err, size_t errlen)
{
    EVP_PKEY *key = EVP_RSA_gen(GENERATED_BITS);
    X509 *x = key != NULL ? self_signed(key, cn) : NULL;
    FILE *f = NULL;
    int ret = -1;
    if (x == NULL) {
        snprintf(err, errlen, "cannot generate an RSA key and certificate");
        goto exit;
    }
    if (write_private(key_file, key) != 0) {
        snprintf(err, errlen, "%s: %s", key_file, strerror(errno));
        goto exit;
    }
    if ((f = fopen(cert_file, "wx")) == NULL || PEM_write_X509(f, x) != 1) {
        snprintf(err, errlen, "%s: %s", cert_file, strerror(errno));
        goto exit;
    }
    ret = 0;
exit:
    if (f != NULL)
        fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
    return ret;
}
