"""The node channel: one WebSocket per node agent, ``/api/v1/nodes/{node_id}/channel``.

A node that keeps its channel open heartbeats over it and has its assignments pushed to it the
moment they change, instead of sending two HTTP requests per heartbeat interval (heartbeat,
then a poll for assignments). The HTTP endpoints stay, with the same meaning, for clients that
cannot hold a WebSocket; the agent falls back to them whenever its channel is down.

The node authenticates with its credential in the ``X-Node-Token`` header of the handshake.
Messages are JSON text frames.

Node to coordinator:

- ``{"type": "heartbeat", "seq": N, "sync": {...}, "health": {...}}``: the body of
  ``POST /nodes/{id}/heartbeat`` plus a sequence number the acknowledgement echoes.

Coordinator to node:

- ``{"type": "ack", "seq": N, "status": "online", "heartbeat_timeout_s": T, "server_time": ...}``
  once the heartbeat is stored (several nodes' heartbeats are written in one transaction);
- ``{"type": "assignments", "assignments": [...]}``: what the node should run now, exactly as
  ``GET /nodes/{id}/assignments`` returns it; sent on connect and whenever it changes (an
  assignment placed, moved, retried or cancelled). ``first_delivery`` is true once per
  (assignment, attempt) across all channels, polls and replicas;
- ``{"type": "error", "detail": [{"loc": [...], "msg": ...}]}``: a message that was not
  understood (the channel stays open; nothing was stored).

The coordinator closes with 4401 (no or unknown credential), 4403 (another node's
credential), 4408 (the node does not read what is sent to it) or 4409 (the same node opened
a newer channel).
"""

from __future__ import annotations

from typing import Literal

from drift.orchestrator.nodes import Heartbeat
from pydantic import Field

PATH = "/nodes/{node_id}/channel"

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408
CLOSE_REPLACED = 4409


class HeartbeatMessage(Heartbeat):
    type: Literal["heartbeat"]
    seq: int = Field(ge=0, le=2**63 - 1)
