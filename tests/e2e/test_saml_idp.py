"""portier as a SAML 2.0 identity provider (issue #6), against python3-saml (python3-onelogin-saml2) service providers:
SP-initiated SSO over both bindings with the portier session, attribute release and NameID formats, encrypted
assertions, IdP-initiated SSO, ForceAuthn/IsPassive, the refusals (unknown SP, ACS not in metadata, unsigned, SHA-1,
group policy, replay, oversized, DOCTYPE), audit events, metrics, and the assertion checked with the xmlsec1 CLI."""
import base64
import os
import re
import subprocess
import tempfile
import time
import urllib.parse
import zlib

import pytest

import harness
import saml_peers
from harness import SESSION_COOKIE

USER, EMAIL, NAME = "alice", "alice@example.com", "Alice Example"


@pytest.fixture(scope="module")
def saml_env(make_portier, keys):
    d = tempfile.mkdtemp(prefix="portier-saml.", dir="/tmp")
    os.chmod(d, 0o755)
    idp_key, idp_cert, idp_body = saml_peers.make_rsa(d, "idp")
    port = harness.free_port()
    base = "https://127.0.0.1:%d" % port
    sps = {
        "py": saml_peers.OneLoginSP(d, "py", base, idp_body),
        "pyenc": saml_peers.OneLoginSP(d, "pyenc", base, idp_body, encrypt=True),
        "staffonly": saml_peers.OneLoginSP(d, "staffonly", base, idp_body),
        "email": saml_peers.OneLoginSP(d, "email", base, idp_body),
        "resp": saml_peers.OneLoginSP(d, "resp", base, idp_body),
        "unsigned": saml_peers.OneLoginSP(d, "unsigned", base, idp_body, sign_requests=False),
        "mustsign": saml_peers.OneLoginSP(d, "mustsign", base, idp_body, sign_requests=False),
        "sha1": saml_peers.OneLoginSP(d, "sha1", base, idp_body, sha1=True),
        "mfa": saml_peers.OneLoginSP(d, "mfa", base, idp_body, requested_authn_context=[
            "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken"]),
    }
    unknown = saml_peers.OneLoginSP(d, "unknown", base, idp_body)
    yaml = f"""saml:
  idp:
    key: {idp_key}
    certificate: {idp_cert}
    assertion_lifetime: 5m
    sign_metadata: true
  service_providers:
    - {{ metadata: {sps['py'].metadata_path}, name: py, attribute_names: basic, idp_initiated: true }}
    - {{ metadata: {sps['pyenc'].metadata_path}, name: pyenc, encrypt_assertion: true, attribute_names: uri,
        name_id_format: transient }}
    - {{ metadata: {sps['staffonly'].metadata_path}, name: staffonly, groups: [admins] }}
    - {{ metadata: {sps['email'].metadata_path}, name: email, name_id_format: email, sign: assertion }}
    - {{ metadata: {sps['resp'].metadata_path}, name: resp, sign: response }}
    - {{ metadata: {sps['unsigned'].metadata_path}, name: unsigned, name_id_format: unspecified,
        attribute_map: {{ groups: memberOf, mail: "urn:oid:0.9.2342.19200300.100.1.3" }} }}
    - {{ metadata: {sps['mustsign'].metadata_path}, name: mustsign, require_signed_requests: true }}
    - {{ metadata: {sps['sha1'].metadata_path}, name: sha1 }}
    - {{ metadata: {sps['mfa'].metadata_path}, name: mfa }}
"""
    p = make_portier(extra_yaml=yaml, start=False)
    # the SPs were told this port before the instance existed: move the instance onto it
    with open(p.config) as f:
        text = f.read()
    text = text.replace("port: %d" % p.port, "port: %d" % port).replace(p.base, base)
    with open(p.config, "w") as f:
        f.write(text)
    p.port, p.base = port, base
    p.start()
    cookie = p.setup(USER, groups=["staff"], email=EMAIL, name=NAME)
    yield {"portier": p, "sps": sps, "unknown": unknown, "cookie": cookie, "dir": d, "idp_cert": idp_cert}


def get(p, url, cookie=None, **kw):
    return harness.requests.get(url, verify=False, allow_redirects=False, timeout=10,
                                cookies={SESSION_COOKIE: cookie} if cookie else None, **kw)


