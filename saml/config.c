/*
 * The `saml:` section of the configuration. gateway/config.c hands us the section's node; keys are checked the
 * same way as everywhere else (unknown keys are errors, messages read FILE:LINE: KEY: message), and every SP's
 * metadata is read and parsed here, so `portier check-config` already refuses a broken or ambiguous SP.
 *
 *   saml:
 *     idp: { entity_id, key, certificate, persistent_id_key, assertion_lifetime, max_message }
 *     sp: { entity_id, key, certificate, connections }   portier as SP to enterprise IdPs: see sp_config.c
 *     sp_dir: DIR                       every *.xml file there is an SP with the default settings
 *     service_providers:
 *       - { metadata, name, groups, name_id_format, attributes, attribute_names, sign, encrypt_assertion,
 *           require_signed_requests, idp_initiated }
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "saml/internal.h"

#define MAX_GROUPS     64
#define MAX_ENTITY_ID  1024
#define MIN_MESSAGE    4096
#define MAX_MESSAGE    (1024 * 1024) /* security.md: POST body at most 1 MiB */
#define MAX_NAME       128
#define MAX_ATTR_NAME  256
#define MAX_SP_DIR_XML SAML_MAX_SPS

typedef struct st_named_t {
    const char *name;
    int value;
} named_t;

static const named_t nameid_names[] = {{"persistent", SAML_NAMEID_PERSISTENT},
                                       {"email", SAML_NAMEID_EMAIL},
                                       {"unspecified", SAML_NAMEID_UNSPECIFIED},
                                       {"transient", SAML_NAMEID_TRANSIENT},
                                       {NULL, 0}};
static const named_t sign_names[] = {
    {"both", SAML_SIGN_BOTH}, {"assertion", SAML_SIGN_ASSERTION}, {"response", SAML_SIGN_RESPONSE}, {NULL, 0}};
static const named_t attr_names[] = {{"uid", SAML_ATTR_UID},
                                     {"mail", SAML_ATTR_MAIL},
                                     {"displayName", SAML_ATTR_DISPLAY_NAME},
                                     {"givenName", SAML_ATTR_GIVEN_NAME},
                                     {"sn", SAML_ATTR_SN},
                                     {"groups", SAML_ATTR_GROUPS},
                                     {NULL, 0}};

static size_t line_of(const yaml_node_t *n)
{
    return n->start_mark.line + 1;
}

static int has_control(const char *s)
{
    for (; *s != '\0'; ++s)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static void replace_string(char **field, const char *v)
{
    free(*field);
    *field = strdup(v);
}

static int lookup(const named_t *t, const char *s)
{
    for (; t->name != NULL; ++t)
        if (strcmp(t->name, s) == 0)
            return t->value;
    return -1;
}

static void free_list(char **l)
{
    for (char **p = l; p != NULL && *p != NULL; ++p)
        free(*p);
    free(l);
}

/* ---- metadata files ---- */

static char *read_small_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    char *buf = NULL;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto exit;
    }
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        snprintf(err, errlen, "%s is not a regular file of at most %zu bytes", path, max);
        goto exit;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto exit;
    }
    ssize_t n = read(fd, buf, (size_t)st.st_size);
    if (n != st.st_size) {
        snprintf(err, errlen, "%s: short read", path);
        free(buf);
        buf = NULL;
        goto exit;
    }
    buf[n] = '\0';
    *len = (size_t)n;
exit:
    if (fd >= 0)
        close(fd);
    return buf;
}

static int load_metadata(gw_config_ctx_t *ctx, saml_sp_config_t *sp, size_t line, const char *key)
{
    char err[512];
    size_t len;
    char *xml = read_small_file(sp->metadata_file, SAML_MAX_METADATA, &len, err, sizeof(err));
    if (xml == NULL) {
        gw_config_error(ctx, line, key, "%s", err);
        return -1;
    }
    int r = saml_sp_metadata_parse(xml, len, &sp->md, err, sizeof(err));
    free(xml);
    if (r != 0)
        gw_config_error(ctx, line, key, "%s: %s", sp->metadata_file, err);
    return r;
}

/* ---- one service provider ---- */

static void sp_defaults(saml_sp_config_t *sp)
{
    sp->nameid = SAML_NAMEID_PERSISTENT;
    sp->attributes = SAML_ATTR_ALL;
    sp->sign = SAML_SIGN_BOTH;
}

