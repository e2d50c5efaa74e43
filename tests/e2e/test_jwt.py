"""The identity JWT: verified by an independent library (PyJWT) with nothing but the published JWKS."""
import json
import time

import jwt
import pytest
import requests

from harness import backend_headers


@pytest.fixture(scope="module")
def session(portier):
    return portier.setup("jwtuser", groups=["staff", "admins"], email="jwt@example.com")


def jwks_key(portier, token):
    jwks = requests.get(portier.url("/.well-known/jwks.json"), verify=False).json()
    kid = jwt.get_unverified_header(token)["kid"]
    [key] = [k for k in jwks["keys"] if k["kid"] == kid]
    assert key["kty"] == "EC" and key["crv"] == "P-256" and key["alg"] == "ES256" and key["use"] == "sig"
    return jwt.PyJWK(key).key


def token_for(portier, cookie, path="/x"):
    return backend_headers(portier.proxied(path, cookie))["x-portier-jwt-assertion"]


def test_jwt_verifies_with_published_jwks(portier, session):
    token = token_for(portier, session)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    claims = jwt.decode(token, jwks_key(portier, token), algorithms=["ES256"], audience="app", issuer=portier.base)
    assert claims["sub"] == "jwtuser" and claims["email"] == "jwt@example.com"
    assert claims["groups"] == ["admins", "staff"]
    assert claims["exp"] - claims["iat"] == 60
    assert abs(claims["iat"] - time.time()) < 30
    assert claims["sid"] and claims["jti"]
    assert "jwt" not in claims["sid"] and len(claims["sid"]) < 43  # a public id, not the cookie


def test_user_without_groups_gets_an_empty_array(portier):
    cookie = portier.setup("loner")
    token = token_for(portier, cookie)
    claims = jwt.decode(token, jwks_key(portier, token), algorithms=["ES256"], audience="app")
    assert claims["groups"] == []
    assert "email" not in claims


def test_one_changed_byte_breaks_the_signature(portier, session):
    token = token_for(portier, session)
    key = jwks_key(portier, token)
    header, payload, sig = token.split(".")
    tampered_sig = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["sub"] = "root"
    tampered_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    for bad in (".".join([header, payload, tampered_sig]), ".".join([header, tampered_payload, sig])):
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(bad, key, algorithms=["ES256"], audience="app")


def test_token_is_cached_per_session_and_route(portier, session):
    before = portier.metrics()
    first, second = token_for(portier, session), token_for(portier, session)
    assert first == second
    admin = token_for(portier, session, "/admin/x")
    assert admin != first
    aud = jwt.decode(admin, jwks_key(portier, admin), algorithms=["ES256"], audience="admin")["aud"]
    assert aud == "admin"
    after = portier.metrics()
    assert after["portier_jwt_reused_total"] - before["portier_jwt_reused_total"] >= 1


def test_group_change_is_reflected_on_next_request(portier):
    cookie = portier.setup("grower", groups=["staff"])
    assert backend_headers(portier.proxied("/x", cookie))["x-portier-groups"] == "staff"
    portier.cli("group", "add", "grower", "ops")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if backend_headers(portier.proxied("/x", cookie))["x-portier-groups"] == "ops,staff":
            break
        time.sleep(0.05)
    token = token_for(portier, cookie)
    assert jwt.decode(token, options={"verify_signature": False})["groups"] == ["ops", "staff"]
