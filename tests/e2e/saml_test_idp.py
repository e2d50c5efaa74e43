"""A SAML 2.0 identity provider for the broker's tests (portier as SP, issue #7): it builds Responses with lxml and
signs them with python3-xmlsec (RSA-SHA256, exclusive c14n, enveloped), so every test starts from a valid, signed
message and can then tamper with it like an attacker would (wrapping, re-signing, removing, duplicating...)."""
import base64
import datetime
import os
import urllib.parse
import uuid
import zlib

import xmlsec
from lxml import etree

import saml_peers

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
}
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
EMAIL_FMT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
PASSWORD_CLASS = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
MFA_CLASS = "http://schemas.microsoft.com/claims/multipleauthn"


def instant(offset=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id():
    return "_" + uuid.uuid4().hex


class TestIdP:
    def __init__(self, directory, name, entity_id=None, base=None):
        """base: where the IdP's endpoints are (default https://NAME.idp.test, never contacted)."""
        self.key, self.cert, self.cert_body = saml_peers.make_rsa(directory, name)
        self.entity_id = entity_id or "https://%s.idp.test/saml" % name
        base = base or "https://%s.idp.test" % name
        self.sso_url = base + "/sso"
        self.slo_url = base + "/slo"
        self.metadata_path = os.path.join(directory, name + "-idp.xml")
        with open(self.metadata_path, "w") as f:
            f.write(f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="{NS['md']}" xmlns:ds="{NS['ds']}" entityID="{self.entity_id}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{self.cert_body}</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{self.slo_url}"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{self.sso_url}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
""")

    def response(self, acs, audience, in_response_to=None, name_id="u-1", name_id_format=PERSISTENT, attributes=None,
                 issuer=None, assertion_issuer=None, not_before=-60, not_on_or_after=300, authn_class=PASSWORD_CLASS,
                 destination=None, recipient=None, status="urn:oasis:names:tc:SAML:2.0:status:Success"):
        """An unsigned Response (lxml element) with one bearer Assertion."""
        issuer = issuer or self.entity_id
        assertion_issuer = assertion_issuer or issuer
        irt = ' InResponseTo="%s"' % in_response_to if in_response_to else ""
        attrs = ""
        for name, values in (attributes or {}).items():
            if isinstance(values, str):
                values = [values]
            attrs += '<saml:Attribute Name="%s">%s</saml:Attribute>' % (
                name, "".join("<saml:AttributeValue>%s</saml:AttributeValue>" % v for v in values))
        xml = f"""<samlp:Response xmlns:samlp="{NS['samlp']}" xmlns:saml="{NS['saml']}" ID="{new_id()}" Version="2.0"
 IssueInstant="{instant()}" Destination="{destination or acs}"{irt}><saml:Issuer>{issuer}</saml:Issuer>
<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>
<saml:Assertion ID="{new_id()}" Version="2.0" IssueInstant="{instant()}"><saml:Issuer>{assertion_issuer}</saml:Issuer>
<saml:Subject><saml:NameID Format="{name_id_format}">{name_id}</saml:NameID>
<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData
 NotOnOrAfter="{instant(not_on_or_after)}" Recipient="{recipient or acs}"{irt}/></saml:SubjectConfirmation></saml:Subject>
<saml:Conditions NotBefore="{instant(not_before)}" NotOnOrAfter="{instant(not_on_or_after)}"><saml:AudienceRestriction>
<saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>
<saml:AuthnStatement AuthnInstant="{instant()}" SessionIndex="{new_id()}"><saml:AuthnContext>
<saml:AuthnContextClassRef>{authn_class}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>
<saml:AttributeStatement>{attrs}</saml:AttributeStatement></saml:Assertion></samlp:Response>"""
        if not attrs:
            xml = xml.replace("<saml:AttributeStatement></saml:AttributeStatement>", "")
        return etree.fromstring(xml.encode())


def sign(element, key, cert=None, sha1=False, transforms=None, keyinfo=True):
    """Adds an enveloped signature to `element` (placed after its Issuer, as SAML wants). Returns the Signature."""
    sig_alg = xmlsec.Transform.RSA_SHA1 if sha1 else xmlsec.Transform.RSA_SHA256
    digest = xmlsec.Transform.SHA1 if sha1 else xmlsec.Transform.SHA256
    node = xmlsec.template.create(element, xmlsec.Transform.EXCL_C14N, sig_alg)
    issuer = element.find("saml:Issuer", NS)
    if issuer is not None:
        issuer.addnext(node)
    else:
        element.insert(0, node)
    ref = xmlsec.template.add_reference(node, digest, uri="#" + element.get("ID"))
    for t in transforms or (xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N):
        xmlsec.template.add_transform(ref, t)
    if keyinfo and cert:
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(node))
    ctx = xmlsec.SignatureContext()
    k = xmlsec.Key.from_file(key, xmlsec.constants.KeyDataFormatPem)
    if cert:
        k.load_cert_from_file(cert, xmlsec.constants.KeyDataFormatPem)
    ctx.key = k
    xmlsec.tree.add_ids(element, ["ID"])
    ctx.sign(node)
    return node


def assertion_of(response):
    return response.find("saml:Assertion", NS)


def encode(element_or_bytes):
    data = element_or_bytes if isinstance(element_or_bytes, bytes) else etree.tostring(element_or_bytes)
    return base64.b64encode(data).decode()


def parse_redirect(location):
    """(AuthnRequest XML bytes, query dict) of the HTTP-Redirect binding URL portier sent the browser to."""
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    req = zlib.decompress(base64.b64decode(q["SAMLRequest"][0]), -15)
    return req, {k: v[0] for k, v in q.items()}


def logout_request_query(idp, destination, name_id, session_index=None, key=None, sha1=False, relay_state=None,
                         request_id=None, issue_offset=0):
    """The query string of a LogoutRequest over HTTP-Redirect, signed (SAML bindings 3.4.4.1) with `key` (default
    the IdP's own; unsigned when key is False)."""
    si = "<samlp:SessionIndex>%s</samlp:SessionIndex>" % session_index if session_index else ""
    xml = (f'<samlp:LogoutRequest xmlns:samlp="{NS["samlp"]}" xmlns:saml="{NS["saml"]}" ID="{request_id or new_id()}" '
           f'Version="2.0" IssueInstant="{instant(issue_offset)}" Destination="{destination}">'
           f'<saml:Issuer>{idp.entity_id}</saml:Issuer><saml:NameID Format="{PERSISTENT}">{name_id}</saml:NameID>'
           f'{si}</samlp:LogoutRequest>')
    return redirect_query("SAMLRequest", xml, relay_state, idp.key if key is None else key, sha1)


def redirect_query(param, xml, relay_state=None, key=None, sha1=False):
    """param=DEFLATE+base64(xml)[&RelayState]&SigAlg&Signature (SAML bindings 3.4.4.1); unsigned when key is False."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = z.compress(xml.encode()) + z.flush()
    q = param + "=" + urllib.parse.quote(base64.b64encode(data).decode(), safe="")
    if relay_state:
        q += "&RelayState=" + urllib.parse.quote(relay_state, safe="")
    if key is False:
        return q
    alg = "http://www.w3.org/2000/09/xmldsig#rsa-sha1" if sha1 else "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    q += "&SigAlg=" + urllib.parse.quote(alg, safe="")
    with open(key, "rb") as f:
        pk = serialization.load_pem_private_key(f.read(), None)
    sig = pk.sign(q.encode(), padding.PKCS1v15(), hashes.SHA1() if sha1 else hashes.SHA256())
    return q + "&Signature=" + urllib.parse.quote(base64.b64encode(sig).decode(), safe="")


def logout_response_query(idp, destination, in_response_to, relay_state, key=None,
                          status="urn:oasis:names:tc:SAML:2.0:status:Success"):
    xml = (f'<samlp:LogoutResponse xmlns:samlp="{NS["samlp"]}" xmlns:saml="{NS["saml"]}" ID="{new_id()}" '
           f'Version="2.0" IssueInstant="{instant()}" Destination="{destination}" InResponseTo="{in_response_to}">'
           f'<saml:Issuer>{idp.entity_id}</saml:Issuer><samlp:Status><samlp:StatusCode Value="{status}"/>'
           f'</samlp:Status></samlp:LogoutResponse>')
    return redirect_query("SAMLResponse", xml, relay_state, idp.key if key is None else key)


def encrypt_assertion(response, cert, block=None, transport=None):
    """Replaces the (signed or not) Assertion of `response` by an EncryptedAssertion for `cert`: AES-256-CBC (or
    `block`) with the key wrapped by RSA-OAEP (or `transport`)."""
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_file(cert, xmlsec.constants.KeyDataFormatCertPem, None))
    assertion = assertion_of(response)
    enc_data = xmlsec.template.encrypted_data_create(response, block or xmlsec.Transform.AES256,
                                                     type=xmlsec.EncryptionType.ELEMENT, ns="xenc")
    xmlsec.template.encrypted_data_ensure_cipher_value(enc_data)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(enc_data, ns="dsig")
    enc_key = xmlsec.template.add_encrypted_key(key_info, transport or xmlsec.Transform.RSA_OAEP)
    xmlsec.template.encrypted_data_ensure_cipher_value(enc_key)
    ctx = xmlsec.EncryptionContext(manager)
    ctx.key = xmlsec.Key.generate(xmlsec.constants.KeyDataAes, 256, xmlsec.constants.KeyDataTypeSession)
    wrapper = etree.Element("{%s}EncryptedAssertion" % NS["saml"])
    assertion.addprevious(wrapper)
    wrapper.append(assertion)
    ctx.encrypt_xml(enc_data, assertion)
    return response
