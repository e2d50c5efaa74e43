/*
 * Single logout.
 *
 *   GET|POST /saml/slo   an SP's LogoutRequest (SP-initiated): the portier session behind its NameID and
 *                        SessionIndex ends on every instance (store_session_delete NOTIFYs); the other SPs that
 *                        session had signed in to are walked (below); then the SP gets its signed LogoutResponse.
 *                        Or an SP's LogoutResponse during a walk.
 *   GET /saml/slo/next?state=...   one step of a walk (started by /logout or by an SP's LogoutRequest): a signed
 *                        LogoutRequest to the next SP the session had signed in to (RelayState = the walk's state),
 *                        until none is left; then the SP that asked gets its LogoutResponse, or /logout's browser
 *                        /login?logged_out=1.
 *
 * A walk's state is server-side (store: saml_logout_walks, the marked saml_sp_sessions rows), keyed by the hash of
 * a random token and void after SAML_LOGOUT_WALK_TTL. Every walk is bound to the browser that started it (the one
 * that posted /logout or brought the SP's LogoutRequest) by a Lax cookie, WALK_COOKIE: another browser holding the
 * state can neither continue the walk nor receive its end (400, the walk stays where it was). A walk an SP started
 * keeps that SP's request (replayed through lasso for the answer: InResponseTo, the SP's response location and
 * binding) and its RelayState. The answer's status is Success, with the second-level status
 * PartialLogout when another SP could not be sent a request or answered with an error status (SPs that never
 * answer cannot be told apart from slow ones and do not count). A LogoutRequest for a session that is gone already
 * is answered Success: the principal is logged out, which is what the SP asked for.
 *
 * Every message passes the intake gatekeeper first; lasso verifies signatures with the SP's metadata key, and an
 * SP that must sign its requests (require_signed_requests, or its metadata) must sign its LogoutRequests too. A
 * LogoutRequest is then accepted once and while fresh (accept_once: the IdP's request-ID replay cache), and its
 * NameID must be the one issued for the sign-in it names (agree_on_name_id); only then does anything end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lasso/lasso.h>
#include <lasso/utils.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_subject.h>
#include <lasso/xml/saml-2.0/samlp2_logout_request.h>
#include <lasso/xml/saml-2.0/saml2_name_id.h>
#include <sodium.h>

#include "gateway/gateway.h"
#include "saml/internal.h"

#define STATE_MAX        SAML_LOGOUT_TOKEN_MAX
#define LOCATION_MAX     4096
#define SLO_PATH         "/saml/slo"
#define NEXT_PATH        "/saml/slo/next"
#define LOGGED_OUT       "/login?logged_out=1"
#define MAX_WALK_SKIP    64 /* SPs without a logout endpoint skipped in one step */
#define WALK_TOKEN_BYTES 32
#define WALK_COOKIE      SAML_LOGOUT_WALK_COOKIE /* SameSite=Lax: every step of a walk is a top-level GET */
#define REQUEST_MAX_AGE  600 /* seconds a LogoutRequest is accepted after its IssueInstant (plus skew) */
#define REPLAY_TTL       (REQUEST_MAX_AGE + 2 * SAML_CLOCK_SKEW) /* its ID is remembered for longer than that */

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
    int has_browser;                 /* the request carries a walk cookie */
    uint8_t browser[STORE_HASH_LEN]; /* its hash */
    int walk_cookie;                 /* 1: set walk_token as the walk cookie; -1: clear it */
    char walk_token[STATE_MAX + 1];
    char state[STATE_MAX + 1];
    char source[64];
    int outcome;
    const char *reason;
    char *url, *body; /* OUT_REDIRECT: url; OUT_POST: url + body (SAMLResponse) */
    size_t slot;      /* the worker running the job */
} slo_job_t;

/* What the browser is told when a message or a walk step is refused (400): one line per reason that has its own. */
static const struct {
    const char *reason;
    const char *text;
} refusals[] = {
    {"other_browser", "This sign-out can only be continued in the browser that started it."},
    {"replayed_request", "This sign-out request was already used. Sign out again from the application."},
    {"stale_request", "This sign-out request is too old or not yet valid. Sign out again from the application."},
    {NULL, "The application's sign-out message could not be accepted."},
};

