/*
 * Password login, first-login setup and logout.
 *
 *   GET  /login   form (CSRF token bound to a __Host- cookie)       POST /login  argon2id check -> new session
 *   GET  /setup   form for a valid invitation token, else 410      POST /setup  set password -> new session
 *   GET  /logout  confirmation form                                POST /logout end session everywhere
 *
 * Every failure of the login form produces the same response, whatever the reason (unknown user, wrong
 * password, disabled account): same status, same body (bar the CSRF value), and the KDF always runs (a dummy
 * hash stands in for missing users). SQL and argon2id run on the worker pool; handlers only parse, check CSRF,
 * and render.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "idp/internal.h"
#include "policy/policy.h"
#include "saml/saml.h"

#define USERNAME_MAX        256
#define PASSWORD_MAX_BYTES  1024 /* 128 code points of up to 4 bytes, with room to spare; longer is refused */
#define TOKEN_MAX           128
#define GENERIC_LOGIN_ERROR "Sign-in failed. Check your user name and password and try again."

enum {
    OUTCOME_OK,
    OUTCOME_DENIED,
    OUTCOME_GONE,
    OUTCOME_UNAVAILABLE,
    OUTCOME_ERROR,
    OUTCOME_REJECTED,
    OUTCOME_MFA,       /* password right; the second factor is due (/login/mfa) */
    OUTCOME_MFA_ENROL, /* password right; the user must enrol a second factor first (/account/mfa) */
    OUTCOME_SIGN_IN,   /* password set from a reset link; the user signs in with it and their second factor */
};

typedef struct st_login_job_t {
    gw_job_t super;
    gw_server_t *server;
    char *username, *password;
    char return_to[POL_RETURN_TO_MAX + 1];
    char source[64];
    char cookie[64];
    uint8_t network[16];     /* the client's /24 or /64, for the spray defence */
    uint8_t fingerprint[16]; /* keyed fingerprint of a wrong password (never the password) */
    int outcome;
} login_job_t;

typedef struct st_delayed_login_t {
    h2o_timeout_entry_t timer;
    login_job_t *job;
} delayed_login_t;

typedef struct st_setup_job_t {
    gw_job_t super;
    gw_server_t *server;
    char token[TOKEN_MAX + 1];
    char *password;
    char source[64];
    char cookie[64];
    char *username;
    int outcome;
    int peek_only;
    char reason[200];
} setup_job_t;

typedef struct st_logout_job_t {
    gw_job_t super;
    uint8_t hash[STORE_HASH_LEN];
    char source[64];
    int saml; /* the SAML IdP is on: SPs this session signed in to are logged out too */
    char slo_state[SAML_LOGOUT_TOKEN_MAX + 1];  /* set when there are such SPs: the browser walks /saml/slo/next */
    char slo_cookie[SAML_LOGOUT_TOKEN_MAX + 1]; /* with it, and only this browser (SAML_LOGOUT_WALK_COOKIE) */
    struct st_saml_idp_t *saml_idp;
    saml_outbound_t idp_logout; /* an enterprise IdP opened the session: its single logout first */
} logout_job_t;

static void set_session_cookie(h2o_req_t *req, gw_server_t *server, const char *cookie)
{
    gw_set_cookie(req, server->conf->session_cookie, cookie, -1);
}

/* ---- /login ---- */

#define LOGIN_SSO_BUTTONS 6 /* connections shown as buttons; more are reached by email-domain discovery */

