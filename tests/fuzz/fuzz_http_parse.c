/* libFuzzer: the attacker-facing request parsers of the gateway: Cookie headers (lookup and the stripping of
 * portier's own cookies before proxying), form bodies, query strings, and identity-header recognition. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/proxy.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    h2o_iovec_t in = h2o_iovec_init(data, size);

    h2o_add_header(&req.pool, &req.headers, H2O_TOKEN_COOKIE, NULL, in.base, in.len);
    h2o_iovec_t c = gw_get_cookie(&req, "__Host-portier");
    if (c.base != NULL && strlen(c.base) != c.len && memchr(c.base, '\0', c.len) == NULL)
        abort();
    h2o_iovec_t stripped = strip_own_cookies(&req.pool, in, "__Host-portier");
    if (stripped.len > in.len * 2)
        abort();
    /* after stripping, the session cookie is gone */
    req.headers.size = 0;
    if (stripped.len != 0) {
        h2o_add_header(&req.pool, &req.headers, H2O_TOKEN_COOKIE, NULL, stripped.base, stripped.len);
        if (gw_get_cookie(&req, "__Host-portier").base != NULL)
            abort();
    }

    char *v = gw_form_get(&req, in, "password", 1024);
    if (v != NULL && strlen(v) > 1024)
        abort();
    req.path = in;
    req.query_at = size > 0 ? (size_t)(data[0] % (size + 1)) : SIZE_MAX;
    if (req.query_at >= size)
        req.query_at = SIZE_MAX;
    gw_query_get(&req, "return_to", 2048);

    gw_config_t conf = {.hdr_user = "X-Portier-User", .hdr_email = "X-Portier-Email",
                        .hdr_groups = "X-Portier-Groups", .hdr_jwt = "X-Portier-Jwt-Assertion"};
    is_identity_header(in, &conf);
    h2o_iovec_t hv = gw_header_safe_dup(h2o_strdup(&req.pool, in.base, in.len).base);
    for (size_t i = 0; i != hv.len; ++i)
        if ((unsigned char)hv.base[i] < 0x20 || hv.base[i] == 0x7f)
            abort();
    free(hv.base);
    h2o_mem_clear_pool(&req.pool);
    return 0;
}
