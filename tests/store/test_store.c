/*
 * store integration test: every function of store/store.h against a real PostgreSQL (not a unit test; it lives
 * outside tests/unit so the build does not pick it up). The conninfo comes from $PORTIER_TEST_PG and should
 * name a fresh, empty database (tests/store/run.sh starts a private server and creates one); without it the
 * program exits 77 (skipped). Direct libpq connections are used only to check what the store wrote and to
 * attack the audit table.
 *
 * The tests run in order and share the database: the first one applies the migrations.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "store/store.h"

#define MAX_SEEN       128
#define PAYLOAD_MAX    96
#define NOTIFY_WAIT_MS 5000
#define ONE_HOUR       3600

static const char *conninfo;
static store_t *st;       /* the store under test */
static store_t *listener; /* a second connection: LISTEN */
static PGconn *raw;       /* checks and attacks, bypassing the store */

static char seen[MAX_SEEN][PAYLOAD_MAX];
static int num_seen;

/* ---- helpers ---- */

static void on_notify(void *ctx, const char *payload)
{
    if (num_seen < MAX_SEEN)
        snprintf(seen[num_seen++], PAYLOAD_MAX, "%s", payload);
}

static int seen_index(const char *payload)
{
    for (int i = 0; i != num_seen; ++i)
        if (strcmp(seen[i], payload) == 0)
            return i;
    return -1;
}

/* Forgets every notification received so far (and any already on its way). */
static void forget_notifications(void)
{
    int before;
    do {
        before = num_seen;
        assert_int_equal(store_wait_notify(listener, 50, on_notify, NULL), 0);
    } while (num_seen != before);
    num_seen = 0;
}

/* Waits until `payload` has been received by the listener. */
static void expect_notification(const char *payload)
{
    for (int waited = 0; seen_index(payload) < 0 && waited < NOTIFY_WAIT_MS; waited += 100)
        assert_int_equal(store_wait_notify(listener, 100, on_notify, NULL), 0);
    if (seen_index(payload) < 0)
        fail_msg("notification \"%s\" not received", payload);
}

static void expect_no_notification(const char *payload)
{
    assert_int_equal(store_wait_notify(listener, 300, on_notify, NULL), 0);
    if (seen_index(payload) >= 0)
        fail_msg("unexpected notification \"%s\"", payload);
}

static void hash_of(const char *secret, uint8_t out[STORE_HASH_LEN])
{
    SHA256((const unsigned char *)secret, strlen(secret), out);
}

static void user_payload(int64_t id, char *buf, size_t len)
{
    snprintf(buf, len, "user:%lld", (long long)id);
}

static void session_payload(const uint8_t hash[STORE_HASH_LEN], char *buf, size_t len)
{
    size_t pos = (size_t)snprintf(buf, len, "session:");
    for (size_t i = 0; i != STORE_HASH_LEN; ++i)
        pos += (size_t)snprintf(buf + pos, len - pos, "%02x", hash[i]);
}

/* Runs a query on the raw connection with text params; returns the result (caller clears). */
static PGresult *rawq(const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(raw, sql, n, NULL, params, NULL, NULL, 0);
    assert_non_null(res);
    return res;
}

static long long raw_count(const char *sql, const char *param)
{
    const char *p[] = {param};
    PGresult *res = rawq(sql, param != NULL ? 1 : 0, p);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    long long v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

/* Expects a statement on the raw connection to fail with the given SQLSTATE. */
static void raw_fails(const char *sql, const char *sqlstate)
{
    PGresult *res = PQexec(raw, sql);
    assert_non_null(res);
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), sqlstate);
    PQclear(res);
}

static int64_t new_user(const char *name)
{
    int64_t id = 0;
    assert_int_equal(store_user_create(st, name, NULL, NULL, &id), 0);
    assert_true(id > 0);
    return id;
}

static store_t *open_store(const char *extra)
{
    char ci[1024], err[256] = "";
    snprintf(ci, sizeof(ci), "%s %s", conninfo, extra);
    store_t *s = store_open(ci, err, sizeof(err));
    if (s == NULL)
        fail_msg("store_open: %s", err);
    return s;
}

/* Waits until the server no longer lists a backend with that application_name. */
static void terminate_backend(const char *appname)
{
    const char *p[] = {appname};
    PGresult *res = rawq("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", 1, p);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 1);
    PQclear(res);
    for (int i = 0;
         i < 100 && raw_count("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", appname) != 0; ++i)
        usleep(50 * 1000);
}

/* ---- setup ---- */

