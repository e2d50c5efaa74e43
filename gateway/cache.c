/*
 * Session cache: the in-memory copy of valid sessions, so that an authenticated proxied request costs no
 * database round trip. Keyed by the SHA-256 of the session cookie, sharded (one mutex per shard, held only for
 * the table operation, never across I/O). Entries are reference-counted and immutable apart from the activity
 * timestamps and the per-route JWT slots (their own mutex).
 *
 * Revocations (logout, disable, credential changes) arrive through LISTEN/NOTIFY and evict entries; every
 * eviction bumps a generation counter so that a database lookup that raced with a revocation cannot put the
 * revoked session back (gw_cache_insert drops the row when the generation moved).
 */
#include <stdlib.h>
#include <string.h>

#include "gateway/internal.h"

#define NUM_SHARDS            16
#define BUCKETS_PER_SHARD     1024
#define MAX_ENTRIES_PER_SHARD 16384

typedef struct st_entry_t {
    struct st_entry_t *next;
    gw_session_t *session;
} entry_t;

typedef struct st_shard_t {
    pthread_mutex_t mutex;
    entry_t *buckets[BUCKETS_PER_SHARD];
    size_t count;
} shard_t;

struct st_gw_cache_t {
    shard_t shards[NUM_SHARDS];
    atomic_uint_fast64_t generation;
    size_t num_routes;
};

static inline uint64_t key_of(const uint8_t hash[STORE_HASH_LEN])
{
    uint64_t k;
    memcpy(&k, hash, sizeof(k));
    return k;
}

static shard_t *shard_of(gw_cache_t *c, const uint8_t hash[STORE_HASH_LEN], size_t *bucket)
{
    uint64_t k = key_of(hash);
    *bucket = (size_t)((k >> 8) % BUCKETS_PER_SHARD);
    return &c->shards[k % NUM_SHARDS];
}

gw_cache_t *gw_cache_create(size_t num_routes)
{
    gw_cache_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    for (size_t i = 0; i != NUM_SHARDS; ++i)
        pthread_mutex_init(&c->shards[i].mutex, NULL);
    c->num_routes = num_routes;
    return c;
}

h2o_iovec_t gw_header_safe_dup(const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    char *out = malloc(len + 1), *o = out;
    if (out == NULL)
        return h2o_iovec_init(NULL, 0);
    for (; s != NULL && *s != '\0'; ++s)
        if ((unsigned char)*s >= 0x20 && *s != 0x7f)
            *o++ = *s;
    *o = '\0';
    return h2o_iovec_init(out, (size_t)(o - out));
}

static void session_free(gw_session_t *s)
{
    free(s->hv_user.base);
    free(s->hv_email.base);
    free(s->hv_groups.base);
    for (size_t i = 0; i != s->num_jwts; ++i)
        free(s->jwts[i].token);
    free(s->jwts);
    for (size_t i = 0; i != s->num_groups; ++i)
        free(s->groups[i]);
    free(s->groups);
    free(s->groups_joined);
    free(s->username);
    free(s->email);
    free(s->name);
    free(s->public_id);
    pthread_mutex_destroy(&s->jwt_lock);
    OPENSSL_cleanse(s->hash, sizeof(s->hash));
    free(s);
}

void gw_session_release(gw_session_t *s)
{
    if (s != NULL && atomic_fetch_sub(&s->refcnt, 1) == 1)
        session_free(s);
}

static void shard_clear(shard_t *sh)
{
    for (size_t b = 0; b != BUCKETS_PER_SHARD; ++b) {
        entry_t *e = sh->buckets[b];
        while (e != NULL) {
            entry_t *next = e->next;
            gw_session_release(e->session);
            free(e);
            e = next;
        }
        sh->buckets[b] = NULL;
    }
    sh->count = 0;
}

void gw_cache_destroy(gw_cache_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i != NUM_SHARDS; ++i) {
        shard_clear(&c->shards[i]);
        pthread_mutex_destroy(&c->shards[i].mutex);
    }
    free(c);
}

gw_session_t *gw_cache_get(gw_cache_t *c, const uint8_t hash[STORE_HASH_LEN])
{
    size_t b;
    shard_t *sh = shard_of(c, hash, &b);
    gw_session_t *found = NULL;
    pthread_mutex_lock(&sh->mutex);
    for (entry_t *e = sh->buckets[b]; e != NULL; e = e->next) {
        if (CRYPTO_memcmp(e->session->hash, hash, STORE_HASH_LEN) == 0) {
            found = e->session;
            atomic_fetch_add(&found->refcnt, 1);
            break;
        }
    }
    pthread_mutex_unlock(&sh->mutex);
    return found;
}

