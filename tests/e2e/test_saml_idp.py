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
        "pypost": saml_peers.OneLoginSP(d, "pypost", base, idp_body, slo_binding="post"),
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
    - {{ metadata: {sps['pypost'].metadata_path}, name: pypost }}
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
    p = start_on(make_portier, port, base, yaml)
    cookie = p.setup(USER, groups=["staff"], email=EMAIL, name=NAME)
    yield {"portier": p, "sps": sps, "unknown": unknown, "cookie": cookie, "dir": d, "idp_cert": idp_cert}


def start_on(make_portier, port, base, yaml, **kw):
    """A portier instance with `yaml` on `port`: the SPs were told this port before the instance existed."""
    p = make_portier(extra_yaml=yaml, start=False, **kw)
    with open(p.config) as f:
        text = f.read()
    text = text.replace("port: %d" % p.port, "port: %d" % port).replace(p.base, base)
    with open(p.config, "w") as f:
        f.write(text)
    p.port, p.base = port, base
    p.start()
    return p


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


WALK_COOKIE = "__Host-portier-slo"


def walk_get(url, token):
    """A step of a logout walk in the browser that holds the walk cookie `token` (None: another browser)."""
    return harness.requests.get(url, verify=False, allow_redirects=False, timeout=10,
                                cookies={WALK_COOKIE: token} if token else None)


def walk_cookie_of(r):
    """The walk cookie a response sets (checked: Secure, HttpOnly, SameSite=Lax, a lifetime), registered as a
    secret."""
    line = harness.set_cookie_for(r, WALK_COOKIE)
    assert line, r.headers
    _, token, attrs = harness.cookie_attributes(line)
    harness.register_secret(token)
    assert "secure" in attrs and "httponly" in attrs and attrs.get("samesite", "").lower() == "lax", line
    assert attrs.get("path") == "/" and "domain" not in attrs and int(attrs.get("max-age", "0")) > 0, line
    return token


def portier_logout_walk(env, names):
    """A fresh session signed in to the SPs `names` posts /logout: (session cookie, first step URL, walk cookie)."""
    p = env["portier"]
    cookie = fresh_session(env)
    for name in names:
        url, rid = env["sps"][name].login_url()
        assertion_ok(env, name, get(p, url, cookie), rid)
    r = p.logout(cookie)
    assert r.status_code == 303 and r.headers["location"].startswith("/saml/slo/next?state="), r.headers
    return cookie, p.url(r.headers["location"]), walk_cookie_of(r)


def test_portier_logout_logs_out_of_every_sp_signed_in_to(saml_env):
    p = saml_env["portier"]
    cookie, url, token = portier_logout_walk(saml_env, ("py", "unsigned"))
    told = set()
    for _ in range(8):
        r = walk_get(url, token)
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
    _, value, _ = harness.cookie_attributes(harness.set_cookie_for(r, WALK_COOKIE))
    assert value == ""  # the walk cookie is cleared at the end
    assert p.proxied("/", cookie).status_code == 401


def test_portier_logout_walk_continues_only_in_the_browser_that_posted_logout(saml_env):
    """The walk /logout starts is bound to its browser like an SP's: another browser that holds the state (no walk
    cookie, or its own) gets 400 and the walk does not move; the browser that posted /logout then walks every SP."""
    p = saml_env["portier"]
    _, url, token = portier_logout_walk(saml_env, ("py", "unsigned"))
    for stranger in (None, "not-the-walk-cookie-" + "x" * 23):
        r = walk_get(url, stranger)
        assert r.status_code == 400 and "location" not in r.headers, (r.status_code, r.headers)
        assert "browser that started it" in r.text
        assert harness.set_cookie_for(r, WALK_COOKIE) is None
    rows = audit_rows(saml_env, "saml.logout")
    assert rows[-1][2] == "failure" and "other_browser" in rows[-1][3], rows[-1]
    told = []
    for _ in range(8):  # nothing was taken by the strangers: both SPs are still told, py first (the walk's order)
        r = walk_get(url, token)
        assert r.status_code == 303, (r.status_code, r.text[:300])
        loc = r.headers["location"]
        if loc == "/login?logged_out=1":
            break
        sp = next(sp for sp in saml_env["sps"].values()
                  if loc.startswith(sp.settings["sp"]["singleLogoutService"]["url"] + "?SAMLRequest="))
        told.append(sp.name)
        auth, answer = saml_peers.sp_process_slo(sp, loc)
        assert auth.get_errors() == [], auth.get_last_error_reason()
        url = p.url(walk_get(answer, None).headers["location"])  # the SP's answer: on to the next step
    assert told == ["py", "unsigned"] and loc == "/login?logged_out=1"


