"""The embedded time-series store: wire-format frames (PSD, detections, IQ) as compact binary
rows in SQLite.

Idempotent on (job_id, node_id, frame type, sequence): storing a frame twice keeps one copy,
so a collector can replay a spool after an outage without duplicates. Queries by job, node and
time range return frames in time order; a node's IQ frames of a job are joined into one
capture (:mod:`drift.orchestrator.captures`). InfluxDB is the other backend
(:mod:`drift.orchestrator.timeseries`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gnuradio.drift import wire

from drift.fileperm import private_file
from drift.orchestrator.captures import IqCapture, join_iq

log = logging.getLogger("drift.spectrum_store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    job_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    frame_type INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    time_s INTEGER NOT NULL,
    time_frac REAL NOT NULL,
    time_uncertainty_s REAL NOT NULL,
    center_freq_hz REAL,
    bin_hz REAL,
    n_items INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    meta TEXT NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (job_id, node_id, frame_type, seq)
) WITHOUT ROWID;
-- (frames_by_time, on (job_id, time_s, time_frac), served no query that frames_in_order
-- does not: one index fewer to write per frame)
DROP INDEX IF EXISTS frames_by_time;
-- a job's frames of one type in the order queries return them: a page of them is read
-- straight off this index (no sort), and a page's end is found without reading payloads
CREATE INDEX IF NOT EXISTS frames_in_order
    ON frames (job_id, frame_type, time_s, time_frac, node_id, seq);
CREATE TABLE IF NOT EXISTS stream_stats (
    job_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    frame_type INTEGER NOT NULL,
    received INTEGER NOT NULL,
    lost INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    PRIMARY KEY (job_id, node_id, frame_type)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS device_metrics (
    node_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    time REAL NOT NULL,
    temperature REAL,
    sample_rate REAL,
    dropped_samples INTEGER,
    overflows INTEGER,
    sync_uncertainty_s REAL,
    PRIMARY KEY (node_id, device_id, time)
) WITHOUT ROWID;
"""

#: the fields of a ``device_metrics`` point (the technical overview's names, plus overflows
#: and the sync uncertainty): temperature in degrees Celsius, sample rate in Hz, counts since
#: the node's agent started, uncertainty in seconds; a field the device cannot tell is absent
DEVICE_METRIC_FIELDS = (
    "temperature",
    "sample_rate",
    "dropped_samples",
    "overflows",
    "sync_uncertainty_s",
)
DEVICE_METRIC_INTS = frozenset({"dropped_samples", "overflows"})


@dataclass
class DeviceMetricsPoint:
    """One device's metrics at one time (UNIX s), as the ``device_metrics`` series holds
    them; fields the device cannot tell are None."""

    node_id: str
    device_id: str
    time: float
    temperature: float | None = None
    sample_rate: float | None = None
    dropped_samples: int | None = None
    overflows: int | None = None
    sync_uncertainty_s: float | None = None


@dataclass
class StoredFrame:
    """A frame as a store returns it. `time` is UNIX seconds as a float (microsecond
    resolution at today's epoch); `time_s` and `time_frac` are the frame's own exact split."""

    job_id: str
    node_id: str
    frame_type: int
    seq: int
    time: float
    center_freq_hz: float | None
    bin_hz: float | None
    flags: int
    payload: np.ndarray | bytes
    time_s: int = 0
    time_frac: float = 0.0
    time_uncertainty_s: float = 0.0
    meta: dict = field(default_factory=dict)


COLUMNS = (
    "job_id, node_id, frame_type, seq, time_s, time_frac, center_freq_hz, bin_hz, flags, "
    "payload, time_uncertainty_s, meta"
)


def _select(
    job_id: str,
    node_id: str | None,
    start: float | None,
    end: float | None,
    frame_type: int,
    limit: int | None,
    columns: str = COLUMNS,
    order: bool = True,
) -> tuple[str, list]:
    """The query for a job's frames in time order, the time bounds compared on (whole,
    fraction) pairs so that the index serves them."""
    sql = [f"SELECT {columns} FROM frames WHERE job_id = ? AND frame_type = ?"]
    args: list = [job_id, frame_type]
    if node_id is not None:
        sql.append("AND node_id = ?")
        args.append(node_id)
    if start is not None:
        whole = math.floor(start)
        sql.append("AND (time_s, time_frac) >= (?, ?)")
        args += [whole, start - whole]
    if end is not None:
        whole = math.floor(end)
        sql.append("AND (time_s, time_frac) < (?, ?)")
        args += [whole, end - whole]
    if order:
        sql.append("ORDER BY time_s, time_frac, node_id, seq")
    if limit is not None:
        sql.append("LIMIT ?")
        args.append(int(limit))
    return " ".join(sql), args


