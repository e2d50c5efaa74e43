"""Login and setup-link pages: forms, CSRF, security headers, session cookie attributes, generic failures and
the return_to validator."""
import re

import harness
from harness import CSRF_COOKIE, PASSWORD, SESSION_COOKIE, cookie_attributes, form_value, set_cookie_for

CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"


def strip_csrf(html):
    return re.sub(r'value="[A-Za-z0-9_-]{16,}"', 'value=""', html)


def assert_security_headers(r):
    h = r.headers
    assert h.get("content-security-policy") == CSP, (r.url, h.get("content-security-policy"))
    assert h.get("x-content-type-options") == "nosniff", r.url
    assert h.get("referrer-policy") == "no-referrer", r.url
    assert h.get("cache-control") == "no-store", r.url
    assert h.get("strict-transport-security") == "max-age=31536000", r.url


def assert_session_cookie(response):
    """Set-Cookie: __Host-portier=<value>; Path=/; Secure; HttpOnly; SameSite=Lax (no Domain); returns the value."""
    line = set_cookie_for(response, SESSION_COOKIE)
    assert line, harness.set_cookies(response)
    name, value, attrs = cookie_attributes(line)
    assert value and attrs.get("path") == "/", line
    assert "secure" in attrs and "httponly" in attrs and attrs.get("samesite", "").lower() == "lax", line
    assert "domain" not in attrs, line
    return harness.register_secret(value)


def setup_form(portier, token):
    page = portier.get("/setup?token=" + token)
    assert page.status_code == 200, page.status_code
    for field in ("token", "csrf"):
        form_value(page.text, field)
    for field in ("password", "password_confirm"):
        assert 'name="%s"' % field in page.text, field
    return form_value(page.text, "csrf")


def test_login_page_has_form_csrf_cookie_and_security_headers(portier):
    r = portier.get("/login?return_to=/app/x")
    assert r.status_code == 200
    assert form_value(r.text, "return_to") == "/app/x"
    csrf = form_value(r.text, "csrf")
    assert 'name="username"' in r.text and 'name="password"' in r.text
    line = set_cookie_for(r, CSRF_COOKIE)
    assert line, harness.set_cookies(r)
    name, value, attrs = cookie_attributes(line)
    assert value == csrf
    assert attrs.get("path") == "/" and "secure" in attrs and "domain" not in attrs, line  # __Host- rules
    assert_security_headers(r)
    assert "<script" not in r.text and "style=" not in r.text  # nothing the CSP would block


def test_security_headers_on_every_portier_page(portier):
    _, token = portier.invite("sechead")
    pages = [portier.get("/login"), portier.get("/setup?token=" + token), portier.get("/setup?token=bogus"),
             portier.login("sechead", "wrong wrong wrong wrong")]
    cookie = portier.setup("sechead2")
    pages.append(portier.get("/logout", cookies={SESSION_COOKIE: cookie}))
    for r in pages:
        assert_security_headers(r)


def test_setup_link_sets_password_and_signs_in(portier):
    _, token = portier.invite("frank")
    csrf = setup_form(portier, token)
    cookies = {CSRF_COOKIE: csrf}
    short = harness.register_secret("fourteen chars")
    r = portier.post("/setup", {"token": token, "csrf": csrf, "password": short, "password_confirm": short}, cookies)
    assert r.status_code == 400 and "15" in r.text
    assert form_value(r.text, "token") == token  # the form again, the token still usable
    r = portier.post("/setup", {"token": token, "csrf": csrf, "password": PASSWORD, "password_confirm": PASSWORD + "x"},
                     cookies)
    assert r.status_code == 400
    form_value(r.text, "csrf")
    assert portier.get("/setup?token=" + token).status_code == 200
    r = portier.post("/setup", {"token": token, "csrf": csrf, "password": PASSWORD, "password_confirm": PASSWORD},
                     cookies)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = assert_session_cookie(r)
    assert len(cookie) >= 43  # 256 bits, base64url
    assert portier.proxied("/whoami", cookie).status_code == 200


def test_used_setup_link_is_gone(portier):
    _, token = portier.invite("fiona")
    csrf = setup_form(portier, token)
    data = {"token": token, "csrf": csrf, "password": PASSWORD, "password_confirm": PASSWORD}
    r = portier.post("/setup", data, {CSRF_COOKIE: csrf})
    assert r.status_code == 303
    harness.register_secret(r.cookies.get(SESSION_COOKIE))
    assert portier.get("/setup?token=" + token).status_code == 410
    assert portier.post("/setup", data, {CSRF_COOKIE: csrf}).status_code == 410


def test_unknown_setup_token_is_gone(portier):
    assert portier.get("/setup?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").status_code == 410
    assert portier.get("/setup").status_code == 410


def test_expired_setup_token_is_gone(portier, pg):
    _, token = portier.invite("expired")
    assert portier.get("/setup?token=" + token).status_code == 200
    pg.psql("UPDATE one_time_tokens SET expires_at = now() - interval '1 second' "
            "WHERE user_id = (SELECT id FROM users WHERE username = 'expired')", dbname=portier.dbname)
    assert portier.get("/setup?token=" + token).status_code == 410


