/*
 * Command line: `portier <command> [args] [-c FILE]`.
 *
 *   serve | check-config | migrate | version
 *   user invite NAME [--email E] [--name N] [--group G]...   prints a single-use setup link
 *   user disable NAME | user enable NAME | user unlock NAME | user reset-password NAME | user reset-mfa NAME
 *   user list
 *   group add USER GROUP | group remove USER GROUP
 *   audit verify | audit export [--after ID]
 *   scim-token create NAME | scim-token list | scim-token revoke NAME
 *
 * The configuration file comes from -c/--config, else $PORTIER_CONFIG, else /etc/portier/portier.yaml. Every
 * command that changes data writes an audit event with the operator ("cli:<login name>") as actor.
 */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "gateway/internal.h"
#include "policy/policy.h"
#include "scim/scim.h"
#include "saml/saml.h"

#define DEFAULT_CONFIG   "/etc/portier/portier.yaml"
#define USERNAME_MAX_LEN 64
#define MAX_GROUPS       32

typedef struct st_cli_t {
    const char *config_path;
    gw_config_t conf;
    store_t *db;
    char actor[96];
} cli_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: portier <command> [arguments] [-c FILE]\n"
                 "\n"
                 "commands:\n"
                 "  serve                          run the server\n"
                 "  check-config                   validate the configuration file and exit\n"
                 "  migrate                        apply pending database migrations (as database.admin_conninfo)\n"
                 "                                 and grant the runtime role what it needs\n"
                 "  user invite NAME [--email E] [--name N] [--group G]...\n"
                 "                                 create a user and print a single-use setup link\n"
                 "  user disable NAME              disable a user and end their sessions everywhere\n"
                 "  user enable NAME               re-enable a user\n"
                 "  user unlock NAME               clear a lock-out after too many failed sign-ins\n"
                 "  user reset-password NAME       print a single-use password reset link (login.reset_ttl, 1 h);\n"
                 "                                 earlier links stop working; the administrator never sees\n"
                 "                                 or chooses the password\n"
                 "  user reset-mfa NAME            remove the user's second factors and recovery codes and end\n"
                 "                                 their sessions everywhere (they enrol again at next sign-in)\n"
                 "  user list                      list users (tab-separated)\n"
                 "  group add USER GROUP           add a user to a group\n"
                 "  group remove USER GROUP        remove a user from a group\n"
                 "  audit verify                   check every audit event's MAC and the chain linking them\n"
                 "  audit export [--after ID]      print audit events as JSON lines (for a SIEM)\n"
                 "  scim-token create NAME         create a SCIM client's bearer token (printed once)\n"
                 "  scim-token list                list SCIM tokens (name, created, last used, revoked)\n"
                 "  scim-token revoke NAME         revoke a SCIM token at once\n"
                 "  keys saml-rotate               SAML signing key: make the next key (published first), or\n"
                 "                                 switch to it once SPs know it (see README)\n"
                 "  saml add-sp FILE NAME          check an SP's metadata and add it to saml.sp_dir\n"
                 "  version                        print the version\n"
                 "\n"
                 "The configuration is read from -c FILE, $PORTIER_CONFIG, or " DEFAULT_CONFIG ".\n");
}

/* Removes "-c FILE"/"--config FILE"/"--config=FILE" from argv wherever they are; returns the new argc. */
static int take_config_arg(int argc, char **argv, const char **path)
{
    int out = 0;
    for (int i = 0; i < argc; ++i) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            *path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            *path = argv[i] + 9;
        } else {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    return out;
}

static int load_config(cli_t *cli)
{
    gw_config_errors_t errs = {0};
    if (gw_config_load(&cli->conf, cli->config_path, &errs) != 0) {
        for (size_t i = 0; i != errs.count; ++i)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        gw_config_errors_dispose(&errs);
        return -1;
    }
    return 0;
}

