/*
 * The `saml.sp:` section: portier as a service provider (broker) to enterprise IdPs. Each connection's metadata is
 * read and parsed here, at configuration time, so `portier check-config` refuses an IdP without a usable entity
 * id, SSO endpoint (Redirect or POST, and the one request_binding asks for) or signing certificate. The certificates
 * found here (and later those of refreshed metadata, sp_refresh.c) are the only keys the ACS will ever verify a
 * response with (KeyInfo is never trusted).
 *
 *   saml:
 *     sp:
 *       entity_id: URI              default <public_url>/saml/sp/metadata
 *       key: FILE                   default saml.idp.key
 *       certificate: FILE           default saml.idp.certificate
 *       metadata_refresh_minimum: DURATION   default 60s; lower only in tests
 *       connections:
 *         - { name, label, metadata, domains, match, jit, sso_only, idp_initiated, name_id_format, request_binding,
 *             attributes: { username, email, display_name, groups }, group_map: { IdP-group: portier-group },
 *             mfa_contexts: [ AuthnContextClassRef... ],
 *             metadata_url, metadata_signing_certificate, metadata_ca, metadata_refresh }
 *
 * With metadata_url, `metadata` is the backing file: sp_refresh.c fetches the URL every metadata_refresh and writes
 * the last good (signed, checked) copy there, so a restart works without the network.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <yaml.h>

#include "gateway/gateway.h"
#include "saml/internal.h"

#define MAX_NAME                  64
#define MAX_LIST                  64
#define MAX_VALUE                 512
#define MAX_URL                   1024
#define NS_ASSERTION_ATTR_DEFAULT "urn:oid:"

static const char *const attr_keys[] = {"username", "email", "display_name", "groups"};
static const char *const attr_defaults[] = {NULL, "email", "displayName", "groups"};

static size_t line_of(const yaml_node_t *n)
{
    return n->start_mark.line + 1;
}

static int plain_value(const char *s, size_t max)
{
    if (*s == '\0' || strlen(s) > max)
        return 0;
    for (; *s != '\0'; ++s)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || strchr("\"<>&\\", *s) != NULL)
            return 0;
    return 1;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; l != NULL && i != n; ++i)
        free(l[i]);
    free(l);
}

/* ---- the IdP's metadata ---- */

static char *read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    char *buf = NULL;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        snprintf(err, errlen, "%s: not a readable regular file of at most %zu bytes", path, max);
        goto exit;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL || read(fd, buf, (size_t)st.st_size) != st.st_size) {
        snprintf(err, errlen, "%s: cannot read", path);
        free(buf);
        buf = NULL;
        goto exit;
    }
    buf[st.st_size] = '\0';
    *len = (size_t)st.st_size;
exit:
    if (fd >= 0)
        close(fd);
    return buf;
}

/* The `metadata` file (with metadata_url: the backing file, last good fetched copy) through the same gatekeeper as a
 * fetched document: signed by metadata_signing_certificate when one is pinned. A past validUntil is no error here
 * (the network may be down for long): the connection then refuses sign-ins until a refresh brings fresh metadata. */
static void load_metadata(gw_config_ctx_t *ctx, saml_conn_config_t *c, size_t line, const char *key)
{
    char err[512];
    size_t len = 0;
    char *xml = read_file(c->metadata_file, SAML_MAX_METADATA, &len, err, sizeof(err));
    saml_idp_md_t *md = NULL;
    saml_idp_md_check_t chk = {.signer_pem = c->metadata_signer_pem, .now = time(NULL), .allow_expired = 1};
    const char *why = NULL;
    if (c->metadata_signer_pem != NULL && saml_lasso_init() != 0) /* xmlsec, once (main thread, before workers) */
        why = "internal";
    else if (xml != NULL)
        why = saml_idp_md_parse(xml, len, &chk, &md);
    if (xml == NULL)
        gw_config_error(ctx, line, key, "%s: %s", c->metadata_file, err);
    else if (why != NULL)
        gw_config_error(ctx, line, key, "%s: %s", c->metadata_file, saml_idp_md_reason_text(why));
    else if ((c->entity_id = strdup(md->entity_id)) == NULL || (c->md = saml_md_slot_create(md)) == NULL)
        saml_idp_md_release(md);
    else if (saml_idp_md_expired(md, chk.now))
        gw_log("warning", "saml", "sp.metadata_expired", "idp", c->name != NULL ? c->name : "", "file",
               c->metadata_file, NULL);
    free(xml);
}

