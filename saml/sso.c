/*
 * Single sign-on for SAML service providers.
 *
 *   GET  /saml/sso?SAMLRequest=...[&RelayState][&SigAlg&Signature]   HTTP-Redirect binding
 *   POST /saml/sso  SAMLRequest=...[&RelayState]                      HTTP-POST binding
 *   GET  /saml/sso/resume?state=...    back from /login (or from a cross-site POST that carried no cookie)
 *   GET  /saml/idp/init?sp=NAME[&RelayState=...]                      IdP-initiated, where the SP allows it
 *
 * The loop only copies the request's parts into a job; the worker runs the whole check-then-issue sequence
 * (sso_request): intake gatekeeper, lasso's parse and signature check against the SP's metadata key, our own
 * checks (signature required, ACS from metadata, Destination, age, replay), the portier session, ForceAuthn /
 * IsPassive, the SP's group policy, then lasso builds the Response and sign.c signs it (lasso does, for an SP that
 * wants the assertion encrypted), which the loop sends as an auto-submitting form. A user without a session is
 * sent to /login; the request waits server-side in saml_pending (single use), so nothing from the SP rides along
 * in the URL. An assertion issued with a session is activity for its idle timeout, as a proxied request is
 * (gw_session_activity, once back on the loop).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/samlp2_authn_request.h>
#include <lasso/xml/saml-2.0/samlp2_name_id_policy.h>
#include <lasso/xml/saml-2.0/samlp2_status.h>
#include <lasso/xml/saml-2.0/samlp2_status_code.h>
#include <lasso/xml/saml-2.0/samlp2_status_response.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_authn_statement.h>
#include <lasso/xml/saml-2.0/saml2_name_id.h>
#include <sodium.h>

#include "gateway/gateway.h"
#include "saml/internal.h"

#define STATE_BYTES     32
#define STATE_MAX       64
#define PENDING_TTL     900 /* seconds a request may wait for the user to sign in */
#define REQUEST_MAX_AGE 600 /* an AuthnRequest older than this (plus skew) is refused */
#define REPLAY_TTL      (REQUEST_MAX_AGE + 2 * SAML_CLOCK_SKEW)
#define SP_NAME_MAX     128
#define RELEASED_MAX    256
#define LOCATION_MAX    512
#define SSO_PATH        "/saml/sso"
#define RESUME_PATH     "/saml/sso/resume"

enum { KIND_REQUEST, KIND_RESUME, KIND_IDP_INIT };
enum { OUT_UNAVAILABLE, OUT_POST, OUT_LOGIN, OUT_ERROR };

typedef struct st_sso_handler_t {
    h2o_handler_t super;
    saml_idp_t *idp;
} sso_handler_t;

typedef struct st_sso_job_t {
    gw_job_t super;
    saml_idp_t *idp;
    int kind;
    saml_binding_kind_t binding;
    size_t slot;                 /* the worker running the job */
    struct _xmlSecKey *sign_key; /* the worker's signing key (sign.c), borrowed while the job runs */
    char *message;               /* Redirect: the raw query string; POST: the SAMLRequest value (base64) */
    char *relay_state;           /* NULL or at most SAML_MAX_RELAY_STATE bytes */
    const char *early_reason;    /* refused on the loop already (audited by the worker) */
    int has_session;
    uint8_t session[STORE_HASH_LEN];
    char state[STATE_MAX + 1];
    char sp_name[SP_NAME_MAX + 1];
    char source[64];
    /* result */
    int outcome;
    int issued; /* an assertion was issued with the session: activity for its idle timeout */
    const char *reason;
    char *acs, *response;
    char location[LOCATION_MAX];
} sso_job_t;

/* ---- refusals: one table from reason to what the user sees ---- */

