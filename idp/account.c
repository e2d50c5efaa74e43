/*
 * The signed-in user's own pages: /account/password (change the password: the current one is required and
 * counts towards the lock-out, the new one passes the password policy, every other session of the user ends on
 * every instance at once; this one stays).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "idp/internal.h"
#include "policy/policy.h"

#define PASSWORD_MAX_BYTES 1024

enum { ACC_OK, ACC_NO_SESSION, ACC_WRONG, ACC_REJECTED, ACC_UNAVAILABLE };

typedef struct st_account_job_t {
    gw_job_t super;
    gw_server_t *server;
    uint8_t session[STORE_HASH_LEN];
    char *current, *password; /* NULL: only look up the session (GET) */
    char source[64];
    char username[300];
    char reason[200];
    int outcome;
} account_job_t;

static void render(h2o_req_t *req, gw_server_t *server, int status, const char *username, const char *error,
                   const char *notice)
{
    char min_length[16];
    snprintf(min_length, sizeof(min_length), "%u", server->conf->password_min_length);
    gw_tpl_var_t vars[] = {{"csrf", gw_csrf_token(req)},
                           {"username", username},
                           {"error", error},
                           {"notice", notice},
                           {"min_length", min_length}};
    gw_send_page(req, status, "password.html", vars, sizeof(vars) / sizeof(vars[0]));
}

static void account_run(gw_job_t *job, gw_worker_t *w)
{
    account_job_t *j = (account_job_t *)job;
    const gw_config_t *conf = j->server->conf;
    store_t *db = gw_worker_db(w);
    store_session_t sess = {0};
    char *hash = NULL;

    j->outcome = ACC_UNAVAILABLE;
    if (db == NULL)
        return;
    int r = store_session_lookup(db, j->session, &sess);
    if (r != 0) {
        j->outcome = r == -ENOENT ? ACC_NO_SESSION : ACC_UNAVAILABLE;
        return;
    }
    snprintf(j->username, sizeof(j->username), "%s", sess.user.username);
    if (j->password == NULL) {
        j->outcome = ACC_OK;
        goto done;
    }
    char target[320];
    snprintf(target, sizeof(target), "user:%s", sess.user.username);
    store_throttle_policy_t pol = {conf->throttle_free, conf->throttle_max_delay, conf->throttle_hard_lock};
    int allowed = 0;
    if (store_throttle_reserve(db, sess.user.id, &pol, &allowed, NULL) != 0 ||
        (allowed && store_password_get(db, sess.user.id, &hash) == -EIO))
        goto done;
    char current[POL_NORMALIZED_MAX], normalized[POL_NORMALIZED_MAX];
    int normal = pol_password_normalize(j->current, current, sizeof(current)) == 0;
    int verified = idp_password_verify(allowed && normal ? hash : NULL, normal ? current : j->current);
    sodium_memzero(current, sizeof(current));
    if (!verified) {
        j->outcome = ACC_WRONG;
        idp_audit(db, target, "password.change", target, "failure", j->source,
                  allowed ? "{\"reason\":\"bad_password\"}" : "{\"reason\":\"locked\"}");
        goto done;
    }
    if (store_throttle_reset(db, sess.user.id) != 0)
        goto done;
    store_mfa_factor_t factor = {0};
    int enrolled = store_mfa_get(db, sess.user.id, 1, &factor) == 0;
    store_mfa_factor_dispose(&factor);
    if (idp_password_accept(j->server, &sess.user, enrolled, j->password, normalized, sizeof(normalized), j->reason,
                            sizeof(j->reason)) != 0) {
        j->outcome = ACC_REJECTED;
        goto done;
    }
    char pwhash[crypto_pwhash_STRBYTES];
    int hashed = idp_password_hash(normalized, pwhash);
    sodium_memzero(normalized, sizeof(normalized));
    if (hashed != 0)
        goto done;
    r = store_password_change(db, sess.user.id, pwhash, j->session);
    sodium_memzero(pwhash, sizeof(pwhash));
    if (r != 0)
        goto done;
    j->outcome = ACC_OK;
    idp_audit(db, target, "password.change", target, "success", j->source, "{\"other_sessions\":\"ended\"}");
    gw_log("info", "idp", "password.changed", "user", sess.user.username, NULL);
    idp_notify_password_changed(conf, &sess.user, "changed from the account page");
done:
    if (hash != NULL) {
        sodium_memzero(hash, strlen(hash));
        free(hash);
    }
    store_session_dispose(&sess);
}

static void account_done(gw_job_t *job)
{
    account_job_t *j = (account_job_t *)job;
    h2o_req_t *req = job->req;
    if (req != NULL) {
        const char *user = h2o_strdup(&req->pool, j->username, SIZE_MAX).base;
        switch (j->outcome) {
        case ACC_NO_SESSION: gw_send_redirect(req, 303, "/login?return_to=/account/password"); break;
        case ACC_WRONG: render(req, j->server, 401, user, "The current password is not correct.", NULL); break;
        case ACC_REJECTED:
            render(req, j->server, 400, user, h2o_strdup(&req->pool, j->reason, SIZE_MAX).base, NULL);
            break;
        case ACC_OK:
            render(req, j->server, 200, user, NULL,
                   j->password != NULL ? "Your password was changed. Other sessions have been signed out." : NULL);
            break;
        default: gw_send_unavailable(req);
        }
    }
    idp_free_secret(j->current);
    idp_free_secret(j->password);
    free(j);
}

static int on_password(h2o_handler_t *self, h2o_req_t *req)
{
    idp_handler_t *h = (idp_handler_t *)self;
    gw_server_t *server = h->server;
    h2o_iovec_t cookie = gw_get_cookie(req, server->conf->session_cookie);
    if (cookie.base == NULL || cookie.len == 0 || cookie.len > 128) {
        gw_send_redirect(req, 303, "/login?return_to=/account/password");
        return 0;
    }
    const char *current = NULL, *password = NULL;
    if (idp_is_post(req)) {
        h2o_iovec_t body = req->entity;
        if (gw_csrf_check(req, gw_form_get(req, body, "csrf", 128)) != 0) {
            gw_send_message(req, 403, "Request refused", "The form expired or did not come from this site.",
                            "/account/password", "Try again");
            return 0;
        }
        current = gw_form_get(req, body, "current_password", PASSWORD_MAX_BYTES);
        password = gw_form_get(req, body, "password", PASSWORD_MAX_BYTES);
        const char *confirm = gw_form_get(req, body, "password_confirm", PASSWORD_MAX_BYTES);
        if (current == NULL || password == NULL || confirm == NULL || strcmp(password, confirm) != 0) {
            render(req, server, 400, NULL, "The two new passwords do not match.", NULL);
            return 0;
        }
    }
    account_job_t *j = calloc(1, sizeof(*j));
    j->server = server;
    gw_sha256(cookie.base, cookie.len, j->session);
    j->current = idp_dup_secret(current);
    j->password = idp_dup_secret(password);
    gw_peer_addr(req, j->source, sizeof(j->source));
    gw_job_submit(gw_loop_of(req), req, &j->super, account_run, account_done);
    return 0;
}

void idp_account_register(gw_server_t *server, h2o_hostconf_t *hostconf)
{
    idp_add_handler(server, hostconf, "/account/password", on_password);
}
