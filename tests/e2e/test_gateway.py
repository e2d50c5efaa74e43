"""The authenticating proxy: login redirect or 401, group rules, identity headers (and the stripping of forged
ones over HTTP/1.1 and HTTP/2), X-Forwarded-For, the server header, and the session cookie never reaching the
backend."""
import json
import urllib.parse

import pytest

from harness import SESSION_COOKIE, backend_headers, curl

# Forged identity headers without '_': portier must accept the request and drop every one of them.
FORGED = {
    "X-Portier-User": "mallory",
    "x-portier-jwt-assertion": "forged.jwt.value",
    "X-Forwarded-User": "mallory",
    "Remote-User": "mallory",
    "X-Auth-Request-User": "mallory",
    "X-Portier-Email": "mallory@evil.com",
    "X-Portier-Groups": "admins",
    "X-Forwarded-For": "6.6.6.6",
}
# '_' variants: portier may drop them or refuse the request; the backend must never see their values.
UNDERSCORED = {"X_Portier_User": "mallory", "x_portier_jwt_assertion": "forged.jwt.value", "Remote_User": "mallory"}


@pytest.fixture(scope="module")
def alice(portier):
    return portier.setup("alice", groups=["staff", "ops"], email="alice@example.com", name="Alice Liddell")


def assert_only_portier_identity(h):
    assert h["x-portier-user"] == "alice"
    assert h["x-portier-email"] == "alice@example.com"
    assert sorted(h["x-portier-groups"].split(",")) == ["ops", "staff"]
    assert h["x-portier-jwt-assertion"].count(".") == 2 and "forged" not in h["x-portier-jwt-assertion"]
    for name in ("x-forwarded-user", "remote-user", "x-auth-request-user", "x_portier_user", "remote_user",
                 "x_portier_jwt_assertion"):
        assert name not in h, name
    seen = json.dumps(h)
    assert "mallory" not in seen and "6.6.6.6" not in seen and "forged.jwt" not in seen
    assert h["x-forwarded-for"] == "127.0.0.1"


def test_browser_without_session_is_sent_to_login(portier):
    r = portier.get("/app/page?x=1", headers={"Accept": "text/html,application/xhtml+xml"})
    assert r.status_code == 302
    location = r.headers["location"]
    assert location.startswith("/login?return_to=")
    assert urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["return_to"] == ["/app/page?x=1"]
    assert "?" not in location.split("return_to=", 1)[1]  # the original path is URL-encoded


def test_api_client_without_session_gets_401(portier):
    r = portier.get("/api/thing", headers={"Accept": "application/json"})
    assert r.status_code == 401
    assert portier.get("/api/thing").status_code == 401  # no Accept at all
    assert portier.proxied("/x", "not-a-real-session").status_code == 401


def test_user_outside_route_groups_is_forbidden(portier, alice):
    assert portier.proxied("/admin/panel", alice).status_code == 403
    page = portier.get("/admin/panel", cookies={SESSION_COOKIE: alice}, headers={"Accept": "text/html"})
    assert page.status_code == 403
    admin = portier.setup("root2", groups=["admins"])
    assert portier.proxied("/admin/panel", admin).status_code == 200


def test_backend_receives_identity_headers(portier, alice):
    h = backend_headers(portier.proxied("/x", alice))
    assert h["x-portier-user"] == "alice"
    assert h["x-portier-email"] == "alice@example.com"
    assert sorted(h["x-portier-groups"].split(",")) == ["ops", "staff"]
    assert h["x-portier-jwt-assertion"].count(".") == 2


def test_forged_identity_headers_are_stripped_http1(portier, alice):
    r = portier.proxied("/x.json", alice, headers=FORGED)
    assert_only_portier_identity(backend_headers(r))


def test_underscore_identity_headers_never_reach_backend_http1(portier, alice):
    r = portier.proxied("/x.json", alice, headers={**FORGED, **UNDERSCORED})
    if r.status_code == 200:
        assert_only_portier_identity(backend_headers(r))
    else:
        assert 400 <= r.status_code < 500, r.status_code


def http2_request(portier, cookie, headers):
    args = ["--http2", "-H", "Accept: application/json", "-H", "Cookie: %s=%s" % (SESSION_COOKIE, cookie),
            "-w", "\n%{http_version} %{http_code}"]
    for k, v in headers.items():
        args += ["-H", "%s: %s" % (k, v)]
    out = curl(*args, portier.url("/x.json"))
    body, tail = out.stdout.rsplit("\n", 1)
    version, code = tail.split()
    assert version == "2", out.stdout[-300:]
    return int(code), body


def test_forged_identity_headers_are_stripped_http2(portier, alice):
    code, body = http2_request(portier, alice, FORGED)
    assert code == 200, body[:300]
    assert_only_portier_identity(json.loads(body)["headers"])


def test_underscore_identity_headers_never_reach_backend_http2(portier, alice):
    code, body = http2_request(portier, alice, {**FORGED, **UNDERSCORED})
    if code == 200:
        assert_only_portier_identity(json.loads(body)["headers"])
    else:
        assert 400 <= code < 500, code


def test_client_x_forwarded_for_is_replaced(portier, alice):
    h = backend_headers(portier.proxied("/x", alice, headers={"X-Forwarded-For": "10.0.0.1, 6.6.6.6"}))
    assert h["x-forwarded-for"] == "127.0.0.1"


def test_session_cookie_is_not_forwarded(portier, alice):
    cookie = "theme=dark; %s=%s; lang=en" % (SESSION_COOKIE, alice)
    h = backend_headers(portier.get("/x.json", headers={"Cookie": cookie, "Accept": "application/json"}))
    assert alice not in json.dumps(h)
    assert SESSION_COOKIE + "=" not in h.get("cookie", "")


def test_server_header_does_not_advertise_h2o(portier, alice):
    for r in (portier.get("/login"), portier.get("/healthz"), portier.proxied("/x", alice), portier.get("/nope")):
        assert "h2o" not in r.headers.get("server", "").lower(), r.headers.get("server")
    out = curl("--http2", "-o", "/dev/null", "-D", "-", portier.url("/login"))
    assert "h2o" not in out.stdout.lower()


def test_full_path_and_query_reach_backend(portier, alice):
    r = portier.proxied("/some/deep/path.json?a=1&b=2", alice)
    assert json.loads(r.text)["path"] == "/some/deep/path.json?a=1&b=2"


def test_identity_headers_survive_a_revocation_during_proxying(portier):
    """Regression: the first request after /setup races with the NOTIFY of that setup, which evicts the new
    session from the cache while h2o's proxy is still writing the upstream request. The request must keep its
    own reference to the session (seen as a garbage X-Portier-User in the browser test; ASan: use after free)."""
    for i in range(25):
        user = "racer%02d" % i
        cookie = portier.setup(user)
        for _ in range(3):
            h = backend_headers(portier.proxied("/race.json", cookie))
            assert h["x-portier-user"] == user, h["x-portier-user"]
