/*
 * The SCIM filter parser (RFC 7644 §3.4.2.2) and the PATCH path parser (§3.5.2), by recursive descent into a
 * store_filter_t tree. Input is bounded before parsing (SCIM_FILTER_MAX_LEN) and nesting (parentheses, `not`,
 * value paths) is bounded by SCIM_FILTER_MAX_DEPTH, so no input can exhaust the stack. Keywords and attribute
 * names are case-insensitive: names come out lower-case, with the core schema URN removed and an extension URN
 * kept as a prefix ("urn:...:enterprise:2.0:user:department"). Whether a name is an attribute that may be
 * filtered is not decided here: the store's allowlist decides (store/scim_query.c).
 *
 * Grammar (ABNF of the RFC, with the PATCH path's trailing sub-attribute):
 *   FILTER    = orExp ;  orExp = andExp *("or" andExp) ;  andExp = unary *("and" unary)
 *   unary     = "not" "(" FILTER ")" | "(" FILTER ")" | attrPath "[" valFilter "]" | attrExp
 *   attrExp   = attrPath "pr" | attrPath compareOp compValue
 *   compValue = "true" | "false" | "null" | number | string (JSON)
 *   PATH      = attrPath [ "[" valFilter "]" [ "." subAttr ] ]
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scim/scim.h"

#define MAX_NAME 128 /* one attribute path, URN included */

typedef struct st_parser_t {
    const char *s, *end;
    int depth;
    char *err;
    size_t errlen;
    int failed;
} parser_t;

__attribute__((format(printf, 2, 3))) static void fail(parser_t *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
}

void scim_filter_free(store_filter_t *f)
{
    while (f != NULL) {
        store_filter_t *next = f->right; /* chains of and/or grow to the left; walk right iteratively */
        scim_filter_free(f->left);
        free(f->attr);
        free(f->value);
        free(f);
        f = next;
    }
}

static store_filter_t *new_node(parser_t *p, store_filter_kind_t kind)
{
    store_filter_t *n = calloc(1, sizeof(*n));
    if (n == NULL)
        fail(p, "out of memory");
    else
        n->kind = kind;
    return n;
}

static void skip_ws(parser_t *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        ++p->s;
}

static int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '$' || c == ':' || c == '.';
}

/* A keyword (case-insensitive) followed by a non-name character. Consumes it when present. */
static int keyword(parser_t *p, const char *kw)
{
    size_t l = strlen(kw);
    skip_ws(p);
    if ((size_t)(p->end - p->s) < l || strncasecmp(p->s, kw, l) != 0)
        return 0;
    if (p->s + l < p->end && is_name_char(p->s[l]))
        return 0;
    p->s += l;
    return 1;
}

/* ATTRNAME = ALPHA *(nameChar) ; "$ref" is the one name starting with '$'. */
static int valid_name(const char *s, size_t len)
{
    if (len == 4 && strncmp(s, "$ref", 4) == 0)
        return 1;
    if (len == 0 || !isalpha((unsigned char)s[0]))
        return 0;
    for (size_t i = 1; i != len; ++i)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return 0;
    return 1;
}

int scim_attr_normalize(const char *in, size_t len, char *out, size_t outlen)
{
    char buf[MAX_NAME + 1];
    if (len == 0 || len > MAX_NAME || outlen <= len)
        return -1;
    for (size_t i = 0; i != len; ++i)
        buf[i] = (char)tolower((unsigned char)in[i]);
    buf[len] = '\0';
    const char *colon = strrchr(buf, ':'), *attr = colon != NULL ? colon + 1 : buf;
    if (colon != NULL) {
        size_t urn_len = (size_t)(colon - buf);
        if (!((urn_len == strlen(SCIM_URN_USER) && strncasecmp(buf, SCIM_URN_USER, urn_len) == 0) ||
              (urn_len == strlen(SCIM_URN_GROUP) && strncasecmp(buf, SCIM_URN_GROUP, urn_len) == 0) ||
              (urn_len == strlen(SCIM_URN_ENTERPRISE) && strncasecmp(buf, SCIM_URN_ENTERPRISE, urn_len) == 0)))
            return -1; /* a schema we do not have */
    }
    const char *dot = strchr(attr, '.');
    size_t name_len = dot != NULL ? (size_t)(dot - attr) : strlen(attr);
    if (!valid_name(attr, name_len) || (dot != NULL && (!valid_name(dot + 1, strlen(dot + 1)))))
        return -1;
    int core = colon == NULL || strncasecmp(buf, "urn:ietf:params:scim:schemas:core:", 34) == 0;
    snprintf(out, outlen, "%s", core ? attr : buf);
    return 0;
}