static const char *refusal_text(const char *reason)
{
    size_t i = 0;
    while (refusals[i].reason != NULL && (reason == NULL || strcmp(refusals[i].reason, reason) != 0))
        ++i;
    return refusals[i].text;
}

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

static void redirect_to(slo_job_t *j, const char *fmt, const char *arg);

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

/* Marks the session's SP sign-ins (but the initiator's) for a walk bound to a new browser token: how many SPs are
 * to be walked (then state and token are set), or a negative error. */
static int begin_walk(store_t *db, const uint8_t session[STORE_HASH_LEN], store_saml_walk_t *w,
                      char state[STATE_MAX + 1], char token[STATE_MAX + 1])
{
    uint8_t state_hash[STORE_HASH_LEN];
    gw_random_token(WALK_TOKEN_BYTES, state, STATE_MAX + 1, state_hash);
    gw_random_token(WALK_TOKEN_BYTES, token, STATE_MAX + 1, w->browser);
    w->has_browser = 1;
    int n = store_saml_logout_start(db, session, state_hash, w, SAML_LOGOUT_WALK_TTL);
    sodium_memzero(w->browser, sizeof(w->browser));
    return n;
}

int saml_logout_walk_start(store_t *db, const uint8_t session[STORE_HASH_LEN], char state[STATE_MAX + 1],
                           char cookie[STATE_MAX + 1])
{
    store_saml_walk_t w = {0}; /* portier's own: the walk ends on /login?logged_out=1 */
    return begin_walk(db, session, &w, state, cookie);
}

/* The same for the walk an SP's LogoutRequest starts, keeping what the final answer to `sp` needs; sets j->state
 * and j->walk_token. */
static int start_walk(slo_job_t *j, store_t *db, const saml_sp_config_t *sp, const uint8_t session[STORE_HASH_LEN],
                      const char *dump)
{
    store_saml_walk_t w = {.initiator = sp->md.entity_id,
                           .binding = j->binding == SAML_BINDING_KIND_POST ? "post" : "redirect",
                           .message = j->message,
                           .relay_state = j->relay_state,
                           .lasso_session = (char *)dump};
    return begin_walk(db, session, &w, j->state, j->walk_token);
}

/* A LogoutRequest is accepted once (its ID, per SP, in the replay cache that AuthnRequests use) and only while it
 * is fresh: within REQUEST_MAX_AGE of its IssueInstant and before its NotOnOrAfter, with SAML_CLOCK_SKEW. NULL when
 * accepted (now recorded), else the refusal's reason; *unavailable when the store could not tell. */
static const char *accept_once(store_t *db, const saml_sp_config_t *sp, LassoSamlp2LogoutRequest *req, int *unavailable)
{
    const char *id = req->parent.ID;
    time_t issued, until, now = time(NULL);
    *unavailable = 0;
    if (id == NULL || *id == '\0')
        return "bad_request";
    if (saml_sp_parse_instant(req->parent.IssueInstant, &issued) != 0 || issued > now + SAML_CLOCK_SKEW ||
        issued < now - REQUEST_MAX_AGE - SAML_CLOCK_SKEW)
        return "stale_request";
    if (req->NotOnOrAfter != NULL &&
        (saml_sp_parse_instant(req->NotOnOrAfter, &until) != 0 || now - SAML_CLOCK_SKEW >= until))
        return "stale_request";
    int rc = store_saml_request_seen(db, sp->md.entity_id, id, REPLAY_TTL);
    if (rc == -EEXIST)
        return "replayed_request";
    *unavailable = rc != 0;
    return NULL;
}

/* An attribute of a NameID that a request may leave out: absent, it matches; given, it must be the issued value, or
 * the default when none was issued. */
static int optional_matches(const char *asked, const char *issued, const char *default_)
{
    const char *want = issued != NULL ? issued : default_;
    return asked == NULL || (want != NULL && strcmp(asked, want) == 0);
}

