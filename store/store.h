/*
 * store: every SQL statement portier runs, behind narrow functions. Knows libpq, nothing about HTTP.
 *
 * A store_t is one PostgreSQL connection, used by one thread at a time (a worker, the CLI, the revocation
 * listener). Calls block; event loops never call them: they post a job to the worker pool instead.
 * Functions return 0 on success or a negative errno-style code:
 *   -ENOENT not found, -EEXIST unique violation, -ESTALE expired/used token, -EIO database error
 *   (connection lost: the next call reconnects).
 * Strings handed out are malloc'd and owned by the out-struct; free them with the matching _dispose.
 */
#ifndef PORTIER_STORE_H
#define PORTIER_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define STORE_HASH_LEN       32 /* SHA-256 of a secret token */
#define STORE_NOTIFY_CHANNEL "portier_revoke"

typedef struct st_store_t store_t;

typedef struct st_store_user_t {
    int64_t id;
    char *username;
    char *email;        /* may be NULL */
    char *display_name; /* may be NULL */
    int disabled;
    char **groups; /* NULL-terminated, sorted by name */
    size_t num_groups;
} store_user_t;

typedef struct st_store_session_t {
    store_user_t user;
    char *public_id; /* disclosed session id ("sid" claim); not the secret */
    time_t created_at;
    time_t last_seen;
    time_t expires_at; /* absolute expiry */
    unsigned idle_timeout;
    unsigned amr; /* STORE_AMR_* bits: how the user authenticated */
} store_session_t;

/* Authentication methods of a session (sessions.auth_methods, RFC 8176 names). */
#define STORE_AMR_PWD 1u /* "pwd" */
#define STORE_AMR_OTP 2u /* "otp": TOTP, HOTP or a recovery code */

/* Connects (blocking). Returns NULL and an error message on failure. */
store_t *store_open(const char *conninfo, char *err, size_t errlen);
void store_close(store_t *st);
/* Sets the key of the audit hash chain (HMAC-SHA256; at most 64 bytes). Without a key, mac columns stay NULL. */
int store_set_audit_key(store_t *st, const uint8_t *key, size_t len) __attribute__((warn_unused_result));
/* Number of statements this connection sent so far (for tests/metrics). */
uint64_t store_query_count(const store_t *st);
/* 0 if the database answers a trivial query. */
int store_ping(store_t *st);

/* Applies pending migrations, each in its own transaction, recorded in schema_migrations. Idempotent.
 * Reports each applied migration to `log` (may be NULL). Returns number applied (>= 0) or -EIO. */
int store_migrate(store_t *st, void (*log)(void *ctx, const char *msg), void *ctx);
/* After migrating as the owner role (admin): grants the role of `runtime` what portier needs at run time, and
 * no more (audit_events: read and insert only), taking over objects that role still owns. Says to `log` when
 * both are the same role (nothing to do). 0 or -EIO. */
int store_grant_runtime(store_t *admin, store_t *runtime, void (*log)(void *ctx, const char *msg), void *ctx);
/* 1 when this connection's role could change the audit trail (superuser, or owner of audit_events), 0 when
 * not, < 0 on error. */
int store_role_owns_audit(store_t *st);

void store_user_dispose(store_user_t *u);
void store_session_dispose(store_session_t *s);

int store_user_create(store_t *st, const char *username, const char *email, const char *display_name, int64_t *id)
    __attribute__((warn_unused_result));
int store_user_get(store_t *st, const char *username, store_user_t *out) __attribute__((warn_unused_result));
/* By user name, else by email address when exactly one user has it (forgotten-password requests). */
int store_user_find_login(store_t *st, const char *name_or_email, store_user_t *out)
    __attribute__((warn_unused_result));