static int open_db(cli_t *cli)
{
    char err[512];
    if (load_config(cli) != 0)
        return -1;
    char key_path[PATH_MAX];
    uint8_t key[GW_AUDIT_KEY_LEN];
    snprintf(key_path, sizeof(key_path), "%s/" GW_AUDIT_KEY_FILE, cli->conf.state_dir);
    if (gw_key_file(key_path, key, sizeof(key), err, sizeof(err)) != 0) {
        fprintf(stderr, "portier: audit key: %s\n", err);
        return -1;
    }
    cli->db = gw_store_open(&cli->conf, key, err, sizeof(err));
    sodium_memzero(key, sizeof(key));
    if (cli->db == NULL) {
        fprintf(stderr, "portier: cannot connect to the database: %s\n", err);
        return -1;
    }
    const char *who = getenv("SUDO_USER");
    struct passwd *pw = who == NULL ? getpwuid(getuid()) : NULL;
    snprintf(cli->actor, sizeof(cli->actor), "cli:%s", who != NULL ? who : pw != NULL ? pw->pw_name : "unknown");
    return 0;
}

static void audit(cli_t *cli, const char *action, const char *target, const char *details)
{
    store_audit_event_t ev = {.actor = cli->actor,
                              .action = action,
                              .target = target,
                              .outcome = "success",
                              .source_addr = "cli",
                              .details = details};
    if (store_audit_append(cli->db, &ev) != 0)
        fprintf(stderr, "portier: warning: could not write the audit event for %s\n", action);
}

static int valid_username(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > USERNAME_MAX_LEN)
        return 0;
    for (const char *p = s; *p != '\0'; ++p)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '_' || *p == '-' || *p == '@'))
            return 0;
    return 1;
}

static int find_user(cli_t *cli, const char *name, store_user_t *u)
{
    int r = store_user_get(cli->db, name, u);
    if (r == -ENOENT)
        fprintf(stderr, "portier: no such user: %s\n", name);
    else if (r != 0)
        fprintf(stderr, "portier: database error\n");
    return r;
}

static void log_migration(void *ctx, const char *msg)
{
    fprintf(stderr, "%s\n", msg);
}

/* Migrates as the owner role (database.admin_conninfo, when set), then grants the runtime role what it needs. */
static int cmd_migrate(cli_t *cli)
{
    if (open_db(cli) != 0)
        return 1;
    store_t *admin = cli->db;
    if (cli->conf.db_admin_conninfo != NULL) {
        char err[512];
        if ((admin = store_open(cli->conf.db_admin_conninfo, err, sizeof(err))) == NULL) {
            fprintf(stderr, "portier: database.admin_conninfo: cannot connect: %s\n", err);
            return 1;
        }
    }
    int n = store_migrate(admin, log_migration, NULL);
    int granted = n < 0 || admin == cli->db ? 0 : store_grant_runtime(admin, cli->db, log_migration, NULL);
    if (admin != cli->db)
        store_close(admin);
    if (n < 0 || granted != 0) {
        fprintf(stderr, "portier: migration failed\n");
        return 1;
    }
    if (admin == cli->db && store_role_owns_audit(cli->db) == 1)
        fprintf(stderr, "note: portier's database role can change the audit trail (it owns the tables or is a "
                        "superuser); set database.admin_conninfo (README, 'Database roles')\n");
    printf("%d migration(s) applied; schema is up to date\n", n);
    return 0;
}

