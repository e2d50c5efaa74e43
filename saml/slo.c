/*
 * Single logout.
 *
 *   GET|POST /saml/slo   an SP's LogoutRequest (SP-initiated): the portier session behind its NameID and
 *                        SessionIndex ends on every instance (store_session_delete NOTIFYs), and the SP gets a
 *                        signed LogoutResponse; or an SP's LogoutResponse during an IdP-initiated walk.
 *   GET /saml/slo/next?state=...   one step of the walk that /logout starts: a signed LogoutRequest to the next SP
 *                        the session had signed in to (RelayState = the walk's state), until none is left, then
 *                        /login?logged_out=1.
 *
 * Every message passes the intake gatekeeper first; lasso verifies signatures with the SP's metadata key, and an
 * SP that must sign its requests (require_signed_requests, or its metadata) must sign its LogoutRequests too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lasso/lasso.h>
#include <lasso/utils.h>
#include <lasso/xml/saml-2.0/samlp2_logout_request.h>
#include <lasso/xml/saml-2.0/saml2_name_id.h>
#include <sodium.h>

#include "gateway/gateway.h"
#include "saml/internal.h"

#define STATE_MAX     64
#define LOCATION_MAX  4096
#define SLO_PATH      "/saml/slo"
#define NEXT_PATH     "/saml/slo/next"
#define LOGGED_OUT    "/login?logged_out=1"
#define MAX_WALK_SKIP 64 /* SPs without a logout endpoint skipped in one step */

enum { SLO_MESSAGE, SLO_NEXT };
enum { OUT_UNAVAILABLE, OUT_REDIRECT, OUT_POST, OUT_ERROR };

typedef struct st_slo_handler_t {
    h2o_handler_t super;
    saml_idp_t *idp;
} slo_handler_t;

typedef struct st_slo_job_t {
    gw_job_t super;
    saml_idp_t *idp;
    int kind;
    saml_binding_kind_t binding;
    char *message; /* Redirect: raw query; POST: the SAMLRequest/SAMLResponse value */
    const char *param;
    char *relay_state;
    int has_session, clear_cookie;
    uint8_t session[STORE_HASH_LEN];
    char state[STATE_MAX + 1];
    char source[64];
    int outcome;
    const char *reason;
    char *url, *body; /* OUT_REDIRECT: url; OUT_POST: url + body (SAMLResponse) */
    size_t slot;      /* the worker running the job */
} slo_job_t;

static void audit_as(store_t *db, const char *actor, const char *action, const char *sp, const char *outcome,
                     const char *source, const char *details)
{
    char target[300];
    snprintf(target, sizeof(target), "sp:%s", sp != NULL ? sp : "(unknown)");
    store_audit_event_t ev = {.actor = actor,
                              .action = action,
                              .target = target,
                              .outcome = outcome,
                              .source_addr = source,
                              .details = details};
    if (store_audit_append(db, &ev) != 0)
        gw_log("error", "audit", "append_failed", "action", action, NULL);
}

static void audit(store_t *db, const char *action, const char *sp, const char *outcome, const char *source,
                  const char *details)
{
    audit_as(db, "anonymous", action, sp, outcome, source, details);
}

static void refuse(slo_job_t *j, store_t *db, const saml_sp_config_t *sp, const char *reason)
{
    char details[96];
    snprintf(details, sizeof(details), "{\"reason\":\"%s\"}", reason);
    j->outcome = OUT_ERROR;
    j->reason = reason;
    audit(db, "saml.logout", sp != NULL ? sp->name : NULL, "failure", j->source, details);
    gw_log("info", "saml", "slo.refused", "sp", sp != NULL ? sp->name : "(unknown)", "reason", reason, NULL);
}

/* lasso's answer (a Redirect URL, or a POST form's target and body) becomes the job's outcome. */
static int take_message(slo_job_t *j, LassoProfile *p)
{
    if (p->msg_url == NULL)
        return -1;
    j->url = strdup(p->msg_url);
    if (p->msg_body != NULL)
        j->body = strdup(p->msg_body);
    j->outcome = p->msg_body != NULL ? OUT_POST : OUT_REDIRECT;
    return j->url != NULL && (p->msg_body == NULL || j->body != NULL) ? 0 : -1;
}

