/*
 * The broker's Assertion Consumer Service: POST /saml/sp/acs (HTTP-POST binding) from an enterprise IdP.
 *
 * The loop copies the form into a job; the worker runs the one gatekeeper (acs_validate) in the order of issue #7
 * -- intake (size, DOCTYPE, SHA-1), then sp_verify.c (status, structure and signatures with metadata keys only,
 * Issuer, Destination/Recipient/Audience, times), then the stored request (InResponseTo, same browser), the
 * assertion-ID replay cache, and RelayState -- and only then maps the assertion to a portier user and opens a
 * session. Every refusal is audited with its reason and answered with an error page and no session cookie.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "gateway/gateway.h"
#include "idp/idp.h"
#include "policy/policy.h"
#include "saml/internal.h"

#define SP_ACS_PATH      "/saml/sp/acs"
#define SESSION_ID_BYTES 16
#define ACTOR_MAX        96
#define DETAILS_MAX      512
#define USERNAME_MAX     256

typedef struct st_acs_handler_t {
    h2o_handler_t super;
    saml_broker_t *broker;
} acs_handler_t;

enum { OUT_UNAVAILABLE, OUT_ERROR, OUT_SESSION, OUT_MFA, OUT_MFA_ENROL };

typedef struct st_acs_job_t {
    gw_job_t super;
    saml_broker_t *broker;
    char *message;     /* SAMLResponse (base64) */
    char *relay_state; /* as posted, at most 4 * SAML_MAX_RELAY_STATE bytes */
    const char *early_reason;
    int has_browser;
    uint8_t browser[STORE_HASH_LEN];
    char source[64];
    /* result */
    int outcome;
    const char *reason;
    char cookie[64];
    char return_to[POL_RETURN_TO_MAX + 1];
} acs_job_t;

/* reason -> status and what the user reads; every reason not listed is a 400 "could not be accepted" */
static const struct {
    const char *reason;
    int status;
    const char *text;
} refusals[] = {
    {"status", 401, "Your company's sign-in service did not sign you in."},
    {"not_provisioned", 403,
     "Your company account is not provisioned in portier yet. Ask your administrator to give you access."},
    {"disabled", 403, "This account is disabled. Ask your administrator."},
    {"foreign_domain", 403, "Your company's sign-in service may not sign in users of this email domain."},
    {"unsolicited", 400, "This sign-in did not start at portier. Start again from the sign-in page."},
    {"unknown_request", 400, "This sign-in has expired or was already used. Start again from the sign-in page."},
    {"too_large", 413, "The sign-in response is too large."},
    {NULL, 400, "The sign-in response from your company's sign-in service could not be accepted."},
};

static size_t refusal_of(const char *reason)
{
    size_t i = 0;
    while (refusals[i].reason != NULL && strcmp(refusals[i].reason, reason) != 0)
        ++i;
    return i;
}

/* ---- worker side ---- */

static void audit(store_t *db, const saml_conn_config_t *c, const char *action, const char *target, const char *outcome,
                  const char *source, const char *details)
{
    char actor[ACTOR_MAX];
    snprintf(actor, sizeof(actor), "saml:%s", c != NULL ? c->name : "(unknown)");
    store_audit_event_t ev = {.actor = actor,
                              .action = action,
                              .target = target,
                              .outcome = outcome,
                              .source_addr = source,
                              .details = details};
    if (store_audit_append(db, &ev) != 0)
        gw_log("error", "audit", "append_failed", "action", action, NULL);
}

static void refuse(acs_job_t *j, store_t *db, const saml_conn_config_t *c, const char *reason)
{
    char details[DETAILS_MAX];
    j->outcome = OUT_ERROR;
    j->reason = reason;
    snprintf(details, sizeof(details), "{\"reason\":\"%s\"}", reason);
    audit(db, c, "saml.sp.login", "anonymous", "failure", j->source, details);
    gw_log("info", "saml", "sp.refused", "idp", c != NULL ? c->name : "(unknown)", "reason", reason, "source",
           j->source, NULL);
}

