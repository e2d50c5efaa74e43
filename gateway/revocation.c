/*
 * Revocation listener: one thread with its own PostgreSQL connection that LISTENs on the revocation channel and
 * evicts sessions from this instance's cache the moment another instance (or the CLI) commits a revocation:
 *   "session:<64 hex>"  one session (logout)
 *   "user:<id>"         every session of a user (disable, credential or group change)
 *   "all"               everything
 * When the connection drops, notifications may have been missed, so the whole cache is flushed after the
 * reconnect (design rule: no missed revocation survives a reconnect).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/internal.h"

#define LISTEN_POLL_MS     200
#define RECONNECT_DELAY_MS 500

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

void gw_revocation_apply(gw_server_t *server, const char *payload)
{
    if (strncmp(payload, "session:", 8) == 0 && strlen(payload + 8) == STORE_HASH_LEN * 2) {
        uint8_t hash[STORE_HASH_LEN];
        for (size_t i = 0; i != STORE_HASH_LEN; ++i) {
            int hi = hexval(payload[8 + 2 * i]), lo = hexval(payload[9 + 2 * i]);
            if (hi < 0 || lo < 0)
                goto flush;
            hash[i] = (uint8_t)(hi * 16 + lo);
        }
        gw_cache_evict_session(server->cache, hash);
        return;
    }
    if (strncmp(payload, "user:", 5) == 0) {
        char *end;
        errno = 0;
        long long id = strtoll(payload + 5, &end, 10);
        if (errno == 0 && *end == '\0' && end != payload + 5) {
            gw_cache_evict_user(server->cache, (int64_t)id);
            return;
        }
    }
flush: /* "all", or anything we do not understand: be safe */
    gw_cache_flush(server->cache);
}

static void on_notify(void *ctx, const char *payload)
{
    atomic_fetch_add(&gw_metrics.revocations, 1); /* counted once, here (workers apply their own ones early) */
    gw_revocation_apply(ctx, payload);
}

static void *listener_main(void *arg)
{
    gw_server_t *server = arg;
    store_t *db = NULL;
    int had_connection = 0;

    while (!atomic_load(&server->shutting_down)) {
        if (db == NULL) {
            char err[256];
            db = store_open(server->conf->db_conninfo, err, sizeof(err));
            if (db != NULL && !had_connection && store_role_owns_audit(db) == 1)
                gw_log("warn", "store", "audit.role_can_modify", "detail",
                       "database.conninfo's role owns the audit table or is a superuser: set database.admin_conninfo",
                       NULL);
            if (db == NULL || store_listen(db) != 0) {
                if (db != NULL) {
                    store_close(db);
                    db = NULL;
                }
                usleep(RECONNECT_DELAY_MS * 1000);
                continue;
            }
            /* Whatever was revoked while we were not listening is unknown: start from an empty cache. */
            if (had_connection) {
                gw_cache_flush(server->cache);
                atomic_fetch_add(&gw_metrics.cache_flushes, 1);
                gw_log("warn", "gateway", "revocation.reconnected", "action", "cache flushed", NULL);
            }
            had_connection = 1;
        }
        if (store_wait_notify(db, LISTEN_POLL_MS, on_notify, server) != 0) {
            /* Cached sessions keep working while the database is away; the flush happens on reconnect. */
            gw_log("warn", "gateway", "revocation.connection_lost", NULL);
            store_close(db);
            db = NULL;
        }
    }
    if (db != NULL)
        store_close(db);
    return NULL;
}

void gw_revocation_start(gw_server_t *server)
{
    pthread_create(&server->revocation_thread, NULL, listener_main, server);
}

void gw_revocation_stop(gw_server_t *server)
{
    pthread_join(server->revocation_thread, NULL);
}
