/*
 * The password blocklist (NIST SP 800-63B 5.1.1.2): a set of forbidden passwords, built at start-up from text
 * the caller read (conf/blocklist.txt, the system dictionary), then shared read-only by every thread.
 * Entries are stored as case-folded NFKC keys, the same form pol_password_evaluate derives from a password, so a
 * lookup is one exact hash-set probe. Open addressing with linear probing over a power-of-two table kept at most
 * half full; keys live back to back in one arena (NUL-terminated), slots hold their 32-bit hash and offset.
 * The contents come from our own files, not from users, so a plain FNV-1a hash is enough: a user can choose what
 * to look up but cannot lengthen the probe chains.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "policy/internal.h"

#define INITIAL_SLOTS 1024 /* power of two */
#define ARENA_MAX     UINT32_MAX

typedef struct st_slot_t {
    uint32_t hash;
    uint32_t off; /* 0: empty (offset 0 of the arena is never used) */
} slot_t;

struct st_pol_blocklist_t {
    slot_t *slots;
    size_t nslots, count;
    char *arena;
    size_t used, cap;
};

static uint32_t hash_key(const uint8_t *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i != len; ++i) {
        h ^= key[i];
        h *= 0x100000001b3ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

pol_blocklist_t *pol_blocklist_create(void)
{
    pol_blocklist_t *bl = calloc(1, sizeof(*bl));
    if (bl == NULL)
        return NULL;
    bl->nslots = INITIAL_SLOTS;
    bl->slots = calloc(bl->nslots, sizeof(*bl->slots));
    bl->cap = 4096;
    bl->arena = malloc(bl->cap);
    if (bl->slots == NULL || bl->arena == NULL) {
        pol_blocklist_destroy(bl);
        return NULL;
    }
    bl->arena[0] = '\0';
    bl->used = 1;
    return bl;
}

void pol_blocklist_destroy(pol_blocklist_t *bl)
{
    if (bl == NULL)
        return;
    free(bl->slots);
    free(bl->arena);
    free(bl);
}

size_t pol_blocklist_size(const pol_blocklist_t *bl)
{
    return bl != NULL ? bl->count : 0;
}

/* The slot holding key, or the empty slot where it belongs. */
static slot_t *find(const pol_blocklist_t *bl, const uint8_t *key, size_t len, uint32_t h)
{
    size_t mask = bl->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot_t *s = bl->slots + i;
        if (s->off == 0)
            return s;
        if (s->hash == h && memcmp(bl->arena + s->off, key, len) == 0 && bl->arena[s->off + len] == '\0')
            return s;
    }
}

static int grow_table(pol_blocklist_t *bl)
{
    size_t n = bl->nslots * 2;
    slot_t *slots = calloc(n, sizeof(*slots));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i != bl->nslots; ++i) {
        slot_t s = bl->slots[i];
        if (s.off == 0)
            continue;
        size_t j = s.hash & (n - 1);
        while (slots[j].off != 0)
            j = (j + 1) & (n - 1);
        slots[j] = s;
    }
    free(bl->slots);
    bl->slots = slots;
    bl->nslots = n;
    return 0;
}

/* Returns 1 when added, 0 when already present, -1 on allocation failure. */
static int insert(pol_blocklist_t *bl, const uint8_t *key, size_t len)
{
    if ((bl->count + 1) * 2 > bl->nslots && grow_table(bl) != 0)
        return -1;
    uint32_t h = hash_key(key, len);
    slot_t *s = find(bl, key, len, h);
    if (s->off != 0)
        return 0;
    if (bl->used + len + 1 > bl->cap) {
        size_t cap = bl->cap;
        while (bl->used + len + 1 > cap)
            cap *= 2;
        if (cap > ARENA_MAX)
            cap = ARENA_MAX;
        if (bl->used + len + 1 > cap)
            return -1;
        char *a = realloc(bl->arena, cap);
        if (a == NULL)
            return -1;
        bl->arena = a;
        bl->cap = cap;
    }
    memcpy(bl->arena + bl->used, key, len);
    bl->arena[bl->used + len] = '\0';
    s->hash = h;
    s->off = (uint32_t)bl->used;
    bl->used += len + 1;
    ++bl->count;
    return 1;
}

long pol_blocklist_add_lines(pol_blocklist_t *bl, const char *buf, size_t len, unsigned min_len)
{
    char line[4 * POL_PASSWORD_INPUT_MAX + 1];
    uint8_t key[POL_KEY_CAP];
    long added = 0;
    size_t pos = 0;

    if (bl == NULL)
        return -1;
    while (pos < len) {
        const char *start = buf + pos, *nl = memchr(start, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - start) : len - pos;
        pos += n + (nl != NULL);
        if (n != 0 && start[n - 1] == '\r')
            --n;
        if (n == 0 || start[0] == '#' || n >= sizeof(line) || memchr(start, '\0', n) != NULL)
            continue; /* blank, comment, longer than any acceptable password could normalise from, or binary */
        memcpy(line, start, n);
        line[n] = '\0';
        size_t ncp;
        long klen = pol_key(line, POL_PASSWORD_MAX, key, sizeof(key), &ncp);
        if (klen == POL_U_NOMEM)
            return -1;
        if (klen <= 0 || ncp < min_len)
            continue; /* invalid UTF-8, too long to matter, or too short */
        int r = insert(bl, key, (size_t)klen);
        if (r < 0)
            return -1;
        added += r;
    }
    return added;
}

int pol_blocklist_contains_key(const pol_blocklist_t *bl, const uint8_t *key, size_t len)
{
    if (bl == NULL || bl->count == 0)
        return 0;
    return find(bl, key, len, hash_key(key, len))->off != 0;
}

int pol_blocklist_contains(const pol_blocklist_t *bl, const char *password)
{
    uint8_t key[POL_KEY_CAP];
    size_t ncp;
    if (bl == NULL || password == NULL)
        return 0;
    long klen = pol_key(password, POL_PASSWORD_MAX, key, sizeof(key), &ncp);
    int found = klen >= 0 && pol_blocklist_contains_key(bl, key, (size_t)klen);
    OPENSSL_cleanse(key, sizeof(key));
    return found;
}