static char **group_list(gw_config_ctx_t *ctx, yaml_node_t *v, const char *key, size_t *count)
{
    if (v->type != YAML_SEQUENCE_NODE) {
        gw_config_error(ctx, line_of(v), key, "expected a list of group names");
        return NULL;
    }
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n > MAX_GROUPS) {
        gw_config_error(ctx, line_of(v), key, "too many groups (at most %d)", MAX_GROUPS);
        return NULL;
    }
    char **groups = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; groups != NULL && i != n; ++i) {
        yaml_node_t *g = gw_config_node(ctx, v->data.sequence.items.start[i]);
        const char *s = gw_config_scalar(ctx, g, key);
        if (s == NULL)
            continue;
        if (!gw_config_valid_group(s))
            gw_config_error(ctx, line_of(g), key, "\"%.80s\" is not a group name", s);
        else
            groups[(*count)++] = strdup(s);
    }
    return groups;
}

static unsigned attribute_set(gw_config_ctx_t *ctx, yaml_node_t *v, const char *key)
{
    unsigned set = 0;
    if (v->type != YAML_SEQUENCE_NODE) {
        gw_config_error(ctx, line_of(v), key, "expected a list of attribute names");
        return SAML_ATTR_ALL;
    }
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; ++it) {
        yaml_node_t *a = gw_config_node(ctx, *it);
        const char *s = gw_config_scalar(ctx, a, key);
        int bit = s != NULL ? lookup(attr_names, s) : -1;
        if (s != NULL && bit < 0)
            gw_config_error(ctx, line_of(a), key,
                            "\"%.80s\" is not one of uid, mail, displayName, givenName, sn, groups", s);
        else if (bit > 0)
            set |= (unsigned)bit;
    }
    return set;
}

/* The value of `v` in table t, or `keep` after reporting that it is none of `allowed`. */
static int sp_enum(gw_config_ctx_t *ctx, const named_t *t, const char *v, int keep, size_t line, const char *key,
                   const char *allowed)
{
    int x = lookup(t, v);
    if (x >= 0)
        return x;
    gw_config_error(ctx, line, key, "\"%.80s\" is not one of %s", v, allowed);
    return keep;
}

/* attribute_map: { mail: email, groups: "http://schemas.xmlsoap.org/claims/Group" }: the Name to send for a
 * released attribute, for SPs that expect other names than ours. */
static void attribute_map(gw_config_ctx_t *ctx, saml_sp_config_t *sp, yaml_node_t *v, const char *key)
{
    char k2[200];
    if (v->type != YAML_MAPPING_NODE) {
        gw_config_error(ctx, line_of(v), key, "expected a mapping of attribute: name");
        return;
    }
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; ++p) {
        yaml_node_t *kn = gw_config_node(ctx, p->key), *vn = gw_config_node(ctx, p->value);
        const char *attr = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "";
        int bit = lookup(attr_names, attr);
        snprintf(k2, sizeof(k2), "%s.%.80s", key, attr);
        const char *name = gw_config_scalar(ctx, vn, k2);
        if (bit < 0) {
            gw_config_error(ctx, line_of(kn), k2,
                            "\"%.80s\" is not one of uid, mail, displayName, givenName, sn, groups", attr);
        } else if (name != NULL && (*name == '\0' || strlen(name) > MAX_ATTR_NAME || has_control(name) ||
                                    strpbrk(name, "\"<>&") != NULL)) {
            gw_config_error(ctx, line_of(vn), k2,
                            "must be 1-%d characters without quotes, <, >, & or control characters", MAX_ATTR_NAME);
        } else if (name != NULL) {
            size_t i = 0;
            while ((1u << i) != (unsigned)bit)
                ++i;
            replace_string(&sp->renamed[i], name);
        }
    }
}

static void sp_bool(gw_config_ctx_t *ctx, const char *v, int *out, size_t line, const char *key)
{
    int b = gw_config_parse_bool(v);
    if (b < 0)
        gw_config_error(ctx, line, key, "\"%.80s\" is not a boolean (true, false, yes, no)", v);
    else
        *out = b;
}

