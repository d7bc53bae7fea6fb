"""The node's frame relay: flowgraph frames -> disk spool -> the coordinator's collector."""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import zmq
from gnuradio.drift import wire

from drift.curve import KeyPair, make_client
from drift.spool import Spool

log = logging.getLogger("drift.node")


@dataclass(frozen=True)
class CurveClient:
    """The relay as a CurveZMQ client of the collector: the collector's public key and the
    node's own key pair."""

    server_public_key: str
    keys: KeyPair


class Relay:
    """Receives the flowgraphs' frames (PULL, bound on a local ipc endpoint: plaintext, on
    this machine only), spools them to SQLite and forwards them to the collector (PUSH) while
    the link is up: as a Curve client with `curve`, in plaintext without.

    Frames over `max_frame_bytes` (the collector's limit) are dropped before the spool, with
    a warning: the collector would refuse them (and drop the connection they came on).
    """

    BATCH = 512

    def __init__(
        self,
        state_dir: Path,
        collector: str,
        curve: CurveClient | None = None,
        max_frame_bytes: int = 8 << 20,
    ):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.endpoint = f"ipc://{state_dir / 'frames.ipc'}"
        self._db_path = state_dir / "spool.sqlite"
        self._collector = collector
        self.curve = curve
        self.max_frame_bytes = int(max_frame_bytes)
        #: frames dropped for being over max_frame_bytes
        self.oversized = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.link_up = True
        self._was_down = False
        self.cursor = 0  # highest spool id forwarded
        self.confirmed = 0  # highest spool id known to have reached the collector
        self._marks: deque[int] = deque(maxlen=2)
        self.received = 0
        self.forwarded = 0
        self.last_id = 0
        self._pruned = 0
        #: items (samples or bins) of frames the flowgraphs flagged with an overflow
        self.overflow_items = 0
        #: frames sent per (job id, frame type name): the highest sequence number + 1
        self.sent: dict[tuple[str, str], int] = {}
        #: Curve keys to switch to (set by rekey(), taken by the relay's thread)
        self._new_curve: CurveClient | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drift-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("frame relay did not start")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def heartbeat(self, ok: bool) -> None:
        """Called after every heartbeat: frames forwarded two successful heartbeats ago count
        as delivered; after an outage, forward again from the last delivered frame."""
        with self._lock:
            if not ok:
                self.link_up = False
                self._was_down = True
                return
            if self._was_down:
                log.info("coordinator back: replaying spooled frames after #%d", self.confirmed)
                self.cursor = self.confirmed
                self._was_down = False
                self._marks.clear()
            elif len(self._marks) == self._marks.maxlen:
                # forwarded two successful heartbeats ago: the collector has had a whole
                # interval, and its own shutdown drains what it had received
                self.confirmed = max(self.confirmed, self._marks[0])
            self._marks.append(self.cursor)
            self.link_up = True

    def rekey(self, curve: CurveClient) -> None:
        """Send with these Curve keys from now on (the node rotated its key): the link to
        the collector is made again, and the frames not known to have arrived are sent again
        with the new key (the collector drops repeats), so none sent under the old key in
        the meantime, refused once the old key is, is lost."""
        with self._lock:
            self._new_curve = curve

    def backlog(self) -> int:
        return self.last_id - self.cursor

    def delivered(self, upto: int) -> bool:
        return self.confirmed >= upto

    def _run(self) -> None:
        spool = Spool(self._db_path, durable=False)
        self.last_id = spool.last_id
        # a restart replays what is left
        self.cursor = self.confirmed = self._pruned = spool.dropped_id
        ctx = zmq.Context.instance()
        pull = ctx.socket(zmq.PULL)
        pull.bind(self.endpoint)
        # the hop from the flowgraphs is plaintext: only this user may connect to it (what
        # arrives here leaves with the node's own Curve identity)
        os.chmod(self.endpoint[len("ipc://") :], 0o600)
        push = self._connect(ctx)
        self._ready.set()
        try:
            while not self._stop.is_set():
                if self._new_curve is not None:
                    push = self._reconnect(ctx, push)
                if pull.poll(50):
                    rows = []
                    while len(rows) < self.BATCH:
                        try:
                            parts = pull.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        if len(parts) != 3:
                            continue
                        if sum(map(len, parts)) > self.max_frame_bytes:
                            self._oversized(parts)
                            continue
                        rows.append(parts)
                        if len(parts[0]) >= 48:
                            self._count(parts)
                    if rows:
                        self.last_id = spool.append(rows)
                        self.received += len(rows)
                self._forward(spool, push)
                self._prune(spool)
        finally:
            pull.close(linger=0)
            push.close()
            spool.close()

    def _connect(self, ctx: zmq.Context) -> zmq.Socket:
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, 20000)
        push.setsockopt(zmq.LINGER, 2000)
        if self.curve is not None:
            make_client(push, self.curve.server_public_key, self.curve.keys)
        push.connect(self._collector)
        return push

    def _reconnect(self, ctx: zmq.Context, push: zmq.Socket) -> zmq.Socket:
        with self._lock:
            self.curve, self._new_curve = self._new_curve, None
            self.cursor = self.confirmed
            self._marks.clear()
        push.close(linger=0)
        log.info("frames go with the node's new Curve key from #%d on", self.confirmed)
        return self._connect(ctx)

    def _oversized(self, parts: list[bytes]) -> None:
        self.oversized += 1
        log.warning(
            "a frame of %d bytes is over the collector's limit of %d: dropped (the "
            "flowgraph's own output keeps it)",
            sum(map(len, parts)),
            self.max_frame_bytes,
        )

    def _count(self, parts: list[bytes]) -> None:
        """Note a frame's overflow flag and its job's frame count (from the header and the
        metadata's job_id; a frame that does not parse is forwarded all the same)."""
        ftype, seq = struct.unpack_from("<HQ", parts[0], 6)
        items, flags = struct.unpack_from("<II", parts[0], 40)
        if flags & wire.FLAG_OVERFLOW:
            self.overflow_items += items
        try:
            job = str(json.loads(parts[1]).get("job_id", ""))
        except (ValueError, AttributeError):
            return
        key = (job, wire.FRAME_TYPES.get(ftype, str(ftype)))
        with self._lock:
            self.sent[key] = max(self.sent.get(key, 0), seq + 1)

    def frames_sent(self, job_id: str) -> dict[str, int]:
        """Frames sent so far for a job, by frame type."""
        with self._lock:
            return {t: n for (j, t), n in self.sent.items() if j == job_id}

    def _forward(self, spool: Spool, push) -> None:
        with self._lock:
            if not self.link_up or self.cursor >= self.last_id:
                return
            start = self.cursor
        sent = start
        for rid, parts in spool.after(start, self.BATCH):
            try:
                push.send_multipart(parts, zmq.NOBLOCK)
            except zmq.Again:
                break  # the collector is not keeping up or not there: try again later
            sent = rid
            self.forwarded += 1
        with self._lock:
            if self.cursor == start:  # not rewound meanwhile
                self.cursor = sent

    def _prune(self, spool: Spool) -> None:
        """Forget frames that have arrived (the flowgraph keeps its own local copy)."""
        with self._lock:
            upto = self.confirmed
        if upto - self._pruned >= 4096:
            spool.drop_through(upto)
            self._pruned = upto
