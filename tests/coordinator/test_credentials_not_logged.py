"""No credential reaches the coordinator's log, at any level: a real ``drift serve`` at DEBUG
(uvicorn's access log, the WebSocket library's dumps of headers and frames, DRIFT's own
lines) while clients log in, use API keys, enrol a node, heartbeat, and open the live feed
with every way of authenticating, the old URL style included."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from drift.redaction import redact

from .conftest import ADMIN_PASSWORD
from .served import drift_serve

ZERO = "00000000-0000-0000-0000-000000000000"


def _close_code(url: str, first: dict | None = None, **kwargs) -> tuple[int, str | None]:
    """The code the feed closed with (4404: authenticated, no such job; 4401: not), and
    the subprotocol the server accepted."""
    with connect(url, open_timeout=20, close_timeout=5, **kwargs) as ws:
        if first is not None:
            ws.send(json.dumps(first))
        try:
            while True:
                ws.recv(timeout=20)
        except ConnectionClosed as closed:
            return closed.rcvd.code, ws.subprotocol


def _pieces(secret: str, n: int = 12) -> list[str]:
    """Every run of `n` characters of a secret's random part: none may be in the log."""
    body = secret.split("_", 1)[1] if secret[:4] in ("drk_", "drn_", "dre_") else secret
    if body.startswith("eyJ"):  # a JWT: its header is the same for every token
        body = body.split(".", 1)[1]
    return [body[i : i + n] for i in range(0, len(body) - n + 1)]


def test_no_credential_in_any_log_line_at_debug(tmp_path: Path):
    with drift_serve(tmp_path, log_level="debug") as served:
        ws_base = served.base.replace("http://", "ws://") + "/api/v1/ws/jobs/"
        with httpx.Client(base_url=served.base, timeout=20) as http:
            admin = served.admin(http)
            jwt = admin["Authorization"].split()[1]
            key = http.post("/api/v1/api-keys", json={"name": "k"}, headers=admin).json()["key"]
            node = served.enroll(http, admin, "n")
            credential = node["credential"]
            node_headers = {"X-Node-Token": credential}
            r = http.post(f"/api/v1/nodes/{node['node_id']}/heartbeat", headers=node_headers)
            assert r.status_code == 200
            assert http.get("/api/v1/jobs", headers={"X-API-Key": key}).status_code == 200
            # a wrong password and a failed key are logged too: without what was tried
            wrong = "not-the-admin-password-zq"
            r = http.post("/api/v1/auth/token", data={"username": "admin", "password": wrong})
            assert r.status_code == 401
            channel = served.base.replace("http://", "ws://") + (
                f"/api/v1/nodes/{node['node_id']}/channel"
            )
            with connect(channel, additional_headers=node_headers, open_timeout=20) as ws:
                ws.send(json.dumps({"type": "heartbeat", "seq": 1}))
                seen = {json.loads(ws.recv(timeout=20))["type"] for _ in range(2)}
                assert "ack" in seen

        # the live feed, every way: the old URL style (still taken) and the new ones
        feeds = {
            "query token": _close_code(f"{ws_base}{ZERO}?token={jwt}"),
            "query api_key": _close_code(f"{ws_base}{ZERO}?api_key={key}"),
            "bearer header": _close_code(
                ws_base + ZERO, additional_headers={"Authorization": f"Bearer {jwt}"}
            ),
            "key header": _close_code(ws_base + ZERO, additional_headers={"X-API-Key": key}),
            "subprotocol": _close_code(ws_base + ZERO, subprotocols=["drift.v1", f"bearer.{jwt}"]),
            "key subprotocol": _close_code(
                ws_base + ZERO, subprotocols=["drift.v1", f"apikey.{key}"]
            ),
            "first message": _close_code(ws_base + ZERO, first={"type": "auth", "token": jwt}),
            "first message key": _close_code(
                ws_base + ZERO, first={"type": "auth", "api_key": key}
            ),
        }
        # 4404: each was authenticated, and found no such job
        assert {k: v[0] for k, v in feeds.items()} == {k: 4404 for k in feeds}
        # the server accepts the feed's own subprotocol, never echoes a credential
        assert feeds["subprotocol"][1] == "drift.v1"
        assert _close_code(ws_base + ZERO, first={"type": "auth", "token": "forged"})[0] == 4401
    log = served.log()
    assert " DEBUG " in log and "/api/v1/ws/jobs/" in log  # the lines were logged
    assert "token=[redacted]" in log and "api_key=[redacted]" in log
    secrets = {
        "JWT": jwt,
        "API key": key,
        "enrolment token": node["enrollment_token"],
        "node credential": credential,
        "admin password": ADMIN_PASSWORD,
        "wrong password": wrong,
    }
    for what, secret in secrets.items():
        leaked = [p for p in _pieces(secret) if p in log]
        assert not leaked, f"the {what} is in the log: {leaked[:3]}"


def test_redaction_by_shape_and_by_name():
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"
    lines = {
        f'127.0.0.1:5 - "WebSocket /api/v1/ws/jobs/x?token={jwt}&x=1" [accepted]': "x=1",
        f"< Authorization: Bearer {jwt}": "< Authorization: ",
        "< x-api-key: drk_abcdefgh": "< x-api-key: ",
        "[(b'x-node-token', b'drn_abcdefgh')]": "x-node-token",
        '< TEXT \'{"type": "auth", "token": "eyJhbGciOiJI...\' [300 bytes]': "auth",
        "sec-websocket-protocol: drift.v1, bearer.eyJx": "sec-websocket-protocol",
        "username=admin&password=hunter2hunter2": "username=admin",
        "key dre_abcdefgh used": "used",
    }
    for line, kept in lines.items():
        clean = redact(line)
        assert "[redacted]" in clean and kept in clean, (line, clean)
        for secret in (jwt, "c2lnbmF0dXJl", "abcdefgh", "hunter2", "eyJhbGciOiJI"):
            assert secret not in clean, (line, clean)
    assert redact("needs authorization, see the docs") == "needs authorization, see the docs"


def test_a_header_split_over_arguments_is_redacted_and_positional_loggers_keep_theirs():
    import logging

    from drift.redaction import redact_record

    def record(name: str, msg: str, *args):
        return logging.LogRecord(name, logging.DEBUG, __file__, 1, msg, args, None)

    split = record("uvicorn.error", "< %s: %s", "x-api-key", "no-known-shape-1234")
    redact_record(split)
    assert split.getMessage() == "< x-api-key: [redacted]"
    access = record("uvicorn.access", '%s - "%s %s" %d', "1.2.3.4:5", "GET", "/ws?token=t0ken", 101)
    redact_record(access)
    assert access.args == ("1.2.3.4:5", "GET", "/ws?token=[redacted]", 101)