static void sp_value(gw_config_ctx_t *ctx, saml_sp_config_t *sp, const char *k, yaml_node_t *vn, const char *key)
{
    size_t line = line_of(vn);
    if (strcmp(k, "groups") == 0) {
        free_list(sp->groups);
        sp->num_groups = 0;
        sp->groups = group_list(ctx, vn, key, &sp->num_groups);
        return;
    }
    if (strcmp(k, "attributes") == 0) {
        sp->attributes = attribute_set(ctx, vn, key);
        return;
    }
    if (strcmp(k, "attribute_map") == 0) {
        attribute_map(ctx, sp, vn, key);
        return;
    }
    const char *v = gw_config_scalar(ctx, vn, key);
    if (v == NULL)
        return;
    if (strcmp(k, "metadata") == 0) {
        free(sp->metadata_file);
        if ((sp->metadata_file = gw_config_file(ctx, line, key, v, 0)) != NULL)
            load_metadata(ctx, sp, line, key);
    } else if (strcmp(k, "name") == 0) {
        if (*v == '\0' || strlen(v) > MAX_NAME || strpbrk(v, "\"\\<>&") != NULL || has_control(v)) {
            gw_config_error(ctx, line, key,
                            "must be 1-%d characters without quotes, backslashes, <, >, & or control characters",
                            MAX_NAME);
        } else {
            free(sp->name);
            sp->name = strdup(v);
        }
    } else if (strcmp(k, "name_id_format") == 0) {
        sp->nameid = (saml_nameid_t)sp_enum(ctx, nameid_names, v, (int)sp->nameid, line, key,
                                            "persistent, email, unspecified, transient");
    } else if (strcmp(k, "attribute_names") == 0) {
        if (strcmp(v, "basic") == 0 || strcmp(v, "uri") == 0)
            sp->uri_names = strcmp(v, "uri") == 0;
        else
            gw_config_error(ctx, line, key, "\"%.80s\" is not one of basic, uri", v);
    } else if (strcmp(k, "sign") == 0) {
        sp->sign = (saml_sign_t)sp_enum(ctx, sign_names, v, (int)sp->sign, line, key, "both, assertion, response");
    } else if (strcmp(k, "encrypt_assertion") == 0) {
        sp_bool(ctx, v, &sp->encrypt, line, key);
    } else if (strcmp(k, "require_signed_requests") == 0) {
        sp_bool(ctx, v, &sp->require_signed, line, key);
    } else if (strcmp(k, "idp_initiated") == 0) {
        sp_bool(ctx, v, &sp->idp_initiated, line, key);
    } else if (strcmp(k, "mfa") == 0) {
        sp_bool(ctx, v, &sp->require_mfa, line, key);
    }
}

static void load_sp(gw_config_ctx_t *ctx, saml_sp_config_t *sp, size_t i, yaml_node_t *n)
{
    static const char *const sp_keys[] = {"metadata",
                                          "name",
                                          "groups",
                                          "name_id_format",
                                          "attributes",
                                          "attribute_names",
                                          "attribute_map",
                                          "sign",
                                          "encrypt_assertion",
                                          "require_signed_requests",
                                          "idp_initiated",
                                          "mfa"};
    char key[160], where[64];
    snprintf(where, sizeof(where), "saml.service_providers[%zu]", i);
    sp_defaults(sp);
    sp->line = line_of(n);
    if (n->type != YAML_MAPPING_NODE) {
        gw_config_error(ctx, line_of(n), where, "expected a mapping with at least `metadata`");
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; ++p) {
        yaml_node_t *kn = gw_config_node(ctx, p->key), *vn = gw_config_node(ctx, p->value);
        const char *k = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "";
        size_t ki;
        for (ki = 0; ki != sizeof(sp_keys) / sizeof(sp_keys[0]) && strcmp(sp_keys[ki], k) != 0; ++ki)
            ;
        snprintf(key, sizeof(key), "%s.%.80s", where, k);
        if (ki == sizeof(sp_keys) / sizeof(sp_keys[0]))
            gw_config_error(ctx, line_of(kn), key, "unknown key");
        else
            sp_value(ctx, sp, k, vn, key);
    }
    if (sp->metadata_file == NULL)
        gw_config_error(ctx, sp->line, where, "metadata is required");
}

/* ---- the section ---- */