static void render_login(h2o_req_t *req, gw_server_t *server, int status, const char *return_to, const char *username,
                         const char *error, const char *notice)
{
    char min_length[16];
    snprintf(min_length, sizeof(min_length), "%u", server->conf->password_min_length);
    gw_tpl_var_t vars[5 + 3 + 2 * LOGIN_SSO_BUTTONS] = {{"csrf", gw_csrf_token(req)},
                                                        {"return_to", return_to},
                                                        {"username", username},
                                                        {"error", error},
                                                        {"notice", notice},
                                                        {"min_length", min_length},
                                                        {"forgot", gw_mail_configured(server->conf) ? "1" : NULL}};
    size_t n = 7;
    /* "Sign in with your company account": discovery by email domain, and a button per connection */
    const saml_broker_config_t *bc = server->conf->saml != NULL ? &server->conf->saml->broker : NULL;
    static const char *const names[LOGIN_SSO_BUTTONS][2] = {{"sso_1", "sso_1_label"}, {"sso_2", "sso_2_label"},
                                                            {"sso_3", "sso_3_label"}, {"sso_4", "sso_4_label"},
                                                            {"sso_5", "sso_5_label"}, {"sso_6", "sso_6_label"}};
    for (size_t i = 0; bc != NULL && i != bc->num_conns && i != LOGIN_SSO_BUTTONS; ++i) {
        vars[n++] = (gw_tpl_var_t){names[i][0], bc->conns[i].name};
        vars[n++] = (gw_tpl_var_t){names[i][1], bc->conns[i].label};
    }
    if (bc != NULL && bc->num_conns != 0) {
        vars[n++] = (gw_tpl_var_t){"sso", "1"};
        /* the buttons are links (a form's redirect to another site would fall under CSP form-action 'self') */
        vars[n++] = (gw_tpl_var_t){"return_to_q", gw_url_encode(&req->pool, return_to != NULL ? return_to : "/")};
    }
    gw_send_page(req, status, "login.html", vars, n);
}

/* After a right password: OUTCOME_OK (no second factor due), OUTCOME_MFA (the user has one), OUTCOME_MFA_ENROL
 * (the user must have one: a group of mfa.required_groups), or -EIO. */
static int second_factor_due(store_t *db, const gw_config_t *conf, const store_user_t *user)
{
    store_mfa_factor_t f = {0};
    int r = store_mfa_get(db, user->id, 1, &f);
    store_mfa_factor_dispose(&f);
    if (r == -ENOENT)
        return gw_config_mfa_required(conf, user->groups) ? OUTCOME_MFA_ENROL : OUTCOME_OK;
    return r == 0 ? OUTCOME_MFA : -EIO;
}

/* The half-authenticated state: a row keyed by the hash of a fresh cookie (written to cookie). */
static int start_challenge(store_t *db, int64_t user_id, const char *purpose, const char *return_to, char *cookie,
                           size_t len)
{
    uint8_t hash[STORE_HASH_LEN];
    gw_random_token(GW_SESSION_TOKEN_BYTES, cookie, len, hash);
    int r = store_challenge_create(db, hash, user_id, purpose, return_to, IDP_MFA_CHALLENGE_TTL);
    sodium_memzero(hash, sizeof(hash));
    return r;
}

