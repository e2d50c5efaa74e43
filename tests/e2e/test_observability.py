"""Health, readiness, metrics and logs: and the proof that a cached session costs no database query.
(That no log holds a secret, and that every stderr line of every instance is JSON, is checked at the end of the
run by conftest.py.)"""
import json

import harness


def test_healthz_and_readyz(portier):
    assert portier.get("/healthz").status_code == 200
    assert portier.get("/readyz").status_code == 200


def test_readyz_reports_an_unreachable_database(make_portier):
    p = make_portier()
    p.stop()
    with open(p.config) as f:
        text = f.read()
    with open(p.config, "w") as f:
        f.write(text.replace("dbname=" + p.dbname, "dbname=does_not_exist"))
    p.start()
    assert p.get("/readyz").status_code == 503
    assert p.get("/healthz").status_code == 200


def test_metrics_exposition(portier):
    r = portier.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = portier.metrics()
    for name in ("portier_session_cache_hits_total", "portier_session_cache_misses_total",
                 "portier_db_queries_total", 'portier_logins_total{outcome="success"}',
                 'portier_logins_total{outcome="failure"}'):
        assert name in m, name
    assert any(k == "portier_http_requests_total" or k.startswith("portier_http_requests_total{") for k in m), \
        sorted(m)


def test_login_outcomes_are_counted(portier):
    portier.setup("counted")
    before = portier.metrics()
    assert portier.login("counted").status_code == 303
    assert portier.login("counted", "wrong password for counted").status_code == 401
    after = portier.metrics()
    for outcome in ("success", "failure"):
        key = 'portier_logins_total{outcome="%s"}' % outcome
        assert after[key] - before[key] == 1, key


def test_cached_session_makes_no_database_query(portier):
    cookie = portier.setup("cached")
    assert portier.proxied("/x", cookie).status_code == 200  # fills the cache
    before = portier.metrics()
    for _ in range(20):
        assert portier.proxied("/x", cookie).status_code == 200
    after = portier.metrics()
    assert after["portier_db_queries_total"] == before["portier_db_queries_total"]
    assert after["portier_session_cache_hits_total"] - before["portier_session_cache_hits_total"] >= 20


def test_logs_are_json_and_access_log_has_no_query_strings(portier):
    _, token = portier.invite("logcheck")
    portier.get("/setup?token=" + token)
    assert harness.non_json_lines(portier.log_path) == []
    with open(portier.access_log) as f:
        access = f.read().splitlines()
    entries = [json.loads(line) for line in access]
    assert any(e.get("path") == "/setup" for e in entries)
    assert all("?" not in e.get("path", "") for e in entries)
    assert token not in "\n".join(access)