static int cmd_check_config(cli_t *cli)
{
    if (load_config(cli) != 0)
        return 1;
    char err[512];
    int rc = 0;
    gw_jwt_keyset_t *ks = gw_jwt_keyset_load(cli->conf.jwt_signing_key,
                                             (const char *const *)cli->conf.jwt_previous_keys, err, sizeof(err));
    if (ks == NULL) {
        fprintf(stderr, "%s: identity.signing_key: %s\n", cli->config_path, err);
        rc = 1;
    }
    gw_jwt_keyset_destroy(ks);
    gw_templates_t *t = gw_templates_load(cli->conf.templates_dir, err, sizeof(err));
    if (t == NULL) {
        fprintf(stderr, "%s: templates_dir: %s\n", cli->config_path, err);
        rc = 1;
    }
    gw_templates_destroy(t);
    pol_blocklist_t *bl = gw_blocklist_load(&cli->conf, err, sizeof(err));
    if (bl == NULL) {
        fprintf(stderr, "%s: login.blocklist / login.dictionary: %s\n", cli->config_path, err);
        rc = 1;
    }
    pol_blocklist_destroy(bl);
    if (saml_check(&cli->conf, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: saml.idp: %s\n", cli->config_path, err);
        rc = 1;
    }
    if (rc == 0)
        printf("%s: OK\n", cli->config_path);
    return rc;
}

static int issue_link(cli_t *cli, const store_user_t *u, const char *purpose, unsigned ttl)
{
    char token[64];
    uint8_t hash[STORE_HASH_LEN];
    gw_random_token(32, token, sizeof(token), hash);
    if (store_token_create(cli->db, hash, u->id, purpose, ttl) != 0) {
        fprintf(stderr, "portier: could not store the setup token\n");
        return 1;
    }
    printf("%s/setup?token=%s\n", cli->conf.public_url, token);
    sodium_memzero(token, sizeof(token));
    return 0;
}

static int cmd_user_invite(cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"email", required_argument, NULL, 'e'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"group", required_argument, NULL, 'g'},
                                         {NULL, 0, NULL, 0}};
    const char *email = NULL, *name = NULL, *groups[MAX_GROUPS];
    size_t ngroups = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'e': email = optarg; break;
        case 'n': name = optarg; break;
        case 'g':
            if (ngroups == MAX_GROUPS) {
                fprintf(stderr, "portier: too many groups\n");
                return 2;
            }
            groups[ngroups++] = optarg;
            break;
        default: return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: portier user invite NAME [--email E] [--name N] [--group G]...\n");
        return 2;
    }
    const char *username = argv[optind];
    if (!valid_username(username)) {
        fprintf(stderr, "portier: invalid user name (1-%d characters: letters, digits, . _ - @)\n", USERNAME_MAX_LEN);
        return 2;
    }
    if (open_db(cli) != 0)
        return 1;
    int64_t id;
    int r = store_user_create(cli->db, username, email, name, &id);
    if (r == -EEXIST) {
        fprintf(stderr, "portier: user %s exists; issuing a new setup link (earlier links no longer work)\n", username);
    } else if (r != 0) {
        fprintf(stderr, "portier: could not create the user\n");
        return 1;
    }
    store_user_t u = {0};
    if (find_user(cli, username, &u) != 0)
        return 1;
    char target[96];
    snprintf(target, sizeof(target), "user:%s", u.username);
    if (r == 0)
        audit(cli, "user.create", target, NULL);
    for (size_t i = 0; i != ngroups; ++i) {
        if (store_group_add_member(cli->db, u.id, groups[i]) != 0) {
            fprintf(stderr, "portier: could not add %s to group %s\n", username, groups[i]);
            store_user_dispose(&u);
            return 1;
        }
        char details[160];
        snprintf(details, sizeof(details), "{\"group\":\"%s\"}", groups[i]);
        audit(cli, "group.add_member", target, valid_username(groups[i]) ? details : NULL);
    }
    int rc = issue_link(cli, &u, "setup", cli->conf.invite_ttl);
    if (rc == 0)
        audit(cli, "user.setup_link_issued", target, NULL);
    store_user_dispose(&u);
    return rc;
}

static int cmd_user_set_disabled(cli_t *cli, const char *username, int disabled)
{
    if (open_db(cli) != 0)
        return 1;
    store_user_t u = {0};
    if (find_user(cli, username, &u) != 0)
        return 1;
    int r = store_user_set_disabled(cli->db, u.id, disabled);
    if (r == 0) {
        char target[96];
        snprintf(target, sizeof(target), "user:%s", u.username);
        audit(cli, disabled ? "user.disable" : "user.enable", target, NULL);
        printf("%s %s\n", u.username, disabled ? "disabled; sessions ended" : "enabled");
    } else {
        fprintf(stderr, "portier: database error\n");
    }
    store_user_dispose(&u);
    return r == 0 ? 0 : 1;
}

