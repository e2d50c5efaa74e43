"""The SAML attacks of ../shared/security.md §SAML 1-13 against portier's assertion consumer (issue #7, scope 8).

Every test starts from a valid Response signed by a configured test IdP (saml_test_idp), for a sign-in this browser
started, and changes it the way the attack does. Each must end on an error page, with no session cookie, and with
a `saml.sp.login` failure audit event naming the reason. test_valid_control shows the untouched message works, so a
refusal below is caused by the attack and not by the set-up."""
import base64
import copy

import pytest
from lxml import etree

import saml_sp_env
import saml_test_idp
from saml_sp_env import session_of
from saml_test_idp import NS, assertion_of, sign

SAMLP, SAML, DS = "{%s}" % NS["samlp"], "{%s}" % NS["saml"], "{%s}" % NS["ds"]
USER_ATTRS = {"uid": "victim", "mail": "victim@acme.test"}
EVIL_ATTRS = {"uid": "admin", "mail": "admin@acme.test"}


@pytest.fixture(scope="module")
def env(make_portier):
    e = saml_sp_env.Env(make_portier)
    e.p.setup("admin", email="admin@acme.test", groups=["admins"])
    e.p.setup("opener", email="opener@open.test")  # the user of the IdP-initiated connection
    return e


class Flow:
    """One sign-in this browser started: its request id, RelayState and browser cookie."""

    def __init__(self, env, idp="acme"):
        self.env = env
        self.rid, self.rs, self.browser, _ = env.start(idp=idp)

    def response(self, **kw):
        kw.setdefault("name_id", "victim-id")
        kw.setdefault("attributes", USER_ATTRS)
        return self.env.response(rid=self.rid, **kw)

    def post(self, message, relay_state="ours", browser="ours"):
        return self.env.post(message, self.rs if relay_state == "ours" else relay_state,
                             self.browser if browser == "ours" else browser)


def refused(env, r, *reasons):
    """The attack failed: an error page, no session cookie, and an audited reason (one of `reasons`)."""
    assert r.status_code in (400, 401, 403, 413), (r.status_code, r.text[:300])
    assert not session_of(r), "a session cookie was set"
    assert "text/html" in r.headers.get("content-type", "")
    actor, target, outcome, details = env.last_reason()
    assert outcome == "failure" and target == "anonymous", (actor, target, outcome, details)
    assert any('"reason": "%s"' % x in details for x in reasons), (details, reasons)


def signed_assertion(flow, **kw):
    resp = flow.response(**kw)
    sign(assertion_of(resp), flow.env.acme.key, flow.env.acme.cert)
    return resp


def signed_response(flow, **kw):
    resp = flow.response(**kw)
    sign(resp, flow.env.acme.key, flow.env.acme.cert)
    return resp


def evil_assertion(flow):
    """An unsigned assertion for the administrator, otherwise identical to a genuine one."""
    a = copy.deepcopy(assertion_of(flow.response(name_id="admin-id", attributes=EVIL_ATTRS)))
    a.set("ID", saml_test_idp.new_id())
    return a


def by_tag(element, tag):
    """Nodes made by xmlsec's C code do not match lxml's tag filters (other name dictionary): compare strings."""
    return next(e for e in element.iter() if e.tag == tag)


def strip_signature(element):
    for s in element.findall(DS + "Signature"):
        element.remove(s)


# ---- control ----

def test_valid_control(env):
    f = Flow(env)
    r = f.post(signed_assertion(f))
    assert r.status_code == 303 and session_of(r)


# ---- 1. XML Signature Wrapping ----

def test_xsw1_signed_response_copied_into_signature_of_evil_response(env):
    f = Flow(env)
    orig = signed_response(f)
    evil = copy.deepcopy(orig)
    evil.set("ID", saml_test_idp.new_id())
    sig = evil.find(DS + "Signature")
    evil.replace(assertion_of(evil), evil_assertion(f))
    sig.append(copy.deepcopy(orig))  # the genuine response rides inside the signature
    refused(env, f.post(evil), "assertion_count", "reference")