uint64_t gw_cache_generation(gw_cache_t *c)
{
    return atomic_load(&c->generation);
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static gw_session_t *session_from_row(const store_session_t *row, const uint8_t hash[STORE_HASH_LEN], size_t num_routes)
{
    gw_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    atomic_init(&s->refcnt, 1);
    pthread_mutex_init(&s->jwt_lock, NULL);
    memcpy(s->hash, hash, STORE_HASH_LEN);
    s->user_id = row->user.id;
    s->username = strdup(row->user.username);
    s->email = dup_or_null(row->user.email);
    s->name = dup_or_null(row->user.display_name);
    s->public_id = strdup(row->public_id);
    s->expires_at = row->expires_at;
    s->idle_timeout = row->idle_timeout;
    s->amr = row->amr;
    atomic_init(&s->last_seen, (long long)row->last_seen);
    atomic_init(&s->last_db_touch, (long long)row->last_seen);
    s->groups = calloc(row->user.num_groups + 1, sizeof(char *));
    size_t joined_len = 1;
    for (size_t i = 0; i != row->user.num_groups; ++i) {
        s->groups[i] = strdup(row->user.groups[i]);
        joined_len += strlen(row->user.groups[i]) + 1;
    }
    s->num_groups = row->user.num_groups;
    s->groups_joined = calloc(1, joined_len);
    for (size_t i = 0, pos = 0; i != s->num_groups; ++i) {
        size_t l = strlen(s->groups[i]);
        if (i != 0)
            s->groups_joined[pos++] = ',';
        memcpy(s->groups_joined + pos, s->groups[i], l);
        pos += l;
    }
    s->hv_user = gw_header_safe_dup(s->username);
    s->hv_email = gw_header_safe_dup(s->email);
    s->hv_groups = gw_header_safe_dup(s->groups_joined);
    s->jwts = calloc(num_routes > 0 ? num_routes : 1, sizeof(*s->jwts));
    s->num_jwts = num_routes;
    return s;
}

gw_session_t *gw_cache_insert(gw_cache_t *c, const store_session_t *row, const uint8_t hash[STORE_HASH_LEN],
                              uint64_t generation)
{
    gw_session_t *s = session_from_row(row, hash, c->num_routes);
    if (s == NULL)
        return NULL;
    size_t b;
    shard_t *sh = shard_of(c, hash, &b);
    pthread_mutex_lock(&sh->mutex);
    if (atomic_load(&c->generation) == generation) {
        entry_t **slot = &sh->buckets[b];
        while (*slot != NULL && CRYPTO_memcmp((*slot)->session->hash, hash, STORE_HASH_LEN) != 0)
            slot = &(*slot)->next;
        if (*slot != NULL) { /* replace a concurrent fill */
            gw_session_release((*slot)->session);
            (*slot)->session = s;
            atomic_fetch_add(&s->refcnt, 1);
        } else {
            if (sh->count >= MAX_ENTRIES_PER_SHARD)
                shard_clear(sh); /* crude but bounded; misses refill from the database */
            entry_t *e = malloc(sizeof(*e));
            if (e != NULL) {
                e->session = s;
                e->next = sh->buckets[b];
                sh->buckets[b] = e;
                sh->count++;
                atomic_fetch_add(&s->refcnt, 1);
            }
        }
    }
    pthread_mutex_unlock(&sh->mutex);
    return s;
}

/* Removes entries matching pred from one shard; the caller holds the mutex. */
static size_t shard_remove_if(shard_t *sh, int (*pred)(const gw_session_t *, const void *), const void *arg)
{
    size_t removed = 0;
    for (size_t b = 0; b != BUCKETS_PER_SHARD; ++b) {
        entry_t **slot = &sh->buckets[b];
        while (*slot != NULL) {
            if (pred((*slot)->session, arg)) {
                entry_t *e = *slot;
                *slot = e->next;
                gw_session_release(e->session);
                free(e);
                sh->count--;
                ++removed;
            } else {
                slot = &(*slot)->next;
            }
        }
    }
    return removed;
}

void gw_cache_evict_session(gw_cache_t *c, const uint8_t hash[STORE_HASH_LEN])
{
    size_t b;
    shard_t *sh = shard_of(c, hash, &b);
    pthread_mutex_lock(&sh->mutex);
    atomic_fetch_add(&c->generation, 1);
    for (entry_t **slot = &sh->buckets[b]; *slot != NULL; slot = &(*slot)->next) {
        if (CRYPTO_memcmp((*slot)->session->hash, hash, STORE_HASH_LEN) == 0) {
            entry_t *e = *slot;
            *slot = e->next;
            gw_session_release(e->session);
            free(e);
            sh->count--;
            break;
        }
    }
    pthread_mutex_unlock(&sh->mutex);
}

static int is_user(const gw_session_t *s, const void *arg)
{
    return s->user_id == *(const int64_t *)arg;
}

void gw_cache_evict_user(gw_cache_t *c, int64_t user_id)
{
    for (size_t i = 0; i != NUM_SHARDS; ++i) {
        pthread_mutex_lock(&c->shards[i].mutex);
        atomic_fetch_add(&c->generation, 1);
        shard_remove_if(&c->shards[i], is_user, &user_id);
        pthread_mutex_unlock(&c->shards[i].mutex);
    }
}

void gw_cache_flush(gw_cache_t *c)
{
    for (size_t i = 0; i != NUM_SHARDS; ++i) {
        pthread_mutex_lock(&c->shards[i].mutex);
        atomic_fetch_add(&c->generation, 1);
        shard_clear(&c->shards[i]);
        pthread_mutex_unlock(&c->shards[i].mutex);
    }
}
