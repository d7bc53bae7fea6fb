"""Max-hold and mean-hold of PSD frames over time, in constant memory: a long job's spectrum
reduced to a waterfall-sized answer.

Frames are held per stream: one node's frames of one frequency axis (centre frequency, bin
width and number of bins), since a sweep's hops cover different frequencies and must not be
held together. Every `every` consecutive frames of a stream become one row; a stream's last
row holds what is left. Rows come out in the order of their last frame (a row is complete
when its last frame has been read), the last partial rows in the order of their first frame.

Max hold is the largest value of each bin; mean hold is the mean of the power (the mean of
``10 ** (dB / 10)``, back in dB), so an empty bin (-inf dB) counts as zero power. Memory is one
accumulator per stream whose row is open, at most :data:`MAX_OPEN_ROWS` of them (past that, the
row that has waited longest is answered early, holding fewer frames).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np

from drift.orchestrator.spectrum_store import StoredFrame

HOLDS = ("max", "mean")
#: rows held open at once (streams in flight); a sweep of more hops than this gets rows that
#: hold fewer frames, never more memory
MAX_OPEN_ROWS = 1024

_DB_TO_LN = math.log(10) / 10


class _Row:
    __slots__ = ("first", "last", "n", "acc", "mean", "flags")

    def __init__(self, f: StoredFrame, mean: bool):
        self.first = self.last = f
        self.n = 1
        self.flags = f.flags
        self.mean = mean
        x = np.asarray(f.payload, dtype=np.float32)
        if mean:
            self.acc = np.exp(x.astype(np.float64) * _DB_TO_LN)
        else:
            self.acc = x.copy()

    def add(self, f: StoredFrame) -> None:
        x = np.asarray(f.payload, dtype=np.float32)
        if self.mean:
            self.acc += np.exp(x.astype(np.float64) * _DB_TO_LN)
        else:
            np.fmax(self.acc, x, out=self.acc)
        self.last = f
        self.flags |= f.flags
        self.n += 1

    def frame(self, hold: str) -> StoredFrame:
        if self.mean:
            with np.errstate(divide="ignore"):
                held = (np.log10(self.acc / self.n) * 10).astype(np.float32)
        else:
            held = self.acc
        f = self.first
        return replace(
            f,
            payload=held,
            flags=self.flags,
            meta={"hold": hold, "frames": self.n, "time_end_unix_s": self.last.time},
        )


def hold_frames(
    frames: Iterable[StoredFrame], every: int, hold: str = "max"
) -> Iterator[StoredFrame]:
    """Rows of `every` consecutive frames of each stream, held (`hold`: ``max`` or ``mean``).

    A row is a :class:`StoredFrame` with the first frame's identity and time, the flags of
    all its frames OR-ed, and in `meta` the hold, how many
    frames it holds and the time of the last of them (``time_end_unix_s``)."""
    if hold not in HOLDS:
        raise ValueError(f"hold must be one of {HOLDS}, got {hold!r}")
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    mean = hold == "mean"
    rows: dict[tuple, _Row] = {}  # insertion order: the order of the rows' first frames
    for f in frames:
        key = (f.node_id, f.center_freq_hz, f.bin_hz, len(f.payload))
        row = rows.get(key)
        if row is None:
            if len(rows) >= MAX_OPEN_ROWS:
                yield rows.pop(next(iter(rows))).frame(hold)
            row = rows[key] = _Row(f, mean)
        else:
            row.add(f)
        if row.n >= every:
            del rows[key]
            yield row.frame(hold)
    for row in rows.values():
        yield row.frame(hold)
