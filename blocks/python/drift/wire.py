#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""DRIFT's ZeroMQ wire format, version 1: encode and decode frames (pyzmq and numpy only).

docs/wire-format.md is the specification; this module is its reference implementation, used
by gnuradio.drift.frame_sink (nodes) and the collector. It needs NumPy alone (not GNU Radio's
runtime: ``import gnuradio.drift.wire`` loads no block). A frame is a ZeroMQ multipart message of three
parts:

  0  fixed header, 48 bytes, little-endian:
       magic b"DRFT" | version u16 | frame type u16 | sequence u64 |
       time: whole seconds i64 | fraction f64 | uncertainty s f64 | payload items u32 | flags u32
  1  metadata, UTF-8 JSON object (job_id, node_id, frequency axis, units, calibration, ...)
  2  payload: little-endian numbers (float32 PSD bins, complex64 IQ) or UTF-8 JSON (detections)
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"DRFT"
VERSION = 1
HEADER = struct.Struct("<4sHHQqddII")
HEADER_SIZE = HEADER.size  # 48

PSD, DETECTION, IQ = 1, 2, 3
FRAME_TYPES = {PSD: "psd", DETECTION: "detection", IQ: "iq"}
PAYLOAD_DTYPES = {PSD: np.dtype("<f4"), IQ: np.dtype("<c8")}

# flags (bit field in the header)
FLAG_OVERFLOW = 1 << 0  # samples were dropped before this frame
FLAG_UNCALIBRATED = 1 << 1  # no calibration record: units are dBFS, not dBm
FLAG_CLIPPED = 1 << 2  # the ADC clipped during this frame
FLAG_NAMES = {FLAG_OVERFLOW: "overflow", FLAG_UNCALIBRATED: "uncalibrated", FLAG_CLIPPED: "clipped"}

MAX_META_BYTES = 64 * 1024
MAX_PAYLOAD_ITEMS = 1 << 24


class WireError(ValueError):
    """A frame that does not follow the wire format; the message says what is wrong."""


@dataclass
class Frame:
    frame_type: int
    seq: int
    time_s: int  # whole seconds (UNIX)
    time_frac: float  # fraction of a second, [0, 1)
    time_uncertainty_s: float
    meta: dict = field(default_factory=dict)
    payload: object = None  # numpy array (psd, iq) or a list of dicts (detection)
    flags: int = 0

    @property
    def type_name(self) -> str:
        return FRAME_TYPES.get(self.frame_type, f"unknown({self.frame_type})")

    @property
    def time(self) -> float:
        return self.time_s + self.time_frac

    @property
    def flag_names(self) -> list[str]:
        return [name for bit, name in FLAG_NAMES.items() if self.flags & bit]

    @property
    def key(self) -> tuple:
        """What makes a frame unique: (job, node, sequence). Storing it is idempotent on it."""
        return (self.meta.get("job_id"), self.meta.get("node_id"), self.seq)


def encode(frame: Frame) -> list[bytes]:
    """The three parts of a frame."""
    if frame.frame_type in PAYLOAD_DTYPES:
        arr = np.ascontiguousarray(frame.payload, dtype=PAYLOAD_DTYPES[frame.frame_type])
        payload, items = arr.tobytes(), arr.size
    elif frame.frame_type == DETECTION:
        dets = list(frame.payload or [])
        payload, items = json.dumps(dets, separators=(",", ":")).encode(), len(dets)
    else:
        raise WireError(f"frame type {frame.frame_type} is not one of {sorted(FRAME_TYPES)}")
    if not 0 <= frame.time_frac < 1:
        raise WireError(f"time_frac must be in [0, 1), got {frame.time_frac}")
    header = HEADER.pack(
        MAGIC,
        VERSION,
        frame.frame_type,
        frame.seq,
        int(frame.time_s),
        float(frame.time_frac),
        float(frame.time_uncertainty_s),
        items,
        frame.flags,
    )
    meta = json.dumps(frame.meta, separators=(",", ":"), allow_nan=False).encode()
    return [header, meta, payload]