/* The connection for this response: the one the stored request was sent to, else (unsolicited) the one whose
 * entityID the Response/Assertion Issuer names -- only a choice of keys: the signature and issuer checks decide. */
static const saml_conn_config_t *pick_connection(const saml_broker_t *b, xmlDocPtr doc,
                                                 const store_saml_sp_request_t *req)
{
    if (req != NULL)
        return saml_conn_by_name(b->bc, req->idp);
    for (xmlNodePtr n = xmlDocGetRootElement(doc)->children; n != NULL; n = n->next) {
        xmlNodePtr iss = NULL;
        if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, "Issuer") == 0)
            iss = n;
        else if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, "Assertion") == 0)
            for (xmlNodePtr k = n->children; k != NULL && iss == NULL; k = k->next)
                if (k->type == XML_ELEMENT_NODE && strcmp((const char *)k->name, "Issuer") == 0)
                    iss = k;
        if (iss != NULL) {
            xmlChar *v = xmlNodeGetContent(iss);
            const saml_conn_config_t *c = saml_conn_by_entity(b->bc, (const char *)v);
            xmlFree(v);
            return c;
        }
    }
    return NULL;
}

/* The stored request behind our RelayState, taken (single use); -ENOENT when RelayState is not one of ours. */
static int take_request(acs_job_t *j, store_t *db, store_saml_sp_request_t *req)
{
    uint8_t hash[STORE_HASH_LEN];
    if (j->relay_state == NULL || strlen(j->relay_state) > SAML_SP_STATE_MAX)
        return -ENOENT;
    gw_sha256(j->relay_state, strlen(j->relay_state), hash);
    return store_saml_sp_request_take(db, hash, req);
}

/* The gatekeeper. NULL with *conn and a (verified) assertion, or the refusal reason. -EIO goes to *io. */
static const char *acs_validate(acs_job_t *j, store_t *db, const saml_conn_config_t **conn, saml_sp_assertion_t *a,
                                int *io)
{
    const saml_broker_t *b = j->broker;
    saml_intake_t in = {0};
    store_saml_sp_request_t req = {0};
    const char *why = j->early_reason;
    saml_idp_md_t *md = NULL;
    int have_req = 0;
    if (why != NULL)
        return why;
    /* 1. size, base64, no DOCTYPE, no SHA-1 anywhere */
    if (saml_intake(SAML_BINDING_KIND_POST, j->message, strlen(j->message), NULL, b->conf->saml->max_message, &in) != 0)
        return in.reason != NULL ? in.reason : "intake";
    if (strcmp(in.root, "Response") != 0) {
        why = "not_response";
        goto exit;
    }
    int r = take_request(j, db, &req);
    if (r != 0 && r != -ENOENT) {
        *io = 1;
        why = "database";
        goto exit;
    }
    have_req = r == 0;
    if ((*conn = pick_connection(b, in.doc, have_req ? &req : NULL)) == NULL) {
        why = "unknown_issuer";
        goto exit;
    }
    /* 2-5. status, signatures, issuers, Destination/Recipient/Audience: on the covered nodes only */
    md = saml_conn_md(*conn); /* held until the end: a refresh meanwhile does not pull the keys away */
    saml_sp_expect_t x = {.conn = *conn,
                          .md = md,
                          .acs_url = b->acs_url,
                          .own_entity_id = b->entity_id,
                          .decrypt_key_pem = b->kp.key_pem,
                          .now = time(NULL)};
    if ((why = saml_sp_verify(&in.doc, &x, a)) != NULL)
        goto exit;
    /* 6. InResponseTo: a request this browser started, or an allowed unsolicited response */
    if (have_req) {
        if (a->in_response_to == NULL || strcmp(a->in_response_to, req.request_id) != 0) {
            why = "in_response_to";
            goto exit;
        }
        if (!j->has_browser || sodium_memcmp(j->browser, req.browser_hash, STORE_HASH_LEN) != 0) {
            why = "other_browser";
            goto exit;
        }
        snprintf(j->return_to, sizeof(j->return_to), "%s", req.return_to);
    } else if (a->in_response_to != NULL) {
        why = "unknown_request";
        goto exit;
    } else if (!(*conn)->idp_initiated) {
        why = "unsolicited";
        goto exit;
    }
    /* 7. NotBefore / NotOnOrAfter, with at most SAML_CLOCK_SKEW of difference */
    if ((why = saml_sp_check_times(a, x.now)) != NULL)
        goto exit;
    /* 8. replay: the assertion ID is remembered until it expires anyway */
    r = store_saml_sp_assertion_seen(db, (*conn)->entity_id, a->assertion_id,
                                     (int64_t)a->not_on_or_after + SAML_CLOCK_SKEW);
    if (r != 0) {
        *io = r != -EEXIST;
        why = r == -EEXIST ? "replay" : "database";
        goto exit;
    }
    /* 9. RelayState: ours (checked above), or for an unsolicited response a short, validated return path */
    if (!have_req) {
        if (j->relay_state != NULL && strlen(j->relay_state) > SAML_MAX_RELAY_STATE)
            why = "relay_state_too_long";
        else if (j->relay_state != NULL && *j->relay_state != '\0' &&
                 pol_return_to(j->relay_state, b->conf->public_url, j->return_to, sizeof(j->return_to)) != 0)
            why = "relay_state";
        else if (j->relay_state == NULL || *j->relay_state == '\0')
            snprintf(j->return_to, sizeof(j->return_to), "/");
    }
exit:
    saml_idp_md_release(md);
    store_saml_sp_request_dispose(&req);
    saml_intake_dispose(&in);
    return why;
}

