"""End-to-end harness: a private PostgreSQL, a header-echo backend, and real portier processes over real TLS.

Everything listens on 127.0.0.1 on free ports; each Portier instance gets its own database unless it is given
another instance's (two instances sharing one database is how the revocation tests run)."""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("PORTIER_BIN", os.path.join(ROOT, "build", "portier"))
PASSWORD = "correct horse battery staple 42"

# Every secret the tests create is registered here; the suite fails if any of them shows up in a log.
SECRETS = set()


def register_secret(value):
    if value:
        SECRETS.add(value)
    return value


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=15.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


class Postgres:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="portier-e2e-pg.", dir="/tmp")
        os.chmod(self.dir, 0o755)
        out = subprocess.run([os.path.join(ROOT, "scripts", "pg.sh"), "start", os.path.join(self.dir, "pg")],
                             check=True, capture_output=True, text=True)
        self.conninfo = out.stdout.strip().splitlines()[-1]

    def conninfo_for(self, dbname):
        return re.sub(r"dbname=\S+", "dbname=" + dbname, self.conninfo)

    def create_database(self):
        name = "t_" + secrets.token_hex(6)
        self.psql("CREATE DATABASE " + name)
        return name

    def psql(self, sql, dbname="portier"):
        out = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", self.conninfo_for(dbname), "-c", sql],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        return out.stdout.strip()

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts", "pg.sh"), "stop", os.path.join(self.dir, "pg")],
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Backend:
    """A tiny backend that answers JSON with every request header it received."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "scripts", "demo-backend.py"),
                                      str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for(lambda: self._up()):
            raise RuntimeError("backend did not start")
        self.url = "http://127.0.0.1:%d" % self.port

    def _up(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


class SmtpSink:
    """A real SMTP server (Debian's python3-aiosmtpd) that stores every message in a Maildir."""

    def __init__(self):
        import mailbox
        self.dir = tempfile.mkdtemp(prefix="portier-e2e-mail.", dir="/tmp")
        self.port = free_port()
        self.proc = subprocess.Popen(["/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:%d" % self.port,
                                      "-c", "aiosmtpd.handlers.Mailbox", os.path.join(self.dir, "mail")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for(lambda: self._up()):
            raise RuntimeError("smtp sink did not start")
        self.box = lambda: mailbox.Maildir(os.path.join(self.dir, "mail"), create=True)

    def _up(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def messages(self):
        return [m for _, m in sorted(self.box().items(), key=lambda kv: kv[1].get("Date", ""))]

    def wait_for_messages(self, count, timeout=10):
        return wait_for(lambda: len(self.messages()) >= count, timeout) and self.messages()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class Keys:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="portier-e2e-keys.", dir="/tmp")
        subprocess.run([os.path.join(ROOT, "scripts", "gen-dev-keys.sh"), self.dir], check=True, capture_output=True)
        self.cert = os.path.join(self.dir, "tls", "cert.pem")
        self.key = os.path.join(self.dir, "tls", "key.pem")
        self.jwt = os.path.join(self.dir, "keys", "jwt.pem")


class Portier:
    """One portier process. `share_db` makes it use another instance's database."""

    def __init__(self, pg, keys, backend, share_db=None, idle="30m", absolute="12h", jwt_lifetime="60s",
                 http_redirect=False, extra_routes="", login="", extra_yaml="", start=True):
        self.pg, self.keys, self.backend = pg, keys, backend
        self.dir = tempfile.mkdtemp(prefix="portier-e2e.", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.dbname = share_db.dbname if share_db else pg.create_database()
        self.port = free_port()
        self.http_port = free_port() if http_redirect else 0
        self.base = "https://127.0.0.1:%d" % self.port
        self.config = os.path.join(self.dir, "portier.yaml")
        self.log_path = os.path.join(self.dir, "stderr.log")
        self.access_log = os.path.join(self.dir, "access.log")
        redirect = ("  http_redirect: { address: 127.0.0.1, port: %d }\n" % self.http_port) if http_redirect else ""
        with open(self.config, "w") as f:
            f.write(f"""server:
  listen: {{ address: 127.0.0.1, port: {self.port} }}
{redirect}  public_url: {self.base}
  threads: 2
  workers: 2
  tls: {{ certificate: {keys.cert}, key: {keys.key} }}
  access_log: {self.access_log}
state_dir: {self.dir}
templates_dir: {ROOT}/templates
database: {{ conninfo: "{pg.conninfo_for(self.dbname)}" }}
session: {{ idle_timeout: {idle}, absolute_timeout: {absolute} }}
login:
  password_min_length: 15
{login}identity:
  issuer: {self.base}
  jwt_lifetime: {jwt_lifetime}
  signing_key: {keys.jwt}
{extra_yaml}routes:
  - {{ prefix: /admin, backend: "{backend.url}", name: admin, groups: [admins] }}
{extra_routes}  - {{ prefix: /, backend: "{backend.url}", name: app }}
""")
        self.proc = None
        if share_db is None:
            self.cli("migrate")
        if start:
            self.start()

    # --- process ---
    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "serve", "-c", self.config], stdout=self.log, stderr=self.log)
        if not wait_for(self._healthy):
            self.proc.kill()
            raise RuntimeError("portier did not start:\n" + self.log_text()[-3000:])

    def _healthy(self):
        if self.proc.poll() is not None:
            raise RuntimeError("portier exited %d:\n%s" % (self.proc.returncode, self.log_text()[-3000:]))
        try:
            return requests.get(self.base + "/healthz", verify=False, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(15)
            assert rc == 0, "portier did not stop gracefully (exit %d)" % rc
        self.proc = None

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def cli(self, *args, check=True):
        out = subprocess.run([BIN, *args, "-c", self.config], capture_output=True, text=True)
        if check and out.returncode != 0:
            raise AssertionError("portier %s failed (%d): %s" % (" ".join(args), out.returncode, out.stderr))
        return out

    # --- HTTP ---
    def url(self, path):
        return self.base + path

    def get(self, path, cookies=None, **kw):
        return requests.get(self.url(path), verify=False, allow_redirects=False, cookies=cookies, **kw)

    def post(self, path, data, cookies=None, **kw):
        return requests.post(self.url(path), data=data, verify=False, allow_redirects=False, cookies=cookies, **kw)

    def metrics(self):
        text = self.get("/metrics").text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    # --- users ---
    def invite(self, username, *args):
        out = self.cli("user", "invite", username, *args)
        link = out.stdout.strip().splitlines()[-1]
        token = urllib.parse.parse_qs(urllib.parse.urlparse(link).query)["token"][0]
        register_secret(token)
        return link, token

    def setup(self, username, password=PASSWORD, groups=(), email=None):
        """Invites a user and sets the password through the setup link; returns the session cookie value."""
        args = []
        for g in groups:
            args += ["--group", g]
        if email:
            args += ["--email", email]
        _, token = self.invite(username, *args)
        page = self.get("/setup?token=" + token)
        assert page.status_code == 200, page.status_code
        csrf = form_value(page.text, "csrf")
        r = self.post("/setup", {"token": token, "csrf": csrf, "password": password, "password_confirm": password},
                      cookies={"__Host-portier-csrf": csrf})
        assert r.status_code == 303, (r.status_code, r.text[:500])
        register_secret(password)
        return register_secret(r.cookies["__Host-portier"])

    def login(self, username, password=PASSWORD, return_to=None):
        page = self.get("/login")
        csrf = form_value(page.text, "csrf")
        data = {"username": username, "password": password, "csrf": csrf}
        if return_to is not None:
            data["return_to"] = return_to
        r = self.post("/login", data, cookies={"__Host-portier-csrf": csrf})
        if "__Host-portier" in r.cookies:
            register_secret(r.cookies["__Host-portier"])
        return r

    def proxied(self, path, cookie, headers=None):
        h = {"Accept": "application/json"}
        h.update(headers or {})
        return self.get(path, cookies={"__Host-portier": cookie} if cookie else None, headers=h)

    def user_row(self, username, columns="failed_logins, locked_until IS NOT NULL AND locked_until > now()"):
        return self.pg.psql("SELECT %s FROM users WHERE username = '%s'" % (columns, username),
                            dbname=self.dbname).split("|")

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def form_value(html, name):
    m = re.search(r'name="%s"[^>]*value="([^"]*)"' % re.escape(name), html)
    if not m:
        m = re.search(r'value="([^"]*)"[^>]*name="%s"' % re.escape(name), html)
    assert m, "no %s field in page" % name
    return m.group(1)


def backend_headers(response):
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return json.loads(response.text)["headers"]


def curl(*args):
    """curl over HTTP/2 (or whatever args say); returns (status line protocol, headers, body)."""
    out = subprocess.run(["curl", "-ks", "--max-time", "10", *args], capture_output=True, text=True)
    return out