def test_xsw2_signed_response_detached_before_signature(env):
    f = Flow(env)
    orig = signed_response(f)
    evil = copy.deepcopy(orig)
    evil.set("ID", saml_test_idp.new_id())
    sig = evil.find(DS + "Signature")
    evil.replace(assertion_of(evil), evil_assertion(f))
    sig.addprevious(copy.deepcopy(orig))
    refused(env, f.post(evil), "assertion_count", "reference")


def test_xsw3_evil_assertion_before_signed_assertion(env):
    f = Flow(env)
    resp = signed_assertion(f)
    assertion_of(resp).addprevious(evil_assertion(f))
    refused(env, f.post(resp), "assertion_count")


def test_xsw4_evil_assertion_wraps_signed_assertion(env):
    f = Flow(env)
    resp = signed_assertion(f)
    orig = assertion_of(resp)
    evil = evil_assertion(f)
    resp.replace(orig, evil)
    evil.append(orig)
    refused(env, f.post(resp), "assertion_count")


def test_xsw5_signature_moved_to_evil_assertion_original_appended(env):
    f = Flow(env)
    resp = signed_assertion(f)
    orig = assertion_of(resp)
    evil = evil_assertion(f)
    evil.find(SAML + "Issuer").addnext(copy.deepcopy(orig.find(DS + "Signature")))
    resp.replace(orig, evil)
    resp.append(orig)
    refused(env, f.post(resp), "assertion_count")


def test_xsw6_original_assertion_inside_signature_object_of_evil(env):
    f = Flow(env)
    resp = signed_assertion(f)
    orig = assertion_of(resp)
    evil = evil_assertion(f)
    sig = copy.deepcopy(orig.find(DS + "Signature"))
    evil.find(SAML + "Issuer").addnext(sig)
    obj = etree.SubElement(sig, DS + "Object")
    obj.append(copy.deepcopy(orig))
    resp.replace(orig, evil)
    refused(env, f.post(resp), "assertion_count")


def test_xsw7_original_assertion_hidden_in_extensions(env):
    f = Flow(env)
    resp = signed_assertion(f)
    orig = assertion_of(resp)
    ext = etree.Element(SAMLP + "Extensions")
    ext.append(copy.deepcopy(orig))
    resp.find(SAML + "Issuer").addnext(ext)
    resp.replace(orig, evil_assertion(f))
    refused(env, f.post(resp), "assertion_count")


def test_xsw8_original_without_signature_in_object_of_evil_signature(env):
    f = Flow(env)
    resp = signed_assertion(f)
    orig = assertion_of(resp)
    evil = evil_assertion(f)
    sig = copy.deepcopy(orig.find(DS + "Signature"))
    evil.find(SAML + "Issuer").addnext(sig)
    inner = copy.deepcopy(orig)
    strip_signature(inner)
    etree.SubElement(sig, DS + "Object").append(inner)
    resp.replace(orig, evil)
    refused(env, f.post(resp), "assertion_count")


def test_xsw_same_id_evil_assertion_with_moved_signature(env):
    """The evil assertion takes the genuine one's ID and signature; the genuine one is gone."""
    f = Flow(env)
    resp = signed_assertion(f)
    orig = assertion_of(resp)
    evil = evil_assertion(f)
    evil.set("ID", orig.get("ID"))
    evil.find(SAML + "Issuer").addnext(copy.deepcopy(orig.find(DS + "Signature")))
    resp.replace(orig, evil)
    refused(env, f.post(resp), "bad_signature")


# ---- 2. multiple assertions in an unsigned Response ----

@pytest.mark.parametrize("forged_first", [True, False], ids=["forged_first", "forged_last"])
def test_unsigned_response_with_signed_and_forged_assertion(env, forged_first):
    f = Flow(env)
    resp = signed_assertion(f)
    if forged_first:
        assertion_of(resp).addprevious(evil_assertion(f))
    else:
        assertion_of(resp).addnext(evil_assertion(f))
    refused(env, f.post(resp), "assertion_count")


