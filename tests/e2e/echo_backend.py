#!/usr/bin/python3
"""The e2e suite's own backend: it tells the test exactly what portier forwarded to it.

    echo_backend.py PORT        (127.0.0.1 only; any method)

With `Accept: application/json` (or a path ending in .json) the answer is
    {"method": "GET", "path": "/x?y=1", "headers": {"lower-cased name": "value", ...}}
otherwise a small HTML page "Signed in as <x-portier-user>" with the same header table (HTML-escaped), which the
browser test reads. A header that arrives more than once is reported once with its values joined by ", ", so a
forged copy next to portier's own is visible. Bodies are read and discarded; nothing is logged (requests carry
session cookies). Kept independent of scripts/demo-backend.py so the tests do not depend on the demo's format.
"""
import html
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as portier pools upstream connections

    def log_message(self, format, *args):  # noqa: A002
        pass

    def headers_dict(self):
        out = {}
        for name, value in self.headers.items():
            key = name.lower()
            out[key] = out[key] + ", " + value if key in out else value
        return out

    def discard_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                self.rfile.read(size + 2 if size else 0)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
        n = int(self.headers.get("Content-Length") or 0)
        if 0 < n <= MAX_BODY:
            self.rfile.read(n)

    def answer(self):
        self.discard_body()
        headers = self.headers_dict()
        path_only = self.path.split("?", 1)[0]
        if "application/json" in headers.get("accept", "") or path_only.endswith(".json"):
            body = json.dumps({"method": self.command, "path": self.path, "headers": headers}).encode()
            ctype = "application/json"
        else:
            rows = "".join("<tr><td>%s</td><td>%s</td></tr>" % (html.escape(k), html.escape(v))
                           for k, v in headers.items())
            user = html.escape(headers.get("x-portier-user", "(nobody)"))
            body = ("<!doctype html><html><head><title>echo backend</title></head><body>"
                    "<h1>Signed in as <span id=\"user\">%s</span></h1><p>%s %s</p>"
                    "<table id=\"headers\">%s</table><p><a href=\"/logout\">Sign out</a></p></body></html>"
                    % (user, html.escape(self.command), html.escape(self.path), rows)).encode()
            ctype = "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = answer


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