/* attrPath: returns a malloc'd normalised path, or NULL (error set). */
static char *attr_path(parser_t *p)
{
    skip_ws(p);
    const char *start = p->s;
    while (p->s < p->end && is_name_char(*p->s))
        ++p->s;
    char norm[MAX_NAME + 1];
    if (p->s == start) {
        fail(p, "expected an attribute name at offset %d", (int)(start - (p->end - (p->end - start))));
        return NULL;
    }
    if (scim_attr_normalize(start, (size_t)(p->s - start), norm, sizeof(norm)) != 0) {
        fail(p, "\"%.*s\" is not a valid attribute path", (int)((p->s - start) > 64 ? 64 : (p->s - start)), start);
        return NULL;
    }
    char *r = strdup(norm);
    if (r == NULL)
        fail(p, "out of memory");
    return r;
}

static int hex4(const char *s, unsigned *out)
{
    *out = 0;
    for (int i = 0; i != 4; ++i) {
        int c = (unsigned char)s[i], v = isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
        if (v < 0)
            return -1;
        *out = *out * 16 + (unsigned)v;
    }
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A JSON string (p->s at the opening quote). NUL characters are refused (they cannot be bound as text). */
static char *string_value(parser_t *p)
{
    const char *s = p->s + 1;
    char *out = malloc((size_t)(p->end - s) + 1), *o = out;
    if (out == NULL) {
        fail(p, "out of memory");
        return NULL;
    }
    while (s < p->end && *s != '"') {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20)
            goto bad;
        if (c != '\\') {
            *o++ = (char)c;
            ++s;
            continue;
        }
        if (++s == p->end)
            goto bad;
        switch (*s) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (p->end - s < 5 || hex4(s + 1, &cp) != 0 || cp == 0)
                goto bad;
            s += 4;
            if (cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
                if (p->end - s < 7 || s[1] != '\\' || s[2] != 'u' || hex4(s + 3, &lo) != 0 || lo < 0xdc00 ||
                    lo > 0xdfff)
                    goto bad;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                s += 6;
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                goto bad;
            }
            o += put_utf8(o, cp);
            break;
        }
        default: goto bad;
        }
        ++s;
    }
    if (s == p->end)
        goto bad;
    *o = '\0';
    p->s = s + 1;
    return out;
bad:
    free(out);
    fail(p, "invalid string value");
    return NULL;
}

/* JSON number: -?digits[.digits][e[+-]digits] */
static char *number(parser_t *p)
{
    const char *s = p->s;
    if (s < p->end && *s == '-')
        ++s;
    const char *digits = s;
    while (s < p->end && isdigit((unsigned char)*s))
        ++s;
    if (s == digits)
        goto bad;
    if (s < p->end && *s == '.') {
        const char *frac = ++s;
        while (s < p->end && isdigit((unsigned char)*s))
            ++s;
        if (s == frac)
            goto bad;
    }
    if (s < p->end && (*s == 'e' || *s == 'E')) {
        ++s;
        if (s < p->end && (*s == '+' || *s == '-'))
            ++s;
        const char *exp = s;
        while (s < p->end && isdigit((unsigned char)*s))
            ++s;
        if (s == exp)
            goto bad;
    }
    if (s < p->end && is_name_char(*s))
        goto bad;
    char *r = strndup(p->s, (size_t)(s - p->s));
    if (r == NULL)
        fail(p, "out of memory");
    p->s = s;
    return r;
bad:
    fail(p, "invalid value: expected a string, number, true, false or null");
    return NULL;
}

