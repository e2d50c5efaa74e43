"""Second factors end to end: enrolment from the QR code (decoded by zbarimg) or the otpauth URI (parsed by
pyotp), sign-in with password + TOTP, replay refusal, HOTP with resynchronisation, recovery codes, step-up on
an MFA route, forced enrolment for a required group, self-service replace/remove, `portier user reset-mfa` on
two instances, secrets sealed at rest, codes from oathtool and pyotp with SHA-256 and 8 digits."""
import base64
import json
import os
import re
import subprocess
import time
import urllib.parse

import pyotp
import pytest

import harness
from harness import CSRF_COOKIE, SESSION_COOKIE, backend_headers, form_value

MFA_COOKIE = "__Host-portier-mfa"
ROUTES = '  - { prefix: /secure, backend: "%s", name: secure, mfa: true }\n'
MFA_YAML = "mfa:\n  required_groups: [admins]\n  issuer: Acme Corp\n"


@pytest.fixture(scope="module")
def pair(make_portier, backend):
    one = make_portier(extra_routes=ROUTES % backend.url, extra_yaml=MFA_YAML)
    # the second instance shares the database and the sealing key (PORTIER_MFA_KEY would do the same)
    two = make_portier(share_db=one, extra_routes=ROUTES % backend.url, extra_yaml=MFA_YAML, start=False)
    with open(os.path.join(one.dir, "mfa.key"), "rb") as src, open(os.path.join(two.dir, "mfa.key"), "wb") as dst:
        dst.write(src.read())
    os.chmod(os.path.join(two.dir, "mfa.key"), 0o600)
    two.start()
    return one, two


