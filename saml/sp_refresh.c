/*
 * Metadata refresh of enterprise IdP connections (issue #7): for each connection with a metadata_url, one background
 * thread fetches the URL with libcurl (https only, certificate verified against metadata_ca or the system's CAs,
 * size-limited, timed out), passes the document through the metadata gatekeeper (saml_idp_md_parse: signed by the
 * pinned metadata_signing_certificate, the connection's entityID, validUntil in the future, usable IdP keys), then
 * writes it atomically to the connection's `metadata` file (the backing file read at the next start) and publishes it
 * (saml_conn_md_replace). Any failure keeps the metadata in use; it is logged (reason, never the document), audited,
 * counted, and retried at the next interval. An unchanged document (same SHA-256) changes nothing.
 *
 * Like Shibboleth SP's MetadataProvider with url, backingFilePath, reloadInterval and a Signature MetadataFilter.
 * The thread never touches an event loop; audit events go to the worker pool as fire-and-forget jobs (workers own
 * the database connections). Each portier instance refreshes on its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "gateway/gateway.h"
#include "saml/internal.h"

#define FETCH_TIMEOUT   30 /* seconds for a whole fetch */
#define CONNECT_TIMEOUT 10
#define DETAILS_MAX     256
#define TARGET_MAX      96
#define USER_AGENT      "portier-metadata-refresh"

typedef struct st_conn_state_t {
    const saml_conn_config_t *conn;
    struct timespec due; /* CLOCK_MONOTONIC */
    _Atomic unsigned long long ok, failed;
} conn_state_t;

typedef struct st_saml_refresh_t saml_refresh_t;
struct st_saml_refresh_t {
    gw_server_t *server;
    const saml_broker_config_t *bc;
    pthread_t tid;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    int stopping;        /* under lock */
    conn_state_t *conns; /* one per connection with a metadata_url */
    size_t num_conns;
};

/* ---- fetching ---- */

typedef struct st_body_t {
    char *buf;
    size_t len;
    int too_large;
} body_t;

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    body_t *b = arg;
    size_t add = size * n;
    if (add > SAML_MAX_METADATA - b->len) {
        b->too_large = 1;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    char *nb = realloc(b->buf, b->len + add + 1);
    if (nb == NULL)
        return 0;
    memcpy(nb + b->len, data, add);
    b->buf = nb;
    b->len += add;
    b->buf[b->len] = '\0';
    return add;
}

/* GET metadata_url into body. NULL, or a reason ("too_large", "http_status", "fetch") with detail (curl's words,
 * which name no URL). */
static const char *fetch(const saml_conn_config_t *c, body_t *body, char *detail, size_t detail_len)
{
    CURL *curl = curl_easy_init();
    char errbuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    const char *why = NULL;
    if (curl == NULL)
        return "internal";
    curl_easy_setopt(curl, CURLOPT_URL, c->metadata_url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (c->metadata_ca != NULL)
        curl_easy_setopt(curl, CURLOPT_CAINFO, c->metadata_ca);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)FETCH_TIMEOUT);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)SAML_MAX_METADATA);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, ""); /* gzip is common for large federation metadata */
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (body->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        why = "too_large";
    } else if (rc != CURLE_OK) {
        why = "fetch";
        snprintf(detail, detail_len, "%s", curl_easy_strerror(rc));
    } else if (status != 200) {
        why = "http_status";
        snprintf(detail, detail_len, "%ld", status);
    }
    curl_easy_cleanup(curl);
    return why;
}

/* ---- the backing file ---- */

/* Writes data to path through a temporary file in the same directory and rename(2): a reader (the next start) sees
 * the old or the new document, never a torn one. 0 or -errno. */
static int write_atomically(const char *path, const char *data, size_t len)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno != EINTR)
            rc = -errno;
        else if (w > 0)
            off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    char *slash = strrchr(tmp, '/'); /* the rename itself survives a crash once the directory is synced */
    if (slash != NULL && slash != tmp) {
        *slash = '\0';
        int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
    return 0;
}

