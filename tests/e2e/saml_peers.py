"""SAML peers for the end-to-end tests: RSA keys made with the openssl CLI, and a python3-onelogin-saml2 (python3-saml)
service provider driven in-process: it builds real AuthnRequests (Redirect or POST binding, signed with its own
key) and validates portier's Responses with its own, independent code (xmlsec through python3-xmlsec)."""
import base64
import os
import re
import subprocess
import urllib.parse
import zlib

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.logout_response import OneLogin_Saml2_Logout_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"


def make_rsa(directory, name, bits=2048):
    """(key path, cert path, cert PEM body without headers) of a new self-signed RSA key pair, key mode 0600."""
    key = os.path.join(directory, name + ".key")
    cert = os.path.join(directory, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:%d" % bits, "-nodes", "-keyout", key, "-out", cert,
                    "-days", "30", "-subj", "/CN=" + name], check=True, capture_output=True)
    os.chmod(key, 0o600)
    with open(cert) as f:
        body = "".join(l.strip() for l in f if not l.startswith("-----"))
    return key, cert, body


def form_fields(html):
    """The action and hidden fields of portier's auto-submitting SAML form."""
    action = re.search(r'<form id="saml-post" method="post" action="([^"]*)"', html)
    assert action, "no SAML form in page: %s" % html[:400]
    fields = dict(re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', html))
    return action.group(1).replace("&amp;", "&"), fields


def decode_response(b64):
    return base64.b64decode(b64).decode()


class OneLoginSP:
    """A python3-saml SP named `name` with ACS http://127.0.0.1:<port>/acs/<name> (nothing listens there: the test
    hands the POSTed form to the library as the ACS would receive it)."""

    def __init__(self, directory, name, idp_base, idp_cert_body, port=9, sign_requests=True, encrypt=False,
                 sha1=False, binding="redirect", requested_authn_context=True, slo_binding="redirect"):
        self.name = name
        self.port = port
        self.entity_id = "http://127.0.0.1:%d/sp/%s" % (port, name)
        self.acs = "http://127.0.0.1:%d/acs/%s" % (port, name)
        self.key, self.cert, cert_body = make_rsa(directory, "sp-" + name)
        with open(self.key) as f:
            key_pem = f.read()
        sig = RSA_SHA1 if sha1 else RSA_SHA256
        self.settings = {
            "strict": True,
            "debug": False,
            "sp": {
                "entityId": self.entity_id,
                "assertionConsumerService": {"url": self.acs,
                                             "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"},
                "singleLogoutService": {"url": "http://127.0.0.1:%d/slo/%s" % (port, name),
                                        "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-" +
                                                   ("Redirect" if slo_binding == "redirect" else "POST")},
                "NameIDFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
                "x509cert": cert_body,
                "privateKey": key_pem,
            },
            "idp": {
                "entityId": idp_base + "/saml/metadata",
                "singleSignOnService": {"url": idp_base + "/saml/sso",
                                        "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-" +
                                                   ("Redirect" if binding == "redirect" else "POST")},
                "singleLogoutService": {"url": idp_base + "/saml/slo",
                                        "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"},
                "x509cert": idp_cert_body,
            },
            "security": {
                "authnRequestsSigned": sign_requests,
                "logoutRequestSigned": True,
                "logoutResponseSigned": True,
                "wantMessagesSigned": True,
                "wantAssertionsSigned": True,
                "wantAssertionsEncrypted": encrypt,
                "signatureAlgorithm": sig,
                "digestAlgorithm": SHA1 if sha1 else SHA256,
                "requestedAuthnContext": requested_authn_context,
            },
        }
        self.metadata_path = os.path.join(directory, "sp-%s.xml" % name)
        with open(self.metadata_path, "w") as f:
            f.write(self.metadata())

    def metadata(self):
        md = OneLogin_Saml2_Settings(self.settings, sp_validation_only=True).get_sp_metadata()
        return md.decode() if isinstance(md, bytes) else md

    def _request(self, path, get=None, post=None):
        return {"https": "off", "http_host": "127.0.0.1:%d" % self.port,
                "script_name": path, "get_data": get or {}, "post_data": post or {}}

    def login_url(self, relay_state="/after", force_authn=False, is_passive=False):
        """(URL of the signed HTTP-Redirect AuthnRequest, its ID)."""
        auth = OneLogin_Saml2_Auth(self._request("/login"), self.settings)
        url = auth.login(return_to=relay_state, force_authn=force_authn, is_passive=is_passive)
        return url, auth.get_last_request_id()

    def consume(self, fields, request_id=None):
        """Validates a Response as the ACS would; returns the Auth object (is_authenticated(), get_errors(), ...)."""
        auth = OneLogin_Saml2_Auth(self._request("/acs/" + self.name, post=fields), self.settings)
        auth.process_response(request_id=request_id)
        return auth


AS_RECEIVED = object()


def sp_logout_url(sp, auth, name_id=None, qualifiers=True, name_id_format=AS_RECEIVED):
    """The SP's signed LogoutRequest URL for the session `auth` received; (url, request id). name_id: another NameID
    value instead of the one received; qualifiers=False: the NameID without NameQualifier and SPNameQualifier (they
    are optional, as many SPs send it); name_id_format: another Format (None: none, as the SP's own NameIDFormat is
    unspecified)."""
    lo = OneLogin_Saml2_Auth(sp._request("/logout"), sp.settings)
    url = lo.logout(name_id=name_id if name_id is not None else auth.get_nameid(),
                    session_index=auth.get_session_index(),
                    name_id_format=auth.get_nameid_format() if name_id_format is AS_RECEIVED else name_id_format,
                    nq=auth.get_nameid_nq() if qualifiers else None,
                    spnq=auth.get_nameid_spnq() if qualifiers else None)
    return url, lo.get_last_request_id()


def sp_logout_post_fields(sp, auth, relay_state="/bye", issue_instant=None):
    """The SP's LogoutRequest for the session `auth` received, over HTTP-POST (an enveloped RSA-SHA256 signature
    by the SP's key): (form fields, request id). issue_instant: signed with this IssueInstant instead of now."""
    lo = OneLogin_Saml2_Logout_Request(OneLogin_Saml2_Settings(sp.settings), name_id=auth.get_nameid(),
                                       session_index=auth.get_session_index(), nq=auth.get_nameid_nq(),
                                       name_id_format=auth.get_nameid_format(), spnq=auth.get_nameid_spnq())
    xml = lo.get_xml()
    xml = xml.decode() if isinstance(xml, bytes) else xml
    if issue_instant is not None:
        xml, n = re.subn(r'IssueInstant="[^"]*"', 'IssueInstant="%s"' % issue_instant, xml, count=1)
        assert n == 1, xml
    with open(sp.key) as k, open(sp.cert) as c:
        signed = OneLogin_Saml2_Utils.add_sign(xml, k.read(), c.read(), sign_algorithm=RSA_SHA256,
                                               digest_algorithm=SHA256)
    signed = signed.decode() if isinstance(signed, bytes) else signed
    return {"SAMLRequest": base64.b64encode(signed.encode()).decode(), "RelayState": relay_state}, lo.id


def sp_process_slo(sp, url, request_id=None):
    """The SP handles a LogoutRequest or LogoutResponse that reached its SLO endpoint as `url`: (auth, redirect url
    of its answer or None)."""
    q = {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlparse(url).query).items()}
    auth = OneLogin_Saml2_Auth(sp._request("/slo/" + sp.name, get=q), sp.settings)
    out = auth.process_slo(keep_local_session=True, request_id=request_id)
    return auth, out


