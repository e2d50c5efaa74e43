/*
 * The IdP's set-up and its small endpoints: keys and the pairwise-identifier secret are loaded once at start,
 * our metadata is built once (and served at /saml/metadata), the per-worker lasso pool is prepared, and the
 * HTTP-POST binding's auto-submitting form is rendered here (with a CSP whose form-action names only the ACS).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lasso/lasso.h>
#include <sodium.h>

#include "gateway/gateway.h"
#include "saml/internal.h"

#define METADATA_PATH    "/saml/metadata"
#define POST_JS_PATH     "/saml/post.js"
#define POST_JS          "document.getElementById('saml-post').submit();\n"
#define ORIGIN_MAX       512
#define SAML_METRIC_LINE 128 /* an SP name in a label is cut here (names are at most 128 bytes) */

typedef struct st_idp_handler_t {
    h2o_handler_t super;
    saml_idp_t *idp;
} idp_handler_t;

void saml_time_format(time_t t, char *out, size_t outlen)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const saml_sp_config_t *saml_sp_by_entity(const saml_idp_t *idp, const char *entity_id, size_t *index)
{
    for (size_t i = 0; i != idp->sc->num_sps; ++i)
        if (idp->sc->sps[i].md.entity_id != NULL && strcmp(idp->sc->sps[i].md.entity_id, entity_id) == 0) {
            *index = i;
            return &idp->sc->sps[i];
        }
    return NULL;
}

const saml_sp_config_t *saml_sp_by_name(const saml_idp_t *idp, const char *name, size_t *index)
{
    for (size_t i = 0; i != idp->sc->num_sps; ++i)
        if (idp->sc->sps[i].name != NULL && strcmp(idp->sc->sps[i].name, name) == 0) {
            *index = i;
            return &idp->sc->sps[i];
        }
    return NULL;
}

static char *default_path(const char *configured, const char *dir, const char *file, const char *suffix)
{
    char *out;
    if (configured != NULL)
        return asprintf(&out, "%s%s", configured, suffix) < 0 ? NULL : out;
    return asprintf(&out, "%s/%s%s", dir, file, suffix) < 0 ? NULL : out;
}