int store_user_get_by_id(store_t *st, int64_t id, store_user_t *out) __attribute__((warn_unused_result));
/* Sets disabled; when disabling, deletes the user's sessions and NOTIFYs "user:<id>" in the same transaction. */
int store_user_set_disabled(store_t *st, int64_t id, int disabled) __attribute__((warn_unused_result));
/* Calls cb for each user (ordered by username). */
/* has_password (may be NULL) tells whether a password is set. */
int store_user_list(store_t *st, void (*cb)(void *ctx, const store_user_t *u, int has_password), void *ctx)
    __attribute__((warn_unused_result));
/* Creates the group if needed. Membership changes NOTIFY "user:<id>" (the cached identity is stale). */
int store_group_add_member(store_t *st, int64_t user_id, const char *group) __attribute__((warn_unused_result));
int store_group_remove_member(store_t *st, int64_t user_id, const char *group) __attribute__((warn_unused_result));

/* Password hash (argon2id encoded string). get: -ENOENT when the user has none. */
int store_password_get(store_t *st, int64_t user_id, char **hash) __attribute__((warn_unused_result));

/* Per-account throttle (see credentials.c). */
typedef struct st_store_throttle_policy_t {
    unsigned free_attempts; /* consecutive failures before delays start (5) */
    unsigned max_delay;     /* cap of the exponential delay, seconds (900) */
    unsigned hard_lock;     /* consecutive failures that lock until unlock/reset (100) */
} store_throttle_policy_t;
/* Takes the gate before a password check: *allowed = 1 and the failure count incremented (reset it on success),
 * or *allowed = 0 when the account is currently locked (nothing changes). */
int store_throttle_reserve(store_t *st, int64_t user_id, const store_throttle_policy_t *pol, int *allowed,
                           unsigned *failures) __attribute__((warn_unused_result));
int store_throttle_reset(store_t *st, int64_t user_id) __attribute__((warn_unused_result));
/* Replaces the password hash (re-hash on login after a cost change). */
int store_password_set(store_t *st, int64_t user_id, const char *hash) __attribute__((warn_unused_result));
/* Password change by the user: new hash, outstanding tokens voided, every other session of the user deleted
 * (NOTIFY), the session keep_session kept. */
int store_password_change(store_t *st, int64_t user_id, const char *hash, const uint8_t keep_session[STORE_HASH_LEN])
    __attribute__((warn_unused_result));

/* One-time tokens (setup/invitation, reset). Only the SHA-256 of the token is stored. Creating a token for a
 * purpose invalidates earlier unused tokens of the same user and purpose. */
int store_token_create(store_t *st, const uint8_t hash[STORE_HASH_LEN], int64_t user_id, const char *purpose,
                       unsigned ttl) __attribute__((warn_unused_result));
/* Looks a token up without consuming it: 0 + user id, -ENOENT unknown, -ESTALE used or expired. */
int store_token_peek(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *purpose, int64_t *user_id)
    __attribute__((warn_unused_result));
/* In one transaction: consume the token (row-locked; -ENOENT/-ESTALE as above), set the user's password hash,
 * delete the user's other sessions (NOTIFY), and create the new session (none when session_hash is NULL: the
 * user still has a second factor to prove). */
int store_token_redeem_password(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *purpose,
                                const char *password_hash, const uint8_t session_hash[STORE_HASH_LEN],
                                const char *public_id, unsigned absolute_ttl, unsigned idle_timeout,
                                const char *source_addr, int64_t *user_id) __attribute__((warn_unused_result));

/* Sessions: keyed by SHA-256 of the cookie value. */
int store_session_create(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *public_id, int64_t user_id,
                         unsigned absolute_ttl, unsigned idle_timeout, const char *source_addr)
    __attribute__((warn_unused_result));
/* Same, recording how the user authenticated (STORE_AMR_* bits); store_session_create records a password. */
int store_session_create_amr(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *public_id, int64_t user_id,
                             unsigned absolute_ttl, unsigned idle_timeout, const char *source_addr, unsigned amr)
    __attribute__((warn_unused_result));
