"""`portier audit verify` and `portier audit export`: the hash-chained audit trail read back. An insider with
the database's owner role can switch the append-only trigger off; the chain still shows what was changed or
removed, and where."""
import json
import subprocess
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


# ---- database roles: the role portier serves as cannot change the trail at all ----

def as_runtime_role(p, sql, dbname=None):
    """psql as portier_app, the role in database.conninfo; returns (ok, stderr)."""
    out = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                          p.pg.app_conninfo_for(dbname or p.dbname), "-c", sql], capture_output=True, text=True)
    return out.returncode == 0, out.stderr


def test_the_runtime_role_can_append_but_not_change_or_unprotect_the_trail(busy):
    before = busy.cli("audit", "verify").stdout
    for sql, error in [
            ("UPDATE audit_events SET actor = 'someone-else'", "permission denied for table audit_events"),
            ("DELETE FROM audit_events", "permission denied for table audit_events"),
            ("TRUNCATE audit_events", "permission denied for table audit_events"),
            ("ALTER TABLE audit_events DISABLE TRIGGER USER", "must be owner of table audit_events"),
            ("CREATE OR REPLACE FUNCTION audit_events_immutable() RETURNS trigger LANGUAGE plpgsql "
             "AS $$ BEGIN RETURN OLD; END $$", "permission denied for schema public"),
            ("DROP TRIGGER audit_events_no_update ON audit_events", "must be owner of relation audit_events"),
            ("ALTER TABLE audit_events OWNER TO portier_app", "must be owner of table audit_events"),
            ("DELETE FROM schema_migrations", "permission denied for table schema_migrations")]:
        ok, err = as_runtime_role(busy, sql)
        assert not ok and error in err, (sql, err)
    # granting itself UPDATE is a no-op with a warning: it holds no grant option
    ok, err = as_runtime_role(busy, "GRANT UPDATE ON audit_events TO portier_app")
    assert "no privileges were granted" in err
    assert not as_runtime_role(busy, "UPDATE audit_events SET actor = 'x'")[0]
    # what portier itself needs still works: reading, appending, and rows of the other tables
    assert as_runtime_role(busy, "SELECT count(*) FROM audit_events")[0]
    assert as_runtime_role(busy, "UPDATE users SET display_name = 'A. Uditee' WHERE username = 'auditee'")[0]
    assert busy.cli("audit", "verify").stdout == before


def test_a_single_role_installation_is_told_and_migrate_hands_its_tables_over(make_portier):
    p = make_portier(start=False)
    # an installation from before database.admin_conninfo: portier's one role created and owns everything
    p.dbname = p.pg.create_database()
    p.pg.psql("GRANT CREATE ON SCHEMA public TO portier_app", dbname=p.dbname)
    with open(p.config) as f:
        config = f.read()
    database = re.search(r"^database: .*$", config, re.M).group(0)
    single = 'database: { conninfo: "%s" }' % p.pg.app_conninfo_for(p.dbname)
    with open(p.config, "w") as f:
        f.write(config.replace(database, single))
    out = p.cli("migrate")
    assert "can change the audit trail" in out.stderr and "database.admin_conninfo" in out.stderr
    p.start()  # the revocation listener checks the role when it connects, beside the event loop
    assert harness.wait_for(lambda: '"event":"audit.role_can_modify"' in p.log_text(), timeout=10)
    assert as_runtime_role(p, "ALTER TABLE audit_events DISABLE TRIGGER USER; "
                              "ALTER TABLE audit_events ENABLE TRIGGER USER")[0]  # the hole being closed
    p.stop()

    both = 'database: { conninfo: "%s", admin_conninfo: "%s" }' % (p.pg.app_conninfo_for(p.dbname),
                                                                    p.pg.conninfo_for(p.dbname))
    with open(p.config, "w") as f:
        f.write(config.replace(database, both))
    out = p.cli("migrate")
    assert "now owned by the owner role: TABLE public.audit_events" in out.stderr, out.stderr
    assert "now owned by the owner role: FUNCTION audit_events_immutable()" in out.stderr, out.stderr
    assert "can change the audit trail" not in out.stderr
    owners = p.pg.psql("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = "
                       "'public'::regnamespace AND relkind = 'r'", dbname=p.dbname)
    assert owners == "portier"
    ok, err = as_runtime_role(p, "ALTER TABLE audit_events DISABLE TRIGGER USER")
    assert not ok and "must be owner" in err
    mark = len(p.log_text())
    p.start()
    cookie = p.setup("after-handover")  # portier works as before
    assert p.proxied("/", cookie).status_code == 200
    assert p.cli("audit", "verify").returncode == 0
    assert '"event":"listening"' in p.log_text()[mark:]
    assert '"event":"audit.role_can_modify"' not in p.log_text()[mark:]
