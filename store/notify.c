/*
 * LISTEN/NOTIFY for the revocation listener: a dedicated connection listens on the revocation channel and
 * waits (poll on the socket) for notifications, handing each payload to a callback.
 */
#include <errno.h>
#include <poll.h>

#include "store/internal.h"

int store_listen(store_t *st)
{
    return store_result_status(store_exec(st, "LISTEN " STORE_NOTIFY_CHANNEL, 0, NULL, NULL), 0);
}

int store_wait_notify(store_t *st, int timeout_ms, void (*cb)(void *ctx, const char *payload), void *ctx)
{
    if (st->conn == NULL || PQstatus(st->conn) != CONNECTION_OK)
        return -EIO;
    struct pollfd pfd = {.fd = PQsocket(st->conn), .events = POLLIN};
    int r = poll(&pfd, 1, timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : -EIO;
    if (r > 0 && PQconsumeInput(st->conn) != 1)
        return -EIO;
    PGnotify *n;
    while ((n = PQnotifies(st->conn)) != NULL) {
        cb(ctx, n->extra);
        PQfreemem(n);
    }
    return PQstatus(st->conn) == CONNECTION_OK ? 0 : -EIO;
}
