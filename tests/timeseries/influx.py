"""A real InfluxDB 1.x server for the tests (drift.localnet.InfluxServer): missing influxd fails
the test when CI is set, and skips it otherwise. V2Gateway puts InfluxDB 2.x's HTTP API in
front of it."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import threading
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from drift import localnet


def InfluxServer(root):  # noqa: N802 (a factory standing in for the class)
    try:
        return localnet.InfluxServer(root)
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} and CI is set")
        pytest.skip(str(exc))


class V2Gateway:
    """InfluxDB 2.x's HTTP API, as far as :class:`InfluxV2Store` uses it, in front of a real
    1.x server: Debian packages no 2.x server. It does what InfluxDB 1.8 does for its
    ``/api/v2/write``: a bucket ``db`` or ``db/rp`` is that database and retention policy.
    Around that it keeps 2.x's rules: every request needs ``Authorization: Token <token>``
    (401 otherwise), the organisation must be `org` and the bucket must exist (404 otherwise),
    gzip bodies are unpacked. ``GET /query`` (the v1-compatibility read) is passed through.
    `requests` records (method, path, content-encoding) of each request."""

    def __init__(self, upstream: str, token: str, org: str = "drift"):
        self.upstream, self.token, self.org = upstream.rstrip("/"), token, org
        self.requests: list[tuple[str, str, str | None]] = []
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 (http.server's naming)
                gateway._handle(self, "GET")

            def do_POST(self):  # noqa: N802
                gateway._handle(self, "POST")

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> V2Gateway:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _reply(self, h, status: int, body: bytes = b"", ctype: str = "application/json"):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _error(self, h, status: int, code: str, message: str):
        self._reply(h, status, json.dumps({"code": code, "message": message}).encode())

    def _handle(self, h, method: str) -> None:
        url = urlsplit(h.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        self.requests.append((method, url.path, h.headers.get("Content-Encoding")))
        if url.path in ("/ping", "/health"):
            return self._reply(h, 204)
        if h.headers.get("Authorization") != f"Token {self.token}":
            return self._error(h, 401, "unauthorized", "unauthorized access")
        if method == "POST" and url.path == "/api/v2/write":
            if params.get("org") != self.org:
                return self._error(
                    h, 404, "not found", f'organization name "{params.get("org")}" not found'
                )
            bucket = params.get("bucket", "")
            db, _, rp = bucket.partition("/")
            shown = httpx.get(self.upstream + "/query", params={"q": "SHOW DATABASES"}).json()
            names = [v[0] for s in shown["results"][0].get("series", []) for v in s["values"]]
            if db not in names:
                return self._error(h, 404, "not found", f'bucket "{bucket}" not found')
            if h.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            query = {"db": db, "precision": params.get("precision", "ns")}
            if rp:
                query["rp"] = rp
            r = httpx.post(self.upstream + "/write", params=query, content=body)
            return self._reply(h, r.status_code, r.content)
        if method == "GET" and url.path == "/query":
            r = httpx.get(self.upstream + "/query", params=params)
            return self._reply(
                h, r.status_code, r.content, r.headers.get("Content-Type", "application/json")
            )
        return self._error(h, 404, "not found", f"path not found: {url.path}")
