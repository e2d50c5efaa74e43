#!/usr/bin/python3
"""A tiny backend for the demo and the e2e tests: it shows what portier forwarded to it.

    scripts/demo-backend.py PORT      (listens on 127.0.0.1 only)

Every request (any method) is answered with a page listing the request line and every request header it
received, HTML-escaped, under a "You are signed in as <X-Portier-User>" heading with a sign-out link to
/logout. With `Accept: application/json`, or a path ending in `.json`, the answer is JSON instead:

    {"method": "GET", "path": "/x?y=1", "headers": {"lower-cased name": "value", ...}}

A header that arrives several times is shown once, its values joined with ", ", so a forged identity
header that slipped through next to the real one is visible. Request bodies are read (up to a limit) and
discarded, never echoed. No request logging: requests carry session cookies.
"""

import html
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20  # bytes read from a request body; the rest of the connection is dropped
USER_HEADER = "x-portier-user"


def collect_headers(message):
    """Lower-cased header name -> values joined with ", ", in order of first appearance."""
    out = {}
    for name, value in message.items():
        key = name.lower()
        out[key] = out[key] + ", " + value if key in out else value
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: h2o pools its upstream connections

    def version_string(self):
        return "portier-demo-backend"

    def log_message(self, format, *args):  # noqa: A002 - signature from BaseHTTPRequestHandler
        pass

    def drain_body(self):
        """Reads and discards the request body. Returns False when the connection must be closed."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    return False
                total += size
                if total > MAX_BODY:
                    return False
                self.rfile.read(size + 2 if size else 0)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return True
        length = self.headers.get("Content-Length")
        if length is None:
            return True
        try:
            n = int(length)
        except ValueError:
            return False
        if n < 0 or n > MAX_BODY:
            return False
        self.rfile.read(n)
        return True

    def wants_json(self):
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        return "application/json" in self.headers.get("Accept", "").lower() or path.endswith(".json")

    def render_html(self, headers):
        user = headers.get(USER_HEADER)
        esc = html.escape
        heading = (
            "You are signed in as " + esc(user) if user else "You are not signed in (no X-Portier-User header)"
        )
        rows = "\n".join(
            "<tr><th>{}</th><td>{}</td></tr>".format(esc(name), esc(value)) for name, value in self.headers.items()
        )
        return "".join(
            [
                '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
                "<title>portier demo backend</title>",
                "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:1em;",
                "vertical-align:top}td{font-family:monospace;word-break:break-all}</style></head><body>\n",
                "<h1>", heading, "</h1>\n",
                '<p><a href="/logout">Sign out</a></p>\n',
                "<h2>Request</h2>\n<pre>", esc(self.requestline), "</pre>\n",
                "<h2>Headers received by the backend</h2>\n<table>\n", rows, "\n</table>\n",
                "</body></html>\n",
            ]
        )

    def respond(self):
        keep_open = self.drain_body()
        headers = collect_headers(self.headers)
        if self.wants_json():
            body = json.dumps({"method": self.command, "path": self.path, "headers": headers}, indent=1)
            ctype = "application/json"
        else:
            body = self.render_html(headers)
            ctype = "text/html; charset=utf-8"
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if not keep_open:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = respond


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog; the default 5 drops connections under wrk


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() or not 0 < int(sys.argv[1]) < 65536:
        print("usage: demo-backend.py PORT", file=sys.stderr)
        return 2
    port = int(sys.argv[1])
    httpd = Server(("127.0.0.1", port), Handler)
    print("demo-backend: listening on http://127.0.0.1:%d" % port, file=sys.stderr, flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