def decode(parts: list[bytes]) -> Frame:
    """A frame from its parts; WireError for anything malformed, never another exception."""
    if len(parts) != 3:
        raise WireError(f"a frame has 3 parts, this one has {len(parts)}")
    header, meta_bytes, payload = (bytes(p) for p in parts)
    if len(header) != HEADER_SIZE:
        raise WireError(f"header is {len(header)} bytes, not {HEADER_SIZE}")
    magic, version, ftype, seq, secs, frac, unc, items, flags = HEADER.unpack(header)
    if magic != MAGIC:
        raise WireError(f"bad magic {magic!r}")
    if version != VERSION:
        raise WireError(f"wire format version {version} is not supported (this is {VERSION})")
    if ftype not in FRAME_TYPES:
        raise WireError(f"unknown frame type {ftype}")
    if not (math.isfinite(frac) and 0 <= frac < 1) or not (math.isfinite(unc) and unc >= 0):
        raise WireError("time fraction or uncertainty out of range")
    if items > MAX_PAYLOAD_ITEMS:
        raise WireError(f"{items} payload items is over the limit {MAX_PAYLOAD_ITEMS}")
    if len(meta_bytes) > MAX_META_BYTES:
        raise WireError(f"metadata is {len(meta_bytes)} bytes, over {MAX_META_BYTES}")
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"metadata is not UTF-8 JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise WireError("metadata is not a JSON object")
    if ftype in PAYLOAD_DTYPES:
        dtype = PAYLOAD_DTYPES[ftype]
        if len(payload) != items * dtype.itemsize:
            raise WireError(
                f"payload is {len(payload)} bytes, the header says {items} items "
                f"of {dtype.itemsize}"
            )
        data = np.frombuffer(payload, dtype=dtype)
    else:
        try:
            data = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise WireError(f"detection payload is not UTF-8 JSON: {exc}") from None
        if (
            not isinstance(data, list)
            or len(data) != items
            or not all(isinstance(d, dict) for d in data)
        ):
            raise WireError("detection payload is not a list of objects of the stated length")
    return Frame(ftype, seq, secs, frac, unc, meta, data, flags)


class SequenceTracker:
    """Counts lost, repeated and late frames per (job, node, type) stream.

    A frame that fills an earlier gap (a node replaying its spool after an outage) is 'late': it
    is new, so it must be stored, and it no longer counts as lost. Up to `max_holes` missing
    sequence numbers are remembered per stream; older holes are forgotten (and stay lost).
    """

    def __init__(self, max_holes: int = 1 << 20):
        self._next: dict[tuple, int] = {}
        self._holes: dict[tuple, set[int]] = {}
        self.max_holes = int(max_holes)
        self.lost = 0
        self.duplicates = 0
        #: per (job, node, frame type): [received, lost, duplicates]
        self.streams: dict[tuple, list[int]] = {}

    def check(self, frame: Frame) -> str:
        """'ok', 'gap' (frames were lost before this one), 'late' (fills a gap) or 'duplicate'."""
        stream = frame.key[:2] + (frame.frame_type,)
        lost0, dup0 = self.lost, self.duplicates
        verdict = self._check(stream, frame)
        st = self.streams.setdefault(stream, [0, 0, 0])
        st[0] += 1
        st[1] += self.lost - lost0
        st[2] += self.duplicates - dup0
        return verdict

    def _check(self, stream: tuple, frame: Frame) -> str:
        expected = self._next.get(stream)
        if expected is None or frame.seq == expected:
            self._next[stream] = frame.seq + 1
            return "ok"
        if frame.seq > expected:
            self.lost += frame.seq - expected
            holes = self._holes.setdefault(stream, set())
            if len(holes) + frame.seq - expected <= self.max_holes:
                holes.update(range(expected, frame.seq))
            self._next[stream] = frame.seq + 1
            return "gap"
        holes = self._holes.get(stream)
        if holes and frame.seq in holes:
            holes.discard(frame.seq)
            self.lost -= 1
            return "late"
        self.duplicates += 1
        return "duplicate"
