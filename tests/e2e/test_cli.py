"""Command line: configuration checks, migrations, user and group administration."""
import os
import re
import subprocess

import harness


def test_check_config_accepts_a_valid_file(portier):
    out = portier.cli("check-config")
    assert out.stdout.strip().endswith(": OK")


def test_check_config_reports_file_line_and_key(portier, tmp_path):
    bad = tmp_path / "bad.yaml"
    text = open(portier.config).read()
    text = text.replace("  threads: 2\n", "  threads: 2\n  lisen: 1\n").replace("jwt_lifetime: 60s", "jwt_lifetime: 10m")
    bad.write_text(text)
    out = subprocess.run([harness.BIN, "check-config", "-c", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    lines = text.splitlines()
    lisen_line = next(i for i, l in enumerate(lines, 1) if "lisen" in l)
    jwt_line = next(i for i, l in enumerate(lines, 1) if "jwt_lifetime" in l)
    assert "%s:%d: server.lisen: unknown key" % (bad, lisen_line) in out.stderr
    assert re.search(r"%s:%d: identity.jwt_lifetime: .*out of range" % (re.escape(str(bad)), jwt_line), out.stderr)


def test_check_config_reports_yaml_syntax_errors(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("server:\n  listen: [1, 2\n")
    out = subprocess.run([harness.BIN, "check-config", "-c", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    assert re.search(re.escape(str(bad)) + r":\d+: ", out.stderr)


def test_serve_refuses_world_readable_keys(make_portier, keys, tmp_path):
    p = make_portier(start=False)
    for key in (keys.key, keys.jwt):
        os.chmod(key, 0o644)
        try:
            out = subprocess.run([harness.BIN, "serve", "-c", p.config], capture_output=True, text=True, timeout=10)
        finally:
            os.chmod(key, 0o600)
        assert out.returncode == 1
        assert key in out.stderr and "group/others" in out.stderr


def test_migrate_is_idempotent(portier):
    out = portier.cli("migrate")
    assert out.stdout.startswith("0 migration(s) applied")


def test_user_invite_list_disable_enable_and_groups(portier):
    link, token = portier.invite("carol", "--email", "carol@example.com", "--group", "staff", "--group", "ops")
    assert link.startswith(portier.base + "/setup?token=") and len(token) >= 43
    rows = {l.split("\t")[0]: l.split("\t") for l in portier.cli("user", "list").stdout.splitlines()}
    assert rows["carol"] == ["carol", "carol@example.com", "enabled", "ops,staff", "no-password"]
    portier.cli("user", "disable", "carol")
    portier.cli("group", "remove", "carol", "ops")
    portier.cli("group", "add", "carol", "admins")
    rows = {l.split("\t")[0]: l.split("\t") for l in portier.cli("user", "list").stdout.splitlines()}
    assert rows["carol"][2:4] == ["disabled", "admins,staff"]
    portier.cli("user", "enable", "carol")
    rows = {l.split("\t")[0]: l.split("\t") for l in portier.cli("user", "list").stdout.splitlines()}
    assert rows["carol"][2] == "enabled"


def test_unknown_user_and_bad_names_fail(portier):
    assert portier.cli("user", "disable", "nobody", check=False).returncode == 1
    assert portier.cli("user", "invite", "bad name", check=False).returncode == 2
    assert portier.cli("group", "add", "nobody", "g", check=False).returncode == 1


def test_cli_changes_are_audited_with_the_operator(portier, pg):
    portier.invite("dave")
    portier.cli("user", "disable", "dave")
    rows = pg.psql("SELECT actor || '|' || action || '|' || target FROM audit_events WHERE target = 'user:dave' "
                   "ORDER BY id", dbname=portier.dbname).splitlines()
    assert any(r.endswith("|user.create|user:dave") and r.startswith("cli:") for r in rows)
    assert any(r.endswith("|user.disable|user:dave") for r in rows)


def test_audit_table_is_append_only(portier, pg):
    portier.invite("erin")
    for sql in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events", "TRUNCATE audit_events"):
        try:
            pg.psql(sql, dbname=portier.dbname)
        except RuntimeError as e:
            assert "append-only" in str(e)
        else:
            raise AssertionError(sql + " succeeded")
