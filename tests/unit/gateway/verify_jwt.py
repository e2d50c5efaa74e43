#!/usr/bin/python3
"""Independent verifier for portier's backend identity tokens (ES256 JWS, RFC 7515/7518/7519).

Uses Debian's python3-jwt (PyJWT) and python3-cryptography, so it shares no code with portier. Given a
JWKS document, a token and the expected audience, it checks: the header is exactly ES256/JWT with a kid
present in the JWKS; each JWK's kid equals its RFC 7638 thumbprint; the signature verifies; aud matches;
iss, sub, iat, exp and jti are present and exp is in the future (unless --no-time); iss matches when
--issuer is given; groups is an array. It prints the claims as JSON on stdout and exits 0, or prints the
reason on stderr and exits 1 (2 for usage errors).

    verify_jwt.py JWKS TOKEN AUDIENCE [--issuer ISS] [--leeway SECONDS] [--no-time]

JWKS is a file path or an http(s) URL; TOKEN is the token itself, @FILE to read it from a file, or -
for stdin.
"""
import argparse
import base64
import hashlib
import json
import sys
import urllib.request

import jwt
from jwt.algorithms import ECAlgorithm


def b64url_nopad(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rfc7638_thumbprint(jwk):
    canon = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]},
                       separators=(",", ":"), sort_keys=True)
    return b64url_nopad(hashlib.sha256(canon.encode("utf-8")).digest())


def load_jwks(source):
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as resp:
            return json.load(resp)
    with open(source, "rb") as f:
        return json.load(f)


def read_token(arg):
    if arg == "-":
        return sys.stdin.read().strip()
    if arg.startswith("@"):
        with open(arg[1:], "r", encoding="ascii") as f:
            return f.read().strip()
    return arg.strip()


def verify(jwks, token, audience, issuer=None, leeway=0, check_time=True):
    header = jwt.get_unverified_header(token)
    if header.get("alg") != "ES256" or header.get("typ") != "JWT" or set(header) != {"alg", "typ", "kid"}:
        raise ValueError("unexpected header %r" % (header,))
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise ValueError("JWKS has no keys")
    for k in keys:
        if (k.get("kty"), k.get("crv"), k.get("alg"), k.get("use")) != ("EC", "P-256", "ES256", "sig"):
            raise ValueError("JWKS entry is not an ES256 signing key: %r" % (k,))
        if k.get("kid") != rfc7638_thumbprint(k):
            raise ValueError("kid %r is not the RFC 7638 thumbprint of its key" % (k.get("kid"),))
    match = [k for k in keys if k["kid"] == header["kid"]]
    if len(match) != 1:
        raise ValueError("kid %r not in the JWKS" % (header["kid"],))
    key = ECAlgorithm.from_jwk(json.dumps(match[0]))
    options = {"require": ["iss", "aud", "sub", "iat", "exp", "jti"]}
    if not check_time:
        options.update(verify_exp=False, verify_iat=False, verify_nbf=False)
    claims = jwt.decode(token, key=key, algorithms=["ES256"], audience=audience, issuer=issuer, leeway=leeway,
                        options=options)
    if not isinstance(claims.get("groups"), list):
        raise ValueError("groups claim missing or not an array")
    return claims


def main():
    p = argparse.ArgumentParser(description="Verify a portier ES256 identity token against a JWKS.")
    p.add_argument("jwks")
    p.add_argument("token")
    p.add_argument("audience")
    p.add_argument("--issuer")
    p.add_argument("--leeway", type=int, default=0)
    p.add_argument("--no-time", action="store_true", help="do not check exp/iat against the clock")
    args = p.parse_args()
    try:
        claims = verify(load_jwks(args.jwks), read_token(args.token), args.audience, args.issuer, args.leeway,
                        not args.no_time)
    except Exception as e:  # any failure is a verification failure
        print("verify_jwt: REJECTED: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    print(json.dumps(claims, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
