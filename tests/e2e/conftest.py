"""pytest fixtures: one PostgreSQL server, one key set and one echo backend per run; one portier instance per
test module (`portier`), more through `make_portier` where a test needs its own configuration or isolation.

At the end of the run every log portier wrote (stderr, stdout, access log) is searched for every secret the
tests used (passwords, setup tokens, session cookies), and every stderr line must be a JSON object; either
finding fails the run. With PORTIER_ARTIFACTS set, all logs are copied there first."""
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

INSTANCES = []


def pytest_report_header(config):
    return "portier binary: %s" % harness.BIN


def pytest_terminal_summary(terminalreporter):
    if harness.MEASUREMENTS:
        terminalreporter.section("portier measurements")
        for label, seconds in harness.MEASUREMENTS:
            terminalreporter.write_line("%-64s %s" % (label, "never" if seconds is None else "%.3f s" % seconds))


@pytest.fixture(scope="session")
def pg():
    server = harness.Postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def keys():
    k = harness.Keys()
    yield k
    k.cleanup()


@pytest.fixture(scope="session")
def backend():
    b = harness.Backend()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def make_portier(pg, keys, backend):
    """make_portier(**kw) -> a started harness.Portier (pg=... for another PostgreSQL); every instance is stopped
    (gracefully) at session end and its logs are checked."""
    created = []

    def make(**kw):
        kw.setdefault("keys", keys)
        p = harness.Portier(kw.pop("pg", pg), kw.pop("keys"), backend, **kw)
        created.append(p)
        INSTANCES.append(p)
        return p

    yield make
    failures = []
    for p in created:
        try:
            p.stop()
        except AssertionError as e:
            failures.append("%s: %s" % (p.base, e))
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def portier(make_portier):
    """One instance (own database) shared by the tests of a module."""
    p = make_portier()
    yield p
    p.stop()


@pytest.fixture(scope="session", autouse=True)
def logs_hold_no_secrets_and_are_json():
    """Runs after everything else has been torn down (autouse session fixture: set up first, torn down last)."""
    yield
    problems = []
    artifacts = os.environ.get("PORTIER_ARTIFACTS")
    for p in INSTANCES:
        for path in p.log_files():
            if artifacts:
                dest = os.path.join(artifacts, "logs", os.path.basename(p.dir))
                os.makedirs(dest, exist_ok=True)
                shutil.copy(path, dest)
            with open(path, errors="replace") as f:
                text = f.read()
            for s in harness.SECRETS:
                if s in text:
                    problems.append("%s contains a secret the tests used (%s...)" % (path, s[:4]))
        if os.path.exists(p.log_path):
            for line in harness.non_json_lines(p.log_path)[:5]:
                problems.append("%s: stderr line is not a JSON object: %s" % (p.log_path, line[:300]))
    if not problems:
        for p in INSTANCES:
            p.cleanup()
    assert not problems, "\n".join(problems)
