"""GET /spectrum/{job_id}: a job's PSD frames, as JSON or compact binary."""

from __future__ import annotations

import datetime as dt
import math
import struct
import uuid
from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from gnuradio.drift import wire
from pydantic import BaseModel, Field, TypeAdapter

from drift.api.deps import ReadSessionDep, RuntimeDep, Viewer, field_error
from drift.api.schemas import UTCDateTime
from drift.orchestrator import job_service
from drift.orchestrator.spectrum_hold import hold_frames

router = APIRouter(prefix="/spectrum", tags=["spectrum"])

BINARY_MEDIA_TYPE = "application/x-drift-frames"


class SpectrumFrame(BaseModel):
    node_id: str
    seq: int
    time: dt.datetime
    time_unix_s: float
    center_freq_hz: float | None
    bin_hz: float | None
    flags: list[str]
    psd_db: list[float | None]  # None for a bin with no power (-inf dB)


class StreamStats(BaseModel):
    """What the collector saw of one node's frames of this job."""

    node_id: str
    type: str
    received: int
    lost: int = Field(description="frames missing from the sequence numbers")
    duplicates: int


class SpectrumPage(BaseModel):
    job_id: uuid.UUID
    frames: list[SpectrumFrame]
    truncated: bool
    streams: list[StreamStats] = Field(default_factory=list)


class HeldSpectrumFrame(SpectrumFrame):
    """A row of a decimated answer: `frames` frames of one stream held into one."""

    hold: Literal["max", "mean"]
    frames: int = Field(description="how many frames this row holds")
    time_end_unix_s: float = Field(description="time of the last frame it holds")


class HeldSpectrumPage(SpectrumPage):
    frames: list[HeldSpectrumFrame]
    decimate: int = Field(description="frames of one stream held into each row")


