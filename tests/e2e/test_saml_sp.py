"""portier as a SAML service provider (broker) for enterprise IdPs (issue #7): metadata, the signed AuthnRequest,
a complete sign-in with the session at the backend, JIT provisioning and the attribute/group mapping, linking by
email, not-provisioned and disabled users, trusted MFA, and the audit trail. The attacks are in
test_saml_sp_attacks.py."""
import base64
import re
import urllib.parse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

import harness
import saml_sp_env
import saml_test_idp
from saml_sp_env import session_of
from saml_test_idp import MFA_CLASS


@pytest.fixture(scope="module")
def env(make_portier):
    return saml_sp_env.Env(make_portier)


def sign_in(env, name_id, attributes, authn_class=saml_test_idp.PASSWORD_CLASS, return_to="/app"):
    rid, rs, browser, _ = env.start(return_to=return_to)
    resp = env.response(rid=rid, name_id=name_id, attributes=attributes, authn_class=authn_class)
    saml_test_idp.sign(saml_test_idp.assertion_of(resp), env.acme.key, env.acme.cert)
    return env.post(resp, rs, browser)


def continue_href(r):
    import html
    return html.unescape(re.search(r'id="sso-continue"[^>]* href="([^"]*)"', r.text).group(1))


def test_sp_metadata_names_entity_acs_and_certificate(env):
    r = env.p.get("/saml/sp/metadata")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/samlmetadata+xml")
    assert 'entityID="%s"' % env.sp_entity in r.text
    assert re.search(r'AssertionConsumerService Binding="[^"]*HTTP-POST" Location="%s"' % re.escape(env.acs), r.text)
    assert 'AuthnRequestsSigned="true"' in r.text and "<ds:X509Certificate>" in r.text
    assert re.search(r'SingleLogoutService Binding="[^"]*HTTP-Redirect" Location="%s/saml/sp/slo"' % re.escape(env.p.base), r.text)


