/*
 * What goes into an assertion beyond lasso's skeleton: the NameID in the SP's configured format, the released
 * attributes, the signing choices, and the authentication context (the MFA hook). lasso builds the assertion
 * with a transient NameID (it would otherwise want an ID-FF style federation store); we then overwrite the
 * subject, which lasso signs and encrypts only later, when the response message is built.
 *
 * Persistent NameIDs are pairwise and opaque: HMAC-SHA256(key, user id | SP entity id), base64url. They stay the
 * same for a user and SP as long as the key file does (back it up with the database), they cannot be linked
 * across SPs, and they survive renames (the database id never changes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lasso/lasso.h>
#include <lasso/xml/misc_text_node.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_attribute.h>
#include <lasso/xml/saml-2.0/saml2_attribute_statement.h>
#include <lasso/xml/saml-2.0/saml2_attribute_value.h>
#include <lasso/xml/saml-2.0/saml2_name_id.h>
#include <lasso/xml/saml-2.0/saml2_subject.h>
#include <lasso/xml/saml-2.0/samlp2_authn_request.h>
#include <lasso/xml/saml-2.0/samlp2_requested_authn_context.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "saml/internal.h"
#include "store/store.h"

#define FORMAT_PERSISTENT  "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
#define FORMAT_EMAIL       "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
#define FORMAT_UNSPECIFIED "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
#define FORMAT_TRANSIENT   "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
#define NAME_FORMAT_BASIC  "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
#define NAME_FORMAT_URI    "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
#define TRANSIENT_BYTES    20
#define MAX_NAME_PART      256

/* The released attributes: basic name, URI name (the eduPerson/inetOrgPerson OIDs SPs expect). The order is the
 * order of the SAML_ATTR_* bits (sp->renamed is indexed by it). */
static const struct {
    unsigned bit;
    const char *basic, *uri;
} attr_defs[] = {
    {SAML_ATTR_UID, "uid", "urn:oid:0.9.2342.19200300.100.1.1"},
    {SAML_ATTR_MAIL, "mail", "urn:oid:0.9.2342.19200300.100.1.3"},
    {SAML_ATTR_DISPLAY_NAME, "displayName", "urn:oid:2.16.840.1.113730.3.1.241"},
    {SAML_ATTR_GIVEN_NAME, "givenName", "urn:oid:2.5.4.42"},
    {SAML_ATTR_SN, "sn", "urn:oid:2.5.4.4"},
    {SAML_ATTR_GROUPS, "groups", "urn:oid:1.3.6.1.4.1.5923.1.5.1.1"}, /* isMemberOf */
};

