"""GET /spectrum/{job_id}: a job's PSD frames, as JSON or compact binary."""

from __future__ import annotations

import datetime as dt
import math
import struct
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from gnuradio.drift import wire
from pydantic import BaseModel, Field

from drift.api.deps import RuntimeDep, SessionDep, Viewer, field_error
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
    session: SessionDep,
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
    """
    if not job_service.job_exists(session, job_id):
        raise HTTPException(404, f"no job {job_id}")
    start, end = _as_unix(start_time), _as_unix(end_time)
    if start is not None and end is not None and end <= start:
        raise field_error(("query", "end_time"), "end_time must be after start_time")
    frames = runtime.spectrum.query(str(job_id), node_id, start, end)
    truncated = len(frames) > limit
    frames = frames[:limit]
    if format == "binary":
        out = bytearray()
        for f in frames:
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
            for part in parts:
                out += struct.pack("<I", len(part)) + part
        return Response(
            bytes(out),
            media_type=BINARY_MEDIA_TYPE,
            headers={"X-Truncated": str(truncated).lower()},
        )
    return SpectrumPage(
        job_id=job_id,
        truncated=truncated,
        streams=[StreamStats(**d) for d in runtime.spectrum.stream_stats(str(job_id))],
        frames=[
            SpectrumFrame(
                node_id=f.node_id,
                seq=f.seq,
                time=dt.datetime.fromtimestamp(f.time, dt.UTC),
                time_unix_s=f.time,
                center_freq_hz=f.center_freq_hz,
                bin_hz=f.bin_hz,
                flags=[n for b, n in wire.FLAG_NAMES.items() if f.flags & b],
                psd_db=[float(v) if math.isfinite(v) else None for v in f.payload],
            )
            for f in frames
        ],
    )
