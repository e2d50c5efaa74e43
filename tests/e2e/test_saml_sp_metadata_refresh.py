"""Enterprise IdP metadata refreshed from a URL (issue #7): a Python HTTPS server on loopback serves the IdP's
metadata, signed (python3-xmlsec) by a pinned "federation" key; portier fetches it every second. Shown: a key
rotation (the new key's responses accepted, the old key's refused), every kind of bad metadata refused while the
last good metadata stays in use (audited with the reason, counted, logged), and the backing file used after a
restart with the URL unreachable."""
import copy
import http.server
import json
import os
import ssl
import tempfile
import threading
import time

import pytest
from lxml import etree

import harness
import saml_peers
import saml_test_idp
from saml_sp_env import BROWSER_COOKIE, session_of
from saml_test_idp import NS

ENTITY = "https://rot.idp.test/saml"


def metadata(cert_body, entity_id=ENTITY, valid_until=None, sso="https://rot.idp.test/sso"):
    vu = ' validUntil="%s"' % valid_until if valid_until else ""
    keys = "".join(f"""<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}
</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>""" for body in cert_body.split())
    return etree.fromstring(f"""<md:EntityDescriptor xmlns:md="{NS['md']}" xmlns:ds="{NS['ds']}" ID="_md1"
 entityID="{entity_id}"{vu}><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
{keys}
<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/>
</md:IDPSSODescriptor></md:EntityDescriptor>""".encode())


def signed(element, key, cert=None, sha1=False):
    saml_test_idp.sign(element, key, cert, sha1=sha1)
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")


class MetadataServer:
    """HTTPS on 127.0.0.1 (the dev TLS certificate, pinned by portier through metadata_ca); serves `body`."""

    def __init__(self, cert, key, body):
        self.body = body
        self.cycle = None  # a list: each request gets the next document
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                data = outer.cycle[outer.hits % len(outer.cycle)] if outer.cycle else outer.body
                self.send_response(200)
                self.send_header("content-type", "application/samlmetadata+xml")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = "https://127.0.0.1:%d/federationmetadata.xml" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Env:
    def __init__(self, make_portier, keys):
        self.dir = tempfile.mkdtemp(prefix="portier-md-refresh.", dir="/tmp")
        os.chmod(self.dir, 0o755)
        key, cert, _ = saml_peers.make_rsa(self.dir, "portier")
        self.fed_key, self.fed_cert, _ = saml_peers.make_rsa(self.dir, "federation")  # signs the metadata
        self.other_key, self.other_cert, _ = saml_peers.make_rsa(self.dir, "other")
        self.a = saml_test_idp.TestIdP(self.dir, "key-a", entity_id=ENTITY)
        self.b = saml_test_idp.TestIdP(self.dir, "key-b", entity_id=ENTITY)
        self.good_a = signed(metadata(self.a.cert_body), self.fed_key)
        self.backing = os.path.join(self.dir, "rot-idp.xml")
        with open(self.backing, "wb") as f:
            f.write(self.good_a)
        self.server = MetadataServer(keys.cert, keys.key, self.good_a)
        yaml = f"""saml:
  idp: {{ key: {key}, certificate: {cert} }}
  sp:
    metadata_refresh_minimum: 1s
    connections:
      - {{ name: rot, metadata: {self.backing}, domains: [rot.test], jit: true, attributes: {{ username: uid, email: mail }},
          metadata_url: "{self.server.url}", metadata_ca: {keys.cert},
          metadata_signing_certificate: {self.fed_cert}, metadata_refresh: 1s }}
"""
        self.p = make_portier(extra_yaml=yaml, login="")
        self.acs = self.p.base + "/saml/sp/acs"
        self.sp_entity = self.p.base + "/saml/sp/metadata"

    def sign_in(self, idp, uid):
        r = self.p.get("/saml/sp/login?idp=rot&return_to=/app")
        assert r.status_code == 303, (r.status_code, r.text[:300])
        xml, q = saml_test_idp.parse_redirect(r.headers["location"])
        rid = etree.fromstring(xml).get("ID")
        resp = idp.response(self.acs, self.sp_entity, in_response_to=rid, name_id="n-" + uid,
                            attributes={"uid": uid, "mail": uid + "@rot.test"})
        saml_test_idp.sign(saml_test_idp.assertion_of(resp), idp.key, idp.cert)
        return self.p.post("/saml/sp/acs", {"SAMLResponse": saml_test_idp.encode(resp), "RelayState": q["RelayState"]},
                           cookies={BROWSER_COOKIE: r.cookies[BROWSER_COOKIE]})

    def login_reasons(self):
        out = self.p.pg.psql("SELECT details::text FROM audit_events WHERE action = 'saml.sp.login' ORDER BY id",
                             dbname=self.p.dbname)
        return [line for line in out.splitlines() if line]

    def refresh_events(self):
        out = self.p.pg.psql("SELECT actor || ' ' || target, outcome, details::text FROM audit_events WHERE action = "
                             "'saml.sp.metadata_refresh' ORDER BY id", dbname=self.p.dbname)
        return [line.split("|") for line in out.splitlines() if line]

    def serve_and_wait(self, body, outcome, reason=None):
        """Serves body until portier has audited a refresh with this outcome (and reason) after now."""
        before = len(self.refresh_events())
        self.server.body = body

        def seen():
            for actor, out, details in self.refresh_events()[before:]:
                if actor == "system saml:rot" and out == outcome and (reason is None or json.loads(details)["reason"] == reason):
                    return True
            return False
        assert harness.wait_for(seen, timeout=10, interval=0.2), (outcome, reason, self.refresh_events()[before:])

    def accepted(self, idp, uid):
        r = self.sign_in(idp, uid)
        return r.status_code == 303 and session_of(r) is not None

    def last_login_reason(self):
        return json.loads(self.login_reasons()[-1]).get("reason")