/* ---- one connection ---- */

static char **string_list(gw_config_ctx_t *ctx, yaml_node_t *v, const char *key, size_t *count, int lower)
{
    if (v->type != YAML_SEQUENCE_NODE) {
        gw_config_error(ctx, line_of(v), key, "expected a list");
        return NULL;
    }
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n > MAX_LIST) {
        gw_config_error(ctx, line_of(v), key, "too many entries (at most %d)", MAX_LIST);
        return NULL;
    }
    char **out = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; out != NULL && i != n; ++i) {
        yaml_node_t *e = gw_config_node(ctx, v->data.sequence.items.start[i]);
        const char *s = gw_config_scalar(ctx, e, key);
        if (s == NULL)
            continue;
        if (!plain_value(s, MAX_VALUE)) {
            gw_config_error(ctx, line_of(e), key, "\"%.80s\" is empty, too long or has quotes, <, >, &, \\", s);
            continue;
        }
        char *d = strdup(s);
        for (char *p = d; lower && p != NULL && *p != '\0'; ++p)
            *p = (char)tolower((unsigned char)*p);
        out[(*count)++] = d;
    }
    return out;
}

static void bool_value(gw_config_ctx_t *ctx, const char *v, int *out, size_t line, const char *key)
{
    int b = gw_config_parse_bool(v);
    if (b < 0)
        gw_config_error(ctx, line, key, "\"%.80s\" is not a boolean (true, false, yes, no)", v);
    else
        *out = b;
}

static void attributes(gw_config_ctx_t *ctx, saml_conn_config_t *c, yaml_node_t *v, const char *key)
{
    char k2[200];
    if (v->type != YAML_MAPPING_NODE) {
        gw_config_error(ctx, line_of(v), key, "expected a mapping of username, email, display_name, groups");
        return;
    }
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; ++p) {
        yaml_node_t *kn = gw_config_node(ctx, p->key), *vn = gw_config_node(ctx, p->value);
        const char *k = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "";
        size_t i;
        for (i = 0; i != SAML_CA_UNUSED && strcmp(attr_keys[i], k) != 0; ++i)
            ;
        snprintf(k2, sizeof(k2), "%s.%.80s", key, k);
        const char *name = gw_config_scalar(ctx, vn, k2);
        if (i == SAML_CA_UNUSED)
            gw_config_error(ctx, line_of(kn), k2, "unknown key (username, email, display_name, groups)");
        else if (name != NULL && !plain_value(name, MAX_VALUE))
            gw_config_error(ctx, line_of(vn), k2, "must be 1-%d characters without quotes, <, >, &, \\", MAX_VALUE);
        else if (name != NULL) {
            free(c->attr[i]);
            c->attr[i] = strdup(name);
        }
    }
}

static void group_map(gw_config_ctx_t *ctx, saml_conn_config_t *c, yaml_node_t *v, const char *key)
{
    if (v->type != YAML_MAPPING_NODE) {
        gw_config_error(ctx, line_of(v), key, "expected a mapping of IdP group: portier group");
        return;
    }
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if (n > MAX_LIST) {
        gw_config_error(ctx, line_of(v), key, "too many entries (at most %d)", MAX_LIST);
        return;
    }
    c->group_from = calloc(n + 1, sizeof(char *));
    c->group_to = calloc(n + 1, sizeof(char *));
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; c->group_to != NULL && p < v->data.mapping.pairs.top; ++p) {
        yaml_node_t *kn = gw_config_node(ctx, p->key), *vn = gw_config_node(ctx, p->value);
        const char *from = gw_config_scalar(ctx, kn, key), *to = gw_config_scalar(ctx, vn, key);
        if (from == NULL || to == NULL)
            continue;
        if (!plain_value(from, MAX_VALUE) || !gw_config_valid_group(to)) {
            gw_config_error(ctx, line_of(kn), key, "\"%.80s\": \"%.80s\" is not IdP group: portier group", from, to);
            continue;
        }
        c->group_from[c->num_group_map] = strdup(from);
        c->group_to[c->num_group_map++] = strdup(to);
    }
}

