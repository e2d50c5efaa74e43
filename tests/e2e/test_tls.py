"""TLS front door: versions, ALPN h2, and the plain-HTTP listener that only redirects."""
import socket
import ssl

import pytest
import requests

from harness import curl


def handshake(port, version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = version
    ctx.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as tls:
            return tls.version(), tls.cipher()


def test_tls12_and_tls13_accepted_with_aead(portier):
    assert handshake(portier.port, ssl.TLSVersion.TLSv1_3)[0] == "TLSv1.3"
    version, cipher = handshake(portier.port, ssl.TLSVersion.TLSv1_2)
    assert version == "TLSv1.2" and ("GCM" in cipher[0] or "CHACHA20" in cipher[0])


def test_tls11_refused(portier):
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(portier.port, ssl.TLSVersion.TLSv1_1)


def test_http2_negotiated_by_alpn(portier):
    out = curl("--http2", "-o", "/dev/null", "-w", "%{http_version}", portier.url("/healthz"))
    assert out.stdout == "2"


def test_plain_http_listener_only_redirects(make_portier):
    p = make_portier(http_redirect=True)
    r = requests.get("http://127.0.0.1:%d/app/x?y=1" % p.http_port, allow_redirects=False)
    assert r.status_code == 308
    assert r.headers["location"] == p.base + "/app/x?y=1"
    r = requests.get("http://127.0.0.1:%d/login" % p.http_port, allow_redirects=False)
    assert r.status_code == 308