int saml_nameid_for(const saml_idp_t *idp, const saml_sp_config_t *sp, const store_user_t *user, char *value,
                    size_t len, const char **format)
{
    switch (sp->nameid) {
    case SAML_NAMEID_PERSISTENT: {
        unsigned char mac[32];
        unsigned int mac_len = sizeof(mac);
        char input[1200];
        int n = snprintf(input, sizeof(input), "%lld|%s", (long long)user->id, sp->md.entity_id);
        if (n < 0 || (size_t)n >= sizeof(input) ||
            HMAC(EVP_sha256(), idp->nameid_key, SAML_NAMEID_KEY_LEN, (unsigned char *)input, (size_t)n, mac,
                 &mac_len) == NULL ||
            len < sodium_base64_ENCODED_LEN(sizeof(mac), sodium_base64_VARIANT_URLSAFE_NO_PADDING))
            return -1;
        sodium_bin2base64(value, len, mac, sizeof(mac), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        *format = FORMAT_PERSISTENT;
        return 0;
    }
    case SAML_NAMEID_EMAIL:
        if (user->email == NULL || *user->email == '\0')
            return -1;
        snprintf(value, len, "%s", user->email);
        *format = FORMAT_EMAIL;
        return 0;
    case SAML_NAMEID_UNSPECIFIED:
        snprintf(value, len, "%s", user->username);
        *format = FORMAT_UNSPECIFIED;
        return 0;
    case SAML_NAMEID_TRANSIENT: {
        unsigned char r[TRANSIENT_BYTES];
        if (RAND_bytes(r, sizeof(r)) != 1 || len < 2 * sizeof(r) + 2)
            return -1;
        value[0] = '_';
        sodium_bin2hex(value + 1, len - 1, r, sizeof(r));
        *format = FORMAT_TRANSIENT;
        return 0;
    }
    }
    return -1;
}

/* givenName / sn from the display name: the first word and the rest ("Ada Lovelace" -> Ada, Lovelace). */
static void split_name(const char *display, char *given, char *family)
{
    given[0] = family[0] = '\0';
    if (display == NULL)
        return;
    const char *space = strchr(display, ' ');
    if (space == NULL) {
        snprintf(given, MAX_NAME_PART, "%s", display);
        return;
    }
    snprintf(given, MAX_NAME_PART, "%.*s", (int)(space - display), display);
    while (*space == ' ')
        ++space;
    snprintf(family, MAX_NAME_PART, "%s", space);
}

static void add_value(LassoSaml2Attribute *attr, const char *value)
{
    LassoSaml2AttributeValue *v = lasso_saml2_attribute_value_new();
    LassoMiscTextNode *text = lasso_misc_text_node_new_with_string(value);
    text->text_child = TRUE; /* without it lasso serialises the value as an element */
    v->any = g_list_append(v->any, text);
    attr->AttributeValue = g_list_append(attr->AttributeValue, v);
}

static LassoSaml2Attribute *new_attribute(const saml_sp_config_t *sp, size_t def)
{
    LassoSaml2Attribute *attr = LASSO_SAML2_ATTRIBUTE(lasso_saml2_attribute_new());
    const char *renamed = sp->renamed[def];
    attr->Name = g_strdup(renamed != NULL ? renamed : sp->uri_names ? attr_defs[def].uri : attr_defs[def].basic);
    /* a mapped name is a URI when it looks like one (urn:, http(s):), else a basic name */
    int uri = renamed != NULL ? strchr(renamed, ':') != NULL : sp->uri_names;
    attr->NameFormat = g_strdup(uri ? NAME_FORMAT_URI : NAME_FORMAT_BASIC);
    if (uri)
        attr->FriendlyName = g_strdup(attr_defs[def].basic);
    return attr;
}

/* Values of one attribute for this user; 0 values means the attribute is left out. */
static void attribute_values(const store_user_t *user, unsigned bit, LassoSaml2Attribute *attr)
{
    char given[MAX_NAME_PART], family[MAX_NAME_PART];
    split_name(user->display_name, given, family);
    switch (bit) {
    case SAML_ATTR_UID: add_value(attr, user->username); break;
    case SAML_ATTR_MAIL:
        if (user->email != NULL && *user->email != '\0')
            add_value(attr, user->email);
        break;
    case SAML_ATTR_DISPLAY_NAME:
        if (user->display_name != NULL && *user->display_name != '\0')
            add_value(attr, user->display_name);
        break;
    case SAML_ATTR_GIVEN_NAME:
        if (given[0] != '\0')
            add_value(attr, given);
        break;
    case SAML_ATTR_SN:
        if (family[0] != '\0')
            add_value(attr, family);
        break;
    case SAML_ATTR_GROUPS:
        for (size_t i = 0; i != user->num_groups; ++i)
            add_value(attr, user->groups[i]);
        break;
    }
}

static void set_subject(LassoSaml2Assertion *a, const saml_idp_t *idp, const saml_sp_config_t *sp, const char *name_id,
                        const char *format)
{
    LassoSaml2NameID *nid = a->Subject->NameID;
    g_free(nid->content);
    nid->content = g_strdup(name_id);
    g_free(nid->Format);
    nid->Format = g_strdup(format);
    g_free(nid->NameQualifier);
    g_free(nid->SPNameQualifier);
    nid->NameQualifier = nid->SPNameQualifier = NULL;
    if (strcmp(format, FORMAT_PERSISTENT) == 0 || strcmp(format, FORMAT_TRANSIENT) == 0) {
        nid->NameQualifier = g_strdup(idp->entity_id);
        nid->SPNameQualifier = g_strdup(sp->md.entity_id);
    }
}

int saml_assertion_fill(LassoLogin *login, const saml_idp_t *idp, const saml_sp_config_t *sp, const store_user_t *user,
                        const char *name_id, const char *format, char *released, size_t released_len)
{
    LassoNode *node = lasso_login_get_assertion(login);
    if (node == NULL || !LASSO_IS_SAML2_ASSERTION(node) || LASSO_SAML2_ASSERTION(node)->Subject == NULL ||
        LASSO_SAML2_ASSERTION(node)->Subject->NameID == NULL) {
        if (node != NULL)
            g_object_unref(node);
        return -1;
    }
    LassoSaml2Assertion *a = LASSO_SAML2_ASSERTION(node);
    set_subject(a, idp, sp, name_id, format);

    LassoSaml2AttributeStatement *st = LASSO_SAML2_ATTRIBUTE_STATEMENT(lasso_saml2_attribute_statement_new());
    size_t used = (size_t)snprintf(released, released_len, "[");
    for (size_t i = 0; i != sizeof(attr_defs) / sizeof(attr_defs[0]); ++i) {
        if ((sp->attributes & attr_defs[i].bit) == 0)
            continue;
        LassoSaml2Attribute *attr = new_attribute(sp, i);
        attribute_values(user, attr_defs[i].bit, attr);
        if (attr->AttributeValue == NULL) {
            g_object_unref(attr);
            continue;
        }
        st->Attribute = g_list_append(st->Attribute, attr);
        if (used < released_len)
            used += (size_t)snprintf(released + used, released_len - used, "%s\"%s\"", used > 1 ? "," : "",
                                     attr_defs[i].basic);
    }
    if (used < released_len)
        snprintf(released + used, released_len - used, "]");
    if (st->Attribute != NULL)
        a->AttributeStatement = g_list_append(a->AttributeStatement, st);
    else
        g_object_unref(st);
    if (sp->sign == SAML_SIGN_RESPONSE)
        a->sign_type = LASSO_SIGNATURE_TYPE_NONE;
    g_object_unref(node);
    return 0;
}

/* Classes a password session satisfies. */
static int password_class(const char *c)
{
    return strcmp(c, LASSO_SAML2_AUTHN_CONTEXT_PASSWORD_PROTECTED_TRANSPORT) == 0 ||
           strcmp(c, LASSO_SAML2_AUTHN_CONTEXT_PASSWORD) == 0 || strcmp(c, LASSO_SAML2_AUTHN_CONTEXT_UNSPECIFIED) == 0;
}

/* Classes a session with a second factor satisfies besides the password ones; the first is what we assert. */
static const char *const mfa_classes[] = {
    "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
    "http://schemas.microsoft.com/claims/multipleauthn",
    "https://refeds.org/profile/mfa",
    NULL,
};

static const char *mfa_class(const char *c)
{
    for (const char *const *m = mfa_classes; *m != NULL; ++m)
        if (strcmp(c, *m) == 0)
            return *m;
    return NULL;
}

const char *saml_authn_context(const store_session_t *session, const LassoSamlp2AuthnRequest *req, int *step_up)
{
    int mfa = (session->amr & STORE_AMR_OTP) != 0;
    const char *own = mfa ? mfa_classes[0] : LASSO_SAML2_AUTHN_CONTEXT_PASSWORD_PROTECTED_TRANSPORT;
    *step_up = 0;
    const LassoSamlp2RequestedAuthnContext *rac = req != NULL ? req->RequestedAuthnContext : NULL;
    if (rac == NULL || rac->AuthnContextClassRef == NULL)
        return own;
    /* "better": more than a password; otherwise ("exact", "minimum", absent) one of the listed classes, where a
     * second factor also satisfies the password classes */
    int better = rac->Comparison != NULL && strcmp(rac->Comparison, "better") == 0;
    const char *answer = NULL;
    for (GList *l = rac->AuthnContextClassRef; l != NULL && answer == NULL; l = l->next) {
        const char *c = l->data;
        if (c == NULL)
            continue;
        if (mfa_class(c) != NULL || better)
            answer = mfa ? (mfa_class(c) != NULL ? mfa_class(c) : own) : NULL;
        else if (password_class(c))
            answer = own;
        if (answer == NULL && !mfa && (mfa_class(c) != NULL || better))
            *step_up = 1; /* asked for a second factor this session lacks: the user proves one first */
    }
    if (answer != NULL) {
        *step_up = 0;
        return answer;
    }
    if (!mfa)
        *step_up = 1; /* only classes we do not know: a second factor is the most we can offer */
    return own;
}
