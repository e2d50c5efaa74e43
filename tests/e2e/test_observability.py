"""Health, readiness, metrics, logs: and the proof that a cached session costs no database query."""
import json

import requests


def test_healthz_and_readyz(portier):
    assert portier.get("/healthz").status_code == 200
    r = portier.get("/readyz")
    assert r.status_code == 200 and r.text == "ready\n"


def test_readyz_reports_an_unreachable_database(make_portier, pg):
    p = make_portier()
    p.stop()
    with open(p.config) as f:
        text = f.read()
    with open(p.config, "w") as f:
        f.write(text.replace("dbname=" + p.dbname, "dbname=does_not_exist"))
    p.start()
    r = p.get("/readyz")
    assert r.status_code == 503
    assert p.get("/healthz").status_code == 200


def test_cached_session_makes_no_database_query(portier):
    cookie = portier.setup("cached")
    assert portier.proxied("/x", cookie).status_code == 200  # fills the cache
    before = portier.metrics()
    for _ in range(20):
        assert portier.proxied("/x", cookie).status_code == 200
    after = portier.metrics()
    assert after["portier_db_queries_total"] == before["portier_db_queries_total"]
    assert after["portier_session_cache_hits_total"] - before["portier_session_cache_hits_total"] >= 20


def test_metrics_exposition(portier):
    r = portier.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = portier.metrics()
    for name in ("portier_session_cache_hits_total", "portier_session_cache_misses_total",
                 "portier_db_queries_total", 'portier_logins_total{outcome="success"}',
                 'portier_logins_total{outcome="failure"}', 'portier_http_requests_total{route="app",code="2xx"}',
                 "portier_proxy_duration_seconds_count"):
        assert name in m, name


def test_logs_are_json_and_access_log_has_no_query_strings(portier):
    _, token = portier.invite("logcheck")
    portier.get("/setup?token=" + token)
    for line in portier.log_text().splitlines():
        if line.startswith("{"):
            json.loads(line)
        else:
            assert False, "non-JSON log line: " + line[:200]
    access = open(portier.access_log).read().splitlines()
    assert any('"path":"/setup"' in l for l in access)
    for line in access:
        entry = json.loads(line)
        assert "?" not in entry["path"]