static const struct {
    const char *name;
    store_filter_op_t op;
} ops[] = {{"eq", STORE_OP_EQ}, {"ne", STORE_OP_NE}, {"co", STORE_OP_CO}, {"sw", STORE_OP_SW}, {"ew", STORE_OP_EW},
           {"gt", STORE_OP_GT}, {"ge", STORE_OP_GE}, {"lt", STORE_OP_LT}, {"le", STORE_OP_LE}, {"pr", STORE_OP_PR}};

static store_filter_t *or_exp(parser_t *p);

static int enter(parser_t *p)
{
    if (++p->depth > SCIM_FILTER_MAX_DEPTH) {
        fail(p, "the filter is nested deeper than %d levels", SCIM_FILTER_MAX_DEPTH);
        return -1;
    }
    return 0;
}

static int expect(parser_t *p, char c)
{
    skip_ws(p);
    if (p->s < p->end && *p->s == c) {
        ++p->s;
        return 0;
    }
    fail(p, "expected '%c' at offset %d", c, (int)(p->end - p->s));
    return -1;
}

static store_filter_t *comparison(parser_t *p, char *path)
{
    store_filter_t *n = new_node(p, STORE_FILTER_CMP);
    if (n == NULL) {
        free(path);
        return NULL;
    }
    n->attr = path;
    size_t i;
    for (i = 0; i != sizeof(ops) / sizeof(ops[0]) && !keyword(p, ops[i].name); ++i)
        ;
    if (i == sizeof(ops) / sizeof(ops[0])) {
        fail(p, "expected an operator (eq ne co sw ew gt ge lt le pr) after %s", path);
        goto bad;
    }
    n->op = ops[i].op;
    if (n->op == STORE_OP_PR)
        return n;
    skip_ws(p);
    if (p->s < p->end && *p->s == '"') {
        n->vtype = STORE_VAL_STRING;
        n->value = string_value(p);
    } else if (keyword(p, "true")) {
        n->vtype = STORE_VAL_TRUE;
    } else if (keyword(p, "false")) {
        n->vtype = STORE_VAL_FALSE;
    } else if (keyword(p, "null")) {
        n->vtype = STORE_VAL_NULL;
    } else {
        n->vtype = STORE_VAL_NUMBER;
        n->value = number(p);
    }
    if (!p->failed)
        return n;
bad:
    scim_filter_free(n);
    return NULL;
}

static store_filter_t *unary(parser_t *p)
{
    store_filter_t *n = NULL;
    if (enter(p) != 0)
        return NULL;
    if (keyword(p, "not")) {
        if ((n = new_node(p, STORE_FILTER_NOT)) != NULL && expect(p, '(') == 0 && (n->left = or_exp(p)) != NULL)
            expect(p, ')');
    } else {
        skip_ws(p);
        if (p->s < p->end && *p->s == '(') {
            ++p->s;
            if ((n = or_exp(p)) != NULL)
                expect(p, ')');
        } else {
            char *path = attr_path(p);
            skip_ws(p);
            if (path != NULL && p->s < p->end && *p->s == '[') {
                ++p->s;
                if (strchr(path + (strncmp(path, "urn:", 4) == 0 ? strlen(SCIM_URN_ENTERPRISE) : 0), '.') != NULL)
                    fail(p, "a value filter applies to a multi-valued attribute, not to %s", path);
                if ((n = new_node(p, STORE_FILTER_VALUE_PATH)) != NULL) {
                    n->attr = path;
                    path = NULL;
                    if ((n->left = or_exp(p)) != NULL)
                        expect(p, ']');
                }
                free(path);
            } else if (path != NULL) {
                n = comparison(p, path);
            }
        }
    }
    p->depth--;
    if (p->failed) {
        scim_filter_free(n);
        return NULL;
    }
    return n;
}

