"""Session lifetime: idle and absolute timeouts, enforced from the cache as well as from the database."""
import time


def test_idle_session_expires(make_portier):
    p = make_portier(idle="2s", absolute="1h")
    cookie = p.setup("idler")
    assert p.proxied("/x", cookie).status_code == 200
    time.sleep(1.2)
    assert p.proxied("/x", cookie).status_code == 200  # activity keeps it alive
    time.sleep(3.2)
    assert p.proxied("/x", cookie).status_code == 401


def test_absolute_lifetime_ends_an_active_session(make_portier):
    p = make_portier(idle="3s", absolute="4s")
    cookie = p.setup("worker")
    start = time.monotonic()
    codes = []
    while time.monotonic() - start < 6.5:
        codes.append((round(time.monotonic() - start, 1), p.proxied("/x", cookie).status_code))
        time.sleep(0.5)
    assert all(c == 200 for t, c in codes if t < 3.5), codes
    assert all(c == 401 for t, c in codes if t > 4.6), codes


def test_sessions_survive_a_restart(make_portier):
    p = make_portier()
    cookie = p.setup("restarter")
    assert p.proxied("/x", cookie).status_code == 200
    p.stop()
    p.start()
    assert p.proxied("/x", cookie).status_code == 200
