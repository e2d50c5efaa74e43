"""Private Apache instances with a SAML SP module (mod_auth_mellon or mod_shib) on loopback, for the SAML IdP
tests. Each instance has its own ServerRoot-free configuration, PidFile, port and logs in a temporary directory;
the system's Apache configuration is never touched. /secret/ is protected; /secret/env is a CGI script that
prints what the SP module handed the application (its environment), as JSON.

As root, Apache's children run as www-data (Apache refuses to serve as root), so the directory is made readable
for that user."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import harness

MODULES = "/usr/lib/apache2/modules"
CGI = """#!/usr/bin/python3
import json, os
print("Content-Type: application/json\\n")
print(json.dumps({k: v for k, v in os.environ.items()
                  if k.startswith(("MELLON_", "REMOTE_USER", "Shib-", "uid", "mail", "displayName", "givenName",
                                   "sn", "groups", "persistent-id", "eppn"))}))
"""


class Apache:
    def __init__(self, name, module_conf, extra_modules=()):
        self.dir = tempfile.mkdtemp(prefix="portier-%s." % name, dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.port = harness.free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.proc = None
        self.module_conf = module_conf
        self.extra_modules = extra_modules
        os.makedirs(os.path.join(self.dir, "cgi"))
        cgi = os.path.join(self.dir, "cgi", "env")
        with open(cgi, "w") as f:
            f.write(CGI)
        os.chmod(cgi, 0o755)

    def path(self, *p):
        return os.path.join(self.dir, *p)

    def write_conf(self, body):
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        mods = ["mpm_prefork", "authn_core", "authz_core", "authz_user", "alias", "cgi", "env", "setenvif", "headers"]
        load = "".join("LoadModule %s_module %s/mod_%s.so\n" % (m, MODULES, m) for m in mods)
        load += "".join("LoadModule %s %s\n" % (sym, so) for sym, so in self.extra_modules)
        conf = f"""{load}{user}ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile {self.path('httpd.pid')}
ErrorLog {self.path('error.log')}
LogLevel warn
DefaultRuntimeDir {self.dir}
Mutex file:{self.dir}
StartServers 1
MinSpareServers 1
MaxSpareServers 2
ScriptAlias /secret/env {self.path('cgi', 'env')}
{body}
"""
        with open(self.path("httpd.conf"), "w") as f:
            f.write(conf)

    def start(self):
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "www-data:www-data", self.dir], check=True)
        out = subprocess.run(["apache2", "-f", self.path("httpd.conf"), "-k", "start"], capture_output=True,
                             text=True, env={"PATH": "/usr/sbin:/usr/bin:/bin", "APACHE_RUN_DIR": self.dir,
                                             "APACHE_LOCK_DIR": self.dir, "APACHE_LOG_DIR": self.dir})
        assert out.returncode == 0, out.stderr + self.log()
        ok = harness.wait_for(lambda: os.path.exists(self.path("httpd.pid")) and self._answers(), timeout=15)
        assert ok, "apache did not start: " + self.log()

    def _answers(self):
        try:
            harness.requests.get(self.base + "/", timeout=1)
            return True
        except harness.requests.RequestException:
            return False

    def log(self):
        try:
            with open(self.path("error.log"), errors="replace") as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return ""

    def stop(self):
        try:
            with open(self.path("httpd.pid")) as f:
                pid = int(f.read().strip())
            os.kill(pid, signal.SIGTERM)
            harness.wait_for(lambda: not os.path.exists(self.path("httpd.pid")), timeout=10)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        if not harness.keep_tmp():
            shutil.rmtree(self.dir, ignore_errors=True)


class Mellon(Apache):
    """mod_auth_mellon 0.18 with its defaults (it signs AuthnRequests, rsa-sha256); keys and SP metadata from
    Debian's mellon_create_metadata."""

    def __init__(self):
        super().__init__("mellon", None, [("auth_mellon_module", MODULES + "/mod_auth_mellon.so")])
        self.entity_id = self.base + "/mellon/metadata"
        out = subprocess.run(["mellon_create_metadata", self.entity_id, self.base + "/mellon"], cwd=self.dir,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        stem = self.entity_id.replace("http://", "http_").replace(":", "_").replace("/", "_")
        stem = "".join(c if c.isalnum() or c == "." else "_" for c in self.entity_id)
        while "__" in stem:
            stem = stem.replace("__", "_")
        self.key, self.cert, self.metadata_path = (self.path(stem + e) for e in (".key", ".cert", ".xml"))
        assert os.path.exists(self.metadata_path), os.listdir(self.dir)

    def configure(self, idp_metadata_xml):
        with open(self.path("idp.xml"), "w") as f:
            f.write(idp_metadata_xml)
        self.write_conf(f"""SetEnvIf Request_URI . MELLON_DISABLE_SAMESITE=1
<Location />
    MellonEnable info
    MellonEndpointPath /mellon
    MellonSPPrivateKeyFile {self.key}
    MellonSPCertFile {self.cert}
    MellonSPMetadataFile {self.metadata_path}
    MellonIdPMetadataFile {self.path('idp.xml')}
    MellonVariable mellon-test-cookie
    MellonSecureCookie Off
    MellonMergeEnvVars On ";"
</Location>
<Location /secret>
    AuthType Mellon
    MellonEnable auth
    Require valid-user
</Location>
""")