static void login_run(gw_job_t *job, gw_worker_t *w)
{
    login_job_t *j = (login_job_t *)job;
    const gw_config_t *conf = j->server->conf;
    store_t *db = gw_worker_db(w);
    store_user_t user = {0};
    char *hash = NULL;
    const char *reason = "unknown_user";
    int allowed = 1;
    unsigned failures = 0;
    char normalized[POL_NORMALIZED_MAX] = "";

    j->outcome = OUTCOME_UNAVAILABLE;
    if (db == NULL)
        goto done;
    int found = store_user_get(db, j->username, &user);
    if (found == -EIO)
        goto done;
    /* users of a domain whose IdP has sso_only cannot use a password: refused like a wrong one (no enumeration) */
    const saml_broker_config_t *bc = conf->saml != NULL ? &conf->saml->broker : NULL;
    int sso_only = bc != NULL && (saml_sso_only(bc, j->username) || (found == 0 && saml_sso_only(bc, user.email)));
    int usable = found == 0 && !user.disabled && !sso_only;
    if (usable) { /* the throttle gate comes before the check, so parallel attempts cannot overrun it */
        store_throttle_policy_t pol = {conf->throttle_free, conf->throttle_max_delay, conf->throttle_hard_lock};
        if (store_throttle_reserve(db, user.id, &pol, &allowed, &failures) != 0)
            goto done;
        if (allowed && store_password_get(db, user.id, &hash) == -EIO)
            goto done;
    }
    /* The KDF runs exactly once on every path (a dummy hash stands in), so timing tells nothing. */
    int normal = pol_password_normalize(j->password, normalized, sizeof(normalized)) == 0;
    int verified = idp_password_verify(usable && allowed && normal ? hash : NULL, normal ? normalized : j->password);
    if (verified) {
        if (idp_password_needs_rehash(hash)) { /* the configured cost changed: upgrade now */
            char upgraded[crypto_pwhash_STRBYTES];
            if (idp_password_hash(normalized, upgraded) == 0 && store_password_set(db, user.id, upgraded) == 0)
                gw_log("info", "idp", "password.rehashed", "user", user.username, NULL);
            sodium_memzero(upgraded, sizeof(upgraded));
        }
        int next = second_factor_due(db, conf, &user);
        if (next < 0)
            goto done;
        if (next == OUTCOME_OK) {
            /* the throttle counter is cleared only once every factor is proven: a known password alone cannot
             * be replayed to buy fresh free attempts at the second factor */
            if (store_throttle_reset(db, user.id) != 0 ||
                idp_new_session(db, j->server, user.id, j->source, STORE_AMR_PWD, j->cookie, sizeof(j->cookie)) != 0)
                goto done;
        } else if (start_challenge(db, user.id, next == OUTCOME_MFA ? "verify" : "enrol", j->return_to, j->cookie,
                                   sizeof(j->cookie)) != 0) {
            goto done;
        }
        j->outcome = next;
        reason = NULL;
    } else {
        j->outcome = OUTCOME_DENIED;
        if (found == 0)
            reason = user.disabled  ? "disabled"
                     : sso_only     ? "sso_only"
                     : !allowed     ? "locked"
                     : hash == NULL ? "no_password"
                                    : "bad_password";
        gw_spray_fingerprint(j->server->spray, j->password, j->fingerprint);
        if (allowed && usable && failures == conf->throttle_hard_lock) {
            atomic_fetch_add(&gw_metrics.lockouts, 1);
            gw_log("warn", "idp", "account.locked", "user", user.username, NULL);
        }
    }
    char target[300], details[96];
    snprintf(target, sizeof(target), "user:%s", found == 0 ? user.username : j->username);
    if (reason != NULL)
        snprintf(details, sizeof(details), "{\"reason\":\"%s\",\"consecutive_failures\":%u}", reason, failures);
    else
        snprintf(details, sizeof(details), "{}");
    const char *action = j->outcome == OUTCOME_OK       ? "login.success"
                         : j->outcome == OUTCOME_DENIED ? "login.failure"
                                                        : "login.password_verified";
    if (j->outcome == OUTCOME_MFA || j->outcome == OUTCOME_MFA_ENROL)
        snprintf(details, sizeof(details), "{\"next\":\"%s\"}", j->outcome == OUTCOME_MFA ? "mfa" : "mfa_enrolment");
    idp_audit(db, target, action, target, j->outcome == OUTCOME_DENIED ? "failure" : "success", j->source, details);
    gw_log("info", "idp", action, "user", target + 5, "reason", reason, "source", j->source, NULL);
done:
    if (hash != NULL) {
        sodium_memzero(hash, strlen(hash));
        free(hash);
    }
    sodium_memzero(normalized, sizeof(normalized));
    store_user_dispose(&user);
}

typedef struct st_spray_audit_job_t {
    gw_job_t super;
    char source[64];
    char what[32];
} spray_audit_job_t;

static void spray_audit_run(gw_job_t *job, gw_worker_t *w)
{
    spray_audit_job_t *j = (spray_audit_job_t *)job;
    store_t *db = gw_worker_db(w);
    char details[96];
    snprintf(details, sizeof(details), "{\"trigger\":\"%s\"}", j->what);
    if (db != NULL)
        idp_audit(db, "system", "security.spray_detected", "network", "blocked", j->source, details);
}