static void conn_value(gw_config_ctx_t *ctx, saml_conn_config_t *c, const char *k, yaml_node_t *vn, const char *key)
{
    size_t line = line_of(vn);
    if (strcmp(k, "domains") == 0) {
        c->domains = string_list(ctx, vn, key, &c->num_domains, 1);
        return;
    }
    if (strcmp(k, "mfa_contexts") == 0) {
        c->mfa_contexts = string_list(ctx, vn, key, &c->num_mfa_contexts, 0);
        return;
    }
    if (strcmp(k, "attributes") == 0) {
        attributes(ctx, c, vn, key);
        return;
    }
    if (strcmp(k, "group_map") == 0) {
        group_map(ctx, c, vn, key);
        return;
    }
    const char *v = gw_config_scalar(ctx, vn, key);
    if (v == NULL)
        return;
    if (strcmp(k, "name") == 0) {
        if (!plain_value(v, MAX_NAME) ||
            strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(v))
            gw_config_error(ctx, line, key, "must be 1-%d letters, digits, '-', '_' or '.'", MAX_NAME);
        else
            c->name = strdup(v);
    } else if (strcmp(k, "label") == 0) {
        if (!plain_value(v, MAX_NAME))
            gw_config_error(ctx, line, key, "must be 1-%d characters without quotes, <, >, &, \\", MAX_NAME);
        else
            c->label = strdup(v);
    } else if (strcmp(k, "metadata") == 0) {
        if ((c->metadata_file = gw_config_file(ctx, line, key, v, 0)) != NULL) {
            c->metadata_line = line; /* read once all keys are known (the pinned certificate may come later) */
            snprintf(c->metadata_key, sizeof(c->metadata_key), "%s", key);
        }
    } else if (strcmp(k, "metadata_url") == 0) {
        if (strncmp(v, "https://", 8) != 0 || strlen(v) <= 8 || !plain_value(v, MAX_URL) || strpbrk(v, " '") != NULL)
            gw_config_error(ctx, line, key, "must be an https:// URL of at most %d characters", MAX_URL);
        else
            c->metadata_url = strdup(v);
    } else if (strcmp(k, "metadata_ca") == 0) {
        c->metadata_ca = gw_config_file(ctx, line, key, v, 0);
    } else if (strcmp(k, "metadata_signing_certificate") == 0) {
        char *path = gw_config_file(ctx, line, key, v, 0), err[512] = "";
        if (path != NULL && (c->metadata_signer_pem = saml_md_signer_load(path, err, sizeof(err))) == NULL)
            gw_config_error(ctx, line, key, "%s", err);
        free(path);
    } else if (strcmp(k, "metadata_refresh") == 0) {
        uint64_t secs;
        if (gw_parse_duration(v, &secs) != 0 || secs == 0 || secs > SAML_MD_REFRESH_MAXIMUM)
            gw_config_error(ctx, line, key, "\"%.80s\" is not a duration of at most 7d (\"90s\", \"30m\", \"1h\")", v);
        else {
            c->metadata_refresh = (unsigned)secs;
            c->metadata_refresh_line = line;
        }
    } else if (strcmp(k, "match") == 0) {
        if (strcmp(v, "email") == 0 || strcmp(v, "username") == 0)
            c->match = strcmp(v, "email") == 0 ? SAML_MATCH_EMAIL : SAML_MATCH_USERNAME;
        else
            gw_config_error(ctx, line, key, "\"%.80s\" is not one of email, username", v);
    } else if (strcmp(k, "name_id_format") == 0) {
        if (strcmp(v, "persistent") == 0)
            c->nameid = SAML_NAMEID_PERSISTENT;
        else if (strcmp(v, "email") == 0)
            c->nameid = SAML_NAMEID_EMAIL;
        else if (strcmp(v, "unspecified") == 0)
            c->nameid = SAML_NAMEID_UNSPECIFIED;
        else
            gw_config_error(ctx, line, key, "\"%.80s\" is not one of persistent, email, unspecified", v);
    } else if (strcmp(k, "request_binding") == 0) {
        if (strcmp(v, "redirect") == 0)
            c->request_binding = SAML_REQUEST_BINDING_REDIRECT;
        else if (strcmp(v, "post") == 0)
            c->request_binding = SAML_REQUEST_BINDING_POST;
        else
            gw_config_error(ctx, line, key, "\"%.80s\" is not one of redirect, post", v);
    } else if (strcmp(k, "jit") == 0) {
        bool_value(ctx, v, &c->jit, line, key);
    } else if (strcmp(k, "sso_only") == 0) {
        bool_value(ctx, v, &c->sso_only, line, key);
    } else if (strcmp(k, "idp_initiated") == 0) {
        bool_value(ctx, v, &c->idp_initiated, line, key);
    } else {
        gw_config_error(ctx, line_of(vn), key, "unknown key");
    }
}

