/*
 * Second factors in the browser:
 *
 *   GET  /login/mfa           the code form: after the password (half-authenticated, cookie __Host-portier-mfa)
 *                             or as a step-up for a signed-in session that has only a password
 *   POST /login/mfa           checks a TOTP/HOTP code or a recovery code -> session with amr pwd+otp
 *   GET  /account/mfa         enrolment (QR code, secret, otpauth URI) or, once enrolled, the management page
 *   GET  /account/mfa/qr.svg  the QR code of the pending enrolment (same origin: the CSP allows no data: URIs)
 *   POST /account/mfa         action=confirm (prove the new factor; shows the recovery codes once),
 *                             action=replace|remove|recovery (each needs a current code)
 *
 * The half-authenticated state is a row keyed by the hash of a browser cookie: it lasts 5 minutes, allows 5
 * attempts, and grants nothing but these pages. Every code check takes the account's throttle gate first (MFA
 * failures count towards the password lock-out), accepts each TOTP step once (an UPDATE that only moves
 * forward, so two instances cannot both accept it) and moves the HOTP counter atomically. A successful check
 * always mints a new session id (no fixation across the privilege change).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "idp/internal.h"
#include "mfa/mfa.h"
#include "policy/policy.h"

#define CODE_MAX           64
#define CHALLENGE_ATTEMPTS 5
#define PENDING_TTL        600 /* an unconfirmed enrolment is offered again (same secret) for 10 minutes */
#define SECRET_SEALED_MAX  (MFA_SECRET_MAX + MFA_SEAL_OVERHEAD)

enum { OP_VERIFY_PAGE, OP_VERIFY, OP_ENROL_PAGE, OP_QR, OP_CONFIRM, OP_MANAGE };
enum {
    R_UNAVAILABLE,
    R_LOGIN,       /* nobody: sign in first */
    R_EXPIRED,     /* the half-authenticated state ran out of attempts */
    R_REDIRECT,    /* to j->location */
    R_ENROL_FIRST, /* to the enrolment page, then back to j->return_to */
    R_VERIFY,      /* the code form */
    R_ENROL,       /* the enrolment page */
    R_MANAGE,      /* the management page */
    R_RECOVERY,    /* the recovery codes, once */
    R_SVG,
    R_NOT_FOUND,
};
enum { V_OK, V_BAD, V_REPLAY, V_LOCKED, V_ERROR };

typedef struct st_mfa_job_t {
    gw_job_t super;
    gw_server_t *server;
    int op;
    /* in */
    int have_challenge, have_session;
    uint8_t challenge[STORE_HASH_LEN], session[STORE_HASH_LEN];
    char *code, *next_code;
    char action[16], kind[8], source[64];
    char return_to[POL_RETURN_TO_MAX + 1];
    /* out */
    int result, status, hotp, forced, required, clear_challenge, evict;
    const char *error, *notice;
    char username[300];
    char location[POL_RETURN_TO_MAX + 64];
    char cookie[64]; /* a new session cookie, when not empty */
    char *secret_b32, *uri, *svg, *codes;
    unsigned recovery_left;
} mfa_job_t;

/* Who is on the page: a half-authenticated challenge, else a session. */
typedef struct st_who_t {
    store_user_t user;
    int challenge;
    char purpose[8];
    char *return_to; /* challenge only */
    char target[320];
} who_t;

static void who_dispose(who_t *w)
{
    store_user_dispose(&w->user);
    free(w->return_to);
    memset(w, 0, sizeof(*w));
}

/* 0, -ENOENT (nobody), -ESTALE (challenge out of attempts) or -EIO. */
static int resolve(mfa_job_t *j, store_t *db, int attempt, who_t *w)
{
    memset(w, 0, sizeof(*w));
    if (j->have_challenge) {
        int64_t uid = 0;
        int r = store_challenge_get(db, j->challenge, attempt, CHALLENGE_ATTEMPTS, &uid, w->purpose, &w->return_to);
        if (r == 0) {
            r = store_user_get_by_id(db, uid, &w->user);
            if (r == 0 && w->user.disabled)
                r = -ENOENT;
            if (r != 0) {
                who_dispose(w);
                return r == -EIO ? -EIO : -ENOENT;
            }
            w->challenge = 1;
            goto found;
        }
        if (r != -ENOENT)
            return r;
        j->clear_challenge = 1; /* expired or unknown: drop the cookie */
    }
    if (j->have_session) {
        store_session_t sess = {0};
        int r = store_session_lookup(db, j->session, &sess);
        if (r != 0)
            return r;
        w->user = sess.user;
        memset(&sess.user, 0, sizeof(sess.user));
        store_session_dispose(&sess);
        goto found;
    }
    return -ENOENT;
found:
    snprintf(w->target, sizeof(w->target), "user:%s", w->user.username);
    snprintf(j->username, sizeof(j->username), "%s", w->user.username);
    j->required = gw_config_mfa_required(j->server->conf, w->user.groups);
    return 0;
}

