"""Password change from the account page, and the forgotten-password email flow (real SMTP server)."""
import re
import time

import pytest

import harness
from harness import PASSWORD, form_value


@pytest.fixture(scope="module")
def smtp():
    sink = harness.SmtpSink()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def pair(make_portier, smtp):
    mail = "smtp:\n  url: smtp://127.0.0.1:%d\n  from: portier@example.com\n" % smtp.port
    one = make_portier(extra_yaml=mail)
    two = make_portier(share_db=one, extra_yaml=mail)
    return one, two


def change(p, cookie, current, new, confirm=None):
    page = p.get("/account/password", cookies={"__Host-portier": cookie})
    assert page.status_code == 200
    csrf = form_value(page.text, "csrf")
    return p.post("/account/password", {"csrf": csrf, "current_password": current, "password": new,
                                        "password_confirm": confirm if confirm is not None else new},
                  cookies={"__Host-portier": cookie, "__Host-portier-csrf": csrf})


def refused_within(p, cookie, limit=1.0):
    start = time.monotonic()
    while time.monotonic() - start < 5:
        if p.proxied("/x", cookie).status_code == 401:
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def test_account_page_requires_a_session(pair):
    one, _ = pair
    r = one.get("/account/password")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?return_to=")


def test_password_change_ends_other_sessions_on_both_instances(pair, smtp):
    one, two = pair
    here = one.setup("changer", email="changer@example.com")
    elsewhere = one.login("changer").cookies["__Host-portier"]
    for p in (one, two):
        assert p.proxied("/x", elsewhere).status_code == 200
        assert p.proxied("/x", elsewhere).status_code == 200
    new = harness.register_secret("a completely new passphrase 9")
    wrong = harness.register_secret("not the current password at all")
    assert change(one, here, wrong, new).status_code == 401
    short = harness.register_secret("short one")
    assert change(one, here, PASSWORD, short).status_code == 400
    assert change(one, here, PASSWORD, new, new + "x").status_code == 400
    before = len(smtp.messages())
    r = change(one, here, PASSWORD, new)
    assert r.status_code == 200 and "was changed" in r.text
    elapsed = refused_within(two, elsewhere)
    print("password change -> other session refused on instance 2 after %.3f s" % elapsed)
    assert elapsed is not None and elapsed < 1.0
    assert one.proxied("/x", here).status_code == 200  # the session that changed it stays
    assert one.login("changer", PASSWORD).status_code == 401
    assert one.login("changer", new).status_code == 303
    msgs = smtp.wait_for_messages(before + 1)
    assert msgs and any(m["To"] == "<changer@example.com>" and "changed" in m["Subject"] for m in msgs)


def test_forgotten_password_by_email(pair, smtp):
    one, two = pair
    cookie = one.setup("forgetter", email="forgetter@example.com")
    assert two.proxied("/x", cookie).status_code == 200
    assert 'id="forgot"' in one.get("/login").text
    page = one.get("/forgot")
    csrf = form_value(page.text, "csrf")
    before = len(smtp.messages())
    answers = []
    for name in ("forgetter@example.com", "nobody@example.com", "no-such-user"):
        r = one.post("/forgot", {"csrf": csrf, "username": name}, cookies={"__Host-portier-csrf": csrf})
        assert r.status_code == 200
        answers.append(re.sub(r'value="[^"]*"', "", r.text))
    assert len(set(answers)) == 1 and "If an account matches" in answers[0]
    smtp.wait_for_messages(before + 1)
    time.sleep(0.5)  # nothing else arrives for the unknown names
    msgs = smtp.messages()
    assert len(msgs) == before + 1
    [mail] = [m for m in msgs if m["To"] == "<forgetter@example.com>"]
    assert mail["Subject"] == "Reset your portier password"
    body = mail.get_payload(decode=True).decode()
    link = re.search(r"(https://\S+/setup\?token=\S+)", body).group(1)
    token = harness.register_secret(link.split("token=")[1])
    harness.register_secret(link)
    new = harness.register_secret("my reset passphrase is long")
    page = one.get("/setup?token=" + token)
    assert page.status_code == 200
    c = form_value(page.text, "csrf")
    r = one.post("/setup", {"token": token, "csrf": c, "password": new, "password_confirm": new},
                 cookies={"__Host-portier-csrf": c})
    assert r.status_code == 303
    elapsed = refused_within(two, cookie)
    assert elapsed is not None and elapsed < 1.0
    assert one.get("/setup?token=" + token).status_code == 410
    assert one.login("forgetter", new).status_code == 303
    # the user is told that the password changed
    msgs = smtp.wait_for_messages(before + 2)
    assert sorted(m["Subject"] for m in msgs if m["To"] == "<forgetter@example.com>") == [
        "Reset your portier password", "Your portier password was changed"]


