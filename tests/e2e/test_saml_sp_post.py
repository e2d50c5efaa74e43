"""The broker's messages to an enterprise IdP over the HTTP-POST binding (issue #7 scope 2), against SimpleSAMLphp
1.19 (Debian's simplesamlphp under `php -S`, saml_simplesamlphp.py) with AuthnRequest signatures required
(validate.authnrequest):

  - "postonly": its metadata rewritten to offer only HTTP-POST SingleSignOnService / SingleLogoutService; the
    connection sets no request_binding, so the default (Redirect when offered, else POST) picks POST;
  - "both": its metadata offers both bindings and the connection says `request_binding: post`.

A sign-in is the whole path a browser takes: /saml/sp/login answers an auto-submitting form page (its CSP lets the
form go to that IdP's origin only), the form's SAMLRequest (an enveloped RSA-SHA256 signature, checked here with the
xmlsec1 CLI against the certificate of portier's SP metadata) is posted to SimpleSAMLphp, which verifies it, shows
its login form and posts its Response to portier's ACS; the backend then sees the identity. Single logout goes
both ways over POST too."""
import base64
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse

import pytest
from lxml import etree

import harness
import saml_peers
import saml_simplesamlphp
import saml_sp_env
from saml_sp_env import session_of

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion", "ds": DS,
      "md": MD}
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
RSA_SHA256 = saml_simplesamlphp.RSA_SHA256
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

PASSWORD = "ssp post " + os.urandom(8).hex()
USERS = {
    "posty": (PASSWORD, {"uid": ["posty"], "email": ["posty@post.test"], "displayName": ["Posty"],
                         "groups": ["Engineering"]}),
    "bothy": (PASSWORD, {"uid": ["bothy"], "email": ["bothy@both.test"], "displayName": ["Bothy"],
                         "groups": ["Engineering"]}),
}


def rewrite_metadata(xml, post_only):
    """SimpleSAMLphp's published metadata with its SSO and SLO endpoints offered over HTTP-POST only (post_only)
    or over both bindings (the same Location: SimpleSAMLphp's services take either)."""
    root = etree.fromstring(xml.encode())
    idpsso = root.find(".//md:IDPSSODescriptor", NS)
    for service in ("SingleLogoutService", "SingleSignOnService"):
        found = idpsso.findall("md:" + service, NS)
        assert found, service
        location = found[0].get("Location")
        for el in found:
            idpsso.remove(el)
        bindings = [POST] if post_only else [REDIRECT, POST]
        # metadata schema order: SingleLogoutService, NameIDFormat, SingleSignOnService
        anchor = idpsso.find("md:NameIDFormat", NS) if service == "SingleLogoutService" else None
        for binding in bindings:
            el = etree.Element("{%s}%s" % (MD, service), Binding=binding, Location=location)
            if anchor is not None:
                anchor.addprevious(el)
            else:
                idpsso.append(el)
    return etree.tostring(root).decode()


@pytest.fixture(scope="module")
def env(make_portier):
    class Env:
        pass

    e = Env()
    e.dir = tempfile.mkdtemp(prefix="portier-ssp-post.", dir="/tmp")
    e.idps = {}
    try:
        for name in ("postonly", "both"):
            e.idps[name] = saml_simplesamlphp.SimpleSAMLphpIdP(USERS)
            e.idps[name].start()
        key, cert, _ = saml_peers.make_rsa(e.dir, "portier")
        paths = {}
        for name, idp in e.idps.items():
            paths[name] = os.path.join(e.dir, name + "-idp.xml")
            with open(paths[name], "w") as f:
                f.write(rewrite_metadata(idp.metadata(), post_only=name == "postonly"))
        yaml = f"""saml:
  idp: {{ key: {key}, certificate: {cert} }}
  sp:
    connections:
      - {{ name: postonly, metadata: {paths["postonly"]}, domains: [post.test], match: email, jit: true,
          attributes: {{ username: uid, email: email, display_name: displayName, groups: groups }},
          group_map: {{ Engineering: eng }} }}
      - {{ name: both, metadata: {paths["both"]}, request_binding: post, domains: [both.test], match: email,
          jit: true, attributes: {{ username: uid, email: email, display_name: displayName, groups: groups }},
          group_map: {{ Engineering: eng }} }}
"""
        e.p = make_portier(extra_yaml=yaml, login="")
        e.acs = e.p.base + "/saml/sp/acs"
        e.sp_entity = e.p.base + "/saml/sp/metadata"
        e.sp_metadata = e.p.get("/saml/sp/metadata").text
        e.sp_cert = os.path.join(e.dir, "portier-sp-cert.pem")
        body = re.search(r"<ds:X509Certificate>([^<]*)<", e.sp_metadata).group(1)
        with open(e.sp_cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n"
                    % "\n".join(body[i:i + 64] for i in range(0, len(body), 64)))
        for idp in e.idps.values():
            idp.add_sp(e.sp_metadata, **{"validate.authnrequest": True, "validate.logout": True, "sign.logout": True,
                                         "signature.algorithm": RSA_SHA256})
        yield e
    finally:
        for idp in e.idps.values():
            idp.stop()
        if not harness.keep_tmp():
            shutil.rmtree(e.dir, ignore_errors=True)