static void load_conn(gw_config_ctx_t *ctx, saml_conn_config_t *c, size_t i, yaml_node_t *n)
{
    char key[160], where[64];
    snprintf(where, sizeof(where), "saml.sp.connections[%zu]", i);
    c->line = line_of(n);
    c->nameid = SAML_NAMEID_PERSISTENT;
    for (size_t a = 0; a != SAML_CA_UNUSED; ++a)
        c->attr[a] = attr_defaults[a] != NULL ? strdup(attr_defaults[a]) : NULL;
    if (n->type != YAML_MAPPING_NODE) {
        gw_config_error(ctx, line_of(n), where, "expected a mapping with at least name and metadata");
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; ++p) {
        yaml_node_t *kn = gw_config_node(ctx, p->key), *vn = gw_config_node(ctx, p->value);
        const char *k = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "";
        snprintf(key, sizeof(key), "%s.%.80s", where, k);
        conn_value(ctx, c, k, vn, key);
    }
    if (c->metadata_file != NULL)
        load_metadata(ctx, c, c->metadata_line, c->metadata_key);
    if (c->name == NULL || c->metadata_file == NULL)
        gw_config_error(ctx, c->line, where, "name and metadata are required");
    if (c->metadata_url != NULL && c->metadata_signer_pem == NULL)
        gw_config_error(ctx, c->line, where,
                        "metadata_url needs metadata_signing_certificate (fetched metadata must "
                        "be signed)");
    if (c->metadata_url == NULL &&
        (c->metadata_signer_pem != NULL || c->metadata_ca != NULL || c->metadata_refresh_line != 0))
        gw_config_error(ctx, c->line, where,
                        "metadata_signing_certificate, metadata_ca and metadata_refresh go with metadata_url");
    if (c->metadata_refresh == 0)
        c->metadata_refresh = SAML_MD_REFRESH_DEFAULT;
    if (c->sso_only && c->num_domains == 0)
        gw_config_error(ctx, c->line, where, "sso_only needs domains");
    saml_idp_md_t *md = c->md != NULL ? saml_conn_md(c) : NULL;
    int post;
    if (md != NULL && saml_idp_md_endpoint(md, c->request_binding, 1, &post) == NULL)
        gw_config_error(ctx, c->line, where, "request_binding %s: %s offers no SingleSignOnService for it",
                        post ? "post" : "redirect", c->metadata_file);
    saml_idp_md_release(md);
}

static void load_conns(gw_config_ctx_t *ctx, saml_broker_config_t *b, yaml_node_t *n)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        gw_config_error(ctx, line_of(n), "saml.sp.connections", "expected a list of connections");
        return;
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > SAML_MAX_CONNECTIONS) {
        gw_config_error(ctx, line_of(n), "saml.sp.connections", "too many (at most %d)", SAML_MAX_CONNECTIONS);
        return;
    }
    if ((b->conns = calloc(count + 1, sizeof(*b->conns))) == NULL)
        return;
    for (size_t i = 0; i != count; ++i) {
        load_conn(ctx, &b->conns[i], i, gw_config_node(ctx, n->data.sequence.items.start[i]));
        b->num_conns = i + 1;
    }
}

static void cross_check(gw_config_ctx_t *ctx, saml_broker_config_t *b)
{
    for (size_t i = 0; i != b->num_conns; ++i) {
        saml_conn_config_t *c = &b->conns[i];
        char where[64];
        snprintf(where, sizeof(where), "saml.sp.connections[%zu]", i);
        if (c->label == NULL && c->name != NULL)
            c->label = strdup(c->name);
        if (c->metadata_refresh_line != 0 && c->metadata_refresh < b->metadata_refresh_minimum) {
            char key[96];
            snprintf(key, sizeof(key), "%s.metadata_refresh", where);
            gw_config_error(ctx, c->metadata_refresh_line, key, "at least %us (saml.sp.metadata_refresh_minimum)",
                            b->metadata_refresh_minimum);
        }
        for (size_t j = 0; j != i; ++j) {
            const saml_conn_config_t *o = &b->conns[j];
            if (c->name != NULL && o->name != NULL && strcmp(c->name, o->name) == 0)
                gw_config_error(ctx, c->line, where, "name \"%s\" is already used (line %zu)", c->name, o->line);
            if (c->entity_id != NULL && o->entity_id != NULL && strcmp(c->entity_id, o->entity_id) == 0)
                gw_config_error(ctx, c->line, where, "IdP %.200s is already configured (line %zu)", c->entity_id,
                                o->line);
            for (size_t d = 0; d != c->num_domains; ++d)
                for (size_t e = 0; e != o->num_domains; ++e)
                    if (strcmp(c->domains[d], o->domains[e]) == 0)
                        gw_config_error(ctx, c->line, where, "domain %s already belongs to line %zu", c->domains[d],
                                        o->line);
        }
    }
}