def test_new_invitation_voids_the_old_link(portier):
    _, first = portier.invite("gina")
    _, second = portier.invite("gina")
    assert portier.get("/setup?token=" + first).status_code == 410
    assert portier.get("/setup?token=" + second).status_code == 200


def test_login_success_sets_session_cookie_and_redirects_home(portier):
    portier.setup("hanna")
    r = portier.login("hanna")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = assert_session_cookie(r)
    assert portier.proxied("/x", cookie).status_code == 200


def test_login_success_redirects_to_return_to_with_fresh_session(portier):
    old = portier.setup("henry")
    r = portier.login("henry", return_to="/app/page?x=1")
    assert r.status_code == 303 and r.headers["location"] == "/app/page?x=1"
    new = assert_session_cookie(r)
    assert new != old
    assert portier.proxied("/app/page", new).status_code == 200


def test_login_failures_are_indistinguishable(portier):
    portier.setup("irene")
    portier.setup("jack")
    portier.cli("user", "disable", "jack")
    responses = [portier.login("irene", "wrong password for irene"), portier.login("nosuchuser", PASSWORD),
                 portier.login("jack", PASSWORD)]
    assert [r.status_code for r in responses] == [401, 401, 401]
    bodies = {strip_csrf(r.text) for r in responses}
    assert len(bodies) == 1, "failure pages differ"
    form_value(responses[0].text, "csrf")  # the login page again
    header_sets = {tuple(sorted(k.lower() for k in r.headers if k.lower() not in ("date", "set-cookie")))
                   for r in responses}
    assert len(header_sets) == 1
    assert all(set_cookie_for(r, SESSION_COOKIE) is None for r in responses)


def test_login_without_or_with_wrong_csrf_is_refused(portier):
    portier.setup("kate")
    r = portier.post("/login", {"username": "kate", "password": PASSWORD})
    assert r.status_code == 403
    page = portier.get("/login")
    csrf = form_value(page.text, "csrf")
    r = portier.post("/login", {"username": "kate", "password": PASSWORD}, cookies={CSRF_COOKIE: csrf})
    assert r.status_code == 403
    r = portier.post("/login", {"username": "kate", "password": PASSWORD, "csrf": csrf})
    assert r.status_code == 403
    r = portier.post("/login", {"username": "kate", "password": PASSWORD, "csrf": csrf + "x"},
                     cookies={CSRF_COOKIE: csrf})
    assert r.status_code == 403
    assert set_cookie_for(r, SESSION_COOKIE) is None


def test_cross_site_login_post_is_refused(portier):
    portier.setup("karl")
    page = portier.get("/login")
    csrf = form_value(page.text, "csrf")
    r = portier.post("/login", {"username": "karl", "password": PASSWORD, "csrf": csrf},
                     cookies={CSRF_COOKIE: csrf}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert set_cookie_for(r, SESSION_COOKIE) is None


def test_return_to_validator_refuses_open_redirects(portier):
    portier.setup("liam")
    bad = ["https://evil.com", "//evil.com", "/\\evil.com", "https:%5c%5cevil.com", "http:www.evil.com",
           "javascript:alert(1)", "///evil", "/" + "a" * 3000, "https://127.0.0.1.evil.com/", "\\\\evil.com"]
    for value in bad:
        r = portier.login("liam", return_to=value)
        assert r.status_code == 303, value[:50]
        assert r.headers["location"] == "/", (value[:50], r.headers["location"])
        page = portier.get("/login", params={"return_to": value})
        assert form_value(page.text, "return_to") == "/", value[:50]


def test_return_to_keeps_good_paths_and_own_origin(portier):
    portier.setup("lena")
    r = portier.login("lena", return_to="/app/page?x=1")
    assert r.headers["location"] == "/app/page?x=1"
    r = portier.login("lena", return_to=portier.base + "/app/own?y=2")
    assert r.headers["location"] in ("/app/own?y=2", portier.base + "/app/own?y=2")


def test_successes_and_failures_are_audited(portier, pg):
    portier.setup("olga")
    portier.login("olga")
    portier.login("olga", "not olgas password")
    rows = pg.psql("SELECT action || '|' || outcome FROM audit_events WHERE target = 'user:olga' ORDER BY id",
                   dbname=portier.dbname).splitlines()
    assert "password.set|success" in rows
    assert "login.success|success" in rows
    assert "login.failure|failure" in rows
    macs = pg.psql("SELECT count(*) FROM audit_events WHERE mac IS NULL", dbname=portier.dbname)
    assert macs == "0"
    broken = pg.psql("SELECT count(*) FROM audit_events a JOIN audit_events b ON b.id = (SELECT max(id) FROM "
                     "audit_events WHERE id < a.id) WHERE a.prev_mac IS DISTINCT FROM b.mac", dbname=portier.dbname)
    assert broken == "0"