def signed_in_to(env, cookie, names):
    """SSO with the session to each SP named: {name: the SP's Auth object}."""
    auths = {}
    for name in names:
        url, rid = env["sps"][name].login_url()
        auths[name], _ = assertion_ok(env, name, get(env["portier"], url, cookie), rid)
    return auths


def start_sp_logout(env, cookie, auths, first):
    """SP `first` sends its LogoutRequest with the browser: (response, request id, RelayState, walk cookie)."""
    p = env["portier"]
    url, rid = saml_peers.sp_logout_url(env["sps"][first], auths[first])
    relay = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["RelayState"][0]
    r = get(p, url, cookie)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    return r, rid, relay, walk_cookie_of(r)


def told_to_log_out(env, name, loc, auth):
    """The walk's LogoutRequest to SP `name`: signed, for the NameID and SessionIndex that SP was given."""
    sp = env["sps"][name]
    assert loc.startswith(sp.settings["sp"]["singleLogoutService"]["url"] + "?SAMLRequest="), loc
    assert "Signature=" in loc and "rsa-sha256" in urllib.parse.unquote(loc)
    xml = saml_peers.redirect_xml(loc)
    assert re.search(r"<saml:NameID[^>]*>([^<]*)</saml:NameID>", xml).group(1) == auth.get_nameid(), xml
    assert re.search(r"<samlp:SessionIndex>([^<]*)</samlp:SessionIndex>", xml).group(1) == \
        auth.get_session_index(), xml
    return sp


def test_sp_initiated_logout_reaches_the_sessions_other_sps_then_answers_the_sp(saml_env):
    p = saml_env["portier"]
    cookie = fresh_session(saml_env)
    auths = signed_in_to(saml_env, cookie, ("py", "unsigned"))
    r, lrid, relay, token = start_sp_logout(saml_env, cookie, auths, "py")
    # portier's session ends at once (the browser's cookie too); the browser walks the other SPs first
    assert harness.set_cookie_for(r, SESSION_COOKIE) is not None
    assert p.proxied("/", cookie).status_code == 401
    assert r.headers["location"].startswith("/saml/slo/next?state=")
    r = walk_get(p.url(r.headers["location"]), token)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    other = told_to_log_out(saml_env, "unsigned", r.headers["location"], auths["unsigned"])
    sp_auth, answer = saml_peers.sp_process_slo(other, r.headers["location"])  # checks portier's signature
    assert sp_auth.get_errors() == [], sp_auth.get_last_error_reason()
    r = walk_get(answer, None)  # the SP's answer carries the walk's state, not the cookie
    assert r.status_code == 303 and r.headers["location"].startswith("/saml/slo/next?state="), r.headers
    last = p.url(r.headers["location"])
    # nothing left to walk: only the browser that brought py's request gets py's answer
    stranger = walk_get(last, None)
    assert stranger.status_code == 400 and "location" not in stranger.headers
    r = walk_get(last, token)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    loc = r.headers["location"]
    py = saml_env["sps"]["py"]
    assert loc.startswith(py.settings["sp"]["singleLogoutService"]["url"] + "?SAMLResponse="), loc
    assert urllib.parse.parse_qs(urllib.parse.urlparse(loc).query)["RelayState"] == [relay]
    xml = saml_peers.redirect_xml(loc, "SAMLResponse")
    assert 'InResponseTo="%s"' % lrid in xml and "status:Success" in xml and "PartialLogout" not in xml, xml
    sp_auth, _ = saml_peers.sp_process_slo(py, loc, lrid)  # signature, InResponseTo, Destination, status
    assert sp_auth.get_errors() == [], sp_auth.get_last_error_reason()
    _, value, _ = harness.cookie_attributes(harness.set_cookie_for(r, WALK_COOKIE))
    assert value == ""  # the walk cookie is cleared
    again = walk_get(last, token)  # the answer is given once
    assert again.status_code == 303 and again.headers["location"] == "/login?logged_out=1"
    assert p.proxied("/", cookie).status_code == 401


