"""An independent SAML IdP implementation for the broker's interop test: Debian's python3-pysaml2 (7.0) as an
in-process IdP. It parses portier's AuthnRequest with its own schema code and answers with a Response it builds and
signs itself (RSA-SHA256 through the xmlsec1 CLI), so a sign-in through it shows portier's SP side speaking SAML
with somebody else's implementation, not only with our own test IdP."""
import base64
import os

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

PASSWORD_CLASS = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"


class PySaml2IdP:
    def __init__(self, directory, test_idp, sp_metadata_xml):
        """test_idp: a saml_test_idp.TestIdP whose key, certificate, entity id and metadata portier was given."""
        sp_md = os.path.join(directory, "portier-sp-metadata.xml")
        with open(sp_md, "w") as f:
            f.write(sp_metadata_xml)
        conf = IdPConfig()
        conf.load({
            "entityid": test_idp.entity_id,
            "key_file": test_idp.key,
            "cert_file": test_idp.cert,
            "xmlsec_binary": "/usr/bin/xmlsec1",
            "metadata": {"local": [sp_md]},
            "service": {"idp": {
                "endpoints": {"single_sign_on_service": [(test_idp.sso_url, BINDING_HTTP_REDIRECT)]},
                "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                "policy": {"default": {"lifetime": {"minutes": 5}, "name_form":
                                       "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"}},
            }},
            "allow_unknown_attributes": True,
        })
        self.server = Server(config=conf)

    def answer(self, saml_request, user_id, identity):
        """Parses the AuthnRequest (Redirect binding value) and returns the base64 SAMLResponse."""
        req = self.server.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT).message
        acs = req.assertion_consumer_service_url
        resp = self.server.create_authn_response(
            identity, in_response_to=req.id, destination=acs, sp_entity_id=req.issuer.text,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=user_id),
            authn={"class_ref": PASSWORD_CLASS, "authn_auth": self.server.config.entityid},
            sign_response=False, sign_assertion=True, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
        if os.environ.get("PYSAML2_DUMP"):
            print(str(resp))
        return base64.b64encode(str(resp).encode()).decode(), acs


class WebIdP:
    """The same IdP served over HTTP on loopback for a browser: GET /sso answers portier's AuthnRequest for one
    fixed user with an auto-submitting HTTP-POST form to portier's ACS (as a real IdP would after its login)."""

    def __init__(self, idp, port, user_id, identity):
        import html
        import threading
        import urllib.parse
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                response, acs = idp.answer(q["SAMLRequest"][0], user_id, identity)
                outer.requests += 1
                rs = q.get("RelayState", [""])[0]
                body = ('<!DOCTYPE html><html><body><form method="post" action="%s">'
                        '<input type="hidden" name="SAMLResponse" value="%s">'
                        '<input type="hidden" name="RelayState" value="%s"><button id="go">Continue</button></form>'
                        '<script>document.forms[0].submit()</script></body></html>'
                        % (html.escape(acs), response, html.escape(rs))).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.requests = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
