/*
 * Template loading and rendering (see template.h for the syntax). Each template is compiled at load time into a
 * flat list of operations (text slice, escaped variable, section start with the index of its end, section end),
 * so that a malformed file is refused before the server starts and rendering is a single pass without parsing.
 * Variables are always HTML-escaped: there is no way for a template to emit a value raw.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/template.h"

#define CSS_FILE       "style.css"
#define HTML_SUFFIX    ".html"
#define INITIAL_OUTPUT 4096

enum { OP_TEXT, OP_VAR, OP_IF, OP_UNLESS, OP_END };

typedef struct st_op_t {
    int kind;
    size_t off, len; /* OP_TEXT: the text; otherwise the variable name (both slices of the source) */
    size_t end;      /* OP_IF / OP_UNLESS: index of the matching OP_END */
} op_t;

typedef struct st_page_t {
    char *file; /* "login.html" */
    char *src;
    size_t srclen;
    op_t *ops;
    size_t nops, capops;
} page_t;

struct st_gw_templates_t {
    page_t pages[GW_TPL_COUNT_MAX];
    size_t npages;
    char *css;
    size_t csslen;
};

typedef struct st_outbuf_t {
    char *base;
    size_t len, cap;
} outbuf_t;

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (n < 0)
        err[0] = '\0'; /* a truncated message (n >= errlen) is still NUL-terminated and useful */
}

/* Reads a whole regular file of at most GW_TPL_FILE_MAX bytes; the result is NUL-terminated. */
static int read_file(int dirfd, const char *dir, const char *file, char **out, size_t *outlen, char *err, size_t errlen)
{
    int ret = -1, fd;
    char *buf = NULL;
    size_t len = 0;
    struct stat st;

    if ((fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
        set_err(err, errlen, "%s/%s: %s", dir, file, strerror(errno));
        goto exit;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s/%s: not a regular file", dir, file);
        goto exit;
    }
    if (st.st_size > GW_TPL_FILE_MAX) {
        set_err(err, errlen, "%s/%s: larger than %d bytes", dir, file, GW_TPL_FILE_MAX);
        goto exit;
    }
    /* read up to one byte past the limit, in case the file grew after fstat */
    if ((buf = malloc(GW_TPL_FILE_MAX + 2)) == NULL) {
        set_err(err, errlen, "%s/%s: out of memory", dir, file);
        goto exit;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, GW_TPL_FILE_MAX + 1 - len);
        if (r == 0)
            break;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            set_err(err, errlen, "%s/%s: %s", dir, file, strerror(errno));
            goto exit;
        }
        len += (size_t)r;
        if (len > GW_TPL_FILE_MAX) {
            set_err(err, errlen, "%s/%s: larger than %d bytes", dir, file, GW_TPL_FILE_MAX);
            goto exit;
        }
    }
    buf[len] = '\0';
    char *shrunk = realloc(buf, len + 1);
    *out = shrunk != NULL ? shrunk : buf;
    *outlen = len;
    buf = NULL;
    ret = 0;
exit:
    free(buf);
    if (fd != -1)
        close(fd);
    return ret;
}

