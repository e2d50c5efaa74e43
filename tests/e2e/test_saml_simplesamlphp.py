"""Interop: portier's SAML broker with SimpleSAMLphp 1.19 (Debian's simplesamlphp) as the enterprise IdP.

SimpleSAMLphp runs from its installed code under PHP's built-in web server on loopback with a private
configuration (saml_simplesamlphp.py): the exampleauth:UserPass source, RSA-SHA256 signatures, portier's SP
metadata from /saml/sp/metadata converted by SimpleSAMLphp's own parser, and AuthnRequest signatures checked
(validate.authnrequest). portier gets SimpleSAMLphp's IdP metadata as fetched from its metadata.php. A sign-in is
the whole SP-initiated path: /saml/sp/login at portier, the redirect to SimpleSAMLphp's SSO service, its login
form, its auto-submitting POST to portier's ACS, then a proxied request whose backend sees the mapped identity."""
import base64
import os
import shutil
import tempfile
import urllib.parse

import jwt
import pytest
from lxml import etree

import harness
import saml_peers
import saml_simplesamlphp
import saml_sp_env
from saml_sp_env import session_of

DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion", "ds": DS}
RSA_SHA256 = saml_simplesamlphp.RSA_SHA256
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

SAM_PASSWORD = "ssp sam " + os.urandom(8).hex()
PAT_PASSWORD = "ssp pat " + os.urandom(8).hex()
USERS = {
    # a new user: created at the first sign-in (JIT)
    "sam": (SAM_PASSWORD, {"uid": ["sam"], "email": ["sam@ssp.test"], "displayName": ["Sam Simple"],
                           "groups": ["Engineering", "Sales"], "eduPersonAffiliation": ["member", "staff"]}),
    # a user invited at portier beforehand under another user name: linked by email
    "psmith": (PAT_PASSWORD, {"uid": ["psmith"], "email": ["Pat@ssp.test"], "displayName": ["Pat Smith"],
                              "groups": ["Engineering", "Staff"], "eduPersonAffiliation": ["staff"]}),
}


@pytest.fixture(scope="module")
def ssp():
    idp = saml_simplesamlphp.SimpleSAMLphpIdP(USERS)
    try:
        idp.start()
        yield idp
    finally:
        idp.stop()


@pytest.fixture(scope="module")
def env(ssp, make_portier):
    class Env:
        pass

    e = Env()
    e.ssp = ssp
    e.dir = tempfile.mkdtemp(prefix="portier-ssp-sp.", dir="/tmp")
    try:
        key, cert, _ = saml_peers.make_rsa(e.dir, "portier")
        e.idp_metadata = ssp.metadata()
        md_path = os.path.join(e.dir, "simplesamlphp-idp.xml")
        with open(md_path, "w") as f:
            f.write(e.idp_metadata)
        yaml = f"""saml:
  idp: {{ key: {key}, certificate: {cert} }}
  sp:
    connections:
      - name: ssp
        label: SimpleSAMLphp
        metadata: {md_path}
        domains: [ssp.test]
        match: email
        jit: true
        attributes: {{ username: uid, email: email, display_name: displayName, groups: groups }}
        group_map: {{ Engineering: eng, Staff: staff }}
"""
        e.p = make_portier(extra_yaml=yaml, login="")
        e.acs = e.p.base + "/saml/sp/acs"
        e.sp_entity = e.p.base + "/saml/sp/metadata"
        r = e.p.get("/saml/sp/metadata")
        assert r.status_code == 200
        e.sp_remote = ssp.add_sp(r.text, **{"validate.authnrequest": True, "signature.algorithm": RSA_SHA256})
        yield e
    finally:
        if not harness.keep_tmp():
            shutil.rmtree(e.dir, ignore_errors=True)


def audit(env, action):
    out = env.p.pg.psql("SELECT actor, target, outcome, details::text FROM audit_events WHERE action = '%s' "
                        "ORDER BY id" % action, dbname=env.p.dbname)
    return [line.split("|") for line in out.splitlines() if line]


