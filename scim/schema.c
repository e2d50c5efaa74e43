/*
 * The schemas portier serves (RFC 7643 §4 core User and Group, §4.3 Enterprise User) as tables, and what is
 * derived from them: normalisation of client input (case-insensitive names, type checks, lenient coercions
 * real clients need) and the discovery documents (/Schemas, /ResourceTypes, /ServiceProviderConfig).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "scim/internal.h"

#define END                                                                                                            \
    {                                                                                                                  \
        NULL, 0, 0, NULL, NULL                                                                                         \
    }

static const scim_attr_t name_subs[] = {{"formatted", SCIM_T_STRING, 0, NULL, "The full name."},
                                        {"familyName", SCIM_T_STRING, 0, NULL, "The family name."},
                                        {"givenName", SCIM_T_STRING, 0, NULL, "The given name."},
                                        {"middleName", SCIM_T_STRING, 0, NULL, "The middle name(s)."},
                                        {"honorificPrefix", SCIM_T_STRING, 0, NULL, "The honorific prefix."},
                                        {"honorificSuffix", SCIM_T_STRING, 0, NULL, "The honorific suffix."},
                                        END};
static const scim_attr_t plural_subs[] = {{"value", SCIM_T_STRING, 0, NULL, "The value."},
                                          {"display", SCIM_T_STRING, 0, NULL, "A human-readable name."},
                                          {"type", SCIM_T_STRING, 0, NULL, "A label, e.g. work or home."},
                                          {"primary", SCIM_T_BOOLEAN, 0, NULL, "The primary value."},
                                          END};
static const scim_attr_t address_subs[] = {{"formatted", SCIM_T_STRING, 0, NULL, "The full address."},
                                           {"streetAddress", SCIM_T_STRING, 0, NULL, "Street."},
                                           {"locality", SCIM_T_STRING, 0, NULL, "City or locality."},
                                           {"region", SCIM_T_STRING, 0, NULL, "State or region."},
                                           {"postalCode", SCIM_T_STRING, 0, NULL, "Postal code."},
                                           {"country", SCIM_T_STRING, 0, NULL, "ISO 3166-1 alpha-2 country."},
                                           {"type", SCIM_T_STRING, 0, NULL, "work, home or other."},
                                           {"primary", SCIM_T_BOOLEAN, 0, NULL, "The primary address."},
                                           END};
static const scim_attr_t group_ref_subs[] = {
    {"value", SCIM_T_STRING, SCIM_F_READ_ONLY, NULL, "The id of the group."},
    {"$ref", SCIM_T_REFERENCE, SCIM_F_READ_ONLY, NULL, "The URI of the group."},
    {"display", SCIM_T_STRING, SCIM_F_READ_ONLY, NULL, "The group's displayName."},
    {"type", SCIM_T_STRING, SCIM_F_READ_ONLY, NULL, "direct"},
    END};

static const scim_attr_t user_attrs[] = {
    {"userName", SCIM_T_STRING, SCIM_F_REQUIRED | SCIM_F_UNIQUE, NULL, "Unique identifier for sign-in."},
    {"name", SCIM_T_COMPLEX, 0, name_subs, "The components of the user's name."},
    {"displayName", SCIM_T_STRING, 0, NULL, "The name to display."},
    {"nickName", SCIM_T_STRING, 0, NULL, "The casual name."},
    {"profileUrl", SCIM_T_REFERENCE, 0, NULL, "A URI of the user's profile."},
    {"title", SCIM_T_STRING, 0, NULL, "The user's title."},
    {"userType", SCIM_T_STRING, 0, NULL, "The relationship to the organisation."},
    {"preferredLanguage", SCIM_T_STRING, 0, NULL, "Preferred language (RFC 7231 Accept-Language)."},
    {"locale", SCIM_T_STRING, 0, NULL, "Default location for localisation."},
    {"timezone", SCIM_T_STRING, 0, NULL, "Time zone (IANA name)."},
    {"active", SCIM_T_BOOLEAN, 0, NULL, "Whether the user may sign in; false ends every session at once."},
    {"password", SCIM_T_STRING, SCIM_F_WRITE_ONLY, NULL, "Write-only; accepted only when enabled."},
    {"emails", SCIM_T_COMPLEX, SCIM_F_MULTI, plural_subs, "Email addresses."},
    {"phoneNumbers", SCIM_T_COMPLEX, SCIM_F_MULTI, plural_subs, "Phone numbers."},
    {"ims", SCIM_T_COMPLEX, SCIM_F_MULTI, plural_subs, "Instant messaging addresses."},
    {"photos", SCIM_T_COMPLEX, SCIM_F_MULTI, plural_subs, "URLs of photos."},
    {"addresses", SCIM_T_COMPLEX, SCIM_F_MULTI, address_subs, "Physical mailing addresses."},
    {"groups", SCIM_T_COMPLEX, SCIM_F_MULTI | SCIM_F_READ_ONLY, group_ref_subs, "Groups (change them on Group)."},
    {"entitlements", SCIM_T_COMPLEX, SCIM_F_MULTI, plural_subs, "Entitlements."},
    {"roles", SCIM_T_COMPLEX, SCIM_F_MULTI, plural_subs, "Roles."},
    {"x509Certificates", SCIM_T_COMPLEX, SCIM_F_MULTI, plural_subs, "Certificates (base64 DER)."},
    {"externalId", SCIM_T_STRING, SCIM_F_CASE_EXACT, NULL, "The client's identifier."},
    END};

static const scim_attr_t manager_subs[] = {
    {"value", SCIM_T_STRING, 0, NULL, "The id of the manager."},
    {"$ref", SCIM_T_REFERENCE, 0, NULL, "The URI of the manager."},
    {"displayName", SCIM_T_STRING, SCIM_F_READ_ONLY, NULL, "The manager's displayName."},
    END};
static const scim_attr_t enterprise_attrs[] = {{"employeeNumber", SCIM_T_STRING, 0, NULL, "Employee number."},
                                               {"costCenter", SCIM_T_STRING, 0, NULL, "Cost centre."},
                                               {"organization", SCIM_T_STRING, 0, NULL, "Organisation."},
                                               {"division", SCIM_T_STRING, 0, NULL, "Division."},
                                               {"department", SCIM_T_STRING, 0, NULL, "Department."},
                                               {"manager", SCIM_T_COMPLEX, 0, manager_subs, "The user's manager."},
                                               END};

static const scim_attr_t member_subs[] = {{"value", SCIM_T_STRING, SCIM_F_IMMUTABLE, NULL, "The id of the user."},
                                          {"$ref", SCIM_T_REFERENCE, SCIM_F_IMMUTABLE, NULL, "The URI of the user."},
                                          {"display", SCIM_T_STRING, SCIM_F_READ_ONLY, NULL, "The member's name."},
                                          {"type", SCIM_T_STRING, SCIM_F_IMMUTABLE, NULL, "User"},
                                          END};
static const scim_attr_t group_attrs[] = {
    {"displayName", SCIM_T_STRING, SCIM_F_REQUIRED | SCIM_F_UNIQUE, NULL, "The group's name (unique)."},
    {"members", SCIM_T_COMPLEX, SCIM_F_MULTI, member_subs, "Members (users)."},
    {"externalId", SCIM_T_STRING, SCIM_F_CASE_EXACT, NULL, "The client's identifier."},
    END};

const scim_schema_t scim_schema_user = {SCIM_URN_USER, "User", "User Account", user_attrs};
const scim_schema_t scim_schema_enterprise = {SCIM_URN_ENTERPRISE, "EnterpriseUser", "Enterprise User",
                                              enterprise_attrs};
const scim_schema_t scim_schema_group = {SCIM_URN_GROUP, "Group", "Group", group_attrs};

const scim_attr_t *scim_attr_find(const scim_attr_t *attrs, const char *name, size_t len)
{
    for (; attrs != NULL && attrs->name != NULL; ++attrs)
        if (strlen(attrs->name) == len && strncasecmp(attrs->name, name, len) == 0)
            return attrs;
    return NULL;
}

/* ---- normalisation ---- */