static int group_setup(void **state)
{
    char err[256] = "";
    if ((st = store_open(conninfo, err, sizeof(err))) == NULL ||
        (listener = store_open(conninfo, err, sizeof(err))) == NULL) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    raw = PQconnectdb(conninfo);
    if (PQstatus(raw) != CONNECTION_OK) {
        fprintf(stderr, "raw connection: %s", PQerrorMessage(raw));
        return -1;
    }
    if (store_listen(listener) != 0) {
        fprintf(stderr, "store_listen failed\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    store_close(st);
    store_close(listener);
    PQfinish(raw);
    return 0;
}

/* ---- migrations ---- */

static void count_log(void *ctx, const char *msg)
{
    ++*(int *)ctx;
}

struct migrate_job {
    store_t *st;
    int result;
    int logged;
};

static void *migrate_thread(void *arg)
{
    struct migrate_job *job = arg;
    job->result = store_migrate(job->st, count_log, &job->logged);
    return NULL;
}

static void test_migrate_twice(void **state)
{
    int fresh = raw_count("SELECT count(*) FROM pg_tables WHERE tablename = 'schema_migrations'", NULL) == 0;
    int first;
    if (fresh) {
        /* Two instances migrating at once: the advisory lock lets one apply everything, the other nothing. */
        struct migrate_job a = {open_store("application_name=migrate_a")},
                           b = {open_store("application_name=migrate_b")};
        pthread_t ta, tb;
        assert_int_equal(pthread_create(&ta, NULL, migrate_thread, &a), 0);
        assert_int_equal(pthread_create(&tb, NULL, migrate_thread, &b), 0);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        store_close(a.st);
        store_close(b.st);
        assert_true(a.result >= 0 && b.result >= 0);
        first = a.result + b.result;
        assert_true(first >= 1);
        assert_true(a.result == 0 || b.result == 0);
        assert_int_equal(a.logged + b.logged, first);
    } else {
        int logged = 0;
        first = store_migrate(st, count_log, &logged);
        assert_true(first >= 0);
        print_message("database was not fresh: first store_migrate applied %d\n", first);
    }
    int logged = 0;
    assert_int_equal(store_migrate(st, count_log, &logged), 0);
    assert_int_equal(logged, 0);
    assert_int_equal(store_migrate(st, NULL, NULL), 0);
    assert_int_equal(raw_count("SELECT count(*) FROM schema_migrations WHERE version = 1 AND name = '001_init'", NULL),
                     1);
}

static void test_ping_and_query_count(void **state)
{
    uint64_t before = store_query_count(st);
    assert_int_equal(store_ping(st), 0);
    assert_int_equal(store_query_count(st), before + 1);
}

/* ---- users and groups ---- */

static void test_user_create_and_get(void **state)
{
    int64_t id = 0, other = 0;
    store_user_t u;

    assert_int_equal(store_user_create(st, "Alice", "alice@example.org", "Alice Liddell", &id), 0);
    assert_int_equal(store_user_create(st, "alice", NULL, NULL, &other), -EEXIST);
    assert_int_equal(store_user_create(st, "ALICE", NULL, NULL, &other), -EEXIST);
    assert_int_equal(store_user_create(st, "", NULL, NULL, &other), -EINVAL);

    assert_int_equal(store_user_get(st, "aLiCe", &u), 0);
    assert_int_equal(u.id, id);
    assert_string_equal(u.username, "Alice");
    assert_string_equal(u.email, "alice@example.org");
    assert_string_equal(u.display_name, "Alice Liddell");
    assert_int_equal(u.disabled, 0);
    assert_int_equal(u.num_groups, 0);
    assert_non_null(u.groups);
    assert_null(u.groups[0]);
    store_user_dispose(&u);

    assert_int_equal(store_user_get_by_id(st, id, &u), 0);
    assert_string_equal(u.username, "Alice");
    store_user_dispose(&u);

    other = new_user("bob");
    assert_int_equal(store_user_get_by_id(st, other, &u), 0);
    assert_string_equal(u.username, "bob");
    assert_null(u.email);
    assert_null(u.display_name);
    store_user_dispose(&u);

    assert_int_equal(store_user_get(st, "nobody", &u), -ENOENT);
    assert_int_equal(store_user_get_by_id(st, 999999999, &u), -ENOENT);
    /* A value is a parameter, never SQL. */
    assert_int_equal(store_user_get(st, "x' OR '1'='1", &u), -ENOENT);
}

static void test_groups(void **state)
{
    int64_t id = new_user("carol"), other = new_user("dave");
    char payload[64];
    store_user_t u;

    user_payload(id, payload, sizeof(payload));
    forget_notifications();
    assert_int_equal(store_group_add_member(st, id, "zeta"), 0);
    expect_notification(payload);
    assert_int_equal(store_group_add_member(st, id, "Alpha"), 0);
    assert_int_equal(store_group_add_member(st, id, "beta"), 0);
    assert_int_equal(store_group_add_member(st, other, "ALPHA"), 0); /* the same group, whatever the case */

    assert_int_equal(store_user_get(st, "carol", &u), 0);
    assert_int_equal(u.num_groups, 3);
    assert_string_equal(u.groups[0], "Alpha");
    assert_string_equal(u.groups[1], "beta");
    assert_string_equal(u.groups[2], "zeta");
    assert_null(u.groups[3]);
    store_user_dispose(&u);
    assert_int_equal(raw_count("SELECT count(*) FROM groups WHERE lower(name) = 'alpha'", NULL), 1);

    /* Adding again changes nothing and announces nothing. */
    forget_notifications();
    assert_int_equal(store_group_add_member(st, id, "ALPHA"), 0);
    expect_no_notification(payload);

    assert_int_equal(store_group_remove_member(st, id, "BETA"), 0);
    expect_notification(payload);
    assert_int_equal(store_group_remove_member(st, id, "beta"), -ENOENT);
    assert_int_equal(store_group_remove_member(st, id, "no such group"), -ENOENT);
    assert_int_equal(store_user_get_by_id(st, id, &u), 0);
    assert_int_equal(u.num_groups, 2);
    assert_string_equal(u.groups[0], "Alpha");
    assert_string_equal(u.groups[1], "zeta");
    assert_null(u.groups[2]);
    store_user_dispose(&u);

    assert_int_equal(store_user_get_by_id(st, other, &u), 0);
    assert_int_equal(u.num_groups, 1);
    assert_string_equal(u.groups[0], "Alpha");
    store_user_dispose(&u);

    /* Unknown user: nothing is created, not even the group. */
    assert_int_equal(store_group_add_member(st, 999999999, "ghosts"), -ENOENT);
    assert_int_equal(raw_count("SELECT count(*) FROM groups WHERE name = 'ghosts'", NULL), 0);
}

/* ---- sessions ---- */

static void test_session_lifecycle(void **state)
{
    int64_t id = new_user("erin");
    uint8_t h[STORE_HASH_LEN], h2[STORE_HASH_LEN];
    char payload[128];
    store_session_t s;

    assert_int_equal(store_group_add_member(st, id, "staff"), 0);
    assert_int_equal(store_group_add_member(st, id, "admins"), 0);
    hash_of("session-erin-1", h);
    hash_of("session-erin-2", h2);
    time_t before = time(NULL);
    assert_int_equal(store_session_create(st, h, "sid-erin-1", id, ONE_HOUR, 600, "192.0.2.1"), 0);
    assert_int_equal(store_session_create(st, h, "sid-erin-other", id, ONE_HOUR, 600, NULL), -EEXIST);
    assert_int_equal(store_session_create(st, h2, "sid-erin-1", id, ONE_HOUR, 600, NULL), -EEXIST);
    assert_int_equal(store_session_create(st, h2, "sid-nobody", 999999999, ONE_HOUR, 600, NULL), -ENOENT);

    assert_int_equal(store_session_lookup(st, h, &s), 0);
    assert_string_equal(s.public_id, "sid-erin-1");
    assert_int_equal(s.user.id, id);
    assert_string_equal(s.user.username, "erin");
    assert_int_equal(s.user.num_groups, 2);
    assert_string_equal(s.user.groups[0], "admins");
    assert_string_equal(s.user.groups[1], "staff");
    assert_null(s.user.groups[2]);
    assert_int_equal(s.idle_timeout, 600);
    assert_true(s.created_at >= before - 1 && s.created_at <= time(NULL) + 1);
    assert_true(s.last_seen >= s.created_at);
    assert_true(s.expires_at - s.created_at >= ONE_HOUR - 1 && s.expires_at - s.created_at <= ONE_HOUR + 1);
    store_session_dispose(&s);
    assert_int_equal(store_session_lookup(st, h2, &s), -ENOENT);

    assert_int_equal(store_session_touch(st, h), 0);
    assert_int_equal(store_session_touch(st, h2), -ENOENT);

    session_payload(h, payload, sizeof(payload));
    forget_notifications();
    assert_int_equal(store_session_delete(st, h), 0);
    expect_notification(payload);
    assert_int_equal(store_session_lookup(st, h, &s), -ENOENT);
    assert_int_equal(store_session_delete(st, h), -ENOENT);
    assert_int_equal(store_session_touch(st, h), -ENOENT);
}

static store_mfa_factor_t factor(const char *kind, const char *sealed)
{
    store_mfa_factor_t f = {0};
    snprintf(f.kind, sizeof(f.kind), "%s", kind);
    snprintf(f.algorithm, sizeof(f.algorithm), "SHA1");
    f.digits = 6;
    f.period = 30;
    f.sealed = (uint8_t *)sealed;
    f.sealed_len = strlen(sealed) + 1; /* binary-safe: the NUL goes in and must come back */
    return f;
}

static void test_mfa_factors_and_replay(void **state)
{
    int64_t id = new_user("mona");
    store_mfa_factor_t got, f = factor("totp", "sealed\x01one");
    uint8_t hashes[3][STORE_HASH_LEN];

    assert_int_equal(store_mfa_get(st, id, 1, &got), -ENOENT);
    assert_int_equal(store_mfa_begin(st, id, &f), 0);
    assert_int_equal(store_mfa_get(st, id, 1, &got), -ENOENT); /* pending only */
    assert_int_equal(store_mfa_get(st, id, 0, &got), 0);
    assert_int_equal(got.id, f.id);
    assert_false(got.confirmed);
    assert_int_equal(got.sealed_len, f.sealed_len);
    assert_memory_equal(got.sealed, f.sealed, f.sealed_len);
    store_mfa_factor_dispose(&got);

    hash_of("code-1", hashes[0]);
    hash_of("code-2", hashes[1]);
    hash_of("code-3", hashes[2]);
    assert_int_equal(store_mfa_confirm(st, id, f.id, 1000, 0, (const uint8_t(*)[STORE_HASH_LEN])hashes, 3), 0);
    assert_int_equal(store_mfa_confirm(st, id, f.id, 1000, 0, (const uint8_t(*)[STORE_HASH_LEN])hashes, 3), -ENOENT);
    assert_int_equal(store_mfa_get(st, id, 1, &got), 0);
    assert_true(got.confirmed);
    assert_int_equal(got.last_step, 1000);
    store_mfa_factor_dispose(&got);

    /* each step once, never backwards */
    assert_int_equal(store_mfa_accept_step(st, f.id, 1000), -ESTALE);
    assert_int_equal(store_mfa_accept_step(st, f.id, 999), -ESTALE);
    assert_int_equal(store_mfa_accept_step(st, f.id, 1001), 0);
    assert_int_equal(store_mfa_accept_step(st, f.id, 1001), -ESTALE);

    /* recovery codes: single use */
    unsigned left = 99;
    assert_int_equal(store_mfa_recovery_use(st, id, hashes[1], &left), 0);
    assert_int_equal(left, 2);
    assert_int_equal(store_mfa_recovery_use(st, id, hashes[1], &left), -ENOENT);
    uint8_t other[STORE_HASH_LEN];
    hash_of("not-a-code", other);
    assert_int_equal(store_mfa_recovery_use(st, id, other, NULL), -ENOENT);
    /* a new set voids the old one */
    assert_int_equal(store_mfa_recovery_replace(st, id, (const uint8_t(*)[STORE_HASH_LEN]) & other, 1), 0);
    assert_int_equal(store_mfa_recovery_use(st, id, hashes[0], NULL), -ENOENT);
    assert_int_equal(store_mfa_recovery_left(st, id, &left), 0);
    assert_int_equal(left, 1);

    /* a replacement stays pending while the confirmed factor is in force, then takes over */
    store_mfa_factor_t h = factor("hotp", "sealed\x02two");
    assert_int_equal(store_mfa_begin(st, id, &h), 0);
    assert_int_equal(store_mfa_get(st, id, 1, &got), 0);
    assert_int_equal(got.id, f.id);
    store_mfa_factor_dispose(&got);
    assert_int_equal(store_mfa_confirm(st, id, h.id, -1, 5, (const uint8_t(*)[STORE_HASH_LEN])hashes, 1), 0);
    assert_int_equal(store_mfa_get(st, id, 1, &got), 0);
    assert_int_equal(got.id, h.id);
    assert_string_equal(got.kind, "hotp");
    assert_int_equal(got.counter, 5);
    store_mfa_factor_dispose(&got);
    assert_int_equal(store_mfa_accept_counter(st, h.id, 4, 9), -ESTALE); /* not the counter verified against */
    assert_int_equal(store_mfa_accept_counter(st, h.id, 5, 9), 0);
    assert_int_equal(store_mfa_accept_counter(st, h.id, 5, 9), -ESTALE);
    assert_int_equal(raw_count("SELECT count(*) FROM mfa_factors f JOIN users u ON u.id = f.user_id "
                               "WHERE u.username = $1",
                               "mona"),
                     1); /* the replaced factor is gone */
}

static void test_mfa_challenges_and_reset(void **state)
{
    int64_t id = new_user("nils");
    uint8_t c[STORE_HASH_LEN], sess[STORE_HASH_LEN], up[STORE_HASH_LEN];
    int64_t uid = 0;
    char purpose[8], *return_to = NULL, payload[128];
    store_session_t s;

    hash_of("challenge-nils", c);
    assert_int_equal(store_challenge_create(st, c, id, "verify", "/app", 300), 0);
    assert_int_equal(store_challenge_get(st, c, 0, 2, &uid, purpose, &return_to), 0);
    assert_int_equal(uid, id);
    assert_string_equal(purpose, "verify");
    assert_string_equal(return_to, "/app");
    free(return_to);
    assert_int_equal(store_challenge_get(st, c, 1, 2, &uid, purpose, &return_to), 0);
    free(return_to);
    assert_int_equal(store_challenge_get(st, c, 1, 2, &uid, purpose, &return_to), 0);
    free(return_to);
    assert_int_equal(store_challenge_get(st, c, 1, 2, &uid, purpose, &return_to), -ESTALE); /* third attempt */
    assert_int_equal(store_challenge_get(st, c, 0, 2, &uid, purpose, &return_to), -ENOENT); /* and gone */
    assert_int_equal(store_challenge_create(st, c, id, "enrol", "/", 0), 0);                /* expires at once */
    assert_int_equal(store_challenge_get(st, c, 0, 2, &uid, purpose, &return_to), -ENOENT);

    /* step-up: a new id with both methods, same expiry; the old one is gone and announced */
    hash_of("session-nils", sess);
    hash_of("session-nils-up", up);
    assert_int_equal(store_session_create(st, sess, "sid-nils", id, ONE_HOUR, 600, NULL), 0);
    assert_int_equal(store_session_lookup(st, sess, &s), 0);
    assert_int_equal(s.amr, STORE_AMR_PWD);
    time_t expires = s.expires_at;
    store_session_dispose(&s);
    session_payload(sess, payload, sizeof(payload));
    forget_notifications();
    assert_int_equal(store_session_elevate(st, sess, up, "sid-nils-up", STORE_AMR_PWD | STORE_AMR_OTP), 0);
    expect_notification(payload);
    assert_int_equal(store_session_lookup(st, sess, &s), -ENOENT);
    assert_int_equal(store_session_lookup(st, up, &s), 0);
    assert_int_equal(s.amr, STORE_AMR_PWD | STORE_AMR_OTP);
    assert_int_equal(s.expires_at, expires);
    store_session_dispose(&s);
    assert_int_equal(store_session_elevate(st, sess, c, "sid-nils-again", STORE_AMR_OTP), -ENOENT);

    /* the administrator's reset: factors, codes, challenges and sessions, announced for the user */
    store_mfa_factor_t f = factor("totp", "x");
    assert_int_equal(store_mfa_begin(st, id, &f), 0);
    assert_int_equal(store_challenge_create(st, c, id, "verify", "/", 300), 0);
    user_payload(id, payload, sizeof(payload));
    forget_notifications();
    assert_int_equal(store_mfa_remove(st, id, 1), 0);
    expect_notification(payload);
    assert_int_equal(raw_count("SELECT count(*) FROM mfa_factors f JOIN users u ON u.id = f.user_id "
                               "WHERE u.username = $1",
                               "nils"),
                     0);
    assert_int_equal(raw_count("SELECT count(*) FROM mfa_challenges m JOIN users u ON u.id = m.user_id "
                               "WHERE u.username = $1",
                               "nils"),
                     0);
    assert_int_equal(store_session_lookup(st, up, &s), -ENOENT);
}

static void test_disable_ends_sessions(void **state)
{
    int64_t id = new_user("frank");
    uint8_t h1[STORE_HASH_LEN], h2[STORE_HASH_LEN], h3[STORE_HASH_LEN];
    char payload[64];
    store_session_t s;
    store_user_t u;

    hash_of("frank-1", h1);
    hash_of("frank-2", h2);
    hash_of("frank-3", h3);
    assert_int_equal(store_session_create(st, h1, "sid-frank-1", id, ONE_HOUR, 600, NULL), 0);
    assert_int_equal(store_session_create(st, h2, "sid-frank-2", id, ONE_HOUR, 600, NULL), 0);
    assert_int_equal(store_session_lookup(st, h1, &s), 0);
    store_session_dispose(&s);

    user_payload(id, payload, sizeof(payload));
    forget_notifications();
    assert_int_equal(store_user_set_disabled(st, id, 1), 0);
    expect_notification(payload); /* received by the second connection */
    char idstr[24];
    snprintf(idstr, sizeof(idstr), "%lld", (long long)id);
    assert_int_equal(raw_count("SELECT count(*) FROM sessions WHERE user_id = $1::bigint", idstr), 0);
    assert_int_equal(store_session_lookup(st, h1, &s), -ENOENT);
    assert_int_equal(store_session_lookup(st, h2, &s), -ENOENT);
    assert_int_equal(store_user_get_by_id(st, id, &u), 0);
    assert_int_equal(u.disabled, 1);
    store_user_dispose(&u);

    /* A session of a disabled user is never valid. */
    assert_int_equal(store_session_create(st, h3, "sid-frank-3", id, ONE_HOUR, 600, NULL), 0);
    assert_int_equal(store_session_lookup(st, h3, &s), -ENOENT);

    assert_int_equal(store_user_set_disabled(st, id, 0), 0);
    assert_int_equal(store_user_get(st, "FRANK", &u), 0);
    assert_int_equal(u.disabled, 0);
    store_user_dispose(&u);
    assert_int_equal(store_session_lookup(st, h1, &s), -ENOENT); /* gone for good */
    assert_int_equal(store_session_lookup(st, h3, &s), 0);
    store_session_dispose(&s);

    assert_int_equal(store_user_set_disabled(st, 999999999, 1), -ENOENT);
}

/* ---- one-time tokens ---- */

static void test_tokens(void **state)
{
    int64_t id = new_user("grace"), got = 0;
    uint8_t t1[STORE_HASH_LEN], t2[STORE_HASH_LEN], t3[STORE_HASH_LEN], t4[STORE_HASH_LEN], unknown[STORE_HASH_LEN];
    uint8_t s0[STORE_HASH_LEN], s1[STORE_HASH_LEN], s2[STORE_HASH_LEN];
    char payload[64], *hash = NULL;
    store_session_t s;

    hash_of("token-1", t1);
    hash_of("token-2", t2);
    hash_of("token-3", t3);
    hash_of("token-4", t4);
    hash_of("token-unknown", unknown);
    hash_of("grace-s0", s0);
    hash_of("grace-s1", s1);
    hash_of("grace-s2", s2);

    assert_int_equal(store_password_get(st, id, &hash), -ENOENT);
    assert_null(hash);
    assert_int_equal(store_token_create(st, t1, id, "setup", ONE_HOUR), 0);
    assert_int_equal(store_token_create(st, t1, id, "setup", ONE_HOUR), -EEXIST);
    assert_int_equal(store_token_create(st, unknown, 999999999, "setup", ONE_HOUR), -ENOENT);
    assert_int_equal(store_token_peek(st, t1, "setup", &got), 0);
    assert_int_equal(got, id);
    assert_int_equal(store_token_peek(st, t1, "reset", &got), -ENOENT);
    assert_int_equal(store_token_peek(st, unknown, "setup", &got), -ENOENT);

    /* A new token of the same purpose voids the old one; other purposes are untouched. */
    assert_int_equal(store_token_create(st, t3, id, "reset", ONE_HOUR), 0);
    assert_int_equal(store_token_create(st, t2, id, "setup", ONE_HOUR), 0);
    assert_int_equal(store_token_peek(st, t1, "setup", &got), -ESTALE);
    assert_int_equal(store_token_peek(st, t2, "setup", &got), 0);
    assert_int_equal(store_token_peek(st, t3, "reset", &got), 0);

    /* Redeeming: password set, other sessions ended (NOTIFY), new session opened, all other tokens void. */
    assert_int_equal(store_session_create(st, s0, "sid-grace-0", id, ONE_HOUR, 600, NULL), 0);
    user_payload(id, payload, sizeof(payload));
    forget_notifications();
    got = 0;
    assert_int_equal(store_token_redeem_password(st, t2, "setup", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", s1,
                                                 "sid-grace-1", ONE_HOUR, 600, "198.51.100.7", &got),
                     0);
    assert_int_equal(got, id);
    expect_notification(payload);
    assert_int_equal(store_password_get(st, id, &hash), 0);
    assert_string_equal(hash, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
    free(hash);
    assert_int_equal(store_session_lookup(st, s1, &s), 0);
    assert_string_equal(s.public_id, "sid-grace-1");
    assert_int_equal(s.user.id, id);
    store_session_dispose(&s);
    assert_int_equal(store_session_lookup(st, s0, &s), -ENOENT);
    assert_int_equal(store_token_peek(st, t3, "reset", &got), -ESTALE);

    /* Used tokens stay used; unknown ones are unknown. */
    assert_int_equal(
        store_token_redeem_password(st, t2, "setup", "other", s2, "sid-grace-2", ONE_HOUR, 600, NULL, &got), -ESTALE);
    assert_int_equal(
        store_token_redeem_password(st, t1, "setup", "other", s2, "sid-grace-2", ONE_HOUR, 600, NULL, &got), -ESTALE);
    assert_int_equal(
        store_token_redeem_password(st, unknown, "setup", "other", s2, "sid-grace-2", ONE_HOUR, 600, NULL, &got),
        -ENOENT);
    assert_int_equal(store_session_lookup(st, s2, &s), -ENOENT);

    /* A redeem that fails at its last step (public id taken by another user's session) changes nothing: the
     * token stays usable, the password and the user's sessions stay as they were. */
    assert_int_equal(store_token_create(st, t4, id, "reset", ONE_HOUR), 0);
    assert_int_equal(
        store_token_redeem_password(st, t4, "reset", "changed", s2, "sid-frank-3", ONE_HOUR, 600, NULL, &got), -EEXIST);
    assert_int_equal(store_token_peek(st, t4, "reset", &got), 0);
    assert_int_equal(store_password_get(st, id, &hash), 0);
    assert_string_equal(hash, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
    free(hash);
    assert_int_equal(store_session_lookup(st, s1, &s), 0);
    store_session_dispose(&s);

    /* A token of a disabled user cannot be used. */
    assert_int_equal(store_user_set_disabled(st, id, 1), 0);
    assert_int_equal(store_token_peek(st, t4, "reset", &got), -ESTALE);
    assert_int_equal(store_user_set_disabled(st, id, 0), 0);
    assert_int_equal(store_token_peek(st, t4, "reset", &got), 0);

    /* ttl 0: expired at once. */
    assert_int_equal(store_token_create(st, t1 /* reused bytes are fine: a new row needs a new hash */, id, "x", 0),
                     -EEXIST);
    hash_of("token-expired-now", t1);
    assert_int_equal(store_token_create(st, t1, id, "invite", 0), 0);
    usleep(20 * 1000);
    assert_int_equal(store_token_peek(st, t1, "invite", &got), -ESTALE);
}

/* ---- expiry (one sleep for all of it) ---- */

static void test_expiry(void **state)
{
    int64_t id = new_user("heidi"), got;
    uint8_t idle[STORE_HASH_LEN], absolute[STORE_HASH_LEN], fresh[STORE_HASH_LEN], tok[STORE_HASH_LEN],
        s[STORE_HASH_LEN];
    store_session_t out;

    hash_of("heidi-idle", idle);
    hash_of("heidi-absolute", absolute);
    hash_of("heidi-fresh", fresh);
    hash_of("heidi-token", tok);
    hash_of("heidi-new", s);
    assert_int_equal(store_session_create(st, idle, "sid-heidi-idle", id, ONE_HOUR, 1, NULL), 0);
    assert_int_equal(store_session_create(st, absolute, "sid-heidi-abs", id, 1, ONE_HOUR, NULL), 0);
    assert_int_equal(store_session_create(st, fresh, "sid-heidi-fresh", id, ONE_HOUR, ONE_HOUR, NULL), 0);
    assert_int_equal(store_token_create(st, tok, id, "reset", 1), 0);
    assert_int_equal(store_token_peek(st, tok, "reset", &got), 0);
    assert_int_equal(store_session_lookup(st, idle, &out), 0);
    store_session_dispose(&out);
    assert_int_equal(store_session_lookup(st, absolute, &out), 0);
    store_session_dispose(&out);

    sleep(2);

    assert_int_equal(store_session_lookup(st, idle, &out), -ENOENT);
    assert_int_equal(store_session_touch(st, idle), -ENOENT); /* cannot be revived */
    assert_int_equal(store_session_lookup(st, idle, &out), -ENOENT);
    assert_int_equal(store_session_lookup(st, absolute, &out), -ENOENT);
    assert_int_equal(store_session_lookup(st, fresh, &out), 0);
    store_session_dispose(&out);
    assert_int_equal(store_token_peek(st, tok, "reset", &got), -ESTALE);
    assert_int_equal(store_token_redeem_password(st, tok, "reset", "h", s, "sid-heidi-new", ONE_HOUR, 600, NULL, &got),
                     -ESTALE);
}

/* ---- audit ---- */

/* The canonical text of store/audit.c, built independently: COPY-text fields joined with '\n'. */
static void canon_field(char *buf, size_t len, size_t *pos, const char *f, int last)
{
    if (f == NULL) {
        *pos += (size_t)snprintf(buf + *pos, len - *pos, "\\N");
    } else {
        for (; *f != '\0'; ++f)
            *pos += (size_t)snprintf(buf + *pos, len - *pos, "%s",
                                     *f == '\\'   ? "\\\\"
                                     : *f == '\n' ? "\\n"
                                                  : (char[2]){*f, '\0'});
    }
    if (!last)
        *pos += (size_t)snprintf(buf + *pos, len - *pos, "\n");
    assert_true(*pos < len);
}

static void test_audit_chain(void **state)
{
    static const uint8_t key[] = "0123456789abcdef0123456789abcdef";
    uint8_t long_key[65] = {0};
    store_audit_event_t ev = {
        .actor = "cli:root", .action = "user.invite", .target = "user:alice", .outcome = "success"};

    /* Without a key: no mac. */
    assert_int_equal(store_audit_append(st, &ev), 0);
    assert_int_equal(raw_count("SELECT count(*) FROM audit_events WHERE mac IS NULL AND prev_mac IS NULL", NULL), 1);

    assert_int_equal(store_set_audit_key(st, long_key, sizeof(long_key)), -EINVAL);
    assert_int_equal(store_set_audit_key(st, key, sizeof(key) - 1), 0);
    store_audit_event_t events[] = {
        {.actor = "user:alice",
         .action = "login.success",
         .outcome = "success",
         .source_addr = "192.0.2.1",
         .request_id = "req-1",
         .details = "{\"b\": 1, \"a\": \"x\\ny\"}"},
        {.actor = "system", .action = "odd\nvalues", .target = "back\\slash"},
        {.actor = "scim:hr", .action = "user.disable", .target = "user:bob", .outcome = "success", .details = "{}"},
    };
    for (size_t i = 0; i != sizeof(events) / sizeof(events[0]); ++i)
        assert_int_equal(store_audit_append(st, &events[i]), 0);

    /* Refused input, nothing written. */
    long long rows = raw_count("SELECT count(*) FROM audit_events", NULL);
    store_audit_event_t bad = {.actor = "system", .action = "x", .details = "not json"};
    assert_int_equal(store_audit_append(st, &bad), -EINVAL);
    bad.details = "[1, 2]";
    assert_int_equal(store_audit_append(st, &bad), -EINVAL);
    bad.details = NULL;
    bad.actor = NULL;
    assert_int_equal(store_audit_append(st, &bad), -EINVAL);
    assert_int_equal(raw_count("SELECT count(*) FROM audit_events", NULL), rows);

    /* The chain: each mac recomputed from the stored row; prev_mac of row n = mac of row n-1. */
    PGresult *res = rawq("SELECT id::text, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                         "actor, action, target, outcome, source_addr, request_id, details::text, "
                         "encode(prev_mac, 'hex'), encode(mac, 'hex'), length(prev_mac), length(mac) "
                         "FROM audit_events ORDER BY id",
                         0, NULL);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 4);
    assert_true(PQgetisnull(res, 0, 10)); /* the keyless row */
    assert_true(PQgetisnull(res, 1, 9));  /* first keyed row: the row before has no mac */
    for (int r = 1; r != 4; ++r) {
        char text[2048];
        size_t pos = 0;
        uint8_t prev[32], mac[32];
        unsigned maclen = 0;
        assert_false(PQgetisnull(res, r, 10));
        assert_string_equal(PQgetvalue(res, r, 12), "32");
        if (r > 1) {
            assert_string_equal(PQgetvalue(res, r, 9), PQgetvalue(res, r - 1, 10));
            for (int i = 0; i != 32; ++i)
                sscanf(PQgetvalue(res, r, 9) + 2 * i, "%2hhx", &prev[i]);
            memcpy(text, prev, 32);
            pos = 32;
        }
        for (int c = 0; c != 9; ++c)
            canon_field(text, sizeof(text), &pos, PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c), c == 8);
        HMAC(EVP_sha256(), key, (int)sizeof(key) - 1, (const unsigned char *)text, pos, mac, &maclen);
        assert_int_equal(maclen, 32);
        char hex[65];
        for (int i = 0; i != 32; ++i)
            snprintf(hex + 2 * i, 3, "%02x", mac[i]);
        assert_string_equal(hex, PQgetvalue(res, r, 10));
    }
    assert_string_equal(PQgetvalue(res, 1, 8), "{\"a\": \"x\\ny\", \"b\": 1}"); /* jsonb rendering */
    assert_string_equal(PQgetvalue(res, 2, 3), "odd\nvalues");
    PQclear(res);

    /* Append-only, for the table's owner (a superuser here) too. */
    raw_fails("UPDATE audit_events SET actor = 'someone else'", "42501");
    raw_fails("DELETE FROM audit_events", "42501");
    raw_fails("TRUNCATE audit_events", "42501");
    raw_fails("UPDATE audit_events SET mac = NULL WHERE id = (SELECT max(id) FROM audit_events)", "42501");
    assert_int_equal(raw_count("SELECT count(*) FROM audit_events", NULL), rows);
    assert_int_equal(raw_count("SELECT count(*) FROM information_schema.role_table_grants WHERE table_name = "
                               "'audit_events' AND grantee = 'PUBLIC'",
                               NULL),
                     0);

    /* read back: the verifier recomputes the same macs (the keyless row is counted, not covered) */
    store_audit_verify_t v;
    assert_int_equal(store_audit_verify(st, &v), 0);
    assert_int_equal(v.bad_id, 0);
    assert_null(v.reason);
    assert_int_equal(v.verified + v.unkeyed, rows);
    assert_int_equal(v.unkeyed, 1);
    assert_int_equal(strlen(v.head_mac), 64);

    assert_int_equal(store_set_audit_key(st, NULL, 0), 0);
    assert_int_equal(store_audit_verify(st, &v), -EINVAL);
}

/* ---- listing ---- */

struct listing {
    char names[32][32];
    int has_password[32];
    int n;
};

static void on_user(void *ctx, const store_user_t *u, int has_password)
{
    struct listing *l = ctx;
    if (l->n < 32) {
        snprintf(l->names[l->n], sizeof(l->names[0]), "%s", u->username);
        l->has_password[l->n++] = has_password;
    }
}

static void test_user_list(void **state)
{
    struct listing l = {0};
    static const char *const expected[] = {"Alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"};
    assert_int_equal(store_user_list(st, on_user, &l), 0);
    assert_int_equal(l.n, 8);
    for (int i = 0; i != 8; ++i) {
        assert_string_equal(l.names[i], expected[i]);
        assert_int_equal(l.has_password[i], strcmp(expected[i], "grace") == 0);
    }
}

/* ---- connection loss ---- */

static void test_reconnect(void **state)
{
    store_t *victim = open_store("application_name=portier_victim");
    store_t *lst = open_store("application_name=portier_listener");
    int64_t id = new_user("ivan");
    uint8_t h[STORE_HASH_LEN];
    char payload[128];
    int rc = 0;

    assert_int_equal(store_ping(victim), 0);
    terminate_backend("portier_victim");
    assert_int_equal(store_ping(victim), -EIO); /* this call fails ... */
    assert_int_equal(store_ping(victim), 0);    /* ... the next one reconnects */
    store_user_t u;
    assert_int_equal(store_user_get_by_id(victim, id, &u), 0);
    store_user_dispose(&u);

    /* The listener learns of the loss (-EIO), LISTENs again on a new connection and hears what follows. */
    assert_int_equal(store_listen(lst), 0);
    terminate_backend("portier_listener");
    for (int i = 0; i < 50 && (rc = store_wait_notify(lst, 100, on_notify, NULL)) == 0; ++i)
        ;
    assert_int_equal(rc, -EIO);
    assert_int_equal(store_wait_notify(lst, 10, on_notify, NULL), -EIO);
    assert_int_equal(store_listen(lst), 0);
    hash_of("ivan-1", h);
    assert_int_equal(store_session_create(st, h, "sid-ivan-1", id, ONE_HOUR, 600, NULL), 0);
    assert_int_equal(store_session_delete(st, h), 0);
    session_payload(h, payload, sizeof(payload));
    num_seen = 0;
    for (int waited = 0; seen_index(payload) < 0 && waited < NOTIFY_WAIT_MS; waited += 100)
        assert_int_equal(store_wait_notify(lst, 100, on_notify, NULL), 0);
    assert_true(seen_index(payload) >= 0);

    store_close(victim);
    store_close(lst);
}

int main(void)
{
    conninfo = getenv("PORTIER_TEST_PG");
    if (conninfo == NULL || conninfo[0] == '\0') {
        fprintf(stderr, "PORTIER_TEST_PG is not set (a libpq conninfo of an empty database): skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_twice),
        cmocka_unit_test(test_ping_and_query_count),
        cmocka_unit_test(test_user_create_and_get),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_session_lifecycle),
        cmocka_unit_test(test_disable_ends_sessions),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_audit_chain),
        cmocka_unit_test(test_user_list),
        cmocka_unit_test(test_mfa_factors_and_replay), /* after the listing: new users */
        cmocka_unit_test(test_mfa_challenges_and_reset),
        cmocka_unit_test(test_reconnect),
    };
    return cmocka_run_group_tests_name("store", tests, group_setup, group_teardown);
}