/* Step-up: replaces the session old_hash by new_hash/public_id with the methods `amr` added, keeping its user,
 * creation time and absolute expiry (a new id after a privilege change: no fixation). Deletes the old row and
 * NOTIFYs it, in one transaction. -ENOENT when old_hash is not a valid session. */
int store_session_elevate(store_t *st, const uint8_t old_hash[STORE_HASH_LEN], const uint8_t new_hash[STORE_HASH_LEN],
                          const char *public_id, unsigned amr) __attribute__((warn_unused_result));
/* Valid (not expired absolute or idle, user enabled) session with its user and groups, or -ENOENT. */
int store_session_lookup(store_t *st, const uint8_t hash[STORE_HASH_LEN], store_session_t *out)
    __attribute__((warn_unused_result));
/* Records activity (idle timeout is measured from last_seen). */
int store_session_touch(store_t *st, const uint8_t hash[STORE_HASH_LEN]) __attribute__((warn_unused_result));
/* Deletes the session and NOTIFYs "session:<hex hash>". */
int store_session_delete(store_t *st, const uint8_t hash[STORE_HASH_LEN]) __attribute__((warn_unused_result));

/* Second factors (store/mfa.c). Secrets are stored sealed by the caller (mfa_seal); the store never sees them
 * in clear. */
typedef struct st_store_mfa_factor_t {
    int64_t id;
    int confirmed;
    char kind[8];      /* "totp" | "hotp" */
    char algorithm[8]; /* "SHA1" | "SHA256" | "SHA512" */
    unsigned digits, period;
    int64_t last_step; /* TOTP: last accepted step, -1 none */
    int64_t counter;   /* HOTP: next counter expected */
    time_t created_at;
    uint8_t *sealed;
    size_t sealed_len;
} store_mfa_factor_t;
void store_mfa_factor_dispose(store_mfa_factor_t *f);
/* The user's confirmed (confirmed = 1) or pending (0) factor; -ENOENT when there is none. */
int store_mfa_get(store_t *st, int64_t user_id, int confirmed, store_mfa_factor_t *out)
    __attribute__((warn_unused_result));
/* Starts an enrolment: replaces the user's pending factor by this one (f->kind, algorithm, digits, period,
 * sealed); sets f->id. */
int store_mfa_begin(store_t *st, int64_t user_id, store_mfa_factor_t *f) __attribute__((warn_unused_result));
/* Activates pending factor `factor_id` with its first accepted step/counter, replacing the user's confirmed
 * factor (if any) and their recovery codes by `hashes` (n of them), in one transaction. */
int store_mfa_confirm(store_t *st, int64_t user_id, int64_t factor_id, int64_t last_step, int64_t counter,
                      const uint8_t (*hashes)[STORE_HASH_LEN], size_t n) __attribute__((warn_unused_result));
/* Records an accepted TOTP step, only if it is later than the stored one: -ESTALE when another request
 * accepted this step (or a later one) first. Atomic across instances. */
int store_mfa_accept_step(store_t *st, int64_t factor_id, int64_t step) __attribute__((warn_unused_result));
/* Moves the HOTP counter from `expected` to `next`: -ESTALE when it is no longer `expected`. */
int store_mfa_accept_counter(store_t *st, int64_t factor_id, int64_t expected, int64_t next)
    __attribute__((warn_unused_result));
/* Consumes an unused recovery code: 0 and *left = unused codes remaining, or -ENOENT (unknown or used). */
int store_mfa_recovery_use(store_t *st, int64_t user_id, const uint8_t hash[STORE_HASH_LEN], unsigned *left)
    __attribute__((warn_unused_result));
/* Unused recovery codes of the user. */
int store_mfa_recovery_left(store_t *st, int64_t user_id, unsigned *left) __attribute__((warn_unused_result));
/* Replaces the user's recovery codes. */
int store_mfa_recovery_replace(store_t *st, int64_t user_id, const uint8_t (*hashes)[STORE_HASH_LEN], size_t n)
    __attribute__((warn_unused_result));