# ---- 3. issuers ----

def test_assertion_issuer_differs_from_response_issuer(env):
    f = Flow(env)
    resp = f.response(assertion_issuer=env.open.entity_id)
    sign(assertion_of(resp), env.acme.key, env.acme.cert)
    refused(env, f.post(resp), "issuer")


def test_response_issuer_of_another_idp(env):
    f = Flow(env)
    resp = f.response(issuer=env.open.entity_id, assertion_issuer=env.acme.entity_id)
    sign(assertion_of(resp), env.acme.key, env.acme.cert)
    refused(env, f.post(resp), "issuer")


def test_idp_claims_a_user_outside_its_domains(env):
    """"open" matches by user name but owns only open.test: it cannot sign in acme's administrator."""
    resp = env.response(idp=env.open, name_id="admin-claim", attributes={"uid": "admin"})
    sign(assertion_of(resp), env.open.key, env.open.cert)
    refused(env, env.post(resp, None, None), "foreign_domain")


def test_unknown_issuer(env):
    resp = env.response(idp=env.attacker, attributes=EVIL_ATTRS)
    sign(assertion_of(resp), env.attacker.key, env.attacker.cert)
    refused(env, env.post(resp, None, None), "unknown_issuer")


# ---- 4. signatures removed ----

def test_signature_removed_from_assertion(env):
    f = Flow(env)
    resp = signed_assertion(f)
    strip_signature(assertion_of(resp))
    refused(env, f.post(resp), "unsigned")


def test_signature_removed_from_response(env):
    f = Flow(env)
    resp = signed_response(f)
    strip_signature(resp)
    refused(env, f.post(resp), "unsigned")


def test_signatures_removed_from_both(env):
    f = Flow(env)
    resp = f.response()
    sign(assertion_of(resp), env.acme.key, env.acme.cert)
    sign(resp, env.acme.key, env.acme.cert)
    strip_signature(resp)
    strip_signature(assertion_of(resp))
    refused(env, f.post(resp), "unsigned")


def test_assertion_signature_removed_and_content_changed_under_response_signature(env):
    f = Flow(env)
    resp = f.response()
    sign(assertion_of(resp), env.acme.key, env.acme.cert)
    sign(resp, env.acme.key, env.acme.cert)
    a = assertion_of(resp)
    strip_signature(a)
    a.find(SAML + "Subject/" + SAML + "NameID").text = "admin-id"
    refused(env, f.post(resp), "bad_signature")


def test_tampered_name_id_in_signed_assertion(env):
    f = Flow(env)
    resp = signed_assertion(f)
    assertion_of(resp).find(SAML + "Subject/" + SAML + "NameID").text = "admin-id"
    refused(env, f.post(resp), "bad_signature")


# ---- 5. KeyInfo is never trusted ----

def test_resigned_with_attacker_key_and_certificate_in_keyinfo(env):
    f = Flow(env)
    resp = f.response(name_id="admin-id", attributes=EVIL_ATTRS)
    sign(assertion_of(resp), env.attacker.key, env.attacker.cert, keyinfo=True)
    refused(env, f.post(resp), "bad_signature")


def test_resigned_with_attacker_key_without_keyinfo(env):
    f = Flow(env)
    resp = f.response(name_id="admin-id", attributes=EVIL_ATTRS)
    sign(resp, env.attacker.key, None, keyinfo=False)
    refused(env, f.post(resp), "bad_signature")


# ---- 6. comments in values ----

def comment_injected(flow, needle, replacement):
    resp = signed_assertion(flow, name_id="admin@acme.test.evil.test", name_id_format=saml_test_idp.EMAIL_FMT,
                            attributes={"mail": "admin@acme.test.evil.test"})
    data = etree.tostring(resp)
    assert needle in data
    return data.replace(needle, replacement, 1)  # exclusive c14n drops comments: the signature still verifies