/* ---- from the assertion to a user ---- */

static const char *attr_value(const saml_sp_assertion_t *a, const char *name)
{
    for (size_t i = 0; name != NULL && i != a->num_attrs; ++i)
        if (strcmp(a->attrs[i].name, name) == 0)
            return a->attrs[i].value;
    return NULL;
}

static const char *email_of(const saml_conn_config_t *c, const saml_sp_assertion_t *a)
{
    const char *e = attr_value(a, c->attr[SAML_CA_EMAIL]);
    if (e == NULL && a->name_id_format != NULL && strstr(a->name_id_format, "emailAddress") != NULL)
        e = a->name_id;
    return e != NULL && strchr(e, '@') != NULL ? e : NULL;
}

static int domain_allowed(const saml_conn_config_t *c, const char *email)
{
    if (c->num_domains == 0)
        return 1;
    const char *at = email != NULL ? strrchr(email, '@') : NULL;
    for (size_t i = 0; at != NULL && i != c->num_domains; ++i)
        if (strcasecmp(at + 1, c->domains[i]) == 0)
            return 1;
    return 0;
}

/* Finds the user: the linked identity, else the configured attribute (linking it), else JIT. 0, or a reason. */
static const char *find_user(acs_job_t *j, store_t *db, const saml_conn_config_t *c, const saml_sp_assertion_t *a,
                             store_user_t *u, int *io)
{
    int64_t id = 0;
    int r = store_saml_sp_identity_user(db, c->entity_id, a->name_id, &id);
    if (r == 0)
        return (r = store_user_get_by_id(db, id, u)) == 0 ? NULL : (*io = 1, "database");
    if (r != -ENOENT)
        return *io = 1, "database";
    const char *email = email_of(c, a);
    const char *username = attr_value(a, c->attr[SAML_CA_USERNAME]);
    /* an IdP speaks only for its own domains: it cannot claim (or create) a user of somebody else's */
    if (email != NULL && !domain_allowed(c, email))
        return "foreign_domain";
    if (c->match == SAML_MATCH_EMAIL)
        r = email != NULL ? store_user_get_by_email(db, email, u) : -ENOENT;
    else
        r = username != NULL ? store_user_get(db, username, u) : -ENOENT;
    if (r != 0 && r != -ENOENT)
        return *io = 1, "database";
    /* the same rule for a user found by user name: its stored address must be in the IdP's domains */
    if (r == 0 && !domain_allowed(c, u->email))
        return "foreign_domain";
    if (r == -ENOENT) {
        if (!c->jit)
            return "not_provisioned";
        const char *name = username != NULL ? username : email != NULL ? email : NULL;
        if (name == NULL || strlen(name) > USERNAME_MAX || (c->num_domains != 0 && email == NULL))
            return "not_provisioned";
        if ((r = store_user_create(db, name, email, attr_value(a, c->attr[SAML_CA_DISPLAY_NAME]), &id)) != 0)
            return r == -EEXIST ? "not_provisioned" : (*io = 1, "database");
        char target[USERNAME_MAX + 8];
        snprintf(target, sizeof(target), "user:%s", name);
        audit(db, c, "user.create", target, "success", j->source, "{\"via\":\"saml_jit\"}");
        if (store_user_get_by_id(db, id, u) != 0)
            return *io = 1, "database";
    }
    if (store_saml_sp_identity_link(db, c->entity_id, a->name_id, u->id) != 0)
        return *io = 1, "database";
    return NULL;
}