/* The one check of an SP's LogoutRequest NameID against the NameID issued to that SP in the session's assertion
 * (p->session): the value must be the same; the Format, NameQualifier, SPNameQualifier and SPProvidedID only when
 * the request gives them, as SAML core makes them optional, the qualifiers defaulting to the IdP and the SP. On a
 * match the request's NameID takes the issued attributes, so that lasso's own comparison (of every attribute, an
 * absent one only equal to an absent one) agrees. 0, or -1 when it names someone else. */
static int agree_on_name_id(const saml_idp_t *idp, const saml_sp_config_t *sp, LassoProfile *p)
{
    LassoSamlp2LogoutRequest *req = LASSO_SAMLP2_LOGOUT_REQUEST(p->request);
    LassoNode *node = p->session != NULL ? lasso_session_get_assertion(p->session, sp->md.entity_id) : NULL;
    if (req == NULL || req->NameID == NULL || node == NULL || !LASSO_IS_SAML2_ASSERTION(node) ||
        LASSO_SAML2_ASSERTION(node)->Subject == NULL || LASSO_SAML2_ASSERTION(node)->Subject->NameID == NULL)
        return -1;
    LassoSaml2NameID *asked = req->NameID, *issued = LASSO_SAML2_ASSERTION(node)->Subject->NameID;
    if (asked->content == NULL || issued->content == NULL || strcmp(asked->content, issued->content) != 0 ||
        !optional_matches(asked->Format, issued->Format, NULL) ||
        !optional_matches(asked->NameQualifier, issued->NameQualifier, idp->entity_id) ||
        !optional_matches(asked->SPNameQualifier, issued->SPNameQualifier, sp->md.entity_id) ||
        !optional_matches(asked->SPProvidedID, issued->SPProvidedID, NULL))
        return -1;
    lasso_assign_string(asked->Format, issued->Format);
    lasso_assign_string(asked->NameQualifier, issued->NameQualifier);
    lasso_assign_string(asked->SPNameQualifier, issued->SPNameQualifier);
    lasso_assign_string(asked->SPProvidedID, issued->SPProvidedID);
    return 0;
}

/* The answer's status: `top` with a second-level status, or none when second is NULL. */
static void set_status(LassoProfile *p, const char *top_value, const char *second)
{
    LassoSamlp2StatusResponse *res = LASSO_SAMLP2_STATUS_RESPONSE(p->response);
    if (res == NULL || res->Status == NULL || res->Status->StatusCode == NULL)
        return;
    LassoSamlp2StatusCode *top = res->Status->StatusCode;
    lasso_assign_string(top->Value, top_value);
    if (top->StatusCode != NULL) {
        lasso_node_destroy(LASSO_NODE(top->StatusCode));
        top->StatusCode = NULL;
    }
    if (second != NULL) {
        top->StatusCode = LASSO_SAMLP2_STATUS_CODE(lasso_samlp2_status_code_new());
        lasso_assign_string(top->StatusCode->Value, second);
    }
}