static json_t *scalar(const scim_attr_t *a, json_t *v, char *err, size_t errlen)
{
    if (a->type == SCIM_T_BOOLEAN) {
        if (json_is_boolean(v))
            return json_incref(v);
        /* Entra ID sends booleans as "True"/"False" */
        if (json_is_string(v) && strcasecmp(json_string_value(v), "true") == 0)
            return json_true();
        if (json_is_string(v) && strcasecmp(json_string_value(v), "false") == 0)
            return json_false();
        snprintf(err, errlen, "%s must be a boolean", a->name);
        return NULL;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        /* control characters: never (they end up in logs, headers and mail), except line breaks in the
         * "formatted" texts of addresses and names */
        int multiline = strcmp(a->name, "formatted") == 0;
        for (const char *c = s; *c != '\0'; ++c)
            if (((unsigned char)*c < 0x20 && !(multiline && (*c == '\n' || *c == '\r' || *c == '\t'))) || *c == 0x7f) {
                snprintf(err, errlen, "%s contains a control character", a->name);
                return NULL;
            }
        if (json_string_length(v) != strlen(s)) {
            snprintf(err, errlen, "%s contains a NUL character", a->name);
            return NULL;
        }
        return json_incref(v);
    }
    if (json_is_integer(v) || json_is_real(v)) { /* employeeNumber as a number: keep its text */
        char buf[64];
        if (json_is_integer(v))
            snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        else
            snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        return json_string(buf);
    }
    snprintf(err, errlen, "%s must be a string", a->name);
    return NULL;
}

