"""GET /spectrum/{job_id}: a job's PSD frames, as JSON or compact binary."""

from __future__ import annotations

import datetime as dt
import math
import struct
import uuid
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from gnuradio.drift import wire
from pydantic import BaseModel, Field, TypeAdapter

from drift.api.deps import ReadSessionDep, RuntimeDep, Viewer, field_error
from drift.api.schemas import UTCDateTime
from drift.orchestrator import job_service

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


def _as_unix(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


@router.get(
    "/{job_id}",
    response_model=SpectrumPage,
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
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    format: Annotated[Literal["json", "binary"], Query()] = "json",
):
    """PSD frames of a job in time order (dBm/Hz when calibrated), from all its nodes or one.

    format=binary returns the frames in DRIFT's wire format (docs/wire-format.md), each of its
    three parts preceded by its length as a little-endian u32: decode with drift.wire.

    The store reads only the frames answered (the filters and `limit` are in its query) and
    the answer is streamed as they are read, so its memory does not grow with the job.
    """
    if not job_service.job_exists(session, job_id):
        raise HTTPException(404, f"no job {job_id}")
    start, end = _as_unix(start_time), _as_unix(end_time)
    if start is not None and end is not None and end <= start:
        raise field_error(("query", "end_time"), "end_time must be after start_time")
    frames, truncated = runtime.spectrum.query_page(str(job_id), node_id, start, end, limit=limit)
    if format == "binary":
        return StreamingResponse(
            _chunks(map(_binary, frames)),
            media_type=BINARY_MEDIA_TYPE,
            headers={"X-Truncated": str(truncated).lower()},
        )
    streams = runtime.spectrum.stream_stats(str(job_id))
    return StreamingResponse(
        _chunks(_json_page(job_id, frames, truncated, streams)), media_type="application/json"
    )


#: bytes gathered before a piece of the answer is sent
CHUNK_BYTES = 64 * 1024


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


def _binary(f) -> bytes:
    whole = int(f.time // 1)
    parts = wire.encode(
        wire.Frame(
            wire.PSD,
            f.seq,
            whole,
            f.time - whole,
            0.0,
            {
                "job_id": f.job_id,
                "node_id": f.node_id,
                "center_freq_hz": f.center_freq_hz,
                "bin_hz": f.bin_hz,
            },
            f.payload,
            f.flags,
        )
    )
    return b"".join(struct.pack("<I", len(part)) + part for part in parts)


def _json_page(job_id: uuid.UUID, frames, truncated: bool, streams: list[dict]) -> Iterator[bytes]:
    """A SpectrumPage as JSON, one frame at a time."""
    yield b'{"job_id":"' + str(job_id).encode() + b'","frames":['
    for i, f in enumerate(frames):
        frame = SpectrumFrame(
            node_id=f.node_id,
            seq=f.seq,
            time=dt.datetime.fromtimestamp(f.time, dt.UTC),
            time_unix_s=f.time,
            center_freq_hz=f.center_freq_hz,
            bin_hz=f.bin_hz,
            flags=[n for b, n in wire.FLAG_NAMES.items() if f.flags & b],
            psd_db=[float(v) if math.isfinite(v) else None for v in f.payload],
        )
        yield (b"," if i else b"") + frame.model_dump_json().encode()
    yield (
        b'],"truncated":'
        + (b"true" if truncated else b"false")
        + b',"streams":'
        + _STREAMS.dump_json([StreamStats(**d) for d in streams])
        + b"}"
    )


_STREAMS = TypeAdapter(list[StreamStats])