/* The portier session behind the request's SessionIndex (or NameID) ends, the walk of the session's other SPs starts
 * (when there are any), or lasso answers at once from the recorded assertion. A NameID other than the one issued for
 * that sign-in ends nothing and is answered Requester/UnknownPrincipal (SAML core 3.7.3.2: the principal named is not
 * the one of that session). */
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
    int unavailable;
    const char *why = accept_once(db, sp, req, &unavailable);
    if (why != NULL || unavailable) {
        if (why != NULL)
            refuse(j, db, sp, why); /* a replay ends nothing: not even a session that came after it */
        goto exit;
    }
    const char *name_id = req->NameID != NULL ? req->NameID->content : NULL;
    int found = name_id != NULL
                    ? store_saml_sp_session_find(db, sp->md.entity_id, name_id, req->SessionIndex, hash, &dump)
                    : -ENOENT;
    if (found == -EIO)
        goto exit; /* unavailable */
    int mismatch = 0;
    if (found == 0) {
        lasso_profile_set_session_from_dump(p, dump);
        mismatch = agree_on_name_id(j->idp, sp, p) != 0;
    }
    if (mismatch) {
        audit(db, "saml.logout", sp->name, "failure", j->source, "{\"reason\":\"name_id_mismatch\"}");
        gw_log("info", "saml", "slo.name_id_mismatch", "sp", sp->name, NULL);
    } else if (found == 0) {
        store_session_t sess = {0};
        char actor[320] = "anonymous";
        if (store_session_lookup(db, hash, &sess) == 0) /* name the user in the audit trail, if still signed in */
            snprintf(actor, sizeof(actor), "user:%s", sess.user.username);
        store_session_dispose(&sess);
        int walk = start_walk(j, db, sp, hash, dump); /* before the rows of the session are forgotten */
        if (walk < 0)
            goto exit;
        int gone = store_session_delete(db, hash); /* NOTIFY: every instance drops it from its cache */
        if ((gone != 0 && gone != -ENOENT) || store_saml_sp_sessions_forget(db, hash) != 0)
            goto exit;
        j->clear_cookie = j->has_session && sodium_memcmp(j->session, hash, STORE_HASH_LEN) == 0;
        audit_as(db, actor, "saml.logout", sp->name, "success", j->source, "{\"initiated_by\":\"sp\"}");
        gw_log("info", "saml", "slo.sp_initiated", "sp", sp->name, NULL);
        if (walk > 0) { /* the other SPs first; the answer comes when the walk ends (slo_next) */
            j->walk_cookie = 1;
            redirect_to(j, NEXT_PATH "?state=%s", j->state);
            goto exit;
        }
    }
    lasso_logout_validate_request(logout); /* sets the response status (Success, or why not) */
    if (mismatch)
        set_status(p, LASSO_SAML2_STATUS_CODE_REQUESTER, LASSO_SAML2_STATUS_CODE_UNKNOWN_PRINCIPAL);
    else if (found == -ENOENT && name_id != NULL) /* no such session (any more): logged out all the same */
        set_status(p, LASSO_SAML2_STATUS_CODE_SUCCESS, NULL);
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
        int walking = j->relay_state != NULL && strlen(j->relay_state) <= STATE_MAX;
        if (rc != 0) {
            char code[16];
            snprintf(code, sizeof(code), "%d", rc);
            gw_log("info", "saml", "slo.sp_status", "sp", sp->name, "code", code, NULL);
            uint8_t state_hash[STORE_HASH_LEN];
            if (walking) { /* the SP that asked for the logout will hear of it (PartialLogout) */
                gw_sha256(j->relay_state, strlen(j->relay_state), state_hash);
                if (store_saml_logout_partial(db, state_hash) != 0)
                    gw_log("error", "saml", "slo.partial_not_recorded", "sp", sp->name, NULL);
            }
        }
        if (walking)
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

/* The end of a walk an SP started: that SP's request, replayed through lasso, gets its LogoutResponse (Success, or
 * Success/PartialLogout) with its RelayState, in this browser only. */
static void answer_initiator(slo_job_t *j, store_t *db, LassoServer *ls, const store_saml_walk_t *w,
                             const uint8_t state_hash[STORE_HASH_LEN])
{
    size_t sp_index;
    const saml_sp_config_t *sp = saml_sp_by_entity(j->idp, w->initiator, &sp_index);
    int taken = store_saml_logout_walk_take(db, state_hash); /* the answer is given once */
    if (taken != 0) {
        if (taken == -ENOENT)
            refuse(j, db, sp, "unknown_state");
        return;
    }
    j->walk_cookie = -1;
    LassoLogout *logout = lasso_logout_new(ls);
    LassoProfile *p = LASSO_PROFILE(logout);
    int ok = sp != NULL && lasso_logout_process_request_msg(logout, w->message) == 0 &&
             lasso_profile_set_session_from_dump(p, w->lasso_session) == 0 &&
             agree_on_name_id(j->idp, sp, p) == 0; /* as it did when the request arrived */
    if (ok) {
        lasso_logout_validate_request(logout); /* the SP's own sign-in: Success */
        if (w->partial)
            set_status(p, LASSO_SAML2_STATUS_CODE_SUCCESS, LASSO_SAML2_STATUS_CODE_PARTIAL_LOGOUT);
        if (w->relay_state != NULL) {
            lasso_assign_string(p->msg_relayState, w->relay_state);
            j->relay_state = strdup(w->relay_state); /* the POST form carries it */
        }
        ok = (w->relay_state == NULL || j->relay_state != NULL) && lasso_logout_build_response_msg(logout) == 0 &&
             take_message(j, p) == 0;
    }
    if (ok)
        gw_log("info", "saml", "slo.answered", "sp", sp->name, "status", w->partial ? "partial" : "success", NULL);
    else
        refuse(j, db, sp, "internal");
    lasso_logout_destroy(logout);
}

