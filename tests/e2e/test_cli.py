"""Command line: configuration checks, key-file permissions, migrations, user and group administration."""
import os
import re
import subprocess

import harness


def user_rows(portier):
    """`portier user list` -> {username: [username, email, enabled|disabled, groups, ...]}."""
    out = portier.cli("user", "list").stdout
    return {line.split("\t")[0]: line.split("\t") for line in out.splitlines() if line}


def test_check_config_accepts_a_valid_file(portier):
    out = portier.cli("check-config", check=False)
    assert out.returncode == 0, out.stderr


def test_check_config_reports_file_line_and_key(portier, tmp_path):
    bad = tmp_path / "bad.yaml"
    text = open(portier.config).read()
    text = text.replace("  threads: 2\n", "  threads: 2\n  lisen: 1\n")  # unknown key
    text = text.replace("jwt_lifetime: 60s", "jwt_lifetime: 10m")  # out of range (at most 5 min)
    bad.write_text(text)
    out = subprocess.run([harness.BIN, "check-config", "-c", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    lines = text.splitlines()
    lisen_line = next(i for i, l in enumerate(lines, 1) if "lisen" in l)
    jwt_line = next(i for i, l in enumerate(lines, 1) if "jwt_lifetime" in l)
    assert re.search(r"^%s:%d: server\.lisen: \S" % (re.escape(str(bad)), lisen_line), out.stderr, re.M), out.stderr
    assert re.search(r"^%s:%d: identity\.jwt_lifetime: \S" % (re.escape(str(bad)), jwt_line), out.stderr, re.M), \
        out.stderr


def test_check_config_reports_yaml_syntax_errors(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("server:\n  listen: [1, 2\n")
    out = subprocess.run([harness.BIN, "check-config", "-c", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    assert re.search("^" + re.escape(str(bad)) + r":\d+: ", out.stderr, re.M), out.stderr


def test_serve_refuses_group_or_world_readable_keys(make_portier, keys):
    private = keys.copy()  # chmod a copy: the shared keys stay 0600 for every other instance
    try:
        p = make_portier(keys=private, start=False)
        for key in (private.key, private.jwt):
            os.chmod(key, 0o644)
            try:
                out = subprocess.run([harness.BIN, "serve", "-c", p.config], capture_output=True, text=True,
                                     timeout=10)
            finally:
                os.chmod(key, 0o600)
            assert out.returncode == 1, (key, out.returncode, out.stderr)
            assert key in out.stderr, out.stderr
    finally:
        private.cleanup()


def test_migrate_is_idempotent(portier):
    for _ in range(2):
        out = portier.cli("migrate", check=False)
        assert out.returncode == 0, out.stderr


def test_user_invite_prints_the_setup_url(portier):
    link, token = portier.invite("ivan", "--email", "ivan@example.com", "--name", "Ivan Example")
    assert link == portier.base + "/setup?token=" + token
    assert len(token) >= 22  # >= 128 bits, base64url
    assert portier.get("/setup?token=" + token).status_code == 200


def test_user_list_disable_enable_and_groups(portier):
    portier.invite("carol", "--email", "carol@example.com", "--group", "staff", "--group", "ops")
    row = user_rows(portier)["carol"]
    assert row[:3] == ["carol", "carol@example.com", "enabled"]
    assert sorted(row[3].split(",")) == ["ops", "staff"]
    portier.cli("user", "disable", "carol")
    portier.cli("group", "remove", "carol", "ops")
    portier.cli("group", "add", "carol", "admins")
    row = user_rows(portier)["carol"]
    assert row[2] == "disabled"
    assert sorted(row[3].split(",")) == ["admins", "staff"]
    portier.cli("user", "enable", "carol")
    assert user_rows(portier)["carol"][2] == "enabled"


def test_unknown_user_exits_1(portier):
    for args in (("user", "disable", "nobody"), ("user", "enable", "nobody"), ("group", "add", "nobody", "g"),
                 ("group", "remove", "nobody", "g")):
        out = portier.cli(*args, check=False)
        assert out.returncode == 1, (args, out.returncode, out.stderr)


def test_invalid_username_is_refused(portier):
    out = portier.cli("user", "invite", "bad name", check=False)
    assert out.returncode != 0
    assert "bad name" not in user_rows(portier)


def test_cli_changes_are_audited_with_the_operator(portier, pg):
    portier.invite("dave")
    portier.cli("user", "disable", "dave")
    rows = pg.psql("SELECT actor || '|' || action || '|' || target FROM audit_events WHERE target = 'user:dave' "
                   "ORDER BY id", dbname=portier.dbname).splitlines()
    assert any(r.endswith("|user.create|user:dave") and r.startswith("cli:") for r in rows), rows
    assert any(r.endswith("|user.disable|user:dave") for r in rows), rows


def test_audit_table_is_append_only(portier, pg):
    portier.invite("erin")
    for sql in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events", "TRUNCATE audit_events"):
        try:
            pg.psql(sql, dbname=portier.dbname)
        except RuntimeError as e:
            assert "append-only" in str(e)
        else:
            raise AssertionError(sql + " succeeded")