def sso(env, sp_name, cookie="default", **login_kw):
    """SP-initiated SSO over HTTP-Redirect with the user's session: (HTTP response, request id)."""
    sp = env["sps"][sp_name]
    url, rid = sp.login_url(**login_kw)
    r = get(env["portier"], url, env["cookie"] if cookie == "default" else cookie)
    return r, rid


def assertion_ok(env, sp_name, r, rid):
    assert r.status_code == 200, (r.status_code, r.text[:400])
    action, fields = saml_peers.form_fields(r.text)
    sp = env["sps"][sp_name]
    assert action == sp.acs
    auth = sp.consume(fields, rid)
    assert auth.get_errors() == [], (auth.get_errors(), auth.get_last_error_reason())
    assert auth.is_authenticated()
    return auth, fields


def audit_rows(env, action):
    p = env["portier"]
    out = p.pg.psql("SELECT actor, target, outcome, details::text FROM audit_events WHERE action = '%s' ORDER BY id"
                    % action, dbname=p.dbname)
    return [line.split("|") for line in out.splitlines() if line]


# ---- metadata ----

def test_metadata_publishes_entity_endpoints_and_certificate(saml_env):
    p = saml_env["portier"]
    r = p.get("/saml/metadata")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/samlmetadata+xml")
    md = r.text
    assert 'entityID="%s/saml/metadata"' % p.base in md
    for binding in ("HTTP-Redirect", "HTTP-POST"):
        assert re.search(r'SingleSignOnService Binding="[^"]*%s" Location="%s/saml/sso"' % (binding, p.base), md)
    with open(saml_env["idp_cert"]) as f:
        body = "".join(l.strip() for l in f if not l.startswith("-----"))
    assert body in md
    assert "nameid-format:persistent" in md and "nameid-format:emailAddress" in md
    # sign_metadata: an enveloped RSA-SHA256 signature that xmlsec1 verifies with the published certificate
    path = os.path.join(saml_env["dir"], "metadata.xml")

    def verify(text):
        with open(path, "w") as f:
            f.write(text)
        return subprocess.run(["xmlsec1", "--verify", "--pubkey-cert-pem", saml_env["idp_cert"], path],
                              capture_output=True, text=True)

    assert "xmldsig-more#rsa-sha256" in md
    ok = verify(md)
    assert ok.returncode == 0, ok.stderr
    assert verify(md.replace("/saml/sso", "/saml/evil", 1)).returncode != 0


# ---- SP-initiated SSO ----

def test_redirect_binding_sso_with_existing_session_releases_attributes(saml_env):
    r, rid = sso(saml_env, "py")
    auth, fields = assertion_ok(saml_env, "py", r, rid)
    attrs = auth.get_attributes()
    assert attrs["uid"] == [USER]
    assert attrs["mail"] == [EMAIL]
    assert attrs["displayName"] == [NAME]
    assert attrs["givenName"] == ["Alice"] and attrs["sn"] == ["Example"]
    assert attrs["groups"] == ["staff"]
    assert fields["RelayState"] == "/after"
    assert auth.get_nameid_format() == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    # pairwise and stable: the same for this SP every time, different for another SP
    r2, rid2 = sso(saml_env, "py")
    auth2, _ = assertion_ok(saml_env, "py", r2, rid2)
    assert auth2.get_nameid() == auth.get_nameid()
    assert USER not in auth.get_nameid() and len(auth.get_nameid()) >= 40


def test_assertion_is_rsa_sha256_five_minutes_with_audience_recipient_in_response_to(saml_env):
    r, rid = sso(saml_env, "py")
    _, fields = assertion_ok(saml_env, "py", r, rid)
    xml = saml_peers.decode_response(fields["SAMLResponse"])
    assert "rsa-sha1" not in xml and "xmldsig#sha1" not in xml
    assert xml.count("xmldsig-more#rsa-sha256") == 2  # Response and Assertion both signed by default
    sp = saml_env["sps"]["py"]
    assert "<saml:Audience>%s</saml:Audience>" % sp.entity_id in xml
    assert 'Recipient="%s"' % sp.acs in xml and 'Destination="%s"' % sp.acs in xml
    assert xml.count('InResponseTo="%s"' % rid) == 2
    nb = re.search(r'Conditions NotBefore="([^"]+)" NotOnOrAfter="([^"]+)"', xml)
    t0 = time.mktime(time.strptime(nb.group(1), "%Y-%m-%dT%H:%M:%SZ"))
    t1 = time.mktime(time.strptime(nb.group(2), "%Y-%m-%dT%H:%M:%SZ"))
    assert t1 - t0 == 300
    assert "ac:classes:PasswordProtectedTransport" in xml
    assert cert_body(saml_env["idp_cert"])[:64] in xml.replace("\n", "")  # keyinfo_certificate: true (default)


