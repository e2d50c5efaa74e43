"""The login pages in a real browser: headless Debian Chromium driven by playwright-core (tests/browser)."""
import os
import shutil
import subprocess
import tempfile

import pytest

import harness

BROWSER_DIR = os.path.join(harness.ROOT, "tests", "browser")


def test_setup_logout_and_login_in_chromium(portier):
    if shutil.which("node") is None or not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules")):
        pytest.fail("node or tests/browser/node_modules missing: run scripts/install-deps.sh test")
    link, token = portier.invite("browseruser")
    password = harness.register_secret("a long browser passphrase 123")
    out = os.environ.get("PORTIER_ARTIFACTS") or tempfile.mkdtemp(prefix="portier-browser.", dir="/tmp")
    os.makedirs(out, exist_ok=True)
    r = subprocess.run(["node", os.path.join(os.path.dirname(__file__), "browser_login.js"), link, portier.base,
                        "browseruser", password, out], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "browser flow ok" in r.stdout
    for shot in ("1-setup.png", "2-backend.png", "3-login-error.png"):
        assert os.path.getsize(os.path.join(out, shot)) > 1000