def _frame(row: tuple) -> StoredFrame:
    job, node, ftype, seq, ts, tf, fc, b, flags, payload, unc, meta = row
    data = (
        np.frombuffer(payload, dtype=wire.PAYLOAD_DTYPES[ftype])
        if ftype in wire.PAYLOAD_DTYPES
        else payload
    )
    return StoredFrame(
        job, node, ftype, seq, ts + tf, fc, b, flags, data, ts, tf, unc, json.loads(meta)
    )


def _stream(db: sqlite3.Connection, cursor: sqlite3.Cursor) -> Iterator[StoredFrame]:
    """The rows of a cursor as frames, a few at a time; the connection closes at the end (or
    when the iterator is closed or dropped)."""
    try:
        while rows := cursor.fetchmany(32):
            yield from map(_frame, rows)
    finally:
        db.close()


#: bytes of frames written between two checkpoints of the WAL into the database file
CHECKPOINT_BYTES = 16 << 20
#: ... and the most that may wait for the checkpointing thread before a writer checkpoints
#: itself (a disk slower than the writers must not let the WAL grow without bound)
CHECKPOINT_BEHIND_BYTES = 16 * CHECKPOINT_BYTES


class SpectrumStore:
    """SQLite file (WAL) of wire-format frames; safe to share between threads.

    Writers only append to the WAL: a thread of the store's own copies it into the database
    file (a checkpoint, with its fsync) every :data:`CHECKPOINT_BYTES` written, off the
    writers' path, where SQLite would otherwise do it inside every thousandth page's commit.
    """

    def __init__(self, path: str):
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        if path != ":memory:":
            private_file(path, sqlite=True)  # frames of every job: its owner's only
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._unchecked = 0  # bytes written since the last checkpoint began
        self._checkpoint_due = threading.Event()
        self._closing = False
        self._checkpointer = None
        if path != ":memory:":
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = threading.Thread(
                target=self._checkpoints, name="drift-spectrum-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _checkpoints(self) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            while True:
                self._checkpoint_due.wait()
                self._checkpoint_due.clear()
                if self._closing:
                    return
                try:
                    # PASSIVE: copies what no reader still needs, never waits for anyone
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    log.exception("checkpoint of %s failed (the next one retries)", self.path)
        finally:
            db.close()

    def close(self):
        if self._checkpointer is not None:
            self._closing = True
            self._checkpoint_due.set()
            self._checkpointer.join(timeout=30)
        with self._lock:
            self._db.close()  # the last connection checkpoints what is left

    def add(self, frames: list[wire.Frame], parts: list[list[bytes]] | None = None) -> int:
        """Store frames in one transaction; returns how many were new (the rest are replays).

        `parts`: the wire parts each frame was decoded from (the collector has them): the
        metadata and a PSD or IQ payload are stored as they came, not encoded again."""
        rows = []
        for i, f in enumerate(frames):
            raw = parts[i] if parts is not None else None
            m = f.meta
            if f.frame_type in wire.PAYLOAD_DTYPES:
                if raw is not None:
                    payload = raw[2]  # the wire's little-endian numbers, as stored
                else:
                    payload = np.ascontiguousarray(
                        f.payload, dtype=wire.PAYLOAD_DTYPES[f.frame_type]
                    ).tobytes()
                n = len(f.payload)
            else:
                payload = wire.encode(f)[2]
                n = len(f.payload or [])
            rows.append(
                (
                    str(m.get("job_id", "")),
                    str(m.get("node_id", "")),
                    f.frame_type,
                    f.seq,
                    f.time_s,
                    f.time_frac,
                    f.time_uncertainty_s,
                    m.get("center_freq_hz"),
                    m.get("bin_hz"),
                    n,
                    f.flags,
                    str(raw[1], "utf-8")
                    if raw is not None
                    else json.dumps(m, separators=(",", ":")),
                    payload,
                )
            )
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO frames VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._written(sum(len(r[-1]) for r in rows))
            return self._db.total_changes - before

    def _written(self, size: int) -> None:
        """Count bytes written; start a checkpoint when enough are (caller holds the lock)."""
        if self._checkpointer is None:
            return
        self._unchecked += size
        if self._unchecked >= CHECKPOINT_BEHIND_BYTES:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # the thread is behind
            self._unchecked = 0
        elif self._unchecked >= CHECKPOINT_BYTES and not self._checkpoint_due.is_set():
            self._checkpoint_due.set()
            self._unchecked = 0

    def query(
        self,
        job_id: str,
        node_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        frame_type: int = wire.PSD,
        limit: int | None = None,
    ) -> list[StoredFrame]:
        """Frames of a job (optionally one node, a time range [start, end)), in time order;
        the first `limit` of them if given."""
        return list(self._iter(*_select(job_id, node_id, start, end, frame_type, limit)))

    def query_page(
        self,
        job_id: str,
        node_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        frame_type: int = wire.PSD,
        limit: int = 1000,
    ) -> tuple[Iterator[StoredFrame], bool]:
        """The first `limit` frames of :meth:`query`, read as they are consumed through a
        read-only connection of their own (it never waits for a writer, and holds no lock of
        this store), and whether more frames follow (found from the index alone)."""
        sql, args = _select(job_id, node_id, start, end, frame_type, limit)
        more_sql, more_args = _select(job_id, node_id, start, end, frame_type, 1, columns="1")
        db = self._reader()
        try:
            truncated = db.execute(more_sql + " OFFSET ?", (*more_args, limit)).fetchone()
            cursor = db.execute(sql, args)
        except BaseException:
            db.close()
            raise
        return _stream(db, cursor), truncated is not None

    def iter_frames(
        self,
        job_id: str,
        node_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        frame_type: int = wire.PSD,
    ) -> Iterator[StoredFrame]:
        """Every frame of :meth:`query`, read as it is consumed (a few rows at a time) through
        a read-only connection of its own: constant memory whatever the job's size."""
        return self._iter(*_select(job_id, node_id, start, end, frame_type, None))

    def count_frames(
        self,
        job_id: str,
        node_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        frame_type: int = wire.PSD,
    ) -> int:
        """How many frames :meth:`iter_frames` reads, counted on the index alone."""
        sql, args = _select(
            job_id, node_id, start, end, frame_type, None, columns="count(*)", order=False
        )
        db = self._reader()
        try:
            return db.execute(sql, args).fetchone()[0]
        finally:
            db.close()

    def _reader(self) -> sqlite3.Connection:
        uri = Path(self.path).resolve().as_uri() + "?mode=ro"
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    def _iter(self, sql: str, args: list) -> Iterator[StoredFrame]:
        db = self._reader()
        try:
            cursor = db.execute(sql, args)
        except BaseException:
            db.close()
            raise
        return _stream(db, cursor)

    def iq_capture(self, job_id: str, node_id: str, longest: bool = False) -> IqCapture | None:
        """The node's IQ frames of the job joined in sequence order; None if it sent none
        (`longest`: see join_iq)."""
        return join_iq(self.query(job_id, node_id, frame_type=wire.IQ), longest)

    def save_stream_stats(self, stats: dict[tuple, list[int]]) -> None:
        """Per (job, node, frame type) counts from the collector: [received, lost, duplicates]."""
        rows = [(str(j), str(n), int(t), *map(int, v)) for (j, n, t), v in stats.items()]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO stream_stats VALUES (?,?,?,?,?,?)", rows)

    def stream_stats(self, job_id: str) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT node_id, frame_type, received, lost, duplicates FROM stream_stats "
                "WHERE job_id = ? ORDER BY node_id, frame_type",
                (job_id,),
            ).fetchall()
        return [
            {
                "node_id": n,
                "type": wire.FRAME_TYPES.get(t, str(t)),
                "received": r,
                "lost": lo,
                "duplicates": d,
            }
            for n, t, r, lo, d in rows
        ]

    def count(self, job_id: str) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT count(*) FROM frames WHERE job_id = ?", (job_id,)
            ).fetchone()[0]

    def add_device_metrics(self, points: list[DeviceMetricsPoint]) -> None:
        """Store device metrics (idempotent on node, device and time)."""
        rows = [
            (p.node_id, p.device_id, float(p.time), *(getattr(p, k) for k in DEVICE_METRIC_FIELDS))
            for p in points
        ]
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO device_metrics VALUES (?,?,?,?,?,?,?,?)", rows
            )

    def device_metrics(
        self,
        node_id: str,
        device_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> list[DeviceMetricsPoint]:
        """A node's device metrics (of one device) in [start, end), in time order."""
        sql = "SELECT * FROM device_metrics WHERE node_id = ?"
        args: list = [node_id]
        if device_id is not None:
            sql, args = sql + " AND device_id = ?", [*args, device_id]
        if start is not None:
            sql, args = sql + " AND time >= ?", [*args, float(start)]
        if end is not None:
            sql, args = sql + " AND time < ?", [*args, float(end)]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY time, device_id", args).fetchall()
        return [DeviceMetricsPoint(*row) for row in rows]
