/* libFuzzer: the SCIM filter parser and the filter-to-SQL compiler never crash, leak or overflow; anything the
 * compiler accepts binds every value as a parameter: the SQL text does not change when the string values do
 * (a value that merely looks like a piece of an allowlisted SQL constant, e.g. "arams:scim:", is no finding),
 * and the in-memory value filter evaluator copes with every tree the parser builds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scim/internal.h"

#define MAX_PARAMS 96

/* The string values of the tree, to swap for markers. */
static void collect(store_filter_t *f, char ***slots, size_t *n, size_t max)
{
    if (f == NULL)
        return;
    if (f->kind == STORE_FILTER_CMP && f->vtype == STORE_VAL_STRING && f->value != NULL && *n < max)
        slots[(*n)++] = &f->value;
    collect(f->left, slots, n, max);
    collect(f->right, slots, n, max);
}

static void compile(store_scim_type_t type, store_filter_t *f)
{
    const char *params[MAX_PARAMS];
    char *sql = NULL, *again = NULL, err[300];
    int n = 0, m = 0;
    if (store_scim_compile(type, f, &sql, params, &n, MAX_PARAMS, err, sizeof(err)) != 0) {
        if (sql != NULL)
            abort();
        return;
    }
    for (int i = 0; i != n; ++i)
        if (params[i] == NULL)
            abort();
    /* other string values, same tree: the same SQL (when the compiler still accepts the values' types) */
    char **slots[MAX_PARAMS], *saved[MAX_PARAMS], marker[MAX_PARAMS][8];
    size_t k = 0;
    collect(f, slots, &k, MAX_PARAMS);
    for (size_t i = 0; i != k; ++i) {
        saved[i] = *slots[i];
        snprintf(marker[i], sizeof(marker[i]), "\x01%zu", i);
        *slots[i] = marker[i];
    }
    if (store_scim_compile(type, f, &again, params, &m, MAX_PARAMS, err, sizeof(err)) == 0 &&
        (m != n || strcmp(sql, again) != 0))
        abort();
    for (size_t i = 0; i != k; ++i)
        *slots[i] = saved[i];
    free(again);
    free(sql);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    store_filter_t *f = NULL;
    char err[300];
    if (scim_filter_parse((const char *)data, size, &f, err, sizeof(err)) != 0) {
        if (f != NULL || err[0] == '\0')
            abort();
        return 0;
    }
    compile(STORE_SCIM_USERS, f);
    compile(STORE_SCIM_GROUPS, f);
    json_t *el = json_pack("{s:s, s:s, s:b}", "type", "work", "value", "a@b.example", "primary", 1);
    (void)scim_filter_match(f, el);
    json_decref(el);
    scim_filter_free(f);
    return 0;
}