static int cmd_user_unlock(cli_t *cli, const char *username)
{
    if (open_db(cli) != 0)
        return 1;
    store_user_t u = {0};
    if (find_user(cli, username, &u) != 0)
        return 1;
    int r = store_throttle_reset(cli->db, u.id);
    if (r == 0) {
        char target[96];
        snprintf(target, sizeof(target), "user:%s", u.username);
        audit(cli, "user.unlock", target, NULL);
        printf("%s unlocked\n", u.username);
    } else {
        fprintf(stderr, "portier: database error\n");
    }
    store_user_dispose(&u);
    return r == 0 ? 0 : 1;
}

static int cmd_user_reset_mfa(cli_t *cli, const char *username)
{
    if (open_db(cli) != 0)
        return 1;
    store_user_t u = {0};
    if (find_user(cli, username, &u) != 0)
        return 1;
    int r = store_mfa_remove(cli->db, u.id, 1);
    if (r == 0) {
        char target[96];
        snprintf(target, sizeof(target), "user:%s", u.username);
        audit(cli, "mfa.reset", target, NULL);
        printf("%s: second factors and recovery codes removed; sessions ended\n", u.username);
    } else {
        fprintf(stderr, "portier: database error\n");
    }
    store_user_dispose(&u);
    return r == 0 ? 0 : 1;
}

static int cmd_user_reset_password(cli_t *cli, const char *username)
{
    if (open_db(cli) != 0)
        return 1;
    store_user_t u = {0};
    if (find_user(cli, username, &u) != 0)
        return 1;
    int rc = issue_link(cli, &u, "reset", cli->conf.reset_ttl);
    if (rc == 0) {
        char target[96];
        snprintf(target, sizeof(target), "user:%s", u.username);
        audit(cli, "user.reset_link_issued", target, NULL);
    }
    store_user_dispose(&u);
    return rc;
}

static void print_user(void *ctx, const store_user_t *u, int has_password)
{
    printf("%s\t%s\t%s\t", u->username, u->email != NULL ? u->email : "", u->disabled ? "disabled" : "enabled");
    for (size_t i = 0; i != u->num_groups; ++i)
        printf("%s%s", i != 0 ? "," : "", u->groups[i]);
    printf("\t%s\n", has_password ? "password" : "no-password");
}

static int cmd_user_list(cli_t *cli)
{
    if (open_db(cli) != 0)
        return 1;
    return store_user_list(cli->db, print_user, NULL) == 0 ? 0 : 1;
}

static int cmd_group(cli_t *cli, int add, const char *username, const char *group)
{
    if (!valid_username(group)) {
        fprintf(stderr, "portier: invalid group name (1-%d characters: letters, digits, . _ - @)\n", USERNAME_MAX_LEN);
        return 2;
    }
    if (open_db(cli) != 0)
        return 1;
    store_user_t u = {0};
    if (find_user(cli, username, &u) != 0)
        return 1;
    int r = add ? store_group_add_member(cli->db, u.id, group) : store_group_remove_member(cli->db, u.id, group);
    if (r == 0 || r == -ENOENT) {
        char target[96], details[160];
        snprintf(target, sizeof(target), "user:%s", u.username);
        snprintf(details, sizeof(details), "{\"group\":\"%s\"}", group);
        if (r == 0)
            audit(cli, add ? "group.add_member" : "group.remove_member", target, details);
        printf("%s %s %s\n", u.username, r == 0 ? (add ? "added to" : "removed from") : "was not in", group);
        r = 0;
    } else {
        fprintf(stderr, "portier: database error\n");
    }
    store_user_dispose(&u);
    return r == 0 ? 0 : 1;
}

