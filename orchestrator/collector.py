"""The collector: receives wire-format frames from nodes over ZeroMQ and stores them.

Malformed frames are counted and dropped; sequence numbers give lost frames (counted per job,
node and frame type, and stored with the job's data) and replays (dropped before storage; the
store is idempotent anyway). It never stops on bad input: only `close()` ends it.

When the store cannot be reached (InfluxDB down, the SQLite file locked or full), frames go to
a disk spool (:class:`drift.spool.Spool`, committed before anything else happens) and are written to the store in
arrival order once it answers again; frames that arrive meanwhile queue behind them, so the
store sees every frame once and in order.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
from gnuradio.drift import wire

from drift.orchestrator import metrics
from drift.orchestrator.timeseries import StoreUnavailable
from drift.spool import Spool

log = logging.getLogger("drift.collector")


@dataclass
class CollectorStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    lost: int = 0
    malformed: int = 0
    spooled: int = 0


class Collector:
    """Receive on `address` (PULL bind: nodes PUSH-connect; or SUB connect to a node's PUB).

    `spool_dir`: where frames wait while the store is unreachable (default: the embedded
    store's directory; for other stores the working directory, so pass one: ``drift serve``
    uses its data directory).
    """

    RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0

    def __init__(
        self,
        store,
        address: str,
        socket_type: str = "pull",
        batch: int = 512,
        spool_dir: str | Path | None = None,
    ):
        if socket_type not in ("pull", "sub"):
            raise ValueError(f"socket_type must be 'pull' or 'sub', got {socket_type!r}")
        self.store = store
        self.batch = int(batch)
        self.stats = CollectorStats()
        self._tracker = wire.SequenceTracker()
        self._listeners: list = []
        if spool_dir is None:
            spool_dir = Path(getattr(store, "path", "") or ".").resolve().parent
        self.spool = Spool(Path(spool_dir) / "collector-spool.sqlite")
        metrics.spool_depth.set(self.spool.depth)
        self._retry_at = 0.0
        self._retry_s = self.RETRY_MIN_S
        self._stats_written: dict[tuple, list[int]] = {}
        self._stats_at = 0.0
        self._ctx = zmq.Context.instance()
        if socket_type == "pull":
            self._sock = self._ctx.socket(zmq.PULL)
            if address.endswith(":0"):
                port = self._sock.bind_to_random_port(address[:-2])
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

    def add_listener(self, fn) -> None:
        """Call `fn(frames)` with every batch of frames after it is stored (live feeds)."""
        self._listeners.append(fn)

    def poll(self, timeout_ms: int = 100) -> int:
        """Receive what is waiting (up to `batch` frames), store it; returns frames stored."""
        stored = self._drain_spool() if self.spool.depth else 0
        if not self._sock.poll(timeout_ms if not self.spool.depth else min(timeout_ms, 50)):
            self._write_stats()
            return stored
        good: list[tuple[wire.Frame, list[bytes]]] = []
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
                metrics.frames_malformed.inc()
                log.debug("malformed frame dropped: %s", exc)
                continue
            metrics.frames_received.labels(frame.type_name).inc()
            lost0 = self._tracker.lost
            verdict = self._tracker.check(frame)
            if self._tracker.lost > lost0:
                metrics.frames_lost.inc(self._tracker.lost - lost0)
            if verdict == "duplicate":
                metrics.frames_duplicate.inc()
                continue
            good.append((frame, parts))
        self.stats.duplicates = self._tracker.duplicates
        self.stats.lost = self._tracker.lost
        if good:
            stored += self._store(good)
        self._write_stats()
        return stored

    def _store(self, good: list[tuple[wire.Frame, list[bytes]]]) -> int:
        if self.spool.depth:  # older frames wait: keep the order
            self._to_spool(good)
            return 0
        try:
            self._commit([f for f, _ in good])
        except StoreUnavailable as exc:
            log.warning("store unavailable (%s): spooling frames to %s", exc, self.spool.path)
            self._to_spool(good)
            self._retry_at = time.monotonic() + self._retry_s
            return 0
        return len(good)

    def _commit(self, frames: list[wire.Frame]) -> None:
        self.stats.stored += self.store.add(frames)
        for f in frames:
            metrics.frames_stored.labels(f.type_name).inc()
            if f.frame_type == wire.PSD:
                metrics.spectrum_points.inc(len(f.payload))
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
                self._commit(frames)
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
        changed = {k: v for k, v in self.stream_stats().items() if self._stats_written.get(k) != v}
        if not changed:
            return
        try:
            save(changed)
        except StoreUnavailable:
            return
        self._stats_written.update(changed)

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
        self._sock.close(linger=0)
        self.spool.close()