static void login_done(gw_job_t *job)
{
    login_job_t *j = (login_job_t *)job;
    h2o_req_t *req = job->req;
    if (j->outcome == OUTCOME_DENIED) {
        int trig = gw_spray_record_failure(j->server->spray, j->network, j->username, j->fingerprint, time(NULL));
        if (trig != 0) {
            const char *what = (trig & GW_SPRAY_TRIGGER_PASSWORD) ? "same_password" : "distinct_usernames";
            atomic_fetch_add(&gw_metrics.spray_triggers, 1);
            gw_log("warn", "idp", "security.spray_detected", "source", j->source, "trigger", what, NULL);
            spray_audit_job_t *a = calloc(1, sizeof(*a));
            if (a != NULL) {
                memcpy(a->source, j->source, sizeof(a->source));
                snprintf(a->what, sizeof(a->what), "%s", what);
                gw_job_submit_detached(j->server, &a->super, spray_audit_run);
            }
        }
    }
    if (req != NULL) {
        switch (j->outcome) {
        case OUTCOME_OK:
            atomic_fetch_add(&gw_metrics.logins_success, 1);
            set_session_cookie(req, j->server, j->cookie);
            gw_send_redirect(req, 303, h2o_strdup(&req->pool, j->return_to, SIZE_MAX).base);
            break;
        case OUTCOME_MFA:
        case OUTCOME_MFA_ENROL:
            gw_set_cookie(req, IDP_MFA_COOKIE, j->cookie, IDP_MFA_CHALLENGE_TTL);
            gw_send_redirect(req, 303, j->outcome == OUTCOME_MFA ? "/login/mfa" : "/account/mfa");
            break;
        case OUTCOME_DENIED:
            atomic_fetch_add(&gw_metrics.logins_failure, 1);
            render_login(req, j->server, 401, h2o_strdup(&req->pool, j->return_to, SIZE_MAX).base, NULL,
                         GENERIC_LOGIN_ERROR, NULL);
            break;
        default: gw_send_unavailable(req);
        }
    }
    sodium_memzero(j->cookie, sizeof(j->cookie));
    sodium_memzero(j->fingerprint, sizeof(j->fingerprint));
    free(j->username);
    idp_free_secret(j->password);
    free(j);
}

static void free_login_job(login_job_t *j)
{
    free(j->username);
    idp_free_secret(j->password);
    free(j);
}

/* A source half-way to its spraying budget waits a second before its attempt is processed. */
static void on_delay_elapsed(h2o_timeout_entry_t *entry)
{
    delayed_login_t *d = H2O_STRUCT_FROM_MEMBER(delayed_login_t, timer, entry);
    login_job_t *j = d->job;
    d->job = NULL;
    h2o_req_t *req = j->super.req;
    gw_job_submit(gw_loop_of(req), req, &j->super, login_run, login_done);
}

static void on_delay_dispose(void *p)
{
    delayed_login_t *d = p;
    if (h2o_timeout_is_linked(&d->timer))
        h2o_timeout_unlink(&d->timer);
    if (d->job != NULL) /* the client left while waiting */
        free_login_job(d->job);
}