def audit(env, action):
    out = env.p.pg.psql("SELECT actor, target, outcome, details::text FROM audit_events WHERE action = '%s' "
                        "ORDER BY id" % action, dbname=env.p.dbname)
    return [line.split("|") for line in out.splitlines() if line]


def post_form(r):
    """(action, {field: value}) of portier's auto-submitting form page."""
    assert r.status_code == 200, (r.status_code, r.text[:300])
    action = re.search(r'<form id="saml-post" method="post" action="([^"]*)"', r.text)
    assert action, r.text[:500]
    fields = dict(re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', r.text))
    return saml_simplesamlphp.html.unescape(action.group(1)), \
        {k: saml_simplesamlphp.html.unescape(v) for k, v in fields.items()}


def start(env, idp):
    r = env.p.get("/saml/sp/login?idp=%s&return_to=/app/%s" % (idp, idp))
    action, fields = post_form(r)
    return r, action, fields


def xmlsec_verify(env, xml_bytes, root_name):
    path = os.path.join(env.dir, "message-%s.xml" % os.urandom(4).hex())
    with open(path, "wb") as f:
        f.write(xml_bytes)
    return subprocess.run(["xmlsec1", "--verify", "--pubkey-cert-pem", env.sp_cert, "--id-attr:ID",
                           "urn:oasis:names:tc:SAML:2.0:protocol:" + root_name, path],
                          capture_output=True, text=True, timeout=30)


def flip_byte(data, index):
    """The same bytes with one bit of data[index] changed: always a different byte, deterministically."""
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def check_signature_shape(msg):
    """An enveloped signature right after saml:Issuer: RSA-SHA256, SHA-256, enveloped + exclusive c14n, #ID."""
    children = [c for c in msg if isinstance(c.tag, str)]
    assert children[0].tag == "{%s}Issuer" % NS["saml"] and children[1].tag == "{%s}Signature" % DS
    sig = children[1]
    assert sig.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm") == RSA_SHA256
    assert sig.find("ds:SignedInfo/ds:CanonicalizationMethod", NS).get("Algorithm") == EXC_C14N
    ref = sig.find("ds:SignedInfo/ds:Reference", NS)
    assert ref.get("URI") == "#" + msg.get("ID")
    assert ref.find("ds:DigestMethod", NS).get("Algorithm") == SHA256
    assert [t.get("Algorithm") for t in ref.findall("ds:Transforms/ds:Transform", NS)] == [ENVELOPED, EXC_C14N]
    assert b"sha1" not in etree.tostring(msg).lower()


def sign_in(env, idp_name, username):
    """portier's form -> SimpleSAMLphp (verifies, login form) -> portier's ACS. (ACS answer, SSP session)."""
    idp = env.idps[idp_name]
    r, action, fields = start(env, idp_name)
    browser = r.cookies[saml_sp_env.BROWSER_COOKIE]
    s = harness.requests.Session()
    acs, answer = idp.sign_in(action, username, PASSWORD, post=fields, session=s)
    assert acs == env.acs, acs
    assert answer.get("RelayState") == fields["RelayState"]
    r = env.p.post("/saml/sp/acs", {"SAMLResponse": answer["SAMLResponse"], "RelayState": answer["RelayState"]},
                   cookies={saml_sp_env.BROWSER_COOKIE: browser})
    assert r.status_code == 303, (r.status_code, r.text[:300], audit(env, "saml.sp.login")[-1:])
    return r, s


def test_post_only_metadata_is_accepted_and_the_default_binding_is_post(env):
    r, action, fields = start(env, "postonly")
    assert action == env.idps["postonly"].sso_url
    assert set(fields) == {"SAMLRequest", "RelayState"}
    req = etree.fromstring(base64.b64decode(fields["SAMLRequest"]))  # plain base64, no DEFLATE
    assert req.tag == "{%s}AuthnRequest" % NS["samlp"]
    assert req.get("Destination") == env.idps["postonly"].sso_url
    assert req.get("AssertionConsumerServiceURL") == env.acs
    assert r.cookies[saml_sp_env.BROWSER_COOKIE]  # the request state as with Redirect
    assert env.p.pg.psql("SELECT count(*) FROM saml_sp_requests WHERE request_id = '%s'" % req.get("ID"),
                         dbname=env.p.dbname) == "1"


def test_request_binding_post_is_used_although_redirect_is_offered(env):
    with open(os.path.join(env.dir, "both-idp.xml"), "rb") as f:
        md = etree.fromstring(f.read())
    bindings = {s.get("Binding") for s in md.findall(".//md:SingleSignOnService", NS)}
    assert bindings == {REDIRECT, POST}
    _, action, fields = start(env, "both")
    assert action == env.idps["both"].sso_url and "SAMLRequest" in fields


def test_form_page_csp_allows_only_that_idps_origin(env):
    r, action, _ = start(env, "postonly")
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    origin = "http://127.0.0.1:%d" % env.idps["postonly"].port
    assert directives["form-action"] == origin, csp
    assert directives["default-src"] == "'none'" and directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "<noscript><button type=\"submit\"" in r.text  # works without script
    other = start(env, "both")[0].headers["content-security-policy"]
    assert "form-action http://127.0.0.1:%d;" % env.idps["both"].port in other and origin not in other


def test_authn_request_signature_verifies_with_xmlsec1_and_fails_after_one_byte_changes(env):
    _, _, fields = start(env, "postonly")
    raw = base64.b64decode(fields["SAMLRequest"])
    req = etree.fromstring(raw)
    check_signature_shape(req)
    ok = xmlsec_verify(env, raw, "AuthnRequest")
    assert ok.returncode == 0 and "OK" in ok.stdout + ok.stderr, ok.stdout + ok.stderr
    # one byte of the signed content (the first character of the Issuer's text)
    index = raw.index(b"<saml:Issuer>") + len(b"<saml:Issuer>")
    changed = flip_byte(raw, index)
    assert changed != raw and len(changed) == len(raw)
    bad = xmlsec_verify(env, changed, "AuthnRequest")
    assert bad.returncode != 0, bad.stdout + bad.stderr


def test_user_signs_in_end_to_end_over_post_with_simplesamlphp_verifying(env):
    r, _ = sign_in(env, "postonly", "posty")
    assert r.headers["location"] == "/app/postonly"
    h = harness.backend_headers(env.p.proxied("/app/postonly", harness.register_secret(session_of(r))))
    assert h["x-portier-user"] == "posty" and h["x-portier-email"] == "posty@post.test"
    assert h["x-portier-groups"] == "eng"
    row = audit(env, "saml.sp.login")[-1]
    assert row[0] == "saml:postonly" and row[1] == "user:posty" and row[2] == "success"
    assert "Validation with key #0 succeeded." in env.idps["postonly"].full_log()  # it checked our signature


def test_explicit_request_binding_post_signs_in_end_to_end(env):
    r, _ = sign_in(env, "both", "bothy")
    h = harness.backend_headers(env.p.proxied("/app/both", harness.register_secret(session_of(r))))
    assert h["x-portier-user"] == "bothy"


def test_simplesamlphp_refuses_a_post_request_with_one_byte_changed(env):
    """validate.authnrequest really checks the POST binding's XML signature: a flipped byte is refused."""
    _, action, fields = start(env, "postonly")
    raw = base64.b64decode(fields["SAMLRequest"])
    index = raw.index(b"<saml:Issuer>") + len(b"<saml:Issuer>")
    forged = dict(fields, SAMLRequest=base64.b64encode(flip_byte(raw, index)).decode())
    ok = harness.requests.post(action, data=fields, timeout=20)
    assert ok.status_code == 200 and 'name="password"' in ok.text
    bad = harness.requests.post(action, data=forged, timeout=20)
    assert 'name="password"' not in bad.text, (bad.status_code, bad.text[:500])


def follow_idp(s, idp, r, stop=None):
    """Follows SimpleSAMLphp's redirects within SimpleSAMLphp; returns the first location elsewhere (or `stop`)."""
    for _ in range(10):
        assert r.status_code in (302, 303), (r.status_code, r.text[:500], idp.log())
        location = r.headers["location"]
        if not location.startswith(idp.base) or (stop is not None and location.startswith(stop)):
            return location
        r = s.get(location, timeout=20, allow_redirects=False)
    pytest.fail("SimpleSAMLphp redirects in circles")


def test_sp_initiated_logout_posts_a_signed_logout_request(env):
    r, s = sign_in(env, "postonly", "posty")
    cookie = harness.register_secret(session_of(r))
    out = env.p.logout(cookie)
    action, fields = post_form(out)
    idp = env.idps["postonly"]
    assert urllib.parse.urlsplit(action).path.endswith("/saml2/idp/SingleLogoutService.php"), action
    assert "form-action http://127.0.0.1:%d;" % idp.port in out.headers["content-security-policy"]
    raw = base64.b64decode(fields["SAMLRequest"])
    req = etree.fromstring(raw)
    assert req.tag == "{%s}LogoutRequest" % NS["samlp"] and req.get("Destination") == action
    check_signature_shape(req)
    assert xmlsec_verify(env, raw, "LogoutRequest").returncode == 0
    assert env.p.proxied("/app", cookie).status_code == 401  # gone at portier already
    # SimpleSAMLphp verifies it, ends its session and answers at portier's SLO endpoint (Redirect binding)
    location = follow_idp(s, idp, s.post(action, data=fields, timeout=20, allow_redirects=False))
    assert location.startswith(env.p.base + "/saml/sp/slo?SAMLResponse="), location
    r = env.p.get(location[len(env.p.base):])
    assert r.status_code == 303 and r.headers["location"] == "/login?logged_out=1"
    row = audit(env, "saml.sp.logout_response")[-1]
    assert row[0] == "saml:postonly" and row[2] == "success", row


def test_idp_initiated_logout_is_answered_over_post(env):
    idp = env.idps["postonly"]
    r, s = sign_in(env, "postonly", "posty")
    cookie = harness.register_secret(session_of(r))
    # SimpleSAMLphp's IdP-initiated logout: its LogoutRequest reaches portier over Redirect (portier's metadata)
    start_url = idp.base + "/saml2/idp/SingleLogoutService.php?ReturnTo=" + urllib.parse.quote(idp.base + "/done")
    location = follow_idp(s, idp, s.get(start_url, timeout=20, allow_redirects=False))
    assert location.startswith(env.p.base + "/saml/sp/slo?SAMLRequest="), location
    answer = env.p.get(location[len(env.p.base):])
    action, fields = post_form(answer)
    assert urllib.parse.urlsplit(action).path.endswith("/saml2/idp/SingleLogoutService.php"), action
    assert "form-action http://127.0.0.1:%d;" % idp.port in answer.headers["content-security-policy"]
    raw = base64.b64decode(fields["SAMLResponse"])
    resp = etree.fromstring(raw)
    assert resp.tag == "{%s}LogoutResponse" % NS["samlp"]
    check_signature_shape(resp)
    assert xmlsec_verify(env, raw, "LogoutResponse").returncode == 0
    assert env.p.proxied("/app", cookie).status_code == 401
    row = audit(env, "saml.sp.logout")[-1]
    assert row[0] == "saml:postonly" and row[2] == "success" and '"sessions": 1' in row[3], row
    done = follow_idp(s, idp, s.post(action, data=fields, timeout=20, allow_redirects=False), stop=idp.base + "/done")
    assert done.startswith(idp.base + "/done"), done
