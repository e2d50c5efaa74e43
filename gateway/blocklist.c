/*
 * Loads the password blocklist at start-up: the common-password list (login.blocklist, by default the
 * project's conf/blocklist.txt, built from Openwall's password.lst) and the dictionary (login.dictionary, by
 * default Debian's /usr/share/dict/words). The files are read here; policy/ only ever sees buffers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/internal.h"
#include "policy/policy.h"

#define MAX_LIST_FILE       (64u * 1024 * 1024)
#define DICTIONARY_MIN_WORD 4 /* shorter words can never be a whole acceptable password anyway */

static long add_file(pol_blocklist_t *bl, const char *path, unsigned min_len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    char *buf = NULL;
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0) {
        long size = ftell(fp);
        if (size >= 0 && (unsigned long)size <= MAX_LIST_FILE && fseek(fp, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t)size + 1)) != NULL && fread(buf, 1, (size_t)size, fp) == (size_t)size)
            n = pol_blocklist_add_lines(bl, buf, (size_t)size, min_len);
    }
    fclose(fp);
    free(buf);
    if (n < 0)
        snprintf(err, errlen, "%s: cannot read (at most %u MiB)", path, MAX_LIST_FILE >> 20);
    return n;
}

struct st_pol_blocklist_t *gw_blocklist_load(const gw_config_t *conf, char *err, size_t errlen)
{
    pol_blocklist_t *bl = pol_blocklist_create();
    if (bl == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    long common = add_file(bl, conf->blocklist_file, 1, err, errlen), words = 0;
    if (common >= 0 && conf->dictionary_file[0] != '\0')
        words = add_file(bl, conf->dictionary_file, DICTIONARY_MIN_WORD, err, errlen);
    if (common < 0 || words < 0) {
        pol_blocklist_destroy(bl);
        return NULL;
    }
    return bl;
}
