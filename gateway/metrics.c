/*
 * Prometheus metrics: lock-free counters bumped on the loops and workers, rendered as text exposition format on
 * GET /metrics. Route labels come from configuration (never from requests), so label values need no escaping
 * beyond what the config validator already guarantees; they are escaped anyway.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"

gw_metrics_t gw_metrics;
static size_t metrics_routes;

/* Upper bounds (seconds) of the latency histogram buckets; the last bucket is +Inf. */
static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};
#define NUM_BOUNDS (sizeof(latency_bounds) / sizeof(latency_bounds[0]))

void gw_metrics_init(size_t num_routes)
{
    metrics_routes = num_routes;
    gw_metrics.route_status = calloc((num_routes + 1) * 5, sizeof(*gw_metrics.route_status));
}

void gw_metrics_count_status(size_t route, int status)
{
    if (gw_metrics.route_status == NULL || status < 100 || status > 599 || route > metrics_routes)
        return;
    atomic_fetch_add(&gw_metrics.route_status[route * 5 + (size_t)(status / 100 - 1)], 1);
}

void gw_metrics_observe_latency(uint64_t micros)
{
    double sec = (double)micros / 1e6;
    size_t i = 0;
    while (i < NUM_BOUNDS && sec > latency_bounds[i])
        ++i;
    atomic_fetch_add(&gw_metrics.latency_bucket[i], 1);
    atomic_fetch_add(&gw_metrics.latency_sum_us, micros);
    atomic_fetch_add(&gw_metrics.latency_count, 1);
}

typedef struct {
    char *buf;
    size_t len, cap;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *p = realloc(o->buf, cap);
        if (p == NULL)
            return;
        o->buf = p;
        o->cap = cap;
    }
}

static void counter(out_t *o, const char *name, const char *help, atomic_uint_fast64_t *v)
{
    put(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, (unsigned long long)atomic_load(v));
}

char *gw_metrics_render(const gw_config_t *conf, size_t *len)
{
    out_t o = {malloc(4096), 0, 4096};
    if (o.buf == NULL)
        return NULL;
    counter(&o, "portier_session_cache_hits_total", "Session lookups answered from memory.", &gw_metrics.cache_hits);
    counter(&o, "portier_session_cache_misses_total", "Session lookups that went to the database.",
            &gw_metrics.cache_misses);
    counter(&o, "portier_db_queries_total", "SQL statements sent by the worker pool.", &gw_metrics.db_queries);
    counter(&o, "portier_revocations_total", "Revocation notifications applied.", &gw_metrics.revocations);
    counter(&o, "portier_session_cache_flushes_total", "Whole-cache flushes (listener reconnects).",
            &gw_metrics.cache_flushes);
    counter(&o, "portier_jwt_signed_total", "Identity JWTs signed.", &gw_metrics.jwt_signed);
    counter(&o, "portier_jwt_reused_total", "Identity JWTs served from the per-session cache.", &gw_metrics.jwt_reused);
    counter(&o, "portier_setups_total", "Passwords set through a setup link.", &gw_metrics.setups);
    counter(&o, "portier_logouts_total", "Sessions ended by logout.", &gw_metrics.logouts);
    counter(&o, "portier_lockouts_total", "Accounts hard-locked after too many consecutive failures.",
            &gw_metrics.lockouts);
    counter(&o, "portier_spray_detections_total", "Sources found spraying passwords (budget exceeded).",
            &gw_metrics.spray_triggers);
    counter(&o, "portier_spray_refusals_total", "Login attempts refused because their source was over budget.",
            &gw_metrics.spray_refusals);
    put(&o, "# HELP portier_logins_total Password logins by outcome.\n# TYPE portier_logins_total counter\n");
    put(&o, "portier_logins_total{outcome=\"success\"} %llu\n",
        (unsigned long long)atomic_load(&gw_metrics.logins_success));
    put(&o, "portier_logins_total{outcome=\"failure\"} %llu\n",
        (unsigned long long)atomic_load(&gw_metrics.logins_failure));

    put(&o, "# HELP portier_http_requests_total Responses by route and status class.\n"
            "# TYPE portier_http_requests_total counter\n");
    for (size_t r = 0; r <= metrics_routes && gw_metrics.route_status != NULL; ++r) {
        const char *name = r < conf->num_routes ? conf->routes[r].name : "portier";
        for (size_t c = 0; c < 5; ++c)
            put(&o, "portier_http_requests_total{route=\"%s\",code=\"%zuxx\"} %llu\n", name, c + 1,
                (unsigned long long)atomic_load(&gw_metrics.route_status[r * 5 + c]));
    }

    put(&o, "# HELP portier_scim_requests_total SCIM requests by status class.\n"
            "# TYPE portier_scim_requests_total counter\n");
    for (size_t c = 0; c < 5; ++c)
        put(&o, "portier_scim_requests_total{code=\"%zuxx\"} %llu\n", c + 1,
            (unsigned long long)atomic_load(&gw_metrics.scim_status[c]));

    put(&o, "# HELP portier_proxy_duration_seconds Time from request to backend response headers.\n"
            "# TYPE portier_proxy_duration_seconds histogram\n");
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= NUM_BOUNDS; ++i) {
        cumulative += atomic_load(&gw_metrics.latency_bucket[i]);
        if (i < NUM_BOUNDS)
            put(&o, "portier_proxy_duration_seconds_bucket{le=\"%g\"} %llu\n", latency_bounds[i],
                (unsigned long long)cumulative);
        else
            put(&o, "portier_proxy_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
    }
    put(&o, "portier_proxy_duration_seconds_sum %.6f\nportier_proxy_duration_seconds_count %llu\n",
        (double)atomic_load(&gw_metrics.latency_sum_us) / 1e6,
        (unsigned long long)atomic_load(&gw_metrics.latency_count));
    *len = o.len;
    return o.buf;
}