def test_unauthenticated_user_signs_in_then_sso_resumes(saml_env):
    p = saml_env["portier"]
    url, rid = saml_env["sps"]["py"].login_url(relay_state="/deep/link")
    r = get(p, url)
    assert r.status_code == 303
    loc = r.headers["location"]
    assert loc.startswith("/login?return_to=")
    return_to = urllib.parse.unquote(loc.split("return_to=", 1)[1])
    assert return_to.startswith("/saml/sso/resume?state=")
    assert "SAMLRequest" not in loc  # the request waits server-side
    login = p.login(USER, return_to=return_to)
    assert login.status_code == 303 and login.headers["location"] == return_to
    cookie = login.cookies[SESSION_COOKIE]
    r = get(p, p.url(return_to), cookie)
    auth, fields = assertion_ok(saml_env, "py", r, rid)
    assert fields["RelayState"] == "/deep/link"
    # the parked request is single use
    again = get(p, p.url(return_to), cookie)
    assert again.status_code == 400 and "SAMLResponse" not in again.text


def test_post_binding_authn_request(saml_env):
    p = saml_env["portier"]
    sp = saml_env["sps"]["unsigned"]
    url, rid = sp.login_url()
    xml = saml_peers.redirect_xml(url)
    r = harness.requests.post(p.url("/saml/sso"), data={"SAMLRequest": base64.b64encode(xml.encode()).decode(),
                                                          "RelayState": "rs-post"},
                              cookies={SESSION_COOKIE: saml_env["cookie"]}, verify=False, allow_redirects=False,
                              timeout=10)
    auth, fields = assertion_ok(saml_env, "unsigned", r, rid)
    assert fields["RelayState"] == "rs-post"
    assert auth.get_nameid() == USER  # unspecified = the user name
    attrs = auth.get_attributes()  # attribute_map renames what this SP expects differently
    assert attrs["memberOf"] == ["staff"] and "groups" not in attrs
    assert attrs["urn:oid:0.9.2342.19200300.100.1.3"] == [EMAIL] and attrs["uid"] == [USER]


