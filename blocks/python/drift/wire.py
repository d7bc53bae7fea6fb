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
from array import array
from bisect import bisect_right
from collections import OrderedDict
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
    """A frame that does not follow the wire format; the message says what is wrong, and
    `reason` names the rule it broke in one word (for counting refused frames by reason):
    ``parts``, ``header``, ``magic``, ``version``, ``frame_type``, ``time``, ``too_many_items``,
    ``metadata`` or ``payload``."""

    def __init__(self, message: str, reason: str = "malformed"):
        super().__init__(message)
        self.reason = reason


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


def decode(
    parts: list[bytes], max_items: int | None = None, meta_cache: dict | None = None
) -> Frame:
    """A frame from its parts; WireError for anything malformed, never another exception.

    `meta_cache`: a dict kept by the caller across the frames of a batch (a receiver's
    frames of one stream carry the same metadata): each distinct metadata part is parsed once
    and every frame gets its own shallow copy of the result. Keep it for one batch (its size
    is the batch's distinct metadata).

    Only version :data:`VERSION` is accepted: a frame of another version is refused (reason
    ``version``), not read as if it were this one. `max_items`: refuse a frame whose header
    announces more payload items (bins, samples, detections) than this (reason
    ``too_many_items``), before its metadata or payload is parsed; at most
    :data:`MAX_PAYLOAD_ITEMS` in any case.
    """
    if len(parts) != 3:
        raise WireError(f"a frame has 3 parts, this one has {len(parts)}", "parts")
    header, meta_bytes, payload = (bytes(p) for p in parts)
    if len(header) != HEADER_SIZE:
        raise WireError(f"header is {len(header)} bytes, not {HEADER_SIZE}", "header")
    magic, version, ftype, seq, secs, frac, unc, items, flags = HEADER.unpack(header)
    if magic != MAGIC:
        raise WireError(f"bad magic {magic!r}", "magic")
    if version != VERSION:
        raise WireError(
            f"wire format version {version} is not supported (this is {VERSION})", "version"
        )
    if ftype not in FRAME_TYPES:
        raise WireError(f"unknown frame type {ftype}", "frame_type")
    if not (math.isfinite(frac) and 0 <= frac < 1) or not (math.isfinite(unc) and unc >= 0):
        raise WireError("time fraction or uncertainty out of range", "time")
    limit = MAX_PAYLOAD_ITEMS if max_items is None else min(int(max_items), MAX_PAYLOAD_ITEMS)
    if items > limit:
        raise WireError(f"{items} payload items is over the limit {limit}", "too_many_items")
    if len(meta_bytes) > MAX_META_BYTES:
        raise WireError(f"metadata is {len(meta_bytes)} bytes, over {MAX_META_BYTES}", "metadata")
    cached = meta_cache.get(meta_bytes) if meta_cache is not None else None
    if cached is not None:
        meta = dict(cached)
    else:
        try:
            meta = json.loads(meta_bytes.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise WireError(f"metadata is not UTF-8 JSON: {exc}", "metadata") from None
        if not isinstance(meta, dict):
            raise WireError("metadata is not a JSON object", "metadata")
        if meta_cache is not None:
            meta_cache[meta_bytes] = dict(meta)
    if ftype in PAYLOAD_DTYPES:
        dtype = PAYLOAD_DTYPES[ftype]
        if len(payload) != items * dtype.itemsize:
            raise WireError(
                f"payload is {len(payload)} bytes, the header says {items} items "
                f"of {dtype.itemsize}",
                "payload",
            )
        data = np.frombuffer(payload, dtype=dtype)
    else:
        try:
            data = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise WireError(f"detection payload is not UTF-8 JSON: {exc}", "payload") from None
        if (
            not isinstance(data, list)
            or len(data) != items
            or not all(isinstance(d, dict) for d in data)
        ):
            raise WireError(
                "detection payload is not a list of objects of the stated length", "payload"
            )
    return Frame(ftype, seq, secs, frac, unc, meta, data, flags)


class _Stream:
    """What a tracker keeps of one stream: the next sequence number it expects, its holes as
    ranges [start, end) in two parallel arrays (sorted, disjoint, all below `next`), and its
    counts."""

    __slots__ = ("next", "starts", "ends", "received", "lost", "duplicates")

    def __init__(self, next_seq: int):
        self.next = next_seq
        self.starts = array("Q")
        self.ends = array("Q")
        self.received = self.lost = self.duplicates = 0


class SequenceTracker:
    """Counts lost, repeated and late frames per (job, node, type) stream, in bounded memory.

    A frame that fills an earlier gap (a node replaying its spool after an outage) is 'late': it
    is new, so it must be stored, and it no longer counts as lost. Each stream keeps its holes as
    ranges of sequence numbers, at most `max_hole_ranges` of them: a jump of a million is one
    range, and when a stream has more ranges than that its oldest are forgotten (their frames
    stay lost, and one that comes late after all is taken for a replay). At most `max_streams`
    streams are tracked: the least recently used one is evicted to make room (counted in
    `evicted`); a frame of an evicted stream starts it afresh. Memory is therefore bounded by
    about ``max_streams * (16 * max_hole_ranges + 500)`` bytes plus the streams' keys.
    """

    def __init__(self, max_streams: int = 4096, max_hole_ranges: int = 64):
        if int(max_streams) < 1 or int(max_hole_ranges) < 1:
            raise ValueError("max_streams and max_hole_ranges must be >= 1")
        self.max_streams = int(max_streams)
        self.max_hole_ranges = int(max_hole_ranges)
        self._streams: OrderedDict[tuple, _Stream] = OrderedDict()
        self.lost = 0
        self.duplicates = 0
        #: streams evicted to make room for newer ones
        self.evicted = 0
        #: hole ranges forgotten because a stream had too many
        self.forgotten_ranges = 0

    def __len__(self) -> int:
        return len(self._streams)

    @property
    def hole_ranges(self) -> int:
        """Hole ranges held, all streams together (at most max_streams * max_hole_ranges)."""
        return sum(len(st.starts) for st in self._streams.values())

    @property
    def streams(self) -> dict[tuple, list[int]]:
        """Per (job, node, frame type) still tracked: [received, lost, duplicates]."""
        return {k: [st.received, st.lost, st.duplicates] for k, st in self._streams.items()}

    def holes(self, stream: tuple) -> list[tuple[int, int]]:
        """The holes of a stream as ranges [start, end)."""
        st = self._streams.get(stream)
        return [] if st is None else list(zip(st.starts, st.ends, strict=True))

    def check(self, frame: Frame) -> str:
        """'ok', 'gap' (frames were lost before this one), 'late' (fills a gap) or 'duplicate'."""
        key = frame.key[:2] + (frame.frame_type,)
        seq = int(frame.seq)
        st = self._streams.get(key)
        if st is None:
            if len(self._streams) >= self.max_streams:
                self._streams.popitem(last=False)
                self.evicted += 1
            st = self._streams[key] = _Stream(seq + 1)
            st.received = 1
            return "ok"
        self._streams.move_to_end(key)
        st.received += 1
        if seq == st.next:
            st.next = seq + 1
            return "ok"
        if seq > st.next:
            n = seq - st.next
            st.starts.append(st.next)
            st.ends.append(seq)
            st.next = seq + 1
            st.lost += n
            self.lost += n
            self._trim(st)
            return "gap"
        i = bisect_right(st.starts, seq) - 1
        if i < 0 or seq >= st.ends[i]:
            st.duplicates += 1
            self.duplicates += 1
            return "duplicate"
        start, end = st.starts[i], st.ends[i]
        if end - start == 1:
            del st.starts[i]
            del st.ends[i]
        elif seq == start:
            st.starts[i] = seq + 1
        elif seq == end - 1:
            st.ends[i] = seq
        else:  # the range splits in two
            st.ends[i] = seq
            st.starts.insert(i + 1, seq + 1)
            st.ends.insert(i + 1, end)
            self._trim(st)
        st.lost -= 1
        self.lost -= 1
        return "late"

    def _trim(self, st: _Stream) -> None:
        excess = len(st.starts) - self.max_hole_ranges
        if excess > 0:
            del st.starts[:excess]
            del st.ends[:excess]
            self.forgotten_ranges += excess
