"""pytest fixtures: one PostgreSQL server, one key set and one echo backend per run; portier instances per test
module (or per test where isolation matters). At the end of the run every log portier wrote is searched for
every secret the tests used."""
import glob
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

INSTANCES = []


@pytest.fixture(scope="session")
def pg():
    server = harness.Postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def keys():
    return harness.Keys()


@pytest.fixture(scope="session")
def backend():
    b = harness.Backend()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def make_portier(pg, keys, backend):
    created = []

    def make(**kw):
        p = harness.Portier(pg, keys, backend, **kw)
        created.append(p)
        INSTANCES.append(p)
        return p

    yield make
    for p in created:
        p.stop()


@pytest.fixture(scope="module")
def portier(make_portier):
    return make_portier()


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs():
    yield
    leaks = []
    for p in INSTANCES:
        for path in [p.log_path, p.access_log]:
            if not os.path.exists(path):
                continue
            text = open(path, errors="replace").read()
            for s in harness.SECRETS:
                if s in text:
                    leaks.append("%s contains a secret (%s...)" % (path, s[:4]))
    assert not leaks, "\n".join(leaks)
