/*
 * store internals: the connection struct and query helpers shared by the store's files.
 */
#ifndef PORTIER_STORE_INTERNAL_H
#define PORTIER_STORE_INTERNAL_H

#include <libpq-fe.h>

#include "store/store.h"

typedef struct st_store_migration_t {
    int version;
    const char *name;
    const char *sql;
} store_migration_t;
extern const store_migration_t store_migrations[]; /* generated; ends with {0, NULL, NULL} */

struct st_store_t {
    PGconn *conn;
    char *conninfo;
    uint64_t queries;
    uint8_t audit_key[64];
    size_t audit_key_len;
};

/* Runs a parameterised statement. Text params, except those whose length is given as > 0 in `lengths`
 * (binary, e.g. hashes). Returns the result (caller PQclear) or NULL on a connection error (the connection is
 * reset for the next call). Never pastes values into SQL. */
PGresult *store_exec(store_t *st, const char *sql, int nparams, const char *const *values, const int *lengths);
/* Maps a result to 0 / -EEXIST (unique violation) / -EIO and clears it unless keep. */
int store_result_status(PGresult *res, int keep);
int store_begin(store_t *st);
int store_commit(store_t *st);
void store_rollback(store_t *st);
/* Notify within the current transaction. */
int store_notify(store_t *st, const char *payload);
/* "session:<hex>" payload into buf (>= 8 + 64 + 1). */
void store_session_payload(const uint8_t hash[STORE_HASH_LEN], char *buf, size_t len);

#endif