def sign_in(env, username, password, return_to):
    """portier -> SimpleSAMLphp (login form) -> portier's ACS. Returns (ACS response, decoded SAML Response, the
    POST that reached the ACS and the browser cookie, for a replay)."""
    r = env.p.get("/saml/sp/login?idp=ssp&return_to=" + return_to)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    location = r.headers["location"]
    assert location.startswith(env.ssp.sso_url + "?SAMLRequest="), location
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert q["SigAlg"] == [RSA_SHA256]
    browser = r.cookies[saml_sp_env.BROWSER_COOKIE]
    action, fields = env.ssp.sign_in(location, username, password)
    assert action == env.acs, action
    assert fields.get("RelayState") == q["RelayState"][0]  # echoed unchanged
    xml = base64.b64decode(fields["SAMLResponse"])
    post = {"SAMLResponse": fields["SAMLResponse"], "RelayState": fields["RelayState"]}
    r = env.p.post("/saml/sp/acs", post, cookies={saml_sp_env.BROWSER_COOKIE: browser})
    if r.status_code != 303:
        rows = audit(env, "saml.sp.login")
        pytest.fail("ACS answered %d: %s\naudit: %s\nSimpleSAMLphp: %s" % (r.status_code, r.text[:300],
                                                                           rows[-1:] if rows else None,
                                                                           env.ssp.log()))
    return r, etree.fromstring(xml), post, browser


def test_metadata_exchanged_both_ways(env):
    """portier loaded SimpleSAMLphp's published metadata; SimpleSAMLphp's parser read portier's SP metadata."""
    md = etree.fromstring(env.idp_metadata.encode())
    assert md.get("entityID") == env.ssp.entity_id
    sso = md.findall(".//{urn:oasis:names:tc:SAML:2.0:metadata}SingleSignOnService")
    assert any(s.get("Location") == env.ssp.sso_url and s.get("Binding").endswith("HTTP-Redirect") for s in sso)
    assert "'entityid' => '%s'" % env.sp_entity in env.sp_remote
    assert "'Location' => '%s'" % env.acs in env.sp_remote
    assert "'validate.authnrequest' => true" in env.sp_remote
    r = env.p.get("/login?return_to=/app")
    assert 'id="sso-ssp"' in r.text and "SimpleSAMLphp" in r.text


def test_jit_user_signs_in_through_simplesamlphp_with_mapped_identity_and_groups(env):
    r, resp, post, browser = sign_in(env, "sam", SAM_PASSWORD, "/app/sam")
    # what SimpleSAMLphp sent: Response and Assertion signed with RSA-SHA256 / SHA-256, a persistent NameID
    assert resp.find("saml:Issuer", NS).text == env.ssp.entity_id
    sigs = resp.findall(".//ds:Signature", NS)
    assert len(sigs) == 2, etree.tostring(resp)[:2000]
    for sig in sigs:
        assert sig.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm") == RSA_SHA256
        assert sig.find("ds:SignedInfo/ds:Reference/ds:DigestMethod", NS).get("Algorithm") == SHA256
    name_id = resp.find("saml:Assertion/saml:Subject/saml:NameID", NS)
    assert name_id.get("Format") == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    assert r.headers["location"] == "/app/sam"
    cookie = harness.register_secret(session_of(r))
    assert cookie
    h = harness.backend_headers(env.p.proxied("/app/sam", cookie))
    assert h["x-portier-user"] == "sam"
    assert h["x-portier-email"] == "sam@ssp.test"
    assert h["x-portier-groups"] == "eng"  # Sales is not mapped
    claims = jwt.decode(h["x-portier-jwt-assertion"], options={"verify_signature": False})
    assert claims["groups"] == ["eng"] and claims["sub"]
    assert env.p.pg.psql("SELECT display_name FROM users WHERE username = 'sam'", dbname=env.p.dbname) == \
        "Sam Simple"
    assert env.p.pg.psql("SELECT name_id FROM saml_sp_identities i JOIN users u ON u.id = i.user_id "
                         "WHERE u.username = 'sam'", dbname=env.p.dbname) == name_id.text
    row = audit(env, "saml.sp.login")[-1]
    assert row[0] == "saml:ssp" and row[1] == "user:sam" and row[2] == "success"
    created = [x for x in audit(env, "user.create") if x[1] == "user:sam"]
    assert len(created) == 1 and created[0][0] == "saml:ssp"
    # the same SimpleSAMLphp response posted again is refused: its request was used up
    again = env.p.post("/saml/sp/acs", post, cookies={saml_sp_env.BROWSER_COOKIE: browser})
    assert again.status_code in (400, 403) and not session_of(again), again.status_code
    row = audit(env, "saml.sp.login")[-1]
    assert row[0] == "saml:ssp" and row[2] == "failure" and '"unknown_request"' in row[3], row