def test_sp_initiated_logout_is_partial_when_another_sp_answers_with_an_error(saml_env):
    p = saml_env["portier"]
    cookie = fresh_session(saml_env)
    auths = signed_in_to(saml_env, cookie, ("py", "unsigned"))
    r, lrid, _, token = start_sp_logout(saml_env, cookie, auths, "py")
    r = walk_get(p.url(r.headers["location"]), token)
    other = told_to_log_out(saml_env, "unsigned", r.headers["location"], auths["unsigned"])
    answer = saml_peers.sp_answer_slo_with_status(other, r.headers["location"],
                                                  "urn:oasis:names:tc:SAML:2.0:status:Responder")
    r = walk_get(answer, None)
    assert r.status_code == 303 and r.headers["location"].startswith("/saml/slo/next?state="), r.headers
    r = walk_get(p.url(r.headers["location"]), token)
    loc = r.headers["location"]
    xml = saml_peers.redirect_xml(loc, "SAMLResponse")
    # top-level Success (py's own sign-in did end), second-level PartialLogout: not every SP could be logged out
    assert re.search(r'<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success">\s*'
                     r'<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:PartialLogout"', xml), xml
    sp_auth, _ = saml_peers.sp_process_slo(saml_env["sps"]["py"], loc, lrid)
    assert sp_auth.get_errors() == [], sp_auth.get_last_error_reason()
    assert p.proxied("/", cookie).status_code == 401