static json_t *value_of(const scim_attr_t *a, json_t *v, int in_multi, char *err, size_t errlen);

static json_t *complex(const scim_attr_t *a, json_t *v, char *err, size_t errlen)
{
    /* Entra ID sends the enterprise manager as a bare id: {"value": id} is meant */
    if ((json_is_string(v) || json_is_integer(v)) && scim_attr_find(a->subs, "value", 5) != NULL) {
        json_t *wrapped = json_pack("{s:O}", "value", v), *out = complex(a, wrapped, err, errlen);
        json_decref(wrapped);
        return out;
    }
    if (!json_is_object(v)) {
        snprintf(err, errlen, "%s must be an object", a->name);
        return NULL;
    }
    json_t *out = json_object();
    const char *k;
    json_t *sv;
    json_object_foreach(v, k, sv)
    {
        const scim_attr_t *s = scim_attr_find(a->subs, k, strlen(k));
        if (s == NULL || json_is_null(sv))
            continue; /* unknown sub-attributes are ignored; null means unassigned */
        json_t *n = value_of(s, sv, 0, err, errlen);
        if (n == NULL) {
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, s->name, n);
    }
    return out;
}

static json_t *value_of(const scim_attr_t *a, json_t *v, int in_multi, char *err, size_t errlen)
{
    if ((a->flags & SCIM_F_MULTI) && !in_multi) {
        json_t *arr = json_is_array(v) ? json_incref(v) : json_pack("[O]", v), *out = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e)
        {
            json_t *n = json_is_null(e) ? NULL : value_of(a, e, 1, err, errlen);
            if (n == NULL && !json_is_null(e)) {
                json_decref(arr);
                json_decref(out);
                return NULL;
            }
            if (n != NULL)
                json_array_append_new(out, n);
        }
        json_decref(arr);
        return out;
    }
    if (a->type == SCIM_T_COMPLEX) {
        if (in_multi && !json_is_object(v)) { /* "emails": ["a@b"]: a bare value */
            json_t *s = scalar(&(scim_attr_t){a->name, SCIM_T_STRING, 0, NULL, NULL}, v, err, errlen);
            return s != NULL ? json_pack("{s:o}", "value", s) : NULL;
        }
        return complex(a, v, err, errlen);
    }
    return scalar(a, v, err, errlen);
}

/* Copies the attributes of `in` described by attrs into out. */
static int normalize_into(const scim_attr_t *attrs, json_t *in, json_t *out, char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v)
    {
        const scim_attr_t *a = scim_attr_find(attrs, k, strlen(k));
        if (a == NULL || (a->flags & SCIM_F_READ_ONLY) || json_is_null(v))
            continue;
        json_t *n = value_of(a, v, 0, err, errlen);
        if (n == NULL)
            return -1;
        json_object_set_new(out, a->name, n);
    }
    return 0;
}

json_t *scim_normalize(const scim_schema_t *schema, json_t *in, char *err, size_t errlen)
{
    if (!json_is_object(in)) {
        snprintf(err, errlen, "the resource must be a JSON object");
        return NULL;
    }
    json_t *out = json_object();
    if (normalize_into(schema->attrs, in, out, err, errlen) != 0)
        goto bad;
    if (schema == &scim_schema_user) {
        const char *k;
        json_t *v;
        json_object_foreach(in, k, v)
        {
            if (strcasecmp(k, SCIM_URN_ENTERPRISE) != 0 || json_is_null(v))
                continue;
            if (!json_is_object(v)) {
                snprintf(err, errlen, "%s must be an object", SCIM_URN_ENTERPRISE);
                goto bad;
            }
            json_t *ent = json_object();
            json_object_set_new(out, SCIM_URN_ENTERPRISE, ent);
            if (normalize_into(enterprise_attrs, v, ent, err, errlen) != 0)
                goto bad;
            if (json_object_size(ent) == 0)
                json_object_del(out, SCIM_URN_ENTERPRISE);
        }
    }
    return out;
bad:
    json_decref(out);
    return NULL;
}

/* ---- discovery ---- */

static const char *type_name(int t)
{
    switch (t) {
    case SCIM_T_BOOLEAN: return "boolean";
    case SCIM_T_COMPLEX: return "complex";
    case SCIM_T_REFERENCE: return "reference";
    case SCIM_T_DATETIME: return "dateTime";
    case SCIM_T_BINARY: return "binary";
    case SCIM_T_INTEGER: return "integer";
    default: return "string";
    }
}

