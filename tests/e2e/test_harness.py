"""Self-test of the harness pieces that do not need portier: PostgreSQL, keys, echo backend, free ports.
When these fail, every other failure in the run is about the test environment, not about portier."""
import json
import os
import stat

import requests

import harness


def test_private_postgres_answers_and_creates_databases(pg):
    assert pg.conninfo.startswith("host=/tmp/") and "user=portier" in pg.conninfo
    name = pg.create_database()
    assert pg.psql("SELECT current_database()", dbname=name) == name


def test_keys_exist_and_are_private(keys):
    for path in (keys.cert, keys.key, keys.jwt):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode & 0o077 == 0, "%s has mode %o" % (path, mode)
    assert "BEGIN CERTIFICATE" in open(keys.cert).read()
    assert "PRIVATE KEY" in open(keys.jwt).read()


def test_echo_backend_reports_request_headers(backend):
    r = requests.get(backend.url + "/p?q=1", headers={"Accept": "application/json", "X-Test": "a"}, timeout=5)
    body = json.loads(r.text)
    assert body["method"] == "GET" and body["path"] == "/p?q=1" and body["headers"]["x-test"] == "a"
    page = requests.get(backend.url + "/", headers={"X-Portier-User": "u<1>"}, timeout=5).text
    assert "Signed in as <span id=\"user\">u&lt;1&gt;</span>" in page


def test_free_ports_differ():
    assert len({harness.free_port() for _ in range(5)}) >= 4


def test_portier_binary_exists():
    assert os.access(harness.BIN, os.X_OK), "PORTIER_BIN %s is not an executable (build portier first)" % harness.BIN