/* The portier session behind the request's NameID/SessionIndex ends; lasso answers from the recorded assertion. */
static void sp_logout_request(slo_job_t *j, store_t *db, LassoServer *ls, const saml_sp_config_t *sp, int signed_)
{
    LassoLogout *logout = lasso_logout_new(ls);
    LassoProfile *p = LASSO_PROFILE(logout);
    uint8_t hash[STORE_HASH_LEN];
    char *dump = NULL;
    int rc = lasso_logout_process_request_msg(logout, j->message);
    if (rc == 0 && signed_ && lasso_profile_get_signature_status(p) != 0)
        rc = LASSO_DS_ERROR_INVALID_SIGNATURE; /* a signature that is there must verify, required or not */
    if (rc != 0 || p->remote_providerID == NULL || strcmp(p->remote_providerID, sp->md.entity_id) != 0) {
        refuse(j, db, sp, rc == LASSO_DS_ERROR_SIGNATURE_NOT_FOUND ? "unsigned_request" : "bad_signature");
        goto exit;
    }
    LassoSamlp2LogoutRequest *req = LASSO_SAMLP2_LOGOUT_REQUEST(p->request);
    const char *name_id = req->NameID != NULL ? req->NameID->content : NULL;
    int found = name_id != NULL
                    ? store_saml_sp_session_find(db, sp->md.entity_id, name_id, req->SessionIndex, hash, &dump)
                    : -ENOENT;
    if (found == -EIO)
        goto exit; /* unavailable */
    if (found == 0) {
        store_session_t sess = {0};
        char actor[320] = "anonymous";
        if (store_session_lookup(db, hash, &sess) == 0) /* name the user in the audit trail, if still signed in */
            snprintf(actor, sizeof(actor), "user:%s", sess.user.username);
        store_session_dispose(&sess);
        lasso_profile_set_session_from_dump(p, dump);
        int gone = store_session_delete(db, hash); /* NOTIFY: every instance drops it from its cache */
        if ((gone != 0 && gone != -ENOENT) || store_saml_sp_sessions_forget(db, hash) != 0)
            goto exit;
        j->clear_cookie = j->has_session && sodium_memcmp(j->session, hash, STORE_HASH_LEN) == 0;
        audit_as(db, actor, "saml.logout", sp->name, "success", j->source, "{\"initiated_by\":\"sp\"}");
        gw_log("info", "saml", "slo.sp_initiated", "sp", sp->name, NULL);
    }
    lasso_logout_validate_request(logout); /* sets the response status (Success, or why not) */
    if (j->relay_state != NULL)
        lasso_assign_string(p->msg_relayState, j->relay_state);
    if (lasso_logout_build_response_msg(logout) != 0 || take_message(j, p) != 0)
        refuse(j, db, sp, "internal");
exit:
    free(dump);
    lasso_logout_destroy(logout);
}

static int is_signature_error(int rc)
{
    return rc == LASSO_DS_ERROR_INVALID_SIGNATURE || rc == LASSO_DS_ERROR_SIGNATURE_VERIFICATION_FAILED ||
           rc == LASSO_DS_ERROR_INVALID_SIGALG || rc == LASSO_DS_ERROR_SIGNATURE_NOT_FOUND ||
           rc == LASSO_PROFILE_ERROR_INVALID_QUERY;
}

static void redirect_to(slo_job_t *j, const char *fmt, const char *arg);

/* An SP's answer during the walk: its signature is checked (the SP's metadata key), its status only logged (an
 * SP that could not log out does not stop the walk: the portier session is gone already), then on to the next
 * SP (the state is the walk's RelayState). */
static void sp_logout_response(slo_job_t *j, store_t *db, LassoServer *ls, const saml_sp_config_t *sp, int signed_)
{
    LassoLogout *logout = lasso_logout_new(ls);
    int rc = lasso_logout_process_response_msg(logout, j->message);
    const char *remote = LASSO_PROFILE(logout)->remote_providerID;
    /* a signature that is there must verify, required or not (lasso only records the result) */
    int bad_sig = signed_ && lasso_profile_get_signature_status(LASSO_PROFILE(logout)) != 0;
    if (bad_sig || is_signature_error(rc) || (remote != NULL && strcmp(remote, sp->md.entity_id) != 0)) {
        refuse(j, db, sp, "bad_signature");
    } else {
        if (rc != 0) {
            char code[16];
            snprintf(code, sizeof(code), "%d", rc);
            gw_log("info", "saml", "slo.sp_status", "sp", sp->name, "code", code, NULL);
        }
        if (j->relay_state != NULL && strlen(j->relay_state) <= STATE_MAX)
            redirect_to(j, NEXT_PATH "?state=%s", j->relay_state);
        else
            redirect_to(j, "%s", LOGGED_OUT);
    }
    lasso_logout_destroy(logout);
}

