/*
 * Password-spraying and credential-stuffing defence, per instance and in memory.
 *
 * Failed logins are counted per source network (IPv4 /24, IPv6 /64) as the set of distinct user names tried in
 * a sliding window. A network that has tried more than max_usernames distinct names is over budget: for
 * `block` seconds its login attempts are refused before any password is checked, so the accounts it targets
 * collect no further failures and are never locked by it. Half-way to the budget its answers are slowed down.
 * Independently, a keyed fingerprint of each wrong password (HMAC with a per-process random key; the password
 * itself is never kept) is counted across user names: the same wrong password tried against many accounts is
 * spraying whatever the sources, and marks every network that used it as over budget.
 *
 * User names are kept as 64-bit keyed hashes too. All state sits behind one mutex, held only for table
 * operations; tables are bounded (the oldest networks are dropped when full).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <sodium.h>

#include "gateway/internal.h"

#define MAX_NETWORKS     4096
#define MAX_FINGERPRINTS 4096
#define NAMES_PER_ENTRY  64 /* distinct names remembered per network/fingerprint; beyond the budget anyway */

typedef struct st_name_seen_t {
    uint64_t name;
    time_t at;
} name_seen_t;

typedef struct st_tally_t {
    uint8_t key[16]; /* network prefix, or password fingerprint */
    name_seen_t names[NAMES_PER_ENTRY];
    size_t num_names;
    time_t blocked_until;
    time_t last;
} tally_t;

struct st_gw_spray_t {
    pthread_mutex_t mutex;
    uint8_t secret[crypto_shorthash_KEYBYTES];
    uint8_t pw_key[32];
    unsigned max_usernames, window, block, same_password;
    tally_t *networks, *fingerprints;
    size_t num_networks, num_fingerprints;
};

gw_spray_t *gw_spray_create(unsigned max_usernames, unsigned window, unsigned block, unsigned same_password)
{
    gw_spray_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    pthread_mutex_init(&s->mutex, NULL);
    randombytes_buf(s->secret, sizeof(s->secret));
    randombytes_buf(s->pw_key, sizeof(s->pw_key));
    s->max_usernames = max_usernames;
    s->window = window;
    s->block = block;
    s->same_password = same_password;
    s->networks = calloc(MAX_NETWORKS, sizeof(tally_t));
    s->fingerprints = calloc(MAX_FINGERPRINTS, sizeof(tally_t));
    return s;
}

void gw_spray_destroy(gw_spray_t *s)
{
    if (s == NULL)
        return;
    sodium_memzero(s->pw_key, sizeof(s->pw_key));
    free(s->networks);
    free(s->fingerprints);
    pthread_mutex_destroy(&s->mutex);
    free(s);
}

void gw_spray_fingerprint(const gw_spray_t *s, const char *password, uint8_t out[16])
{
    uint8_t full[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256(full, (const unsigned char *)password, strlen(password), s->pw_key);
    memcpy(out, full, 16);
    sodium_memzero(full, sizeof(full));
}

/* The network of a client address: /24 for IPv4 (v4-mapped), /64 for IPv6. */
void gw_spray_network(const uint8_t addr[16], uint8_t out[16])
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(out, 0, 16);
    if (memcmp(addr, v4mapped, 12) == 0)
        memcpy(out, addr, 15);
    else
        memcpy(out, addr, 8);
}

static tally_t *find(tally_t *table, size_t *count, size_t max, const uint8_t key[16], int create, time_t now)
{
    tally_t *oldest = NULL;
    for (size_t i = 0; i != *count; ++i) {
        if (memcmp(table[i].key, key, 16) == 0)
            return &table[i];
        if (oldest == NULL || table[i].last < oldest->last)
            oldest = &table[i];
    }
    if (!create)
        return NULL;
    tally_t *t = *count < max ? &table[(*count)++] : oldest;
    memset(t, 0, sizeof(*t));
    memcpy(t->key, key, 16);
    t->last = now;
    return t;
}

/* Drops names older than the window; returns how many remain. */
static size_t prune(tally_t *t, time_t now, unsigned window)
{
    size_t kept = 0;
    for (size_t i = 0; i != t->num_names; ++i)
        if (now - t->names[i].at < (time_t)window)
            t->names[kept++] = t->names[i];
    return t->num_names = kept;
}

/* Adds `name` (if new) after pruning; returns the number of distinct names in the window. */
static size_t note_name(tally_t *t, uint64_t name, time_t now, unsigned window)
{
    prune(t, now, window);
    t->last = now;
    for (size_t i = 0; i != t->num_names; ++i) {
        if (t->names[i].name == name) {
            t->names[i].at = now;
            return t->num_names;
        }
    }
    if (t->num_names < NAMES_PER_ENTRY)
        t->names[t->num_names++] = (name_seen_t){name, now};
    return t->num_names;
}

gw_spray_verdict_t gw_spray_check(gw_spray_t *s, const uint8_t network[16], time_t now)
{
    gw_spray_verdict_t v = GW_SPRAY_OK;
    pthread_mutex_lock(&s->mutex);
    tally_t *t = find(s->networks, &s->num_networks, MAX_NETWORKS, network, 0, now);
    if (t != NULL) {
        if (t->blocked_until > now)
            v = GW_SPRAY_REFUSE;
        else if (prune(t, now, s->window) > s->max_usernames / 2)
            v = GW_SPRAY_SLOW;
    }
    pthread_mutex_unlock(&s->mutex);
    return v;
}

int gw_spray_record_failure(gw_spray_t *s, const uint8_t network[16], const char *username,
                            const uint8_t fingerprint[16], time_t now)
{
    uint64_t name = 0;
    int triggered = 0;
    crypto_shorthash((unsigned char *)&name, (const unsigned char *)username, strlen(username), s->secret);

    pthread_mutex_lock(&s->mutex);
    tally_t *net = find(s->networks, &s->num_networks, MAX_NETWORKS, network, 1, now);
    if (note_name(net, name, now, s->window) > s->max_usernames && net->blocked_until <= now) {
        net->blocked_until = now + s->block;
        triggered = GW_SPRAY_TRIGGER_NETWORK;
    }
    if (fingerprint != NULL) {
        tally_t *fp = find(s->fingerprints, &s->num_fingerprints, MAX_FINGERPRINTS, fingerprint, 1, now);
        if (note_name(fp, name, now, s->window) >= s->same_password) {
            if (fp->blocked_until <= now)
                triggered |= GW_SPRAY_TRIGGER_PASSWORD;
            fp->blocked_until = now + s->block;
            net->blocked_until = now + s->block; /* whoever sprays this password is over budget */
        }
    }
    pthread_mutex_unlock(&s->mutex);
    return triggered;
}
