"""WebSocket ``/api/v1/ws/jobs/{job_id}``: a job's lifecycle events and its live spectrum.

Authenticate with ``?token=<bearer token>`` or ``?api_key=<key>`` (browsers cannot set headers
on a WebSocket). Messages are JSON objects:

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

FINAL = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
POLL_S = 0.5


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
    # accept first, so a refusal can carry its reason as a close code (before the handshake
    # completes, a server can only answer 403)
    await websocket.accept()
    user = await asyncio.to_thread(_user, runtime, token, api_key)
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