def sp_answer_slo_with_status(sp, url, status):
    """The SP answers a LogoutRequest that reached its SLO endpoint as `url` with a signed LogoutResponse carrying
    the top-level `status` (python3-saml itself only ever answers Success): the redirect URL of that answer."""
    q = {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlparse(url).query).items()}
    request_id = re.search(r' ID="([^"]+)"', redirect_xml(url)).group(1)
    auth = OneLogin_Saml2_Auth(sp._request("/slo/" + sp.name, get=q), sp.settings)
    builder = OneLogin_Saml2_Logout_Response(auth.get_settings())
    builder.build(request_id)
    xml = builder.get_xml().replace("urn:oasis:names:tc:SAML:2.0:status:Success", status)
    assert status in xml
    params = {"SAMLResponse": OneLogin_Saml2_Utils.deflate_and_base64_encode(xml)}
    if "RelayState" in q:
        params["RelayState"] = q["RelayState"]
    auth.add_response_signature(params, sp.settings["security"]["signatureAlgorithm"])
    return auth.redirect_to(auth.get_settings().get_idp_slo_response_url(), params)


def redirect_xml(url, param="SAMLRequest"):
    """The XML of the SAML message `param` (SAMLRequest or SAMLResponse) inside an HTTP-Redirect URL."""
    q = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    return zlib.decompress(base64.b64decode(q[param][0]), -15).decode()


def redirect_url(base, xml, relay_state=None, extra=None):
    """An HTTP-Redirect URL carrying `xml` unsigned (deflate + base64)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = c.compress(xml.encode()) + c.flush()
    params = {"SAMLRequest": base64.b64encode(data).decode()}
    if relay_state is not None:
        params["RelayState"] = relay_state
    params.update(extra or {})
    return base + "/saml/sso?" + urllib.parse.urlencode(params)