static void redirect_to(slo_job_t *j, const char *fmt, const char *arg)
{
    char loc[LOCATION_MAX];
    snprintf(loc, sizeof(loc), fmt, arg);
    j->url = strdup(loc);
    j->outcome = j->url != NULL ? OUT_REDIRECT : OUT_UNAVAILABLE;
}

static void slo_message(slo_job_t *j, store_t *db, LassoServer *ls)
{
    saml_peek_t peek;
    size_t sp_index;
    const char *reason = saml_intake_peek(j->binding, j->message, j->param, j->idp->sc->max_message, &peek);
    const saml_sp_config_t *sp =
        reason == NULL && peek.issuer != NULL ? saml_sp_by_entity(j->idp, peek.issuer, &sp_index) : NULL;
    if (reason != NULL) {
        refuse(j, db, NULL, reason);
    } else if (sp == NULL) {
        refuse(j, db, NULL, "unknown_sp");
    } else if (strcmp(peek.root, "LogoutRequest") == 0) {
        if (sp->require_signed && !peek.signed_)
            refuse(j, db, sp, "unsigned_request");
        else if (saml_lasso_key_for(j->idp->lasso, j->slot, sp_index, 1) != 0) /* lasso signs the answer */
            refuse(j, db, sp, "internal");
        else
            sp_logout_request(j, db, ls, sp, peek.signed_);
    } else if (strcmp(peek.root, "LogoutResponse") == 0) {
        if (sp->require_signed && !peek.signed_)
            refuse(j, db, sp, "unsigned_response");
        else
            sp_logout_response(j, db, ls, sp, peek.signed_);
    } else {
        refuse(j, db, sp, "not_a_logout_message");
    }
    saml_peek_dispose(&peek);
}

/* One step of the walk: a LogoutRequest to the next SP that has a logout endpoint. */
static void slo_next(slo_job_t *j, store_t *db, LassoServer *ls)
{
    uint8_t state_hash[STORE_HASH_LEN];
    gw_sha256(j->state, strlen(j->state), state_hash);
    for (int i = 0; i != MAX_WALK_SKIP; ++i) {
        char *entity = NULL, *dump = NULL;
        size_t sp_index;
        int r = store_saml_logout_next(db, state_hash, &entity, &dump);
        if (r == -ENOENT) {
            redirect_to(j, "%s", LOGGED_OUT);
            return;
        }
        if (r != 0)
            return; /* unavailable */
        const saml_sp_config_t *sp = saml_sp_by_entity(j->idp, entity, &sp_index);
        LassoLogout *logout = lasso_logout_new(ls);
        LassoProfile *p = LASSO_PROFILE(logout);
        int ok = sp != NULL && saml_lasso_key_for(j->idp->lasso, j->slot, sp_index, 1) == 0 &&
                 lasso_profile_set_session_from_dump(p, dump) == 0 &&
                 lasso_logout_init_request(logout, entity, LASSO_HTTP_METHOD_REDIRECT) == 0;
        if (ok) {
            lasso_assign_string(p->msg_relayState, j->state);
            ok = lasso_logout_build_request_msg(logout) == 0 && take_message(j, p) == 0;
        }
        if (ok) {
            audit(db, "saml.logout", sp->name, "success", j->source, "{\"initiated_by\":\"idp\"}");
            gw_log("info", "saml", "slo.idp_initiated", "sp", sp->name, NULL);
        }
        lasso_logout_destroy(logout);
        free(entity);
        free(dump);
        if (ok)
            return;
    }
    redirect_to(j, "%s", LOGGED_OUT);
}

