"""TLS front door: versions, ALPN h2, and the plain-HTTP listener that only redirects."""
import socket
import ssl
import warnings

import pytest
import requests

from harness import curl


def client_context(version, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 is deprecated: that is the point
        ctx.minimum_version = version
        ctx.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers("ALL:@SECLEVEL=0")  # so that our client really offers TLS 1.1
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def handshake(port, version, alpn=None):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with client_context(version, alpn).wrap_socket(raw) as tls:
            return tls.version(), tls.cipher(), tls.selected_alpn_protocol()


def test_tls12_and_tls13_accepted_with_aead(portier):
    assert handshake(portier.port, ssl.TLSVersion.TLSv1_3)[0] == "TLSv1.3"
    version, cipher, _ = handshake(portier.port, ssl.TLSVersion.TLSv1_2)
    assert version == "TLSv1.2" and ("GCM" in cipher[0] or "CHACHA20" in cipher[0]), cipher


def test_tls11_refused(portier):
    with pytest.raises((ssl.SSLError, ConnectionResetError)) as e:
        handshake(portier.port, ssl.TLSVersion.TLSv1_1)
    assert "NO_PROTOCOLS_AVAILABLE" not in str(e.value)  # refused by the server, not by our own client


def test_http2_negotiated_by_alpn(portier):
    assert handshake(portier.port, ssl.TLSVersion.TLSv1_3, ["h2", "http/1.1"])[2] == "h2"
    out = curl("--http2", "-I", portier.url("/healthz"))
    assert out.stdout.startswith("HTTP/2 200"), out.stdout[:200]


def test_plain_http_listener_only_redirects(make_portier):
    p = make_portier(http_redirect=True)
    for path in ("/app/x?y=1", "/login", "/"):
        r = requests.get("http://127.0.0.1:%d%s" % (p.http_port, path), allow_redirects=False, timeout=5)
        assert r.status_code in (301, 308), (path, r.status_code)
        assert r.headers["location"] == p.base + path
    r = requests.post("http://127.0.0.1:%d/login" % p.http_port, data={"username": "x"}, allow_redirects=False,
                      timeout=5)
    assert r.status_code in (301, 308)
