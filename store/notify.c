/*
 * The revocation listener's side of LISTEN/NOTIFY: a dedicated connection LISTENs on STORE_NOTIFY_CHANNEL and
 * waits on its socket (poll) for notifications, handing each payload to a callback. A lost connection is
 * reported as -EIO: the caller must assume it missed notifications (flush its cache), then call store_listen
 * again, which reconnects.
 */
#include <errno.h>
#include <poll.h>

#include "store/internal.h"

int store_listen(store_t *st)
{
    return store_run(st, "LISTEN " STORE_NOTIFY_CHANNEL, 0, NULL, NULL);
}

/* Hands every notification libpq has already read to cb; returns how many. */
static int drain(store_t *st, void (*cb)(void *ctx, const char *payload), void *ctx)
{
    PGnotify *n;
    int count = 0;
    while ((n = PQnotifies(st->conn)) != NULL) {
        cb(ctx, n->extra);
        PQfreemem(n);
        ++count;
    }
    return count;
}

int store_wait_notify(store_t *st, int timeout_ms, void (*cb)(void *ctx, const char *payload), void *ctx)
{
    if (PQstatus(st->conn) != CONNECTION_OK)
        return -EIO;
    /* Notifications that arrived with an earlier result are already buffered: no need to wait for them. */
    if (drain(st, cb, ctx) != 0)
        return 0;
    struct pollfd pfd = {.fd = PQsocket(st->conn), .events = POLLIN};
    if (pfd.fd < 0)
        return -EIO;
    int r = poll(&pfd, 1, timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : -EIO;
    if (r > 0 && PQconsumeInput(st->conn) != 1)
        return -EIO;
    drain(st, cb, ctx);
    return PQstatus(st->conn) == CONNECTION_OK ? 0 : -EIO;
}