static int has_group(const store_user_t *u, const char *g)
{
    for (size_t i = 0; i != u->num_groups; ++i)
        if (strcasecmp(u->groups[i], g) == 0)
            return 1;
    return 0;
}

static int asserted(const saml_conn_config_t *c, const saml_sp_assertion_t *a, const char *idp_group)
{
    for (size_t i = 0; i != a->num_attrs; ++i)
        if (c->attr[SAML_CA_GROUPS] != NULL && strcmp(a->attrs[i].name, c->attr[SAML_CA_GROUPS]) == 0 &&
            strcmp(a->attrs[i].value, idp_group) == 0)
            return 1;
    return 0;
}

static void group_change(acs_job_t *j, store_t *db, const saml_conn_config_t *c, const store_user_t *u,
                         const char *group, int add)
{
    char target[USERNAME_MAX + 8], details[DETAILS_MAX];
    int r = add ? store_group_add_member(db, u->id, group) : store_group_remove_member(db, u->id, group);
    snprintf(target, sizeof(target), "user:%s", u->username);
    snprintf(details, sizeof(details), "{\"group\":\"%s\"}", group); /* a validated group name: no escaping needed */
    audit(db, c, add ? "group.add_member" : "group.remove_member", target, r == 0 ? "success" : "failure", j->source,
          details);
}

/* Attributes and groups from the IdP update the user at each login, audited with the connection as actor. With a
 * group_map, the mapped portier groups follow the IdP exactly; without one, IdP group names are added as they are. */
static void update_user(acs_job_t *j, store_t *db, const saml_conn_config_t *c, const saml_sp_assertion_t *a,
                        const store_user_t *u)
{
    const char *email = email_of(c, a), *display = attr_value(a, c->attr[SAML_CA_DISPLAY_NAME]);
    if (store_user_set_profile(db, u->id, email, display) == 1) {
        char target[USERNAME_MAX + 8];
        snprintf(target, sizeof(target), "user:%s", u->username);
        audit(db, c, "user.update", target, "success", j->source, "{\"fields\":[\"email\",\"display_name\"]}");
    }
    if (c->num_group_map != 0) {
        for (size_t i = 0; i != c->num_group_map; ++i) {
            int want = asserted(c, a, c->group_from[i]), have = has_group(u, c->group_to[i]);
            int wanted_elsewhere = 0; /* two IdP groups may map to one portier group */
            for (size_t k = 0; k != c->num_group_map; ++k)
                wanted_elsewhere |=
                    k != i && strcmp(c->group_to[k], c->group_to[i]) == 0 && asserted(c, a, c->group_from[k]);
            if (want && !have)
                group_change(j, db, c, u, c->group_to[i], 1);
            else if (!want && !wanted_elsewhere && have)
                group_change(j, db, c, u, c->group_to[i], 0);
        }
        return;
    }
    for (size_t i = 0; i != a->num_attrs; ++i)
        if (c->attr[SAML_CA_GROUPS] != NULL && strcmp(a->attrs[i].name, c->attr[SAML_CA_GROUPS]) == 0 &&
            gw_config_valid_group(a->attrs[i].value) && !has_group(u, a->attrs[i].value))
            group_change(j, db, c, u, a->attrs[i].value, 1);
}