def test_sp_initiated_logout_over_post_is_answered_over_post_after_the_walk(saml_env):
    """The HTTP-POST binding: the LogoutRequest arrives as a cross-site POST (no portier cookie rides along), the
    walk runs as with HTTP-Redirect, and the answer is an auto-submitting form to the SP's POST logout endpoint,
    its signature checked with the xmlsec1 CLI against portier's certificate."""
    p = saml_env["portier"]
    cookie = fresh_session(saml_env)
    auths = signed_in_to(saml_env, cookie, ("pypost", "py"))
    sp = saml_env["sps"]["pypost"]
    fields, lrid = saml_peers.sp_logout_post_fields(sp, auths["pypost"], relay_state="/bye")
    r = harness.requests.post(p.url("/saml/slo"), data=fields, verify=False, allow_redirects=False, timeout=10)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    _, token, _ = harness.cookie_attributes(harness.set_cookie_for(r, WALK_COOKIE))
    harness.register_secret(token)
    assert p.proxied("/", cookie).status_code == 401
    r = walk_get(p.url(r.headers["location"]), token)
    other = told_to_log_out(saml_env, "py", r.headers["location"], auths["py"])
    sp_auth, answer = saml_peers.sp_process_slo(other, r.headers["location"])
    assert sp_auth.get_errors() == [], sp_auth.get_last_error_reason()
    r = walk_get(p.url(walk_get(answer, None).headers["location"]), token)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    action, form = saml_peers.form_fields(r.text)
    assert action == sp.settings["sp"]["singleLogoutService"]["url"] and form["RelayState"] == "/bye"
    xml = saml_peers.decode_response(form["SAMLResponse"])
    assert 'InResponseTo="%s"' % lrid in xml and "status:Success" in xml and "PartialLogout" not in xml, xml
    path = os.path.join(saml_env["dir"], "logout-response.xml")
    with open(path, "w") as f:
        f.write(xml)
    ok = subprocess.run(["xmlsec1", "--verify", "--pubkey-cert-pem", saml_env["idp_cert"], "--id-attr:ID",
                         "urn:oasis:names:tc:SAML:2.0:protocol:LogoutResponse", path], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_sp_logout_request_for_a_session_that_is_gone_is_answered_success(saml_env):
    p = saml_env["portier"]
    cookie = fresh_session(saml_env)
    auths = signed_in_to(saml_env, cookie, ("py",))
    r = p.logout(cookie)  # portier's own logout: py is walked (and told) separately; here it never answers
    assert r.status_code == 303
    assert p.proxied("/", cookie).status_code == 401
    py = saml_env["sps"]["py"]
    url, lrid = saml_peers.sp_logout_url(py, auths["py"])
    r = get(p, url)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    assert harness.set_cookie_for(r, WALK_COOKIE) is None  # nothing to walk
    loc = r.headers["location"]
    assert loc.startswith(py.settings["sp"]["singleLogoutService"]["url"] + "?SAMLResponse="), loc
    sp_auth, _ = saml_peers.sp_process_slo(py, loc, lrid)
    assert sp_auth.get_errors() == [], sp_auth.get_last_error_reason()


def logout_response_xml(sp, loc):
    """The LogoutResponse portier sent SP `sp` by HTTP-Redirect."""
    assert loc.startswith(sp.settings["sp"]["singleLogoutService"]["url"] + "?SAMLResponse="), loc
    assert "Signature=" in loc
    return saml_peers.redirect_xml(loc, "SAMLResponse")


@pytest.mark.parametrize("name_id_format", [saml_peers.AS_RECEIVED, None], ids=["format", "no-format"])
def test_sp_logout_request_without_name_qualifiers_is_answered_success(saml_env, name_id_format):
    """SAML core: NameQualifier and SPNameQualifier are optional (they default to the IdP and the SP), and so is the
    Format; a NameID that leaves them out but has the issued value names the principal all the same: the session
    ends, the other SP is told, and the answer (the request replayed through lasso after the walk) is Success."""
    p = saml_env["portier"]
    py = saml_env["sps"]["py"]
    cookie = fresh_session(saml_env)
    auths = signed_in_to(saml_env, cookie, ("py", "unsigned"))
    assert auths["py"].get_nameid_nq() and auths["py"].get_nameid_spnq()  # what portier issued has both
    url, lrid = saml_peers.sp_logout_url(py, auths["py"], qualifiers=False, name_id_format=name_id_format)
    sent = saml_peers.redirect_xml(url)
    assert "NameQualifier" not in sent and auths["py"].get_nameid() in sent, sent
    assert ("Format=" in sent) == (name_id_format is not None), sent
    r = get(p, url, cookie)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    token = walk_cookie_of(r)
    r = walk_get(p.url(r.headers["location"]), token)
    other = told_to_log_out(saml_env, "unsigned", r.headers["location"], auths["unsigned"])
    _, answer = saml_peers.sp_process_slo(other, r.headers["location"])
    r = walk_get(p.url(walk_get(answer, None).headers["location"]), token)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    xml = logout_response_xml(py, r.headers["location"])
    assert 'InResponseTo="%s"' % lrid in xml and "status:Success" in xml and "RequestDenied" not in xml, xml
    sp_auth, _ = saml_peers.sp_process_slo(py, r.headers["location"], lrid)
    assert sp_auth.get_errors() == [], sp_auth.get_last_error_reason()
    assert p.proxied("/", cookie).status_code == 401


def test_sp_logout_request_for_another_name_id_is_unknown_principal_and_ends_nothing(saml_env):
    """A LogoutRequest whose NameID is not the one issued for the session its SessionIndex names (another value,
    with or without the qualifiers; the value with another Format) is answered Requester/UnknownPrincipal; no
    session ends, and the right NameID still logs out afterwards."""
    p = saml_env["portier"]
    py = saml_env["sps"]["py"]
    cookie = fresh_session(saml_env)
    auths = signed_in_to(saml_env, cookie, ("py", "unsigned"))
    issued_format = auths["py"].get_nameid_format()
    email_format = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
    assert issued_format != email_format, issued_format
    other = auths["py"].get_nameid() + "-someone-else"  # differs by construction
    for kw in ({"name_id": other}, {"name_id": other, "qualifiers": False}, {"name_id_format": email_format}):
        url, lrid = saml_peers.sp_logout_url(py, auths["py"], **kw)
        r = get(p, url, cookie)
        assert r.status_code == 303, (r.status_code, r.text[:300])
        assert harness.set_cookie_for(r, SESSION_COOKIE) is None and harness.set_cookie_for(r, WALK_COOKIE) is None
        xml = logout_response_xml(py, r.headers["location"])
        assert 'InResponseTo="%s"' % lrid in xml, xml
        assert re.search(r'<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester">\s*'
                         r'<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"', xml), xml
        assert p.proxied("/", cookie).status_code == 200  # the session lives on
        rows = audit_rows(saml_env, "saml.logout")
        assert rows[-1][1] == "sp:py" and rows[-1][2] == "failure" and "name_id_mismatch" in rows[-1][3], rows[-1]
    r, lrid, _, token = start_sp_logout(saml_env, cookie, auths, "py")  # nothing was marked or forgotten
    assert p.proxied("/", cookie).status_code == 401
    r = walk_get(p.url(r.headers["location"]), token)
    told_to_log_out(saml_env, "unsigned", r.headers["location"], auths["unsigned"])


def test_replayed_logout_request_is_refused_and_ends_nothing(saml_env):
    """A LogoutRequest is accepted once (its ID, per SP, in the AuthnRequest replay cache): the same request again
    is a 400 with a saml.logout failure event, also when the user has signed in again since (that session lives)."""
    p = saml_env["portier"]
    py = saml_env["sps"]["py"]
    cookie = fresh_session(saml_env)
    auths = signed_in_to(saml_env, cookie, ("py",))
    url, lrid = saml_peers.sp_logout_url(py, auths["py"])
    r = get(p, url, cookie)
    assert r.status_code == 303 and "status:Success" in logout_response_xml(py, r.headers["location"])
    assert p.proxied("/", cookie).status_code == 401
    again = fresh_session(saml_env)
    signed_in_to(saml_env, again, ("py",))
    for browser in (again, None):
        r = get(p, url, browser)
        assert r.status_code == 400 and "location" not in r.headers, (r.status_code, r.headers)
        assert "already used" in r.text
        assert harness.set_cookie_for(r, SESSION_COOKIE) is None and harness.set_cookie_for(r, WALK_COOKIE) is None
        rows = audit_rows(saml_env, "saml.logout")
        assert rows[-1][1] == "sp:py" and rows[-1][2] == "failure" and "replayed_request" in rows[-1][3], rows[-1]
    assert p.proxied("/", again).status_code == 200


def test_stale_logout_request_is_refused(saml_env):
    """A signed LogoutRequest issued long ago (beyond what the replay cache covers) is refused and ends nothing."""
    p = saml_env["portier"]
    cookie = fresh_session(saml_env)
    auths = signed_in_to(saml_env, cookie, ("pypost",))
    fields, _ = saml_peers.sp_logout_post_fields(saml_env["sps"]["pypost"], auths["pypost"],
                                                 issue_instant="2020-01-01T00:00:00Z")
    r = harness.requests.post(p.url("/saml/slo"), data=fields, verify=False, allow_redirects=False, timeout=10)
    assert r.status_code == 400 and "too old" in r.text, (r.status_code, r.text[:300])
    rows = audit_rows(saml_env, "saml.logout")
    assert rows[-1][1] == "sp:pypost" and "stale_request" in rows[-1][3], rows[-1]
    assert p.proxied("/", cookie).status_code == 200


# ---- SSO is activity for the idle timeout ----

IDLE = 5  # seconds (session.idle_timeout of the instance below)


@pytest.fixture(scope="module")
def short_idle_env(make_portier):
    d = tempfile.mkdtemp(prefix="portier-saml-idle.", dir="/tmp")
    os.chmod(d, 0o755)
    idp_key, idp_cert, idp_body = saml_peers.make_rsa(d, "idp")
    port = harness.free_port()
    base = "https://127.0.0.1:%d" % port
    sp = saml_peers.OneLoginSP(d, "py", base, idp_body)
    yaml = f"""saml:
  idp: {{ key: {idp_key}, certificate: {idp_cert} }}
  service_providers:
    - {{ metadata: {sp.metadata_path}, name: py }}
"""
    p = start_on(make_portier, port, base, yaml, idle="%ds" % IDLE, absolute="1h")
    p.setup(USER, groups=["staff"], email=EMAIL, name=NAME)
    yield {"portier": p, "sps": {"py": sp}}


def test_sso_keeps_the_session_alive_past_the_idle_timeout(short_idle_env):
    """Two sessions signed in together; only one is used for SSO, after 3 s. At 6.5 s (past the 5 s idle timeout
    for the other one, 3.5 s after the SSO) the first is alive and the second has expired. Margins are >= 1.5 s."""
    p = short_idle_env["portier"]
    used, unused = fresh_session(short_idle_env), fresh_session(short_idle_env)
    start = time.monotonic()
    time.sleep(3.0)
    url, rid = short_idle_env["sps"]["py"].login_url()
    assertion_ok(short_idle_env, "py", get(p, url, used), rid)
    time.sleep(max(0.0, start + IDLE + 1.5 - time.monotonic()))
    assert p.proxied("/", unused).status_code == 401  # no activity: idle for 6.5 s
    assert p.proxied("/", used).status_code == 200  # the SSO 3.5 s ago restarted its idle timer


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