static void idp_value(gw_config_ctx_t *ctx, saml_config_t *c, const char *k, yaml_node_t *vn, const char *key)
{
    const char *v = gw_config_scalar(ctx, vn, key);
    size_t line = line_of(vn);
    uint64_t n;
    if (v == NULL)
        return;
    if (strcmp(k, "entity_id") == 0) {
        if (*v == '\0' || strlen(v) > MAX_ENTITY_ID || strpbrk(v, "\"<>&' \t\r\n") != NULL)
            gw_config_error(ctx, line, key, "must be a URI of 1-%d characters (no blanks, quotes, <, > or &)",
                            MAX_ENTITY_ID);
        else
            replace_string(&c->entity_id, v);
    } else if (strcmp(k, "key") == 0) {
        free(c->key_file);
        c->key_file = gw_config_file(ctx, line, key, v, 1);
    } else if (strcmp(k, "certificate") == 0) {
        free(c->cert_file);
        c->cert_file = gw_config_file(ctx, line, key, v, 0);
    } else if (strcmp(k, "persistent_id_key") == 0) {
        free(c->nameid_key_file);
        c->nameid_key_file = gw_config_resolve(ctx, v);
    } else if (strcmp(k, "sign_metadata") == 0) {
        sp_bool(ctx, v, &c->sign_metadata, line, key);
    } else if (strcmp(k, "keyinfo_certificate") == 0) {
        sp_bool(ctx, v, &c->keyinfo_certificate, line, key);
    } else if (strcmp(k, "assertion_lifetime") == 0) {
        if (gw_parse_duration(v, &n) != 0 || n < 1 || n > SAML_MAX_LIFETIME)
            gw_config_error(ctx, line, key, "\"%.80s\" must be a duration of 1..%d seconds", v, SAML_MAX_LIFETIME);
        else
            c->assertion_lifetime = (unsigned)n;
    } else if (strcmp(k, "max_message") == 0) {
        if (gw_config_parse_size(v, &n) != 0 || n < MIN_MESSAGE || n > MAX_MESSAGE)
            gw_config_error(ctx, line, key, "\"%.80s\" must be a size of %d..%d bytes", v, MIN_MESSAGE, MAX_MESSAGE);
        else
            c->max_message = (size_t)n;
    } else {
        gw_config_error(ctx, line_of(vn), key, "unknown key");
    }
}

static void load_idp(gw_config_ctx_t *ctx, saml_config_t *c, yaml_node_t *n)
{
    char key[128];
    if (n->type != YAML_MAPPING_NODE) {
        gw_config_error(ctx, line_of(n), "saml.idp", "expected a mapping of keys");
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; ++p) {
        yaml_node_t *kn = gw_config_node(ctx, p->key), *vn = gw_config_node(ctx, p->value);
        const char *k = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "";
        snprintf(key, sizeof(key), "saml.idp.%.80s", k);
        idp_value(ctx, c, k, vn, key);
    }
}

static saml_sp_config_t *add_sp(saml_config_t *c)
{
    saml_sp_config_t *sps = realloc(c->sps, (c->num_sps + 1) * sizeof(*sps));
    if (sps == NULL)
        return NULL;
    c->sps = sps;
    memset(&sps[c->num_sps], 0, sizeof(*sps));
    return &sps[c->num_sps++];
}

static int is_null(const yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (*v == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0);
}

static void load_sp_list(gw_config_ctx_t *ctx, saml_config_t *c, yaml_node_t *n)
{
    if (is_null(n)) /* "service_providers:" with every entry commented out */
        return;
    if (n->type != YAML_SEQUENCE_NODE) {
        gw_config_error(ctx, line_of(n), "saml.service_providers", "expected a list of service providers");
        return;
    }
    size_t i = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; ++it, ++i) {
        saml_sp_config_t *sp = c->num_sps < SAML_MAX_SPS ? add_sp(c) : NULL;
        if (sp == NULL) {
            gw_config_error(ctx, line_of(n), "saml.service_providers", "too many (at most %d)", SAML_MAX_SPS);
            return;
        }
        load_sp(ctx, sp, i, gw_config_node(ctx, *it));
    }
}

