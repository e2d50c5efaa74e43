/*
 * SAML sub-commands of the `portier` CLI (wired in gateway/cli.c):
 *
 *   portier keys saml-rotate     two steps, each followed by a restart of every instance:
 *                                1. no <key>.next yet: make <key>.next + <certificate>.next; the next start
 *                                   publishes the new certificate in the metadata beside the current one, and the
 *                                   SPs pick it up with their metadata refresh;
 *                                2. <key>.next exists: move the current files to *.prev and the next ones into
 *                                   place; from the next start on, assertions are signed with the new key.
 *   portier saml add-sp FILE [NAME]   checks an SP's metadata and copies it into saml.sp_dir as NAME.xml
 *   portier check-config         also loads the SAML key pair (saml_check)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "saml/internal.h"

#define MAX_NAME 64

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

int saml_check(const gw_config_t *conf, char *err, size_t errlen)
{
    saml_keypair_t kp;
    if (conf->saml == NULL)
        return 0;
    if (saml_keypair_load(&kp, conf->saml->key_file, conf->saml->cert_file, err, errlen) != 0)
        return -1;
    saml_keypair_dispose(&kp);
    /* the broker's own key pair (saml.sp.key / certificate), when it has one */
    const saml_broker_config_t *bc = &conf->saml->broker;
    if (bc->key_file != NULL && saml_keypair_load(&kp, bc->key_file, bc->cert_file, err, errlen) != 0)
        return -1;
    if (bc->key_file != NULL)
        saml_keypair_dispose(&kp);
    return 0;
}

static int move(const char *from, const char *to)
{
    if (rename(from, to) != 0) {
        fprintf(stderr, "portier: cannot move %s to %s: %s\n", from, to, strerror(errno));
        return -1;
    }
    return 0;
}

int saml_cli_rotate(const gw_config_t *conf)
{
    const saml_config_t *sc = conf->saml;
    char next_key[4096], next_cert[4096], prev_key[4096], prev_cert[4096], err[512];
    if (sc == NULL) {
        fprintf(stderr, "portier: the configuration has no saml section\n");
        return 1;
    }
    snprintf(next_key, sizeof(next_key), "%s.next", sc->key_file);
    snprintf(next_cert, sizeof(next_cert), "%s.next", sc->cert_file);
    snprintf(prev_key, sizeof(prev_key), "%s.prev", sc->key_file);
    snprintf(prev_cert, sizeof(prev_cert), "%s.prev", sc->cert_file);
    if (!exists(next_key)) {
        if (saml_keypair_generate(next_key, next_cert, "portier SAML signing", err, sizeof(err)) != 0) {
            fprintf(stderr, "portier: %s\n", err);
            return 1;
        }
        printf("made %s and %s\n"
               "Restart portier: the metadata then publishes the next certificate beside the current one.\n"
               "Once every SP has refreshed portier's metadata, run `portier keys saml-rotate` again.\n",
               next_key, next_cert);
        return 0;
    }
    saml_keypair_t kp;
    if (saml_keypair_load(&kp, next_key, next_cert, err, sizeof(err)) != 0) { /* never switch to a broken pair */
        fprintf(stderr, "portier: %s\n", err);
        return 1;
    }
    saml_keypair_dispose(&kp);
    if (move(sc->key_file, prev_key) != 0 || move(sc->cert_file, prev_cert) != 0 || move(next_key, sc->key_file) != 0 ||
        move(next_cert, sc->cert_file) != 0)
        return 1;
    printf("%s and %s are now the signing key and certificate (the old ones are *.prev).\n"
           "Restart portier to sign with them.\n",
           sc->key_file, sc->cert_file);
    return 0;
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NAME || s[0] == '.')
        return 0;
    for (; *s != '\0'; ++s)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("-._", *s) != NULL))
            return 0;
    return 1;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    char *buf = f != NULL ? malloc(SAML_MAX_METADATA + 1) : NULL;
    if (buf != NULL) {
        *len = fread(buf, 1, SAML_MAX_METADATA + 1, f);
        if (*len > SAML_MAX_METADATA) {
            free(buf);
            buf = NULL;
        }
    }
    if (f != NULL)
        fclose(f);
    return buf;
}

int saml_cli_add_sp(const gw_config_t *conf, const char *file, const char *name)
{
    const saml_config_t *sc = conf->saml;
    saml_sp_metadata_t md;
    char err[512], dest[4096];
    size_t len = 0;
    int rc = 1;
    if (sc == NULL || sc->sp_dir == NULL) {
        fprintf(stderr, "portier: set saml.sp_dir in the configuration first\n");
        return 1;
    }
    if (!valid_name(name)) {
        fprintf(stderr, "portier: the name must be 1-%d letters, digits, '-', '.' or '_'\n", MAX_NAME);
        return 1;
    }
    char *xml = slurp(file, &len);
    if (xml == NULL) {
        fprintf(stderr, "portier: %s: cannot read a file of at most %d bytes\n", file, SAML_MAX_METADATA);
        return 1;
    }
    if (saml_sp_metadata_parse(xml, len, &md, err, sizeof(err)) != 0) {
        fprintf(stderr, "portier: %s: %s\n", file, err);
        goto exit;
    }
    for (size_t i = 0; i != sc->num_sps; ++i)
        if (strcmp(sc->sps[i].md.entity_id, md.entity_id) == 0) {
            fprintf(stderr, "portier: %s is already configured (%s)\n", md.entity_id, sc->sps[i].metadata_file);
            goto exit;
        }
    snprintf(dest, sizeof(dest), "%s/%s.xml", sc->sp_dir, name);
    int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, xml, len) != (ssize_t)len || close(fd) != 0) {
        fprintf(stderr, "portier: %s: %s\n", dest, strerror(errno));
        goto exit;
    }
    printf("added %s as %s (HTTP-POST ACS %s%s)\nRestart portier to use it.\n", md.entity_id, dest, md.acs_urls[0],
           md.wants_signed_requests ? "; its requests must be signed" : "");
    rc = 0;
exit:
    saml_sp_metadata_dispose(&md);
    free(xml);
    return rc;
}