static mfa_alg_t alg_of(const char *name)
{
    return strcmp(name, "SHA256") == 0 ? MFA_SHA256 : strcmp(name, "SHA512") == 0 ? MFA_SHA512 : MFA_SHA1;
}

static mfa_params_t params_of(const gw_config_t *conf, const store_mfa_factor_t *f)
{
    return (mfa_params_t){alg_of(f->algorithm), f->digits, f->period, conf->mfa_window};
}

/* Removes spaces (apps show "123 456"). */
static void squeeze(char *s)
{
    char *o = s;
    for (char *p = s; *p != '\0'; ++p)
        if (*p != ' ' && *p != '\t')
            *o++ = *p;
    *o = '\0';
}

static int all_digits(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (; *s != '\0'; ++s)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

/* Checks j->code against factor f (or, unless confirming, against the user's recovery codes). On V_OK,
 * *accepted is the first accepted TOTP step or next HOTP counter (confirming), and *method names what was used. */
static int check_code(mfa_job_t *j, store_t *db, const who_t *w, const store_mfa_factor_t *f, int confirming,
                      int64_t *accepted, const char **method)
{
    const gw_config_t *conf = j->server->conf;
    store_throttle_policy_t pol = {conf->throttle_free, conf->throttle_max_delay, conf->throttle_hard_lock};
    int allowed = 0;
    if (store_throttle_reserve(db, w->user.id, &pol, &allowed, NULL) != 0)
        return V_ERROR;
    if (!allowed)
        return V_LOCKED;
    char code[CODE_MAX + 1];
    snprintf(code, sizeof(code), "%s", j->code != NULL ? j->code : "");
    squeeze(code);
    int rc = V_BAD;
    *method = f->kind[0] == 'h' ? "hotp" : "totp";

    if (!confirming && !all_digits(code, f->digits)) { /* a recovery code? */
        char norm[MFA_RECOVERY_NORM_LEN + 1];
        uint8_t hash[STORE_HASH_LEN];
        if (mfa_recovery_normalize(code, norm, sizeof(norm)) != 0)
            goto out;
        mfa_recovery_hash(norm, hash);
        sodium_memzero(norm, sizeof(norm));
        int r = store_mfa_recovery_use(db, w->user.id, hash, &j->recovery_left);
        *method = "recovery_code";
        rc = r == 0 ? V_OK : r == -ENOENT ? V_BAD : V_ERROR;
        goto out;
    }

    uint8_t secret[MFA_SECRET_MAX];
    size_t len = 0;
    if (mfa_open(j->server->mfa_key, w->user.id, f->sealed, f->sealed_len, secret, sizeof(secret), &len) != 0) {
        gw_log("error", "mfa", "unseal_failed", "user", w->user.username, NULL);
        return V_ERROR;
    }
    if (f->kind[0] == 't') {
        mfa_params_t p = params_of(conf, f);
        time_t now = time(NULL);
        int64_t step = mfa_totp_verify(secret, len, &p, code, now, confirming ? -1 : f->last_step);
        if (step >= 0) {
            int r = confirming ? 0 : store_mfa_accept_step(db, f->id, step);
            rc = r == 0 ? V_OK : r == -ESTALE ? V_REPLAY : V_ERROR;
            *accepted = step;
        } else if (mfa_totp_verify(secret, len, &p, code, now, -1) >= 0) {
            rc = V_REPLAY; /* right code, already used */
        }
    } else {
        int64_t next = mfa_hotp_verify(secret, len, f->digits, code, (uint64_t)f->counter, conf->mfa_hotp_lookahead);
        if (next < 0 && j->next_code != NULL && j->next_code[0] != '\0') {
            /* resynchronisation: two consecutive codes further ahead than the look-ahead window */
            squeeze(j->next_code);
            int64_t c = mfa_hotp_verify(secret, len, f->digits, code, (uint64_t)f->counter, MFA_LOOKAHEAD_MAX);
            if (c >= 0)
                next = mfa_hotp_verify(secret, len, f->digits, j->next_code, (uint64_t)c, 0);
        }
        if (next >= 0) {
            int r = confirming ? 0 : store_mfa_accept_counter(db, f->id, f->counter, next);
            rc = r == 0 ? V_OK : r == -ESTALE ? V_REPLAY : V_ERROR;
            *accepted = next;
        }
    }
    sodium_memzero(secret, sizeof(secret));
out:
    sodium_memzero(code, sizeof(code));
    if (rc == V_OK && store_throttle_reset(db, w->user.id) != 0)
        rc = V_ERROR;
    return rc;
}

static const char *verify_error(int v)
{
    switch (v) {
    case V_REPLAY: return "This code was already used. Wait for the next code from your app.";
    case V_LOCKED: return "Too many failed attempts. Wait a few minutes and try again.";
    default: return "That code is not valid. Enter the current code from your authenticator app.";
    }
}

static void audit_check(mfa_job_t *j, store_t *db, const who_t *w, const char *action, int v, const char *method)
{
    static const char *const reasons[] = {"", "bad_code", "replay", "locked", "error"};
    char details[160];
    if (v == V_OK)
        snprintf(details, sizeof(details), "{\"method\":\"%s\"}", method);
    else
        snprintf(details, sizeof(details), "{\"method\":\"%s\",\"reason\":\"%s\"}", method, reasons[v]);
    idp_audit(db, w->target, action, w->target, v == V_OK ? "success" : "failure", j->source, details);
    gw_log("info", "mfa", action, "user", w->user.username, "outcome", v == V_OK ? "success" : "failure", "reason",
           v == V_OK ? NULL : reasons[v], NULL);
}

/* After a successful check: a session with both factors. From a challenge: a new session (the challenge is
 * consumed); from a session: the session is replaced by an elevated one. 0 or -errno. */
static int finish(mfa_job_t *j, store_t *db, const who_t *w)
{
    if (w->challenge) {
        if (store_challenge_delete(db, j->challenge) != 0)
            return -EIO;
        j->clear_challenge = 1;
        return idp_new_session(db, j->server, w->user.id, j->source, STORE_AMR_PWD | STORE_AMR_OTP, j->cookie,
                               sizeof(j->cookie));
    }
    uint8_t hash[STORE_HASH_LEN];
    char public_id[32];
    gw_random_token(GW_SESSION_TOKEN_BYTES, j->cookie, sizeof(j->cookie), hash);
    gw_random_token(IDP_SESSION_PUBLIC_ID_BYTES, public_id, sizeof(public_id), NULL);
    int r = store_session_elevate(db, j->session, hash, public_id, STORE_AMR_PWD | STORE_AMR_OTP);
    sodium_memzero(hash, sizeof(hash));
    j->evict = r == 0;
    return r;
}

static void label(const char *in, char out[MFA_LABEL_MAX + 1])
{
    snprintf(out, MFA_LABEL_MAX + 1, "%s", in);
    for (char *p = out; *p != '\0'; ++p)
        if (*p == ':')
            *p = '.';
}

/* Base32 secret in groups of four, the otpauth URI, for the enrolment page. Secrets: wiped when freed. */
static int fill_enrol(mfa_job_t *j, const who_t *w, const store_mfa_factor_t *f)
{
    uint8_t secret[MFA_SECRET_MAX];
    size_t len = 0;
    if (mfa_open(j->server->mfa_key, w->user.id, f->sealed, f->sealed_len, secret, sizeof(secret), &len) != 0)
        return -1;
    char b32[MFA_BASE32_LEN(MFA_SECRET_MAX) + 1];
    size_t n = mfa_base32_encode(secret, len, b32, sizeof(b32));
    j->secret_b32 = calloc(1, n + n / 4 + 2);
    for (size_t i = 0, o = 0; j->secret_b32 != NULL && i != n; ++i) {
        if (i != 0 && i % 4 == 0)
            j->secret_b32[o++] = ' ';
        j->secret_b32[o++] = b32[i];
    }
    /* the label is "issuer:account": a ':' inside either would split it wrongly */
    char issuer[MFA_LABEL_MAX + 1], account[MFA_LABEL_MAX + 1];
    label(j->server->conf->mfa_issuer, issuer);
    label(w->user.username, account);
    if (f->kind[0] == 't') {
        mfa_params_t p = params_of(j->server->conf, f);
        j->uri = mfa_otpauth_uri(issuer, account, secret, len, &p);
    } else {
        j->uri = mfa_otpauth_uri_hotp(issuer, account, secret, len, f->digits, (uint64_t)f->counter);
    }
    sodium_memzero(b32, sizeof(b32));
    sodium_memzero(secret, sizeof(secret));
    j->hotp = f->kind[0] == 'h';
    j->forced = w->challenge;
    return j->secret_b32 != NULL && j->uri != NULL ? 0 : -1;
}

/* The pending enrolment if still fresh (-ENOENT otherwise). */
static int get_pending(store_t *db, const who_t *w, store_mfa_factor_t *f)
{
    int r = store_mfa_get(db, w->user.id, 0, f);
    if (r == 0 && f->created_at + PENDING_TTL < time(NULL)) {
        store_mfa_factor_dispose(f);
        r = -ENOENT;
    }
    return r;
}

static int begin_enrolment(mfa_job_t *j, store_t *db, const who_t *w, const char *kind, store_mfa_factor_t *f)
{
    const gw_config_t *conf = j->server->conf;
    uint8_t secret[MFA_SECRET_LEN], sealed[SECRET_SEALED_MAX];
    size_t sealed_len = 0;
    mfa_secret_generate(secret);
    int r = mfa_seal(j->server->mfa_key, w->user.id, secret, sizeof(secret), sealed, sizeof(sealed), &sealed_len);
    sodium_memzero(secret, sizeof(secret));
    if (r != 0)
        return -EIO;
    memset(f, 0, sizeof(*f));
    snprintf(f->kind, sizeof(f->kind), "%s", strcmp(kind, "hotp") == 0 ? "hotp" : "totp");
    snprintf(f->algorithm, sizeof(f->algorithm), "%s", f->kind[0] == 'h' ? "SHA1" : conf->mfa_algorithm);
    f->digits = f->kind[0] == 'h' ? 6 : conf->mfa_digits;
    f->period = conf->mfa_period;
    f->created_at = time(NULL);
    if ((f->sealed = malloc(sealed_len)) == NULL)
        return -ENOMEM;
    memcpy(f->sealed, sealed, sealed_len);
    f->sealed_len = sealed_len;
    return store_mfa_begin(db, w->user.id, f);
}

static void notify(const gw_config_t *conf, const store_user_t *u, const char *what)
{
    idp_notify(conf, u, "Security notice: your sign-in settings changed", what);
}

/* ---- /login/mfa ---- */

static void op_verify_page(mfa_job_t *j, store_t *db, who_t *w)
{
    store_mfa_factor_t f = {0};
    if (w->challenge && strcmp(w->purpose, "enrol") == 0) {
        j->result = R_REDIRECT;
        snprintf(j->location, sizeof(j->location), "/account/mfa");
        return;
    }
    int r = store_mfa_get(db, w->user.id, 1, &f);
    if (r == -EIO)
        return;
    if (r == -ENOENT) {
        if (w->challenge) { /* the factor went away (reset) since the password step */
            j->result = R_LOGIN;
            return;
        }
        j->result = R_ENROL_FIRST; /* step-up for a user without a factor: enrolling proves one */
        return;
    }
    j->hotp = f.kind[0] == 'h';
    j->result = R_VERIFY;
    store_mfa_factor_dispose(&f);
}

static void op_verify(mfa_job_t *j, store_t *db, who_t *w)
{
    store_mfa_factor_t f = {0};
    int r = store_mfa_get(db, w->user.id, 1, &f);
    if (r != 0 || (w->challenge && strcmp(w->purpose, "verify") != 0)) {
        j->result = r == -EIO ? R_UNAVAILABLE : R_LOGIN;
        return;
    }
    j->hotp = f.kind[0] == 'h';
    int64_t accepted = 0;
    const char *method = "totp";
    int v = check_code(j, db, w, &f, 0, &accepted, &method);
    store_mfa_factor_dispose(&f);
    audit_check(j, db, w, w->challenge ? "mfa.verify" : "mfa.step_up", v, method);
    if (v == V_ERROR)
        return;
    if (v != V_OK) {
        j->result = R_VERIFY;
        j->status = v == V_LOCKED ? 429 : 401;
        j->error = verify_error(v);
        return;
    }
    if (strcmp(method, "recovery_code") == 0) {
        char what[200];
        snprintf(what, sizeof(what),
                 "one of your recovery codes was used to sign in (%u left). Generate new codes on your account page "
                 "if you are running low.",
                 j->recovery_left);
        notify(j->server->conf, &w->user, what);
    }
    if (finish(j, db, w) != 0)
        return;
    if (w->challenge)
        idp_audit(db, w->target, "login.success", w->target, "success", j->source, "{\"amr\":[\"pwd\",\"otp\"]}");
    j->result = R_REDIRECT;
    snprintf(j->location, sizeof(j->location), "%s", w->challenge ? w->return_to : j->return_to);
}

/* ---- /account/mfa ---- */

static void manage_page(mfa_job_t *j, store_t *db, const who_t *w, const store_mfa_factor_t *f)
{
    j->hotp = f->kind[0] == 'h';
    j->result = store_mfa_recovery_left(db, w->user.id, &j->recovery_left) == 0 ? R_MANAGE : R_UNAVAILABLE;
}

static void op_enrol_page(mfa_job_t *j, store_t *db, who_t *w)
{
    store_mfa_factor_t pending = {0}, confirmed = {0};
    if (w->challenge && strcmp(w->purpose, "enrol") != 0) {
        j->result = R_REDIRECT;
        snprintf(j->location, sizeof(j->location), "/login/mfa");
        return;
    }
    int p = get_pending(db, w, &pending);
    int c = p == -EIO ? -EIO : store_mfa_get(db, w->user.id, 1, &confirmed);
    if (p == -EIO || c == -EIO)
        goto out;
    if (p == 0 && (j->kind[0] == '\0' || strcmp(j->kind, pending.kind) == 0)) {
        j->result = fill_enrol(j, w, &pending) == 0 ? R_ENROL : R_UNAVAILABLE;
    } else if (c == 0) {
        manage_page(j, db, w, &confirmed);
    } else {
        store_mfa_factor_dispose(&pending);
        if (begin_enrolment(j, db, w, j->kind[0] != '\0' ? j->kind : "totp", &pending) == 0)
            j->result = fill_enrol(j, w, &pending) == 0 ? R_ENROL : R_UNAVAILABLE;
    }
out:
    store_mfa_factor_dispose(&pending);
    store_mfa_factor_dispose(&confirmed);
}

static void op_qr(mfa_job_t *j, store_t *db, who_t *w)
{
    store_mfa_factor_t f = {0};
    int r = get_pending(db, w, &f);
    if (r != 0) {
        j->result = r == -EIO ? R_UNAVAILABLE : R_NOT_FOUND;
        return;
    }
    if (fill_enrol(j, w, &f) == 0 && (j->svg = mfa_qr_svg(j->uri)) != NULL)
        j->result = R_SVG;
    store_mfa_factor_dispose(&f);
}

static void show_recovery(mfa_job_t *j, store_t *db, const who_t *w, int64_t factor_id, int64_t step, int64_t ctr)
{
    size_t n = j->server->conf->mfa_recovery_codes;
    char(*codes)[MFA_RECOVERY_CODE_CHARS] = calloc(n, sizeof(*codes));
    uint8_t(*hashes)[STORE_HASH_LEN] = calloc(n, sizeof(*hashes));
    if (codes == NULL || hashes == NULL || (j->codes = calloc(n, MFA_RECOVERY_CODE_CHARS)) == NULL)
        goto out;
    mfa_recovery_generate(n, codes, (uint8_t(*)[32])hashes);
    int r = factor_id != 0 ? store_mfa_confirm(db, w->user.id, factor_id, step, ctr, (const uint8_t(*)[32])hashes, n)
                           : store_mfa_recovery_replace(db, w->user.id, (const uint8_t(*)[32])hashes, n);
    if (r != 0)
        goto out;
    for (size_t i = 0; i != n; ++i) {
        strcat(j->codes, codes[i]);
        if (i + 1 != n)
            strcat(j->codes, "\n");
    }
    j->result = R_RECOVERY;
out:
    if (codes != NULL)
        sodium_memzero(codes, n * sizeof(*codes));
    free(codes);
    free(hashes);
}

static void op_confirm(mfa_job_t *j, store_t *db, who_t *w)
{
    store_mfa_factor_t f = {0};
    if (w->challenge && strcmp(w->purpose, "enrol") != 0) {
        j->result = R_LOGIN;
        return;
    }
    int r = get_pending(db, w, &f);
    if (r != 0) { /* nothing pending (expired): start again */
        j->result = r == -EIO ? R_UNAVAILABLE : R_REDIRECT;
        snprintf(j->location, sizeof(j->location), "/account/mfa");
        return;
    }
    int64_t accepted = 0;
    const char *method = "totp";
    int v = check_code(j, db, w, &f, 1, &accepted, &method);
    audit_check(j, db, w, "mfa.enrol", v, method);
    if (v != V_OK) {
        if (v != V_ERROR && fill_enrol(j, w, &f) == 0) {
            j->result = R_ENROL;
            j->status = v == V_LOCKED ? 429 : 400;
            j->error = verify_error(v);
        }
        goto out;
    }
    int hotp = f.kind[0] == 'h';
    show_recovery(j, db, w, f.id, hotp ? -1 : accepted, hotp ? accepted : 0);
    if (j->result != R_RECOVERY)
        goto out;
    j->result = R_UNAVAILABLE;
    if (finish(j, db, w) != 0)
        goto out;
    j->result = R_RECOVERY;
    if (w->challenge)
        idp_audit(db, w->target, "login.success", w->target, "success", j->source, "{\"amr\":[\"pwd\",\"otp\"]}");
    snprintf(j->location, sizeof(j->location), "%s", w->challenge ? w->return_to : j->return_to);
    notify(j->server->conf, &w->user, "an authenticator app was set up as the second factor of your account.");
out:
    store_mfa_factor_dispose(&f);
}

static void op_manage(mfa_job_t *j, store_t *db, who_t *w)
{
    store_mfa_factor_t f = {0};
    int r = w->challenge ? -ENOENT : store_mfa_get(db, w->user.id, 1, &f);
    if (r != 0) {
        j->result = r == -EIO ? R_UNAVAILABLE : R_REDIRECT;
        snprintf(j->location, sizeof(j->location), "/account/mfa");
        return;
    }
    int remove = strcmp(j->action, "remove") == 0, replace = strcmp(j->action, "replace") == 0;
    if (remove && j->required) {
        j->error = "Your organisation requires a second factor for your account: replace it instead.";
        j->status = 400;
        manage_page(j, db, w, &f);
        goto out;
    }
    int64_t accepted = 0;
    const char *method = "totp";
    int v = check_code(j, db, w, &f, 0, &accepted, &method);
    const char *action = remove ? "mfa.remove" : replace ? "mfa.replace" : "mfa.recovery_regenerate";
    audit_check(j, db, w, action, v, method);
    if (v == V_ERROR)
        goto out;
    if (v != V_OK) {
        j->error = verify_error(v);
        j->status = v == V_LOCKED ? 429 : 400;
        manage_page(j, db, w, &f);
        goto out;
    }
    store_mfa_factor_t pending = {0};
    if (remove) {
        if (store_mfa_remove(db, w->user.id, 0) != 0)
            goto out;
        notify(j->server->conf, &w->user, "the second factor of your account was removed.");
        j->result = R_REDIRECT;
        snprintf(j->location, sizeof(j->location), "/account/mfa?removed=1");
    } else if (replace) {
        /* the old factor stays in force until the new one is proven */
        if (begin_enrolment(j, db, w, j->kind[0] != '\0' ? j->kind : f.kind, &pending) != 0)
            goto out;
        store_mfa_factor_dispose(&pending);
        j->result = R_REDIRECT;
        snprintf(j->location, sizeof(j->location), "/account/mfa");
    } else {
        show_recovery(j, db, w, 0, 0, 0);
        snprintf(j->location, sizeof(j->location), "/account/mfa");
    }
out:
    store_mfa_factor_dispose(&f);
}

static void mfa_run(gw_job_t *job, gw_worker_t *worker)
{
    mfa_job_t *j = (mfa_job_t *)job;
    store_t *db = gw_worker_db(worker);
    who_t w;
    j->result = R_UNAVAILABLE;
    if (db == NULL)
        return;
    int attempt = j->op == OP_VERIFY || j->op == OP_CONFIRM;
    int r = resolve(j, db, attempt, &w);
    if (r != 0) {
        j->result = r == -ESTALE ? R_EXPIRED : r == -ENOENT ? R_LOGIN : R_UNAVAILABLE;
        if (r == -ESTALE)
            j->clear_challenge = 1;
        return;
    }
    switch (j->op) {
    case OP_VERIFY_PAGE: op_verify_page(j, db, &w); break;
    case OP_VERIFY: op_verify(j, db, &w); break;
    case OP_ENROL_PAGE: op_enrol_page(j, db, &w); break;
    case OP_QR: op_qr(j, db, &w); break;
    case OP_CONFIRM: op_confirm(j, db, &w); break;
    default: op_manage(j, db, &w); break;
    }
    who_dispose(&w);
}

/* ---- event loop side ---- */

static const char *pool_str(h2o_req_t *req, const char *s)
{
    return s != NULL ? h2o_strdup(&req->pool, s, SIZE_MAX).base : NULL;
}

static void render(mfa_job_t *j, h2o_req_t *req)
{
    const char *csrf = gw_csrf_token(req);
    const char *return_to = pool_str(req, j->return_to);
    char left[16];
    snprintf(left, sizeof(left), "%u", j->recovery_left);
    switch (j->result) {
    case R_VERIFY: {
        gw_tpl_var_t vars[] = {{"csrf", csrf},
                               {"username", pool_str(req, j->username)},
                               {"return_to", return_to},
                               {"hotp", j->hotp ? "1" : NULL},
                               {"error", j->error}};
        gw_send_page(req, j->status ? j->status : 200, "mfa.html", vars, sizeof(vars) / sizeof(vars[0]));
        return;
    }
    case R_ENROL: {
        char qr[64];
        snprintf(qr, sizeof(qr), "/account/mfa/qr.svg?t=%ld", (long)time(NULL));
        gw_tpl_var_t vars[] = {{"csrf", csrf},
                               {"username", pool_str(req, j->username)},
                               {"return_to", return_to},
                               {"secret", pool_str(req, j->secret_b32)},
                               {"uri", pool_str(req, j->uri)},
                               {"qr", pool_str(req, qr)},
                               {"hotp", j->hotp ? "1" : NULL},
                               {"totp", j->hotp ? NULL : "1"},
                               {"forced", j->forced ? "1" : NULL},
                               {"error", j->error},
                               {"notice", j->notice}};
        gw_send_page(req, j->status ? j->status : 200, "mfa_enrol.html", vars, sizeof(vars) / sizeof(vars[0]));
        return;
    }
    case R_MANAGE: {
        gw_tpl_var_t vars[] = {{"csrf", csrf},
                               {"username", pool_str(req, j->username)},
                               {"kind", j->hotp ? "counter-based (HOTP)" : "time-based (TOTP)"},
                               {"left", pool_str(req, left)},
                               {"required", j->required ? "1" : NULL},
                               {"error", j->error},
                               {"notice", j->notice}};
        gw_send_page(req, j->status ? j->status : 200, "mfa_manage.html", vars, sizeof(vars) / sizeof(vars[0]));
        return;
    }
    case R_RECOVERY: {
        gw_tpl_var_t vars[] = {{"codes", pool_str(req, j->codes)}, {"continue", pool_str(req, j->location)}};
        gw_send_page(req, 200, "mfa_recovery.html", vars, sizeof(vars) / sizeof(vars[0]));
        return;
    }
    default: break;
    }
}

static void mfa_done(gw_job_t *job)
{
    mfa_job_t *j = (mfa_job_t *)job;
    h2o_req_t *req = job->req;
    gw_server_t *server = j->server;
    if (j->evict) /* this instance at once; the others through NOTIFY */
        gw_cache_evict_session(server->cache, j->session);
    if (req != NULL) {
        if (j->clear_challenge)
            gw_set_cookie(req, IDP_MFA_COOKIE, "", 0);
        if (j->cookie[0] != '\0')
            gw_set_cookie(req, server->conf->session_cookie, j->cookie, -1);
        switch (j->result) {
        case R_LOGIN: gw_send_redirect(req, 303, "/login"); break;
        case R_EXPIRED:
            gw_send_message(req, 401, "Please sign in again",
                            "Too many codes were tried, or the sign-in took too long. Please sign in again.", "/login",
                            "Go to sign-in");
            break;
        case R_REDIRECT: gw_send_redirect(req, 303, pool_str(req, j->location)); break;
        case R_ENROL_FIRST: {
            const char *enc = gw_url_encode(&req->pool, j->return_to);
            gw_send_redirect(req, 303,
                             h2o_concat(&req->pool, h2o_iovec_init(H2O_STRLIT("/account/mfa?return_to=")),
                                        h2o_iovec_init(enc, strlen(enc)))
                                 .base);
            break;
        }
        case R_SVG: /* the security headers include Cache-Control: no-store */
            gw_send_body(req, 200, "image/svg+xml", j->svg, strlen(j->svg));
            break;
        case R_NOT_FOUND:
            gw_send_message(req, 404, "Not found", "There is no enrolment in progress.", NULL, NULL);
            break;
        case R_UNAVAILABLE: gw_send_unavailable(req); break;
        default: render(j, req);
        }
    }
    sodium_memzero(j->cookie, sizeof(j->cookie));
    idp_free_secret(j->code);
    idp_free_secret(j->next_code);
    idp_free_secret(j->secret_b32);
    idp_free_secret(j->uri);
    idp_free_secret(j->svg);
    idp_free_secret(j->codes);
    free(j);
}

static mfa_job_t *new_job(idp_handler_t *h, h2o_req_t *req, int op)
{
    gw_server_t *server = h->server;
    mfa_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->server = server;
    j->op = op;
    j->have_challenge = gw_cookie_hash(req, IDP_MFA_COOKIE, j->challenge);
    j->have_session = gw_cookie_hash(req, server->conf->session_cookie, j->session);
    gw_peer_addr(req, j->source, sizeof(j->source));
    return j;
}

static void submit(mfa_job_t *j, h2o_req_t *req)
{
    if (j == NULL) {
        gw_send_unavailable(req);
        return;
    }
    if (!j->have_challenge && !j->have_session) { /* nobody: no need to ask the database */
        free(j);
        gw_send_redirect(req, 303, "/login");
        return;
    }
    gw_job_submit(gw_loop_of(req), req, &j->super, mfa_run, mfa_done);
}

/* The form's csrf field against the cookie; 0 when it is good (else a 403 page was sent). */
static int refuse_csrf(h2o_req_t *req, const char *back)
{
    if (gw_csrf_check(req, gw_form_get(req, req->entity, "csrf", 128)) == 0)
        return 0;
    gw_send_message(req, 403, "Request refused", "The form expired or did not come from this site. Please try again.",
                    back, "Try again");
    return 1;
}

static void take_return_to(gw_server_t *server, h2o_req_t *req, const char *raw, mfa_job_t *j)
{
    pol_return_to(raw, server->conf->public_url, j->return_to, sizeof(j->return_to));
}

static int on_login_mfa(h2o_handler_t *self, h2o_req_t *req)
{
    idp_handler_t *h = (idp_handler_t *)self;
    if (!idp_is_post(req)) {
        mfa_job_t *j = new_job(h, req, OP_VERIFY_PAGE);
        if (j != NULL)
            take_return_to(h->server, req, gw_query_get(req, "return_to", POL_RETURN_TO_MAX), j);
        submit(j, req);
        return 0;
    }
    if (refuse_csrf(req, "/login/mfa"))
        return 0;
    mfa_job_t *j = new_job(h, req, OP_VERIFY);
    if (j != NULL) {
        take_return_to(h->server, req, gw_form_get(req, req->entity, "return_to", POL_RETURN_TO_MAX), j);
        j->code = idp_dup_secret(gw_form_get(req, req->entity, "code", CODE_MAX));
        j->next_code = idp_dup_secret(gw_form_get(req, req->entity, "next_code", CODE_MAX));
    }
    submit(j, req);
    return 0;
}

static int on_account_mfa(h2o_handler_t *self, h2o_req_t *req)
{
    idp_handler_t *h = (idp_handler_t *)self;
    if (!idp_is_post(req)) {
        mfa_job_t *j = new_job(h, req, OP_ENROL_PAGE);
        if (j != NULL) {
            take_return_to(h->server, req, gw_query_get(req, "return_to", POL_RETURN_TO_MAX), j);
            const char *kind = gw_query_get(req, "kind", 8);
            if (kind != NULL && (strcmp(kind, "totp") == 0 || strcmp(kind, "hotp") == 0))
                snprintf(j->kind, sizeof(j->kind), "%s", kind);
            if (gw_query_get(req, "removed", 4) != NULL)
                j->notice = "The second factor was removed.";
        }
        submit(j, req);
        return 0;
    }
    if (refuse_csrf(req, "/account/mfa"))
        return 0;
    const char *action = gw_form_get(req, req->entity, "action", 15);
    int op = action == NULL || strcmp(action, "confirm") == 0 ? OP_CONFIRM : OP_MANAGE;
    if (op == OP_MANAGE && strcmp(action, "remove") != 0 && strcmp(action, "replace") != 0 &&
        strcmp(action, "recovery") != 0) {
        gw_send_message(req, 400, "Unknown action", "That action does not exist.", "/account/mfa", "Back");
        return 0;
    }
    mfa_job_t *j = new_job(h, req, op);
    if (j != NULL) {
        snprintf(j->action, sizeof(j->action), "%s", action != NULL ? action : "confirm");
        take_return_to(h->server, req, gw_form_get(req, req->entity, "return_to", POL_RETURN_TO_MAX), j);
        const char *kind = gw_form_get(req, req->entity, "kind", 8);
        if (kind != NULL && (strcmp(kind, "totp") == 0 || strcmp(kind, "hotp") == 0))
            snprintf(j->kind, sizeof(j->kind), "%s", kind);
        j->code = idp_dup_secret(gw_form_get(req, req->entity, "code", CODE_MAX));
    }
    submit(j, req);
    return 0;
}

static int on_qr(h2o_handler_t *self, h2o_req_t *req)
{
    submit(new_job((idp_handler_t *)self, req, OP_QR), req);
    return 0;
}

void idp_mfa_register(gw_server_t *server, h2o_hostconf_t *hostconf)
{
    /* h2o picks the first registered prefix that matches: the longer paths go first */
    idp_add_handler(server, hostconf, "/account/mfa/qr.svg", on_qr);
    idp_add_handler(server, hostconf, "/account/mfa", on_account_mfa);
    idp_add_handler(server, hostconf, "/login/mfa", on_login_mfa);
}
