/* libFuzzer: the SCIM filter parser and the filter-to-SQL compiler never crash, leak or overflow; anything the
 * compiler accepts binds every value as a parameter (no value text inside the SQL), and the in-memory value
 * filter evaluator copes with every tree the parser builds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scim/internal.h"

#define MAX_PARAMS 96

static void compile(store_scim_type_t type, const store_filter_t *f)
{
    const char *params[MAX_PARAMS];
    char *sql = NULL, err[300];
    int n = 0;
    if (store_scim_compile(type, f, &sql, params, &n, MAX_PARAMS, err, sizeof(err)) != 0) {
        if (sql != NULL)
            abort();
        return;
    }
    for (int i = 0; i != n; ++i)
        if (params[i] == NULL || (strlen(params[i]) > 8 && strstr(sql, params[i]) != NULL))
            abort();
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