static json_t *attr_json(const scim_attr_t *a)
{
    const char *mut = (a->flags & SCIM_F_READ_ONLY)    ? "readOnly"
                      : (a->flags & SCIM_F_WRITE_ONLY) ? "writeOnly"
                      : (a->flags & SCIM_F_IMMUTABLE)  ? "immutable"
                                                       : "readWrite";
    const char *ret = (a->flags & SCIM_F_WRITE_ONLY) ? "never" : "default";
    json_t *o =
        json_pack("{s:s, s:s, s:b, s:s, s:b, s:b, s:s, s:s, s:s}", "name", a->name, "type", type_name(a->type),
                  "multiValued", (a->flags & SCIM_F_MULTI) != 0, "description", a->description, "required",
                  (a->flags & SCIM_F_REQUIRED) != 0, "caseExact", (a->flags & SCIM_F_CASE_EXACT) != 0, "mutability",
                  mut, "returned", ret, "uniqueness", (a->flags & SCIM_F_UNIQUE) ? "server" : "none");
    if (a->type == SCIM_T_REFERENCE)
        json_object_set_new(o, "referenceTypes", json_pack("[s, s]", "external", "uri"));
    if (a->subs != NULL) {
        json_t *subs = json_array();
        for (const scim_attr_t *s = a->subs; s->name != NULL; ++s)
            json_array_append_new(subs, attr_json(s));
        json_object_set_new(o, "subAttributes", subs);
    }
    return o;
}

json_t *scim_schema_json(const scim_schema_t *s, const char *base_url)
{
    json_t *attrs = json_array();
    for (const scim_attr_t *a = s->attrs; a->name != NULL; ++a)
        json_array_append_new(attrs, attr_json(a));
    char location[512];
    snprintf(location, sizeof(location), "%s/Schemas/%s", base_url, s->urn);
    return json_pack("{s:[s], s:s, s:s, s:s, s:o, s:{s:s, s:s}}", "schemas",
                     "urn:ietf:params:scim:schemas:core:2.0:Schema", "id", s->urn, "name", s->name, "description",
                     s->description, "attributes", attrs, "meta", "resourceType", "Schema", "location", location);
}

static json_t *list_of(json_t *resources)
{
    size_t n = json_array_size(resources);
    return json_pack("{s:[s], s:I, s:I, s:I, s:o}", "schemas", SCIM_URN_LIST, "totalResults", (json_int_t)n,
                     "itemsPerPage", (json_int_t)n, "startIndex", (json_int_t)1, "Resources", resources);
}

json_t *scim_schemas_json(const char *base_url)
{
    return list_of(json_pack("[o, o, o]", scim_schema_json(&scim_schema_user, base_url),
                             scim_schema_json(&scim_schema_enterprise, base_url),
                             scim_schema_json(&scim_schema_group, base_url)));
}

json_t *scim_resource_type_json(int users, const char *base_url)
{
    char location[512];
    snprintf(location, sizeof(location), "%s/ResourceTypes/%s", base_url, users ? "User" : "Group");
    json_t *o = json_pack("{s:[s], s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "schemas",
                          "urn:ietf:params:scim:schemas:core:2.0:ResourceType", "id", users ? "User" : "Group", "name",
                          users ? "User" : "Group", "endpoint", users ? "/Users" : "/Groups", "description",
                          users ? "User Account" : "Group", "schema", users ? SCIM_URN_USER : SCIM_URN_GROUP, "meta",
                          "resourceType", "ResourceType", "location", location);
    if (users)
        json_object_set_new(o, "schemaExtensions",
                            json_pack("[{s:s, s:b}]", "schema", SCIM_URN_ENTERPRISE, "required", 0));
    return o;
}

json_t *scim_resource_types_json(const char *base_url)
{
    return list_of(json_pack("[o, o]", scim_resource_type_json(1, base_url), scim_resource_type_json(0, base_url)));
}

json_t *scim_service_provider_config_json(const char *base_url)
{
    char location[512];
    snprintf(location, sizeof(location), "%s/ServiceProviderConfig", base_url);
    return json_pack("{s:[s], s:{s:b}, s:{s:b, s:i, s:i}, s:{s:b, s:i}, s:{s:b}, s:{s:b}, s:{s:b}, "
                     "s:[{s:s, s:s, s:s, s:b}], s:{s:s, s:s}}",
                     "schemas", "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig", "patch", "supported", 1,
                     "bulk", "supported", 1, "maxOperations", SCIM_BULK_MAX_OPS, "maxPayloadSize", SCIM_BULK_MAX_BYTES,
                     "filter", "supported", 1, "maxResults", SCIM_MAX_RESULTS, "changePassword", "supported", 0, "sort",
                     "supported", 1, "etag", "supported", 1, "authenticationSchemes", "type", "oauthbearertoken",
                     "name", "Bearer token", "description",
                     "A token made with `portier scim-token create NAME`, sent as Authorization: Bearer", "primary", 1,
                     "meta", "resourceType", "ServiceProviderConfig", "location", location);
}