static int on_login(h2o_handler_t *self, h2o_req_t *req)
{
    idp_handler_t *h = (idp_handler_t *)self;
    gw_server_t *server = h->server;
    char return_to[POL_RETURN_TO_MAX + 1];

    if (!idp_is_post(req)) {
        pol_return_to(gw_query_get(req, "return_to", POL_RETURN_TO_MAX), server->conf->public_url, return_to,
                      sizeof(return_to));
        const char *notice = gw_query_get(req, "logged_out", 8) != NULL ? "You have been signed out."
                             : gw_query_get(req, "password_set", 8) != NULL
                                 ? "Your password is set. Sign in with it and your second factor."
                                 : NULL;
        render_login(req, server, 200, h2o_strdup(&req->pool, return_to, SIZE_MAX).base, NULL, NULL, notice);
        return 0;
    }
    h2o_iovec_t body = req->entity;
    pol_return_to(gw_form_get(req, body, "return_to", POL_RETURN_TO_MAX), server->conf->public_url, return_to,
                  sizeof(return_to));
    if (gw_csrf_check(req, gw_form_get(req, body, "csrf", 128)) != 0) {
        gw_send_message(req, 403, "Request refused",
                        "The sign-in form expired or did not come from this site. Please try again.", "/login",
                        "Back to sign-in");
        return 0;
    }
    const char *username = gw_form_get(req, body, "username", USERNAME_MAX);
    const char *password = gw_form_get(req, body, "password", PASSWORD_MAX_BYTES);

    uint8_t client[16], network[16];
    memset(network, 0, sizeof(network));
    if (gw_client_addr(req, client) == 0)
        gw_spray_network(client, network);
    gw_spray_verdict_t verdict = gw_spray_check(server->spray, network, time(NULL));
    if (verdict == GW_SPRAY_REFUSE) {
        /* over budget: refused before any account is looked at (no account collects failures from this) */
        atomic_fetch_add(&gw_metrics.spray_refusals, 1);
        h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("retry-after"), 0, H2O_STRLIT("900"), 1);
        gw_send_message(req, 429, "Too many sign-in attempts",
                        "Too many failed sign-ins came from your network. Please try again later.", NULL, NULL);
        return 0;
    }

    login_job_t *j = calloc(1, sizeof(*j));
    j->server = server;
    /* A missing field still runs the KDF (same timing as any other failure). */
    j->username = strdup(username != NULL ? username : "");
    j->password = idp_dup_secret(password != NULL ? password : "");
    memcpy(j->return_to, return_to, sizeof(return_to));
    memcpy(j->network, network, sizeof(network));
    gw_peer_addr(req, j->source, sizeof(j->source));
    if (verdict == GW_SPRAY_SLOW) {
        delayed_login_t *d = h2o_mem_alloc_shared(&req->pool, sizeof(*d), on_delay_dispose);
        memset(d, 0, sizeof(*d));
        d->timer.cb = on_delay_elapsed;
        d->job = j;
        j->super.req = req;
        h2o_timeout_link(req->conn->ctx->loop, &req->conn->ctx->one_sec_timeout, &d->timer);
        return 0;
    }
    gw_job_submit(gw_loop_of(req), req, &j->super, login_run, login_done);
    return 0;
}

/* ---- /setup ---- */

static void render_setup(h2o_req_t *req, gw_server_t *server, int status, const char *token, const char *username,
                         const char *error)
{
    char min_length[16];
    snprintf(min_length, sizeof(min_length), "%u", server->conf->password_min_length);
    gw_tpl_var_t vars[] = {{"csrf", gw_csrf_token(req)},
                           {"token", token},
                           {"username", username},
                           {"error", error},
                           {"min_length", min_length}};
    gw_send_page(req, status, "setup.html", vars, sizeof(vars) / sizeof(vars[0]));
}

static void send_gone(h2o_req_t *req)
{
    gw_send_message(req, 410, "This link is no longer valid",
                    "This link has expired or was already used. Ask your administrator for a new one.", "/login",
                    "Go to sign-in");
}