/* Removes the user's factors, recovery codes and challenges. With end_sessions, also deletes every session of
 * the user and NOTIFYs "user:<id>" (administrator reset). One transaction. */
int store_mfa_remove(store_t *st, int64_t user_id, int end_sessions) __attribute__((warn_unused_result));

/* Half-authenticated state ("verify": the second factor is due; "enrol": the user must enrol one first). */
int store_challenge_create(store_t *st, const uint8_t hash[STORE_HASH_LEN], int64_t user_id, const char *purpose,
                           const char *return_to, unsigned ttl) __attribute__((warn_unused_result));
/* Looks a live challenge up, counting one attempt when `attempt` is set: 0 + user id, purpose (8 bytes) and
 * return_to (malloc'd), -ENOENT unknown or expired, -ESTALE out of attempts (the challenge is then deleted). */
int store_challenge_get(store_t *st, const uint8_t hash[STORE_HASH_LEN], int attempt, unsigned max_attempts,
                        int64_t *user_id, char purpose[8], char **return_to) __attribute__((warn_unused_result));
int store_challenge_delete(store_t *st, const uint8_t hash[STORE_HASH_LEN]) __attribute__((warn_unused_result));

/* Audit: appends one event (append-only table, hash-chained). Strings may be NULL; details is a JSON object
 * text or NULL. */
typedef struct st_store_audit_event_t {
    const char *actor;   /* "user:alice", "cli:root", "system", "scim:<token name>", ... */
    const char *action;  /* "login.success", "user.disable", ... */
    const char *target;  /* "user:alice" */
    const char *outcome; /* "success" | "failure" */
    const char *source_addr;
    const char *request_id;
    const char *details; /* JSON object text */
} store_audit_event_t;
int store_audit_append(store_t *st, const store_audit_event_t *ev) __attribute__((warn_unused_result));

/* SAML IdP (saml.c). */
/* Records an AuthnRequest ID of an SP until `ttl` seconds from now: 0, -EEXIST when it was seen before (a
 * replay), -EIO. Expired entries are purged along the way. */
int store_saml_request_seen(store_t *st, const char *sp, const char *request_id, unsigned ttl)
    __attribute__((warn_unused_result));
typedef struct st_store_saml_pending_t {
    char *sp, *binding, *message, *relay_state; /* relay_state may be NULL */
    time_t created_at;
} store_saml_pending_t;
int store_saml_pending_put(store_t *st, const uint8_t hash[STORE_HASH_LEN], const char *sp, const char *binding,
                           const char *message, const char *relay_state, unsigned ttl)
    __attribute__((warn_unused_result));
/* A pending request that has not expired, or -ENOENT. */
int store_saml_pending_get(store_t *st, const uint8_t hash[STORE_HASH_LEN], store_saml_pending_t *out)
    __attribute__((warn_unused_result));
/* Deletes it: 0 when this call did (the single use), -ENOENT when it was already gone. */
int store_saml_pending_take(store_t *st, const uint8_t hash[STORE_HASH_LEN]) __attribute__((warn_unused_result));
void store_saml_pending_dispose(store_saml_pending_t *p);
/* Remembers that the session signed in to sp (for single logout); replaces an earlier entry. */
int store_saml_sp_session_put(store_t *st, const uint8_t session[STORE_HASH_LEN], const char *sp, const char *name_id,
                              const char *format, const char *session_index, const char *lasso_session)
    __attribute__((warn_unused_result));
/* The portier session and lasso session dump of the SP sign-in that session_index names, or without one the latest
 * for name_id (the NameID value); -ENOENT. A SessionIndex is looked up alone: the caller checks the request's NameID
 * against the one the dump's assertion issued. *lasso_session is malloc'd. */
int store_saml_sp_session_find(store_t *st, const char *sp, const char *name_id, const char *session_index,
                               uint8_t session[STORE_HASH_LEN], char **lasso_session)
    __attribute__((warn_unused_result));