@pytest.fixture(scope="module")
def env(make_portier, keys):
    e = Env(make_portier, keys)
    yield e
    e.server.stop()


def test_1_rotation_new_key_accepted_old_key_refused(env):
    assert env.accepted(env.a, "alice")
    assert not env.accepted(env.b, "bob")
    assert env.last_login_reason() == "bad_signature"
    good_b = signed(metadata(env.b.cert_body, sso="https://rot.idp.test/sso2"), env.fed_key)
    env.serve_and_wait(good_b, "success")
    assert env.accepted(env.b, "bob")
    assert not env.accepted(env.a, "alice")
    assert env.last_login_reason() == "bad_signature"
    r = env.p.get("/saml/sp/login?idp=rot")  # the other endpoints came along
    assert r.headers["location"].startswith("https://rot.idp.test/sso2?")
    with open(env.backing, "rb") as f:  # the backing file is the fetched document, byte for byte
        assert f.read() == good_b
    assert 'portier_saml_sp_metadata_refresh_total{idp="rot",outcome="success"}' in env.p.metrics()


def bad_documents(env):
    b = env.b.cert_body
    tampered = etree.fromstring(signed(metadata(b), env.fed_key))
    tampered.find(".//md:SingleSignOnService", NS).set("Location", "https://evil.test/sso")
    big = metadata(b)
    etree.SubElement(big, "{%s}Extensions" % NS["md"]).text = "x" * (1024 * 1024 + 1)
    doctype = signed(metadata(b), env.fed_key).replace(b"<md:EntityDescriptor",
                                                       b"<!DOCTYPE x [<!ENTITY e \"e\">]><md:EntityDescriptor", 1)
    return {
        "unsigned": (etree.tostring(metadata(b)), "unsigned"),
        "tampered": (etree.tostring(tampered), "bad_signature"),
        "other_key_with_its_certificate_in_keyinfo": (signed(metadata(b), env.other_key, env.other_cert),
                                                      "bad_signature"),
        "sha1": (signed(metadata(b), env.fed_key, sha1=True), "sha1"),
        "wrong_entity_id": (signed(metadata(b, entity_id="https://evil.idp.test/saml"), env.fed_key), "entity_id"),
        "expired": (signed(metadata(b, valid_until=saml_test_idp.instant(-60)), env.fed_key), "expired"),
        "doctype": (doctype, "doctype"),
        "oversized": (etree.tostring(big), "too_large"),
    }


def test_2_bad_metadata_is_refused_and_the_last_good_stays(env):
    with open(env.backing, "rb") as f:
        good = f.read()
    for name, (body, reason) in bad_documents(env).items():
        env.serve_and_wait(body, "failure", reason)
        assert env.accepted(env.b, "bob"), name  # still the last good metadata
        with open(env.backing, "rb") as f:
            assert f.read() == good, name
    log = env.p.log_text()
    assert '"event":"sp.metadata_refresh_failed"' in log.replace(" ", "")
    assert "pinned metadata_signing_certificate" in log
    assert 'portier_saml_sp_metadata_refresh_total{idp="rot",outcome="failure"}' in env.p.metrics()


def test_3_sign_ins_during_swaps_see_whole_metadata(env):
    """Workers verify responses while the refresher swaps the metadata under them (run under ASan: a snapshot freed
    too early would be reported). Two good documents alternate, both with key B; every sign-in must pass."""
    docs = [signed(metadata(env.b.cert_body + " " + env.a.cert_body, sso="https://rot.idp.test/sso%d" % i),
                   env.fed_key) for i in range(2)]
    before = len(env.refresh_events())
    deadline = time.monotonic() + 2.0
    env.server.cycle = docs  # every fetch brings the other document: every refresh swaps
    results = []

    def worker():
        while time.monotonic() < deadline:
            results.append(env.accepted(env.b, "bob"))
    try:
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        env.server.cycle = None
    assert results and all(results), results
    events = [e for e in env.refresh_events()[before:] if e[1] == "success"]
    assert len(events) >= 2, events  # swaps really happened meanwhile


def test_4_backing_file_is_used_after_a_restart_without_the_network(env):
    last = signed(metadata(env.b.cert_body), env.fed_key)  # B only, as at the end of test 1
    env.serve_and_wait(last, "success")
    env.p.stop()
    env.server.stop()  # the URL is unreachable from now on
    env.p.start()
    assert env.accepted(env.b, "bob")
    assert not env.accepted(env.a, "alice")
    assert harness.wait_for(lambda: any(o == "failure" and json.loads(d)["reason"] == "fetch"
                                        for _, o, d in env.refresh_events()), timeout=10, interval=0.2)
