"""The login pages in a real browser: headless Debian Chromium driven by playwright-core (tests/browser/lib.js),
scripted in browser_login.js. Screenshots land in the test's tmp dir and, when set, in $PORTIER_ARTIFACTS."""
import glob
import os
import shutil
import subprocess
import warnings

import pytest

import harness

BROWSER_DIR = os.path.join(harness.ROOT, "tests", "browser")
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser_login.js")


def browser_missing():
    if shutil.which("node") is None:
        return "node is not installed"
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules")):
        return "tests/browser/node_modules is missing (run `npm ci` in tests/browser)"
    return None


def run_script(script, link, portier, username, password, tmp_path, secrets_name):
    """Runs a browser script (SETUP_URL BASE_URL USERNAME PASSWORD OUT_DIR SECRETS_FILE); registers every secret it
    wrote and copies its screenshots to $PORTIER_ARTIFACTS/browser. Returns (CompletedProcess, shots dir, secrets
    file); skips with a warning when the browser is not installed."""
    missing = browser_missing()
    if missing:
        message = "BROWSER TEST SKIPPED: %s; CI installs it (scripts/install-deps.sh)" % missing
        warnings.warn(message)
        pytest.skip(message)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    secrets_file = tmp_path / secrets_name
    secrets_file.touch(mode=0o600)
    try:
        r = subprocess.run(["node", script, link, portier.base, username, password, str(shots), str(secrets_file)],
                           capture_output=True, text=True, timeout=120)
    finally:
        for value in secrets_file.read_text().split():
            harness.register_secret(value)
        artifacts = os.environ.get("PORTIER_ARTIFACTS")
        if artifacts:
            dest = os.path.join(artifacts, "browser")
            os.makedirs(dest, exist_ok=True)
            for png in glob.glob(str(shots / "*.png")):
                shutil.copy(png, dest)
    return r, shots, secrets_file


def test_setup_logout_and_login_in_chromium(portier, tmp_path):
    username = "browseruser"
    link, _ = portier.invite(username, "--email", "browser@example.com")
    password = harness.register_secret("a long browser passphrase 123")
    r, shots, secrets_file = run_script(SCRIPT, link, portier, username, password, tmp_path, "cookies.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "browser flow ok" in r.stdout
    assert sorted(os.path.basename(p) for p in glob.glob(str(shots / "*.png"))) == [
        "1-setup.png", "2-backend.png", "3-logout.png", "4-login-error.png", "5-signed-in-again.png"]
    assert len(secrets_file.read_text().split()) == 2  # one session per sign-in


MFA_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser_mfa.js")


def test_mfa_enrolment_in_chromium_shows_a_scannable_qr_code(portier, tmp_path):
    username = "browsermfa"
    link, _ = portier.invite(username)
    password = harness.register_secret("another long browser passphrase 7")
    r, shots, secrets_file = run_script(MFA_SCRIPT, link, portier, username, password, tmp_path, "secrets.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mfa browser flow ok" in r.stdout
    # the screenshot really shows the QR code: zbarimg finds the otpauth URI of this user in it
    decoded = subprocess.run(["zbarimg", "--quiet", "--raw", str(shots / "mfa-1-enrol.png")], capture_output=True,
                             text=True)
    assert decoded.returncode == 0, decoded.stderr
    uri = decoded.stdout.strip()
    assert uri.startswith("otpauth://totp/portier:browsermfa?secret=")
    key = secrets_file.read_text().split()[0]
    assert "secret=%s&" % key in uri  # the key the page showed is the one in the picture