static void setup_run(gw_job_t *job, gw_worker_t *w)
{
    setup_job_t *j = (setup_job_t *)job;
    store_t *db = gw_worker_db(w);
    uint8_t hash[STORE_HASH_LEN];
    int64_t user_id = 0;
    store_user_t user = {0};

    j->outcome = OUTCOME_UNAVAILABLE;
    if (db == NULL)
        return;
    gw_sha256(j->token, strlen(j->token), hash);
    /* one page serves both links: the invitation ("setup") and the administrator's reset ("reset") */
    const char *purpose = "setup";
    int found = store_token_peek(db, hash, purpose, &user_id);
    if (found == -ENOENT)
        found = store_token_peek(db, hash, purpose = "reset", &user_id);
    if (j->peek_only) {
        int r = found;
        if (r == 0 && store_user_get_by_id(db, user_id, &user) == 0) {
            j->username = strdup(user.username);
            j->outcome = OUTCOME_OK;
        } else {
            j->outcome = r == -EIO ? OUTCOME_UNAVAILABLE : OUTCOME_GONE;
        }
        store_user_dispose(&user);
        return;
    }

    if (found != 0) {
        j->outcome = found == -EIO ? OUTCOME_UNAVAILABLE : OUTCOME_GONE;
        return;
    }
    if (store_user_get_by_id(db, user_id, &user) != 0)
        return;
    j->username = strdup(user.username);
    store_mfa_factor_t factor = {0};
    int enrolled = store_mfa_get(db, user_id, 1, &factor);
    store_mfa_factor_dispose(&factor);
    if (enrolled == -EIO) {
        store_user_dispose(&user);
        return;
    }
    enrolled = enrolled == 0;
    char normalized[POL_NORMALIZED_MAX], pwhash[crypto_pwhash_STRBYTES];
    int accepted = idp_password_accept(j->server, &user, enrolled, j->password, normalized, sizeof(normalized),
                                       j->reason, sizeof(j->reason)) == 0;
    store_user_dispose(&user);
    if (!accepted) {
        j->outcome = OUTCOME_REJECTED;
        return;
    }
    int hashed = idp_password_hash(normalized, pwhash);
    sodium_memzero(normalized, sizeof(normalized));
    if (hashed != 0) {
        j->outcome = OUTCOME_ERROR;
        return;
    }
    uint8_t session_hash[STORE_HASH_LEN];
    char public_id[32];
    gw_random_token(GW_SESSION_TOKEN_BYTES, j->cookie, sizeof(j->cookie), session_hash);
    gw_random_token(IDP_SESSION_PUBLIC_ID_BYTES, public_id, sizeof(public_id), NULL);
    int r = found != 0 ? found
                       : store_token_redeem_password(db, hash, purpose, pwhash, enrolled ? NULL : session_hash,
                                                     public_id, j->server->conf->session_absolute_timeout,
                                                     j->server->conf->session_idle_timeout, j->source, &user_id);
    sodium_memzero(pwhash, sizeof(pwhash));
    sodium_memzero(session_hash, sizeof(session_hash));
    if (r == 0) {
        /* with a second factor, a reset link sets the password but does not sign in: the factor is still due */
        j->outcome = enrolled ? OUTCOME_SIGN_IN : OUTCOME_OK;
        char target[64];
        if (store_user_get_by_id(db, user_id, &user) == 0)
            snprintf(target, sizeof(target), "user:%s", user.username);
        else
            snprintf(target, sizeof(target), "user:#%lld", (long long)user_id);
        idp_audit(db, target, "password.set", target, "success", j->source,
                  strcmp(purpose, "reset") == 0 ? "{\"via\":\"reset_link\"}" : "{\"via\":\"setup_link\"}");
        gw_log("info", "idp", "setup.success", "user", target + 5, NULL);
        if (strcmp(purpose, "reset") == 0)
            idp_notify_password_changed(j->server->conf, &user, "reset with a reset link");
        store_user_dispose(&user);
    } else {
        j->outcome = r == -EIO ? OUTCOME_UNAVAILABLE : OUTCOME_GONE;
        if (r != -EIO)
            gw_log("info", "idp", "setup.refused", "reason", r == -ESTALE ? "used_or_expired" : "unknown_token",
                   "source", j->source, NULL);
    }
}

