"""SCIM 2.0 provisioning (/scim/v2): tokens, Users, Groups, filters, PATCH, ETags, errors, discovery, Bulk, and
the client habits of Okta and Microsoft Entra ID; deprovisioning across two instances within one second."""
import json
import os
import signal
import time

import pytest
import requests

import harness

SCIM_JSON = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


class Scim:
    """A SCIM client with a bearer token against one instance."""

    def __init__(self, portier, token):
        self.p, self.token = portier, token
        self.s = requests.Session()
        self.s.verify = False

    def req(self, method, path, body=None, headers=None, token=None, raw=None, **kw):
        h = {"Authorization": "Bearer " + (token if token is not None else self.token), "Accept": SCIM_JSON}
        if body is not None or raw is not None:
            h["Content-Type"] = SCIM_JSON
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return self.s.request(method, self.p.url("/scim/v2" + path), data=data, headers=h, timeout=30, verify=False,
                              allow_redirects=False, **kw)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.req("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.req("PUT", path, body, **kw)

    def patch(self, path, ops, **kw):
        return self.req("PATCH", path, {"schemas": [PATCH], "Operations": ops}, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)

    def create_user(self, username, **attrs):
        body = {"schemas": [USER], "userName": username}
        body.update(attrs)
        r = self.post("/Users", body)
        assert r.status_code == 201, (r.status_code, r.text)
        return r.json()

    def create_group(self, name, members=()):
        r = self.post("/Groups", {"schemas": [GROUP], "displayName": name,
                                  "members": [{"value": m} for m in members]})
        assert r.status_code == 201, (r.status_code, r.text)
        return r.json()

    def find(self, filt, path="/Users", **params):
        params["filter"] = filt
        r = self.get(path, params=params)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()


def make_token(portier, name):
    out = portier.cli("scim-token", "create", name)
    token = out.stdout.strip().splitlines()[-1]
    return harness.register_secret(token)


def assert_error(r, status, scim_type=None):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["schemas"] == [ERROR], body
    assert body["status"] == str(status), body
    assert body.get("detail"), body
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    else:
        assert "scimType" not in body or body["scimType"] is None, body
    return body


def db_snapshot(portier):
    """A text snapshot of everything SCIM can change (to prove that a failed request stored nothing)."""
    return portier.pg.psql(
        "SELECT (SELECT coalesce(string_agg(id || ':' || username || ':' || coalesce(external_id, '') || ':' || "
        "disabled || ':' || version || ':' || scim::text, ',' ORDER BY id), '') FROM users) || '|' || "
        "(SELECT coalesce(string_agg(id || ':' || name || ':' || version, ',' ORDER BY id), '') FROM groups) || '|' "
        "|| (SELECT coalesce(string_agg(group_id || ':' || user_id, ',' ORDER BY group_id, user_id), '') "
        "FROM group_members) || '|' || (SELECT count(*) FROM audit_events) || '|' || "
        "(SELECT count(*) FROM password_credentials)", dbname=portier.dbname)


@pytest.fixture(scope="module")
def scim(portier):
    return Scim(portier, make_token(portier, "okta"))


# ---- tokens and authentication ----

def test_token_is_printed_once_long_and_stored_hashed(portier):
    token = make_token(portier, "hashcheck")
    assert len(token) >= 43  # 256 bits in base64url; the bar is 128
    rows = portier.pg.psql("SELECT name, encode(hash, 'hex') FROM scim_tokens WHERE name = 'hashcheck'",
                           dbname=portier.dbname)
    import hashlib
    assert rows == "hashcheck|" + hashlib.sha256(token.encode()).hexdigest()
    assert token not in portier.pg.psql("SELECT string_agg(name, ',') FROM scim_tokens", dbname=portier.dbname)
    listed = portier.cli("scim-token", "list").stdout
    assert "hashcheck" in listed and token not in listed
    again = portier.cli("scim-token", "create", "hashcheck", check=False)
    assert again.returncode != 0
    audit = portier.pg.psql("SELECT actor || ' ' || action FROM audit_events WHERE target = 'scim-token:hashcheck'",
                            dbname=portier.dbname)
    assert audit.startswith("cli:") and "scim_token.create" in audit


def test_no_token_bad_token_and_cookie_only_are_401(portier, scim):
    anon = requests.get(portier.url("/scim/v2/Users"), verify=False, timeout=10)
    assert_error(anon, 401)
    assert "bearer" in anon.headers.get("WWW-Authenticate", "").lower()
    assert_error(scim.get("/Users", token="not-a-token"), 401)
    assert_error(requests.get(portier.url("/scim/v2/Users"), verify=False, timeout=10,
                              headers={"Authorization": "Basic b2t0YTpva3Rh"}), 401)
    # a signed-in user's session cookie is no authority for SCIM
    cookie = portier.setup("cookieonly")
    r = requests.get(portier.url("/scim/v2/Users"), verify=False, timeout=10,
                     cookies={harness.SESSION_COOKIE: cookie})
    assert_error(r, 401)


def test_revoked_token_is_refused_at_once(portier):
    token = make_token(portier, "shortlived")
    client = Scim(portier, token)
    assert client.get("/Users").status_code == 200
    portier.cli("scim-token", "revoke", "shortlived")
    assert_error(client.get("/Users"), 401)
    listed = portier.cli("scim-token", "list").stdout
    assert "shortlived" in listed


# ---- users ----

def test_user_create_get_and_meta(scim):
    u = scim.create_user("Alice.Create@example.com", name={"givenName": "Alice", "familyName": "Create"},
                         emails=[{"value": "alice.create@example.com", "type": "work", "primary": True}],
                         externalId="ext-alice", title="Engineer",
                         **{ENT: {"employeeNumber": "42", "department": "R&D", "manager": {"value": "7"}}})
    assert u["userName"] == "Alice.Create@example.com" and u["active"] is True
    assert u["schemas"] == [USER, ENT]
    assert u[ENT]["department"] == "R&D"
    m = u["meta"]
    assert m["resourceType"] == "User" and m["location"].endswith("/scim/v2/Users/" + u["id"])
    assert m["version"].startswith('W/"') and m["created"].endswith("Z") and m["lastModified"]
    assert "password" not in u
    r = scim.get("/Users/" + u["id"])
    assert r.status_code == 200 and r.headers["ETag"] == m["version"]
    assert r.headers["Content-Type"].startswith(SCIM_JSON)
    assert r.json()["name"]["givenName"] == "Alice"


def test_username_is_unique_case_insensitively_409_uniqueness_and_nothing_stored(portier, scim):
    scim.create_user("bob.unique")
    before = db_snapshot(portier)
    assert_error(scim.post("/Users", {"schemas": [USER], "userName": "BOB.UNIQUE"}), 409, "uniqueness")
    assert db_snapshot(portier) == before


def test_password_is_refused_by_default_and_never_returned(portier, scim):
    before = db_snapshot(portier)
    pw = harness.register_secret("a very long passphrase nobody guesses 77")
    assert_error(scim.post("/Users", {"schemas": [USER], "userName": "pw.user", "password": pw}), 400,
                 "invalidValue")
    assert db_snapshot(portier) == before


def test_put_replaces_and_keeps_id(scim):
    u = scim.create_user("carol.put", displayName="Carol", nickName="cc")
    r = scim.put("/Users/" + u["id"], {"schemas": [USER], "userName": "carol.put", "displayName": "Carol P",
                                       "id": "999999", "meta": {"version": "x"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == u["id"] and body["displayName"] == "Carol P" and "nickName" not in body
    assert body["meta"]["version"] != u["meta"]["version"]


def test_delete_user_then_404(scim):
    u = scim.create_user("dave.delete")
    r = scim.delete("/Users/" + u["id"])
    assert r.status_code == 204 and r.text == ""
    assert_error(scim.get("/Users/" + u["id"]), 404)
    assert_error(scim.delete("/Users/" + u["id"]), 404)


# ---- ETags ----

def test_if_match_and_if_none_match(portier, scim):
    u = scim.create_user("erin.etag")
    path = "/Users/" + u["id"]
    etag = u["meta"]["version"]
    assert scim.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert scim.get(path, headers={"If-None-Match": 'W/"0"'}).status_code == 200
    g = scim.create_group("etag-group", [u["id"]])
    same = scim.get("/Groups/" + g["id"], headers={"If-None-Match": g["meta"]["version"]})
    assert same.status_code == 304 and same.headers["ETag"] == g["meta"]["version"] and same.text == ""
    assert scim.get("/Groups/" + g["id"], headers={"If-None-Match": 'W/"0"'}).json()["displayName"] == "etag-group"
    before = db_snapshot(portier)
    stale = scim.patch(path, [{"op": "replace", "path": "title", "value": "x"}], headers={"If-Match": 'W/"0"'})
    assert_error(stale, 412)
    assert db_snapshot(portier) == before
    ok = scim.patch(path, [{"op": "replace", "path": "title", "value": "x"}], headers={"If-Match": etag})
    assert ok.status_code == 200 and ok.headers["ETag"] != etag
    assert_error(scim.delete(path, headers={"If-Match": etag}), 412)
    assert scim.delete(path, headers={"If-Match": ok.headers["ETag"]}).status_code == 204


# ---- filters ----

@pytest.fixture(scope="module")
def people(scim):
    made = {}
    for name, given, mail, dept, active in [("f.anna", "Anna", "anna@x.example", "Sales", True),
                                            ("f.bert", "Bert", "bert@y.example", "R&D", True),
                                            ("f.cora", "Cora", "cora@x.example", "R&D", False)]:
        made[name] = scim.create_user(name, name={"givenName": given, "familyName": "Filter"}, active=active,
                                      emails=[{"value": mail, "type": "work"},
                                              {"value": given.lower() + "@home.example", "type": "home"}],
                                      externalId="ext-" + name, **{ENT: {"department": dept}})
    return made


def names(result):
    return sorted(r["userName"] for r in result["Resources"])


@pytest.mark.parametrize("filt,expected", [
    ('userName eq "F.ANNA"', ["f.anna"]),
    ('userName ne "f.anna" and userName sw "f."', ["f.bert", "f.cora"]),
    ('name.givenName co "er"', ["f.bert"]),
    ('userName sw "f.c"', ["f.cora"]),
    ('userName ew ".bert"', ["f.bert"]),
    ('emails[type eq "work" and value co "@x.example"]', ["f.anna", "f.cora"]),
    ('emails[type eq "home" and value co "@x.example"]', []),
    ('emails.value ew "@y.example"', ["f.bert"]),
    ('emails co "cora@"', ["f.cora"]),
    ('active eq false and userName sw "f."', ["f.cora"]),
    ('not (active eq false) and userName sw "f."', ["f.anna", "f.bert"]),
    ('(userName eq "f.anna" or userName eq "f.bert") and not (name.givenName eq "Bert")', ["f.anna"]),
    ('externalId eq "ext-f.bert"', ["f.bert"]),
    ('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "r&d" and userName sw "f."',
     ["f.bert", "f.cora"]),
    ('title pr and userName sw "f."', []),
    ('name.givenName pr and userName sw "f."', ["f.anna", "f.bert", "f.cora"]),
    ('userName gt "f.anna" and userName le "f.bert"', ["f.bert"]),
    ('userName ge "f.bert" and userName lt "f.cora"', ["f.bert"]),
    ('meta.created gt "2000-01-01T00:00:00Z" and userName sw "f."', ["f.anna", "f.bert", "f.cora"]),
    ('meta.lastModified lt "2000-01-01T00:00:00Z"', []),
    ('USERNAME EQ "f.anna"', ["f.anna"]),
    ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "f.bert"', ["f.bert"]),
    ('title eq null and userName eq "f.anna"', ["f.anna"]),
])
def test_filter_operators(scim, people, filt, expected):
    assert names(scim.find(filt)) == expected


@pytest.mark.parametrize("filt", [
    'userName eq', 'userName xx "a"', '(userName eq "a"', 'userName eq "a" and', 'bogus eq "a"',
    'password eq "x"', 'active gt true', 'meta.created gt "yesterday"', 'emails[type eq "work"',
    'userName eq "a" extra', 'name co "x"', "userName eq 'single'",
    "not " * 9 + 'userName eq "a"', "(" * 9 + 'userName eq "a"' + ")" * 9,
    'userName eq "' + "a" * 1100 + '"',
])
def test_invalid_filters_are_400_invalid_filter(scim, filt):
    assert_error(scim.get("/Users", params={"filter": filt}), 400, "invalidFilter")


def test_filter_depth_eight_is_accepted(scim, people):
    filt = "(" * 7 + 'userName eq "f.anna"' + ")" * 7
    assert names(scim.find(filt)) == ["f.anna"]


INJECTIONS = ["' OR '1'='1", "\" or 1=1 --", "x'); DROP TABLE users; --", "%' OR 1=1 --", "\\' OR 1=1",
              "f.anna' UNION SELECT * FROM scim_tokens --", "$1", "'; NOTIFY portier_revoke, 'all'; --"]


@pytest.mark.parametrize("op", ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
def test_sql_injection_through_every_operator(portier, scim, people, op):
    before = db_snapshot(portier)
    for inj in INJECTIONS:
        filt = 'userName %s %s and userName sw "f."' % (op, json.dumps(inj))
        r = scim.get("/Users", params={"filter": filt})
        assert r.status_code == 200, (filt, r.text)
        got = names(r.json())
        # what plain string comparison gives, computed here: never more rows than that
        expected = sorted(n for n in ["f.anna", "f.bert", "f.cora"] if {
            "eq": n == inj.lower(), "ne": n != inj.lower(), "co": inj.lower() in n,
            "sw": n.startswith(inj.lower()), "ew": n.endswith(inj.lower()), "gt": n > inj.lower(),
            "ge": n >= inj.lower(), "lt": n < inj.lower(), "le": n <= inj.lower()}[op])
        assert got == expected, (filt, got)
        # unquoted: never valid
        bad = scim.get("/Users", params={"filter": "userName %s %s" % (op, inj)})
        assert_error(bad, 400, "invalidFilter")
    assert db_snapshot(portier) == before


def test_sql_injection_through_sort_by_and_attribute_names(portier, scim, people):
    before = db_snapshot(portier)
    for s in ["userName; DROP TABLE users", "username desc", "1", "(select 1)", "u.id", "password"]:
        r = scim.get("/Users", params={"sortBy": s})
        assert_error(r, 400, "invalidValue")
    for attr in ["userName;--", "u.username", "x' or '1'='1"]:
        assert_error(scim.get("/Users", params={"filter": attr + ' eq "a"'}), 400, "invalidFilter")
    assert db_snapshot(portier) == before


def test_sort_by_a_multi_valued_attribute_uses_the_primary_value(scim):
    def mails(*pairs):
        return [{"value": v, "type": t, **({"primary": True} if p else {})} for v, t, p in pairs]
    scim.create_user("s.anna", emails=mails(("anna@x.example", "work", False), ("zed@home.example", "home", True)))
    scim.create_user("s.bert", emails=mails(("bert@y.example", "work", False), ("bert@home.example", "home", True)))
    scim.create_user("s.cora", emails=mails(("cora@x.example", "work", False), ("aaa@home.example", "home", False)))
    scim.create_user("s.dave")  # no emails: last either way

    def order(sort_by, direction="ascending"):
        r = scim.get("/Users", params={"filter": 'userName sw "s."', "sortBy": sort_by, "sortOrder": direction})
        assert r.status_code == 200, r.text
        return [x["userName"] for x in r.json()["Resources"]]
    # the primary value, else the first: bert@home < cora@x (aaa@ is neither) < zed@home
    assert order("emails") == ["s.bert", "s.cora", "s.anna", "s.dave"]
    assert order("emails.value", "descending") == ["s.anna", "s.cora", "s.bert", "s.dave"]
    assert order("EMAILS.Type")[2:] == ["s.cora", "s.dave"]  # home, home, work, none
    for bad in ("groups", "groups.display", "emails.primary", "emails.nosuch", "members"):
        assert_error(scim.get("/Users", params={"sortBy": bad}), 400, "invalidValue")


def test_sort_and_pagination(scim, people):
    r = scim.get("/Users", params={"filter": 'userName sw "f."', "sortBy": "name.givenName",
                                   "sortOrder": "descending"}).json()
    assert [x["userName"] for x in r["Resources"]] == ["f.cora", "f.bert", "f.anna"]
    page = scim.get("/Users", params={"filter": 'userName sw "f."', "sortBy": "userName", "startIndex": 2,
                                      "count": 1}).json()
    assert page["schemas"] == [LIST]
    assert page["totalResults"] == 3 and page["startIndex"] == 2 and page["itemsPerPage"] == 1
    assert page["Resources"][0]["userName"] == "f.bert"
    zero = scim.get("/Users", params={"filter": 'userName sw "f."', "count": 0}).json()
    assert zero["totalResults"] == 3 and zero["Resources"] == []
    big = scim.get("/Users", params={"count": 100000}).json()
    assert big["itemsPerPage"] <= 200
    assert_error(scim.get("/Users", params={"count": "ten"}), 400, "invalidValue")


def test_attributes_and_excluded_attributes(scim, people):
    r = scim.get("/Users", params={"filter": 'userName eq "f.anna"', "attributes": "userName,name.givenName"})
    res = r.json()["Resources"][0]
    assert set(res) == {"schemas", "id", "userName", "name"} and res["name"] == {"givenName": "Anna"}
    r = scim.get("/Users/" + people["f.anna"]["id"], params={"excludedAttributes": "emails,meta"})
    assert "emails" not in r.json() and "meta" not in r.json() and r.json()["userName"] == "f.anna"


def test_post_search(scim, people):
    r = scim.post("/Users/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                     "filter": 'userName sw "f."', "sortBy": "userName", "count": 2,
                                     "attributes": ["userName"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totalResults"] == 3 and [x["userName"] for x in body["Resources"]] == ["f.anna", "f.bert"]
    root = scim.post("/.search", {"filter": 'userName eq "f.cora"'})
    assert root.status_code == 200 and [x["userName"] for x in root.json()["Resources"]] == ["f.cora"]


# ---- PATCH forms ----

def test_patch_forms_on_users(scim):
    u = scim.create_user("pat.forms", emails=[{"value": "pat@work.example", "type": "work"}])
    path = "/Users/" + u["id"]

    def patch(*ops):
        r = scim.patch(path, list(ops))
        assert r.status_code == 200, r.text
        return r.json()

    assert patch({"op": "add", "path": "nickName", "value": "P"})["nickName"] == "P"
    assert patch({"op": "replace", "path": "name.givenName", "value": "Pat"})["name"]["givenName"] == "Pat"
    assert patch({"op": "add", "value": {"title": "Boss", "name": {"familyName": "Forms"}}})["name"] == \
        {"givenName": "Pat", "familyName": "Forms"}
    r = patch({"op": "add", "path": "emails", "value": [{"value": "pat@home.example", "type": "home"}]})
    assert len(r["emails"]) == 2
    r = patch({"op": "replace", "path": 'emails[type eq "work"].value', "value": "pat2@work.example"})
    assert {e["value"] for e in r["emails"]} == {"pat2@work.example", "pat@home.example"}
    r = patch({"op": "remove", "path": 'emails[type eq "home"]'})
    assert [e["value"] for e in r["emails"]] == ["pat2@work.example"]
    r = patch({"op": "remove", "path": "nickName"})
    assert "nickName" not in r
    r = patch({"op": "replace", "path": ENT + ":department", "value": "Ops"})
    assert r[ENT]["department"] == "Ops"
    r = patch({"op": "replace", "path": "emails", "value": [{"value": "only@x.example", "primary": True}]})
    assert r["emails"] == [{"value": "only@x.example", "primary": True}]


def test_patch_errors_each_scim_type_and_nothing_stored(portier, scim):
    u = scim.create_user("pat.errors")
    path = "/Users/" + u["id"]
    before = db_snapshot(portier)
    assert_error(scim.patch(path, [{"op": "replace", "path": "bogus", "value": 1}]), 400, "invalidPath")
    assert_error(scim.patch(path, [{"op": "replace", "path": "emails[type eq", "value": 1}]), 400, "invalidPath")
    assert_error(scim.patch(path, [{"op": "replace", "path": 'emails[type eq "work"]', "value": {"value": "x"}}]),
                 400, "noTarget")
    assert_error(scim.patch(path, [{"op": "remove", "path": 'emails[type eq "work"].value'}]), 400, "noTarget")
    assert_error(scim.patch(path, [{"op": "remove"}]), 400, "noTarget")
    assert_error(scim.patch(path, [{"op": "replace", "path": "id", "value": "1"}]), 400, "mutability")
    assert_error(scim.patch(path, [{"op": "add", "path": "groups", "value": [{"value": "1"}]}]), 400, "mutability")
    assert_error(scim.patch(path, [{"op": "replace", "path": "active", "value": "maybe"}]), 400, "invalidValue")
    assert_error(scim.patch(path, [{"op": "jump", "path": "title", "value": "x"}]), 400, "invalidSyntax")
    assert_error(scim.req("PATCH", path, raw="{not json"), 400, "invalidSyntax")
    # a good first operation and a bad second one: neither is stored
    assert_error(scim.patch(path, [{"op": "replace", "path": "title", "value": "kept?"},
                                   {"op": "replace", "path": "bogus", "value": 1}]), 400, "invalidPath")
    assert db_snapshot(portier) == before
    assert_error(scim.req("GET", "/Users", params={"startIndex": "x"}), 400, "invalidValue")
    assert_error(scim.patch("/Users/987654321", [{"op": "remove", "path": "title"}]), 404)


# ---- groups ----

def test_groups_crud_members_and_uniqueness(portier, scim):
    a = scim.create_user("g.one")
    b = scim.create_user("g.two")
    g = scim.create_group("Engineers", [a["id"]])
    assert g["displayName"] == "Engineers" and [m["value"] for m in g["members"]] == [a["id"]]
    assert g["members"][0]["$ref"].endswith("/Users/" + a["id"])
    assert_error(scim.post("/Groups", {"schemas": [GROUP], "displayName": "engineers"}), 409, "uniqueness")
    gp = "/Groups/" + g["id"]
    r = scim.patch(gp, [{"op": "add", "path": "members", "value": [{"value": b["id"]}]}])
    assert r.status_code == 204 and r.headers["ETag"]
    members = {m["value"] for m in scim.get(gp).json()["members"]}
    assert members == {a["id"], b["id"]}
    assert scim.get("/Users/" + b["id"]).json()["groups"][0]["display"] == "Engineers"
    r = scim.patch(gp, [{"op": "remove", "path": 'members[value eq "%s"]' % a["id"]}])
    assert r.status_code == 204
    assert [m["value"] for m in scim.get(gp).json()["members"]] == [b["id"]]
    found = scim.find('displayName eq "ENGINEERS"', path="/Groups")
    assert found["totalResults"] == 1
    assert scim.find('members.value eq "%s"' % b["id"], path="/Groups")["totalResults"] == 1
    r = scim.put(gp, {"schemas": [GROUP], "displayName": "Engineering", "members": [{"value": a["id"]}]})
    assert r.status_code == 200 and [m["value"] for m in r.json()["members"]] == [a["id"]]
    before = db_snapshot(portier)
    assert_error(scim.patch(gp, [{"op": "add", "path": "members", "value": [{"value": "987654321"}]}]), 400,
                 "invalidValue")
    assert db_snapshot(portier) == before
    assert scim.get(gp, params={"excludedAttributes": "members"}).json().get("members") is None
    assert scim.delete(gp).status_code == 204
    assert_error(scim.get(gp), 404)


def test_patch_members_on_a_group_of_thousands_touches_one_row(portier, scim):
    n = 3000
    # bulk-load users straight into the database (the test is about the PATCH, not about creating users)
    portier.pg.psql("INSERT INTO users (username) SELECT 'bulk' || i FROM generate_series(1, %d) i" % n,
                    dbname=portier.dbname)
    g = scim.create_group("Big")
    portier.pg.psql("INSERT INTO group_members (group_id, user_id) SELECT %s, id FROM users WHERE username LIKE "
                    "'bulk%%'" % g["id"], dbname=portier.dbname)
    extra = scim.create_user("big.extra")
    gp = "/Groups/" + g["id"]
    start = time.monotonic()
    r = scim.patch(gp, [{"op": "add", "path": "members", "value": [{"value": extra["id"]}]}])
    elapsed = time.monotonic() - start
    assert r.status_code == 204, r.text
    harness.measure("PATCH add 1 member to a group of %d" % n, elapsed)
    assert elapsed < 1.0
    count = portier.pg.psql("SELECT count(*) FROM group_members WHERE group_id = %s" % g["id"],
                            dbname=portier.dbname)
    assert int(count) == n + 1
    start = time.monotonic()
    r = scim.patch(gp, [{"op": "remove", "path": "members", "value": [{"value": extra["id"]}]}])
    harness.measure("PATCH remove 1 member from a group of %d" % (n + 1), time.monotonic() - start)
    assert r.status_code == 204
    full = scim.get(gp).json()
    assert len(full["members"]) == n
    # PUT with all but one member: one row removed, the others untouched
    keep = [{"value": m["value"]} for m in full["members"][1:]]
    start = time.monotonic()
    r = scim.put(gp, {"schemas": [GROUP], "displayName": "Big", "members": keep})
    harness.measure("PUT a group of %d members minus one" % n, time.monotonic() - start)
    assert r.status_code == 200 and len(r.json()["members"]) == n - 1
    audit = portier.pg.psql("SELECT details->>'num_removed', details->>'num_added' FROM audit_events WHERE "
                            "action = 'scim.group.replace' ORDER BY id DESC LIMIT 1", dbname=portier.dbname)
    assert audit == "1|0"


# ---- discovery ----

def test_discovery_endpoints(scim):
    spc = scim.get("/ServiceProviderConfig").json()
    assert spc["patch"]["supported"] and spc["bulk"]["maxOperations"] == 1000
    assert spc["bulk"]["maxPayloadSize"] == 1048576  # = server.max_request_body (default 1 MiB)
    assert spc["filter"]["maxResults"] == 200 and spc["etag"]["supported"]
    assert spc["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    schemas = scim.get("/Schemas").json()
    ids = {s["id"] for s in schemas["Resources"]}
    assert ids == {USER, GROUP, ENT}
    user = scim.get("/Schemas/" + USER).json()
    attrs = {a["name"]: a for a in user["attributes"]}
    assert attrs["password"]["returned"] == "never" and attrs["password"]["mutability"] == "writeOnly"
    assert attrs["userName"]["uniqueness"] == "server" and attrs["groups"]["mutability"] == "readOnly"
    rts = scim.get("/ResourceTypes").json()
    assert {r["id"] for r in rts["Resources"]} == {"User", "Group"}
    assert scim.get("/ResourceTypes/User").json()["schemaExtensions"][0]["schema"] == ENT
    assert_error(scim.get("/Schemas/urn:nope"), 404)
    assert_error(scim.get("/Nope"), 404)


# ---- Bulk ----

def test_bulk_with_bulk_id_references(scim):
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "u1",
         "data": {"schemas": [USER], "userName": "bulk.user1"}},
        {"method": "POST", "path": "/Groups", "bulkId": "g1",
         "data": {"schemas": [GROUP], "displayName": "BulkGroup", "members": [{"value": "bulkId:u1"}]}},
        {"method": "PATCH", "path": "/Users/bulkId:u1",
         "data": {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Bulked"}]}},
    ]}
    r = scim.post("/Bulk", body)
    assert r.status_code == 200, r.text
    ops = r.json()["Operations"]
    assert [o["status"] for o in ops] == ["201", "201", "200"]
    uid = ops[0]["location"].rsplit("/", 1)[1]
    group = scim.get("/Groups/" + ops[1]["location"].rsplit("/", 1)[1]).json()
    assert [m["value"] for m in group["members"]] == [uid]
    assert scim.get("/Users/" + uid).json()["title"] == "Bulked"


def test_bulk_fail_on_errors_and_limits(scim):
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "failOnErrors": 1, "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"schemas": [USER], "userName": "bulk.dup"}},
        {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"schemas": [USER], "userName": "bulk.dup"}},
        {"method": "POST", "path": "/Users", "bulkId": "c", "data": {"schemas": [USER], "userName": "bulk.never"}},
    ]}
    ops = scim.post("/Bulk", body).json()["Operations"]
    assert [o["status"] for o in ops] == ["201", "409"]
    assert ops[1]["response"]["scimType"] == "uniqueness"
    assert scim.find('userName eq "bulk.never"')["totalResults"] == 0
    unknown = scim.post("/Bulk", {"Operations": [{"method": "POST", "path": "/Groups", "bulkId": "x", "data": {
        "displayName": "Orphans", "members": [{"value": "bulkId:nope"}]}}]}).json()["Operations"]
    assert unknown[0]["status"] == "409"
    too_many = {"Operations": [{"method": "DELETE", "path": "/Users/1"}] * 1001}
    assert_error(scim.post("/Bulk", too_many), 413)


# ---- Okta and Entra ID request shapes ----

def test_okta_sequence(portier, scim):
    # Okta: look up by userName, create, PUT updates, deactivate with a path-less replace
    assert scim.find('userName eq "okta.user@example.com"', startIndex=1, count=100)["totalResults"] == 0
    u = scim.create_user("okta.user@example.com", name={"givenName": "Okta", "familyName": "User"},
                         emails=[{"primary": True, "value": "okta.user@example.com", "type": "work"}],
                         displayName="Okta User", locale="en-US", externalId="00u1", groups=[],
                         password=None, active=True)
    found = scim.find('userName eq "okta.user@example.com"', startIndex=1, count=100)
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == u["id"]
    path = "/Users/" + u["id"]
    r = scim.put(path, {"schemas": [USER], "id": u["id"], "userName": "okta.user@example.com",
                        "name": {"givenName": "Okta", "familyName": "Renamed"}, "active": True,
                        "emails": [{"primary": True, "value": "okta.user@example.com", "type": "work"}]})
    assert r.status_code == 200 and r.json()["name"]["familyName"] == "Renamed"
    r = scim.patch(path, [{"op": "replace", "value": {"active": False}}])
    assert r.status_code == 200 and r.json()["active"] is False
    assert portier.user_row("okta.user@example.com", "disabled") == ["t"]
    r = scim.patch(path, [{"op": "replace", "value": {"active": True}}])
    assert r.json()["active"] is True


def test_entra_sequence(portier, scim):
    entra = Scim(portier, make_token(portier, "entra"))
    # Entra ID probes with a random filter on userName, then looks up by externalId
    probe = entra.find('userName eq "non-existent-user-%s"' % "8a1b", path="/Users")
    assert probe["totalResults"] == 0 and probe["Resources"] == []
    assert entra.find('externalId eq "e-77"')["totalResults"] == 0
    u = entra.create_user("entra.user@contoso.example", active=True, externalId="e-77", displayName="Entra User",
                          emails=[{"primary": True, "type": "work", "value": "entra.user@contoso.example"}],
                          name={"formatted": "Entra User", "familyName": "User", "givenName": "Entra"},
                          **{ENT: {"employeeNumber": "1001", "department": "Finance"}})
    assert entra.find('externalId eq "e-77"')["Resources"][0]["id"] == u["id"]
    path = "/Users/" + u["id"]
    r = entra.patch(path, [
        {"op": "Replace", "path": "displayName", "value": "Entra U."},
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "entra.new@contoso.example"},
        {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555 0100"},
        {"op": "Replace", "path": ENT + ":department", "value": "Treasury"},
        {"op": "Replace", "path": "active", "value": "False"},
    ])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["displayName"] == "Entra U." and body["active"] is False
    assert body["emails"][0]["value"] == "entra.new@contoso.example"
    assert body["phoneNumbers"] == [{"type": "mobile", "value": "+1 555 0100"}]
    assert body[ENT]["department"] == "Treasury"
    r = entra.patch(path, [{"op": "Replace", "path": "active", "value": "True"}])
    assert r.json()["active"] is True
    # manager as a bare id; Replace through a filter that matches nothing yet creates the element
    boss = entra.create_user("entra.boss@contoso.example")
    r = entra.patch(path, [{"op": "Add", "path": ENT + ":manager", "value": boss["id"]},
                           {"op": "Replace", "path": 'addresses[type eq "work"].locality', "value": "Redmond"}])
    assert r.status_code == 200, r.text
    assert r.json()[ENT]["manager"] == {"value": boss["id"]}
    assert r.json()["addresses"] == [{"type": "work", "locality": "Redmond"}]
    assert entra.find(ENT + ':manager.value eq "%s"' % boss["id"])["Resources"][0]["id"] == u["id"]
    # groups: create, add members with a value array, remove with a value array, rename
    other = entra.create_user("entra.two@contoso.example")
    g = entra.create_group("Entra Group")
    gp = "/Groups/" + g["id"]
    assert entra.get(gp, params={"excludedAttributes": "members"}).status_code == 200
    r = entra.patch(gp, [{"op": "Add", "path": "members", "value": [{"value": u["id"]}, {"value": other["id"]}]}])
    assert r.status_code == 204
    r = entra.patch(gp, [{"op": "Remove", "path": "members", "value": [{"value": other["id"]}]}])
    assert r.status_code == 204
    r = entra.patch(gp, [{"op": "Replace", "path": "displayName", "value": "Entra Group 2"}])
    assert r.status_code == 204
    g2 = entra.get(gp).json()
    assert g2["displayName"] == "Entra Group 2" and [m["value"] for m in g2["members"]] == [u["id"]]
    assert entra.find('displayName eq "Entra Group 2"', path="/Groups",
                      excludedAttributes="members")["totalResults"] == 1


# ---- audit ----

def test_every_change_is_audited_with_the_token_name_and_a_diff(portier, scim):
    u = scim.create_user("audit.me", title="Before")
    scim.patch("/Users/" + u["id"], [{"op": "replace", "path": "title", "value": "After"}])
    rows = portier.pg.psql("SELECT actor || '|' || action || '|' || details::text FROM audit_events WHERE target = "
                           "'user:audit.me' ORDER BY id", dbname=portier.dbname).splitlines()
    assert rows[0].startswith("scim:okta|scim.user.create|")
    actor, action, details = rows[1].split("|", 2)
    assert (actor, action) == ("scim:okta", "scim.user.patch")
    d = json.loads(details)
    assert d["before"] == {"title": "Before"} and d["after"] == {"title": "After"}


# ---- provisioning semantics across instances ----

@pytest.fixture(scope="module")
def pair(make_portier):
    one = make_portier()
    two = make_portier(share_db=one)
    return one, two


def refused_within(instance, cookie, start, limit=5.0):
    while time.monotonic() - start < limit:
        if instance.proxied("/x", cookie).status_code == 401:
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def test_scim_deactivation_ends_sessions_on_the_other_instance_within_one_second(pair):
    one, two = pair
    client = Scim(one, make_token(one, "deprov"))
    cookie = one.setup("leaver")
    for p in (one, two):
        assert p.proxied("/x", cookie).status_code == 200
        assert p.proxied("/x", cookie).status_code == 200  # cached
    uid = client.find('userName eq "leaver"')["Resources"][0]["id"]
    start = time.monotonic()
    r = client.patch("/Users/" + uid, [{"op": "replace", "value": {"active": False}}])
    assert r.status_code == 200
    elapsed = refused_within(two, cookie, start)
    harness.measure("SCIM PATCH active=false -> cookie refused on instance 2", elapsed)
    assert elapsed is not None and elapsed < 1.0
    # re-activation does not resurrect the old session
    assert client.patch("/Users/" + uid, [{"op": "replace", "path": "active", "value": True}]).status_code == 200
    assert two.proxied("/x", cookie).status_code == 401
    assert one.proxied("/x", cookie).status_code == 401


def test_the_instance_that_deactivates_refuses_the_very_next_request(pair, pg):
    # the worker applies the revocation its own transaction sent before it answers the SCIM client; it does not
    # wait for the listener thread to hear the NOTIFY. To show it, the listener's PostgreSQL backend is stopped
    # (SIGSTOP): nothing reaches the listener thread, yet the next request on this instance is refused.
    one, _ = pair
    client = Scim(one, make_token(one, "deprov-local"))
    cookies = {}
    for i in range(3):
        cookies[i] = one.setup("quick.leaver%d" % i)
        assert one.proxied("/x", cookies[i]).status_code == 200  # now cached
    listeners = pg.psql("SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN portier_revoke' AND state = 'idle' "
                        "AND datname = '%s'" % one.dbname, dbname="portier").split()
    assert len(listeners) == 2  # one per instance (the workers' connections have run other statements since)
    revoked = one.metrics()["portier_revocations_total"]
    for pid in listeners:
        os.kill(int(pid), signal.SIGSTOP)
    try:
        for i in range(3):
            uid = client.find('userName eq "quick.leaver%d"' % i)["Resources"][0]["id"]
            assert client.patch("/Users/" + uid, [{"op": "replace", "value": {"active": False}}]).status_code == 200
            assert one.proxied("/x", cookies[i]).status_code == 401, i
        assert one.metrics()["portier_revocations_total"] == revoked  # the listener really heard nothing
    finally:
        for pid in listeners:
            os.kill(int(pid), signal.SIGCONT)


def test_scim_delete_ends_sessions_on_the_other_instance_within_one_second(pair):
    one, two = pair
    client = Scim(one, make_token(one, "deprov2"))
    cookie = one.setup("deleted.user")
    for p in (one, two):
        assert p.proxied("/x", cookie).status_code == 200
    uid = client.find('userName eq "deleted.user"')["Resources"][0]["id"]
    start = time.monotonic()
    assert client.delete("/Users/" + uid).status_code == 204
    elapsed = refused_within(two, cookie, start)
    harness.measure("SCIM DELETE user -> cookie refused on instance 2", elapsed)
    assert elapsed is not None and elapsed < 1.0


def test_group_change_reaches_the_identity_header_without_a_new_login(pair):
    one, two = pair
    client = Scim(one, make_token(one, "groups"))
    cookie = one.setup("mover")
    assert two.proxied("/admin/x", cookie).status_code == 403
    uid = client.find('userName eq "mover"')["Resources"][0]["id"]
    g = client.create_group("admins", [uid])
    start = time.monotonic()
    got = harness.wait_for(lambda: two.proxied("/admin/x", cookie).status_code == 200, timeout=5, interval=0.02)
    harness.measure("SCIM group add -> route allowed on instance 2", time.monotonic() - start)
    assert got
    headers = harness.backend_headers(two.proxied("/admin/x", cookie))
    assert "admins" in headers["x-portier-groups"].split(",")
    assert client.patch("/Groups/" + g["id"], [{"op": "remove", "path": "members",
                                                "value": [{"value": uid}]}]).status_code == 204
    assert harness.wait_for(lambda: two.proxied("/admin/x", cookie).status_code == 403, timeout=5, interval=0.02)
    # the session itself survived: group changes do not log anyone out
    assert two.proxied("/x", cookie).status_code == 200


# ---- passwords (scim.accept_passwords) and invitations ----

@pytest.fixture(scope="module")
def smtp():
    sink = harness.SmtpSink()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def with_passwords(make_portier, smtp):
    mail = "smtp:\n  url: smtp://127.0.0.1:%d\n  from: portier@example.com\n" % smtp.port
    p = make_portier(extra_yaml=mail + "scim:\n  accept_passwords: true\n")
    return p, Scim(p, make_token(p, "hr"))


def test_accepted_passwords_go_through_the_policy_and_are_never_returned(with_passwords):
    p, client = with_passwords
    before = db_snapshot(p)
    weak = harness.register_secret("tooshort7")
    body = assert_error(client.post("/Users", {"schemas": [USER], "userName": "pw.weak", "password": weak}), 400,
                       "invalidValue")
    assert "password" in body["detail"]
    assert db_snapshot(p) == before
    good = harness.register_secret("violet harbour lamps at 6 dawn")
    r = client.post("/Users", {"schemas": [USER], "userName": "pw.good", "password": good})
    assert r.status_code == 201 and "password" not in r.json() and good not in r.text
    assert client.get(r.headers["Location"][len(p.base) + len("/scim/v2"):]).json().get("password") is None
    assert p.login("pw.good", good).status_code == 303
    details = p.pg.psql("SELECT details::text FROM audit_events WHERE action = 'scim.user.create' AND target = "
                        "'user:pw.good'", dbname=p.dbname)
    assert '"password": "[redacted]"' in details and good not in details
    # a new password through PATCH ends the user's sessions
    cookie = p.login("pw.good", good).cookies[harness.SESSION_COOKIE]
    assert p.proxied("/x", cookie).status_code == 200
    newer = harness.register_secret("amber meadow kites 42 drift slowly")
    uid = r.json()["id"]
    assert client.patch("/Users/" + uid, [{"op": "replace", "path": "password", "value": newer}]).status_code == 200
    assert p.proxied("/x", cookie).status_code == 401
    assert p.login("pw.good", newer).status_code == 303
    assert client.get("/ServiceProviderConfig").json()["changePassword"]["supported"] is True


def test_scim_created_user_is_invited_by_mail(with_passwords, smtp):
    p, client = with_passwords
    before = len(smtp.messages())
    client.create_user("invitee", emails=[{"value": "invitee@example.com", "type": "work", "primary": True}])
    msgs = smtp.wait_for_messages(before + 1)
    assert msgs
    [mail] = [m for m in msgs if m["To"] == "<invitee@example.com>"]
    body = mail.get_payload(decode=True).decode()
    import re
    link = re.search(r"(https://\S+/setup\?token=\S+)", body).group(1)
    token = harness.register_secret(link.split("token=")[1])
    harness.register_secret(link)
    pw = harness.register_secret("copper lantern rivers 88 hum")
    page = p.get("/setup?token=" + token)
    assert page.status_code == 200
    c = harness.form_value(page.text, "csrf")
    r = p.post("/setup", {"token": token, "csrf": c, "password": pw, "password_confirm": pw},
               cookies={harness.CSRF_COOKIE: c})
    assert r.status_code == 303
    assert p.login("invitee", pw).status_code == 303


def test_without_mail_the_operator_issues_the_invitation(portier, scim):
    scim.create_user("cli.invitee", emails=[{"value": "cli.invitee@example.com"}])
    link, token = portier.invite("cli.invitee")
    assert "/setup?token=" in link
    assert portier.get("/setup?token=" + token).status_code == 200


def test_okta_pathless_replace_with_id_and_nested_groups_refused(scim):
    u = scim.create_user("okta.echo")
    r = scim.patch("/Users/" + u["id"], [{"op": "replace", "value": {"id": u["id"], "active": False}}])
    assert r.status_code == 200 and r.json()["active"] is False
    g = scim.create_group("Outer")
    assert_error(scim.patch("/Groups/" + g["id"], [{"op": "add", "path": "members",
                                                    "value": [{"value": g["id"], "type": "Group"}]}]), 400,
                 "invalidValue")


def test_every_scim_type(portier, scim):
    """One request per scimType of RFC 7644 §3.12, each answered with its status and nothing stored."""
    u = scim.create_user("types.user")
    scim.create_user("types.taken")
    path = "/Users/" + u["id"]
    before = db_snapshot(portier)
    seen = {}

    def check(r, status, scim_type):
        seen[scim_type] = assert_error(r, status, scim_type)

    check(scim.get("/Users", params={"filter": 'userName eq "a" or'}), 400, "invalidFilter")
    many = " or ".join('id ew "%d"' % i for i in range(60))  # 2 parameters each, within 1 KiB
    check(scim.get("/Users", params={"filter": many}), 400, "tooMany")
    check(scim.req("POST", "/Users", raw='{"userName": '), 400, "invalidSyntax")
    check(scim.patch(path, [{"op": "replace", "path": "nope.nope", "value": 1}]), 400, "invalidPath")
    check(scim.patch(path, [{"op": "remove", "path": 'emails[type eq "work"]'}]), 400, "noTarget")
    check(scim.post("/Users", {"schemas": [USER], "userName": ""}), 400, "invalidValue")
    check(scim.put(path, {"schemas": [USER], "userName": "types.taken"}), 409, "uniqueness")
    check(scim.patch(path, [{"op": "replace", "path": "meta", "value": {}}]), 400, "mutability")
    check(scim.post("/Users", {"schemas": ["urn:scim:schemas:core:1.0"], "userName": "old.client"}), 400,
          "invalidVers")
    r = requests.get(portier.url("/scim/v1/Users"), verify=False, timeout=10,
                     headers={"Authorization": "Bearer " + scim.token})
    check(r, 400, "invalidVers")
    assert_error(requests.get(portier.url("/scim/v1/Users"), verify=False, timeout=10), 401)
    assert set(seen) == {"invalidFilter", "tooMany", "invalidSyntax", "invalidPath", "noTarget", "invalidValue",
                         "uniqueness", "mutability", "invalidVers"}
    assert db_snapshot(portier) == before


def test_scim_setting_is_validated_with_file_line_and_key(portier, tmp_path):
    with open(portier.config) as f:
        lines = f.read().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("routes:"))
    bad = lines[:at] + ["scim:", "  accept_passwords: perhaps", "  tokens: 3"] + lines[at:]
    path = tmp_path / "bad.yaml"
    path.write_text("\n".join(bad) + "\n")
    out = harness.subprocess.run([harness.BIN, "check-config", "-c", str(path)], capture_output=True, text=True)
    assert out.returncode == 1
    assert "%s:%d: scim.accept_passwords:" % (path, at + 2) in out.stderr, out.stderr
    assert "%s:%d: scim.tokens: unknown key" % (path, at + 3) in out.stderr, out.stderr


def test_scim_requests_are_counted_in_metrics(portier, scim):
    before = portier.metrics()
    scim.get("/ServiceProviderConfig")
    scim.get("/Users/987654321")
    after = portier.metrics()
    assert after['portier_scim_requests_total{code="2xx"}'] == before['portier_scim_requests_total{code="2xx"}'] + 1
    assert after['portier_scim_requests_total{code="4xx"}'] == before['portier_scim_requests_total{code="4xx"}'] + 1


def test_multi_valued_sub_attribute_projection_and_control_characters(scim, people):
    r = scim.get("/Users/" + people["f.anna"]["id"], params={"attributes": "emails.value"}).json()
    assert sorted(e for e in r["emails"][0]) == ["value"] and len(r["emails"]) == 2
    assert_error(scim.post("/Users", {"userName": "line\nbreak"}), 400, "invalidValue")
    assert_error(scim.post("/Users", {"userName": "ok.user", "emails": [{"value": "a@b\r\nBcc: x@y"}]}), 400,
                 "invalidValue")
    u = scim.create_user("addr.user", addresses=[{"formatted": "1 Main St\nSpringfield", "type": "work"}])
    assert u["addresses"][0]["formatted"] == "1 Main St\nSpringfield"
    assert_error(scim.post("/.search", {"filter": 'bogus eq "x"'}), 400, "invalidFilter")


def test_me_and_unsupported_methods(scim):
    assert_error(scim.get("/Me"), 501)
    assert_error(scim.req("PATCH", "/Users", {"Operations": []}), 405)
    assert_error(scim.req("DELETE", "/ServiceProviderConfig"), 405)
    assert_error(scim.get("/Users/not-a-number"), 404)
    group_schema = scim.get("/Schemas/" + GROUP).json()
    assert {a["name"] for a in group_schema["attributes"]} == {"displayName", "members", "externalId"}
    assert scim.get("/ResourceTypes/Group").json()["endpoint"] == "/Groups"


def test_scim_answers_503_while_postgres_is_down_and_recovers(make_portier):
    import os
    import subprocess
    own = harness.Postgres()
    try:
        p = make_portier(pg=own)
        client = Scim(p, make_token(p, "outage"))
        assert client.get("/Users").status_code == 200

        def pg_ctl(action):
            subprocess.run([os.path.join(harness.ROOT, "scripts", "pg.sh"), action, os.path.join(own.dir, "pg")],
                           check=True, capture_output=True)
        pg_ctl("stop")
        r = client.get("/Users")
        assert_error(r, 503)
        assert r.headers.get("Retry-After")
        assert_error(client.post("/Users", {"userName": "during.outage"}), 503)
        pg_ctl("start")
        assert harness.wait_for(lambda: client.get("/Users").status_code == 200, timeout=15)
        assert client.post("/Users", {"userName": "after.outage"}).status_code == 201
        p.stop()
    finally:
        own.stop()
