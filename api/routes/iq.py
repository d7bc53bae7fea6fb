"""GET /jobs/{job_id}/iq: a node's IQ capture of a job as a SigMF archive."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated, BinaryIO

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import StreamingResponse

from drift.api.deps import ReadSessionDep, RuntimeDep, Viewer
from drift.orchestrator import job_service
from drift.orchestrator.iq_export import (
    SIGMF_ARCHIVE_MEDIA_TYPE,
    RecordingSite,
    open_sigmf_archive,
)

router = APIRouter(prefix="/jobs", tags=["jobs"])

CHUNK_BYTES = 1 << 20


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := f.read(CHUNK_BYTES):
            yield chunk
    finally:
        f.close()


@router.get(
    "/{job_id}/iq",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {SIGMF_ARCHIVE_MEDIA_TYPE: {}},
            "description": "the capture as a SigMF archive (.sigmf)",
        },
        404: {"description": "no such job, the node took no part in it, or it sent no IQ"},
    },
)
def get_iq(
    job_id: uuid.UUID,
    node_id: Annotated[uuid.UUID, Query(description="the node whose capture to return")],
    _: Viewer,
    session: ReadSessionDep,
    runtime: RuntimeDep,
) -> StreamingResponse:
    """The IQ a node captured for a job (direction finding, IQ capture), as a SigMF archive:
    the samples (cf32_le) joined from the node's frames, the tuned frequency, the node's clock
    at the first sample (``core:datetime``), its position (``core:geolocation``), and in the
    ``drift`` extension its clock uncertainty, the job, the flowgraph's hash, the calibration
    offset and ``drift:complete`` (false when frames were lost or the stream was cut: the
    samples then stop before that point). Documented in ``drift.orchestrator.iq_export``."""
    if not job_service.job_exists(session, job_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
    node = job_service.participant(session, job_id, node_id)
    if node is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"node {node_id} took no part in job {job_id}"
        )
    capture = runtime.spectrum.iq_capture(str(job_id), str(node_id))
    if capture is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"node {node.name} ({node_id}) delivered no IQ for job {job_id}",
        )
    site = RecordingSite(str(node.id), node.name, node.lat_deg, node.lon_deg, node.alt_m)
    f, size, filename = open_sigmf_archive(capture, site)
    return StreamingResponse(
        _chunks(f),
        media_type=SIGMF_ARCHIVE_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Length": str(size),
        },
    )
