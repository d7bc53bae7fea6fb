"""GET /jobs/{job_id}/detections: the signals a job's nodes detected."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from drift.api.deps import ReadSessionDep, RuntimeDep, Viewer, field_error
from drift.api.schemas import UTCDateTime
from drift.orchestrator import job_service
from drift.orchestrator.detections import NodeDetection, detections_from_store

router = APIRouter(prefix="/jobs", tags=["detections"])


class DetectionPage(BaseModel):
    job_id: uuid.UUID
    detections: list[NodeDetection]
    #: more detections matched than `limit`
    truncated: bool


@router.get(
    "/{job_id}/detections",
    response_model=DetectionPage,
    responses={
        404: {"description": "no such job"},
        422: {"description": "a bad filter: the detail names the field"},
    },
)
def get_detections(
    job_id: uuid.UUID,
    _: Viewer,
    session: ReadSessionDep,
    runtime: RuntimeDep,
    node_id: Annotated[uuid.UUID | None, Query(description="one node's detections")] = None,
    start_time: Annotated[
        UTCDateTime | None, Query(description="detections last seen at or after this time")
    ] = None,
    end_time: Annotated[
        UTCDateTime | None, Query(description="detections first seen before this time")
    ] = None,
    min_freq_hz: Annotated[
        float | None,
        Query(ge=0, description="detections whose band reaches up to this frequency or above"),
    ] = None,
    max_freq_hz: Annotated[
        float | None,
        Query(gt=0, description="detections whose band reaches down to this frequency or below"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> DetectionPage:
    """The signals a job's nodes detected, one entry per signal and node: its centre and
    99 % occupied bandwidth, integrated power (noise removed), peak density, SNR over the
    local noise floor, when it was first and last seen, and the detector's latest event for
    it ("end", or "new" for a signal still on when the node last reported). Levels are dBm
    and dBm/Hz at the antenna, or dBFS (`units`) for a node flagged uncalibrated.

    Filters: `node_id`; a time range that the detection's first-to-last-seen span overlaps;
    a frequency range that its band overlaps. Ordered by first seen, node and frequency.
    """
    if not job_service.job_exists(session, job_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
    if start_time is not None and end_time is not None and end_time <= start_time:
        raise field_error(("query", "end_time"), "end_time must be after start_time")
    if min_freq_hz is not None and max_freq_hz is not None and max_freq_hz <= min_freq_hz:
        raise field_error(("query", "max_freq_hz"), "max_freq_hz must be above min_freq_hz")
    found = [
        d
        for d in detections_from_store(
            runtime.spectrum, str(job_id), None if node_id is None else str(node_id)
        )
        if _within(d, start_time, end_time, min_freq_hz, max_freq_hz)
    ]
    return DetectionPage(job_id=job_id, detections=found[:limit], truncated=len(found) > limit)


def _within(
    d: NodeDetection,
    start: dt.datetime | None,
    end: dt.datetime | None,
    low_hz: float | None,
    high_hz: float | None,
) -> bool:
    return (
        (start is None or d.last_seen >= start)
        and (end is None or d.first_seen < end)
        and (low_hz is None or d.high_freq_hz >= low_hz)
        and (high_hz is None or d.low_freq_hz <= high_hz)
    )