/* Forgets the SP sign-ins of a portier session that no logout walk holds. */
int store_saml_sp_sessions_forget(store_t *st, const uint8_t session[STORE_HASH_LEN])
    __attribute__((warn_unused_result));
/* A single logout walk (saml_logout_walks): the browser that may continue it (every walk has one), and for a walk
 * an SP's LogoutRequest started what the final LogoutResponse to that SP needs (all NULL for /logout's walks).
 * Strings malloc'd when read (store_saml_walk_dispose), borrowed when written. */
typedef struct st_store_saml_walk_t {
    char *initiator, *binding, *message, *relay_state, *lasso_session;
    int has_browser, partial;
    uint8_t browser[STORE_HASH_LEN];
} store_saml_walk_t;
/* Starts a logout walk keyed by state (a hash) that lasts ttl seconds: marks the session's SP sign-ins other than
 * walk->initiator's (all of them for /logout) and records the walk when any were marked. Returns how many were
 * marked (>= 0) or -EIO. Expired walks are purged along the way. */
int store_saml_logout_start(store_t *st, const uint8_t session[STORE_HASH_LEN], const uint8_t state[STORE_HASH_LEN],
                            const store_saml_walk_t *walk, unsigned ttl) __attribute__((warn_unused_result));
/* Takes (deletes) one SP sign-in of an unexpired walk that `browser` (a hash, or NULL when the request has no walk
 * cookie) may continue (the walk's browser_hash is that hash: NULL matches none): 0 with sp and lasso_session
 * (malloc'd), -ENOENT when there is none. */
int store_saml_logout_next(store_t *st, const uint8_t state[STORE_HASH_LEN], const uint8_t *browser, char **sp,
                           char **lasso_session) __attribute__((warn_unused_result));
/* Notes that an SP of the walk could not be told or answered with an error status. */
int store_saml_logout_partial(store_t *st, const uint8_t state[STORE_HASH_LEN]) __attribute__((warn_unused_result));
/* The unexpired walk keyed by state, or -ENOENT. */
int store_saml_logout_walk_get(store_t *st, const uint8_t state[STORE_HASH_LEN], store_saml_walk_t *out)
    __attribute__((warn_unused_result));
/* Deletes it: 0 when this call did (the single use of its final answer), -ENOENT when it was already gone. */
int store_saml_logout_walk_take(store_t *st, const uint8_t state[STORE_HASH_LEN]) __attribute__((warn_unused_result));
void store_saml_walk_dispose(store_saml_walk_t *w);

/* Reading the trail back (`portier audit verify|export`). */
typedef struct st_store_audit_row_t {
    int64_t id;
    const char *at; /* UTC, microseconds, as covered by the mac */
    store_audit_event_t ev;
    const char *mac_hex; /* NULL when written without a key */
} store_audit_row_t;
typedef struct st_store_audit_verify_t {
    uint64_t verified; /* rows whose mac and chain link checked out */
    uint64_t unkeyed;  /* rows written without a key (not covered) */
    int64_t head_id;   /* the last verified row: record it elsewhere to detect a truncated tail later */
    char head_mac[65];
    int64_t bad_id;     /* first row that fails, 0 when none */
    const char *reason; /* why (static text), NULL when none */
} store_audit_verify_t;
/* Recomputes every row's mac with this store's key and checks each link of the chain. 0 (then out->bad_id tells
 * whether a row failed), -EINVAL without a key, -EIO. */
int store_audit_verify(store_t *st, store_audit_verify_t *out) __attribute__((warn_unused_result));
/* Calls cb for each row with id > after, in order (strings valid during the call); a non-zero return stops. */
int store_audit_export(store_t *st, int64_t after, int (*cb)(void *ctx, const store_audit_row_t *row), void *ctx)
    __attribute__((warn_unused_result));