def test_authn_request_is_signed_rsa_sha256_over_redirect(env):
    rid, rs, browser, location = env.start()
    assert location.startswith(env.acme.sso_url + "?")
    xml, q = saml_test_idp.parse_redirect(location)
    req = saml_test_idp.etree.fromstring(xml)
    assert req.get("Destination") == env.acme.sso_url
    assert req.get("AssertionConsumerServiceURL") == env.acs
    assert req.find("saml:Issuer", saml_test_idp.NS).text == env.sp_entity
    assert q["SigAlg"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert len(rs) <= 80
    # the signature over the raw query (SAML bindings 3.4.4.1) verifies with the certificate of our metadata
    raw = urllib.parse.urlsplit(location).query
    signed = raw[:raw.index("&Signature=")]
    md = env.p.get("/saml/sp/metadata").text
    der = base64.b64decode(re.search(r"<ds:X509Certificate>([^<]*)<", md).group(1))
    cert = x509.load_der_x509_certificate(der)
    cert.public_key().verify(base64.b64decode(q["Signature"]), signed.encode(), padding.PKCS1v15(), hashes.SHA256())


def test_browser_cookie_is_samesite_none_secure_httponly(env):
    r = env.p.get("/saml/sp/login?idp=acme")
    line = [c for c in harness.set_cookies(r) if c.startswith(saml_sp_env.BROWSER_COOKIE)][0]
    _, _, attrs = harness.cookie_attributes(line)
    assert "secure" in attrs and "httponly" in attrs and attrs.get("samesite", "").lower() == "none"


def test_jit_user_signs_in_with_mapped_identity_and_groups(env):
    r = sign_in(env, "acme-1001", {"uid": "carol", "mail": "carol@acme.test", "displayName": "Carol Acme",
                                   "memberOf": ["Engineering", "Sales"]})
    assert r.status_code == 303, r.text[:300]
    assert r.headers["location"] == "/app"
    cookie = session_of(r)
    assert cookie
    h = harness.backend_headers(env.p.proxied("/app", cookie))
    assert h["x-portier-user"] == "carol"
    assert h["x-portier-email"] == "carol@acme.test"
    assert h["x-portier-groups"] == "eng"  # only mapped groups
    rows = env.audit()
    assert rows[-1][0] == "saml:acme" and rows[-1][1] == "user:carol" and rows[-1][2] == "success"
    assert any(r[1] == "user:carol" for r in env.audit("user.create"))


def test_second_login_links_by_name_id_and_updates_groups(env):
    r = sign_in(env, "acme-1001", {"uid": "carol", "mail": "carol@acme.test", "displayName": "Carol A.",
                                   "memberOf": ["Admins"]}, authn_class=MFA_CLASS)
    assert r.status_code == 303
    h = harness.backend_headers(env.p.proxied("/admin/x", session_of(r)))
    assert h["x-portier-groups"] == "admins"  # eng removed, admins added
    removed = env.audit("group.remove_member")
    assert removed and removed[-1][0] == "saml:acme" and '"eng"' in removed[-1][3]


def test_existing_user_is_linked_by_email(env):
    env.p.setup("dave", email="dave@acme.test", name="Dave")
    r = sign_in(env, "acme-2002", {"mail": "dave@acme.test"})
    assert r.status_code == 303
    h = harness.backend_headers(env.p.proxied("/app", session_of(r)))
    assert h["x-portier-user"] == "dave"
    assert env.p.pg.psql("SELECT count(*) FROM saml_sp_identities WHERE name_id = 'acme-2002'",
                         dbname=env.p.dbname).strip() == "1"


def test_email_of_another_domain_is_refused(env):
    r = sign_in(env, "acme-3003", {"mail": "eve@other.test", "uid": "eve"})
    assert r.status_code == 403 and not session_of(r)
    assert '"foreign_domain"' in env.last_reason()[3]


def test_unknown_user_without_jit_gets_not_provisioned_page(env):
    rid, rs, browser, _ = env.start(idp="open")
    resp = env.response(idp=env.open, rid=rid, name_id="o-1", attributes={"uid": "nobody-here"})
    saml_test_idp.sign(resp, env.open.key, env.open.cert)
    r = env.post(resp, rs, browser)
    assert r.status_code == 403 and not session_of(r)
    assert "not provisioned" in r.text
    assert '"not_provisioned"' in env.last_reason()[3]


def test_disabled_user_is_refused(env):
    env.p.setup("frank", email="frank@acme.test")
    env.p.cli("user", "disable", "frank")
    r = sign_in(env, "acme-4004", {"mail": "frank@acme.test"})
    assert r.status_code == 403 and not session_of(r)
    assert '"disabled"' in env.last_reason()[3]


def test_trusted_mfa_context_gives_an_mfa_session(env):
    r = sign_in(env, "acme-5005", {"uid": "grace", "mail": "grace@acme.test"}, authn_class=MFA_CLASS)
    assert r.status_code == 303
    amr = env.p.pg.psql("SELECT auth_methods FROM sessions s JOIN users u ON u.id = s.user_id "
                        "WHERE u.username = 'grace'", dbname=env.p.dbname).strip()
    assert amr == "{pwd,otp}"
    assert '"mfa_asserted": true' in env.last_reason()[3]


def test_return_to_is_validated_when_the_sign_in_starts(env):
    r = sign_in(env, "acme-1001", {"mail": "carol@acme.test"}, return_to="https://evil.example/x")
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_home_realm_discovery_by_email_domain(env):
    r = env.p.get("/saml/sp/login?email=someone@ACME.test")
    # the login page's form may only submit to portier (CSP form-action 'self', also for redirects): portier
    # answers with a page that moves on to the IdP by script or link
    assert r.status_code == 200 and 'src="/saml/sp/go.js"' in r.text
    assert continue_href(r).startswith(env.acme.sso_url + "?SAMLRequest=")
    assert env.p.get("/saml/sp/go.js").status_code == 200
    r = env.p.get("/saml/sp/login?email=someone@nowhere.test")
    assert r.status_code == 404


def test_login_page_offers_company_sign_in_and_a_button_per_connection(env):
    r = env.p.get("/login?return_to=/app")
    assert r.status_code == 200
    assert "Sign in with your company account" in r.text
    assert 'action="/saml/sp/login"' in r.text and 'name="email"' in r.text
    assert 'id="sso-acme"' in r.text and "ACME Corp" in r.text and 'id="sso-open"' in r.text
    assert 'href="/saml/sp/login?idp=acme&amp;return_to=/app"' in r.text, re.findall(r"<a [^>]*sso-acme[^>]*>", r.text)


def test_sso_only_domain_refuses_password_login_like_a_wrong_password(env):
    env.p.setup("heidi", email="heidi@acme.test")
    env.p.setup("ivan", email="ivan@elsewhere.test")
    sso_only = env.p.login("heidi")
    wrong = env.p.login("ivan", password="not the right password at all")
    assert sso_only.status_code == wrong.status_code == 401
    assert not session_of(sso_only)
    strip = lambda t: t.replace("heidi", "").replace("ivan", "")
    assert strip(sso_only.text).split('name="csrf"')[0] == strip(wrong.text).split('name="csrf"')[0]
    assert env.p.login("ivan").status_code == 303  # other domains keep their passwords
    rows = env.p.pg.psql("SELECT details::text FROM audit_events WHERE action = 'login.failure' AND target = "
                         "'user:heidi'", dbname=env.p.dbname)
    assert '"sso_only"' in rows


def test_mfa_required_group_without_trusted_mfa_steps_up_through_portier(env):
    """admins need MFA (mfa.required_groups): a password-class assertion gets no session, but portier's own
    second-factor step (here: enrolment first, the user has no factor yet)."""
    r = sign_in(env, "acme-6006", {"uid": "judy", "mail": "judy@acme.test", "memberOf": ["Admins"]})
    assert r.status_code == 303 and r.headers["location"] == "/account/mfa"
    assert not session_of(r)
    assert r.cookies.get("__Host-portier-mfa")
    assert env.p.pg.psql("SELECT purpose FROM mfa_challenges c JOIN users u ON u.id = c.user_id "
                         "WHERE u.username = 'judy'", dbname=env.p.dbname).strip() == "enrol"
    assert '"next": "mfa"' in env.last_reason()[3]


def test_config_errors_name_file_line_and_key(env):
    import os
    import subprocess
    broken = os.path.join(env.dir, "broken-idp.xml")
    with open(broken, "w") as f:  # an IdP without signing certificate
        f.write('<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://x.test">'
                '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
                '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
                'Location="https://x.test/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>')
    with open(env.p.config) as f:
        text = f.read()
    head, rest = text.split("    connections:\n", 1)
    tail = rest[rest.index("routes:"):]
    bad = head + f"""    connections:
      - {{ name: x, metadata: {broken}, match: sometimes, colour: blue }}
      - {{ name: "bad name!", metadata: {env.acme.metadata_path}, sso_only: true }}
      - {{ name: dup, metadata: {env.acme.metadata_path}, domains: [acme.test] }}
""" + tail
    path = os.path.join(env.dir, "bad.yaml")
    with open(path, "w") as f:
        f.write(bad)
    out = subprocess.run([harness.BIN, "check-config", "-c", path], capture_output=True, text=True)
    assert out.returncode != 0
    err = out.stderr
    assert "saml.sp.connections[0].metadata: %s: no RSA signing certificate" % broken in err, err
    assert "saml.sp.connections[0].match: \"sometimes\" is not one of email, username" in err, err
    assert "saml.sp.connections[0].colour: unknown key" in err, err
    assert "saml.sp.connections[1].name: must be 1-64 letters" in err, err
    assert "saml.sp.connections[1]: sso_only needs domains" in err, err
    assert "IdP https://acme.idp.test/saml is already configured" in err, err
    assert re.search(r"bad\.yaml:\d+: saml\.sp\.connections\[0\]", err), err


def test_interop_pysaml2_idp_signs_a_user_in_with_groups_at_the_backend(env):
    import urllib.parse as up
    import saml_pysaml2_idp
    idp = saml_pysaml2_idp.PySaml2IdP(env.dir, env.pysaml2, env.p.get("/saml/sp/metadata").text)
    r = env.p.get("/saml/sp/login?email=kim@pysaml2.test&return_to=/app/kim")
    assert r.status_code == 200 and continue_href(r).startswith(env.pysaml2.sso_url)
    q = up.parse_qs(up.urlsplit(continue_href(r)).query)
    browser = r.cookies[saml_sp_env.BROWSER_COOKIE]
    response, acs = idp.answer(q["SAMLRequest"][0], "pysaml2-kim", {
        "uid": ["kim"], "mail": ["kim@pysaml2.test"], "displayName": ["Kim P."],
        "eduPersonAffiliation": ["staff", "member"]})
    assert acs == env.acs
    r = env.post(response, q["RelayState"][0], browser)
    assert r.status_code == 303, (r.status_code, r.text[:300], env.last_reason())
    assert r.headers["location"] == "/app/kim"
    h = harness.backend_headers(env.p.proxied("/app/kim", session_of(r)))
    assert h["x-portier-user"] == "kim" and h["x-portier-email"] == "kim@pysaml2.test"
    assert h["x-portier-groups"] == "staff"
    import jwt
    claims = jwt.decode(h["x-portier-jwt-assertion"], options={"verify_signature": False})
    assert claims["groups"] == ["staff"] and claims["sub"]


def signed_in_session(env, name_id, uid):
    rid, rs, browser, _ = env.start()
    resp = env.response(rid=rid, name_id=name_id, attributes={"uid": uid, "mail": uid + "@acme.test"})
    a = saml_test_idp.assertion_of(resp)
    index = a.find("saml:AuthnStatement", saml_test_idp.NS).get("SessionIndex")
    saml_test_idp.sign(a, env.acme.key, env.acme.cert)
    r = env.post(resp, rs, browser)
    assert r.status_code == 303
    cookie = session_of(r)
    assert env.p.proxied("/app", cookie).status_code == 200
    return cookie, index


def test_idp_initiated_logout_ends_the_session_and_answers_signed(env):
    cookie, index = signed_in_session(env, "acme-slo-1", "leo")
    other, _ = signed_in_session(env, "acme-slo-2", "mia")
    q = saml_test_idp.logout_request_query(env.acme, env.p.base + "/saml/sp/slo", "acme-slo-1", index,
                                           relay_state="abc")
    r = env.p.get("/saml/sp/slo?" + q)
    assert r.status_code == 303, r.text[:300]
    assert r.headers["location"].startswith(env.acme.slo_url + "?SAMLResponse=")
    xml, params = saml_test_idp.parse_redirect(r.headers["location"].replace("SAMLResponse=", "SAMLRequest=", 1))
    assert b"LogoutResponse" in xml and b"status:Success" in xml and params["RelayState"] == "abc"
    assert harness.wait_for(lambda: env.p.proxied("/app", cookie).status_code == 401, timeout=5)
    assert env.p.proxied("/app", other).status_code == 200  # another subject's session stays
    rows = env.audit("saml.sp.logout")
    assert rows[-1][0] == "saml:acme" and rows[-1][2] == "success" and '"sessions": 1' in rows[-1][3]
    # the same request again is a replay
    r = env.p.get("/saml/sp/slo?" + q)
    assert r.status_code == 400 and '"replay"' in env.audit("saml.sp.logout")[-1][3]


@pytest.mark.parametrize("case,reason", [("unsigned", "unsigned"), ("attacker_key", "bad_signature"),
                                         ("sha1", "sha1"), ("wrong_destination", "destination"),
                                         ("stale", "stale")])
def test_idp_logout_request_refused(env, case, reason):
    cookie, index = signed_in_session(env, "acme-slo-3", "noah")
    dest = env.p.base + "/saml/sp/slo"
    kw = {"unsigned": {"key": False}, "attacker_key": {"key": env.attacker.key}, "sha1": {"sha1": True},
          "wrong_destination": {}, "stale": {"issue_offset": -1200}}[case]
    if case == "wrong_destination":
        dest = "https://other-sp.example/slo"
    q = saml_test_idp.logout_request_query(env.acme, dest, "acme-slo-3", index, **kw)
    r = env.p.get("/saml/sp/slo?" + q)
    assert r.status_code == 400
    assert ('"reason": "%s"' % reason) in env.audit("saml.sp.logout")[-1][3]
    assert env.p.proxied("/app", cookie).status_code == 200


@pytest.mark.parametrize("how", ["sso-web", "email:wendy@web.test"], ids=["button", "email_discovery"])
def test_company_sign_in_in_chromium(env, tmp_path, how):
    """The whole browser path: login page -> IdP button -> pysaml2 IdP over HTTP -> cross-site POST to the ACS
    (the SameSite=None browser cookie rides along) -> the page behind portier, as the JIT user."""
    import glob
    import json
    import os
    import shutil
    import subprocess
    import warnings
    import saml_pysaml2_idp
    browser_dir = os.path.join(harness.ROOT, "tests", "browser")
    if shutil.which("node") is None or not os.path.isdir(os.path.join(browser_dir, "node_modules")):
        message = "BROWSER TEST SKIPPED: node or tests/browser/node_modules missing (scripts/install-deps.sh)"
        warnings.warn(message)
        pytest.skip(message)
    idp = saml_pysaml2_idp.PySaml2IdP(env.dir, env.web, env.p.get("/saml/sp/metadata").text)
    web = saml_pysaml2_idp.WebIdP(idp, env.web_port, "web-wendy", {
        "uid": ["wendy"], "mail": ["wendy@web.test"], "eduPersonAffiliation": ["staff"]})
    shots = tmp_path / "screenshots"
    shots.mkdir()
    secrets_file = tmp_path / "cookies.txt"
    secrets_file.touch(mode=0o600)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser_saml_sp.js")
    try:
        r = subprocess.run(["node", script, env.p.base, how, "/app/browser.json", str(shots), str(secrets_file)],
                           capture_output=True, text=True, timeout=120)
    finally:
        web.stop()
        for value in secrets_file.read_text().split():
            harness.register_secret(value)
        artifacts = os.environ.get("PORTIER_ARTIFACTS")
        if artifacts:
            os.makedirs(os.path.join(artifacts, "browser"), exist_ok=True)
            for png in glob.glob(str(shots / "*.png")):
                shutil.copy(png, os.path.join(artifacts, "browser"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert web.requests == 1
    seen = json.loads(r.stdout.split("saml sp flow ok ", 1)[1])
    assert seen["headers"]["x-portier-user"] == "wendy"
    assert seen["headers"]["x-portier-groups"] == "staff"


def logout_redirect(env, cookie):
    r = env.p.logout(cookie)
    assert r.status_code == 303
    return r.headers["location"]


def test_sp_initiated_logout_goes_to_the_idp_and_back(env):
    cookie, index = signed_in_session(env, "acme-slo-4", "olga")
    location = logout_redirect(env, cookie)
    assert location.startswith(env.acme.slo_url + "?SAMLRequest="), location
    xml, q = saml_test_idp.parse_redirect(location)
    req = saml_test_idp.etree.fromstring(xml)
    ns = saml_test_idp.NS
    assert req.tag.endswith("LogoutRequest") and req.get("Destination") == env.acme.slo_url
    assert req.find("saml:Issuer", ns).text == env.sp_entity
    assert req.find("saml:NameID", ns).text == "acme-slo-4"
    assert req.find("samlp:SessionIndex", ns).text == index
    raw = urllib.parse.urlsplit(location).query
    md = env.p.get("/saml/sp/metadata").text
    cert = x509.load_der_x509_certificate(base64.b64decode(re.search(r"<ds:X509Certificate>([^<]*)<", md).group(1)))
    cert.public_key().verify(base64.b64decode(q["Signature"]), raw[:raw.index("&Signature=")].encode(),
                             padding.PKCS1v15(), hashes.SHA256())
    assert env.p.proxied("/app", cookie).status_code == 401  # gone at portier already
    answer = saml_test_idp.logout_response_query(env.acme, env.p.base + "/saml/sp/slo", req.get("ID"),
                                                 q["RelayState"])
    r = env.p.get("/saml/sp/slo?" + answer)
    assert r.status_code == 303 and r.headers["location"] == "/login?logged_out=1"
    row = env.audit("saml.sp.logout_response")[-1]
    assert row[0] == "saml:acme" and row[2] == "success"
    # the state is single use
    r = env.p.get("/saml/sp/slo?" + answer)
    assert r.status_code == 400 and '"unknown_request"' in env.audit("saml.sp.logout_response")[-1][3]


def test_sp_initiated_logout_response_forged_is_audited(env):
    cookie, _ = signed_in_session(env, "acme-slo-5", "pia")
    xml, q = saml_test_idp.parse_redirect(logout_redirect(env, cookie))
    rid = saml_test_idp.etree.fromstring(xml).get("ID")
    answer = saml_test_idp.logout_response_query(env.acme, env.p.base + "/saml/sp/slo", rid, q["RelayState"],
                                                 key=env.attacker.key)
    r = env.p.get("/saml/sp/slo?" + answer)
    assert r.status_code == 303 and r.headers["location"] == "/login?logged_out=1"  # the user moves on anyway
    row = env.audit("saml.sp.logout_response")[-1]
    assert row[2] == "failure" and '"bad_signature"' in row[3]


def test_password_session_logout_does_not_involve_an_idp(env):
    env.p.setup("quinn", email="quinn@elsewhere.test")
    r = env.p.login("quinn")
    assert env.p.logout(session_of(r)).headers["location"] == "/login?logged_out=1"


def test_two_sign_ins_in_one_browser_share_the_browser_value(env):
    """A second tab must not invalidate the first: the browser value is reused (and its lifetime renewed)."""
    rid1, rs1, browser, _ = env.start()
    r = env.p.get("/saml/sp/login?idp=acme", cookies={saml_sp_env.BROWSER_COOKIE: browser})
    assert r.cookies[saml_sp_env.BROWSER_COOKIE] == browser
    resp = env.response(rid=rid1, name_id="acme-1001", attributes={"mail": "carol@acme.test"},
                        authn_class=MFA_CLASS)
    saml_test_idp.sign(saml_test_idp.assertion_of(resp), env.acme.key, env.acme.cert)
    r = env.post(resp, rs1, browser)
    assert r.status_code == 303 and session_of(r)
