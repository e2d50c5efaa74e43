"""Login, setup link and logout pages: CSRF, generic failures, return_to validation, cookies, headers."""
import re

import harness
from harness import PASSWORD, form_value

CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"


def strip_csrf(html):
    return re.sub(r'value="[A-Za-z0-9_-]{16,}"', 'value=""', html)


def test_login_page_has_form_csrf_cookie_and_security_headers(portier):
    r = portier.get("/login?return_to=/app/x")
    assert r.status_code == 200
    assert form_value(r.text, "return_to") == "/app/x"
    csrf = form_value(r.text, "csrf")
    assert r.cookies["__Host-portier-csrf"] == csrf
    set_cookie = r.headers["set-cookie"]
    for attr in ("Path=/", "Secure", "HttpOnly", "SameSite=Lax"):
        assert attr in set_cookie
    assert "domain" not in set_cookie.lower()
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["strict-transport-security"] == "max-age=31536000"
    assert "<script" not in r.text and "style=" not in r.text


def test_setup_link_sets_password_and_signs_in(portier):
    _, token = portier.invite("frank")
    page = portier.get("/setup?token=" + token)
    assert page.status_code == 200
    csrf = form_value(page.text, "csrf")
    cookies = {"__Host-portier-csrf": csrf}
    short = "fourteen chars"
    harness.register_secret(short)
    r = portier.post("/setup", {"token": token, "csrf": csrf, "password": short, "password_confirm": short}, cookies)
    assert r.status_code == 400 and "at least 15" in r.text
    r = portier.post("/setup", {"token": token, "csrf": csrf, "password": PASSWORD, "password_confirm": PASSWORD + "x"},
                     cookies)
    assert r.status_code == 400 and "do not match" in r.text
    r = portier.post("/setup", {"token": token, "csrf": csrf, "password": PASSWORD, "password_confirm": PASSWORD},
                     cookies)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = harness.register_secret(r.cookies["__Host-portier"])
    assert len(cookie) == 43  # 256 bits, base64url
    sc = r.headers["set-cookie"]
    assert sc.startswith("__Host-portier=") and all(a in sc for a in ("Path=/", "Secure", "HttpOnly", "SameSite=Lax"))
    assert portier.proxied("/whoami", cookie).status_code == 200
    # the link is single use
    assert portier.get("/setup?token=" + token).status_code == 410
    r = portier.post("/setup", {"token": token, "csrf": csrf, "password": PASSWORD, "password_confirm": PASSWORD},
                     cookies)
    assert r.status_code == 410


def test_unknown_setup_token_is_gone(portier):
    assert portier.get("/setup?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").status_code == 410
    assert portier.get("/setup").status_code == 410


def test_new_invitation_voids_the_old_link(portier):
    _, first = portier.invite("gina")
    _, second = portier.invite("gina")
    assert portier.get("/setup?token=" + first).status_code == 410
    assert portier.get("/setup?token=" + second).status_code == 200


def test_login_success_redirects_to_return_to_with_fresh_session(portier):
    old = portier.setup("henry")
    r = portier.login("henry", return_to="/app/page?x=1")
    assert r.status_code == 303 and r.headers["location"] == "/app/page?x=1"
    new = r.cookies["__Host-portier"]
    assert new != old
    assert portier.proxied("/app/page", new).status_code == 200


def test_login_failures_are_indistinguishable(portier):
    portier.setup("irene")
    portier.setup("jack")
    portier.cli("user", "disable", "jack")
    harness.register_secret("wrong password for irene")
    responses = [portier.login("irene", "wrong password for irene"), portier.login("nosuchuser", PASSWORD),
                 portier.login("jack", PASSWORD)]
    statuses = {r.status_code for r in responses}
    assert statuses == {401}
    bodies = {strip_csrf(r.text) for r in responses}
    assert len(bodies) == 1, "failure pages differ"
    assert "Sign-in failed" in responses[0].text
    header_sets = {tuple(sorted(k.lower() for k in r.headers if k.lower() not in ("date", "set-cookie")))
                   for r in responses}
    assert len(header_sets) == 1
    assert all("__Host-portier" not in r.cookies for r in responses)


def test_login_without_csrf_or_cross_site_is_refused(portier):
    portier.setup("kate")
    r = portier.post("/login", {"username": "kate", "password": PASSWORD})
    assert r.status_code == 403
    page = portier.get("/login")
    csrf = form_value(page.text, "csrf")
    r = portier.post("/login", {"username": "kate", "password": PASSWORD, "csrf": csrf + "x"},
                     cookies={"__Host-portier-csrf": csrf})
    assert r.status_code == 403
    r = portier.post("/login", {"username": "kate", "password": PASSWORD, "csrf": csrf},
                     cookies={"__Host-portier-csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert "__Host-portier" not in r.cookies


def test_return_to_validator_refuses_open_redirects(portier):
    portier.setup("liam")
    bad = ["https://evil.com", "//evil.com", "/\\evil.com", "https:%5c%5cevil.com", "http:www.evil.com",
           "javascript:alert(1)", "///evil", "/" + "a" * 3000, "https://127.0.0.1.evil.com/"]
    for value in bad:
        r = portier.login("liam", return_to=value)
        assert r.status_code == 303, value
        assert r.headers["location"] == "/", (value, r.headers["location"])
        page = portier.get("/login", params={"return_to": value})
        assert form_value(page.text, "return_to") == "/"
    r = portier.login("liam", return_to=portier.base + "/app/own?y=2")
    assert r.headers["location"] == "/app/own?y=2"


def test_logout_ends_the_session(portier):
    cookie = portier.setup("mia")
    assert portier.proxied("/x", cookie).status_code == 200
    page = portier.get("/logout", cookies={"__Host-portier": cookie})
    assert page.status_code == 200
    csrf = form_value(page.text, "csrf")
    r = portier.post("/logout", {"csrf": csrf}, cookies={"__Host-portier": cookie, "__Host-portier-csrf": csrf})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert "Max-Age=0" in r.headers["set-cookie"]
    assert portier.proxied("/x", cookie).status_code == 401
    html = portier.get("/x", cookies={"__Host-portier": cookie}, headers={"Accept": "text/html"})
    assert html.status_code == 302 and html.headers["location"].startswith("/login?return_to=")


def test_logout_requires_post_with_csrf(portier):
    cookie = portier.setup("noah")
    r = portier.post("/logout", {}, cookies={"__Host-portier": cookie})
    assert r.status_code == 403
    assert portier.proxied("/x", cookie).status_code == 200


def test_successes_and_failures_are_audited(portier, pg):
    portier.setup("olga")
    portier.login("olga")
    harness.register_secret("not olgas password")
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