/* ---- reporting ---- */

typedef struct st_audit_job_t {
    gw_job_t super;
    char target[TARGET_MAX], outcome[16], details[DETAILS_MAX];
} audit_job_t;

static void audit_run(gw_job_t *job, gw_worker_t *w)
{
    audit_job_t *j = (audit_job_t *)job;
    store_t *db = gw_worker_db(w);
    store_audit_event_t ev = {.actor = "system", /* the refresher changes the connection, nobody asked */
                              .action = "saml.sp.metadata_refresh",
                              .target = j->target,
                              .outcome = j->outcome,
                              .details = j->details};
    if (db == NULL || store_audit_append(db, &ev) != 0)
        gw_log("error", "audit", "append_failed", "action", ev.action, NULL);
}

static void audit(saml_refresh_t *r, const saml_conn_config_t *c, const char *outcome, const char *details)
{
    audit_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return;
    snprintf(j->target, sizeof(j->target), "saml:%s", c->name);
    snprintf(j->outcome, sizeof(j->outcome), "%s", outcome);
    snprintf(j->details, sizeof(j->details), "%s", details);
    gw_job_submit_detached(r->server, &j->super, audit_run);
}

static void refused(saml_refresh_t *r, conn_state_t *s, const char *why, const char *detail)
{
    char details[DETAILS_MAX];
    atomic_fetch_add(&s->failed, 1);
    gw_log("error", "saml", "sp.metadata_refresh_failed", "idp", s->conn->name, "reason", why, "detail",
           detail[0] != '\0' ? detail : saml_idp_md_reason_text(why), NULL);
    snprintf(details, sizeof(details), "{\"reason\":\"%s\"}", why); /* reasons are our own [a-z_] words */
    audit(r, s->conn, "failure", details);
}

/* ---- one refresh ---- */

static void refresh_one(saml_refresh_t *r, conn_state_t *s)
{
    const saml_conn_config_t *c = s->conn;
    body_t body = {0};
    char detail[128] = "";
    saml_idp_md_t *md = NULL, *cur = NULL;
    const char *why = fetch(c, &body, detail, sizeof(detail));
    if (why == NULL) {
        saml_idp_md_check_t chk = {.entity_id = c->entity_id, .signer_pem = c->metadata_signer_pem, .now = time(NULL)};
        why = saml_idp_md_parse(body.buf != NULL ? body.buf : "", body.len, &chk, &md);
    }
    if (why != NULL) {
        refused(r, s, why, detail);
        goto exit;
    }
    cur = saml_conn_md(c);
    if (memcmp(cur->digest, md->digest, sizeof(md->digest)) == 0) { /* the same document: nothing to do */
        atomic_fetch_add(&s->ok, 1);
        goto exit;
    }
    int wr = write_atomically(c->metadata_file, body.buf, body.len);
    if (wr != 0) /* still applied: it is valid; the next start uses the older file until a refresh writes it */
        gw_log("error", "saml", "sp.metadata_backing_file_failed", "idp", c->name, "file", c->metadata_file, "detail",
               strerror(-wr), NULL);
    char until[32] = "", certs[8], details[DETAILS_MAX];
    if (md->valid_until != 0)
        saml_time_format(md->valid_until, until, sizeof(until));
    snprintf(certs, sizeof(certs), "%zu", md->num_certs);
    snprintf(details, sizeof(details), "{\"certificates\":%zu,\"valid_until\":\"%s\",\"backing_file\":%s}",
             md->num_certs, until, wr == 0 ? "true" : "false");
    saml_conn_md_replace(c, md);
    md = NULL;
    atomic_fetch_add(&s->ok, 1);
    gw_log("info", "saml", "sp.metadata_refreshed", "idp", c->name, "certificates", certs, "valid_until", until, NULL);
    audit(r, c, "success", details);
exit:
    saml_idp_md_release(cur);
    saml_idp_md_release(md);
    free(body.buf);
}

