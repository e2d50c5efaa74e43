"""scripts/demo.sh (what `make demo` runs after installing and building): from an empty state directory it starts
PostgreSQL, the demo backend and portier, prints a setup link for admin, and that link leads to a working login
on the demo backend."""
import os
import re
import shutil
import signal
import subprocess
import tempfile

import requests

import harness
from harness import form_value


def test_demo_script_reaches_a_working_login():
    state = tempfile.mkdtemp(prefix="portier-e2e-demo.", dir="/tmp")
    os.chmod(state, 0o755)
    shutil.rmtree(state)  # demo.sh creates it itself
    port, backend_port = harness.free_port(), harness.free_port()
    env = dict(os.environ, PORTIER_STATE=state, PORTIER_BIN=harness.BIN, DEMO_PORT=str(port),
               DEMO_BACKEND_PORT=str(backend_port))
    out_path = state + ".out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen([os.path.join(harness.ROOT, "scripts", "demo.sh")], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        link = harness.wait_for(lambda: re.search(r"https://\S+/setup\?token=[A-Za-z0-9_-]+", open(out_path).read()),
                                timeout=60)
        assert link, open(out_path).read()[-2000:]
        link = link.group(0)
        harness.register_secret(link.split("token=")[1])
        base = "https://localhost:%d" % port
        def healthy():
            try:
                return requests.get(base + "/healthz", verify=False, timeout=1).ok
            except requests.RequestException:
                return False
        assert harness.wait_for(healthy, timeout=30), open(out_path).read()[-2000:]
        s = requests.Session()
        s.verify = False
        page = s.get(link, verify=False)
        assert page.status_code == 200
        password = harness.register_secret("demo admin passphrase 4711")
        r = s.post(base + "/setup", data={"token": link.split("token=")[1], "csrf": form_value(page.text, "csrf"),
                                          "password": password, "password_confirm": password}, verify=False)
        assert r.status_code == 200 and r.url == base + "/"
        assert "admin" in r.text and "x-portier-jwt-assertion" in r.text.lower()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        subprocess.run([os.path.join(harness.ROOT, "scripts", "pg.sh"), "stop", os.path.join(state, "pg")],
                       capture_output=True)
        shutil.rmtree(state, ignore_errors=True)
        os.unlink(out_path)
