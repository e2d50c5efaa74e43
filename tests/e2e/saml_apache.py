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
                                   "sn", "groups", "persistent", "eppn"))}))
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


SHIB_LOGGER = """log4j.rootCategory=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.fileName={path}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=%d{{%Y-%m-%d %H:%M:%S}} %p %c %x: %m%n
"""

SHIB_ATTRIBUTES = """<Attributes xmlns="urn:mace:shibboleth:2.0:attribute-map">
    <Attribute name="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" id="persistent-id">
        <AttributeDecoder xsi:type="NameIDAttributeDecoder" formatter="$Name" defaultQualifiers="true"
            xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>
    </Attribute>
    <Attribute name="urn:oid:0.9.2342.19200300.100.1.1" id="uid"/>
    <Attribute name="urn:oid:0.9.2342.19200300.100.1.3" id="mail"/>
    <Attribute name="urn:oid:2.16.840.1.113730.3.1.241" id="displayName"/>
    <Attribute name="urn:oid:2.5.4.42" id="givenName"/>
    <Attribute name="urn:oid:2.5.4.4" id="sn"/>
    <Attribute name="urn:oid:1.3.6.1.4.1.5923.1.5.1.1" id="groups"/>
</Attributes>
"""


class Shibboleth(Apache):
    """Shibboleth SP 3 (shibd + mod_shib) in a private Apache. Its SP metadata is written here from its documented
    default endpoints (/Shibboleth.sso/SAML2/POST, /Shibboleth.sso/SLO/Redirect); shibd runs with its own socket,
    storage and logs in the instance directory. Plain HTTP on loopback needs handlerSSL="false" and
    cookieProps="http"; everything else is the shipped default."""

    def __init__(self):
        super().__init__("shib", None, [("mod_shib", MODULES + "/mod_shib.so")])
        self.entity_id = self.base + "/shibboleth"
        self.key, self.cert, body = __import__("saml_peers").make_rsa(self.dir, "shib-sp")
        self.metadata_path = self.path("sp-metadata.xml")
        h = self.base + "/Shibboleth.sso"
        with open(self.metadata_path, "w") as f:
            f.write(f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{self.entity_id}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data>
    </ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{h}/SLO/Redirect"/>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{h}/SAML2/POST"
        index="1"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
""")
        self.shibd = None

    def configure(self, idp_metadata_xml, idp_entity):
        self.idp_entity = idp_entity
        with open(self.path("idp.xml"), "w") as f:
            f.write(idp_metadata_xml)
        for name in ("shibd", "native"):
            with open(self.path(name + ".logger"), "w") as f:
                f.write(SHIB_LOGGER.format(path=self.path(name + ".log")))
        with open(self.path("attribute-map.xml"), "w") as f:
            f.write(SHIB_ATTRIBUTES)
        with open(self.path("shibboleth2.xml"), "w") as f:
            f.write(f"""<SPConfig xmlns="urn:mace:shibboleth:3.0:native:sp:config"
    xmlns:conf="urn:mace:shibboleth:3.0:native:sp:config" clockSkew="180">
    <OutOfProcess logger="{self.path('shibd.logger')}"/>
    <InProcess logger="{self.path('native.logger')}"/>
    <UnixListener address="{self.path('shibd.sock')}"/>
    <RequestMapper type="Native">
        <RequestMap>
            <Host name="127.0.0.1" port="{self.port}" scheme="http">
                <Path name="secret" authType="shibboleth" requireSession="true"/>
            </Host>
        </RequestMap>
    </RequestMapper>
    <ApplicationDefaults entityID="{self.entity_id}" REMOTE_USER="uid persistent-id">
        <Sessions lifetime="28800" timeout="3600" relayState="ss:mem" checkAddress="false" handlerSSL="false"
                  cookieProps="http" redirectLimit="exact">
            <SSO entityID="{self.idp_entity}">SAML2</SSO>
            <Logout>SAML2 Local</Logout>
            <Handler type="Session" Location="/Session" showAttributeValues="true"/>
        </Sessions>
        <Errors supportContact="root@localhost" helpLocation="/about.html" styleSheet="/shibboleth-sp/main.css"/>
        <MetadataProvider type="XML" validate="true" path="{self.path('idp.xml')}"/>
        <AttributeExtractor type="XML" validate="true" reloadChanges="false" path="{self.path('attribute-map.xml')}"/>
        <CredentialResolver type="File" key="{self.key}" certificate="{self.cert}"/>
    </ApplicationDefaults>
    <SecurityPolicyProvider type="XML" validate="true" path="/etc/shibboleth/security-policy.xml"/>
    <ProtocolProvider type="XML" validate="true" reloadChanges="false" path="/etc/shibboleth/protocols.xml"/>
</SPConfig>
""")
        self.write_conf(f"""ShibConfig {self.path('shibboleth2.xml')}
<Location /Shibboleth.sso>
    SetHandler shib
</Location>
<Location /secret>
    AuthType shibboleth
    ShibRequestSetting requireSession 1
    Require shib-session
</Location>
""")

    def start(self):
        os.chmod(self.key, 0o600)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "www-data:www-data", self.dir], check=True)
        user = ["-u", "www-data", "-g", "www-data"] if os.geteuid() == 0 else []
        self.shibd = subprocess.Popen(["shibd", "-F", "-f", "-c", self.path("shibboleth2.xml"), "-p",
                                       self.path("shibd.pid"), *user], stdout=open(self.path("shibd.out"), "w"),
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ok = harness.wait_for(lambda: os.path.exists(self.path("shibd.sock")) or self.shibd.poll() is not None, 30)
        assert ok and self.shibd.poll() is None, "shibd did not start: " + self.shib_log()
        super().start()

    def shib_log(self):
        out = ""
        for name in ("shibd.out", "shibd.log", "native.log"):
            try:
                with open(self.path(name), errors="replace") as f:
                    out += "--- %s\n%s\n" % (name, f.read()[-2000:])
            except FileNotFoundError:
                pass
        return out

    def stop(self):
        if self.shibd is not None and self.shibd.poll() is None:
            self.shibd.terminate()
            try:
                self.shibd.wait(10)
            except subprocess.TimeoutExpired:
                self.shibd.kill()
                self.shibd.wait()
        super().stop()