static const struct {
    const char *reason;
    int status;
    const char *text;
} refusals[] = {
    {"unknown_sp", 400, "This application is not registered with portier."},
    {"unknown_state", 400, "This sign-in request has expired or was already used. Start again from the application."},
    {"acs_not_in_metadata", 400, "The application asked for its answer at an address it has not registered."},
    {"unsigned_request", 400, "The application's sign-in request must be signed, and it was not."},
    {"bad_signature", 400, "The signature of the application's sign-in request is not valid."},
    {"sha1", 400, "The application signed its request with SHA-1, which portier does not accept."},
    {"algorithm", 400, "The application's request uses a signature algorithm portier does not accept."},
    {"doctype", 400, "The application's sign-in request is malformed (document type declarations are refused)."},
    {"too_large", 413, "The application's sign-in request is too large."},
    {"replayed_request", 400, "This sign-in request was already used. Start again from the application."},
    {"stale_request", 400, "This sign-in request is too old. Start again from the application."},
    {"wrong_destination", 400, "This sign-in request was meant for another server."},
    {"relay_state_too_long", 400, "The application's RelayState is longer than 80 bytes."},
    {"unsupported_binding", 400, "The application asked for a response binding portier does not offer."},
    {"not_in_group", 403, "Your account is not allowed to use this application. Ask your administrator for access."},
    {"no_email", 403, "This application needs an email address, and your account has none."},
    {"idp_initiated_disabled", 403, "Sign-in started from portier is not enabled for this application."},
    {"authn_context_unsupported", 403,
     "The application asks for a kind of sign-in portier cannot vouch for (its RequestedAuthnContext)."},
    {NULL, 400, "The application's sign-in request could not be processed."},
};

static size_t refusal_of(const char *reason)
{
    size_t i = 0;
    while (refusals[i].reason != NULL && strcmp(refusals[i].reason, reason) != 0)
        ++i;
    return i;
}

/* ---- worker side ---- */