static void slo_run(gw_job_t *job, gw_worker_t *w)
{
    slo_job_t *j = (slo_job_t *)job;
    store_t *db = gw_worker_db(w);
    LassoServer *ls = db != NULL ? saml_lasso_server(j->idp->lasso, w->index) : NULL;
    j->outcome = OUT_UNAVAILABLE;
    if (ls == NULL)
        return;
    j->slot = w->index;
    if (j->kind == SLO_NEXT)
        slo_next(j, db, ls);
    else
        slo_message(j, db, ls);
}

static void slo_done(gw_job_t *job)
{
    slo_job_t *j = (slo_job_t *)job;
    h2o_req_t *req = job->req;
    if (req != NULL) {
        if (j->clear_cookie)
            gw_set_cookie(req, j->idp->conf->session_cookie, "", 0);
        switch (j->outcome) {
        case OUT_REDIRECT: gw_send_redirect(req, 303, h2o_strdup(&req->pool, j->url, SIZE_MAX).base); break;
        case OUT_POST: saml_send_post_form(req, j->url, "SAMLResponse", j->body, j->relay_state); break;
        case OUT_ERROR:
            gw_send_message(req, 400, "Sign-out refused", "The application's sign-out message could not be accepted.",
                            NULL, NULL);
            break;
        default: gw_send_unavailable(req);
        }
    }
    free(j->message);
    free(j->relay_state);
    free(j->url);
    free(j->body);
    sodium_memzero(j->session, sizeof(j->session));
    free(j);
}

static slo_job_t *new_job(h2o_req_t *req, saml_idp_t *idp, int kind)
{
    slo_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->idp = idp;
    j->kind = kind;
    j->has_session = gw_cookie_hash(req, idp->conf->session_cookie, j->session);
    gw_peer_addr(req, j->source, sizeof(j->source));
    return j;
}

static int on_slo(h2o_handler_t *self, h2o_req_t *req)
{
    saml_idp_t *idp = ((slo_handler_t *)self)->idp;
    size_t max = idp->sc->max_message;
    slo_job_t *j = new_job(req, idp, SLO_MESSAGE);
    const char *rs, *msg;
    if (j == NULL)
        return -1;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_iovec_t body = req->entity;
        j->binding = SAML_BINDING_KIND_POST;
        msg = gw_form_get(req, body, "SAMLRequest", max);
        j->param = "SAMLRequest";
        if (msg == NULL) {
            msg = gw_form_get(req, body, "SAMLResponse", max);
            j->param = "SAMLResponse";
        }
        j->message = strdup(msg != NULL ? msg : "");
        rs = gw_form_get(req, body, "RelayState", 4 * SAML_MAX_RELAY_STATE);
    } else {
        size_t qlen = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;
        j->binding = SAML_BINDING_KIND_REDIRECT;
        j->message = qlen != 0 && qlen <= 3 * max ? strndup(req->path.base + req->query_at + 1, qlen) : strdup("");
        j->param = gw_query_get(req, "SAMLResponse", 3 * max) != NULL ? "SAMLResponse" : "SAMLRequest";
        rs = gw_query_get(req, "RelayState", 4 * SAML_MAX_RELAY_STATE);
    }
    if (rs != NULL && strlen(rs) <= SAML_MAX_RELAY_STATE)
        j->relay_state = strdup(rs);
    gw_job_submit(gw_loop_of(req), req, &j->super, slo_run, slo_done);
    return 0;
}

static int on_next(h2o_handler_t *self, h2o_req_t *req)
{
    saml_idp_t *idp = ((slo_handler_t *)self)->idp;
    const char *state = gw_query_get(req, "state", STATE_MAX);
    if (state == NULL || *state == '\0') {
        gw_send_redirect(req, 303, LOGGED_OUT);
        return 0;
    }
    slo_job_t *j = new_job(req, idp, SLO_NEXT);
    if (j == NULL)
        return -1;
    snprintf(j->state, sizeof(j->state), "%s", state);
    gw_job_submit(gw_loop_of(req), req, &j->super, slo_run, slo_done);
    return 0;
}

static void add(h2o_hostconf_t *hostconf, saml_idp_t *idp, const char *path, int (*cb)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, path, 0);
    slo_handler_t *h = (slo_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = cb;
    h->idp = idp;
}

void saml_slo_register(saml_idp_t *idp, h2o_hostconf_t *hostconf)
{
    add(hostconf, idp, NEXT_PATH, on_next); /* before /saml/slo: the first matching prefix wins */
    add(hostconf, idp, SLO_PATH, on_slo);
}