static void setup_done(gw_job_t *job)
{
    setup_job_t *j = (setup_job_t *)job;
    h2o_req_t *req = job->req;
    if (req != NULL) {
        if (j->outcome == OUTCOME_OK && j->peek_only) {
            render_setup(req, j->server, 200, h2o_strdup(&req->pool, j->token, SIZE_MAX).base,
                         h2o_strdup(&req->pool, j->username, SIZE_MAX).base, NULL);
        } else if (j->outcome == OUTCOME_SIGN_IN) {
            atomic_fetch_add(&gw_metrics.setups, 1);
            gw_send_redirect(req, 303, "/login?password_set=1");
        } else if (j->outcome == OUTCOME_OK) {
            atomic_fetch_add(&gw_metrics.setups, 1);
            set_session_cookie(req, j->server, j->cookie);
            gw_send_redirect(req, 303, "/");
        } else if (j->outcome == OUTCOME_REJECTED) {
            render_setup(req, j->server, 400, h2o_strdup(&req->pool, j->token, SIZE_MAX).base,
                         h2o_strdup(&req->pool, j->username, SIZE_MAX).base,
                         h2o_strdup(&req->pool, j->reason, SIZE_MAX).base);
        } else if (j->outcome == OUTCOME_GONE) {
            send_gone(req);
        } else {
            gw_send_unavailable(req);
        }
    }
    sodium_memzero(j->cookie, sizeof(j->cookie));
    sodium_memzero(j->token, sizeof(j->token));
    idp_free_secret(j->password);
    free(j->username);
    free(j);
}

static int on_setup(h2o_handler_t *self, h2o_req_t *req)
{
    idp_handler_t *h = (idp_handler_t *)self;
    gw_server_t *server = h->server;
    const char *token;
    const char *password = NULL;

    if (!idp_is_post(req)) {
        token = gw_query_get(req, "token", TOKEN_MAX);
    } else {
        h2o_iovec_t body = req->entity;
        token = gw_form_get(req, body, "token", TOKEN_MAX);
        if (gw_csrf_check(req, gw_form_get(req, body, "csrf", 128)) != 0) {
            gw_send_message(req, 403, "Request refused",
                            "The form expired or did not come from this site. Please open your link again.", NULL,
                            NULL);
            return 0;
        }
        password = gw_form_get(req, body, "password", PASSWORD_MAX_BYTES);
        const char *confirm = gw_form_get(req, body, "password_confirm", PASSWORD_MAX_BYTES);
        if (token == NULL) {
            send_gone(req);
            return 0;
        }
        if (password == NULL || confirm == NULL || strcmp(password, confirm) != 0) {
            render_setup(req, server, 400, token, NULL, "The two passwords do not match.");
            return 0;
        }
    }
    if (token == NULL || token[0] == '\0') {
        send_gone(req);
        return 0;
    }
    setup_job_t *j = calloc(1, sizeof(*j));
    j->server = server;
    snprintf(j->token, sizeof(j->token), "%s", token);
    j->password = idp_dup_secret(password);
    j->peek_only = password == NULL;
    gw_peer_addr(req, j->source, sizeof(j->source));
    gw_job_submit(gw_loop_of(req), req, &j->super, setup_run, setup_done);
    return 0;
}

/* ---- /logout ---- */

static void logout_run(gw_job_t *job, gw_worker_t *w)
{
    logout_job_t *j = (logout_job_t *)job;
    store_t *db = gw_worker_db(w);
    if (db == NULL)
        return;
    /* name the user in the audit trail (the session row goes away with the logout) */
    store_session_t sess = {0};
    char who[320] = "user:(unknown)";
    if (store_session_lookup(db, j->hash, &sess) == 0)
        snprintf(who, sizeof(who), "user:%s", sess.user.username);
    store_session_dispose(&sess);
    /* mark the session's SAML sign-ins before the session goes (saml/slo.c walks them, in this browser only) */
    if (j->saml && saml_logout_walk_start(db, j->hash, j->slo_state, j->slo_cookie) <= 0)
        j->slo_state[0] = '\0';
    if (j->saml) { /* an enterprise IdP that opened this session is told first, then the walk above continues */
        char next[sizeof(j->slo_state) + 32] = "/login?logged_out=1";
        if (j->slo_state[0] != '\0')
            snprintf(next, sizeof(next), "/saml/slo/next?state=%s", j->slo_state);
        if (saml_broker_logout(j->saml_idp, db, j->hash, next, &j->idp_logout) != 0)
            gw_log("error", "idp", "logout.idp_slo_failed", NULL);
    }
    if (store_session_delete(db, j->hash) == 0) {
        idp_audit(db, who, "logout", who, "success", j->source, NULL);
        gw_log("info", "idp", "logout", "user", who + 5, "source", j->source, NULL);
    }
}