static int cmd_audit_verify(cli_t *cli)
{
    if (open_db(cli) != 0)
        return 1;
    store_audit_verify_t v;
    if (store_audit_verify(cli->db, &v) != 0) {
        fprintf(stderr, "portier: database error\n");
        return 1;
    }
    if (v.bad_id != 0) {
        fprintf(stderr, "portier: audit trail damaged at event %lld: %s (%llu events before it verified)\n",
                (long long)v.bad_id, v.reason, (unsigned long long)v.verified);
        return 1;
    }
    printf("audit trail OK: %llu events verified", (unsigned long long)v.verified);
    if (v.unkeyed != 0)
        printf(", %llu written without a key (not covered)", (unsigned long long)v.unkeyed);
    if (v.verified != 0)
        printf("; head: event %lld mac %s", (long long)v.head_id, v.head_mac);
    printf("\n");
    return 0;
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static int print_event(void *ctx, const store_audit_row_t *r)
{
    json_t *details = r->ev.details != NULL ? json_loads(r->ev.details, 0, NULL) : json_null();
    json_t *o = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", (json_int_t)r->id, "at", r->at,
                          "actor", str_or_null(r->ev.actor), "action", str_or_null(r->ev.action), "target",
                          str_or_null(r->ev.target), "outcome", str_or_null(r->ev.outcome), "source_addr",
                          str_or_null(r->ev.source_addr), "request_id", str_or_null(r->ev.request_id), "details",
                          details != NULL ? details : json_null(), "mac", str_or_null(r->mac_hex));
    char *line = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (line == NULL)
        return -ENOMEM;
    int ok = puts(line) >= 0;
    free(line);
    return ok ? 0 : -EIO;
}

static int cmd_audit_export(cli_t *cli, int argc, char **argv)
{
    long long after = 0;
    if (argc == 5 && strcmp(argv[3], "--after") == 0) {
        char *end;
        after = strtoll(argv[4], &end, 10);
        if (*end != '\0' || after < 0) {
            fprintf(stderr, "portier: --after takes an event id\n");
            return 2;
        }
    } else if (argc != 3) {
        usage(stderr);
        return 2;
    }
    if (open_db(cli) != 0)
        return 1;
    if (store_audit_export(cli->db, after, print_event, NULL) != 0 || fflush(stdout) != 0) {
        fprintf(stderr, "portier: export failed\n");
        return 1;
    }
    return 0;
}

/* ---- SCIM client tokens: 256 random bits, printed once, stored as SHA-256 only ---- */

static int cmd_scim_token_create(cli_t *cli, const char *name)
{
    if (!valid_username(name)) {
        fprintf(stderr, "portier: invalid token name (1-%d characters: letters, digits, . _ - @)\n", USERNAME_MAX_LEN);
        return 2;
    }
    if (open_db(cli) != 0)
        return 1;
    char token[64], target[96];
    uint8_t hash[STORE_HASH_LEN];
    gw_random_token(SCIM_TOKEN_BYTES, token, sizeof(token), hash);
    int r = store_scim_token_create(cli->db, name, hash);
    if (r == -EEXIST) {
        fprintf(stderr, "portier: a SCIM token named %s exists (revoked ones keep their name)\n", name);
    } else if (r != 0) {
        fprintf(stderr, "portier: database error\n");
    } else {
        snprintf(target, sizeof(target), "scim-token:%s", name);
        audit(cli, "scim_token.create", target, NULL);
        printf("%s\n", token);
        fprintf(stderr, "SCIM token %s created; it is shown only this once. Base URL: %s/scim/v2\n", name,
                cli->conf.public_url);
    }
    sodium_memzero(token, sizeof(token));
    return r == 0 ? 0 : 1;
}

static void print_token(void *ctx, const store_scim_token_t *t)
{
    printf("%s\t%s\t%s\t%s\n", t->name, t->created_at, t->last_used_at != NULL ? t->last_used_at : "never",
           t->revoked_at != NULL ? t->revoked_at : "active");
}

static int cmd_scim_token_list(cli_t *cli)
{
    if (open_db(cli) != 0)
        return 1;
    return store_scim_token_list(cli->db, print_token, NULL) == 0 ? 0 : 1;
}

static int cmd_scim_token_revoke(cli_t *cli, const char *name)
{
    if (open_db(cli) != 0)
        return 1;
    int r = store_scim_token_revoke(cli->db, name);
    if (r == -ENOENT) {
        fprintf(stderr, "portier: no active SCIM token named %s\n", name);
        return 1;
    }
    if (r != 0) {
        fprintf(stderr, "portier: database error\n");
        return 1;
    }
    char target[96];
    snprintf(target, sizeof(target), "scim-token:%s", name);
    audit(cli, "scim_token.revoke", target, NULL);
    printf("SCIM token %s revoked\n", name);
    return 0;
}