static size_t line_of(const page_t *page, size_t off)
{
    size_t line = 1;
    for (size_t i = 0; i < off; ++i)
        line += page->src[i] == '\n';
    return line;
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int push_op(page_t *page, int kind, size_t off, size_t len)
{
    if (page->nops == page->capops) {
        size_t cap = page->capops != 0 ? page->capops * 2 : 32;
        op_t *ops = realloc(page->ops, cap * sizeof(*ops));
        if (ops == NULL)
            return -1;
        page->ops = ops;
        page->capops = cap;
    }
    page->ops[page->nops++] = (op_t){kind, off, len, 0};
    return 0;
}

/* Compiles page->src into page->ops; on error names the file (with `dir`) and line. */
static int compile(page_t *page, const char *dir, char *err, size_t errlen)
{
    const char *src = page->src;
    size_t pos = 0, open[GW_TPL_DEPTH_MAX], depth = 0;

    while (pos < page->srclen) {
        const char *tag = memmem(src + pos, page->srclen - pos, "{{", 2);
        size_t start = tag != NULL ? (size_t)(tag - src) : page->srclen;
        if (start > pos && push_op(page, OP_TEXT, pos, start - pos) != 0)
            goto nomem;
        if (tag == NULL)
            break;

        /* {{ [#^/]? name }} with optional blanks around the name */
        size_t p = start + 2, name_off, name_len;
        int kind = OP_VAR;
        switch (src[p]) {
        case '#':
            kind = OP_IF;
            ++p;
            break;
        case '^':
            kind = OP_UNLESS;
            ++p;
            break;
        case '/':
            kind = OP_END;
            ++p;
            break;
        }
        while (src[p] == ' ')
            ++p;
        name_off = p;
        while (is_name_char(src[p]))
            ++p;
        name_len = p - name_off;
        while (src[p] == ' ')
            ++p;
        if (name_len == 0 || src[p] != '}' || src[p + 1] != '}') {
            set_err(err, errlen, "%s/%s:%zu: malformed tag (expected {{name}}, {{#name}}, {{^name}} or {{/name}})", dir,
                    page->file, line_of(page, start));
            return -1;
        }
        if (name_len > GW_TPL_NAME_MAX) {
            set_err(err, errlen, "%s/%s:%zu: variable name longer than %d characters", dir, page->file,
                    line_of(page, start), GW_TPL_NAME_MAX);
            return -1;
        }
        pos = p + 2; /* the source is NUL-terminated, so the look-ahead above never ran past it */

        if (kind == OP_END) {
            if (depth == 0) {
                set_err(err, errlen, "%s/%s:%zu: {{/%.*s}} without an open section", dir, page->file,
                        line_of(page, start), (int)name_len, src + name_off);
                return -1;
            }
            op_t *opener = &page->ops[open[depth - 1]];
            if (opener->len != name_len || memcmp(src + opener->off, src + name_off, name_len) != 0) {
                set_err(err, errlen, "%s/%s:%zu: {{/%.*s}} closes section %.*s opened at line %zu", dir, page->file,
                        line_of(page, start), (int)name_len, src + name_off, (int)opener->len, src + opener->off,
                        line_of(page, opener->off));
                return -1;
            }
            opener->end = page->nops;
            --depth;
        } else if (kind != OP_VAR) {
            if (depth == GW_TPL_DEPTH_MAX) {
                set_err(err, errlen, "%s/%s:%zu: sections nested deeper than %d", dir, page->file, line_of(page, start),
                        GW_TPL_DEPTH_MAX);
                return -1;
            }
            open[depth++] = page->nops;
        }
        if (push_op(page, kind, name_off, name_len) != 0)
            goto nomem;
    }
    if (depth != 0) {
        const op_t *opener = &page->ops[open[depth - 1]];
        set_err(err, errlen, "%s/%s:%zu: unclosed section %.*s", dir, page->file, line_of(page, opener->off),
                (int)opener->len, src + opener->off);
        return -1;
    }
    return 0;
nomem:
    set_err(err, errlen, "%s/%s: out of memory", dir, page->file);
    return -1;
}

static int has_html_suffix(const char *name)
{
    size_t n = strlen(name), s = sizeof(HTML_SUFFIX) - 1;
    return name[0] != '.' && n > s && strcmp(name + n - s, HTML_SUFFIX) == 0;
}

static int cmp_page(const void *a, const void *b)
{
    return strcmp(((const page_t *)a)->file, ((const page_t *)b)->file);
}

gw_templates_t *gw_templates_load(const char *dir, char *err, size_t errlen)
{
    gw_templates_t *t = NULL;
    DIR *d = NULL;
    struct dirent *ent;

    if (err != NULL && errlen != 0)
        err[0] = '\0';
    if ((t = calloc(1, sizeof(*t))) == NULL) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    if ((d = opendir(dir)) == NULL) {
        set_err(err, errlen, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    /* collect names first and sort them, so that loading (and the first error reported) is deterministic */
    errno = 0;
    while ((ent = readdir(d)) != NULL) {
        if (!has_html_suffix(ent->d_name))
            continue;
        if (t->npages == GW_TPL_COUNT_MAX) {
            set_err(err, errlen, "%s: more than %d *.html templates", dir, GW_TPL_COUNT_MAX);
            goto fail;
        }
        if ((t->pages[t->npages].file = strdup(ent->d_name)) == NULL) {
            set_err(err, errlen, "out of memory");
            goto fail;
        }
        ++t->npages;
        errno = 0;
    }
    if (errno != 0) {
        set_err(err, errlen, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    if (t->npages == 0) {
        set_err(err, errlen, "%s: no *.html templates", dir);
        goto fail;
    }
    qsort(t->pages, t->npages, sizeof(t->pages[0]), cmp_page);

    for (size_t i = 0; i < t->npages; ++i) {
        page_t *page = &t->pages[i];
        if (read_file(dirfd(d), dir, page->file, &page->src, &page->srclen, err, errlen) != 0 ||
            compile(page, dir, err, errlen) != 0)
            goto fail;
    }
    if (read_file(dirfd(d), dir, CSS_FILE, &t->css, &t->csslen, err, errlen) != 0)
        goto fail;
    closedir(d);
    return t;

fail:
    if (d != NULL)
        closedir(d);
    gw_templates_destroy(t);
    return NULL;
}

void gw_templates_destroy(gw_templates_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->npages; ++i) {
        free(t->pages[i].file);
        free(t->pages[i].src);
        free(t->pages[i].ops);
    }
    free(t->css);
    free(t);
}

const char *gw_templates_css(const gw_templates_t *t, size_t *len)
{
    if (t == NULL || t->css == NULL)
        return NULL;
    *len = t->csslen;
    return t->css;
}

static int reserve(outbuf_t *out, size_t extra)
{
    if (out->cap - out->len > extra) /* keeps room for the final NUL */
        return 0;
    size_t cap = out->cap != 0 ? out->cap : INITIAL_OUTPUT;
    while (cap - out->len <= extra) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *base = realloc(out->base, cap);
    if (base == NULL)
        return -1;
    out->base = base;
    out->cap = cap;
    return 0;
}

static int append(outbuf_t *out, const char *s, size_t n)
{
    if (reserve(out, n) != 0)
        return -1;
    memcpy(out->base + out->len, s, n);
    out->len += n;
    return 0;
}

static int append_escaped(outbuf_t *out, const char *s)
{
    const char *run = s;
    for (; *s != '\0'; ++s) {
        const char *entity;
        switch (*s) {
        case '&': entity = "&amp;"; break;
        case '<': entity = "&lt;"; break;
        case '>': entity = "&gt;"; break;
        case '"': entity = "&quot;"; break;
        case '\'': entity = "&#39;"; break;
        default: continue;
        }
        if (append(out, run, (size_t)(s - run)) != 0 || append(out, entity, strlen(entity)) != 0)
            return -1;
        run = s + 1;
    }
    return append(out, run, (size_t)(s - run));
}

static const char *lookup(const page_t *page, const op_t *op, const gw_tpl_var_t *vars, size_t nvars)
{
    for (size_t i = 0; i < nvars; ++i) {
        const char *name = vars[i].name;
        if (name != NULL && strncmp(name, page->src + op->off, op->len) == 0 && name[op->len] == '\0')
            return vars[i].value;
    }
    return NULL;
}

static const page_t *find_page(const gw_templates_t *t, const char *name)
{
    for (size_t i = 0; i < t->npages; ++i)
        if (strcmp(t->pages[i].file, name) == 0)
            return &t->pages[i];
    return NULL;
}

char *gw_template_render(const gw_templates_t *t, const char *name, const gw_tpl_var_t *vars, size_t nvars, size_t *len)
{
    const page_t *page;
    outbuf_t out = {NULL, 0, 0};

    if (t == NULL || name == NULL || (page = find_page(t, name)) == NULL)
        return NULL;
    if (reserve(&out, page->srclen) != 0)
        goto fail;
    for (size_t i = 0; i < page->nops; ++i) {
        const op_t *op = &page->ops[i];
        const char *value;
        switch (op->kind) {
        case OP_TEXT:
            if (append(&out, page->src + op->off, op->len) != 0)
                goto fail;
            break;
        case OP_VAR:
            if ((value = lookup(page, op, vars, nvars)) != NULL && append_escaped(&out, value) != 0)
                goto fail;
            break;
        case OP_IF:
        case OP_UNLESS: {
            value = lookup(page, op, vars, nvars);
            int present = value != NULL && value[0] != '\0';
            if (present != (op->kind == OP_IF))
                i = op->end; /* skip to the matching OP_END; the loop steps past it */
            break;
        }
        case OP_END: break;
        }
    }
    out.base[out.len] = '\0';
    *len = out.len;
    return out.base;
fail:
    free(out.base);
    return NULL;
}
