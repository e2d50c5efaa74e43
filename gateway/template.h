/*
 * HTML page templates: every *.html file of templates_dir (and style.css) is read and compiled once at start-up;
 * each request renders one page from a list of variables. Independent of h2o: the renderer returns malloc'd
 * memory that the caller copies into the request pool (or frees).
 *
 * Syntax (a deliberately tiny Mustache subset):
 *   {{name}}                 the variable, HTML-escaped (& < > " ' ); missing or NULL renders as empty
 *   {{#name}}...{{/name}}    the inner part only when the variable is present and non-empty
 *   {{^name}}...{{/name}}    the inner part only when the variable is absent or empty
 * Sections of different names nest. There is no unescaped form. Names are [A-Za-z0-9_], at most
 * GW_TPL_NAME_MAX characters. Anything else after "{{" (an unknown tag, an unclosed or mismatched section)
 * rejects the template at load, with "file:line: reason" in the error text.
 */
#ifndef PORTIER_GATEWAY_TEMPLATE_H
#define PORTIER_GATEWAY_TEMPLATE_H

#include <stddef.h>

#define GW_TPL_FILE_MAX  (256 * 1024) /* bytes per template file (and style.css) */
#define GW_TPL_COUNT_MAX 64           /* *.html files per directory */
#define GW_TPL_NAME_MAX  64           /* characters of a variable name */
#define GW_TPL_DEPTH_MAX 16           /* nested sections */

/* Templates: HTML files loaded once at start-up from templates_dir; rendered per request into a pool. */
typedef struct st_gw_templates_t gw_templates_t;
typedef struct st_gw_tpl_var_t {
    const char *name;
    const char *value;
} gw_tpl_var_t;

/* Loads every *.html (max 256 KiB each) and style.css (required) of `dir`. Returns NULL with a message in
   `err` on failure. The result is read-only afterwards and may be shared between threads. */
gw_templates_t *gw_templates_load(const char *dir, char *err, size_t errlen) __attribute__((warn_unused_result));
void gw_templates_destroy(gw_templates_t *t);
/* Renders template `name` ("login.html"). Returns a malloc'd buffer (caller frees) and its length, or NULL when the
   template is unknown (or memory ran out). The buffer is also NUL-terminated (not counted in *len). When a
   name appears twice in `vars`, the first entry wins. */
char *gw_template_render(const gw_templates_t *t, const char *name, const gw_tpl_var_t *vars, size_t nvars,
                         size_t *len);
/* style.css, borrowed from `t` (valid until gw_templates_destroy). */
const char *gw_templates_css(const gw_templates_t *t, size_t *len);

#endif
