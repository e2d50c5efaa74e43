"""Session lifetime: idle and absolute timeouts (enforced on cached sessions too), logout, restarts."""
import time

from harness import CSRF_COOKIE, SESSION_COOKIE, cookie_attributes, form_value, set_cookie_for


def refused(p, cookie):
    """Both refusal forms: an API client gets 401, a browser a redirect to /login."""
    api = p.proxied("/x", cookie).status_code
    html = p.get("/x", cookies={SESSION_COOKIE: cookie}, headers={"Accept": "text/html"})
    return api == 401 and html.status_code == 302 and html.headers["location"].startswith("/login?return_to=")


def test_idle_session_expires(make_portier):
    p = make_portier(idle="2s", absolute="1h")
    cookie = p.setup("idler")
    assert p.proxied("/x", cookie).status_code == 200
    time.sleep(1.2)
    assert p.proxied("/x", cookie).status_code == 200  # activity within the idle window keeps it alive
    time.sleep(3.0)
    assert refused(p, cookie)


def test_absolute_lifetime_ends_an_active_session(make_portier):
    p = make_portier(idle="4s", absolute="4s")  # idle may not exceed absolute; requests every 1 s keep it fresh
    cookie = p.setup("worker")
    start = time.monotonic()
    codes = []
    while time.monotonic() - start < 6.5:
        codes.append((round(time.monotonic() - start, 2), p.proxied("/x", cookie).status_code))
        time.sleep(1.0)
    assert all(c == 200 for t, c in codes if t < 3.5), codes
    assert all(c == 401 for t, c in codes if t > 5.0), codes
    assert refused(p, cookie)


def test_logout_ends_the_session(portier):
    cookie = portier.setup("mia")
    assert portier.proxied("/x", cookie).status_code == 200
    page = portier.get("/logout", cookies={SESSION_COOKIE: cookie})
    assert page.status_code == 200
    csrf = form_value(page.text, "csrf")
    r = portier.post("/logout", {"csrf": csrf}, cookies={SESSION_COOKIE: cookie, CSRF_COOKIE: csrf})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    line = set_cookie_for(r, SESSION_COOKIE)
    assert line, "logout does not clear the session cookie"
    _, value, attrs = cookie_attributes(line)
    assert value == "" and (attrs.get("max-age") == "0" or "expires" in attrs), line
    assert refused(portier, cookie)
    audit = portier.pg.psql("SELECT actor || '|' || target FROM audit_events WHERE action = 'logout'",
                            dbname=portier.dbname).splitlines()
    assert "user:mia|user:mia" in audit


def test_logout_requires_post_with_csrf(portier):
    cookie = portier.setup("noah")
    r = portier.post("/logout", {}, cookies={SESSION_COOKIE: cookie})
    assert r.status_code == 403
    assert portier.get("/logout", cookies={SESSION_COOKIE: cookie}).status_code == 200  # GET only shows the form
    assert portier.proxied("/x", cookie).status_code == 200


def test_sessions_survive_a_restart(make_portier):
    p = make_portier()
    cookie = p.setup("restarter")
    assert p.proxied("/x", cookie).status_code == 200
    p.stop()
    p.start()
    assert p.proxied("/x", cookie).status_code == 200
