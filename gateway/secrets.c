/*
 * Key files kept outside the database: created on first use with 256 random bits (mode 0600, O_EXCL so two
 * processes cannot both create one), refused when group or others can read them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "gateway/internal.h"

int gw_key_file(const char *path, uint8_t *key, size_t len, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        int ok = RAND_bytes(key, (int)len) == 1 && write(fd, key, len) == (ssize_t)len && fsync(fd) == 0;
        close(fd);
        if (!ok) {
            unlink(path);
            snprintf(err, errlen, "%s: cannot create", path);
            return -1;
        }
        return 0;
    }
    if (errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if ((st.st_mode & 077) != 0) {
        close(fd);
        snprintf(err, errlen, "%s is accessible by group/others (chmod 600)", path);
        return -1;
    }
    ssize_t n = read(fd, key, len);
    close(fd);
    if (n != (ssize_t)len) {
        snprintf(err, errlen, "%s: expected %zu bytes", path, len);
        return -1;
    }
    return 0;
}

int gw_mfa_key(const gw_config_t *conf, uint8_t key[GW_MFA_KEY_LEN], char *err, size_t errlen)
{
    const char *env = getenv("PORTIER_MFA_KEY");
    if (env == NULL || *env == '\0')
        return gw_key_file(conf->mfa_key_file, key, GW_MFA_KEY_LEN, err, errlen);
    size_t used = 0;
    if (strlen(env) != 2 * GW_MFA_KEY_LEN || OPENSSL_hexstr2buf_ex(key, GW_MFA_KEY_LEN, &used, env, '\0') != 1 ||
        used != GW_MFA_KEY_LEN) {
        OPENSSL_cleanse(key, GW_MFA_KEY_LEN);
        snprintf(err, errlen, "PORTIER_MFA_KEY must be %d hexadecimal digits", 2 * GW_MFA_KEY_LEN);
        return -1;
    }
    return 0;
}

store_t *gw_store_open(const gw_config_t *conf, const uint8_t *audit_key, char *err, size_t errlen)
{
    store_t *st = store_open(conf->db_conninfo, err, errlen);
    if (st != NULL && audit_key != NULL && store_set_audit_key(st, audit_key, GW_AUDIT_KEY_LEN) != 0) {
        store_close(st);
        return NULL;
    }
    return st;
}