static store_filter_t *binary(parser_t *p, const char *kw, store_filter_kind_t kind,
                              store_filter_t *(*operand)(parser_t *))
{
    store_filter_t *left = operand(p);
    while (left != NULL && !p->failed && keyword(p, kw)) {
        store_filter_t *n = new_node(p, kind);
        if (n == NULL)
            break;
        n->left = left;
        left = n;
        n->right = operand(p);
    }
    if (p->failed) {
        scim_filter_free(left);
        return NULL;
    }
    return left;
}

static store_filter_t *and_exp(parser_t *p)
{
    return binary(p, "and", STORE_FILTER_AND, unary);
}

static store_filter_t *or_exp(parser_t *p)
{
    return binary(p, "or", STORE_FILTER_OR, and_exp);
}

int scim_filter_parse(const char *text, size_t len, store_filter_t **out, char *err, size_t errlen)
{
    parser_t p = {.s = text, .end = text + len, .err = err, .errlen = errlen};
    *out = NULL;
    if (len > SCIM_FILTER_MAX_LEN) {
        snprintf(err, errlen, "the filter is longer than %d bytes", SCIM_FILTER_MAX_LEN);
        return -EINVAL;
    }
    if (memchr(text, '\0', len) != NULL) {
        snprintf(err, errlen, "the filter contains a NUL character");
        return -EINVAL;
    }
    store_filter_t *f = or_exp(&p);
    skip_ws(&p);
    if (f != NULL && !p.failed && p.s != p.end)
        fail(&p, "unexpected text at offset %d", (int)(p.s - text));
    if (p.failed || f == NULL) {
        if (!p.failed)
            snprintf(err, errlen, "empty filter");
        scim_filter_free(f);
        return -EINVAL;
    }
    *out = f;
    return 0;
}

void scim_path_dispose(scim_path_t *path)
{
    free(path->attr);
    free(path->sub);
    scim_filter_free(path->filter);
    memset(path, 0, sizeof(*path));
}

int scim_path_parse(const char *text, size_t len, scim_path_t *out, char *err, size_t errlen)
{
    parser_t p = {.s = text, .end = text + len, .err = err, .errlen = errlen};
    memset(out, 0, sizeof(*out));
    if (len > SCIM_FILTER_MAX_LEN || memchr(text, '\0', len) != NULL) {
        snprintf(err, errlen, "the path is too long or contains a NUL character");
        return -EINVAL;
    }
    out->attr = attr_path(&p);
    skip_ws(&p);
    if (out->attr != NULL && p.s < p.end && *p.s == '[') {
        ++p.s;
        p.depth = 1;
        if ((out->filter = or_exp(&p)) != NULL && expect(&p, ']') == 0 && p.s < p.end && *p.s == '.') {
            const char *start = ++p.s;
            while (p.s < p.end && (isalnum((unsigned char)*p.s) || *p.s == '$' || *p.s == '-' || *p.s == '_'))
                ++p.s;
            if (!valid_name(start, (size_t)(p.s - start)))
                fail(&p, "invalid sub-attribute after the value filter");
            else if ((out->sub = strndup(start, (size_t)(p.s - start))) != NULL)
                for (char *c = out->sub; *c != '\0'; ++c)
                    *c = (char)tolower((unsigned char)*c);
        }
    } else if (out->attr != NULL) {
        /* "name.givenName": split the sub-attribute off (the URN of an extension has dots of its own) */
        char *colon = strrchr(out->attr, ':'), *dot = strchr(colon != NULL ? colon : out->attr, '.');
        if (dot != NULL) {
            *dot = '\0';
            out->sub = strdup(dot + 1);
        }
    }
    skip_ws(&p);
    if (!p.failed && p.s != p.end)
        fail(&p, "unexpected text in the path at offset %d", (int)(p.s - text));
    if (p.failed || out->attr == NULL) {
        if (!p.failed)
            snprintf(err, errlen, "empty path");
        scim_path_dispose(out);
        return -EINVAL;
    }
    return 0;
}