static void audit(store_t *db, const char *actor, const char *action, const char *sp, const char *outcome,
                  const char *source, const char *details)
{
    char target[SP_NAME_MAX + 8];
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

static void refuse(sso_job_t *j, store_t *db, const saml_sp_config_t *sp, size_t sp_index, const char *user,
                   const char *reason)
{
    char details[160], actor[320];
    j->outcome = OUT_ERROR;
    j->reason = reason;
    snprintf(details, sizeof(details), "{\"reason\":\"%s\"}", reason);
    snprintf(actor, sizeof(actor), "%s%s", user != NULL ? "user:" : "anonymous", user != NULL ? user : "");
    if (sp == NULL)
        atomic_fetch_add(&j->idp->unknown_sp, 1);
    else if (strcmp(reason, "not_in_group") == 0)
        atomic_fetch_add(&j->idp->stats[sp_index].denied, 1);
    else
        atomic_fetch_add(&j->idp->stats[sp_index].failed, 1);
    if (db != NULL)
        audit(db, actor, "saml.sso", sp != NULL ? sp->name : NULL, "failure", j->source, details);
    gw_log("info", "saml", "sso.refused", "sp", sp != NULL ? sp->name : "(unknown)", "reason", reason, "source",
           j->source, NULL);
}

/* The gatekeeper, then a look at what the request says about itself. */
static const char *intake(sso_job_t *j, saml_peek_t *peek)
{
    const char *reason = saml_intake_peek(j->binding, j->message, "SAMLRequest", j->idp->sc->max_message, peek);
    if (reason == NULL && strcmp(peek->root, "AuthnRequest") != 0)
        reason = "not_authn_request";
    return reason;
}

static int parse_instant(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = s != NULL ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (end == NULL)
        return -1;
    if (*end == '.')
        for (++end; *end >= '0' && *end <= '9'; ++end)
            ;
    if (*end != 'Z' || end[1] != '\0')
        return -1;
    *out = timegm(&tm);
    return 0;
}

static int acs_registered(const saml_sp_config_t *sp, const char *url)
{
    for (size_t i = 0; url != NULL && i != sp->md.num_acs; ++i)
        if (strcmp(sp->md.acs_urls[i], url) == 0)
            return 1;
    return 0;
}

/* Our checks on what lasso parsed (lasso has verified any signature against the SP's metadata key). */
static const char *check_request(sso_job_t *j, const saml_sp_config_t *sp, LassoLogin *login, int signed_)
{
    LassoSamlp2AuthnRequest *req = LASSO_SAMLP2_AUTHN_REQUEST(LASSO_PROFILE(login)->request);
    LassoSamlp2RequestAbstract *abs = &req->parent;
    char expected[1200];
    time_t issued, now = time(NULL);

    int sig = lasso_profile_get_signature_status(LASSO_PROFILE(login));
    if (signed_ && sig != 0) /* a signature that is there must verify, required or not (lasso only records it) */
        return "bad_signature";
    if (sp->require_signed && sig != 0)
        return "unsigned_request";
    if (req->ProtocolBinding != NULL && strcmp(req->ProtocolBinding, LASSO_SAML2_METADATA_BINDING_POST) != 0)
        return "unsupported_binding";
    if (req->AssertionConsumerServiceURL != NULL && !acs_registered(sp, req->AssertionConsumerServiceURL))
        return "acs_not_in_metadata";
    snprintf(expected, sizeof(expected), "%s" SSO_PATH, j->idp->conf->public_url);
    if (abs->Destination != NULL && strcmp(abs->Destination, expected) != 0)
        return "wrong_destination";
    if (j->kind == KIND_REQUEST) { /* a resumed request was checked when it arrived */
        if (parse_instant(abs->IssueInstant, &issued) != 0 || issued > now + SAML_CLOCK_SKEW ||
            issued < now - REQUEST_MAX_AGE - SAML_CLOCK_SKEW)
            return "stale_request";
        if (abs->ID == NULL || *abs->ID == '\0')
            return "bad_request";
    }
    return NULL;
}

/* Parks the request in saml_pending and sends the browser to sign in, coming back to /saml/sso/resume. */
static int park(sso_job_t *j, store_t *db, const saml_sp_config_t *sp)
{
    uint8_t hash[STORE_HASH_LEN];
    if (j->kind == KIND_RESUME) { /* already parked: keep the same state */
        gw_sha256(j->state, strlen(j->state), hash);
    } else {
        gw_random_token(STATE_BYTES, j->state, sizeof(j->state), hash);
        if (store_saml_pending_put(db, hash, sp->md.entity_id,
                                   j->binding == SAML_BINDING_KIND_REDIRECT ? "redirect" : "post", j->message,
                                   j->relay_state, PENDING_TTL) != 0)
            return -1;
    }
    /* the state is a bearer of nothing but this request: it may travel in the URL. A cross-site POST carries no
     * SameSite=Lax cookie, so the browser may well be signed in: try again with a top-level GET first. */
    if (j->binding == SAML_BINDING_KIND_POST && !j->has_session && j->kind == KIND_REQUEST)
        snprintf(j->location, sizeof(j->location), RESUME_PATH "?state=%s", j->state);
    else
        snprintf(j->location, sizeof(j->location), "/login?return_to=%%2Fsaml%%2Fsso%%2Fresume%%3Fstate%%3D%s",
                 j->state);
    j->outcome = OUT_LOGIN;
    return 0;
}

/* The session has a password only and the SP or request needs a second factor: park the request (unless it is
 * parked already, or IdP-initiated: the same URL starts over) and go through /login/mfa, which comes back. */
static int step_up_first(sso_job_t *j, store_t *db, const saml_sp_config_t *sp)
{
    if (j->kind == KIND_IDP_INIT) {
        snprintf(j->location, sizeof(j->location), "/login/mfa?return_to=%%2Fsaml%%2Fidp%%2Finit%%3Fsp%%3D%s",
                 j->sp_name);
    } else {
        if (park(j, db, sp) != 0)
            return -1;
        snprintf(j->location, sizeof(j->location), "/login/mfa?return_to=%%2Fsaml%%2Fsso%%2Fresume%%3Fstate%%3D%s",
                 j->state);
    }
    j->outcome = OUT_LOGIN;
    return 0;
}

static int user_in_groups(const store_user_t *u, const saml_sp_config_t *sp)
{
    if (sp->num_groups == 0)
        return 1;
    for (size_t i = 0; i != sp->num_groups; ++i)
        for (size_t k = 0; k != u->num_groups; ++k)
            if (strcmp(sp->groups[i], u->groups[k]) == 0)
                return 1;
    return 0;
}

/* lasso must not try to federate (it would want an ID-FF identity store): it builds a transient subject, which
 * saml_assertion_fill then replaces with the SP's configured NameID. */
static void neutral_name_id_policy(LassoLogin *login)
{
    LassoSamlp2AuthnRequest *req = LASSO_SAMLP2_AUTHN_REQUEST(LASSO_PROFILE(login)->request);
    if (req->NameIDPolicy != NULL) {
        g_free(req->NameIDPolicy->Format);
        req->NameIDPolicy->Format = g_strdup(LASSO_SAML2_NAME_IDENTIFIER_FORMAT_TRANSIENT);
        req->NameIDPolicy->AllowCreate = TRUE;
    }
}

/* An unexpected failure: the step and lasso's code go to the log (neither is secret), "internal" to the user. */
static const char *internal(const char *step, int rc)
{
    char code[16];
    snprintf(code, sizeof(code), "%d", rc);
    gw_log("error", "saml", "sso.internal_error", "step", step, "code", code, "detail",
           rc != 0 ? lasso_strerror(rc) : NULL, NULL);
    return "internal";
}

/* Single logout needs, per SP, the NameID and SessionIndex it was given and lasso's record of the assertion. */
static int remember_for_logout(sso_job_t *j, store_t *db, const saml_sp_config_t *sp, LassoLogin *login,
                               const char *name_id, const char *format)
{
    LassoSession *session = LASSO_PROFILE(login)->session;
    LassoNode *node = lasso_login_get_assertion(login);
    const char *index = NULL;
    if (node != NULL && LASSO_IS_SAML2_ASSERTION(node) && LASSO_SAML2_ASSERTION(node)->AuthnStatement != NULL)
        index = LASSO_SAML2_AUTHN_STATEMENT(LASSO_SAML2_ASSERTION(node)->AuthnStatement->data)->SessionIndex;
    /* lasso keeps the assertion in its session only for SPs with a logout endpoint: nothing to remember else */
    char *dump = session != NULL && !lasso_session_is_empty(session) ? lasso_session_dump(session) : NULL;
    int rc = dump != NULL && index != NULL
                 ? store_saml_sp_session_put(db, j->session, sp->md.entity_id, name_id, format, index, dump)
                 : 0;
    g_free(dump);
    if (node != NULL)
        g_object_unref(node);
    return rc;
}

/* Who signs the Response for sp: lasso for an SP that wants the assertion encrypted (lasso signs the assertion, then
 * encrypts it), sign.c for the others, with the worker's key parsed once and never copied (lasso copies its key,
 * certificate included, for every signature it sets up; see sign.c). */
static int lasso_signs(const saml_sp_config_t *sp)
{
    return sp->encrypt;
}

/* A LassoLogin for a request to sp; when we sign, lasso is told so before it sets up the Response. */
static LassoLogin *new_login(LassoServer *ls, const saml_sp_config_t *sp)
{
    LassoLogin *login = lasso_login_new(ls);
    if (login != NULL && !lasso_signs(sp))
        lasso_profile_set_signature_hint(LASSO_PROFILE(login), LASSO_PROFILE_SIGNATURE_HINT_FORBID);
    return login;
}

/* Builds, signs (and encrypts) the Response for a checked request and a signed-in, admitted user. */
static const char *issue(sso_job_t *j, store_t *db, const saml_sp_config_t *sp, size_t sp_index, LassoLogin *login,
                         const store_session_t *sess, const char *class_ref)
{
    char name_id[256], released[RELEASED_MAX], instant[32], session_end[32], not_before[32], not_after[32];
    const char *format;
    time_t now = time(NULL);

    if (saml_nameid_for(j->idp, sp, &sess->user, name_id, sizeof(name_id), &format) != 0)
        return "no_email";
    neutral_name_id_policy(login);
    if (lasso_login_validate_request_msg(login, TRUE, TRUE) != 0)
        return "bad_request";
    saml_time_format(sess->created_at, instant, sizeof(instant));
    saml_time_format(sess->expires_at, session_end, sizeof(session_end));
    saml_time_format(now, not_before, sizeof(not_before));
    saml_time_format(now + j->idp->sc->assertion_lifetime, not_after, sizeof(not_after));
    if (saml_lasso_key_for(j->idp->lasso, j->slot, sp_index, lasso_signs(sp)) != 0) /* see lserver.c */
        return internal("signing_key", 0);
    int rc = lasso_login_build_assertion(login, class_ref, instant, session_end, not_before, not_after);
    if (rc != 0 ||
        saml_assertion_fill(login, j->idp, sp, &sess->user, name_id, format, released, sizeof(released)) != 0)
        return internal("build_assertion", rc);
    /* see new_login: lasso signs (and encrypts) only for an SP that wants the assertion encrypted; for the others it
     * builds the Response unsigned and sign.c signs it (the assertion too, unless this lasso insists on signing it:
     * then with the key saml_lasso_key_for gave it, without the certificate in KeyInfo) */
    int lasso_signs_assertion = lasso_signs(sp) || saml_sign_take_over_assertion(login) != 0;
    if (sp->sign == SAML_SIGN_ASSERTION)
        lasso_profile_set_signature_hint(LASSO_PROFILE(login), LASSO_PROFILE_SIGNATURE_HINT_FORBID);
    if ((rc = lasso_login_build_authn_response_msg(login)) != 0)
        return internal("build_response", rc);
    LassoProfile *p = LASSO_PROFILE(login);
    if (!acs_registered(sp, p->msg_url) || p->msg_body == NULL) /* the one place the destination is decided */
        return "acs_not_in_metadata";
    char *body = lasso_signs(sp) ? strdup(p->msg_body)
                                 : saml_sign_response(p->msg_body, j->sign_key, sp->sign != SAML_SIGN_ASSERTION,
                                                      sp->sign != SAML_SIGN_RESPONSE && !lasso_signs_assertion);
    if (body == NULL)
        return internal("sign_response", 0);
    free(j->response);
    j->response = body;
    if (j->kind == KIND_RESUME) { /* single use of the parked request, decided by the database */
        uint8_t hash[STORE_HASH_LEN];
        gw_sha256(j->state, strlen(j->state), hash);
        if (store_saml_pending_take(db, hash) != 0)
            return "unknown_state";
    }
    if (remember_for_logout(j, db, sp, login, name_id, format) != 0)
        return internal("remember_for_logout", 0);
    j->acs = strdup(p->msg_url);
    if (j->acs == NULL)
        return "internal";
    j->outcome = OUT_POST;
    j->issued = 1;
    atomic_fetch_add(&j->idp->stats[sp_index].issued, 1);

    char actor[320], details[RELEASED_MAX + 256];
    snprintf(actor, sizeof(actor), "user:%s", sess->user.username);
    snprintf(details, sizeof(details), "{\"name_id_format\":\"%s\",\"attributes\":%s,\"encrypted\":%s}", format,
             released, sp->encrypt ? "true" : "false");
    audit(db, actor, "saml.assertion", sp->name, "success", j->source, details);
    gw_log("info", "saml", "sso.issued", "user", sess->user.username, "sp", sp->name, NULL);
    return NULL;
}

/* Responder / NoPassive: lasso's validate with a failed authentication sets a generic status (and returns an
 * error that only says so); the SP is told precisely why there is no assertion. */
static void set_no_passive(LassoLogin *login)
{
    LassoSamlp2StatusResponse *res = LASSO_SAMLP2_STATUS_RESPONSE(LASSO_PROFILE(login)->response);
    if (res == NULL || res->Status == NULL || res->Status->StatusCode == NULL)
        return;
    LassoSamlp2StatusCode *top = res->Status->StatusCode;
    g_free(top->Value);
    top->Value = g_strdup(LASSO_SAML2_STATUS_CODE_RESPONDER);
    if (top->StatusCode == NULL)
        top->StatusCode = LASSO_SAMLP2_STATUS_CODE(lasso_samlp2_status_code_new());
    g_free(top->StatusCode->Value);
    top->StatusCode->Value = g_strdup(LASSO_SAML2_STATUS_CODE_NO_PASSIVE);
}

static void answer_no_passive(sso_job_t *j, store_t *db, const saml_sp_config_t *sp, size_t sp_index, LassoLogin *login)
{
    lasso_login_validate_request_msg(login, FALSE, FALSE); /* "failed" is what we asked for */
    set_no_passive(login);
    const char *body = NULL;
    if (lasso_login_build_authn_response_msg(login) != 0 || !acs_registered(sp, LASSO_PROFILE(login)->msg_url) ||
        (body = LASSO_PROFILE(login)->msg_body) == NULL) {
        refuse(j, db, sp, sp_index, NULL, "bad_request");
        return;
    }
    j->acs = strdup(LASSO_PROFILE(login)->msg_url);
    j->response = lasso_signs(sp) ? strdup(body) : saml_sign_response(body, j->sign_key, 1, 0);
    j->outcome = j->acs != NULL && j->response != NULL ? OUT_POST : OUT_UNAVAILABLE;
}

/* After the request is known good: session, ForceAuthn/IsPassive, group policy, then issue. */
static void answer(sso_job_t *j, store_t *db, const saml_sp_config_t *sp, size_t sp_index, LassoLogin *login,
                   time_t parked_at)
{
    LassoSamlp2AuthnRequest *req = LASSO_SAMLP2_AUTHN_REQUEST(LASSO_PROFILE(login)->request);
    store_session_t sess = {0};
    int r = j->has_session ? store_session_lookup(db, j->session, &sess) : -ENOENT;
    if (r != 0 && r != -ENOENT)
        return; /* OUT_UNAVAILABLE */
    /* ForceAuthn: only a sign-in that happened after the request arrived counts */
    int fresh = r == 0 && (!req->ForceAuthn || (j->kind == KIND_RESUME && sess.created_at >= parked_at));
    if (!fresh) {
        if (req->IsPassive) { /* never show a page: answer the SP with a NoPassive status instead */
            answer_no_passive(j, db, sp, sp_index, login);
        } else if (j->kind == KIND_IDP_INIT) { /* nothing to park: the same URL starts over after sign-in */
            snprintf(j->location, sizeof(j->location), "/login?return_to=%%2Fsaml%%2Fidp%%2Finit%%3Fsp%%3D%s",
                     j->sp_name);
            j->outcome = OUT_LOGIN;
        } else if (park(j, db, sp) != 0) {
            j->outcome = OUT_UNAVAILABLE;
        }
        goto exit;
    }
    if (!user_in_groups(&sess.user, sp)) {
        refuse(j, db, sp, sp_index, sess.user.username, "not_in_group");
        goto exit;
    }
    int step_up;
    const char *class_ref = saml_authn_context(j->idp->conf, sp, &sess, req, &step_up);
    if (step_up) { /* a second factor first (/login/mfa enrols one if needed), then back to this request */
        if (step_up_first(j, db, sp) != 0)
            j->outcome = OUT_UNAVAILABLE;
        goto exit;
    }
    const char *reason =
        class_ref == NULL ? "authn_context_unsupported" : issue(j, db, sp, sp_index, login, &sess, class_ref);
    if (reason != NULL)
        refuse(j, db, sp, sp_index, sess.user.username, reason);
exit:
    store_session_dispose(&sess);
}

static const char *lasso_reason(int rc)
{
    switch (rc) {
    case LASSO_SERVER_ERROR_PROVIDER_NOT_FOUND:
    case LASSO_PROFILE_ERROR_UNKNOWN_PROVIDER: return "unknown_sp";
    case LASSO_DS_ERROR_SIGNATURE_NOT_FOUND: return "unsigned_request";
    case LASSO_DS_ERROR_INVALID_SIGNATURE:
    case LASSO_DS_ERROR_SIGNATURE_VERIFICATION_FAILED:
    case LASSO_DS_ERROR_INVALID_SIGALG:
    case LASSO_PROFILE_ERROR_INVALID_QUERY: return "bad_signature";
    default: return "bad_request";
    }
}

/* The checks that need no lasso: a known issuer, an ACS from its metadata, a signature where one is required. */
static const char *precheck(sso_job_t *j, const saml_peek_t *peek, const saml_sp_config_t **sp, size_t *sp_index)
{
    *sp = peek->issuer != NULL ? saml_sp_by_entity(j->idp, peek->issuer, sp_index) : NULL;
    if (*sp == NULL)
        return "unknown_sp";
    if (peek->acs != NULL && !acs_registered(*sp, peek->acs))
        return "acs_not_in_metadata";
    if ((*sp)->require_signed && !peek->signed_)
        return "unsigned_request";
    return NULL;
}

static void sso_request(sso_job_t *j, store_t *db, LassoServer *ls, time_t parked_at)
{
    size_t sp_index = 0;
    const saml_sp_config_t *sp = NULL;
    saml_peek_t peek;
    const char *reason = j->early_reason;
    LassoLogin *login = NULL;
    memset(&peek, 0, sizeof(peek));
    if (reason == NULL && (reason = intake(j, &peek)) == NULL)
        reason = precheck(j, &peek, &sp, &sp_index);
    int signed_ = peek.signed_;
    saml_peek_dispose(&peek);
    if (reason != NULL) {
        refuse(j, db, sp, sp_index, NULL, reason);
        return;
    }
    login = new_login(ls, sp);
    int rc = lasso_login_process_authn_request_msg(login, j->message);
    const char *remote = LASSO_PROFILE(login)->remote_providerID;
    if (rc != 0) {
        char code[16];
        snprintf(code, sizeof(code), "%d", rc);
        gw_log("info", "saml", "lasso.refused", "code", code, "detail", lasso_strerror(rc), NULL);
        refuse(j, db, sp, sp_index, NULL, lasso_reason(rc));
    } else if (remote == NULL || strcmp(remote, sp->md.entity_id) != 0) { /* lasso and we must agree */
        refuse(j, db, sp, sp_index, NULL, "unknown_sp");
    } else if ((reason = check_request(j, sp, login, signed_)) != NULL) {
        refuse(j, db, sp, sp_index, NULL, reason);
    } else if (j->kind == KIND_REQUEST &&
               (rc = store_saml_request_seen(db, sp->md.entity_id,
                                             LASSO_SAMLP2_REQUEST_ABSTRACT(LASSO_PROFILE(login)->request)->ID,
                                             REPLAY_TTL)) != 0) {
        if (rc == -EEXIST)
            refuse(j, db, sp, sp_index, NULL, "replayed_request");
    } else {
        answer(j, db, sp, sp_index, login, parked_at);
    }
    lasso_login_destroy(login);
}

static void idp_initiated(sso_job_t *j, store_t *db, LassoServer *ls)
{
    size_t sp_index = 0;
    const saml_sp_config_t *sp = saml_sp_by_name(j->idp, j->sp_name, &sp_index);
    if (sp == NULL) {
        refuse(j, db, NULL, 0, NULL, "unknown_sp");
        return;
    }
    if (!sp->idp_initiated) {
        refuse(j, db, sp, sp_index, NULL, "idp_initiated_disabled");
        return;
    }
    if (j->early_reason != NULL) {
        refuse(j, db, sp, sp_index, NULL, j->early_reason);
        return;
    }
    LassoLogin *login = new_login(ls, sp);
    int rc = lasso_login_init_idp_initiated_authn_request(login, sp->md.entity_id);
    if (rc != 0) {
        refuse(j, db, sp, sp_index, NULL, internal("init_idp_initiated", rc));
    } else {
        LassoSamlp2AuthnRequest *req = LASSO_SAMLP2_AUTHN_REQUEST(LASSO_PROFILE(login)->request);
        g_free(req->ProtocolBinding);
        req->ProtocolBinding = g_strdup(LASSO_SAML2_METADATA_BINDING_POST);
        if ((rc = lasso_login_process_authn_request_msg(login, NULL)) != 0)
            refuse(j, db, sp, sp_index, NULL, internal("idp_initiated_request", rc));
        else
            answer(j, db, sp, sp_index, login, 0);
    }
    lasso_login_destroy(login);
}

static void sso_run(gw_job_t *job, gw_worker_t *w)
{
    sso_job_t *j = (sso_job_t *)job;
    store_t *db = gw_worker_db(w);
    j->outcome = OUT_UNAVAILABLE;
    if (db == NULL)
        return;
    LassoServer *ls = saml_lasso_server(j->idp->lasso, w->index);
    if (ls == NULL || (j->sign_key = saml_lasso_sign_key(j->idp->lasso, w->index)) == NULL)
        return;
    j->slot = w->index;
    if (j->kind == KIND_IDP_INIT) {
        idp_initiated(j, db, ls);
        return;
    }
    time_t parked_at = 0;
    if (j->kind == KIND_RESUME) {
        uint8_t hash[STORE_HASH_LEN];
        store_saml_pending_t p;
        gw_sha256(j->state, strlen(j->state), hash);
        int r = store_saml_pending_get(db, hash, &p);
        if (r != 0) {
            if (r == -ENOENT)
                refuse(j, db, NULL, 0, NULL, "unknown_state");
            return;
        }
        j->binding = strcmp(p.binding, "redirect") == 0 ? SAML_BINDING_KIND_REDIRECT : SAML_BINDING_KIND_POST;
        j->message = p.message;
        j->relay_state = p.relay_state;
        p.message = p.relay_state = NULL;
        parked_at = p.created_at;
        store_saml_pending_dispose(&p);
    }
    sso_request(j, db, ls, parked_at);
}

/* ---- loop side ---- */

static void send_refusal(h2o_req_t *req, const char *reason)
{
    size_t i = refusal_of(reason);
    gw_send_message(req, refusals[i].status, "Sign-in to the application refused", refusals[i].text, NULL, NULL);
}

static void free_job(sso_job_t *j)
{
    free(j->message);
    free(j->relay_state);
    free(j->acs);
    free(j->response);
    sodium_memzero(j->session, sizeof(j->session));
    sodium_memzero(j->state, sizeof(j->state));
    free(j);
}

static void sso_done(gw_job_t *job)
{
    sso_job_t *j = (sso_job_t *)job;
    h2o_req_t *req = job->req;
    if (j->issued) /* like a proxied request: the idle timer starts again (the gateway's bookkeeping) */
        gw_session_activity(job->loop->server, j->session);
    if (req != NULL) {
        switch (j->outcome) {
        case OUT_POST: saml_send_post_form(req, j->acs, "SAMLResponse", j->response, j->relay_state); break;
        case OUT_LOGIN: gw_send_redirect(req, 303, h2o_strdup(&req->pool, j->location, SIZE_MAX).base); break;
        case OUT_ERROR: send_refusal(req, j->reason); break;
        default: gw_send_unavailable(req);
        }
    }
    free_job(j);
}

static sso_job_t *new_job(h2o_req_t *req, saml_idp_t *idp, int kind)
{
    sso_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->idp = idp;
    j->kind = kind;
    j->has_session = gw_cookie_hash(req, idp->conf->session_cookie, j->session);
    gw_peer_addr(req, j->source, sizeof(j->source));
    return j;
}

static void submit(h2o_req_t *req, sso_job_t *j)
{
    gw_job_submit(gw_loop_of(req), req, &j->super, sso_run, sso_done);
}

/* RelayState: opaque to us, at most 80 bytes (SAML bindings 3.4.3), kept only to be handed back. */
static const char *take_relay_state(sso_job_t *j, const char *rs)
{
    if (rs == NULL)
        return NULL;
    if (strlen(rs) > SAML_MAX_RELAY_STATE)
        return "relay_state_too_long";
    j->relay_state = strdup(rs);
    return NULL;
}

static int on_sso(h2o_handler_t *self, h2o_req_t *req)
{
    saml_idp_t *idp = ((sso_handler_t *)self)->idp;
    size_t max = idp->sc->max_message;
    sso_job_t *j = new_job(req, idp, KIND_REQUEST);
    if (j == NULL)
        return -1;
    const char *rs;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_iovec_t body = req->entity;
        const char *msg = gw_form_get(req, body, "SAMLRequest", max);
        j->binding = SAML_BINDING_KIND_POST;
        j->message = strdup(msg != NULL ? msg : "");
        if (msg == NULL)
            j->early_reason = body.len > max ? "too_large" : "missing";
        rs = gw_form_get(req, body, "RelayState", 4 * SAML_MAX_RELAY_STATE);
    } else {
        size_t qlen = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;
        j->binding = SAML_BINDING_KIND_REDIRECT;
        j->message = qlen != 0 ? strndup(req->path.base + req->query_at + 1, qlen) : strdup("");
        if (qlen > 3 * max) /* percent-encoding at most triples the size */
            j->early_reason = "too_large";
        else if (qlen == 0)
            j->early_reason = "missing";
        rs = gw_query_get(req, "RelayState", 4 * SAML_MAX_RELAY_STATE);
    }
    const char *bad_rs = take_relay_state(j, rs);
    if (j->early_reason == NULL)
        j->early_reason = bad_rs;
    submit(req, j);
    return 0;
}

