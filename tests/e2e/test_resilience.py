"""PostgreSQL going away and coming back, with its own private server (the shared one stays up): cached
sessions keep flowing, sign-ins answer 503 with Retry-After, and everything recovers without a restart."""
import os
import subprocess
import time

import pytest

import harness


@pytest.fixture(scope="module")
def own_pg():
    pg = harness.Postgres()
    yield pg
    pg.stop()


def pg_ctl(pg, action):
    subprocess.run([os.path.join(harness.ROOT, "scripts", "pg.sh"), action, os.path.join(pg.dir, "pg")],
                   check=True, capture_output=True)


def test_database_outage_and_recovery(own_pg, make_portier):
    p = make_portier(pg=own_pg)
    try:
        cookie = p.setup("steady")
        assert p.proxied("/x", cookie).status_code == 200  # cached now
        pg_ctl(own_pg, "stop")
        for _ in range(5):
            assert p.proxied("/x", cookie).status_code == 200
        r = p.login("steady")
        assert r.status_code == 503 and r.headers.get("retry-after")
        assert p.get("/readyz").status_code == 503
        pg_ctl(own_pg, "start")
        assert harness.wait_for(lambda: p.get("/readyz").status_code == 200, timeout=15)
        assert harness.wait_for(lambda: p.login("steady").status_code == 303, timeout=15)
        assert p.proxied("/x", cookie).status_code == 200
    finally:
        p.stop()