/* SAML broker: portier as a service provider to enterprise IdPs (saml_sp.c). */
typedef struct st_store_saml_sp_request_t {
    uint8_t browser_hash[STORE_HASH_LEN]; /* SHA-256 of the starting browser's cookie value */
    char *request_id, *idp, *return_to;
} store_saml_sp_request_t;
/* An AuthnRequest sent for the browser holding `browser`, answered through the state `state` (both hashes). */
int store_saml_sp_request_put(store_t *st, const uint8_t state[STORE_HASH_LEN], const uint8_t browser[STORE_HASH_LEN],
                              const char *request_id, const char *idp, const char *return_to, unsigned ttl)
    __attribute__((warn_unused_result));
/* Deletes and returns the unexpired request of `state` (single use), or -ENOENT. */
int store_saml_sp_request_take(store_t *st, const uint8_t state[STORE_HASH_LEN], store_saml_sp_request_t *out)
    __attribute__((warn_unused_result));
void store_saml_sp_request_dispose(store_saml_sp_request_t *r);
/* Records an assertion ID of an IdP until expires_at (epoch seconds): 0, -EEXIST when seen before, -EIO. */
int store_saml_sp_assertion_seen(store_t *st, const char *idp, const char *assertion_id, int64_t expires_at)
    __attribute__((warn_unused_result));
/* The user linked to (idp, name_id), or -ENOENT. */
int store_saml_sp_identity_user(store_t *st, const char *idp, const char *name_id, int64_t *user_id)
    __attribute__((warn_unused_result));
int store_saml_sp_identity_link(store_t *st, const char *idp, const char *name_id, int64_t user_id)
    __attribute__((warn_unused_result));
/* The one user with this email address (case-insensitive), or -ENOENT (none, or several). */
int store_user_get_by_email(store_t *st, const char *email, store_user_t *out) __attribute__((warn_unused_result));
/* Sets email / display name (NULL keeps the value): 1 when something changed (NOTIFYs "user:<id>"), 0, or < 0. */
int store_user_set_profile(store_t *st, int64_t user_id, const char *email, const char *display_name)
    __attribute__((warn_unused_result));

/* Records which IdP subject opened a session (for single logout). */
int store_saml_sp_login_put(store_t *st, const uint8_t session[STORE_HASH_LEN], const char *idp, const char *name_id,
                            const char *format, const char *session_index) __attribute__((warn_unused_result));
/* Ends every session opened by (idp, name_id[, session_index]) on every instance: the count (>= 0) or < 0. */
int store_saml_sp_logout(store_t *st, const char *idp, const char *name_id, const char *session_index)
    __attribute__((warn_unused_result));

/* The IdP subject behind a session (malloc'd strings; session_index may be NULL), or -ENOENT. */
int store_saml_sp_login_get(store_t *st, const uint8_t session[STORE_HASH_LEN], char **idp, char **name_id,
                            char **format, char **session_index) __attribute__((warn_unused_result));
/* A LogoutRequest sent to an IdP (SP-initiated logout), answered through `state`; take: single use, -ENOENT. */
int store_saml_sp_logout_put(store_t *st, const uint8_t state[STORE_HASH_LEN], const char *request_id, const char *idp,
                             const char *next, unsigned ttl) __attribute__((warn_unused_result));
int store_saml_sp_logout_take(store_t *st, const uint8_t state[STORE_HASH_LEN], char **request_id, char **idp,
                              char **next) __attribute__((warn_unused_result));

/* Makes this connection LISTEN too, so that every NOTIFY its own transactions send reaches `cb` as the COMMIT
 * (or the autocommitted statement) returns, on the calling thread: an instance applies the revocations it
 * causes before it answers the request that caused them, instead of when its listener thread gets to them.
 * Notifications from other connections are dropped (the listener applies them). Kept across reconnects.
 * 0 or -EIO. */
int store_follow_own_notifications(store_t *st, void (*cb)(void *ctx, const char *payload), void *ctx);

