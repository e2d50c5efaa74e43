"""The authenticating proxy: redirects and 401s, group rules, identity-header stripping over HTTP/1.1 and
HTTP/2, X-Forwarded-For, server header, and the session cookie never reaching the backend."""
import json

import pytest

from harness import backend_headers, curl

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


@pytest.fixture(scope="module")
def alice(portier):
    return portier.setup("alice", groups=["staff"], email="alice@example.com")


def test_browser_without_session_is_sent_to_login(portier):
    r = portier.get("/app/page?x=1", headers={"Accept": "text/html,application/xhtml+xml"})
    assert r.status_code == 302
    assert r.headers["location"] == "/login?return_to=/app/page%3Fx%3D1"


def test_api_client_without_session_gets_401(portier):
    r = portier.get("/api/thing", headers={"Accept": "application/json"})
    assert r.status_code == 401 and r.json() == {"error": "unauthenticated"}
    assert portier.proxied("/x", "not-a-real-session").status_code == 401


def test_user_outside_route_groups_is_forbidden(portier, alice):
    assert portier.proxied("/admin/panel", alice).status_code == 403
    page = portier.get("/admin/panel", cookies={"__Host-portier": alice}, headers={"Accept": "text/html"})
    assert page.status_code == 403 and "Access denied" in page.text
    admin = portier.setup("root2", groups=["admins"])
    assert portier.proxied("/admin/panel", admin).status_code == 200


def assert_only_portier_identity(h, user="alice"):
    assert h["x-portier-user"] == user
    assert h["x-portier-email"] == "alice@example.com"
    assert h["x-portier-groups"] == "staff"
    assert h["x-portier-jwt-assertion"].count(".") == 2 and h["x-portier-jwt-assertion"] != "forged.jwt.value"
    for name in ("x-forwarded-user", "remote-user", "x-auth-request-user", "x_portier_user", "x-portier-user_"):
        assert name not in h, name
    assert "mallory" not in json.dumps(h) and "6.6.6.6" not in json.dumps(h)
    assert h["x-forwarded-for"] == "127.0.0.1"


def test_forged_identity_headers_are_stripped_http1(portier, alice):
    r = portier.proxied("/x.json", alice, headers=FORGED)
    assert_only_portier_identity(backend_headers(r))


def test_forged_identity_headers_are_stripped_http2(portier, alice):
    args = ["--http2", "-H", "Accept: application/json", "-H", "Cookie: __Host-portier=" + alice,
            "-w", "\n%{http_version}"]
    for k, v in list(FORGED.items()) + [("X_Portier_User", "mallory"), ("x_portier_jwt_assertion", "x.y.z")]:
        args += ["-H", "%s: %s" % (k, v)]
    out = curl(*args, portier.url("/x.json"))
    body, version = out.stdout.rsplit("\n", 1)
    assert version == "2"
    assert_only_portier_identity(json.loads(body)["headers"])


def test_underscore_header_variants_never_reach_backend(portier, alice):
    out = curl("--http1.1", "-H", "Accept: application/json", "-H", "Cookie: __Host-portier=" + alice,
               "-H", "X_Portier_User: mallory", "-H", "remote_user: mallory", "-H", "X_Auth_User: mallory",
               portier.url("/x.json"))
    h = json.loads(out.stdout)["headers"]
    assert "mallory" not in json.dumps(h)
    assert h["x-portier-user"] == "alice"


def test_session_cookie_is_not_forwarded(portier, alice):
    h = backend_headers(portier.get("/x.json", headers={"Cookie": "theme=dark; __Host-portier=%s; lang=en" % alice,
                                                        "Accept": "application/json"}))
    assert alice not in json.dumps(h)
    assert h["cookie"] == "theme=dark; lang=en"


def test_server_header_does_not_advertise_h2o(portier, alice):
    for r in (portier.get("/login"), portier.proxied("/x", alice)):
        assert "h2o" not in r.headers.get("server", "").lower()


def test_full_path_and_query_reach_backend(portier, alice):
    r = portier.proxied("/some/deep/path.json?a=1&b=2", alice)
    assert json.loads(r.text)["path"] == "/some/deep/path.json?a=1&b=2"