def test_forgot_is_not_offered_without_smtp(portier):
    assert 'id="forgot"' not in portier.get("/login").text
    assert portier.get("/forgot").status_code == 404


def setup_with(p, user, password, email=None):
    args = ["--email", email] if email else []
    _, token = p.invite(user, *args)
    page = p.get("/setup?token=" + token)
    c = form_value(page.text, "csrf")
    harness.register_secret(password)
    return p.post("/setup", {"token": token, "csrf": c, "password": password, "password_confirm": password},
                  cookies={"__Host-portier-csrf": c})


def test_password_rules_on_the_setup_page(portier):
    cases = [
        ("x7Kq2mVb9Lw4Zp", "at least 15"),                      # 14 characters
        ("Q" * 1 + "w8Rt5Yu2Io9Pa3Sd6Fg1Hj4Kl7Zx0Cv" * 5, "128"),  # 161 characters
        ("aaaaaaaaaaaaaaaaaaaa", None),                          # repetition
        ("abcdefghijklmnopqrstu", None),                         # sequence
        ("rulecheck-2024-rulecheck", None),                      # the user name
        ("rulecheck@example.com!!", None),                       # the email address
    ]
    for i, (pw, why) in enumerate(cases):
        r = setup_with(portier, "rulecheck", pw, "rulecheck@example.com")
        assert r.status_code == 400, (pw, r.status_code)
        assert 'id="error"' in r.text and pw not in r.text
        if why:
            assert why in r.text, (why, r.text[r.text.find('id="error"'):][:200])
    # 15 characters is enough
    assert setup_with(portier, "rulecheck", "x7Kq2mVb9Lw4Zp!").status_code == 303


def test_blocklist_and_dictionary_at_the_lower_minimum(make_portier):
    # every list entry is shorter than 15, so the lists bite at the MFA minimum of 8: run with minimum 8
    p = make_portier(start=False)
    with open(p.config) as f:
        text = f.read()
    with open(p.config, "w") as f:
        f.write(text.replace("password_min_length: 15", "password_min_length: 8"))
    p.start()
    blocklist = [l.strip() for l in open(harness.ROOT + "/conf/blocklist.txt") if l.strip() and l[0] != "#"]
    sample = [w for w in blocklist if len(w) >= 8][::40][:10]
    assert len(sample) == 10
    for w in sample:
        r = setup_with(p, "listcheck", w.upper())
        assert r.status_code == 400 and "common" in r.text, w
    words = [w.strip() for w in open("/usr/share/dict/words") if len(w.strip()) >= 12 and w.strip().isalpha()][::997]
    for w in words[:3]:
        r = setup_with(p, "listcheck", w)
        assert r.status_code == 400, w
    assert setup_with(p, "listcheck", "tangerine kayak 7!").status_code == 303


def test_unicode_password_round_trip(portier):
    # 128 code points with characters NFKC changes one to one (fullwidth letters): set, then sign in with
    # the same text and with its normalised form
    words = ["ｐａｓｓ", "日本語", "ｆｉｎｅ", "émoji", "🔑", "Ωmega", "Straße", "ｗｏｒｄ", "北京", "café", "naïve", "ｊｕｎｇｌａ"]
    pw = ""
    i = 0
    while len(pw) < 128:
        pw += words[i % len(words)] + str(i) + " "
        i += 1
    pw = pw[:128]
    import unicodedata
    assert len(pw) == 128 and len(unicodedata.normalize("NFKC", pw)) == 128 and unicodedata.normalize("NFKC", pw) != pw
    assert setup_with(portier, "unicoder", pw).status_code == 303
    assert portier.login("unicoder", pw).status_code == 303
    import unicodedata
    assert portier.login("unicoder", unicodedata.normalize("NFKC", pw)).status_code == 303
    assert portier.login("unicoder", pw[:127]).status_code == 401
    too_long = pw + "x"
    assert setup_with(portier, "unicoder2", too_long).status_code == 400


def test_length_counts_after_normalisation(portier):
    # "ﬁ" is one code point that NFKC turns into two: 120 of them normalise to 240 characters, over the limit
    assert setup_with(portier, "ligature", "ﬁ" * 60 + "x" * 60).status_code == 400