static int mfa_asserted(const saml_conn_config_t *c, const saml_sp_assertion_t *a)
{
    for (size_t i = 0; a->authn_class != NULL && i != c->num_mfa_contexts; ++i)
        if (strcmp(a->authn_class, c->mfa_contexts[i]) == 0)
            return 1;
    return 0;
}

/* The session, or portier's own second factor when policy wants one and the IdP did not prove it. */
static int open_session(acs_job_t *j, store_t *db, const saml_conn_config_t *c, const saml_sp_assertion_t *a,
                        const store_user_t *u)
{
    uint8_t hash[STORE_HASH_LEN];
    int mfa = mfa_asserted(c, a), r;
    store_user_t fresh = {0};
    /* group membership may just have changed: the MFA policy is decided on the updated user */
    int required =
        store_user_get_by_id(db, u->id, &fresh) == 0 && gw_config_mfa_required(j->broker->conf, fresh.groups);
    store_user_dispose(&fresh);
    if (required && !mfa) {
        store_mfa_factor_t f = {0};
        r = store_mfa_get(db, u->id, 1, &f);
        store_mfa_factor_dispose(&f);
        if (r != 0 && r != -ENOENT)
            return -1;
        j->outcome = r == 0 ? OUT_MFA : OUT_MFA_ENROL;
        gw_random_token(GW_SESSION_TOKEN_BYTES, j->cookie, sizeof(j->cookie), hash);
        r = store_challenge_create(db, hash, u->id, r == 0 ? "verify" : "enrol", j->return_to, IDP_MFA_CHALLENGE_TTL);
    } else {
        char public_id[32];
        j->outcome = OUT_SESSION;
        gw_random_token(GW_SESSION_TOKEN_BYTES, j->cookie, sizeof(j->cookie), hash);
        gw_random_token(SESSION_ID_BYTES, public_id, sizeof(public_id), NULL);
        r = store_session_create_amr(db, hash, public_id, u->id, j->broker->conf->session_absolute_timeout,
                                     j->broker->conf->session_idle_timeout, j->source,
                                     STORE_AMR_PWD | (mfa ? STORE_AMR_OTP : 0));
        /* for single logout requested by the IdP; the session stands without it */
        if (r == 0 &&
            store_saml_sp_login_put(db, hash, c->entity_id, a->name_id, a->name_id_format, a->session_index) != 0)
            gw_log("error", "saml", "sp.login_record_failed", "idp", c->name, NULL);
    }
    sodium_memzero(hash, sizeof(hash));
    return r;
}

static void sign_in(acs_job_t *j, store_t *db, const saml_conn_config_t *c, const saml_sp_assertion_t *a)
{
    store_user_t u = {0};
    int io = 0;
    const char *why = find_user(j, db, c, a, &u, &io);
    if (why == NULL && u.disabled)
        why = "disabled";
    if (why != NULL) {
        if (!io)
            refuse(j, db, c, why);
        goto exit;
    }
    update_user(j, db, c, a, &u);
    if (open_session(j, db, c, a, &u) != 0) {
        j->outcome = OUT_UNAVAILABLE;
        goto exit;
    }
    char target[USERNAME_MAX + 8], details[DETAILS_MAX];
    snprintf(target, sizeof(target), "user:%s", u.username);
    snprintf(details, sizeof(details), "{\"mfa_asserted\":%s,\"next\":\"%s\"}", mfa_asserted(c, a) ? "true" : "false",
             j->outcome == OUT_SESSION ? "session" : "mfa");
    audit(db, c, "saml.sp.login", target, "success", j->source, details);
    gw_log("info", "saml", "sp.login", "idp", c->name, "user", u.username, "name_id", a->name_id, NULL);
exit:
    store_user_dispose(&u);
}