int gw_cli_main(int argc, char **argv)
{
    cli_t cli = {0};
    int rc = 2;
    cli.config_path = getenv("PORTIER_CONFIG") != NULL ? getenv("PORTIER_CONFIG") : DEFAULT_CONFIG;
    argc = take_config_arg(argc, argv, &cli.config_path);
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread starts */
    if (sodium_init() < 0) {
        fprintf(stderr, "portier: libsodium failed to initialise\n");
        return 1;
    }
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1], *sub = argc > 2 ? argv[2] : "";

    if (strcmp(cmd, "version") == 0) {
        printf("portier 0.1.0\n");
        rc = 0;
    } else if (strcmp(cmd, "serve") == 0 && argc == 2) {
        rc = load_config(&cli) == 0 ? gw_serve(&cli.conf) : 1;
    } else if (strcmp(cmd, "check-config") == 0 && argc == 2) {
        rc = cmd_check_config(&cli);
    } else if (strcmp(cmd, "migrate") == 0 && argc == 2) {
        rc = cmd_migrate(&cli);
    } else if (strcmp(cmd, "user") == 0 && strcmp(sub, "invite") == 0) {
        rc = cmd_user_invite(&cli, argc - 2, argv + 2);
    } else if (strcmp(cmd, "user") == 0 && (strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0) && argc == 4) {
        rc = cmd_user_set_disabled(&cli, argv[3], strcmp(sub, "disable") == 0);
    } else if (strcmp(cmd, "user") == 0 && strcmp(sub, "reset-mfa") == 0 && argc == 4) {
        rc = cmd_user_reset_mfa(&cli, argv[3]);
    } else if (strcmp(cmd, "user") == 0 && strcmp(sub, "unlock") == 0 && argc == 4) {
        rc = cmd_user_unlock(&cli, argv[3]);
    } else if (strcmp(cmd, "user") == 0 && strcmp(sub, "reset-password") == 0 && argc == 4) {
        rc = cmd_user_reset_password(&cli, argv[3]);
    } else if (strcmp(cmd, "user") == 0 && strcmp(sub, "list") == 0 && argc == 3) {
        rc = cmd_user_list(&cli);
    } else if (strcmp(cmd, "scim-token") == 0 && strcmp(sub, "create") == 0 && argc == 4) {
        rc = cmd_scim_token_create(&cli, argv[3]);
    } else if (strcmp(cmd, "scim-token") == 0 && strcmp(sub, "list") == 0 && argc == 3) {
        rc = cmd_scim_token_list(&cli);
    } else if (strcmp(cmd, "scim-token") == 0 && strcmp(sub, "revoke") == 0 && argc == 4) {
        rc = cmd_scim_token_revoke(&cli, argv[3]);
    } else if (strcmp(cmd, "audit") == 0 && strcmp(sub, "verify") == 0 && argc == 3) {
        rc = cmd_audit_verify(&cli);
    } else if (strcmp(cmd, "audit") == 0 && strcmp(sub, "export") == 0) {
        rc = cmd_audit_export(&cli, argc, argv);
    } else if (strcmp(cmd, "group") == 0 && (strcmp(sub, "add") == 0 || strcmp(sub, "remove") == 0) && argc == 5) {
        rc = cmd_group(&cli, strcmp(sub, "add") == 0, argv[3], argv[4]);
    } else if (strcmp(cmd, "keys") == 0 && strcmp(sub, "saml-rotate") == 0 && argc == 3) {
        rc = load_config(&cli) == 0 ? saml_cli_rotate(&cli.conf) : 1;
    } else if (strcmp(cmd, "saml") == 0 && strcmp(sub, "add-sp") == 0 && argc == 5) {
        rc = load_config(&cli) == 0 ? saml_cli_add_sp(&cli.conf, argv[3], argv[4]) : 1;
    } else {
        usage(stderr);
    }
    if (cli.db != NULL)
        store_close(cli.db);
    if (cli.conf.path != NULL)
        gw_config_dispose(&cli.conf);
    return rc;
}