def test_comment_in_name_id(env):
    f = Flow(env)
    data = comment_injected(f, b">admin@acme.test.evil.test</saml:NameID>",
                            b">admin@acme.test<!---->.evil.test</saml:NameID>")
    refused(env, f.post(saml_test_idp.encode(data)), "comment")


def test_comment_in_attribute_value(env):
    f = Flow(env)
    data = comment_injected(f, b">admin@acme.test.evil.test</saml:AttributeValue>",
                            b">admin@acme.test<!---->.evil.test</saml:AttributeValue>")
    refused(env, f.post(saml_test_idp.encode(data)), "comment")


# ---- 7. duplicate IDs and DOCTYPE ----

def test_duplicate_id_attributes(env):
    f = Flow(env)
    resp = signed_assertion(f)
    ext = etree.Element(SAMLP + "Extensions")
    ext.set("ID", assertion_of(resp).get("ID"))
    resp.find(SAML + "Issuer").addnext(ext)
    refused(env, f.post(resp), "duplicate_id")


DOCTYPES = {
    "external_entity": b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    "parameter_entity": b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x.dtd"> %p;]>',
    "billion_laughs": b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                      b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>',
    "internal_subset_id": b'<!DOCTYPE samlp:Response [<!ATTLIST saml:Assertion ID ID #IMPLIED>]>',
}


@pytest.mark.parametrize("kind", sorted(DOCTYPES))
def test_doctype_refused(env, kind):
    f = Flow(env)
    data = etree.tostring(signed_assertion(f))
    refused(env, f.post(saml_test_idp.encode(DOCTYPES[kind] + data)), "doctype")


# ---- 8. transforms and references ----