void saml_broker_config_load(gw_config_ctx_t *ctx, saml_broker_config_t *b, struct yaml_node_s *node)
{
    b->enabled = 1;
    b->metadata_refresh_minimum = SAML_MD_REFRESH_MINIMUM;
    if (node->type != YAML_MAPPING_NODE) {
        gw_config_error(ctx, line_of(node), "saml.sp", "expected a mapping of keys");
        return;
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; ++p) {
        yaml_node_t *kn = gw_config_node(ctx, p->key), *vn = gw_config_node(ctx, p->value);
        const char *k = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "";
        char key[128];
        snprintf(key, sizeof(key), "saml.sp.%.80s", k);
        if (strcmp(k, "connections") == 0) {
            load_conns(ctx, b, vn);
            continue;
        }
        const char *v = gw_config_scalar(ctx, vn, key);
        if (v == NULL)
            continue;
        if (strcmp(k, "entity_id") == 0) {
            if (!plain_value(v, 1024) || strpbrk(v, " '") != NULL)
                gw_config_error(ctx, line_of(vn), key, "must be a URI without blanks, quotes, <, > or &");
            else
                b->entity_id = strdup(v);
        } else if (strcmp(k, "key") == 0) {
            b->key_file = gw_config_file(ctx, line_of(vn), key, v, 1);
        } else if (strcmp(k, "certificate") == 0) {
            b->cert_file = gw_config_file(ctx, line_of(vn), key, v, 0);
        } else if (strcmp(k, "metadata_refresh_minimum") == 0) {
            uint64_t secs;
            if (gw_parse_duration(v, &secs) != 0 || secs == 0 || secs > SAML_MD_REFRESH_MINIMUM)
                gw_config_error(ctx, line_of(vn), key, "\"%.80s\" is not a duration of 1 to %u seconds", v,
                                SAML_MD_REFRESH_MINIMUM);
            else
                b->metadata_refresh_minimum = (unsigned)secs;
        } else {
            gw_config_error(ctx, line_of(kn), key, "unknown key");
        }
    }
    if ((b->key_file == NULL) != (b->cert_file == NULL))
        gw_config_error(ctx, line_of(node), "saml.sp", "key and certificate go together");
    cross_check(ctx, b);
}

void saml_broker_config_dispose(saml_broker_config_t *b)
{
    for (size_t i = 0; i != b->num_conns; ++i) {
        saml_conn_config_t *c = &b->conns[i];
        free(c->name);
        free(c->label);
        free(c->metadata_file);
        free(c->entity_id);
        saml_md_slot_destroy(c->md);
        free(c->metadata_url);
        free(c->metadata_ca);
        free(c->metadata_signer_pem);
        free_list(c->domains, c->num_domains);
        free_list(c->group_from, c->num_group_map);
        free_list(c->group_to, c->num_group_map);
        free_list(c->mfa_contexts, c->num_mfa_contexts);
        for (size_t a = 0; a != SAML_CA_UNUSED; ++a)
            free(c->attr[a]);
    }
    free(b->conns);
    free(b->entity_id);
    free(b->key_file);
    free(b->cert_file);
    memset(b, 0, sizeof(*b));
}

const saml_conn_config_t *saml_conn_for_email(const saml_broker_config_t *b, const char *email)
{
    const char *at = email != NULL ? strrchr(email, '@') : NULL;
    if (at == NULL || at[1] == '\0')
        return NULL;
    for (size_t i = 0; i != b->num_conns; ++i)
        for (size_t d = 0; d != b->conns[i].num_domains; ++d)
            if (strcasecmp(b->conns[i].domains[d], at + 1) == 0)
                return &b->conns[i];
    return NULL;
}

int saml_sso_only(const saml_broker_config_t *b, const char *login)
{
    const saml_conn_config_t *c = saml_conn_for_email(b, login);
    return c != NULL && c->sso_only;
}