saml_idp_t *saml_idp_create(const gw_config_t *conf, const char *state_dir, char *err, size_t errlen)
{
    const saml_config_t *sc = conf->saml;
    saml_idp_t *idp = calloc(1, sizeof(*idp));
    char *nameid_file = NULL, *next_key = NULL, *next_cert = NULL;
    if (idp == NULL || saml_lasso_init() != 0) {
        snprintf(err, errlen, "cannot initialise lasso");
        free(idp);
        return NULL;
    }
    idp->conf = conf;
    idp->sc = sc;
    if (saml_keypair_load(&idp->kp, sc->key_file, sc->cert_file, err, errlen) != 0)
        goto fail;
    /* the next certificate is published as soon as `portier keys saml-rotate` has made it */
    next_cert = default_path(sc->cert_file, NULL, NULL, ".next");
    if (next_cert != NULL && access(next_cert, F_OK) == 0) {
        if (saml_cert_load(&idp->next, next_cert, err, errlen) != 0)
            goto fail;
        idp->has_next = 1;
    }
    nameid_file = default_path(sc->nameid_key_file, state_dir, SAML_NAMEID_KEY_FILE, "");
    if (nameid_file == NULL || gw_key_file(nameid_file, idp->nameid_key, sizeof(idp->nameid_key), err, errlen) != 0)
        goto fail;
    if (sc->entity_id != NULL)
        idp->entity_id = strdup(sc->entity_id);
    else if (asprintf(&idp->entity_id, "%s" METADATA_PATH, conf->public_url) < 0)
        idp->entity_id = NULL;
    idp->metadata = saml_idp_metadata_build(idp->entity_id, conf->public_url, idp->kp.cert_b64,
                                            idp->has_next ? idp->next.cert_b64 : NULL);
    if (idp->metadata != NULL && sc->sign_metadata &&
        (idp->served_metadata = saml_metadata_sign(idp->metadata, sc->key_file, sc->cert_file)) == NULL) {
        snprintf(err, errlen, "cannot sign the metadata");
        goto fail;
    }
    idp->peers = calloc(sc->num_sps + 1, sizeof(*idp->peers));
    idp->stats = calloc(sc->num_sps + 1, sizeof(*idp->stats));
    if (idp->entity_id == NULL || idp->metadata == NULL || idp->peers == NULL || idp->stats == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i != sc->num_sps; ++i)
        idp->peers[i] = (saml_peer_t){.role = LASSO_PROVIDER_ROLE_SP,
                                      .metadata = sc->sps[i].md.xml,
                                      .entity_id = sc->sps[i].md.entity_id,
                                      .encrypt = sc->sps[i].encrypt};
    if ((idp->lasso = saml_lasso_create(conf->workers, idp->metadata, &idp->kp, idp->peers, sc->num_sps,
                                        sc->keyinfo_certificate)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (sc->broker.enabled && (idp->broker = saml_broker_create(conf, err, errlen)) == NULL)
        goto fail;
    free(nameid_file);
    free(next_key);
    free(next_cert);
    return idp;
fail:
    free(nameid_file);
    free(next_key);
    free(next_cert);
    saml_idp_destroy(idp);
    return NULL;
}

void saml_idp_destroy(saml_idp_t *idp)
{
    if (idp == NULL)
        return;
    saml_broker_destroy(idp->broker);
    saml_lasso_destroy(idp->lasso);
    saml_keypair_dispose(&idp->kp);
    saml_keypair_dispose(&idp->next);
    sodium_memzero(idp->nameid_key, sizeof(idp->nameid_key));
    free(idp->peers);
    free(idp->stats);
    free(idp->metadata);
    free(idp->served_metadata);
    free(idp->entity_id);
    free(idp);
}

/* ---- metrics ---- */

char *saml_metrics_render(const saml_idp_t *idp, size_t *len)
{
    size_t cap = 1024 + (idp->sc->num_sps + idp->sc->broker.num_conns) * 3 * (SAML_METRIC_LINE + 128), used = 0;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
#define PUT(...) used += (size_t)snprintf(out + used, cap - used, __VA_ARGS__)
    PUT("# HELP portier_saml_assertions_total Signed SAML responses with an assertion, by service provider.\n"
        "# TYPE portier_saml_assertions_total counter\n");
    for (size_t i = 0; i != idp->sc->num_sps && used < cap; ++i)
        PUT("portier_saml_assertions_total{sp=\"%.*s\"} %llu\n", SAML_METRIC_LINE, idp->sc->sps[i].name,
            (unsigned long long)atomic_load(&idp->stats[i].issued));
    PUT("# HELP portier_saml_refusals_total Refused SAML sign-ins by service provider and kind (policy: the user is "
        "not in an allowed group; request: the SP's request was refused).\n# TYPE portier_saml_refusals_total "
        "counter\n");
    for (size_t i = 0; i != idp->sc->num_sps && used < cap; ++i) {
        PUT("portier_saml_refusals_total{sp=\"%.*s\",reason=\"policy\"} %llu\n", SAML_METRIC_LINE, idp->sc->sps[i].name,
            (unsigned long long)atomic_load(&idp->stats[i].denied));
        PUT("portier_saml_refusals_total{sp=\"%.*s\",reason=\"request\"} %llu\n", SAML_METRIC_LINE,
            idp->sc->sps[i].name, (unsigned long long)atomic_load(&idp->stats[i].failed));
    }
    if (used < cap)
        PUT("portier_saml_refusals_total{sp=\"(unknown)\",reason=\"request\"} %llu\n",
            (unsigned long long)atomic_load(&idp->unknown_sp));
#undef PUT
    if (used < cap)
        used += saml_refresh_metrics(idp->broker, out + used, cap - used);
    *len = used < cap ? used : cap - 1;
    return out;
}

/* ---- endpoints ---- */

static void send_static(h2o_req_t *req, const char *type, const char *body, size_t len, const char *cache)
{
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = len;
    h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-type"), 1, type, strlen(type), 1);
    gw_add_security_headers(req);
    h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("cache-control"), 1, cache, strlen(cache), 1);
    h2o_send_inline(req, body, len);
}

static int on_metadata(h2o_handler_t *self, h2o_req_t *req)
{
    saml_idp_t *idp = ((idp_handler_t *)self)->idp;
    const char *md = idp->served_metadata != NULL ? idp->served_metadata : idp->metadata;
    send_static(req, "application/samlmetadata+xml", md, strlen(md), "public, max-age=300");
    return 0;
}

static int on_post_js(h2o_handler_t *self, h2o_req_t *req)
{
    send_static(req, "text/javascript; charset=utf-8", POST_JS, sizeof(POST_JS) - 1, "public, max-age=3600");
    return 0;
}

/* "https://sp.example:8443" of an absolute URL, for the page's form-action. */
static int origin_of(const char *url, char *out, size_t len)
{
    const char *host = strstr(url, "://");
    if (host == NULL)
        return -1;
    size_t n = (size_t)(strcspn(host + 3, "/?#") + (size_t)(host + 3 - url));
    if (n + 1 > len)
        return -1;
    memcpy(out, url, n);
    out[n] = '\0';
    return strpbrk(out, " ;,'\"") == NULL ? 0 : -1;
}

void saml_send_post_form(h2o_req_t *req, const char *url, const char *field, const char *value, const char *relay_state)
{
    char origin[ORIGIN_MAX], csp[ORIGIN_MAX + 160];
    char *eurl = saml_xml_escape(url), *erelay = relay_state != NULL ? saml_xml_escape(relay_state) : NULL;
    if (eurl == NULL || origin_of(url, origin, sizeof(origin)) != 0) {
        free(eurl);
        free(erelay);
        gw_send_message(req, 500, "Internal error", "The application's address cannot be used.", NULL, NULL);
        return;
    }
    /* value is base64 (no markup characters); url and RelayState are escaped */
    size_t cap = strlen(eurl) + strlen(value) + (erelay != NULL ? strlen(erelay) : 0) + 1024;
    char *body = h2o_mem_alloc_pool(&req->pool, cap);
    int n = snprintf(body, cap,
                     "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signing in · portier"
                     "</title><link rel=\"stylesheet\" href=\"/_portier/style.css\"></head><body>"
                     "<main class=\"card\"><form id=\"saml-post\" method=\"post\" action=\"%s\">"
                     "<input type=\"hidden\" name=\"%s\" value=\"%s\">%s%s%s"
                     "<p>Signing you in to the application…</p><noscript><button type=\"submit\" "
                     "class=\"button button-primary\">Continue</button></noscript></form></main>"
                     "<script src=\"" POST_JS_PATH "\"></script></body></html>\n",
                     eurl, field, value, erelay != NULL ? "<input type=\"hidden\" name=\"RelayState\" value=\"" : "",
                     erelay != NULL ? erelay : "", erelay != NULL ? "\">" : "");
    free(eurl);
    free(erelay);
    snprintf(csp, sizeof(csp),
             "default-src 'none'; script-src 'self'; style-src 'self'; form-action %s; base-uri 'none'; "
             "frame-ancestors 'none'",
             origin);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = (size_t)n;
    h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-type"), 1,
                          H2O_STRLIT("text/html; charset=utf-8"), 1);
    gw_add_security_headers(req);
    h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 1, csp, strlen(csp), 1);
    h2o_send_inline(req, body, (size_t)n);
}

static void add(h2o_hostconf_t *hostconf, saml_idp_t *idp, const char *path, int (*cb)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, path, 0);
    idp_handler_t *h = (idp_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = cb;
    h->idp = idp;
}

void saml_register(saml_idp_t *idp, struct st_gw_server_t *server, h2o_hostconf_t *hostconf)
{
    if (idp->broker != NULL) /* /saml/sp/... before any shorter /saml prefix */
        saml_broker_register(idp->broker, server, hostconf);
    add(hostconf, idp, METADATA_PATH, on_metadata);
    add(hostconf, idp, POST_JS_PATH, on_post_js);
    saml_sso_register(idp, hostconf);
    saml_slo_register(idp, hostconf);
}