/* Revocation listener connection: LISTEN on STORE_NOTIFY_CHANNEL, then wait. */
int store_listen(store_t *st) __attribute__((warn_unused_result));
/* Waits up to timeout_ms for notifications; calls cb for each payload. Returns 0, or -EIO when the connection
 * is lost (caller reconnects, then flushes its cache). */
int store_wait_notify(store_t *st, int timeout_ms, void (*cb)(void *ctx, const char *payload), void *ctx)
    __attribute__((warn_unused_result));

/* ---- SCIM provisioning (store/scim.c, store/scim_query.c) ---- */

/* A transaction around several calls (the calls' own transactions join it): 0 or an error; end commits when rc
 * is 0 and returns the commit's result, else rolls back and returns rc. */
int store_tx_begin(store_t *st) __attribute__((warn_unused_result));
int store_tx_end(store_t *st, int rc);

/* Bearer tokens of SCIM clients (SHA-256 only). create: -EEXIST when the name is taken. revoke: -ENOENT unknown
 * or already revoked. check: 0 and the token's name (marks it used, at most once a minute), -ENOENT otherwise. */
typedef struct st_store_scim_token_t {
    const char *name;
    const char *created_at, *revoked_at, *last_used_at; /* ISO 8601 UTC text or NULL */
} store_scim_token_t;
int store_scim_token_create(store_t *st, const char *name, const uint8_t hash[STORE_HASH_LEN])
    __attribute__((warn_unused_result));
int store_scim_token_revoke(store_t *st, const char *name) __attribute__((warn_unused_result));
int store_scim_token_list(store_t *st, void (*cb)(void *ctx, const store_scim_token_t *t), void *ctx)
    __attribute__((warn_unused_result));
int store_scim_token_check(store_t *st, const uint8_t hash[STORE_HASH_LEN], char *name, size_t name_len)
    __attribute__((warn_unused_result));

/* A user as SCIM sees it. doc is the JSON object text of the attributes without a column (users.scim);
 * groups_json a JSON array text of {"value": id, "display": name}. Timestamps: ISO 8601 UTC with milliseconds. */
typedef struct st_store_scim_user_t {
    int64_t id;
    char *username, *external_id, *doc, *groups_json, *created, *modified;
    int disabled;
    int64_t version;
} store_scim_user_t;
/* What a SCIM write sets (strings may be NULL except username and doc). */
typedef struct st_store_scim_user_write_t {
    const char *username, *external_id, *email, *display_name, *doc;
    int disabled;
} store_scim_user_write_t;
void store_scim_user_dispose(store_scim_user_t *u);
/* lock: SELECT ... FOR UPDATE (inside store_tx_begin). -ENOENT when absent. */
int store_scim_user_get(store_t *st, int64_t id, int lock, store_scim_user_t *out) __attribute__((warn_unused_result));
int store_scim_user_insert(store_t *st, const store_scim_user_write_t *w, int64_t *id)
    __attribute__((warn_unused_result));
/* Updates every SCIM column and bumps version; disabling deletes the user's sessions and NOTIFYs "user:<id>"
 * (every instance drops them at once); enabling never brings old sessions back (they were deleted). */
int store_scim_user_update(store_t *st, int64_t id, const store_scim_user_write_t *w)
    __attribute__((warn_unused_result));
/* Deletes the user (sessions, memberships, credentials cascade) and NOTIFYs "user:<id>". */
int store_scim_user_delete(store_t *st, int64_t id) __attribute__((warn_unused_result));

/* A group: members_json a JSON array text of {"value": id, "display": name} (NULL when not asked for). */
typedef struct st_store_scim_group_t {
    int64_t id;
    char *name, *external_id, *members_json, *created, *modified;
    int64_t version;
} store_scim_group_t;
void store_scim_group_dispose(store_scim_group_t *g);
int store_scim_group_get(store_t *st, int64_t id, int lock, int with_members, store_scim_group_t *out)
    __attribute__((warn_unused_result));
