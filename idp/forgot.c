/*
 * Forgotten password: /forgot takes a user name or an email address and always answers the same sentence at
 * once ("if an account matches, a message was sent"); the lookup, the reset token and the email happen
 * afterwards on a worker, so neither the page nor its timing tells whether the account exists. The link
 * (login.reset_ttl, default 1 h, single use, voids older links) leads to /setup. Only offered when SMTP is
 * configured. Disabled accounts and accounts without an email address receive nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "idp/internal.h"

#define NAME_MAX_LEN 256
#define FORGOT_NOTICE                                                                                                  \
    "If an account matches what you entered, we have sent it an email with a link to choose a new password. "          \
    "The link works once and expires soon."

typedef struct st_forgot_job_t {
    gw_job_t super;
    gw_server_t *server;
    char name[NAME_MAX_LEN + 1];
    char source[64];
} forgot_job_t;

static void forgot_run(gw_job_t *job, gw_worker_t *w)
{
    forgot_job_t *j = (forgot_job_t *)job;
    const gw_config_t *conf = j->server->conf;
    store_t *db = gw_worker_db(w);
    store_user_t u = {0};
    if (db == NULL || store_user_find_login(db, j->name, &u) != 0)
        return;
    char target[320];
    snprintf(target, sizeof(target), "user:%s", u.username);
    if (u.disabled || u.email == NULL) {
        idp_audit(db, target, "password.reset_requested", target, "failure", j->source,
                  u.disabled ? "{\"reason\":\"disabled\"}" : "{\"reason\":\"no_email\"}");
        store_user_dispose(&u);
        return;
    }
    char token[64], *body = NULL;
    uint8_t hash[STORE_HASH_LEN];
    gw_random_token(32, token, sizeof(token), hash);
    if (store_token_create(db, hash, u.id, "reset", conf->reset_ttl) == 0 &&
        asprintf(&body,
                 "Hello %s,\r\n\r\nsomeone (hopefully you) asked to reset the password of your account.\r\n"
                 "To choose a new password, open this link within %u minutes:\r\n\r\n%s/setup?token=%s\r\n\r\n"
                 "The link works once. If you did not ask for it, ignore this message: your password stays as "
                 "it is.\r\n",
                 u.display_name != NULL ? u.display_name : u.username, conf->reset_ttl / 60, conf->public_url,
                 token) >= 0) {
        int sent = gw_mail_send(conf, u.email, "Reset your portier password", body) == 0;
        idp_audit(db, target, "password.reset_requested", target, sent ? "success" : "failure", j->source,
                  sent ? "{\"via\":\"email\"}" : "{\"reason\":\"mail_failed\"}");
        sodium_memzero(body, strlen(body));
        free(body);
    }
    sodium_memzero(token, sizeof(token));
    store_user_dispose(&u);
}

static int on_forgot(h2o_handler_t *self, h2o_req_t *req)
{
    idp_handler_t *h = (idp_handler_t *)self;
    gw_server_t *server = h->server;
    if (!gw_mail_configured(server->conf)) {
        gw_send_message(req, 404, "Not available",
                        "Password reset by email is not set up here. Ask your administrator for a reset link.",
                        "/login", "Back to sign-in");
        return 0;
    }
    if (!idp_is_post(req)) {
        gw_tpl_var_t vars[] = {{"csrf", gw_csrf_token(req)}};
        gw_send_page(req, 200, "forgot.html", vars, 1);
        return 0;
    }
    h2o_iovec_t body = req->entity;
    if (gw_csrf_check(req, gw_form_get(req, body, "csrf", 128)) != 0) {
        gw_send_message(req, 403, "Request refused", "The form expired or did not come from this site.", "/forgot",
                        "Try again");
        return 0;
    }
    const char *name = gw_form_get(req, body, "username", NAME_MAX_LEN);
    if (name != NULL && name[0] != '\0') {
        forgot_job_t *j = calloc(1, sizeof(*j));
        if (j != NULL) {
            j->server = server;
            snprintf(j->name, sizeof(j->name), "%s", name);
            gw_peer_addr(req, j->source, sizeof(j->source));
            gw_job_submit_detached(server, &j->super, forgot_run);
        }
    }
    gw_tpl_var_t vars[] = {{"csrf", gw_csrf_token(req)}, {"notice", FORGOT_NOTICE}};
    gw_send_page(req, 200, "forgot.html", vars, 2);
    return 0;
}

void idp_forgot_register(gw_server_t *server, h2o_hostconf_t *hostconf)
{
    idp_add_handler(server, hostconf, "/forgot", on_forgot);
}

void idp_notify(const gw_config_t *conf, const store_user_t *u, const char *subject, const char *what)
{
    if (!gw_mail_configured(conf) || u->email == NULL)
        return;
    char *body = NULL;
    if (asprintf(&body, "Hello %s,\r\n\r\n%s\r\n\r\nIf this was not you, contact your administrator at once.\r\n",
                 u->display_name != NULL ? u->display_name : u->username, what) >= 0) {
        (void)gw_mail_send(conf, u->email, subject, body);
        free(body);
    }
}

void idp_notify_password_changed(const gw_config_t *conf, const store_user_t *u, const char *how)
{
    char what[160];
    snprintf(what, sizeof(what), "the password of your account was %s.", how);
    idp_notify(conf, u, "Your portier password was changed", what);
}
