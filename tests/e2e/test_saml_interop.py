"""portier's SAML IdP with real service providers from Debian, each started by the test on loopback with its
default (secure) settings: mod_auth_mellon and Shibboleth SP 3 in private Apaches (mellon signs its AuthnRequests
with rsa-sha256), single logout with both, and a mellon sign-in in headless Chromium. This instance signs without
the certificate in KeyInfo (saml.idp.keyinfo_certificate: false): the SPs verify with portier's metadata."""
import glob
import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import warnings

import pytest

import harness
import saml_apache
import saml_peers
from harness import SESSION_COOKIE

USER, EMAIL, NAME = "carol", "carol@example.com", "Carol Jones"


@pytest.fixture(scope="module")
def env(make_portier):
    d = tempfile.mkdtemp(prefix="portier-saml-interop.", dir="/tmp")
    os.chmod(d, 0o755)
    idp_key, idp_cert, idp_body = saml_peers.make_rsa(d, "idp", bits=3072)
    mellon = saml_apache.Mellon()
    shib = saml_apache.Shibboleth()
    yaml = f"""saml:
  idp:
    key: {idp_key}
    certificate: {idp_cert}
    keyinfo_certificate: false
  service_providers:
    - {{ metadata: {mellon.metadata_path}, name: mellon, groups: [staff], encrypt_assertion: true }}
    - {{ metadata: {shib.metadata_path}, name: shibboleth, attribute_names: uri }}
"""
    p = make_portier(extra_yaml=yaml)
    idp_md = p.get("/saml/metadata").text
    mellon.configure(idp_md)
    shib.configure(idp_md, p.base + "/saml/metadata")
    try:
        mellon.start()
        shib.start()
        cookie = p.setup(USER, groups=["staff", "eng"], email=EMAIL, name=NAME)
        yield {"portier": p, "mellon": mellon, "shib": shib, "cookie": cookie, "idp_body": idp_body}
    finally:
        mellon.stop()
        shib.stop()


def to_portier(mellon, session):
    """Follows the SP's own redirects (/secret -> /mellon/login) up to the one that leaves for the IdP."""
    url = mellon.base + "/secret/env"
    for _ in range(5):
        r = session.get(url, allow_redirects=False, timeout=10)
        assert r.status_code in (302, 303), (r.status_code, r.text[:300], mellon.log())
        url = urllib.parse.urljoin(url, r.headers["location"])
        if not url.startswith(mellon.base):
            return url
    raise AssertionError("mellon never redirected to the IdP")


def mellon_login(env, session):
    """The browser's path: protected page -> portier (signed AuthnRequest) -> POST to mellon's ACS -> page."""
    p, mellon = env["portier"], env["mellon"]
    loc = to_portier(mellon, session)
    assert loc.startswith(p.base + "/saml/sso?")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(loc).query)
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"] and query["Signature"]
    r = harness.requests.get(loc, cookies={SESSION_COOKIE: env["cookie"]}, verify=False, allow_redirects=False,
                             timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:400])
    action, fields = saml_peers.form_fields(r.text)
    assert action == mellon.base + "/mellon/postResponse"
    response = saml_peers.decode_response(fields["SAMLResponse"])
    assert "EncryptedAssertion" in response
    if "idp_body" in env:  # keyinfo_certificate: false; the SPs use portier's metadata
        assert env["idp_body"][:64] not in response.replace("\n", "")
    r = session.post(action, data=fields, allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303), (r.status_code, r.text[:300], mellon.log())
    r = session.get(mellon.base + "/secret/env", allow_redirects=False, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:300], mellon.log())
    return json.loads(r.text)


def test_mellon_signs_in_with_signed_request_and_encrypted_assertion(env):
    seen = mellon_login(env, harness.requests.Session())
    assert seen["MELLON_uid"] == USER
    assert seen["MELLON_mail"] == EMAIL
    assert seen["MELLON_displayName"] == NAME
    assert seen["MELLON_givenName"] == "Carol" and seen["MELLON_sn"] == "Jones"
    assert sorted(seen["MELLON_groups"].split(";")) == ["eng", "staff"]
    assert seen["MELLON_NAME_ID_FORMAT"] if "MELLON_NAME_ID_FORMAT" in seen else True
    assert seen["REMOTE_USER"] == seen["MELLON_NAME_ID"] and len(seen["REMOTE_USER"]) >= 40  # persistent, opaque


def test_mellon_user_outside_the_allowed_group_gets_portier_error_page(env):
    p, mellon = env["portier"], env["mellon"]
    other = p.setup("mallory", groups=["contractors"], email="m@example.com")
    s = harness.requests.Session()
    r = harness.requests.get(to_portier(mellon, s), cookies={SESSION_COOKIE: other}, verify=False,
                             allow_redirects=False, timeout=10)
    assert r.status_code == 403 and "SAMLResponse" not in r.text


