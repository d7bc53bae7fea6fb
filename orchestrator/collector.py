"""The collector: receives wire-format frames from nodes over ZeroMQ and stores them.

Malformed frames are counted and dropped; sequence numbers give lost frames (counted) and
replays (dropped before storage, and the store is idempotent anyway). It never stops on bad
input: only `close()` ends it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import zmq

from drift import wire

log = logging.getLogger("drift.collector")


@dataclass
class CollectorStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    lost: int = 0
    malformed: int = 0


class Collector:
    """Receive on `address` (PULL bind: nodes PUSH-connect; or SUB connect to a node's PUB)."""

    def __init__(self, store, address: str, socket_type: str = "pull", batch: int = 512):
        if socket_type not in ("pull", "sub"):
            raise ValueError(f"socket_type must be 'pull' or 'sub', got {socket_type!r}")
        self.store = store
        self.batch = int(batch)
        self.stats = CollectorStats()
        self._tracker = wire.SequenceTracker()
        self._ctx = zmq.Context.instance()
        if socket_type == "pull":
            self._sock = self._ctx.socket(zmq.PULL)
            if address.endswith(":0"):
                port = self._sock.bind_to_random_port(address[: -2])
                address = f"{address[:-2]}:{port}"
            else:
                self._sock.bind(address)
        else:
            self._sock = self._ctx.socket(zmq.SUB)
            self._sock.setsockopt(zmq.SUBSCRIBE, b"")
            self._sock.connect(address)
        self.address = address
        self._stop = threading.Event()
        self._thread = None

    def poll(self, timeout_ms: int = 100) -> int:
        """Receive what is waiting (up to `batch` frames), store it; returns frames stored."""
        if not self._sock.poll(timeout_ms):
            return 0
        good = []
        while len(good) < self.batch:
            try:
                parts = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.stats.received += 1
            try:
                frame = wire.decode(parts)
            except wire.WireError as exc:
                self.stats.malformed += 1
                log.debug("malformed frame dropped: %s", exc)
                continue
            if self._tracker.check(frame) == "duplicate":
                continue
            good.append(frame)
        self.stats.duplicates = self._tracker.duplicates
        self.stats.lost = self._tracker.lost
        if good:
            self.stats.stored += self.store.add(good)
        return len(good)

    def start(self) -> None:
        """Collect in a background thread until close()."""
        self._thread = threading.Thread(target=self._run, name="drift-collector", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.poll(100)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close(linger=0)
