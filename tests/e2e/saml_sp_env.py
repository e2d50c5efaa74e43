"""The set-up shared by the broker's tests (test_saml_sp.py, test_saml_sp_attacks.py): a portier instance with two
enterprise IdP connections backed by saml_test_idp.TestIdP, and the browser side of a sign-in (start at
/saml/sp/login, post a Response to the ACS)."""
import os
import tempfile

import harness
import saml_peers
import saml_test_idp
from harness import SESSION_COOKIE
from saml_test_idp import MFA_CLASS

BROWSER_COOKIE = "__Host-portier-saml-sp"
MACE = "urn:mace:dir:attribute-def:"  # pysaml2's attribute names


class Env:
    def __init__(self, make_portier):
        self.dir = tempfile.mkdtemp(prefix="portier-saml-sp.", dir="/tmp")
        os.chmod(self.dir, 0o755)
        key, cert, _ = saml_peers.make_rsa(self.dir, "portier")
        self.sp_cert = cert  # IdPs encrypt assertions for this certificate
        self.acme = saml_test_idp.TestIdP(self.dir, "acme")
        self.open = saml_test_idp.TestIdP(self.dir, "open")
        self.attacker = saml_test_idp.TestIdP(self.dir, "attacker")  # configured nowhere
        self.pysaml2 = saml_test_idp.TestIdP(self.dir, "pysaml2")  # its key and metadata, for a pysaml2 IdP
        self.web_port = harness.free_port()  # a pysaml2 IdP served over HTTP, for the browser test
        self.web = saml_test_idp.TestIdP(self.dir, "web", base="http://127.0.0.1:%d" % self.web_port)
        yaml = f"""mfa:
  required_groups: [admins]
saml:
  idp: {{ key: {key}, certificate: {cert} }}
  sp:
    connections:
      - name: acme
        label: ACME Corp
        metadata: {self.acme.metadata_path}
        domains: [acme.test]
        match: email
        jit: true
        sso_only: true
        attributes: {{ username: uid, email: mail, display_name: displayName, groups: memberOf }}
        group_map: {{ Engineering: eng, Admins: admins }}
        mfa_contexts: ["{MFA_CLASS}"]
      - {{ name: open, metadata: {self.open.metadata_path}, idp_initiated: true, match: username, domains: [open.test],
          attributes: {{ username: uid }} }}
      - {{ name: pysaml2, metadata: {self.pysaml2.metadata_path}, domains: [pysaml2.test], jit: true,
          attributes: {{ username: "{MACE}uid", email: "{MACE}mail", display_name: "{MACE}displayName",
                         groups: "{MACE}eduPersonAffiliation" }},
          group_map: {{ staff: staff }} }}
      - {{ name: web, label: Web IdP, metadata: {self.web.metadata_path}, domains: [web.test], jit: true,
          attributes: {{ username: "{MACE}uid", email: "{MACE}mail", groups: "{MACE}eduPersonAffiliation" }},
          group_map: {{ staff: staff }} }}
"""
        self.p = make_portier(extra_yaml=yaml, login="")
        self.acs = self.p.base + "/saml/sp/acs"
        self.sp_entity = self.p.base + "/saml/sp/metadata"

    def start(self, idp="acme", return_to="/app", browser=None):
        """GET /saml/sp/login: (request id, RelayState, browser cookie value, redirect location)."""
        cookies = {BROWSER_COOKIE: browser} if browser else None
        r = self.p.get("/saml/sp/login?idp=%s&return_to=%s" % (idp, return_to), cookies=cookies)
        assert r.status_code == 303, (r.status_code, r.text[:300])
        xml, q = saml_test_idp.parse_redirect(r.headers["location"])
        rid = saml_test_idp.etree.fromstring(xml).get("ID")
        return rid, q["RelayState"], browser or r.cookies[BROWSER_COOKIE], r.headers["location"]

    def response(self, idp=None, rid=None, **kw):
        idp = idp or self.acme
        return idp.response(self.acs, self.sp_entity, in_response_to=rid, **kw)

    def post(self, saml_response, relay_state, browser):
        """POST to the ACS as the browser would (cross-site: only the SameSite=None cookie rides along)."""
        data = {"SAMLResponse": saml_response if isinstance(saml_response, str) else
                saml_test_idp.encode(saml_response)}
        if relay_state is not None:
            data["RelayState"] = relay_state
        return self.p.post("/saml/sp/acs", data, cookies={BROWSER_COOKIE: browser} if browser else None)

    def audit(self, action="saml.sp.login"):
        out = self.p.pg.psql("SELECT actor, target, outcome, details::text FROM audit_events WHERE action = '%s' "
                             "ORDER BY id" % action, dbname=self.p.dbname)
        return [line.split("|") for line in out.splitlines() if line]

    def last_reason(self):
        rows = self.audit()
        assert rows, "no saml.sp.login audit event"
        return rows[-1]


def session_of(r):
    return r.cookies.get(SESSION_COOKIE)