def test_second_sign_in_finds_the_user_by_name_id(env):
    r, resp, _, _ = sign_in(env, "sam", SAM_PASSWORD, "/app/again")
    assert r.headers["location"] == "/app/again"
    h = harness.backend_headers(env.p.proxied("/app/again", harness.register_secret(session_of(r))))
    assert h["x-portier-user"] == "sam" and h["x-portier-groups"] == "eng"
    assert env.p.pg.psql("SELECT count(*) FROM users WHERE email ILIKE 'sam@ssp.test'", dbname=env.p.dbname) == "1"
    assert len([x for x in audit(env, "user.create") if x[1] == "user:sam"]) == 1


def test_invited_user_is_linked_by_email_and_gets_mapped_groups(env):
    """Pre-provisioned with `portier user invite` (another user name, the address in another case): the
    SimpleSAMLphp sign-in links to that user instead of creating one."""
    env.p.invite("pat", "--email", "pat@ssp.test", "--name", "Pat")
    r, resp, _, _ = sign_in(env, "psmith", PAT_PASSWORD, "/app/pat")
    assert r.headers["location"] == "/app/pat"
    h = harness.backend_headers(env.p.proxied("/app/pat", harness.register_secret(session_of(r))))
    assert h["x-portier-user"] == "pat"
    assert h["x-portier-email"].lower() == "pat@ssp.test"
    assert sorted(h["x-portier-groups"].split(",")) == ["eng", "staff"]
    claims = jwt.decode(h["x-portier-jwt-assertion"], options={"verify_signature": False})
    assert sorted(claims["groups"]) == ["eng", "staff"]
    assert env.p.pg.psql("SELECT count(*) FROM users WHERE username = 'psmith'", dbname=env.p.dbname) == "0"
    name_id = resp.find("saml:Assertion/saml:Subject/saml:NameID", NS).text
    assert env.p.pg.psql("SELECT u.username FROM saml_sp_identities i JOIN users u ON u.id = i.user_id "
                         "WHERE i.name_id = '%s'" % name_id, dbname=env.p.dbname) == "pat"
    row = audit(env, "saml.sp.login")[-1]
    assert row[0] == "saml:ssp" and row[1] == "user:pat" and row[2] == "success"
    assert not [x for x in audit(env, "user.create") if x[0] == "saml:ssp" and x[1] != "user:sam"]


def test_simplesamlphp_checks_the_authn_request_signature(env):
    """validate.authnrequest is really on: the same redirect with a RelayState the signature does not cover is
    refused by SimpleSAMLphp before any login form, while the untouched one gets the form."""
    r = env.p.get("/saml/sp/login?idp=ssp&return_to=/app")
    assert r.status_code == 303
    location = r.headers["location"]
    ok = harness.requests.get(location, timeout=20)
    assert ok.status_code == 200 and 'name="password"' in ok.text
    forged = location.replace("&RelayState=", "&RelayState=x", 1)
    assert forged != location
    bad = harness.requests.get(forged, timeout=20)
    # SimpleSAMLphp 1.19 shows its error page with status 200
    assert 'name="password"' not in bad.text and "Unhandled exception" in bad.text, (bad.status_code, bad.text[:500])
    assert "Unable to validate signature on query string" in env.ssp.full_log(), env.ssp.log()