static void logout_done(gw_job_t *job)
{
    logout_job_t *j = (logout_job_t *)job;
    if (job->req != NULL) {
        gw_server_t *server = gw_loop_of(job->req)->server;
        gw_set_cookie(job->req, server->conf->session_cookie, "", 0);
        if (j->slo_state[0] != '\0') /* also when an enterprise IdP is told first: its answer comes back here */
            gw_set_cookie(job->req, SAML_LOGOUT_WALK_COOKIE, j->slo_cookie, SAML_LOGOUT_WALK_TTL);
        if (j->idp_logout.url != NULL) {
            saml_outbound_send(job->req, &j->idp_logout, "SAMLRequest");
        } else if (j->slo_state[0] != '\0') {
            char *loc = h2o_mem_alloc_pool(&job->req->pool, sizeof(j->slo_state) + 32);
            snprintf(loc, sizeof(j->slo_state) + 32, "/saml/slo/next?state=%s", j->slo_state);
            gw_send_redirect(job->req, 303, loc);
        } else {
            gw_send_redirect(job->req, 303, "/login?logged_out=1");
        }
    }
    saml_outbound_dispose(&j->idp_logout);
    sodium_memzero(j->slo_state, sizeof(j->slo_state));
    sodium_memzero(j->slo_cookie, sizeof(j->slo_cookie));
    free(j);
}

static int on_logout(h2o_handler_t *self, h2o_req_t *req)
{
    idp_handler_t *h = (idp_handler_t *)self;
    gw_server_t *server = h->server;

    if (!idp_is_post(req)) {
        gw_tpl_var_t vars[] = {{"csrf", gw_csrf_token(req)}};
        gw_send_page(req, 200, "logout.html", vars, 1);
        return 0;
    }
    if (gw_csrf_check(req, gw_form_get(req, req->entity, "csrf", 128)) != 0) {
        gw_send_message(req, 403, "Request refused", "The sign-out form expired. Please try again.", "/logout",
                        "Sign out");
        return 0;
    }
    h2o_iovec_t cookie = gw_get_cookie(req, server->conf->session_cookie);
    if (cookie.base == NULL || cookie.len == 0) {
        gw_send_redirect(req, 303, "/login?logged_out=1");
        return 0;
    }
    logout_job_t *j = calloc(1, sizeof(*j));
    gw_sha256(cookie.base, cookie.len, j->hash);
    j->saml = server->saml != NULL;
    j->saml_idp = server->saml;
    gw_cache_evict_session(server->cache, j->hash); /* this instance at once; the others through NOTIFY */
    atomic_fetch_add(&gw_metrics.logouts, 1);
    gw_peer_addr(req, j->source, sizeof(j->source));
    gw_job_submit(gw_loop_of(req), req, &j->super, logout_run, logout_done);
    return 0;
}

void idp_register(gw_server_t *server, h2o_hostconf_t *hostconf)
{
    if (idp_password_init(server->pepper, server->conf->argon2_iterations, server->conf->argon2_memory) != 0)
        abort();
    idp_mfa_register(server, hostconf); /* before /login: h2o takes the first matching prefix */
    idp_add_handler(server, hostconf, "/login", on_login);
    idp_add_handler(server, hostconf, "/setup", on_setup);
    idp_add_handler(server, hostconf, "/logout", on_logout);
    idp_account_register(server, hostconf);
    idp_forgot_register(server, hostconf);
}
