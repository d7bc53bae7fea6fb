"""The node channel, the node's side: one WebSocket per node agent,
``/api/v1/nodes/{node_id}/channel`` (its path, close codes and messages are in
:mod:`drift.protocol`; the coordinator's side is ``api/routes/channel.py``).

A node that keeps its channel open heartbeats over it and has its assignments pushed to it the
moment they change, instead of sending two HTTP requests per heartbeat interval (heartbeat,
then a poll for assignments). The HTTP endpoints stay, with the same meaning, for clients that
cannot hold a WebSocket; the agent falls back to them whenever its channel is down.

The node authenticates with its client certificate on a ``wss://`` channel, and with its
credential in the ``X-Node-Token`` header of the handshake on a plain one.
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
- ``{"type": "error", "seq": N, "detail": [{"loc": [...], "msg": ...}]}``: a message that was
  not understood (``seq`` when the message had one; the channel stays open; nothing was
  stored).

The coordinator closes with 4401 (no or unknown credential), 4403 (another node's
credential), 4408 (the node does not read what is sent to it) or 4409 (the same node opened
a newer channel).
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# --- the node's side -------------------------------------------------------------------------


class ChannelError(Exception):
    """The channel is down or refused a message; the agent falls back to HTTP."""


class ChannelClient:
    """A node agent's channel: :meth:`heartbeat` sends one and waits for its acknowledgement;
    a reader thread hands each pushed assignment list to ``on_assignments``."""

    def __init__(
        self,
        url: str,
        credential: str,
        on_assignments: Callable[[list[dict[str, Any]]], None],
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        #: for wss:// URLs: the coordinator's CA and the node's client certificate
        self._ssl = ssl_context
        self.timeout_s = timeout_s
        self._credential = credential
        self._on_assignments = on_assignments
        self._ws = None
        self._stack = contextlib.ExitStack()
        self._seq = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._closed: str | None = None  # why, once closed
        self._reader: threading.Thread | None = None

    def connect(self) -> None:
        from websockets.sync.client import connect

        try:
            self._ws = self._stack.enter_context(
                connect(
                    self.url,
                    additional_headers={"X-Node-Token": self._credential},
                    open_timeout=self.timeout_s,
                    close_timeout=2,
                    max_size=64 * 2**20,
                    compression=None,
                    **({"ssl": self._ssl} if self._ssl is not None else {}),
                )
            )
        except Exception as exc:  # refused, HTTP status instead of an upgrade, timeout
            raise ChannelError(f"cannot open {self.url}: {exc}") from None
        self._reader = threading.Thread(target=self._read, name="node channel", daemon=True)
        self._reader.start()

    @property
    def open(self) -> bool:
        return self._ws is not None and self._closed is None

    @property
    def closed_reason(self) -> str | None:
        return self._closed

    def heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send a heartbeat; returns the coordinator's acknowledgement."""
        with self._cond:
            self._seq += 1
            seq = self._seq
        try:
            self._ws.send(json.dumps({"type": "heartbeat", "seq": seq, **body}))
        except Exception as exc:
            self._mark_closed(f"send failed: {exc}")
            raise ChannelError(self._closed) from None
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while seq not in self._replies and self._closed is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            reply = self._replies.pop(seq, None)
            if reply is None:
                raise ChannelError(self._closed or f"no acknowledgement in {self.timeout_s:g} s")
        if reply.get("type") == "error":
            raise ChannelError(f"heartbeat refused: {reply.get('detail')}")
        return reply

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.close()
        self._mark_closed("closed by the node")
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(5)

    def _mark_closed(self, why: str) -> None:
        with self._cond:
            if self._closed is None:
                self._closed = why
            self._cond.notify_all()

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for raw in self._ws:
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "assignments":
                    self._on_assignments(msg.get("assignments") or [])
                elif kind in ("ack", "error"):
                    if kind == "error" and "seq" not in msg:
                        log.warning("node channel: %s", msg.get("detail"))
                        continue
                    with self._cond:
                        self._replies[msg["seq"]] = msg
                        self._cond.notify_all()
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            reason = exc.rcvd.reason if exc.rcvd is not None else ""
            self._mark_closed(f"closed by the coordinator ({code} {reason})".strip())
        except Exception as exc:  # a broken message or socket: the channel is done
            self._mark_closed(f"channel failed: {exc}")
        else:
            self._mark_closed("closed by the coordinator")
