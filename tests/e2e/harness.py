"""End-to-end harness: a private PostgreSQL, a header-echo backend, and real portier processes over real TLS.

Everything listens on 127.0.0.1 on free ports (bind to port 0). Each Portier instance gets its own database
(`CREATE DATABASE t_<random>`) unless it is given another instance's: two instances sharing one database is
how the revocation tests run. Every secret a test creates (password, setup token, session cookie) goes into
SECRETS; conftest.py fails the run if any of them appears in a log portier wrote.

Environment: PORTIER_BIN (default <repo>/build/portier), PORTIER_ARTIFACTS (logs and screenshots are copied
there), PORTIER_E2E_KEEP=1 (keep the temporary directories under /tmp)."""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("PORTIER_BIN", os.path.join(ROOT, "build", "portier"))
PASSWORD = "amber kettle drifts over 9 quiet dunes"
SESSION_COOKIE = "__Host-portier"
CSRF_COOKIE = "__Host-portier-csrf"
START_TIMEOUT = 15.0  # seconds until /healthz must answer 200
STOP_TIMEOUT = 15.0

# Every secret the tests create is registered here; the suite fails if any of them shows up in a log.
SECRETS = set()


# Timings worth reading in the run's summary (conftest.py prints them): (label, seconds or None).
MEASUREMENTS = []


def measure(label, seconds):
    MEASUREMENTS.append((label, seconds))
    print("%s: %s" % (label, "never (gave up)" if seconds is None else "%.3f s" % seconds))


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


def keep_tmp():
    return os.environ.get("PORTIER_E2E_KEEP") == "1"


