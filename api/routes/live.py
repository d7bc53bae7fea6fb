"""WebSocket ``/api/v1/ws/jobs/{job_id}``: a job's lifecycle events and its live spectrum.

Credentials never go in the URL (URLs end up in logs, proxies and browser histories). A client
authenticates in one of three ways:

- headers on the opening request: ``Authorization: Bearer <token>`` or ``X-API-Key: <key>``;
- a subprotocol (what a browser can set): offer ``drift.v1`` and ``bearer.<token>`` (or
  ``apikey.<key>``), e.g. ``new WebSocket(url, ["drift.v1", "bearer." + token])``; the server
  accepts ``drift.v1`` and never echoes the credential;
- a first message, within 10 s of the connection: ``{"type": "auth", "token": ...}`` or
  ``{"type": "auth", "api_key": ...}``.

``?token=`` and ``?api_key=`` still work for older clients, deprecated; the coordinator
redacts them from every log line (see :mod:`drift.redaction`). Messages are JSON objects:

- ``{"type": "job", "status": ..., "transitions": [...]}`` once, on connect;
- ``{"type": "transition", "from_status", "to_status", "at", "reason"}`` for every later step
  (read from the database, so it works whichever replica the job's events happen on);
- ``{"type": "psd", "node_id", "seq", "time_unix_s", "center_freq_hz", "bin_hz", "psd_db"}`` for
  each PSD frame this replica's collector stores (``null`` for an empty bin);
- ``{"type": "result", "result": {...}}`` once the job's analysis has stored its result (the
  body of ``GET /jobs/{id}/result``), just before the job's end;
- ``{"type": "end", "status": ...}`` when the job is over; then the server closes (1000).

Refusals close with 4401 (no or bad credentials), 4403 (not a viewer) or 4404 (no such job).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from gnuradio.drift import wire

from drift.api.deps import authenticate, has_role
from drift.orchestrator import job_service
from drift.orchestrator.analysis.records import read_result
from drift.orchestrator.events import LIVE
from drift.orchestrator.states import JobStatus, Role

router = APIRouter(tags=["live"])
log = logging.getLogger(__name__)

FINAL = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
POLL_S = 0.5
#: the subprotocol of this feed; credential subprotocols are offered beside it
SUBPROTOCOL = "drift.v1"
BEARER_PROTOCOL = "bearer."
API_KEY_PROTOCOL = "apikey."
#: how long a client without credentials on its opening request has to send them
AUTH_TIMEOUT_S = 10.0
#: the largest first (auth) message read
AUTH_MESSAGE_MAX_CHARS = 8192


def _offered(websocket: WebSocket) -> tuple[str | None, str | None]:
    """(bearer token, API key) from the opening request's headers or subprotocols."""
    headers = websocket.headers
    token = api_key = None
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        token = value.strip()
    api_key = headers.get("x-api-key") or None
    for protocol in websocket.scope.get("subprotocols") or ():
        if protocol.startswith(BEARER_PROTOCOL) and token is None:
            token = protocol[len(BEARER_PROTOCOL) :] or None
        elif protocol.startswith(API_KEY_PROTOCOL) and api_key is None:
            api_key = protocol[len(API_KEY_PROTOCOL) :] or None
    return token, api_key


async def _first_message_credentials(websocket: WebSocket) -> tuple[str | None, str | None]:
    """(bearer token, API key) from a first ``{"type": "auth", ...}`` message; (None, None)
    if none comes in time or it is not one."""
    try:
        message = await asyncio.wait_for(websocket.receive(), AUTH_TIMEOUT_S)
    except TimeoutError:
        return None, None
    text = message.get("text")
    if text is None and message.get("bytes") is not None:
        text = message["bytes"].decode("utf-8", "replace")
    if message["type"] != "websocket.receive" or not text or len(text) > AUTH_MESSAGE_MAX_CHARS:
        return None, None
    try:
        body = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(body, dict) or body.get("type") != "auth":
        return None, None
    token, api_key = body.get("token"), body.get("api_key")
    return (
        token if isinstance(token, str) and token else None,
        api_key if isinstance(api_key, str) and api_key else None,
    )


def _user(runtime, token: str | None, api_key: str | None):
    try:
        return authenticate(runtime, token, api_key)
    except HTTPException:
        return None


def _job_state(runtime, job_id: uuid.UUID):
    with runtime.sessions() as session:
        return job_service.job_steps(session, job_id)


def _result(runtime, job_id: uuid.UUID) -> dict | None:
    with runtime.read_sessions() as session:
        try:
            return read_result(session, job_id).model_dump(mode="json")
        except LookupError:
            return None


def _psd(f: wire.Frame) -> dict:
    return {
        "type": "psd",
        "node_id": f.meta.get("node_id"),
        "seq": f.seq,
        "time_unix_s": f.time,
        "center_freq_hz": f.meta.get("center_freq_hz"),
        "bin_hz": f.meta.get("bin_hz"),
        "psd_db": [round(float(v), 2) if math.isfinite(v) else None for v in f.payload],
    }


@router.websocket("/ws/jobs/{job_id}")
async def job_feed(
    websocket: WebSocket, job_id: uuid.UUID, token: str | None = None, api_key: str | None = None
) -> None:
    runtime = websocket.app.state.runtime
    offered = websocket.scope.get("subprotocols") or ()
    # accept first, so a refusal can carry its reason as a close code (before the handshake
    # completes, a server can only answer 403)
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    header_token, header_key = _offered(websocket)
    if token or api_key:
        log.info("job feed %s: credentials in the URL (deprecated; use a header)", job_id)
    token, api_key = header_token or token, header_key or api_key
    if not token and not api_key:
        token, api_key = await _first_message_credentials(websocket)
    user = await asyncio.to_thread(_user, runtime, token, api_key) if token or api_key else None
    if user is None:
        await websocket.close(code=4401, reason="no or invalid credentials")
        return
    if not has_role(user, Role.VIEWER):
        await websocket.close(code=4403, reason="needs the viewer role")
        return
    state = await asyncio.to_thread(_job_state, runtime, job_id)
    if state is None:
        await websocket.close(code=4404, reason="no such job")
        return
    queue = LIVE.subscribe(str(job_id))
    gone = asyncio.create_task(_until_gone(websocket))  # a client that leaves while idle
    try:
        status, transitions = state
        await websocket.send_json(
            {"type": "job", "job_id": str(job_id), "status": status, "transitions": transitions}
        )
        sent = len(transitions)
        while not gone.done():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, gone}, timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                frame = getter.result()
                if frame.frame_type == wire.PSD:
                    await websocket.send_json(_psd(frame))
                continue
            getter.cancel()
            if gone.done():
                return
            status, transitions = await asyncio.to_thread(_job_state, runtime, job_id)
            for t in transitions[sent:]:
                await websocket.send_json({"type": "transition", **t})
            sent = len(transitions)
            if JobStatus(status) == JobStatus.COMPLETED:
                result = await asyncio.to_thread(_result, runtime, job_id)
                if result is not None:
                    await websocket.send_json({"type": "result", "result": result})
            if JobStatus(status) in FINAL:
                await websocket.send_json({"type": "end", "status": status})
                await websocket.close(code=1000)
                return
    except WebSocketDisconnect:
        return
    finally:
        gone.cancel()
        LIVE.unsubscribe(str(job_id), queue)


async def _until_gone(websocket: WebSocket) -> None:
    """Returns when the client disconnects (what it sends is not read: it has nothing to say)."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass
