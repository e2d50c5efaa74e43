"""`portier audit verify` and `portier audit export`: the hash-chained audit trail read back. An insider with
the database's owner role can switch the append-only trigger off; the chain still shows what was changed or
removed, and where."""
import json
import re

import pytest

import harness


@pytest.fixture
def busy(make_portier):
    """An instance with a few events: invitation, setup, sign-in, failed sign-in, logout."""
    p = make_portier()
    cookie = p.setup("auditee")
    assert p.login("auditee", "not the password at all").status_code == 401
    assert p.logout(cookie).status_code == 303
    return p


def ids(p):
    return [int(x) for x in p.pg.psql("SELECT id FROM audit_events ORDER BY id", dbname=p.dbname).split()]


def tamper(p, sql):
    """Runs sql with the append-only triggers off, as an insider holding the owner role could."""
    p.pg.psql("ALTER TABLE audit_events DISABLE TRIGGER USER; %s; ALTER TABLE audit_events ENABLE TRIGGER USER"
              % sql, dbname=p.dbname)


def test_verify_accepts_an_untouched_trail_and_names_its_head(busy):
    out = busy.cli("audit", "verify")
    n = len(ids(busy))
    assert n >= 5
    m = re.fullmatch(r"audit trail OK: (\d+) events verified; head: event (\d+) mac ([0-9a-f]{64})\n", out.stdout)
    assert m, out.stdout
    assert int(m.group(1)) == n and int(m.group(2)) == ids(busy)[-1]
    head = busy.pg.psql("SELECT encode(mac, 'hex') FROM audit_events ORDER BY id DESC LIMIT 1", dbname=busy.dbname)
    assert m.group(3) == head


def test_export_prints_every_event_as_json(busy):
    out = busy.cli("audit", "export")
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert [e["id"] for e in events] == ids(busy)
    actions = [e["action"] for e in events]
    for a in ("user.create", "user.setup_link_issued", "password.set", "login.failure", "logout"):
        assert a in actions, actions
    failure = next(e for e in events if e["action"] == "login.failure")
    assert failure["target"] == "user:auditee" and failure["outcome"] == "failure"
    assert failure["details"]["reason"] == "bad_password"  # details come back as JSON, not as a string
    assert all(re.fullmatch(r"[0-9a-f]{64}", e["mac"]) for e in events)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", events[0]["at"])
    assert harness.PASSWORD not in out.stdout and "not the password at all" not in out.stdout
    later = busy.cli("audit", "export", "--after", str(events[1]["id"]))
    assert [json.loads(line)["id"] for line in later.stdout.splitlines()] == ids(busy)[2:]
    assert busy.cli("audit", "export", "--after", "x", check=False).returncode == 2


def test_a_changed_event_is_found(busy):
    victim = ids(busy)[2]
    tamper(busy, "UPDATE audit_events SET target = 'user:someone-else' WHERE id = %d" % victim)
    out = busy.cli("audit", "verify", check=False)
    assert out.returncode == 1
    assert "damaged at event %d: mac mismatch" % victim in out.stderr
    assert "(2 events before it verified)" in out.stderr


def test_a_removed_event_is_found(busy):
    victim = ids(busy)[1]
    after = ids(busy)[2]
    tamper(busy, "DELETE FROM audit_events WHERE id = %d" % victim)
    out = busy.cli("audit", "verify", check=False)
    assert out.returncode == 1
    assert "damaged at event %d: chain broken" % after in out.stderr


def test_a_forged_event_without_the_key_is_found(busy):
    last = ids(busy)[-1]
    busy.pg.psql("INSERT INTO audit_events (actor, action, target, outcome, prev_mac, mac) "
                 "SELECT 'cli:root', 'user.enable', 'user:auditee', 'success', mac, sha256(mac) "
                 "FROM audit_events WHERE id = %d" % last, dbname=busy.dbname)
    out = busy.cli("audit", "verify", check=False)
    assert out.returncode == 1 and "mac mismatch" in out.stderr