int store_scim_group_insert(store_t *st, const char *name, const char *external_id, int64_t *id)
    __attribute__((warn_unused_result));
/* Sets name and externalId and bumps version (also after member changes). renamed: NOTIFY every member (their
 * identity header carries the group name). */
int store_scim_group_update(store_t *st, int64_t id, const char *name, const char *external_id, int renamed)
    __attribute__((warn_unused_result));
int store_scim_group_delete(store_t *st, int64_t id) __attribute__((warn_unused_result));
/* One membership row each, NOTIFY "user:<id>" when it changed; *changed = 1 when it did. add: -ENOENT when the
 * user does not exist. Never rewrites the other members. */
int store_scim_member_add(store_t *st, int64_t group_id, int64_t user_id, int *changed)
    __attribute__((warn_unused_result));
int store_scim_member_remove(store_t *st, int64_t group_id, int64_t user_id, int *changed)
    __attribute__((warn_unused_result));
/* Removes every member (NOTIFY each). */
int store_scim_members_clear(store_t *st, int64_t group_id) __attribute__((warn_unused_result));

/* SCIM filters, already parsed (scim/filter.c) into this tree. Attribute paths are lower-case, without the core
 * schema URN ("username", "name.givenname", "emails.value", "urn:...:enterprise:2.0:user:department"). The
 * store checks every path against its allowlist of the resource type and compiles the tree to SQL with one
 * bound parameter per value: no text of the filter ever becomes SQL. */
typedef enum {
    STORE_FILTER_AND,
    STORE_FILTER_OR,
    STORE_FILTER_NOT,
    STORE_FILTER_CMP,
    STORE_FILTER_VALUE_PATH
} store_filter_kind_t;
typedef enum {
    STORE_OP_EQ,
    STORE_OP_NE,
    STORE_OP_CO,
    STORE_OP_SW,
    STORE_OP_EW,
    STORE_OP_GT,
    STORE_OP_GE,
    STORE_OP_LT,
    STORE_OP_LE,
    STORE_OP_PR
} store_filter_op_t;
typedef enum { STORE_VAL_STRING, STORE_VAL_NUMBER, STORE_VAL_TRUE, STORE_VAL_FALSE, STORE_VAL_NULL } store_val_t;
typedef struct st_store_filter_t {
    store_filter_kind_t kind;
    struct st_store_filter_t *left, *right; /* AND/OR both; NOT and VALUE_PATH: left (the inner filter) */
    char *attr;                             /* CMP: the path; VALUE_PATH: the multi-valued attribute */
    store_filter_op_t op;
    store_val_t vtype;
    char *value; /* STRING / NUMBER text */
} store_filter_t;
typedef enum { STORE_SCIM_USERS, STORE_SCIM_GROUPS } store_scim_type_t;
typedef struct st_store_scim_query_t {
    store_scim_type_t type;
    const store_filter_t *filter; /* NULL: all */
    const char *sort_by;          /* lower-case path or NULL (by id) */
    int descending;
    int64_t offset, count; /* 0-based; count 0: totals only */
    int with_members;      /* groups: include members_json */
} store_scim_query_t;
/* -EINVAL with a message in err when the filter or sortBy names an attribute that cannot be filtered or the
 * value does not fit the attribute's type; -E2BIG when the filter has more comparisons than can be bound. Calls cb for
 * each row of the page; *total = all matches. */
int store_scim_query(store_t *st, const store_scim_query_t *q, int64_t *total,
                     void (*user_cb)(void *ctx, const store_scim_user_t *u),
                     void (*group_cb)(void *ctx, const store_scim_group_t *g), void *ctx, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Compiles only (tests): the WHERE text and the parameters (pointers into the filter). 0, -EINVAL or -E2BIG. */
int store_scim_compile(store_scim_type_t type, const store_filter_t *f, char **sql, const char **params, int *nparams,
                       int max_params, char *err, size_t errlen);

#endif