def fresh_step(period=30, margin=8):
    """Waits until at least `margin` seconds remain in the current TOTP step, so that codes of the steps around
    'now' stay valid for the few requests that follow; returns the current step."""
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.2)
    return int(time.time() // period)


def code_at(totp, step):
    return totp.at(step * totp.interval)


def csrf_of(page):
    return form_value(page.text, "csrf")


def cookies(*pairs, csrf=None):
    jar = {name: value for name, value in pairs if value}
    if csrf:
        jar[CSRF_COOKIE] = csrf
    return jar


def decode_qr(instance, jar, tmp_path):
    """The QR code of the pending enrolment, as served, decoded by zbarimg (via a PNG from ImageMagick)."""
    r = instance.get("/account/mfa/qr.svg", cookies=jar)
    assert r.status_code == 200, r.status_code
    assert r.headers["content-type"] == "image/svg+xml"
    assert r.headers["cache-control"] == "no-store"
    svg, png = tmp_path / "qr.svg", tmp_path / "qr.png"
    svg.write_bytes(r.content)
    subprocess.run(["convert", "-density", "600", str(svg), str(png)], check=True, capture_output=True)
    out = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def enrol(instance, jar, tmp_path, kind=None, via_qr=True):
    """Opens the enrolment page (with jar's cookies), reads the otpauth URI from the QR code (or the page's link)
    and returns (pyotp object, uri, page)."""
    page = instance.get("/account/mfa" + ("?kind=" + kind if kind else ""), cookies=jar)
    assert page.status_code == 200, (page.status_code, page.text[:300])
    assert 'id="qr"' in page.text
    link = re.search(r'id="otpauth" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    uri = decode_qr(instance, jar, tmp_path) if via_qr else link
    assert uri == link  # the QR code carries exactly the URI the page shows
    otp = pyotp.parse_uri(uri)
    harness.register_secret(otp.secret)
    shown = re.search(r'id="secret" class="secret">([A-Z2-7 ]+)<', page.text).group(1).replace(" ", "")
    assert shown == otp.secret
    return otp, uri, page


def confirm(instance, jar, page, code, return_to=None):
    csrf = csrf_of(page)
    data = {"csrf": csrf, "action": "confirm", "code": code}
    if return_to:
        data["return_to"] = return_to
    return instance.post("/account/mfa", data, cookies=dict(jar, **{CSRF_COOKIE: csrf}))


def recovery_codes(page):
    codes = re.search(r'<pre id="codes" class="codes">([^<]*)</pre>', page.text).group(1).split()
    for c in codes:
        harness.register_secret(c)
    return codes


def password_step(instance, username):
    """POST /login with the right password; returns (response, half-authenticated cookie)."""
    r = instance.login(username)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    assert SESSION_COOKIE not in r.cookies  # no session yet
    half = r.cookies.get(MFA_COOKIE)
    assert half
    return r, harness.register_secret(half)


def submit_code(instance, jar, code, return_to=None, next_code=None):
    page = instance.get("/login/mfa", cookies=jar)
    assert page.status_code == 200, (page.status_code, page.text[:300])
    csrf = csrf_of(page)
    data = {"csrf": csrf, "code": code}
    if return_to:
        data["return_to"] = return_to
    if next_code:
        data["next_code"] = next_code
    r = instance.post("/login/mfa", data, cookies=dict(jar, **{CSRF_COOKIE: csrf}))
    if SESSION_COOKIE in r.cookies:
        harness.register_secret(r.cookies[SESSION_COOKIE])
    return r


def claims_of(response):
    token = backend_headers(response)["x-portier-jwt-assertion"]
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def audit(instance, action, user):
    return instance.pg.psql("SELECT outcome || ' ' || coalesce(details::text, '') FROM audit_events "
                            "WHERE action = '%s' AND target = 'user:%s' ORDER BY id" % (action, user),
                            dbname=instance.dbname).splitlines()


def enrolled_user(instance, username, tmp_path, groups=()):
    """A user with a confirmed TOTP factor; returns (pyotp.TOTP, session cookie with amr pwd+otp, codes)."""
    cookie = instance.setup(username, groups=groups)
    otp, _, page = enrol(instance, {SESSION_COOKIE: cookie}, tmp_path, via_qr=False)
    step = fresh_step()
    r = confirm(instance, {SESSION_COOKIE: cookie}, page, code_at(otp, step - 1))
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return otp, harness.register_secret(r.cookies[SESSION_COOKIE]), recovery_codes(r)


# --- the acceptance path ---

def test_enrol_from_qr_then_sign_in_with_totp_and_the_same_code_twice_is_refused(pair, tmp_path):
    one, _ = pair
    cookie = one.setup("quinn")
    otp, uri, page = enrol(one, {SESSION_COOKIE: cookie}, tmp_path)
    assert uri.startswith("otpauth://totp/Acme%20Corp:quinn?")
    q = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    assert q["issuer"] == ["Acme Corp"] and q["algorithm"] == ["SHA1"] and q["digits"] == ["6"]
    assert len(base64.b32decode(otp.secret + "=" * (-len(otp.secret) % 8))) == 20  # 160-bit secret
    # a wrong code does not activate the factor
    assert confirm(one, {SESSION_COOKIE: cookie}, page, "000000" if otp.now() != "000000" else "111111").status_code == 400
    step = fresh_step()
    r = confirm(one, {SESSION_COOKIE: cookie}, page, code_at(otp, step - 1))
    assert r.status_code == 200, r.text[:300]
    codes = recovery_codes(r)
    assert len(codes) == 10 and all(re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", c) for c in codes)  # 80 bits
    elevated = r.cookies[SESSION_COOKIE]
    assert elevated != cookie
    assert one.proxied("/x", cookie).status_code == 401  # the old id is gone (no fixation)
    assert claims_of(one.proxied("/x", elevated))["amr"] == ["pwd", "otp"]
    assert one.logout(elevated).status_code == 303

    # password, then the code: a half-authenticated cookie that grants nothing else
    r, half = password_step(one, "quinn")
    assert r.headers["location"] == "/login/mfa"
    attrs = harness.cookie_attributes(harness.set_cookie_for(r, MFA_COOKIE))[2]
    assert "httponly" in attrs and "secure" in attrs and int(attrs["max-age"]) <= 300
    assert one.proxied("/x", None, headers={"Cookie": "%s=%s" % (MFA_COOKIE, half)}).status_code == 401
    assert one.get("/account/password", cookies={MFA_COOKIE: half}).status_code != 200
    r = submit_code(one, {MFA_COOKIE: half}, code_at(otp, step))
    assert r.status_code == 303 and r.headers["location"] == "/", (r.status_code, r.text[:300])
    session = r.cookies[SESSION_COOKIE]
    claims = claims_of(one.proxied("/x", session))
    assert claims["amr"] == ["pwd", "otp"] and claims["acr"] == "urn:portier:acr:mfa"

    # the same code again, in the same window, from a fresh password step: refused and audited as a replay
    _, half = password_step(one, "quinn")
    r = submit_code(one, {MFA_COOKIE: half}, code_at(otp, step))
    assert r.status_code == 401 and SESSION_COOKIE not in r.cookies
    assert "already used" in r.text
    assert audit(one, "mfa.verify", "quinn")[-1] == 'failure {"method": "totp", "reason": "replay"}'
    # the next code works
    r = submit_code(one, {MFA_COOKIE: half}, code_at(otp, step + 1))
    assert r.status_code == 303


def test_no_plaintext_secret_in_the_database(pair, tmp_path):
    one, _ = pair
    otp, _, _ = enrolled_user(one, "rosa", tmp_path)
    raw = base64.b32decode(otp.secret + "=" * (-len(otp.secret) % 8))
    dump = one.pg.psql("SELECT f::text FROM mfa_factors f JOIN users u ON u.id = f.user_id "
                       "WHERE u.username = 'rosa'", dbname=one.dbname)
    assert dump.strip()
    for needle in (otp.secret, otp.secret.lower(), raw.hex(), raw.hex().upper()):
        assert needle not in dump
    sealed = bytes.fromhex(one.pg.psql("SELECT encode(secret_sealed, 'hex') FROM mfa_factors f JOIN users u "
                                       "ON u.id = f.user_id WHERE u.username = 'rosa'", dbname=one.dbname).strip())
    assert raw not in sealed and len(sealed) == 1 + 12 + 20 + 16  # version, nonce, ciphertext, tag
    codes = one.pg.psql("SELECT string_agg(encode(code_hash, 'hex'), ',') FROM mfa_recovery_codes c "
                        "JOIN users u ON u.id = c.user_id WHERE u.username = 'rosa'", dbname=one.dbname)
    assert len(codes.strip().split(",")) == 10


def test_codes_from_oathtool_are_accepted(pair, tmp_path):
    one, _ = pair
    otp, _, _ = enrolled_user(one, "oscar", tmp_path)
    step = fresh_step()
    _, half = password_step(one, "oscar")
    code = subprocess.run(["oathtool", "--totp", "-b", otp.secret], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert code == code_at(otp, step)
    r = submit_code(one, {MFA_COOKIE: half}, code[:3] + " " + code[3:])  # "123 456" as apps show it
    assert r.status_code == 303, r.text[:300]


def test_mfa_failures_count_towards_the_lockout_and_the_half_state_is_limited(pair, tmp_path):
    one, _ = pair
    otp, _, _ = enrolled_user(one, "paula", tmp_path)
    _, half = password_step(one, "paula")
    wrong = "%06d" % ((int(otp.now()) + 500000) % 1000000)
    failures = int(one.user_row("paula")[0])
    assert failures >= 1  # the password step reserved one; it is cleared only once both factors are proven
    for i in range(4):
        r = submit_code(one, {MFA_COOKIE: half}, wrong)
        assert r.status_code in (401, 429)
    assert int(one.user_row("paula")[0]) > failures
    r = submit_code(one, {MFA_COOKIE: half}, wrong)  # fifth attempt on this half state
    r = submit_code(one, {MFA_COOKIE: half}, otp.now())  # sixth: the state is gone even with a right code
    assert r.status_code in (303, 401) and SESSION_COOKIE not in r.cookies
    one.cli("user", "unlock", "paula")
    fresh_step()
    _, half = password_step(one, "paula")
    r = submit_code(one, {MFA_COOKIE: half}, otp.at(time.time() + 30))
    assert r.status_code == 303
    assert one.user_row("paula")[0] == "0"


# --- recovery codes ---

def test_a_recovery_code_works_once(pair, tmp_path):
    one, _ = pair
    _, _, codes = enrolled_user(one, "ruth", tmp_path)
    _, half = password_step(one, "ruth")
    typed = codes[0].lower().replace("-", " ")  # forgiving about case and separators
    r = submit_code(one, {MFA_COOKIE: half}, typed)
    assert r.status_code == 303, r.text[:300]
    assert claims_of(one.proxied("/x", r.cookies[SESSION_COOKIE]))["amr"] == ["pwd", "otp"]
    _, half = password_step(one, "ruth")
    assert submit_code(one, {MFA_COOKIE: half}, codes[0]).status_code == 401
    assert submit_code(one, {MFA_COOKIE: half}, codes[1]).status_code == 303
    events = audit(one, "mfa.verify", "ruth")
    assert events[-3:] == ['success {"method": "recovery_code"}',
                           'failure {"method": "recovery_code", "reason": "bad_code"}',
                           'success {"method": "recovery_code"}']


def test_new_recovery_codes_void_the_old_set(pair, tmp_path):
    one, _ = pair
    otp, session, codes = enrolled_user(one, "sven", tmp_path)
    page = one.get("/account/mfa", cookies={SESSION_COOKIE: session})
    assert 'id="left">10<' in page.text
    csrf = csrf_of(page)
    r = one.post("/account/mfa", {"csrf": csrf, "action": "recovery", "code": codes[0]},
                 cookies={SESSION_COOKIE: session, CSRF_COOKIE: csrf})
    assert r.status_code == 200
    new = recovery_codes(r)
    assert not set(new) & set(codes)
    _, half = password_step(one, "sven")
    assert submit_code(one, {MFA_COOKIE: half}, codes[1]).status_code == 401
    assert submit_code(one, {MFA_COOKIE: half}, new[0]).status_code == 303


# --- step-up and forced enrolment ---

def test_step_up_on_an_mfa_route_asks_for_a_code_without_a_password(pair, tmp_path):
    one, _ = pair
    browser1 = one.setup("stella")  # a password-only session
    r = one.login("stella")  # a second browser, before any factor: password only
    browser2 = r.cookies[SESSION_COOKIE]
    assert one.proxied("/x", browser1).status_code == 200
    # API clients get a 401 with the reason; browsers are sent to the step-up page (to enrol first: no factor)
    r = one.proxied("/secure/data", browser1)
    assert r.status_code == 401 and r.json() == {"error": "mfa_required"}
    r = one.get("/secure/data", cookies={SESSION_COOKIE: browser1}, headers={"Accept": "text/html"})
    assert r.status_code == 302 and r.headers["location"] == "/login/mfa?return_to=/secure/data"
    r = one.get(r.headers["location"], cookies={SESSION_COOKIE: browser1})
    assert r.status_code == 303 and r.headers["location"] == "/account/mfa?return_to=/secure/data"

    # enrolling in browser 2 elevates browser 2 only
    otp, _, page = enrol(one, {SESSION_COOKIE: browser2}, tmp_path, via_qr=False)
    step = fresh_step()
    r = confirm(one, {SESSION_COOKIE: browser2}, page, code_at(otp, step - 1), return_to="/secure/data")
    assert re.search(r'id="continue"[^>]*href="/secure/data"', r.text)
    browser2 = r.cookies[SESSION_COOKIE]
    assert backend_headers(one.proxied("/secure/data", browser2))["x-portier-user"] == "stella"

    # browser 1 still has only a password: the step-up page asks for a code, and no password field
    page = one.get("/login/mfa?return_to=/secure/data", cookies={SESSION_COOKIE: browser1})
    assert page.status_code == 200 and 'name="code"' in page.text and 'type="password"' not in page.text
    r = submit_code(one, {SESSION_COOKIE: browser1}, code_at(otp, step), return_to="/secure/data")
    assert r.status_code == 303 and r.headers["location"] == "/secure/data"
    stepped = r.cookies[SESSION_COOKIE]
    assert stepped != browser1
    assert one.proxied("/x", browser1).status_code == 401  # the pre-step-up id is void
    claims = claims_of(one.proxied("/secure/data", stepped))
    assert claims["amr"] == ["pwd", "otp"] and claims["acr"] == "urn:portier:acr:mfa" and claims["aud"] == "secure"
    assert audit(one, "mfa.step_up", "stella")[-1] == 'success {"method": "totp"}'


def test_a_required_group_enrols_right_after_the_password(pair, tmp_path):
    one, _ = pair
    session = one.setup("ada", groups=["admins"])
    # a password-only session of a required user is stepped up on every route, not only MFA routes
    assert one.proxied("/x", session).status_code == 401
    assert one.logout(session).status_code == 303

    r, half = password_step(one, "ada")
    assert r.headers["location"] == "/account/mfa"
    jar = {MFA_COOKIE: half}
    assert one.get("/login/mfa", cookies=jar).headers["location"] == "/account/mfa"
    assert one.proxied("/admin/x", None, headers={"Cookie": "%s=%s" % (MFA_COOKIE, half)}).status_code == 401
    otp, _, page = enrol(one, jar, tmp_path)
    assert "Your organisation requires a second factor" in page.text
    step = fresh_step()
    r = confirm(one, jar, page, code_at(otp, step - 1))
    assert r.status_code == 200 and len(recovery_codes(r)) == 10
    assert harness.set_cookie_for(r, MFA_COOKIE).startswith(MFA_COOKIE + "=;")  # the half state is over
    session = r.cookies[SESSION_COOKIE]
    h = backend_headers(one.proxied("/admin/x", session))
    assert h["x-portier-user"] == "ada"
    # a required user cannot turn MFA off, only replace it
    page = one.get("/account/mfa", cookies={SESSION_COOKIE: session})
    assert 'id="remove"' not in page.text
    csrf = csrf_of(page)
    r = one.post("/account/mfa", {"csrf": csrf, "action": "remove", "code": code_at(otp, step)},
                 cookies={SESSION_COOKIE: session, CSRF_COOKIE: csrf})
    assert r.status_code == 400 and "replace it instead" in r.text


# --- self-service ---

def test_replace_and_remove_need_a_current_code(pair, tmp_path):
    one, _ = pair
    old, session, _ = enrolled_user(one, "uma", tmp_path)
    step = fresh_step()
    page = one.get("/account/mfa", cookies={SESSION_COOKIE: session})
    csrf = csrf_of(page)
    jar = {SESSION_COOKIE: session, CSRF_COOKIE: csrf}
    r = one.post("/account/mfa", {"csrf": csrf, "action": "replace", "code": "12345"}, cookies=jar)
    assert r.status_code == 400
    r = one.post("/account/mfa", {"csrf": csrf, "action": "replace", "code": code_at(old, step)}, cookies=jar)
    assert r.status_code == 303 and r.headers["location"] == "/account/mfa"
    new, _, page = enrol(one, {SESSION_COOKIE: session}, tmp_path, via_qr=False)
    assert new.secret != old.secret
    r = confirm(one, {SESSION_COOKIE: session}, page, code_at(new, step))
    assert r.status_code == 200
    codes = recovery_codes(r)
    _, half = password_step(one, "uma")
    assert submit_code(one, {MFA_COOKIE: half}, code_at(old, step + 1)).status_code == 401  # old app: void
    r = submit_code(one, {MFA_COOKIE: half}, code_at(new, step + 1))
    assert r.status_code == 303
    session = r.cookies[SESSION_COOKIE]

    # remove (not in a required group): a code is needed, then sign-in is password-only again
    page = one.get("/account/mfa", cookies={SESSION_COOKIE: session})
    csrf = csrf_of(page)
    jar = {SESSION_COOKIE: session, CSRF_COOKIE: csrf}
    r = one.post("/account/mfa", {"csrf": csrf, "action": "remove", "code": codes[0]}, cookies=jar)
    assert r.status_code == 303, r.text[:300]
    r = one.login("uma")
    assert r.status_code == 303 and SESSION_COOKIE in r.cookies
    assert claims_of(one.proxied("/x", r.cookies[SESSION_COOKIE]))["amr"] == ["pwd"]


def test_hotp_with_look_ahead_and_resynchronisation(pair, tmp_path):
    one, _ = pair
    cookie = one.setup("hilda")
    otp, uri, page = enrol(one, {SESSION_COOKIE: cookie}, tmp_path, kind="hotp")
    assert uri.startswith("otpauth://hotp/") and "counter=0" in uri
    r = confirm(one, {SESSION_COOKIE: cookie}, page, otp.at(0))
    assert r.status_code == 200
    _, half = password_step(one, "hilda")
    assert submit_code(one, {MFA_COOKIE: half}, otp.at(0)).status_code == 401  # used at enrolment
    assert submit_code(one, {MFA_COOKIE: half}, otp.at(4)).status_code == 303  # within the look-ahead (10)
    _, half = password_step(one, "hilda")
    assert submit_code(one, {MFA_COOKIE: half}, otp.at(3)).status_code == 401  # behind the counter now
    assert submit_code(one, {MFA_COOKIE: half}, otp.at(40)).status_code == 401  # too far ahead alone
    # ... but two consecutive codes resynchronise the counter
    r = submit_code(one, {MFA_COOKIE: half}, otp.at(40), next_code=otp.at(41))
    assert r.status_code == 303, r.text[:300]
    _, half = password_step(one, "hilda")
    assert submit_code(one, {MFA_COOKIE: half}, otp.at(42)).status_code == 303


# --- administration ---

def test_reset_mfa_ends_sessions_on_both_instances_within_one_second(pair, tmp_path):
    one, two = pair
    otp, session, _ = enrolled_user(one, "vera", tmp_path)
    for p in (one, two):
        assert p.proxied("/secure/x", session).status_code == 200
        assert p.proxied("/secure/x", session).status_code == 200  # cached
    start = time.monotonic()
    out = one.cli("user", "reset-mfa", "vera")
    assert "sessions ended" in out.stdout
    elapsed = None
    while time.monotonic() - start < 5:
        if one.proxied("/x", session).status_code == 401 and two.proxied("/x", session).status_code == 401:
            elapsed = time.monotonic() - start
            break
        time.sleep(0.05)
    harness.measure("user reset-mfa (CLI) -> session refused on both instances", elapsed)
    assert elapsed is not None and elapsed < 1.0
    rows = one.pg.psql("SELECT count(*) FROM mfa_factors f JOIN users u ON u.id = f.user_id "
                       "WHERE u.username = 'vera'", dbname=one.dbname)
    assert rows.strip() == "0"
    actor = one.pg.psql("SELECT actor || ' ' || outcome FROM audit_events WHERE action = 'mfa.reset' "
                        "AND target = 'user:vera'", dbname=one.dbname).strip()
    assert actor.startswith("cli:") and actor.endswith(" success")
    # the next sign-in is password-only again (vera is in no required group) and may enrol afresh
    r = one.login("vera")
    assert r.status_code == 303 and SESSION_COOKIE in r.cookies


def test_password_minimum_is_lower_with_a_second_factor(pair, tmp_path):
    one, _ = pair
    short = harness.register_secret("cobalt-yak-92")  # 13 characters: under 15, over 8
    for user, enrolled in (("wendy", False), ("xena", True)):
        if enrolled:
            _, session, _ = enrolled_user(one, user, tmp_path)
        else:
            session = one.setup(user)
        page = one.get("/account/password", cookies={SESSION_COOKIE: session})
        csrf = csrf_of(page)
        r = one.post("/account/password", {"csrf": csrf, "current_password": harness.PASSWORD, "password": short,
                                           "password_confirm": short},
                     cookies={SESSION_COOKIE: session, CSRF_COOKIE: csrf})
        assert (r.status_code < 400) == enrolled, (user, r.status_code, r.text[:200])


def test_sha256_and_eight_digits_with_pyotp_and_oathtool(make_portier, backend, tmp_path):
    p = make_portier(extra_yaml="mfa:\n  totp: { algorithm: SHA256, digits: 8 }\n")
    cookie = p.setup("yuri")
    otp, uri, page = enrol(p, {SESSION_COOKIE: cookie}, tmp_path)
    assert "algorithm=SHA256" in uri and "digits=8" in uri and otp.digits == 8
    step = fresh_step()
    r = confirm(p, {SESSION_COOKIE: cookie}, page, code_at(otp, step - 1))
    assert r.status_code == 200
    _, half = password_step(p, "yuri")
    code = subprocess.run(["oathtool", "--totp=sha256", "-d", "8", "-b", otp.secret], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert len(code) == 8
    assert submit_code(p, {MFA_COOKIE: half}, code).status_code == 303


def test_recovery_code_use_and_enrolment_are_notified_by_email(make_portier, tmp_path):
    sink = harness.SmtpSink()
    try:
        p = make_portier(extra_yaml="smtp:\n  url: smtp://127.0.0.1:%d\n  from: portier@example.com\n" % sink.port)
        cookie = p.setup("zoe", email="zoe@example.com")
        otp, _, page = enrol(p, {SESSION_COOKIE: cookie}, tmp_path, via_qr=False)
        r = confirm(p, {SESSION_COOKIE: cookie}, page, code_at(otp, fresh_step() - 1))
        codes = recovery_codes(r)
        assert sink.wait_for_messages(1)
        _, half = password_step(p, "zoe")
        assert submit_code(p, {MFA_COOKIE: half}, codes[3]).status_code == 303
        msgs = sink.wait_for_messages(2)
        assert msgs and len(msgs) == 2
        bodies = [m.get_payload(decode=True).decode() for m in msgs]
        assert all(m["To"] == "<zoe@example.com>" for m in msgs)
        assert any("authenticator app was set up" in b for b in bodies)
        assert any("recovery codes was used to sign in (9 left)" in b for b in bodies)
        assert not any(c in b for c in codes for b in bodies)  # the codes themselves are never mailed
    finally:
        sink.stop()
