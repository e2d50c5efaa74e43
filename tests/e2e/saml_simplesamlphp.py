"""SimpleSAMLphp (Debian's simplesamlphp 1.19) as a SAML 2.0 IdP on loopback, for the broker's interop test
(test_saml_simplesamlphp.py). It runs from the installed code in /usr/share/simplesamlphp under PHP's built-in web
server (`php -S`); everything it reads or writes is in a private temporary directory: config.php and
authsources.php (SIMPLESAMLPHP_CONFIG_DIR), the metadata directory, its signing key, PHP sessions, its temp and
data directories and its log. /etc/simplesamlphp is never read or changed.

The IdP authenticates with the exampleauth:UserPass source (users and attributes given to the constructor) and
signs its Responses and Assertions with RSA-SHA256. portier's SP metadata (from /saml/sp/metadata) is converted
to saml20-sp-remote.php by SimpleSAMLphp's own metadata parser (the code behind its admin metadata converter).

As root, the server runs as www-data (it is a web application that has no business running as root)."""
import html
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse

import harness
import saml_peers

SSP = "/usr/share/simplesamlphp"
PHP = "/usr/bin/php"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


def php_string(value):
    """A PHP single-quoted string literal."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def php_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(php_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "[" + ", ".join("%s => %s" % (php_string(k), php_value(v)) for k, v in value.items()) + "]"
    return php_string(value)


# Converts SAML metadata XML (stdin) to saml20-sp-remote.php entries with SimpleSAMLphp's SAMLParser.
CONVERT = r"""<?php
require '/usr/share/simplesamlphp/lib/_autoload.php';
$extra = json_decode($argv[1], true);
$out = "<?php\n";
foreach (\SimpleSAML\Metadata\SAMLParser::parseDescriptorsString(stream_get_contents(STDIN)) as $entity) {
    $md = $entity->getMetadata20SP();
    if ($md === null) {
        fwrite(STDERR, "no SPSSODescriptor\n");
        exit(1);
    }
    unset($md['entityDescriptor']);
    $md = array_merge($md, $extra);
    $out .= '$metadata[' . var_export($md['entityid'], true) . '] = ' . var_export($md, true) . ";\n";
}
file_put_contents($argv[2], $out);
"""


class SimpleSAMLphpIdP:
    def __init__(self, users):
        """users: {username: (password, {attribute: [values]})}; the passwords are registered as secrets."""
        for password, _ in users.values():
            harness.register_secret(password)
        for path in (SSP + "/www/saml2/idp/SSOService.php", PHP):
            assert os.path.exists(path), "%s missing (scripts/install-deps.sh test: simplesamlphp, php-cli)" % path
        self.dir = tempfile.mkdtemp(prefix="portier-ssp.", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.port = harness.free_port()
        self.base = "http://127.0.0.1:%d/simplesaml" % self.port
        self.metadata_url = self.base + "/saml2/idp/metadata.php"
        self.entity_id = self.metadata_url
        self.sso_url = self.base + "/saml2/idp/SSOService.php"
        self.proc = None
        for d in ("config", "config/attributemap", "metadata", "docroot", "tmp", "data", "log", "sessions"):
            os.makedirs(self.path(d))
        os.symlink(SSP + "/www", self.path("docroot", "simplesaml"))
        self.key, self.cert, self.cert_body = saml_peers.make_rsa(self.path("config"), "ssp-idp")
        salt = os.urandom(16).hex()
        admin = harness.register_secret(os.urandom(16).hex())
        with open(self.path("config", "config.php"), "w") as f:
            f.write("<?php\n$config = %s;\n" % php_value({
                "baseurlpath": self.base + "/",
                "certdir": self.path("config") + "/",
                "loggingdir": self.path("log") + "/",
                "datadir": self.path("data") + "/",
                "tempdir": self.path("tmp"),
                "metadatadir": self.path("metadata") + "/",
                "attributenamemapdir": self.path("config", "attributemap") + "/",  # empty: no name mapping
                "secretsalt": salt,
                "auth.adminpassword": admin,
                "technicalcontact_name": "portier tests",
                "technicalcontact_email": "tests@portier.test",
                "timezone": "UTC",
                "admin.protectindexpage": False,
                "admin.protectmetadata": False,
                "admin.checkforupdates": False,
                "trusted.url.domains": ["127.0.0.1"],
                "showerrors": True,
                "errorreporting": False,
                "logging.level": 7,  # SimpleSAML\Logger::DEBUG
                "logging.handler": "file",
                "logging.logfile": "simplesamlphp.log",
                "enable.saml20-idp": True,
                "module.enable": {"exampleauth": True, "core": True, "saml": True},
                "store.type": "phpsession",
                "session.phpsession.savepath": self.path("sessions"),
                "session.cookie.secure": False,  # plain HTTP on loopback
                "language.cookie.secure": False,
                "production": False,
            }))
        with open(self.path("config", "authsources.php"), "w") as f:
            f.write("<?php\n$config = ['example-userpass' => %s];\n"
                    % self._userpass(users))
        with open(self.path("metadata", "saml20-idp-hosted.php"), "w") as f:
            f.write("<?php\n$metadata['__DYNAMIC:1__'] = %s;\n" % php_value({
                "host": "__DEFAULT__",
                "privatekey": self.key,
                "certificate": self.cert,
                "auth": "example-userpass",
                "userid.attribute": "uid",  # the persistent NameID is derived from it
                "signature.algorithm": RSA_SHA256,
                "saml20.sign.response": True,
                "saml20.sign.assertion": True,
                "attributes.NameFormat": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
                "NameIDFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            }))
        self.sp_metadata_path = self.path("metadata", "saml20-sp-remote.php")
        with open(self.sp_metadata_path, "w") as f:
            f.write("<?php\n")

    @staticmethod
    def _userpass(users):
        entries = ", ".join("%s => %s" % (php_string("%s:%s" % (u, pw)), php_value(attrs))
                            for u, (pw, attrs) in users.items())
        return "['exampleauth:UserPass', %s]" % entries

    def path(self, *p):
        return os.path.join(self.dir, *p)

    def _env(self):
        return {"PATH": "/usr/bin:/bin", "SIMPLESAMLPHP_CONFIG_DIR": self.path("config"), "HOME": self.dir}

    def _as_user(self):
        return {"user": "www-data", "group": "www-data"} if os.geteuid() == 0 else {}

    def start(self):
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "www-data:www-data", self.dir], check=True)
        with open(self.path("log", "php-server.log"), "w") as out:
            self.proc = subprocess.Popen([PHP, "-S", "127.0.0.1:%d" % self.port, "-t", self.path("docroot")],
                                         cwd=self.path("docroot"), env=self._env(), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, **self._as_user())
        ok = harness.wait_for(lambda: self.proc.poll() is not None or self._metadata_answers(), timeout=20)
        assert ok and self.proc.poll() is None, "SimpleSAMLphp did not start: " + self.log()

    def _metadata_answers(self):
        try:
            return harness.requests.get(self.metadata_url, timeout=2).status_code == 200
        except harness.requests.RequestException:
            return False

    def metadata(self):
        """The IdP's SAML 2.0 metadata XML as SimpleSAMLphp publishes it."""
        r = harness.requests.get(self.metadata_url, timeout=10)
        assert r.status_code == 200, (r.status_code, r.text[:500], self.log())
        return r.text

    def add_sp(self, sp_metadata_xml, **options):
        """Converts an SP's metadata XML to saml20-sp-remote.php (SimpleSAMLphp's SAMLParser) with extra options."""
        import json
        script = self.path("tmp", "convert.php")
        with open(script, "w") as f:
            f.write(CONVERT)
        out = subprocess.run([PHP, script, json.dumps(options), self.sp_metadata_path], input=sp_metadata_xml,
                             capture_output=True, text=True, env=self._env(), timeout=60, **self._as_user())
        assert out.returncode == 0, "metadata conversion failed: " + out.stdout + out.stderr
        with open(self.sp_metadata_path) as f:
            return f.read()

    def sign_in(self, redirect_url, username, password, post=None, session=None):
        """The browser at the IdP: follows portier's redirect to the SSO service (or, with post={SAMLRequest,
        RelayState}, submits portier's HTTP-POST form to it), fills in the login form and returns (ACS URL,
        {SAMLResponse, RelayState}) of the auto-submitting form SimpleSAMLphp answers with."""
        s = session or harness.requests.Session()
        r = s.post(redirect_url, data=post, timeout=20) if post is not None else s.get(redirect_url, timeout=20)
        assert r.status_code == 200 and 'name="password"' in r.text, (r.status_code, r.text[:800], self.log())
        assert urllib.parse.urlsplit(r.url).path.endswith("/module.php/core/loginuserpass.php"), r.url
        fields = dict(re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', r.text))
        assert "AuthState" in fields, r.text[:800]
        data = {k: html.unescape(v) for k, v in fields.items()}
        data.update(username=username, password=password)
        r = s.post(r.url, data=data, timeout=20)
        assert r.status_code == 200, (r.status_code, r.text[:800], self.log())
        action = re.search(r'<form method="post"\s+action="([^"]*)"', r.text)
        assert action, "no SAML POST form from SimpleSAMLphp: %s\n%s" % (r.text[:800], self.log())
        fields = {k: html.unescape(v) for k, v in
                  re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', r.text)}
        return html.unescape(action.group(1)), fields

    def full_log(self):
        """SimpleSAMLphp's own log (debug level)."""
        with open(self.path("log", "simplesamlphp.log"), errors="replace") as f:
            return f.read()

    def log(self):
        out = ""
        for name in ("php-server.log", "simplesamlphp.log"):
            try:
                with open(self.path("log", name), errors="replace") as f:
                    out += "--- %s\n%s\n" % (name, f.read()[-3000:])
            except FileNotFoundError:
                pass
        return out

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not harness.keep_tmp():
            shutil.rmtree(self.dir, ignore_errors=True)