def test_shibboleth_sp3_signs_in(env):
    p, shib = env["portier"], env["shib"]
    s = harness.requests.Session()
    loc = to_portier(shib, s)
    assert loc.startswith(p.base + "/saml/sso?"), loc
    r = harness.requests.get(loc, cookies={SESSION_COOKIE: env["cookie"]}, verify=False, allow_redirects=False,
                             timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:400])
    action, fields = saml_peers.form_fields(r.text)
    assert action == shib.base + "/Shibboleth.sso/SAML2/POST"
    r = s.post(action, data=fields, allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303), (r.status_code, r.text[:500], shib.shib_log())
    r = s.get(shib.base + "/secret/env", allow_redirects=False, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:300], shib.shib_log())
    seen = json.loads(r.text)
    assert seen["uid"] == USER
    assert seen["mail"] == EMAIL
    assert seen["displayName"] == NAME
    assert sorted(seen["groups"].split(";")) == ["eng", "staff"]
    assert seen["REMOTE_USER"] == USER
    assert seen["persistent_id"], seen  # Apache turns the "-" of attribute ids into "_"


def test_shibboleth_single_logout(env):
    p, shib = env["portier"], env["shib"]
    cookie = p.login(USER).cookies[SESSION_COOKIE]
    s = harness.requests.Session()
    loc = to_portier(shib, s)
    r = harness.requests.get(loc, cookies={SESSION_COOKIE: cookie}, verify=False, allow_redirects=False, timeout=10)
    action, fields = saml_peers.form_fields(r.text)
    r = s.post(action, data=fields, allow_redirects=False, timeout=10)
    assert s.get(shib.base + "/secret/env", allow_redirects=False, timeout=10).status_code == 200
    r = s.get(shib.base + "/Shibboleth.sso/Logout?return=" + urllib.parse.quote(shib.base + "/bye"),
              allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303), (r.status_code, r.text[:300], shib.shib_log())
    loc = r.headers["location"]
    assert loc.startswith(p.base + "/saml/slo?SAMLRequest="), loc
    r = harness.requests.get(loc, cookies={SESSION_COOKIE: cookie}, verify=False, allow_redirects=False, timeout=10)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    back = r.headers["location"]
    assert back.startswith(shib.base + "/Shibboleth.sso/SLO/Redirect?SAMLResponse=")
    r = s.get(back, allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303) and r.headers["location"] == shib.base + "/bye", (r.status_code,
                                                                                     r.text[:300],
                                                                                     shib.shib_log())
    assert p.proxied("/", cookie).status_code == 401
    assert s.get(shib.base + "/secret/env", allow_redirects=False, timeout=10).status_code in (302, 303)


def test_mellon_single_logout_ends_both_sessions(env):
    p, mellon = env["portier"], env["mellon"]
    login = p.login(USER)
    cookie = login.cookies[SESSION_COOKIE]
    s = harness.requests.Session()
    mellon_login({"portier": p, "mellon": mellon, "cookie": cookie}, s)
    r = s.get(mellon.base + "/mellon/logout?ReturnTo=" + urllib.parse.quote(mellon.base + "/bye"),
              allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303), (r.status_code, r.text[:300], mellon.log())
    loc = r.headers["location"]
    assert loc.startswith(p.base + "/saml/slo?SAMLRequest=") and "Signature=" in loc
    r = harness.requests.get(loc, cookies={SESSION_COOKIE: cookie}, verify=False, allow_redirects=False, timeout=10)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    back = r.headers["location"]
    assert back.startswith(mellon.base + "/mellon/logout?SAMLResponse=")
    r = s.get(back, allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303) and r.headers["location"] == mellon.base + "/bye", (r.status_code,
                                                                                       mellon.log())
    assert p.proxied("/", cookie).status_code == 401
    r = s.get(mellon.base + "/secret/env", allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303)  # mellon's session is gone too


def test_mellon_sign_in_in_chromium_with_screenshot(env, tmp_path):
    """The whole browser path: mellon -> portier login page -> auto-submitted SAML form -> mellon page."""
    browser_dir = os.path.join(harness.ROOT, "tests", "browser")
    if shutil.which("node") is None or not os.path.isdir(os.path.join(browser_dir, "node_modules")):
        message = "BROWSER TEST SKIPPED: node or tests/browser/node_modules missing (scripts/install-deps.sh)"
        warnings.warn(message)
        pytest.skip(message)
    p, mellon = env["portier"], env["mellon"]
    p.setup("dora", groups=["staff"], email="dora@example.com", name="Dora Explorer")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    secrets_file = tmp_path / "cookies.txt"
    secrets_file.touch(mode=0o600)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser_saml.js")
    try:
        r = subprocess.run(["node", script, mellon.base + "/secret/env", p.base, "dora", harness.PASSWORD,
                            str(shots), str(secrets_file)], capture_output=True, text=True, timeout=120)
    finally:
        for value in secrets_file.read_text().split():
            harness.register_secret(value)
        artifacts = os.environ.get("PORTIER_ARTIFACTS")
        if artifacts:
            os.makedirs(os.path.join(artifacts, "browser"), exist_ok=True)
            for png in glob.glob(str(shots / "*.png")):
                shutil.copy(png, os.path.join(artifacts, "browser"))
    assert r.returncode == 0, r.stdout + r.stderr + mellon.log()
    seen = json.loads(r.stdout.split("saml flow ok ", 1)[1])
    assert seen["MELLON_uid"] == "dora" and seen["MELLON_mail"] == "dora@example.com"
    assert sorted(os.path.basename(x) for x in glob.glob(str(shots / "*.png"))) == ["saml-1-login.png",
                                                                                     "saml-2-sp.png"]
    keep = os.environ.get("PORTIER_SAML_SCREENSHOTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        for png in glob.glob(str(shots / "*.png")):
            shutil.copy(png, keep)
