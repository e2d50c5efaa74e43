/* libFuzzer: the SCIM PATCH path parser and the PATCH engine. The input is split at the first newline into a
 * path and a JSON value; one operation of each kind (add, replace, remove) is applied to a sample user, then
 * the result is normalised as process.c does. Nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scim/internal.h"

static const char *const resource =
    "{\"userName\":\"a\",\"active\":true,\"name\":{\"givenName\":\"G\"},\"emails\":[{\"value\":\"a@x\",\"type\":"
    "\"work\"},{\"value\":\"b@y\",\"type\":\"home\",\"primary\":true}],\"" SCIM_URN_ENTERPRISE
    "\":{\"department\":\"D\",\"manager\":{\"value\":\"1\"}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data, *nl = memchr(text, '\n', size);
    size_t path_len = nl != NULL ? (size_t)(nl - text) : size;
    scim_path_t path;
    char err[300];
    if (scim_path_parse(text, path_len, &path, err, sizeof(err)) == 0)
        scim_path_dispose(&path);
    json_t *value = nl != NULL ? json_loadb(nl + 1, size - path_len - 1, JSON_DECODE_ANY, NULL) : json_string("v");
    char *p = strndup(text, path_len);
    static const char *const ops[] = {"add", "replace", "remove", "Replace"};
    for (size_t i = 0; p != NULL && i != sizeof(ops) / sizeof(ops[0]); ++i) {
        json_t *res = json_loads(resource, 0, NULL);
        json_t *op = json_pack("[{s:s, s:s}]", "op", ops[i], "path", p);
        if (op == NULL) { /* not UTF-8: the same without a path */
            op = json_pack("[{s:s}]", "op", ops[i]);
        }
        if (value != NULL)
            json_object_set(json_array_get(op, 0), "value", value);
        scim_error_t e;
        if (scim_patch_user(res, op, &e) == 0) {
            json_t *n = scim_normalize(&scim_schema_user, res, err, sizeof(err));
            json_decref(n);
        } else if (e.status != 400 || e.scim_type == NULL) {
            abort();
        }
        json_decref(op);
        json_decref(res);
    }
    free(p);
    json_decref(value);
    return 0;
}