/* ---- the thread ---- */

static int before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *refresh_main(void *arg)
{
    saml_refresh_t *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        struct timespec now, next = {0};
        clock_gettime(CLOCK_MONOTONIC, &now);
        for (size_t i = 0; i != r->num_conns && !r->stopping; ++i) {
            conn_state_t *s = &r->conns[i];
            if (!before(&now, &s->due)) {
                pthread_mutex_unlock(&r->lock); /* no lock held across I/O */
                refresh_one(r, s);
                pthread_mutex_lock(&r->lock);
                clock_gettime(CLOCK_MONOTONIC, &now);
                s->due = now;
                s->due.tv_sec += s->conn->metadata_refresh;
            }
            if (i == 0 || before(&s->due, &next))
                next = s->due;
        }
        while (!r->stopping && pthread_cond_timedwait(&r->cond, &r->lock, &next) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

void saml_broker_refresh_start(saml_idp_t *saml, gw_server_t *server)
{
    saml_broker_t *b = saml != NULL ? saml->broker : NULL;
    size_t n = 0;
    for (size_t i = 0; b != NULL && i != b->bc->num_conns; ++i)
        n += b->bc->conns[i].metadata_url != NULL;
    if (n == 0)
        return;
    saml_refresh_t *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->conns = calloc(n, sizeof(*r->conns))) == NULL) {
        free(r);
        gw_log("error", "saml", "sp.metadata_refresh_disabled", "reason", "out of memory", NULL);
        return;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT); /* main thread, before the refresher runs */
    r->server = server;
    r->bc = b->bc;
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    for (size_t i = 0; i != b->bc->num_conns; ++i)
        if (b->bc->conns[i].metadata_url != NULL)
            r->conns[r->num_conns++].conn = &b->bc->conns[i]; /* due at once: the backing file may be old */
    if (pthread_create(&r->tid, NULL, refresh_main, r) != 0) {
        gw_log("error", "saml", "sp.metadata_refresh_disabled", "reason", "cannot start a thread", NULL);
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        free(r->conns);
        free(r);
        return;
    }
    b->refresh = r;
}

void saml_broker_refresh_stop(saml_idp_t *saml)
{
    saml_broker_t *b = saml != NULL ? saml->broker : NULL;
    saml_refresh_t *r = b != NULL ? b->refresh : NULL;
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->tid, NULL); /* a fetch under way ends within FETCH_TIMEOUT */
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r->conns);
    free(r);
    b->refresh = NULL;
}

/* Appends one formatted line when it fits whole. */
static void __attribute__((format(printf, 4, 5))) put(char *out, size_t cap, size_t *used, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *used, cap - *used, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < cap - *used)
        *used += (size_t)n;
    else
        out[*used] = '\0';
}

size_t saml_refresh_metrics(const saml_broker_t *b, char *out, size_t cap)
{
    const saml_refresh_t *r = b != NULL ? b->refresh : NULL;
    size_t used = 0;
    if (r == NULL || cap == 0)
        return 0;
    put(out, cap, &used,
        "# HELP portier_saml_sp_metadata_refresh_total Metadata refreshes of enterprise IdP connections by "
        "outcome (failure: not fetched, or refused by the checks; the previous metadata stays in use).\n"
        "# TYPE portier_saml_sp_metadata_refresh_total counter\n");
    for (size_t i = 0; i != r->num_conns; ++i) {
        put(out, cap, &used, "portier_saml_sp_metadata_refresh_total{idp=\"%s\",outcome=\"success\"} %llu\n",
            r->conns[i].conn->name, (unsigned long long)atomic_load(&r->conns[i].ok));
        put(out, cap, &used, "portier_saml_sp_metadata_refresh_total{idp=\"%s\",outcome=\"failure\"} %llu\n",
            r->conns[i].conn->name, (unsigned long long)atomic_load(&r->conns[i].failed));
    }
    return used;
}