static int is_xml_name(const char *name)
{
    size_t len = strlen(name);
    return len > 4 && name[0] != '.' && strcmp(name + len - 4, ".xml") == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.xml in sp_dir, in name order (so the result does not depend on the directory's order). */
static void load_sp_dir(gw_config_ctx_t *ctx, saml_config_t *c, size_t line)
{
    DIR *d = opendir(c->sp_dir);
    char *names[MAX_SP_DIR_XML];
    size_t count = 0;
    if (d == NULL) {
        gw_config_error(ctx, line, "saml.sp_dir", "%s: %s", c->sp_dir, strerror(errno));
        return;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (is_xml_name(e->d_name) && count != MAX_SP_DIR_XML)
            names[count++] = strdup(e->d_name);
    closedir(d);
    qsort(names, count, sizeof(names[0]), cmp_str);
    for (size_t i = 0; i != count; ++i) {
        saml_sp_config_t *sp = c->num_sps < SAML_MAX_SPS ? add_sp(c) : NULL;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", c->sp_dir, names[i]);
        if (sp != NULL) {
            sp_defaults(sp);
            sp->line = line;
            if ((sp->metadata_file = gw_config_file(ctx, line, "saml.sp_dir", path, 0)) != NULL)
                load_metadata(ctx, sp, line, "saml.sp_dir");
        }
        free(names[i]);
    }
}

static void cross_check(gw_config_ctx_t *ctx, saml_config_t *c, size_t line)
{
    if (c->key_file == NULL || c->cert_file == NULL)
        gw_config_error(ctx, line, "saml.idp", "key and certificate are required");
    for (size_t i = 0; i != c->num_sps; ++i) {
        saml_sp_config_t *sp = &c->sps[i];
        char where[64];
        snprintf(where, sizeof(where), "saml.service_providers[%zu]", i);
        if (sp->md.entity_id == NULL)
            continue;
        if (sp->name == NULL)
            sp->name = strdup(sp->md.entity_id);
        if (sp->md.wants_signed_requests)
            sp->require_signed = 1; /* the metadata's promise is binding, whatever the file says */
        if (sp->encrypt && !sp->md.has_encryption_key)
            gw_config_error(ctx, sp->line, where, "encrypt_assertion is set but the metadata has no encryption key");
        if (sp->groups == NULL)
            sp->groups = calloc(1, sizeof(char *));
        for (size_t j = 0; j != i; ++j)
            if (c->sps[j].md.entity_id != NULL && strcmp(c->sps[j].md.entity_id, sp->md.entity_id) == 0)
                gw_config_error(ctx, sp->line, where, "entity id %.200s is already configured (line %zu)",
                                sp->md.entity_id, c->sps[j].line);
            else if (c->sps[j].name != NULL && strcmp(c->sps[j].name, sp->name) == 0)
                gw_config_error(ctx, sp->line, where, "name \"%.80s\" is already used (line %zu)", sp->name,
                                c->sps[j].line);
    }
}

saml_config_t *saml_config_load(gw_config_ctx_t *ctx, struct yaml_node_s *node)
{
    saml_config_t *c = calloc(1, sizeof(*c));
    size_t sp_dir_line = 0;
    if (c == NULL)
        return NULL;
    c->assertion_lifetime = SAML_MAX_LIFETIME;
    c->keyinfo_certificate = 1;
    c->max_message = SAML_DEFAULT_MAX_MESSAGE;
    if (node->type != YAML_MAPPING_NODE) {
        gw_config_error(ctx, line_of(node), "saml", "expected a mapping of keys");
        return c;
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; ++p) {
        yaml_node_t *kn = gw_config_node(ctx, p->key), *vn = gw_config_node(ctx, p->value);
        const char *k = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "";
        if (strcmp(k, "idp") == 0) {
            load_idp(ctx, c, vn);
        } else if (strcmp(k, "service_providers") == 0) {
            load_sp_list(ctx, c, vn);
        } else if (strcmp(k, "sp") == 0) {
            saml_broker_config_load(ctx, &c->broker, vn);
        } else if (strcmp(k, "sp_dir") == 0) {
            const char *v = gw_config_scalar(ctx, vn, "saml.sp_dir");
            if (v != NULL && *v != '\0') {
                free(c->sp_dir);
                c->sp_dir = gw_config_resolve(ctx, v);
                sp_dir_line = line_of(vn);
            }
        } else {
            char key[128];
            snprintf(key, sizeof(key), "saml.%.80s", k);
            gw_config_error(ctx, line_of(kn), key, "unknown key");
        }
    }
    if (c->sp_dir != NULL)
        load_sp_dir(ctx, c, sp_dir_line);
    cross_check(ctx, c, line_of(node));
    return c;
}

void saml_config_free(saml_config_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i != c->num_sps; ++i) {
        saml_sp_config_t *sp = &c->sps[i];
        free(sp->name);
        free(sp->metadata_file);
        free_list(sp->groups);
        for (size_t a = 0; a != SAML_ATTR_COUNT; ++a)
            free(sp->renamed[a]);
        saml_sp_metadata_dispose(&sp->md);
    }
    free(c->sps);
    saml_broker_config_dispose(&c->broker);
    free(c->entity_id);
    free(c->key_file);
    free(c->cert_file);
    free(c->next_key_file);
    free(c->next_cert_file);
    free(c->nameid_key_file);
    free(c->sp_dir);
    free(c);
}
