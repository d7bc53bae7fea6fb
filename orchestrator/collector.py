"""The collector: receives wire-format frames from nodes over ZeroMQ and stores them.

On a Curve data plane (:class:`CurveServer`, what ``drift serve`` runs by default) only peers
whose Curve key belongs to an enrolled node complete the handshake (pyzmq's ZAP authenticator
asks :class:`~drift.orchestrator.data_plane.NodeKeys`), and every frame is attributed to the
node whose key sent it (ZeroMQ's ``User-Id``). A :class:`~drift.orchestrator.data_plane.FrameGate`
then refuses frames whose metadata names another node, a job that node has no assignment of, or
a job that is over.

Every frame refused is counted by reason (``drift_frames_refused_total``): too large, too many
bins, malformed (the wire format's own reasons, an unknown version among them), or refused by
the gate. Sequence numbers give lost frames (counted per job, node and frame type, and stored
with the job's data) and replays (dropped before storage; the store is idempotent anyway), in
bounded memory (:class:`gnuradio.drift.wire.SequenceTracker`). It never stops on bad input:
only `close()` ends it.

When the store cannot be reached (InfluxDB down, the SQLite file locked or full), frames go to
a disk spool (:class:`drift.spool.Spool`, committed before anything else happens) and are written to the store in
arrival order once it answers again; frames that arrive meanwhile queue behind them, so the
store sees every frame once and in order.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from gnuradio.drift import wire
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from drift.curve import KeyPair
from drift.orchestrator import metrics
from drift.orchestrator.data_plane import (
    UNKNOWN_SENDER,
    WRONG_NODE,
    FrameGate,
    NodeKeys,
    ZapKeys,
    canonical_id,
)
from drift.orchestrator.timeseries import StoreUnavailable
from drift.spool import Spool

log = logging.getLogger("drift.collector")

#: the ZAP domain of the collector's socket
ZAP_DOMAIN = "drift"
#: what CurveZMQ adds to a message part on the wire (its MESSAGE command: name, nonce, box)
CURVE_OVERHEAD_BYTES = 64
#: frames ZeroMQ queues per connection for the collector (its receive high-water mark)
RECEIVE_QUEUE_FRAMES = 256


#: what a frame may claim as its job or node: ids longer than this are refused (reason
#: ``bad_ids``), which bounds the memory every tracked stream's key takes
MAX_ID_CHARS = 128

#: the reason for frames refused while the database cannot be asked about them
GATE_UNAVAILABLE = "gate_unavailable"

#: ZeroMQ socket monitor events counted in drift_data_plane_connection_events_total
MONITOR_EVENTS = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake_failed_auth",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed_protocol",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed",
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "handshake_succeeded",
    zmq.EVENT_DISCONNECTED: "disconnected",
}


@dataclass
class CollectorStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    lost: int = 0
    malformed: int = 0
    spooled: int = 0
    #: frames refused before storage, by reason (malformed ones included, by the wire
    #: format's reason)
    refused: Counter = field(default_factory=Counter)
    #: ZeroMQ connection events on the collector's socket (handshakes refused, disconnects)
    connections: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class CurveServer:
    """The collector as a CurveZMQ server: its key pair, and the nodes' keys it takes."""

    keys: KeyPair
    nodes: NodeKeys