/* The walk has no SP left for this browser: in the browser that started it, answer the SP that started it, or end
 * on our own page (/logout's walk). Another browser is refused and changes nothing. */
static void end_walk(slo_job_t *j, store_t *db, LassoServer *ls, const uint8_t state_hash[STORE_HASH_LEN])
{
    store_saml_walk_t w;
    int r = store_saml_logout_walk_get(db, state_hash, &w);
    if (r == -ENOENT) {
        redirect_to(j, "%s", LOGGED_OUT); /* over (or expired): nothing is left to do */
        return;
    }
    if (r != 0)
        return; /* unavailable */
    if (!w.has_browser || !j->has_browser || sodium_memcmp(j->browser, w.browser, STORE_HASH_LEN) != 0) {
        size_t sp_index;
        refuse(j, db, w.initiator != NULL ? saml_sp_by_entity(j->idp, w.initiator, &sp_index) : NULL, "other_browser");
    } else if (w.initiator != NULL) {
        answer_initiator(j, db, ls, &w, state_hash);
    } else {
        if (store_saml_logout_walk_take(db, state_hash) != 0)
            gw_log("info", "saml", "slo.walk_gone", NULL); /* another request ended it meanwhile */
        j->walk_cookie = -1;
        redirect_to(j, "%s", LOGGED_OUT);
    }
    store_saml_walk_dispose(&w);
}

/* One step of the walk: a LogoutRequest to the next SP that has a logout endpoint. An SP that cannot be sent one
 * makes the logout partial. */
static void slo_next(slo_job_t *j, store_t *db, LassoServer *ls)
{
    uint8_t state_hash[STORE_HASH_LEN];
    gw_sha256(j->state, strlen(j->state), state_hash);
    for (int i = 0; i != MAX_WALK_SKIP; ++i) {
        char *entity = NULL, *dump = NULL;
        size_t sp_index;
        int r = store_saml_logout_next(db, state_hash, j->has_browser ? j->browser : NULL, &entity, &dump);
        if (r == -ENOENT) {
            end_walk(j, db, ls, state_hash);
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
        } else {
            free(j->url); /* a half-taken message */
            free(j->body);
            j->url = j->body = NULL;
            j->outcome = OUT_UNAVAILABLE;
            gw_log("info", "saml", "slo.sp_not_told", "sp", sp != NULL ? sp->name : "(removed)", NULL);
            if (store_saml_logout_partial(db, state_hash) != 0)
                gw_log("error", "saml", "slo.partial_not_recorded", NULL);
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
        if (j->walk_cookie != 0)
            gw_set_cookie(req, WALK_COOKIE, j->walk_cookie > 0 ? j->walk_token : "",
                          j->walk_cookie > 0 ? SAML_LOGOUT_WALK_TTL : 0);
        switch (j->outcome) {
        case OUT_REDIRECT: gw_send_redirect(req, 303, h2o_strdup(&req->pool, j->url, SIZE_MAX).base); break;
        case OUT_POST: saml_send_post_form(req, j->url, "SAMLResponse", j->body, j->relay_state); break;
        case OUT_ERROR: gw_send_message(req, 400, "Sign-out refused", refusal_text(j->reason), NULL, NULL); break;
        default: gw_send_unavailable(req);
        }
    }
    free(j->message);
    free(j->relay_state);
    free(j->url);
    free(j->body);
    sodium_memzero(j->session, sizeof(j->session));
    sodium_memzero(j->browser, sizeof(j->browser));
    sodium_memzero(j->walk_token, sizeof(j->walk_token));
    sodium_memzero(j->state, sizeof(j->state));
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
    j->has_browser = gw_cookie_hash(req, WALK_COOKIE, j->browser);
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
