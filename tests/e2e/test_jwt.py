"""The identity JWT the backend receives, verified by an independent library (PyJWT) with nothing but the
published JWKS."""
import json
import time

import jwt
import pytest
import requests

from harness import backend_headers


@pytest.fixture(scope="module")
def session(portier):
    return portier.setup("jwtuser", groups=["staff", "admins"], email="jwt@example.com", name="Jay Dub")


def jwks_key(portier, token):
    """The verification key for `token`, looked up by kid in /.well-known/jwks.json only."""
    r = requests.get(portier.url("/.well-known/jwks.json"), verify=False, timeout=10)
    assert r.status_code == 200
    kid = jwt.get_unverified_header(token)["kid"]
    matches = [k for k in r.json()["keys"] if k.get("kid") == kid]
    assert len(matches) == 1, (kid, r.json())
    return jwt.PyJWK(matches[0], algorithm="ES256").key


def token_for(portier, cookie, path="/x"):
    return backend_headers(portier.proxied(path, cookie))["x-portier-jwt-assertion"]


def verify(portier, token, audience):
    return jwt.decode(token, jwks_key(portier, token), algorithms=["ES256"], audience=audience, issuer=portier.base)


def test_jwks_publishes_an_es256_p256_key(portier):
    r = requests.get(portier.url("/.well-known/jwks.json"), verify=False, timeout=10)
    assert r.status_code == 200
    keys = r.json()["keys"]
    assert keys
    for k in keys:
        assert {k["kty"], k["crv"], k["alg"], k["use"]} == {"EC", "P-256", "ES256", "sig"}, k
        assert k["x"] and k["y"] and k["kid"]
        assert "d" not in k  # never the private part


def test_jwt_verifies_with_published_jwks(portier, session):
    token = token_for(portier, session)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    claims = verify(portier, token, "app")
    assert claims["sub"] == "jwtuser"
    assert claims["email"] == "jwt@example.com"
    assert claims["name"] == "Jay Dub"
    assert sorted(claims["groups"]) == ["admins", "staff"]
    assert claims["exp"] - claims["iat"] == 60
    assert abs(claims["iat"] - time.time()) < 30
    assert claims["sid"] and claims["jti"]
    assert claims["sid"] != session  # a public id, never the cookie


def test_user_without_groups_gets_an_empty_array(portier):
    cookie = portier.setup("loner")
    claims = verify(portier, token_for(portier, cookie), "app")
    assert claims["sub"] == "loner"
    assert claims["groups"] == []


def test_one_changed_byte_breaks_the_signature(portier, session):
    token = token_for(portier, session)
    key = jwks_key(portier, token)
    header, payload, sig = token.split(".")
    raw_sig = bytearray(jwt.utils.base64url_decode(sig))
    raw_sig[10] ^= 0x01
    tampered_sig = jwt.utils.base64url_encode(bytes(raw_sig)).decode()
    raw_payload = bytearray(jwt.utils.base64url_decode(payload))
    i = raw_payload.index(b"jwtuser")
    raw_payload[i] ^= 0x01  # "jwtuser" -> "kwtuser": still valid JSON
    tampered_payload = jwt.utils.base64url_encode(bytes(raw_payload)).decode()
    json.loads(bytes(raw_payload))
    for bad in (".".join([header, payload, tampered_sig]), ".".join([header, tampered_payload, sig])):
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(bad, key, algorithms=["ES256"], audience="app", issuer=portier.base)
    verify(portier, token, "app")  # the untouched token still verifies


def test_token_is_cached_per_session_and_route(portier, session):
    first, second = token_for(portier, session), token_for(portier, session)
    assert first == second
    admin = token_for(portier, session, "/admin/x")
    assert admin != first
    assert verify(portier, first, "app")["aud"] == "app"
    assert verify(portier, admin, "admin")["aud"] == "admin"
    with pytest.raises(jwt.InvalidAudienceError):
        verify(portier, admin, "app")


def test_jwt_lifetime_follows_configuration(make_portier):
    p = make_portier(jwt_lifetime="5s")
    cookie = p.setup("shortlived")
    claims = verify(p, token_for(p, cookie), "app")
    assert claims["exp"] - claims["iat"] == 5


def test_group_change_is_reflected_on_next_request(portier):
    cookie = portier.setup("grower", groups=["staff"])
    assert backend_headers(portier.proxied("/x", cookie))["x-portier-groups"] == "staff"
    portier.cli("group", "add", "grower", "ops")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if sorted(backend_headers(portier.proxied("/x", cookie))["x-portier-groups"].split(",")) == ["ops", "staff"]:
            break
        time.sleep(0.05)
    claims = verify(portier, token_for(portier, cookie), "app")
    assert sorted(claims["groups"]) == ["ops", "staff"]