class Collector:
    """Receive on `address` (PULL bind: nodes PUSH-connect; or SUB connect to a node's PUB).

    `spool_dir`: where frames wait while the store is unreachable (default: the embedded
    store's directory; for other stores the working directory, so pass one: ``drift serve``
    uses its data directory).

    `curve`: be a CurveZMQ server that takes only the nodes' keys (PULL only); none:
    plaintext, and frames are attributed by their own metadata. `gate`: refuse frames of
    jobs the (sending) node may not send; none: no such check. `max_frame_bytes`,
    `max_frame_bins`: larger frames are refused (a single part over `max_frame_bytes` is
    never read: ZeroMQ drops the connection). `tracker`: the sequence tracker (default: one
    with its default bounds).
    """

    RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0

    def __init__(
        self,
        store,
        address: str,
        socket_type: str = "pull",
        batch: int = 512,
        spool_dir: str | Path | None = None,
        *,
        curve: CurveServer | None = None,
        gate: FrameGate | None = None,
        max_frame_bytes: int = 8 << 20,
        max_frame_bins: int = 1 << 20,
        tracker: wire.SequenceTracker | None = None,
    ):
        if socket_type not in ("pull", "sub"):
            raise ValueError(f"socket_type must be 'pull' or 'sub', got {socket_type!r}")
        if curve is not None and socket_type != "pull":
            raise ValueError("a Curve collector binds a PULL socket")
        self.store = store
        self.batch = int(batch)
        self.stats = CollectorStats()
        self.curve = curve
        self.gate = gate
        self.max_frame_bytes = int(max_frame_bytes)
        self.max_frame_bins = int(max_frame_bins)
        self._tracker = tracker if tracker is not None else wire.SequenceTracker()
        self._evicted = self._tracker.evicted
        self._listeners: list = []
        if spool_dir is None:
            spool_dir = Path(getattr(store, "path", "") or ".").resolve().parent
        self.spool = Spool(Path(spool_dir) / "collector-spool.sqlite")
        metrics.spool_depth.set(self.spool.depth)
        self._retry_at = 0.0
        self._retry_s = self.RETRY_MIN_S
        self._stats_written: dict[tuple, list[int]] = {}
        self._stats_at = 0.0
        # a context of its own: its ZAP handler (one per context) serves this socket alone
        self._ctx = zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        self._sock = self._monitor = None
        try:
            self._open(address, socket_type)
        except BaseException:
            self._close_sockets()
            self.spool.close()
            raise
        self._stop = threading.Event()
        self._thread = None

    def _open(self, address: str, socket_type: str) -> None:
        if self.curve is not None:
            # the handler must answer before the socket binds: with no ZAP handler at all,
            # libzmq lets every Curve client in
            self._auth = ThreadAuthenticator(self._ctx, log=logging.getLogger("drift.zap"))
            self._auth.start()
            self._auth.configure_curve_callback(
                ZAP_DOMAIN, credentials_provider=ZapKeys(self.curve.nodes, self._handshake)
            )
        if socket_type == "pull":
            sock = self._sock = self._ctx.socket(zmq.PULL)
            # a part larger than a frame may be is never read into memory: ZeroMQ drops the
            # connection that sends it (the margin: Curve's box around an encrypted part)
            sock.setsockopt(zmq.MAXMSGSIZE, self.max_frame_bytes + CURVE_OVERHEAD_BYTES)
            # frames that wait per connection while a batch is stored
            sock.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE_FRAMES)
            if self.curve is not None:
                sock.curve_server = True
                sock.curve_secretkey = self.curve.keys.secret.encode("ascii")
                sock.curve_publickey = self.curve.keys.public.encode("ascii")
                sock.zap_domain = ZAP_DOMAIN.encode("ascii")
                with contextlib.suppress(AttributeError, zmq.ZMQError):
                    # no ZAP handler: refuse the handshake rather than let the client in
                    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
            self._monitor = sock.get_monitor_socket(sum(MONITOR_EVENTS))
            if address.endswith(":0"):
                port = sock.bind_to_random_port(address[:-2])
                address = f"{address[:-2]}:{port}"
            else:
                sock.bind(address)
        else:
            sock = self._sock = self._ctx.socket(zmq.SUB)
            sock.setsockopt(zmq.MAXMSGSIZE, self.max_frame_bytes + CURVE_OVERHEAD_BYTES)
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(address)
        self.address = address
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        if self._monitor is not None:
            self._poller.register(self._monitor, zmq.POLLIN)

    def _handshake(self, allowed: bool) -> None:
        metrics.data_plane_handshakes.labels("accepted" if allowed else "unknown_key").inc()

    def add_listener(self, fn) -> None:
        """Call `fn(frames)` with every batch of frames after it is stored (live feeds)."""
        self._listeners.append(fn)

    def poll(self, timeout_ms: int = 100) -> int:
        """Receive what is waiting (up to `batch` frames), store it; returns frames stored."""
        stored = self._drain_spool() if self.spool.depth else 0
        if self.curve is not None:
            self._reload_keys()
        ready = dict(self._poller.poll(timeout_ms if not self.spool.depth else min(timeout_ms, 50)))
        if self._monitor is not None and self._monitor in ready:
            self._connection_events()
        if self._sock not in ready:
            self._write_stats()
            return stored
        taken = self._receive()
        good: list[tuple[wire.Frame, list[bytes]]] = []
        for frame, parts in taken:
            lost0 = self._tracker.lost
            verdict = self._tracker.check(frame)
            if self._tracker.lost > lost0:
                metrics.frames_lost.inc(self._tracker.lost - lost0)
            if verdict == "duplicate":
                metrics.frames_duplicate.inc()
                continue
            good.append((frame, parts))
        if self._tracker.evicted > self._evicted:
            metrics.sequence_streams_evicted.inc(self._tracker.evicted - self._evicted)
            self._evicted = self._tracker.evicted
        metrics.sequence_streams.set(len(self._tracker))
        self.stats.duplicates = self._tracker.duplicates
        self.stats.lost = self._tracker.lost
        if good:
            stored += self._store(good)
        self._write_stats()
        return stored

    def _refuse(self, reason: str, detail: object = "") -> None:
        self.stats.refused[reason] += 1
        metrics.frames_refused.labels(reason).inc()
        log.debug("frame refused (%s) %s", reason, detail)

    def _receive(self) -> list[tuple[wire.Frame, list[bytes]]]:
        """Up to `batch` frames off the socket, each decoded, within the limits, and (with a
        gate) one its sender may send; the others are counted by reason and dropped."""
        taken: list[tuple[wire.Frame, list[bytes], str | None]] = []
        recv = self._recv_curve if self.curve is not None else self._recv_plain
        metas: dict = {}  # the batch's metadata, each distinct one parsed once
        for _ in range(self.batch):  # refused ones count too: a flood cannot hold the loop
            try:
                parts, user = recv()
            except zmq.Again:
                break
            self.stats.received += 1
            sender = None
            if self.curve is not None:
                # the ZAP handler's user id for the connection: the sender's public key
                sender = self.curve.nodes.node_for(user)
                if sender is None:
                    self._refuse(UNKNOWN_SENDER)
                    continue
            if sum(map(len, parts)) > self.max_frame_bytes:
                self._refuse("too_large", f"{sum(map(len, parts))} bytes")
                continue
            try:
                frame = wire.decode(parts, max_items=self.max_frame_bins, meta_cache=metas)
            except wire.WireError as exc:
                if exc.reason != "too_many_items":
                    self.stats.malformed += 1
                    metrics.frames_malformed.inc()
                self._refuse("too_many_bins" if exc.reason == "too_many_items" else exc.reason, exc)
                continue
            job, node = frame.meta.get("job_id", ""), frame.meta.get("node_id", "")
            if not (isinstance(job, str) and isinstance(node, str)) or (
                len(job) > MAX_ID_CHARS or len(node) > MAX_ID_CHARS
            ):
                self._refuse("bad_ids")
                continue
            if sender is not None:
                if canonical_id(node) != sender:
                    self._refuse(WRONG_NODE, f"from node {sender}, naming {node[:64]!r}")
                    continue
            elif self.gate is not None:
                sender = canonical_id(node)
            taken.append((frame, parts, sender))
        verdicts: list[str | None] = [None] * len(taken)
        if self.gate is not None and taken:
            try:
                verdicts = self.gate.check([(s, f.meta["job_id"]) for f, _, s in taken])
            except Exception:
                # the database cannot say who may send what: take nothing unchecked (an
                # outage that fails the nodes' heartbeats too makes their relays send again)
                log.exception("could not check %d frames against the jobs: refused", len(taken))
                verdicts = [GATE_UNAVAILABLE] * len(taken)
        out = []
        types: Counter = Counter()
        for (frame, parts, sender), verdict in zip(taken, verdicts, strict=True):
            if verdict is not None:
                self._refuse(verdict, f"node {sender}, job {frame.meta['job_id'][:64]!r}")
                continue
            types[frame.frame_type] += 1
            out.append((frame, parts))
        for t, k in types.items():
            metrics.frames_received.labels(wire.FRAME_TYPES[t]).inc(k)
        return out

    def _recv_plain(self) -> tuple[list[bytes], None]:
        """A message's parts as bytes (one copy out of ZeroMQ, none after)."""
        return self._sock.recv_multipart(zmq.NOBLOCK), None

    def _recv_curve(self) -> tuple[list[bytes], bytes | None]:
        """A message's parts as bytes, and the ZAP user id of its connection (the sender's
        Curve key), read from its first part."""
        first = self._sock.recv(zmq.NOBLOCK, copy=False)
        parts = [first.bytes]
        while self._sock.rcvmore:
            parts.append(self._sock.recv())
        return parts, first.get("User-Id")

    def _reload_keys(self) -> None:
        try:
            self.curve.nodes.reload_if_due()
        except Exception:  # the database is away: keep the keys known so far
            log.exception("could not read the nodes' Curve keys")

    def _connection_events(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            name = MONITOR_EVENTS.get(event["event"])
            if name is None:
                continue
            self.stats.connections[name] += 1
            metrics.data_plane_connection_events.labels(name).inc()
            if name.startswith("handshake_failed"):
                log.debug("data plane: %s (%s)", name, event["value"])

    def _store(self, good: list[tuple[wire.Frame, list[bytes]]]) -> int:
        if self.spool.depth:  # older frames wait: keep the order
            self._to_spool(good)
            return 0
        try:
            self._commit([f for f, _ in good], [p for _, p in good])
        except StoreUnavailable as exc:
            log.warning("store unavailable (%s): spooling frames to %s", exc, self.spool.path)
            self._to_spool(good)
            self._retry_at = time.monotonic() + self._retry_s
            return 0
        return len(good)

    def _commit(self, frames: list[wire.Frame], parts: list[list[bytes]]) -> None:
        """Store a batch (its wire parts go along: the store keeps them as they came)."""
        self.stats.stored += self.store.add(frames, parts)
        types: Counter = Counter()
        points = 0
        for f in frames:
            types[f.frame_type] += 1
            if f.frame_type == wire.PSD:
                points += len(f.payload)
        for t, k in types.items():
            metrics.frames_stored.labels(wire.FRAME_TYPES[t]).inc(k)
        if points:
            metrics.spectrum_points.inc(points)
        for fn in self._listeners:
            try:
                fn(frames)
            except Exception:  # a broken listener must not stop collection
                log.exception("collector listener failed")

    def _to_spool(self, good) -> None:
        self.spool.append([parts for _, parts in good])
        self.stats.spooled += len(good)
        metrics.frames_spooled.inc(len(good))
        metrics.spool_depth.set(self.spool.depth)

    def _drain_spool(self) -> int:
        """Write spooled frames to the store, oldest first, while it answers."""
        if time.monotonic() < self._retry_at:
            return 0
        done = 0
        while self.spool.depth:
            rows = self.spool.head(self.batch)
            frames = [wire.decode(parts) for _, parts in rows]
            try:
                self._commit(frames, [list(parts) for _, parts in rows])
            except StoreUnavailable as exc:
                self._retry_s = min(self.RETRY_MAX_S, self._retry_s * 2)
                self._retry_at = time.monotonic() + self._retry_s
                log.debug("store still unavailable (%s); retry in %.1f s", exc, self._retry_s)
                break
            self.spool.drop_through(rows[-1][0])
            done += len(rows)
            metrics.spool_depth.set(self.spool.depth)
        if not self.spool.depth:
            if done:
                log.info("store back: %d spooled frames written", done)
            self._retry_s = self.RETRY_MIN_S
        return done

    def stream_stats(self) -> dict[tuple, list[int]]:
        """Per (job, node, frame type): [received, lost, duplicates] since the collector started."""
        return {k: list(v) for k, v in self._tracker.streams.items()}

    def _write_stats(self, force: bool = False) -> None:
        """Store changed per-stream counts with the job's data (at most every 2 s)."""
        now = time.monotonic()
        if not force and now - self._stats_at < 2.0:
            return
        self._stats_at = now
        save = getattr(self.store, "save_stream_stats", None)
        if save is None:
            return
        current = self.stream_stats()
        changed = {k: v for k, v in current.items() if self._stats_written.get(k) != v}
        if not changed:
            return
        try:
            save(changed)
        except StoreUnavailable:
            return
        # only the streams still tracked: the sequence tracker's bound holds for this too
        self._stats_written = current

    def start(self) -> None:
        """Collect in a background thread until close()."""
        self._thread = threading.Thread(target=self._run, name="drift-collector", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.poll(100)
            except Exception:  # never die on one bad batch; the spool keeps the frames
                log.exception("collector error")
                time.sleep(0.5)

    def close(self, drain_s: float = 5.0) -> None:
        """Stop; frames already waiting in the socket are stored first (up to `drain_s`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        deadline = time.monotonic() + drain_s
        try:
            while time.monotonic() < deadline and (
                self.poll(100) or self.spool.depth == 0 and self._sock.poll(0)
            ):
                pass
        except Exception:
            log.exception("could not store the frames waiting at shutdown")
        try:
            self._write_stats(force=True)
        except Exception:
            log.exception("could not store the final stream counts")
        self._close_sockets()
        self.spool.close()

    def _close_sockets(self) -> None:
        if self._sock is not None:
            if self._monitor is not None:
                with contextlib.suppress(zmq.ZMQError):
                    self._sock.disable_monitor()
                self._monitor.close(linger=0)
            self._sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self._ctx.term()
