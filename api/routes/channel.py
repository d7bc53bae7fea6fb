"""WebSocket ``/api/v1/nodes/{node_id}/channel``: a node's heartbeats in, its assignments out.

The protocol is described in :mod:`drift.node.channel` (the node's side) and its models are
in :mod:`drift.protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

from fastapi import APIRouter, HTTPException, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketState

from drift import protocol as proto
from drift.api.deps import node_identity, utcnow
from drift.api.hub import Channel

router = APIRouter(tags=["nodes"])


def _error(raw: str, detail: list[dict]) -> str:
    """An error reply, with the message's ``seq`` when it had a usable one."""
    out: dict = {"type": "error", "detail": detail}
    with contextlib.suppress(ValueError, AttributeError):
        seq = json.loads(raw).get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            out["seq"] = seq
    return json.dumps(out)


def _problems(exc: ValidationError) -> list[dict]:
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]


@router.websocket(proto.CHANNEL_PATH)
async def node_channel(websocket: WebSocket, node_id: uuid.UUID) -> None:
    runtime = websocket.app.state.runtime
    hub = runtime.hub
    # accept first, so that a refusal can say why in its close code
    await websocket.accept()
    try:
        auth = await node_identity(runtime, websocket)
    except HTTPException as exc:
        await websocket.close(proto.CLOSE_UNAUTHORIZED, str(exc.detail))
        return
    if auth.id != node_id:
        await websocket.close(proto.CLOSE_FORBIDDEN, "a node can only act as itself")
        return
    channel = Channel(node_id)
    hub.attach(channel)
    tasks = [
        asyncio.create_task(_send(websocket, channel)),
        asyncio.create_task(_receive(websocket, channel, hub, auth.heartbeat_timeout_s)),
        asyncio.create_task(channel.closed.wait()),
    ]
    try:
        # until the node goes, the socket fails, or the hub closes the channel
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.detach(channel)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(channel.close_code, channel.close_reason)


async def _send(websocket: WebSocket, channel: Channel) -> None:
    while True:
        await websocket.send_text(await channel.outbox.get())


async def _receive(websocket: WebSocket, channel: Channel, hub, timeout_s: float) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            channel.close(1000, "")
            return
        raw = message.get("text")
        if raw is None:
            raw = (message.get("bytes") or b"").decode("utf-8", "replace")
        try:
            beat = proto.HeartbeatMessage.model_validate_json(raw)
        except ValidationError as exc:
            channel.push(_error(raw, _problems(exc)))
            continue
        now = utcnow()
        if not await hub.beats.record(channel.node_id, beat, now):
            channel.close(proto.CLOSE_UNAUTHORIZED, "unknown node credential")
            return
        channel.push(
            json.dumps(
                {
                    "type": "ack",
                    "seq": beat.seq,
                    "status": "online",
                    "heartbeat_timeout_s": timeout_s,
                    "server_time": now.isoformat(),
                }
            )
        )