def test_post_binding_without_cookie_retries_as_a_top_level_get(saml_env):
    """A cross-site POST carries no SameSite=Lax cookie: portier parks the request and retries with a GET (which
    does carry it) before asking anyone to sign in."""
    p = saml_env["portier"]
    sp = saml_env["sps"]["unsigned"]
    url, rid = sp.login_url()
    xml = saml_peers.redirect_xml(url)
    r = harness.requests.post(p.url("/saml/sso"), data={"SAMLRequest": base64.b64encode(xml.encode()).decode()},
                              verify=False, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["location"].startswith("/saml/sso/resume?state=")
    assertion_ok(saml_env, "unsigned", get(p, p.url(r.headers["location"]), saml_env["cookie"]), rid)


def test_encrypted_assertion_with_uri_attribute_names_and_transient_nameid(saml_env):
    r, rid = sso(saml_env, "pyenc")
    auth, fields = assertion_ok(saml_env, "pyenc", r, rid)
    xml = saml_peers.decode_response(fields["SAMLResponse"])
    assert "EncryptedAssertion" in xml and "<saml:Assertion" not in xml
    assert USER not in xml and EMAIL not in xml
    attrs = auth.get_attributes()
    assert attrs["urn:oid:0.9.2342.19200300.100.1.1"] == [USER]
    assert attrs["urn:oid:0.9.2342.19200300.100.1.3"] == [EMAIL]
    assert auth.get_nameid_format() == "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
    r2, rid2 = sso(saml_env, "pyenc")
    auth2, _ = assertion_ok(saml_env, "pyenc", r2, rid2)
    assert auth2.get_nameid() != auth.get_nameid()


def test_email_nameid_and_assertion_only_signature(saml_env):
    sp = saml_env["sps"]["email"]
    r, rid = sso(saml_env, "email")
    assert r.status_code == 200
    _, fields = saml_peers.form_fields(r.text)
    xml = saml_peers.decode_response(fields["SAMLResponse"])
    assert xml.count("<Signature xmlns=") == 1
    assert xml.index("<Signature xmlns=") > xml.index("<saml:Assertion")
    sp.settings["security"]["wantMessagesSigned"] = False
    try:
        auth = sp.consume(fields, rid)
    finally:
        sp.settings["security"]["wantMessagesSigned"] = True
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.get_nameid() == EMAIL
    assert auth.get_nameid_format() == "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


def test_response_only_signature(saml_env):
    """sign: response: one signature, the Response's (right after its Issuer), none inside the Assertion."""
    sp = saml_env["sps"]["resp"]
    r, rid = sso(saml_env, "resp")
    assert r.status_code == 200
    _, fields = saml_peers.form_fields(r.text)
    xml = saml_peers.decode_response(fields["SAMLResponse"])
    assert xml.count("<Signature xmlns=") == 1
    assert re.search(r"<samlp:Response [^>]*><saml:Issuer>[^<]*</saml:Issuer><Signature xmlns=", xml)
    assert xml.index("<Signature xmlns=") < xml.index("<saml:Assertion")
    sp.settings["security"]["wantAssertionsSigned"] = False
    try:
        auth = sp.consume(fields, rid)
    finally:
        sp.settings["security"]["wantAssertionsSigned"] = True
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.get_nameid()


def test_idp_initiated_sso(saml_env):
    p = saml_env["portier"]
    r = get(p, p.url("/saml/idp/init?sp=py&RelayState=/home"), saml_env["cookie"])
    auth, fields = assertion_ok(saml_env, "py", r, None)
    assert fields["RelayState"] == "/home"
    xml = saml_peers.decode_response(fields["SAMLResponse"])
    assert "InResponseTo" not in xml
    # not allowed for an SP that did not opt in
    r = get(p, p.url("/saml/idp/init?sp=email"), saml_env["cookie"])
    assert r.status_code == 403 and "SAMLResponse" not in r.text
    # without a session: sign in first, then the same URL
    r = get(p, p.url("/saml/idp/init?sp=py"))
    assert r.status_code == 303 and r.headers["location"].startswith("/login?return_to=%2Fsaml%2Fidp%2Finit")


def test_force_authn_requires_a_fresh_sign_in(saml_env):
    p = saml_env["portier"]
    url, rid = saml_env["sps"]["py"].login_url(force_authn=True)
    r = get(p, url, saml_env["cookie"])
    assert r.status_code == 303 and r.headers["location"].startswith("/login?return_to=")
    return_to = urllib.parse.unquote(r.headers["location"].split("return_to=", 1)[1])
    # the old session does not satisfy it
    again = get(p, p.url(return_to), saml_env["cookie"])
    assert again.status_code == 303 and again.headers["location"].startswith("/login")
    time.sleep(1.1)  # session timestamps have one-second resolution
    login = p.login(USER, return_to=return_to)
    r = get(p, p.url(return_to), login.cookies[SESSION_COOKIE])
    assertion_ok(saml_env, "py", r, rid)


def test_is_passive_without_session_answers_the_sp_without_a_page(saml_env):
    p = saml_env["portier"]
    url, rid = saml_env["sps"]["py"].login_url(is_passive=True)
    r = get(p, url)
    assert r.status_code == 200
    action, fields = saml_peers.form_fields(r.text)
    xml = saml_peers.decode_response(fields["SAMLResponse"])
    assert "status:Success" not in xml and "<saml:Assertion" not in xml
    # signed all the same (RSA-SHA256, after the Issuer), and xmlsec1 agrees with the published certificate
    assert xml.count("<Signature xmlns=") == 1 and "xmldsig-more#rsa-sha256" in xml
    assert re.search(r"<samlp:Response [^>]*><saml:Issuer>[^<]*</saml:Issuer><Signature xmlns=", xml)
    path = os.path.join(saml_env["dir"], "nopassive.xml")
    with open(path, "w") as f:
        f.write(xml)
    ok = subprocess.run(["xmlsec1", "--verify", "--pubkey-cert-pem", saml_env["idp_cert"], "--id-attr:ID",
                         "urn:oasis:names:tc:SAML:2.0:protocol:Response", path], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


# ---- single logout ----

def fresh_session(env):
    login = env["portier"].login(USER)
    assert login.status_code == 303
    return login.cookies[SESSION_COOKIE]


def test_sp_initiated_logout_ends_the_portier_session_everywhere(saml_env):
    p = saml_env["portier"]
    sp = saml_env["sps"]["py"]
    cookie = fresh_session(saml_env)
    url, rid = sp.login_url()
    auth, _ = assertion_ok(saml_env, "py", get(p, url, cookie), rid)
    assert p.proxied("/", cookie).status_code == 200
    logout_url, lrid = saml_peers.sp_logout_url(sp, auth)
    r = get(p, logout_url, cookie)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    loc = r.headers["location"]
    assert loc.startswith(sp.settings["sp"]["singleLogoutService"]["url"] + "?SAMLResponse=")
    assert "SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256" in loc
    sp_auth, _ = saml_peers.sp_process_slo(sp, loc, lrid)
    assert sp_auth.get_errors() == [], sp_auth.get_last_error_reason()
    assert harness.set_cookie_for(r, SESSION_COOKIE) is not None  # the browser's cookie is cleared too
    assert p.proxied("/", cookie).status_code == 401
    rows = audit_rows(saml_env, "saml.logout")
    assert any(row[0] == "user:" + USER and row[1] == "sp:py" and '"sp"' in row[3] for row in rows)


def test_portier_logout_logs_out_of_every_sp_signed_in_to(saml_env):
    p = saml_env["portier"]
    cookie = fresh_session(saml_env)
    for name in ("py", "unsigned"):
        url, rid = saml_env["sps"][name].login_url()
        assertion_ok(saml_env, name, get(p, url, cookie), rid)
    r = p.logout(cookie)
    assert r.status_code == 303 and r.headers["location"].startswith("/saml/slo/next?state=")
    url, told = p.url(r.headers["location"]), set()
    for _ in range(8):
        r = get(p, url)
        assert r.status_code == 303, (r.status_code, r.text[:300])
        loc = r.headers["location"]
        if loc == "/login?logged_out=1":
            break
        if loc.startswith("/saml/slo/next?state="):  # an SP answered: on to the next one
            url = p.url(loc)
            continue
        sp = next((sp for sp in saml_env["sps"].values()
                   if loc.startswith(sp.settings["sp"]["singleLogoutService"]["url"] + "?")), None)
        assert sp is not None, loc
        assert "SAMLRequest=" in loc and "Signature=" in loc
        auth, answer = saml_peers.sp_process_slo(sp, loc)
        assert auth.get_errors() == [], auth.get_last_error_reason()
        told.add(sp.name)
        if len(told) == 1:  # a LogoutResponse whose signature does not cover what arrives is refused
            forged = re.sub(r"RelayState=([^&]*)", lambda m: "RelayState=" + m.group(1)[:-1] + ("B" if m.group(1).endswith("A") else "A"), answer)
            assert forged != answer
            bad = get(p, forged)
            assert bad.status_code == 400 and "location" not in bad.headers
        url = answer  # the SP's LogoutResponse goes back to portier, which continues with the next SP
    assert told == {"py", "unsigned"} and loc == "/login?logged_out=1"
    assert p.proxied("/", cookie).status_code == 401


# ---- refusals: a clear error page, no assertion, an audit event ----

def refused(r, status, text):
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert "SAMLResponse" not in r.text
    assert text in r.text


def test_unknown_sp_is_refused(saml_env):
    url, _ = saml_env["unknown"].login_url()
    refused(get(saml_env["portier"], url, saml_env["cookie"]), 400, "not registered")


def test_acs_url_not_in_metadata_is_refused(saml_env):
    sp = saml_env["sps"]["unsigned"]
    url, _ = sp.login_url()
    xml = saml_peers.redirect_xml(url).replace(sp.acs, "https://evil.example/acs")
    r = get(saml_env["portier"], saml_peers.redirect_url(saml_env["portier"].base, xml), saml_env["cookie"])
    refused(r, 400, "has not registered")


def test_unsigned_request_is_refused_when_signing_is_required(saml_env):
    url, _ = saml_env["sps"]["mustsign"].login_url()
    refused(get(saml_env["portier"], url, saml_env["cookie"]), 400, "must be signed")
    # and a signature stripped from a request of an SP whose metadata says it signs
    url, _ = saml_env["sps"]["py"].login_url()
    stripped = re.sub(r"&(SigAlg|Signature)=[^&]*", "", url)
    refused(get(saml_env["portier"], stripped, saml_env["cookie"]), 400, "must be signed")


def test_tampered_signed_request_is_refused(saml_env):
    url, _ = saml_env["sps"]["py"].login_url()
    tampered = url.replace("RelayState=%2Fafter", "RelayState=%2Fevil")
    assert tampered != url
    refused(get(saml_env["portier"], tampered, saml_env["cookie"]), 400, "not valid")
    # a signature that is there must verify, also from an SP that need not sign
    url, _ = saml_env["sps"]["unsigned"].login_url()
    forged = url + "&SigAlg=" + urllib.parse.quote(saml_peers.RSA_SHA256, safe="") + "&Signature=" + \
        urllib.parse.quote(base64.b64encode(os.urandom(256)).decode(), safe="")
    refused(get(saml_env["portier"], forged, saml_env["cookie"]), 400, "not valid")


def test_sha1_signed_request_is_refused(saml_env):
    url, _ = saml_env["sps"]["sha1"].login_url()
    assert "rsa-sha1" in urllib.parse.unquote(url)
    refused(get(saml_env["portier"], url, saml_env["cookie"]), 400, "SHA-1")
    rows = audit_rows(saml_env, "saml.sso")
    assert any('"sha1"' in row[3] for row in rows)


def test_request_for_a_multi_factor_context_steps_up_then_asserts_it(saml_env, tmp_path):
    """An SP that asks for a multi-factor class gets one: a password-only session goes through /login/mfa (here:
    enrolment first, as the user has no factor yet) and comes back to the parked request."""
    import test_mfa  # the MFA tests' helpers: enrolment from the otpauth URI, codes from pyotp
    p = saml_env["portier"]
    cookie = p.setup("mia", groups=["staff"], email="mia@example.com")
    sp = saml_env["sps"]["mfa"]
    url, rid = sp.login_url()
    r = get(p, url, cookie)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    loc = r.headers["location"]
    assert loc.startswith("/login/mfa?return_to=%2Fsaml%2Fsso%2Fresume%3Fstate%3D")
    resume = urllib.parse.unquote(loc.split("return_to=", 1)[1])
    r = get(p, p.url(loc), cookie)  # no factor yet: enrol first, then back
    assert r.status_code == 303 and r.headers["location"].startswith("/account/mfa?return_to=")
    otp, _, page = test_mfa.enrol(p, {SESSION_COOKIE: cookie}, tmp_path, via_qr=False)
    step = test_mfa.fresh_step()
    r = test_mfa.confirm(p, {SESSION_COOKIE: cookie}, page, test_mfa.code_at(otp, step - 1), return_to=resume)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    stepped = harness.register_secret(r.cookies[SESSION_COOKIE])
    r = get(p, p.url(resume), stepped)
    auth, fields = assertion_ok(saml_env, "mfa", r, rid)
    xml = saml_peers.decode_response(fields["SAMLResponse"])
    assert "<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken<" in xml
    # the same multi-factor session, at an SP that asks for exactly PasswordProtectedTransport, gets that class
    url, rid = saml_env["sps"]["py"].login_url()
    _, fields = assertion_ok(saml_env, "py", get(p, url, stepped), rid)
    assert "classes:PasswordProtectedTransport<" in saml_peers.decode_response(fields["SAMLResponse"])


def test_user_not_in_allowed_group_is_refused(saml_env):
    r, _ = sso(saml_env, "staffonly")
    refused(r, 403, "not allowed to use this application")
    rows = audit_rows(saml_env, "saml.sso")
    assert any(row[0] == "user:" + USER and row[1] == "sp:staffonly" and "not_in_group" in row[3] for row in rows)


def test_replayed_authn_request_is_refused(saml_env):
    url, rid = saml_env["sps"]["py"].login_url()
    r = get(saml_env["portier"], url, saml_env["cookie"])
    assertion_ok(saml_env, "py", r, rid)
    refused(get(saml_env["portier"], url, saml_env["cookie"]), 400, "already used")


def test_replay_cache_survives_a_restart(saml_env):
    p = saml_env["portier"]
    url, rid = saml_env["sps"]["py"].login_url()
    assertion_ok(saml_env, "py", get(p, url, saml_env["cookie"]), rid)
    p.stop()
    p.start()
    refused(get(p, url, saml_env["cookie"]), 400, "already used")


def test_oversized_request_is_refused(saml_env):
    p = saml_env["portier"]
    sp = saml_env["sps"]["unsigned"]
    url, _ = sp.login_url()
    xml = saml_peers.redirect_xml(url)
    big = xml.replace("</samlp:AuthnRequest>", "<!-- %s --></samlp:AuthnRequest>" % os.urandom(200000).hex())
    r = harness.requests.post(p.url("/saml/sso"), data={"SAMLRequest": base64.b64encode(big.encode()).decode()},
                              cookies={SESSION_COOKIE: saml_env["cookie"]}, verify=False, allow_redirects=False,
                              timeout=10)
    refused(r, 413, "too large")
    # a DEFLATE bomb: small on the wire, huge once inflated
    bomb = xml.replace("</samlp:AuthnRequest>", "<!-- %s --></samlp:AuthnRequest>" % ("A" * 5000000))
    r = get(p, saml_peers.redirect_url(p.base, bomb), saml_env["cookie"])
    refused(r, 413, "too large")


def test_doctype_request_is_refused(saml_env):
    p = saml_env["portier"]
    sp = saml_env["sps"]["unsigned"]
    url, _ = sp.login_url()
    xml = saml_peers.redirect_xml(url)
    evil = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>' +
            xml.split("?>", 1)[-1] if xml.startswith("<?xml") else
            '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + xml)
    refused(get(p, saml_peers.redirect_url(p.base, evil), saml_env["cookie"]), 400, "document type")


def test_over_long_relay_state_is_refused(saml_env):
    url, _ = saml_env["sps"]["unsigned"].login_url(relay_state="/" + "x" * 100)
    refused(get(saml_env["portier"], url, saml_env["cookie"]), 400, "RelayState")


# ---- evidence ----

def test_assertion_verifies_with_xmlsec1_and_fails_after_one_byte_changed(saml_env):
    r, rid = sso(saml_env, "py")
    _, fields = assertion_ok(saml_env, "py", r, rid)
    xml = saml_peers.decode_response(fields["SAMLResponse"])
    m = re.search(r"<saml:Assertion .*</saml:Assertion>", xml, re.S)
    assertion = m.group(0)
    # the assertion alone, with the namespace it inherits from the Response declared on it
    assertion = assertion.replace("<saml:Assertion ", '<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ',
                                  1)
    d = saml_env["dir"]

    def verify(text):
        path = os.path.join(d, "assertion.xml")
        with open(path, "w") as f:
            f.write(text)
        return subprocess.run(["xmlsec1", "--verify", "--pubkey-cert-pem", saml_env["idp_cert"],
                               "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion", path],
                              capture_output=True, text=True)

    ok = verify(assertion)
    assert ok.returncode == 0, ok.stderr
    i = assertion.index(">" + USER + "<") + 1
    changed = assertion[:i] + "b" + assertion[i + 1:]
    bad = verify(changed)
    assert bad.returncode != 0


def test_each_assertion_is_audited_with_sp_format_and_attribute_names(saml_env):
    sso(saml_env, "py")
    rows = audit_rows(saml_env, "saml.assertion")
    assert rows
    actor, target, outcome, details = rows[-1]
    assert actor == "user:" + USER and target == "sp:py" and outcome == "success"
    assert '"uid"' in details and '"groups"' in details and "persistent" in details
    assert EMAIL not in details  # names of attributes, never their values


def test_metrics_count_per_sp(saml_env):
    sso(saml_env, "py")
    sso(saml_env, "staffonly")
    m = saml_env["portier"].metrics()
    assert m.get('portier_saml_assertions_total{sp="py"}', 0) >= 1
    assert m.get('portier_saml_refusals_total{sp="staffonly",reason="policy"}', 0) >= 1


# ---- configuration and command line ----

def cert_body(path):
    with open(path) as f:
        return "".join(l.strip() for l in f if not l.startswith("-----"))


def test_config_errors_name_file_line_and_key(saml_env):
    p = saml_env["portier"]
    d = saml_env["dir"]
    ec = os.path.join(d, "ec.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ec],
                   check=True, capture_output=True)
    os.chmod(ec, 0o600)
    with open(p.config) as f:
        text = f.read()
    head, rest = text.split("saml:\n", 1)
    tail = rest[rest.index("routes:"):]
    bad = head + f"""saml:
  idp:
    key: {ec}
    certificate: {saml_env['idp_cert']}
    assertion_lifetime: 10m
  service_providers:
    - {{ metadata: {saml_env['sps']['py'].metadata_path}, name_id_format: opaque, colour: blue }}
    - {{ metadata: {saml_env['sps']['py'].metadata_path} }}
    - {{ name: nometadata }}
""" + tail
    path = os.path.join(d, "bad.yaml")
    with open(path, "w") as f:
        f.write(bad)
    out = subprocess.run([harness.BIN, "check-config", "-c", path], capture_output=True, text=True)
    assert out.returncode != 0
    line = bad[:bad.index("assertion_lifetime")].count("\n") + 1
    assert "%s:%d: saml.idp.assertion_lifetime:" % (path, line) in out.stderr, out.stderr
    assert "saml.service_providers[0].name_id_format: \"opaque\" is not one of" in out.stderr
    assert "saml.service_providers[0].colour: unknown key" in out.stderr
    assert "saml.service_providers[1]: entity id %s is already configured" % saml_env["sps"]["py"].entity_id \
        in out.stderr
    assert "saml.service_providers[2]: metadata is required" in out.stderr
    # the key rules are checked by check-config too (EC is refused: lasso signs with RSA only)
    fixed = bad.replace("    assertion_lifetime: 10m\n", "").replace(", name_id_format: opaque, colour: blue", "")
    fixed = fixed.replace("    - {{ metadata: {0} }}\n".format(saml_env['sps']['py'].metadata_path), "")
    fixed = fixed.replace("    - { metadata: %s }\n" % saml_env['sps']['py'].metadata_path, "")
    fixed = fixed.replace("    - { name: nometadata }\n", "")
    with open(path, "w") as f:
        f.write(fixed)
    out = subprocess.run([harness.BIN, "check-config", "-c", path], capture_output=True, text=True)
    assert out.returncode != 0 and "must be RSA" in out.stderr, out.stderr


def test_keys_saml_rotate_publishes_the_next_certificate_then_switches(make_portier):
    d = tempfile.mkdtemp(prefix="portier-saml-rotate.", dir="/tmp")
    os.chmod(d, 0o755)
    key, cert, _ = saml_peers.make_rsa(d, "idp")
    sp = saml_peers.OneLoginSP(d, "rot", "https://127.0.0.1:1", cert_body(cert))
    os.makedirs(os.path.join(d, "sps"))
    p = make_portier(extra_yaml=f"""saml:
  idp: {{ key: {key}, certificate: {cert} }}
  sp_dir: {d}/sps
""", start=False)
    out = p.cli("saml", "add-sp", sp.metadata_path, "rot")
    assert "added %s" % sp.entity_id in out.stdout
    dup = p.cli("saml", "add-sp", sp.metadata_path, "again", check=False)
    assert dup.returncode != 0 and "already configured" in dup.stderr
    old = cert_body(cert)
    out = p.cli("keys", "saml-rotate")
    assert os.path.exists(key + ".next") and os.stat(key + ".next").st_mode & 0o077 == 0
    p.start()
    md = p.get("/saml/metadata").text
    new = cert_body(cert + ".next")
    assert old in md and new in md and md.index(old) < md.index(new)  # published, not yet used
    p.stop()
    out = p.cli("keys", "saml-rotate")
    assert cert_body(cert) == new and cert_body(cert + ".prev") == old
    p.start()
    md = p.get("/saml/metadata").text
    assert new in md and old not in md