class Postgres:
    """One private PostgreSQL for the whole run (scripts/pg.sh), Unix socket only."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="portier-e2e-pg.", dir="/tmp")
        os.chmod(self.dir, 0o755)  # as root, pg.sh runs postgres as the postgres user, which must enter it
        self.data = os.path.join(self.dir, "pg")
        out = subprocess.run([os.path.join(ROOT, "scripts", "pg.sh"), "start", self.data],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError("scripts/pg.sh start failed:\n" + out.stderr[-3000:])
        self.conninfo = out.stdout.strip().splitlines()[-1]

    def conninfo_for(self, dbname):
        """The superuser (schema owner): tests read and tamper with the database through it."""
        return re.sub(r"dbname=\S+", "dbname=" + dbname, self.conninfo)

    def app_conninfo_for(self, dbname):
        """The role portier serves as (scripts/pg.sh creates it; `portier migrate` grants it)."""
        return self.conninfo_for(dbname).replace("user=portier", "user=portier_app")

    def create_database(self):
        name = "t_" + secrets.token_hex(6)
        self.psql("CREATE DATABASE " + name)  # its own -c: CREATE DATABASE cannot run in a transaction block
        return name

    def psql(self, sql, dbname="portier"):
        out = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", self.conninfo_for(dbname),
                              "-c", sql], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        return out.stdout.strip()

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts", "pg.sh"), "stop", self.data], capture_output=True)
        if not keep_tmp():
            shutil.rmtree(self.dir, ignore_errors=True)


class Backend:
    """tests/e2e/echo_backend.py on a free port: answers JSON with every request header it received."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "echo_backend.py"), str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not wait_for(self._up, timeout=10):
            self.proc.kill()
            raise RuntimeError("echo backend did not start: " + self.proc.stderr.read().decode(errors="replace"))
        self.url = "http://127.0.0.1:%d" % self.port

    def _up(self):
        if self.proc.poll() is not None:
            return False
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
        self.dir = tempfile.mkdtemp(prefix="portier-e2e-mail.", dir="/tmp")
        self.port = free_port()
        self.proc = subprocess.Popen(["/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:%d" % self.port,
                                      "-c", "aiosmtpd.handlers.Mailbox", os.path.join(self.dir, "mail")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for(self._up):
            raise RuntimeError("smtp sink did not start")

    def _up(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def messages(self):
        import mailbox
        return list(mailbox.Maildir(os.path.join(self.dir, "mail"), create=True))

    def wait_for_messages(self, count, timeout=10):
        return wait_for(lambda: len(self.messages()) >= count, timeout) and self.messages()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class Keys:
    """TLS certificate + key and the JWT signing key, made by scripts/gen-dev-keys.sh (files 0600)."""

    def __init__(self, source=None):
        self.dir = tempfile.mkdtemp(prefix="portier-e2e-keys.", dir="/tmp")
        if source is None:
            out = subprocess.run([os.path.join(ROOT, "scripts", "gen-dev-keys.sh"), self.dir],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError("scripts/gen-dev-keys.sh failed:\n" + out.stderr)
        else:  # a private copy a test may chmod without disturbing the other instances
            shutil.copytree(source.dir, self.dir, dirs_exist_ok=True)
        self.cert = os.path.join(self.dir, "tls", "cert.pem")
        self.key = os.path.join(self.dir, "tls", "key.pem")
        self.jwt = os.path.join(self.dir, "keys", "jwt.pem")

    def copy(self):
        return Keys(source=self)

    def cleanup(self):
        if not keep_tmp():
            shutil.rmtree(self.dir, ignore_errors=True)


class Portier:
    """One portier process with its own directory, config file, logs and (unless share_db) database."""

    def __init__(self, pg, keys, backend, share_db=None, idle="30m", absolute="12h", jwt_lifetime="60s",
                 http_redirect=False, extra_routes="", login="", extra_yaml="", start=True):
        self.pg, self.keys, self.backend = pg, keys, backend
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="portier-e2e.", dir="/tmp")
        try:
            self._prepare(share_db, idle, absolute, jwt_lifetime, http_redirect, extra_routes, login, extra_yaml)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        if start:
            self.start()

    def _prepare(self, share_db, idle, absolute, jwt_lifetime, http_redirect, extra_routes, login, extra_yaml):
        """Writes the config (extra_routes: YAML list items before the catch-all route; login: extra lines of
        the login section, each indented by 2 spaces and ending in a newline; extra_yaml: more top-level sections)
        and migrates a new database."""
        pg, keys, backend = self.pg, self.keys, self.backend
        os.chmod(self.dir, 0o755)
        self.dbname = share_db.dbname if share_db else pg.create_database()
        self.port = free_port()
        self.http_port = free_port() if http_redirect else 0
        self.base = "https://127.0.0.1:%d" % self.port
        self.config = os.path.join(self.dir, "portier.yaml")
        self.log_path = os.path.join(self.dir, "stderr.log")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.access_log = os.path.join(self.dir, "access.log")
        self.jwt_lifetime = jwt_lifetime
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
database: {{ conninfo: "{pg.app_conninfo_for(self.dbname)}", admin_conninfo: "{pg.conninfo_for(self.dbname)}" }}
session: {{ idle_timeout: {idle}, absolute_timeout: {absolute}, cookie_name: {SESSION_COOKIE} }}
login:
  password_min_length: 15
  invite_ttl: 24h
{login}identity:
  issuer: {self.base}
  jwt_lifetime: {jwt_lifetime}
  signing_key: {keys.jwt}
  headers: {{ user: X-Portier-User, email: X-Portier-Email, groups: X-Portier-Groups, jwt: X-Portier-Jwt-Assertion }}
{extra_yaml}routes:
  - {{ prefix: /admin, backend: "{backend.url}", name: admin, groups: [admins] }}
{extra_routes}  - {{ prefix: /, backend: "{backend.url}", name: app }}
""")
        if share_db is None:
            self.cli("migrate")

    # --- process ---
    def start(self):
        with open(self.log_path, "ab") as err, open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen([BIN, "serve", "-c", self.config], stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)
        if not wait_for(self._healthy, timeout=START_TIMEOUT):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("portier did not answer /healthz within %ds; log tail:\n%s"
                               % (START_TIMEOUT, self.log_text()[-3000:]))

    def _healthy(self):
        if self.proc.poll() is not None:
            raise RuntimeError("portier exited %d at start; log tail:\n%s" % (self.proc.returncode,
                                                                              self.log_text()[-3000:]))
        try:
            return requests.get(self.base + "/healthz", verify=False, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self):
        """SIGTERM and wait: a graceful shutdown exits 0."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("portier did not stop within %ds of SIGTERM; log tail:\n%s"
                                 % (STOP_TIMEOUT, self.log_text()[-2000:]))
        assert rc == 0, "portier did not stop gracefully (exit %d); log tail:\n%s" % (rc, self.log_text()[-2000:])

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_files(self):
        return [p for p in (self.log_path, self.stdout_path, self.access_log) if os.path.exists(p)]

    def cli(self, *args, check=True):
        """Runs `portier ARGS -c CONFIG`; with check, a non-zero exit fails the test with stderr."""
        out = subprocess.run([BIN, *args, "-c", self.config], capture_output=True, text=True, timeout=60)
        if check and out.returncode != 0:
            raise AssertionError("portier %s failed (%d): %s" % (" ".join(args), out.returncode, out.stderr))
        return out

    def cleanup(self):
        self.stop()
        if not keep_tmp():
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- HTTP ---
    def url(self, path):
        return self.base + path

    def get(self, path, cookies=None, **kw):
        kw.setdefault("timeout", 10)
        return requests.get(self.url(path), verify=False, allow_redirects=False, cookies=cookies, **kw)

    def post(self, path, data, cookies=None, **kw):
        kw.setdefault("timeout", 10)
        return requests.post(self.url(path), data=data, verify=False, allow_redirects=False, cookies=cookies, **kw)

    def metrics(self):
        """Prometheus text -> {"name{labels}": value}."""
        r = self.get("/metrics")
        assert r.status_code == 200, r.status_code
        out = {}
        for line in r.text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    # --- users ---
    def invite(self, username, *args):
        """`portier user invite`; returns (setup URL, token). The URL is the last line of stdout."""
        out = self.cli("user", "invite", username, *args)
        link = out.stdout.strip().splitlines()[-1]
        token = urllib.parse.parse_qs(urllib.parse.urlparse(link).query)["token"][0]
        register_secret(token)
        return link, token

    def setup(self, username, password=PASSWORD, groups=(), email=None, name=None):
        """Invites a user and sets the password through the setup link; returns the session cookie value."""
        args = []
        for g in groups:
            args += ["--group", g]
        if email:
            args += ["--email", email]
        if name:
            args += ["--name", name]
        _, token = self.invite(username, *args)
        register_secret(password)
        page = self.get("/setup?token=" + token)
        assert page.status_code == 200, page.status_code
        csrf = form_value(page.text, "csrf")
        r = self.post("/setup", {"token": token, "csrf": csrf, "password": password, "password_confirm": password},
                      cookies={CSRF_COOKIE: csrf})
        assert r.status_code == 303, (r.status_code, r.text[:500])
        return register_secret(r.cookies[SESSION_COOKIE])

    def login(self, username, password=PASSWORD, return_to=None):
        """GET /login for the CSRF token, then POST /login; returns the POST response."""
        register_secret(password)
        page = self.get("/login")
        csrf = form_value(page.text, "csrf")
        data = {"username": username, "password": password, "csrf": csrf}
        if return_to is not None:
            data["return_to"] = return_to
        r = self.post("/login", data, cookies={CSRF_COOKIE: csrf})
        if SESSION_COOKIE in r.cookies:
            register_secret(r.cookies[SESSION_COOKIE])
        return r

    def logout(self, cookie):
        """GET /logout for the form's CSRF token, then POST /logout; returns the POST response."""
        page = self.get("/logout", cookies={SESSION_COOKIE: cookie})
        assert page.status_code == 200, page.status_code
        csrf = form_value(page.text, "csrf")
        return self.post("/logout", {"csrf": csrf}, cookies={SESSION_COOKIE: cookie, CSRF_COOKIE: csrf})

    def user_row(self, username, columns="failed_logins, locked_until IS NOT NULL AND locked_until > now()"):
        """Columns of the users row (default: consecutive failures and whether the account is locked now)."""
        return self.pg.psql("SELECT %s FROM users WHERE username = '%s'" % (columns, username),
                            dbname=self.dbname).split("|")

    def proxied(self, path, cookie, headers=None):
        """A non-browser (API) request through the gateway: Accept: application/json."""
        h = {"Accept": "application/json"}
        h.update(headers or {})
        return self.get(path, cookies={SESSION_COOKIE: cookie} if cookie else None, headers=h)


def form_value(html, name):
    m = re.search(r'name="%s"[^>]*value="([^"]*)"' % re.escape(name), html)
    if not m:
        m = re.search(r'value="([^"]*)"[^>]*name="%s"' % re.escape(name), html)
    assert m, "no %s field in page" % name
    return m.group(1)


def set_cookies(response):
    """The raw Set-Cookie header lines of a response (requests joins them with ', ' otherwise)."""
    return response.raw.headers.getlist("Set-Cookie")


def set_cookie_for(response, name):
    """The Set-Cookie line that sets cookie `name`, or None."""
    for line in set_cookies(response):
        if line.split("=", 1)[0].strip() == name:
            return line
    return None


def cookie_attributes(line):
    """'a=b; Path=/; Secure' -> ('a', 'b', {'path': '/', 'secure': ''}); attribute names lower-cased."""
    parts = [p.strip() for p in line.split(";")]
    name, value = parts[0].split("=", 1)
    attrs = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip()
    return name, value, attrs


def backend_headers(response):
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return json.loads(response.text)["headers"]


def curl(*args):
    """The curl CLI (-k -s), e.g. for HTTP/2; returns the CompletedProcess."""
    return subprocess.run(["curl", "-ks", "--max-time", "10", *args], capture_output=True, text=True)


def non_json_lines(path):
    """Lines of a log file that are not JSON objects."""
    bad = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            try:
                if not isinstance(json.loads(line), dict):
                    bad.append(line)
            except ValueError:
                bad.append(line)
    return bad