def _as_unix(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


#: rows answered when no limit is given (and no decimation)
DEFAULT_LIMIT = 1000


@router.get(
    "/{job_id}",
    response_model=SpectrumPage | HeldSpectrumPage,
    responses={200: {"content": {BINARY_MEDIA_TYPE: {}}}, 404: {"description": "no such job"}},
)
def get_spectrum(
    job_id: uuid.UUID,
    _: Viewer,
    session: ReadSessionDep,
    runtime: RuntimeDep,
    start_time: Annotated[UTCDateTime | None, Query(description="first frame time")] = None,
    end_time: Annotated[UTCDateTime | None, Query(description="frames before this time")] = None,
    node_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=10000, description=f"frames answered (default {DEFAULT_LIMIT})")
    ] = None,
    format: Annotated[Literal["json", "binary"], Query()] = "json",
    decimate: Annotated[
        int | None,
        Query(ge=1, le=10_000_000, description="hold every N frames of a stream into one row"),
    ] = None,
    rows: Annotated[
        int | None,
        Query(ge=1, le=10000, description="about this many rows: decimate chosen to fit"),
    ] = None,
    hold: Annotated[
        Literal["max", "mean"] | None,
        Query(description="max or mean (of power) over the frames a row holds (default max)"),
    ] = None,
):
    """PSD frames of a job in time order (dBm/Hz when calibrated), from all its nodes or one.

    format=binary returns the frames in DRIFT's wire format (docs/wire-format.md), each of its
    three parts preceded by its length as a little-endian u32: decode with drift.wire.

    The store reads only the frames answered (the filters and `limit` are in its query) and
    the answer is streamed as they are read, so its memory does not grow with the job.

    `decimate=N` (or `rows=R`, which picks N as the matching frames over R, rounded up: at
    most R rows, plus one per stream beyond the first) holds every N consecutive frames of a stream (one node, one centre frequency, bin width and size)
    into one row: the maximum of each bin (`hold=max`, the default) or the mean of its power
    (`hold=mean`). Every frame that matches the filters is read, as a stream, in constant
    memory; a row comes when its last frame has been read, and each stream's last row holds
    what is left (see `frames`). `limit` does not apply: narrow the time range instead.
    """
    held = decimate is not None or rows is not None
    if decimate is not None and rows is not None:
        raise field_error(("query", "rows"), "give decimate or rows, not both")
    if hold is not None and not held:
        raise field_error(("query", "hold"), "hold needs decimate or rows")
    if limit is not None and held:
        raise field_error(
            ("query", "limit"), "limit does not apply to a decimated answer: narrow the time range"
        )
    if not job_service.job_exists(session, job_id):
        raise HTTPException(404, f"no job {job_id}")
    start, end = _as_unix(start_time), _as_unix(end_time)
    if start is not None and end is not None and end <= start:
        raise field_error(("query", "end_time"), "end_time must be after start_time")
    store = runtime.spectrum
    if held:
        if rows is not None:
            decimate = max(1, -(-store.count_frames(str(job_id), node_id, start, end) // rows))
        hold = hold or "max"
        frames = hold_frames(store.iter_frames(str(job_id), node_id, start, end), decimate, hold)
        truncated = False
    else:
        frames, truncated = store.query_page(
            str(job_id), node_id, start, end, limit=limit or DEFAULT_LIMIT
        )
    if format == "binary":
        headers = {"X-Truncated": str(truncated).lower()}
        if held:
            headers |= {"X-Decimate": str(decimate), "X-Hold": hold}
        return StreamingResponse(
            _chunks(map(_binary_held if held else _binary, frames)),
            media_type=BINARY_MEDIA_TYPE,
            headers=headers,
        )
    streams = store.stream_stats(str(job_id))
    page = _json_page(job_id, frames, truncated, streams, decimate if held else None)
    return StreamingResponse(_chunks(page), media_type="application/json")


#: bytes gathered before a piece of the answer is sent
CHUNK_BYTES = 256 * 1024


def _chunks(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Pieces joined into chunks of about CHUNK_BYTES (each chunk is one hop to the server's
    event loop)."""
    buf: list[bytes] = []
    size = 0
    for piece in pieces:
        buf.append(piece)
        size += len(piece)
        if size >= CHUNK_BYTES:
            yield b"".join(buf)
            buf, size = [], 0
    if buf:
        yield b"".join(buf)


def _binary(f, extra: dict | None = None) -> bytes:
    whole = int(f.time // 1)
    meta = {
        "job_id": f.job_id,
        "node_id": f.node_id,
        "center_freq_hz": f.center_freq_hz,
        "bin_hz": f.bin_hz,
    }
    if extra:
        meta |= extra
    parts = wire.encode(
        wire.Frame(wire.PSD, f.seq, whole, f.time - whole, 0.0, meta, f.payload, f.flags)
    )
    return b"".join(struct.pack("<I", len(part)) + part for part in parts)


def _binary_held(f) -> bytes:
    """A held row in the wire format: its metadata adds the hold, how many frames it holds
    and the time of the last (``time_end_unix_s``)."""
    return _binary(f, f.meta)


_FLAGS = {b: [n for bit, n in wire.FLAG_NAMES.items() if b & bit] for b in range(8)}


def _psd_list(payload) -> list:
    """The bins as JSON numbers, None for a bin with no power (or no number)."""
    values = payload.tolist()
    if not np.isfinite(payload).all():
        values = [v if math.isfinite(v) else None for v in values]
    return values


def _json_frame(f, held: bool) -> bytes:
    fields = {
        "node_id": f.node_id,
        "seq": f.seq,
        "time": dt.datetime.fromtimestamp(f.time, dt.UTC),
        "time_unix_s": f.time,
        "center_freq_hz": f.center_freq_hz,
        "bin_hz": f.bin_hz,
        "flags": _FLAGS.get(f.flags) or [n for b, n in wire.FLAG_NAMES.items() if f.flags & b],
        "psd_db": _psd_list(f.payload),
    }
    if held:
        # the values are already of the model's types: no validation pass over every bin
        return HeldSpectrumFrame.model_construct(**fields, **f.meta).model_dump_json().encode()
    return SpectrumFrame.model_construct(**fields).model_dump_json().encode()


def _json_page(
    job_id: uuid.UUID, frames, truncated: bool, streams: list[dict], decimate: int | None
) -> Iterator[bytes]:
    """A SpectrumPage (a HeldSpectrumPage when decimated) as JSON, one frame at a time."""
    held = decimate is not None
    yield b'{"job_id":"' + str(job_id).encode() + b'","frames":['
    for i, f in enumerate(frames):
        yield (b"," if i else b"") + _json_frame(f, held)
    yield (
        b'],"truncated":'
        + (b"true" if truncated else b"false")
        + (b',"decimate":' + str(decimate).encode() if held else b"")
        + b',"streams":'
        + _STREAMS.dump_json([StreamStats(**d) for d in streams])
        + b"}"
    )


_STREAMS = TypeAdapter(list[StreamStats])