static int on_resume(h2o_handler_t *self, h2o_req_t *req)
{
    saml_idp_t *idp = ((sso_handler_t *)self)->idp;
    const char *state = gw_query_get(req, "state", STATE_MAX);
    if (state == NULL || *state == '\0') {
        send_refusal(req, "unknown_state");
        return 0;
    }
    sso_job_t *j = new_job(req, idp, KIND_RESUME);
    if (j == NULL)
        return -1;
    snprintf(j->state, sizeof(j->state), "%s", state);
    submit(req, j);
    return 0;
}

static int valid_sp_name(const char *s)
{
    for (; *s != '\0'; ++s)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("-._~", *s) != NULL))
            return 0;
    return 1;
}

static int on_idp_init(h2o_handler_t *self, h2o_req_t *req)
{
    saml_idp_t *idp = ((sso_handler_t *)self)->idp;
    const char *sp = gw_query_get(req, "sp", SP_NAME_MAX);
    if (sp == NULL || *sp == '\0' || !valid_sp_name(sp)) {
        send_refusal(req, "unknown_sp");
        return 0;
    }
    sso_job_t *j = new_job(req, idp, KIND_IDP_INIT);
    if (j == NULL)
        return -1;
    snprintf(j->sp_name, sizeof(j->sp_name), "%s", sp);
    j->early_reason = take_relay_state(j, gw_query_get(req, "RelayState", 4 * SAML_MAX_RELAY_STATE));
    submit(req, j);
    return 0;
}

static void add(h2o_hostconf_t *hostconf, saml_idp_t *idp, const char *path, int (*cb)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, path, 0);
    sso_handler_t *h = (sso_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = cb;
    h->idp = idp;
}

void saml_sso_register(saml_idp_t *idp, h2o_hostconf_t *hostconf)
{
    add(hostconf, idp, RESUME_PATH, on_resume); /* before /saml/sso: h2o takes the first matching prefix */
    add(hostconf, idp, SSO_PATH, on_sso);
    add(hostconf, idp, "/saml/idp/init", on_idp_init);
}