def test_xslt_transform(env):
    f = Flow(env)
    resp = signed_assertion(f)
    transforms = by_tag(assertion_of(resp), DS + "Transforms")
    t = etree.SubElement(transforms, DS + "Transform", Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116")
    etree.SubElement(t, "{http://www.w3.org/1999/XSL/Transform}stylesheet", version="1.0")
    refused(env, f.post(resp), "transform")


def test_xpath_transform(env):
    f = Flow(env)
    resp = signed_assertion(f)
    transforms = by_tag(assertion_of(resp), DS + "Transforms")
    t = etree.SubElement(transforms, DS + "Transform", Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116")
    etree.SubElement(t, DS + "XPath").text = "not(ancestor-or-self::node())"
    refused(env, f.post(resp), "transform")


def test_external_reference_uri(env):
    f = Flow(env)
    resp = signed_assertion(f)
    ref = assertion_of(resp).find(DS + "Signature/" + DS + "SignedInfo/" + DS + "Reference")
    ref.set("URI", "http://127.0.0.1:1/evil.xml")
    refused(env, f.post(resp), "reference")


def test_empty_reference_uri_whole_document(env):
    f = Flow(env)
    resp = signed_assertion(f)
    assertion_of(resp).find(DS + "Signature/" + DS + "SignedInfo/" + DS + "Reference").set("URI", "")
    refused(env, f.post(resp), "reference")


# ---- 9. SHA-1 ----

def test_rsa_sha1_signature(env):
    f = Flow(env)
    resp = f.response()
    sign(assertion_of(resp), env.acme.key, env.acme.cert, sha1=True)
    refused(env, f.post(resp), "sha1")


# ---- 10. replay ----

def test_replayed_solicited_response(env):
    f = Flow(env)
    resp = signed_assertion(f)
    r = f.post(resp)
    assert r.status_code == 303 and session_of(r)
    refused(env, f.post(resp), "unknown_request")


def unsolicited_for_opener(env):
    resp = env.response(idp=env.open, name_id="opener-id", attributes={"uid": "opener"})
    sign(assertion_of(resp), env.open.key, env.open.cert)
    return saml_test_idp.encode(resp)


def test_replayed_assertion_id_and_after_restart(env):
    msg = unsolicited_for_opener(env)
    r = env.post(msg, None, None)
    assert r.status_code == 303 and session_of(r), r.text[:300]
    refused(env, env.post(msg, None, None), "replay")
    env.p.stop()
    env.p.start()
    refused(env, env.post(msg, None, None), "replay")


# ---- 11. audience, recipient, destination, InResponseTo, validity ----

def test_wrong_audience(env):
    f = Flow(env)
    resp = f.response()
    assertion_of(resp).find(".//" + SAML + "Audience").text = "https://other-sp.example/metadata"
    sign(assertion_of(resp), env.acme.key, env.acme.cert)
    refused(env, f.post(resp), "audience")


def test_missing_audience(env):
    f = Flow(env)
    resp = f.response()
    cond = assertion_of(resp).find(SAML + "Conditions")
    cond.remove(cond.find(SAML + "AudienceRestriction"))
    sign(assertion_of(resp), env.acme.key, env.acme.cert)
    refused(env, f.post(resp), "audience")


def test_wrong_recipient(env):
    f = Flow(env)
    resp = f.response(recipient="https://other-sp.example/acs")
    sign(assertion_of(resp), env.acme.key, env.acme.cert)
    refused(env, f.post(resp), "recipient")


def test_wrong_destination(env):
    f = Flow(env)
    resp = f.response(destination="https://other-sp.example/acs")
    sign(resp, env.acme.key, env.acme.cert)
    refused(env, f.post(resp), "destination")


def test_missing_in_response_to(env):
    f = Flow(env)
    resp = env.response(rid=None, name_id="victim-id", attributes=USER_ATTRS)
    sign(assertion_of(resp), env.acme.key, env.acme.cert)
    refused(env, f.post(resp), "in_response_to")


def test_in_response_to_of_another_request(env):
    f, other = Flow(env), Flow(env)
    resp = env.response(rid=other.rid, name_id="victim-id", attributes=USER_ATTRS)
    sign(assertion_of(resp), env.acme.key, env.acme.cert)
    refused(env, f.post(resp), "in_response_to")


def test_unknown_in_response_to(env):
    resp = env.response(rid="_never-sent", name_id="victim-id", attributes=USER_ATTRS)
    sign(assertion_of(resp), env.acme.key, env.acme.cert)
    refused(env, env.post(resp, None, None), "unknown_request")


def test_response_for_a_sign_in_another_browser_started(env):
    f = Flow(env)
    refused(env, f.post(signed_assertion(f), browser="some-other-browser-value-0123456789abcdef"), "other_browser")


def test_response_without_the_browser_cookie(env):
    f = Flow(env)
    refused(env, f.post(signed_assertion(f), browser=None), "other_browser")


def test_expired_assertion(env):
    f = Flow(env)
    refused(env, f.post(signed_assertion(f, not_before=-900, not_on_or_after=-181)), "expired")


def test_not_yet_valid_assertion(env):
    f = Flow(env)
    refused(env, f.post(signed_assertion(f, not_before=181 + 60, not_on_or_after=600)), "not_yet_valid")


def test_skew_within_180_seconds_is_accepted(env):
    f = Flow(env)
    r = f.post(signed_assertion(f, not_before=150, not_on_or_after=-150 + 300))
    assert r.status_code == 303 and session_of(r)


# ---- 12. unsolicited ----

def test_unsolicited_response_when_idp_initiated_is_disabled(env):
    resp = env.response(rid=None, name_id="victim-id", attributes=USER_ATTRS)
    sign(assertion_of(resp), env.acme.key, env.acme.cert)
    refused(env, env.post(resp, None, None), "unsolicited")


# ---- 13. RelayState ----

@pytest.mark.parametrize("relay_state", ["https:\\\\evil.test", "https:%5c%5cevil.test", "http:www.evil.com",
                                         "///evil.test", "/\\evil.test", "javascript:alert(1)",
                                         "https://evil.test/", "//evil.test"])
def test_relay_state_open_redirect(env, relay_state):
    refused(env, env.post(unsolicited_for_opener(env), relay_state, None), "relay_state")


def test_relay_state_over_80_bytes(env):
    refused(env, env.post(unsolicited_for_opener(env), "/" + "a" * 80, None), "relay_state_too_long")


def test_relay_state_valid_path_is_followed(env):
    r = env.post(unsolicited_for_opener(env), "/app/page?x=1", None)
    assert r.status_code == 303 and r.headers["location"] == "/app/page?x=1" and session_of(r)


def test_tampered_relay_state_of_a_solicited_flow(env):
    f = Flow(env)
    refused(env, f.post(signed_assertion(f), relay_state="/\\evil.test"), "unknown_request")


# ---- 15 and the rest of the gatekeeper ----

def test_non_success_status(env):
    f = Flow(env)
    resp = f.response(status="urn:oasis:names:tc:SAML:2.0:status:Responder")
    sign(resp, env.acme.key, env.acme.cert)
    r = f.post(resp)
    refused(env, r, "status")
    assert "did not sign you in" in r.text


def test_encrypted_signed_assertion_is_accepted(env):
    f = Flow(env)
    resp = saml_test_idp.encrypt_assertion(signed_assertion(f), env.sp_cert)
    assert b"EncryptedAssertion" in etree.tostring(resp) and b"victim-id" not in etree.tostring(resp)
    r = f.post(resp)
    assert r.status_code == 303 and session_of(r), (r.status_code, env.last_reason())


def test_encrypted_assertion_under_a_response_signature_is_accepted(env):
    f = Flow(env)
    resp = saml_test_idp.encrypt_assertion(f.response(), env.sp_cert)
    sign(resp, env.acme.key, env.acme.cert)
    r = f.post(resp)
    assert r.status_code == 303 and session_of(r), (r.status_code, env.last_reason())


def test_encrypted_unsigned_assertion_refused(env):
    f = Flow(env)
    refused(env, f.post(saml_test_idp.encrypt_assertion(f.response(), env.sp_cert)), "unsigned")


def test_encrypted_assertion_for_another_key_refused(env):
    f = Flow(env)
    refused(env, f.post(saml_test_idp.encrypt_assertion(signed_assertion(f), env.attacker.cert)), "decrypt")


def test_encrypted_with_rsa_pkcs1_v15_key_transport_refused(env):
    import xmlsec
    f = Flow(env)
    resp = saml_test_idp.encrypt_assertion(signed_assertion(f), env.sp_cert, transport=xmlsec.Transform.RSA_PKCS1)
    refused(env, f.post(resp), "encryption_algorithm")


def test_encrypted_and_plain_assertion_together_refused(env):
    f = Flow(env)
    resp = saml_test_idp.encrypt_assertion(signed_assertion(f), env.sp_cert)
    resp.append(evil_assertion(f))
    refused(env, f.post(resp), "assertion_count")


def test_response_signature_kept_after_decrypted_content_is_swapped(env):
    """A Response signed over one ciphertext with the EncryptedAssertion replaced by another (validly encrypted for
    us but not what the IdP signed): the Response signature no longer matches."""
    f = Flow(env)
    resp = saml_test_idp.encrypt_assertion(f.response(), env.sp_cert)
    sign(resp, env.acme.key, env.acme.cert)
    other = saml_test_idp.encrypt_assertion(f.response(name_id="admin-id", attributes=EVIL_ATTRS), env.sp_cert)
    resp.replace(resp.find(SAML + "EncryptedAssertion"), other.find(SAML + "EncryptedAssertion"))
    refused(env, f.post(resp), "bad_signature")


def test_oversized_response(env):
    f = Flow(env)
    refused(env, f.post(base64.b64encode(b"<x>" + b"a" * (300 * 1024) + b"</x>").decode()), "too_large")


def test_not_base64(env):
    f = Flow(env)
    refused(env, f.post("%%%not-base64%%%"), "bad_encoding")
