"""Revocation across instances: two portier processes share one database; a disable or a logout on one side
(or at the CLI) is refused on the other within a second, although both had the session cached."""
import time

import pytest

import harness
from harness import form_value


@pytest.fixture(scope="module")
def pair(make_portier):
    one = make_portier()
    two = make_portier(share_db=one)
    return one, two


POLL = 0.05  # seconds between probes
GIVE_UP = 5.0


def refused_within(instance, cookie, start):
    """Seconds from `start` (monotonic) until `instance` refuses the cookie, polling every 50 ms; None = never."""
    while time.monotonic() - start < GIVE_UP:
        if instance.proxied("/x", cookie).status_code == 401:
            return time.monotonic() - start
        time.sleep(POLL)
    return None


def warm(one, two, cookie):
    for p in (one, two):
        assert p.proxied("/x", cookie).status_code == 200
        assert p.proxied("/x", cookie).status_code == 200  # second one is a cache hit


def test_disable_is_refused_on_the_other_instance_within_one_second(pair):
    one, two = pair
    cookie = one.setup("alice")
    warm(one, two, cookie)
    hits = two.metrics()["portier_session_cache_hits_total"]
    assert hits >= 1
    start = time.monotonic()  # measured from the start of the CLI command (process start-up included)
    one.cli("user", "disable", "alice")
    elapsed = refused_within(two, cookie, start)
    harness.measure("user disable (CLI) -> cookie refused on instance 2", elapsed)
    assert elapsed is not None and elapsed < 1.0
    assert one.proxied("/x", cookie).status_code == 401
    # re-enabling does not bring the old session back
    one.cli("user", "enable", "alice")
    assert two.proxied("/x", cookie).status_code == 401


def test_logout_on_one_instance_is_refused_on_the_other_within_one_second(pair):
    one, two = pair
    cookie = one.setup("bob")
    warm(one, two, cookie)
    page = one.get("/logout", cookies={"__Host-portier": cookie})
    csrf = form_value(page.text, "csrf")
    start = time.monotonic()
    r = one.post("/logout", {"csrf": csrf}, cookies={"__Host-portier": cookie, "__Host-portier-csrf": csrf})
    assert r.status_code == 303
    elapsed = refused_within(two, cookie, start)
    harness.measure("POST /logout on instance 1 -> cookie refused on instance 2", elapsed)
    assert elapsed is not None and elapsed < 1.0


def test_password_reset_by_link_ends_sessions_everywhere(pair):
    one, two = pair
    cookie = one.setup("carol")
    warm(one, two, cookie)
    new_cookie = one.setup("carol")  # an admin re-issues the link; carol sets a new password
    start = time.monotonic()
    elapsed = refused_within(two, cookie, start)
    harness.measure("password set by new link -> old cookie refused on instance 2", elapsed)
    assert elapsed is not None and elapsed < 1.0
    assert two.proxied("/x", new_cookie).status_code == 200


def test_listener_reconnect_flushes_the_cache(pair, pg):
    one, two = pair
    cookie = one.setup("dora")
    warm(one, two, cookie)
    before = two.metrics()["portier_session_cache_flushes_total"]
    pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%' AND datname = '%s'"
            % two.dbname, dbname="portier")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and two.metrics()["portier_session_cache_flushes_total"] == before:
        time.sleep(0.1)
    assert two.metrics()["portier_session_cache_flushes_total"] > before
    assert two.proxied("/x", cookie).status_code == 200  # refilled from the database
