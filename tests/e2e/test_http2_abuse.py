"""HTTP/2 abuse on loopback, bounded: a Rapid Reset flood (CVE-2023-44487: HEADERS immediately cancelled with
RST_STREAM, thousands per connection) must not take the server down or starve other clients; the flood is
bounded in count and time and stops by itself."""
import socket
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.events
import pytest

import harness

FLOOD_STREAMS = 500000
FLOOD_SECONDS = 5.0


def tls_h2(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
    assert s.selected_alpn_protocol() == "h2"
    return s


def flood(port, result):
    sock = tls_h2(port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    headers = [(":method", "GET"), (":path", "/x"), (":scheme", "https"), (":authority", "127.0.0.1"),
               ("accept", "application/json")]
    sent, deadline = 0, time.monotonic() + FLOOD_SECONDS
    try:
        while sent < FLOOD_STREAMS and time.monotonic() < deadline:
            for _ in range(100):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, headers, end_stream=True)
                conn.reset_stream(sid)
                sent += 1
            sock.sendall(conn.data_to_send())
    except (OSError, h2.exceptions.ProtocolError):
        result["closed_by_server"] = True
    result["sent"] = sent
    sock.close()


def test_rapid_reset_flood_does_not_starve_other_clients(portier):
    result = {}
    t = threading.Thread(target=flood, args=(portier.port, result))
    t.start()
    latencies = []
    while t.is_alive():
        t0 = time.monotonic()
        assert portier.get("/healthz", timeout=5).status_code == 200
        latencies.append(time.monotonic() - t0)
        time.sleep(0.05)
    t.join()
    print("rapid reset: %d streams sent, closed by server: %s, healthz max %.0f ms over %d probes"
          % (result.get("sent", 0), result.get("closed_by_server", False), max(latencies) * 1000, len(latencies)))
    # h2o 2.2.5 has no Rapid Reset counter: other clients slow down during the flood (about 1.5 s at worst here)
    # but are served, and the server stays up; the bound leaves room for the sanitizer build
    assert latencies and max(latencies) < 5.0
    assert portier.get("/healthz").status_code == 200


def test_http2_can_be_turned_off(make_portier):
    p = make_portier(start=False)
    with open(p.config) as f:
        text = f.read()
    with open(p.config, "w") as f:
        f.write(text.replace("  threads: 2\n", "  threads: 2\n  http2: false\n"))
    p.start()
    out = harness.curl("--http2", "-o", "/dev/null", "-w", "%{http_version}", p.url("/healthz"))
    assert out.stdout == "1.1"