static void acs_run(gw_job_t *job, gw_worker_t *w)
{
    acs_job_t *j = (acs_job_t *)job;
    store_t *db = gw_worker_db(w);
    const saml_conn_config_t *c = NULL;
    saml_sp_assertion_t a = {0};
    int io = 0;
    j->outcome = OUT_UNAVAILABLE;
    if (db == NULL)
        return;
    const char *why = acs_validate(j, db, &c, &a, &io);
    if (why != NULL) {
        if (!io)
            refuse(j, db, c, why);
    } else {
        sign_in(j, db, c, &a);
    }
    saml_sp_assertion_dispose(&a);
}

/* ---- loop side ---- */

static void acs_done(gw_job_t *job)
{
    acs_job_t *j = (acs_job_t *)job;
    h2o_req_t *req = job->req;
    if (req != NULL) {
        gw_server_t *server = gw_loop_of(req)->server;
        switch (j->outcome) {
        case OUT_SESSION:
            atomic_fetch_add(&gw_metrics.logins_success, 1);
            gw_set_cookie(req, server->conf->session_cookie, j->cookie, -1);
            gw_send_redirect(req, 303, h2o_strdup(&req->pool, j->return_to, SIZE_MAX).base);
            break;
        case OUT_MFA:
        case OUT_MFA_ENROL:
            gw_set_cookie(req, IDP_MFA_COOKIE, j->cookie, IDP_MFA_CHALLENGE_TTL);
            gw_send_redirect(req, 303, j->outcome == OUT_MFA ? "/login/mfa" : "/account/mfa");
            break;
        case OUT_ERROR: {
            size_t i = refusal_of(j->reason);
            atomic_fetch_add(&gw_metrics.logins_failure, 1);
            gw_send_message(req, refusals[i].status, "Company sign-in refused", refusals[i].text, "/login",
                            "Back to sign-in");
            break;
        }
        default: gw_send_unavailable(req);
        }
    }
    sodium_memzero(j->cookie, sizeof(j->cookie));
    sodium_memzero(j->browser, sizeof(j->browser));
    free(j->message);
    free(j->relay_state);
    free(j);
}

static int on_acs(h2o_handler_t *self, h2o_req_t *req)
{
    saml_broker_t *b = ((acs_handler_t *)self)->broker;
    size_t max = b->conf->saml->max_message;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        gw_send_message(req, 405, "Company sign-in", "This address only accepts the IdP's POST.", "/login",
                        "Back to sign-in");
        return 0;
    }
    acs_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -1;
    j->broker = b;
    const char *msg = gw_form_get(req, req->entity, "SAMLResponse", max);
    const char *rs = gw_form_get(req, req->entity, "RelayState", 4 * SAML_MAX_RELAY_STATE);
    j->message = strdup(msg != NULL ? msg : "");
    j->relay_state = rs != NULL ? strdup(rs) : NULL;
    if (msg == NULL)
        j->early_reason = req->entity.len > max ? "too_large" : "missing";
    else if (rs == NULL && gw_form_get(req, req->entity, "RelayState", SIZE_MAX) != NULL)
        j->early_reason = "relay_state_too_long";
    h2o_iovec_t browser = gw_get_cookie(req, SAML_SP_BROWSER_COOKIE);
    if (browser.base != NULL && browser.len != 0 && browser.len <= SAML_SP_STATE_MAX) {
        gw_sha256(browser.base, browser.len, j->browser);
        j->has_browser = 1;
    }
    gw_peer_addr(req, j->source, sizeof(j->source));
    gw_job_submit(gw_loop_of(req), req, &j->super, acs_run, acs_done);
    return 0;
}

void saml_acs_register(saml_broker_t *b, h2o_hostconf_t *hostconf)
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, SP_ACS_PATH, 0);
    acs_handler_t *h = (acs_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_acs;
    h->broker = b;
}
