"""Jobs: submit (validated against the job-type registry), list, read, cancel. The work is
in :mod:`drift.orchestrator.job_service`."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, HTTPException, Query, Response, status

from drift.api.deps import (
    Operator,
    ReadSessionDep,
    SessionDep,
    Viewer,
    field_error,
    utcnow,
)
from drift.api.schemas import CancelRequest, JobDetail, JobPublic, Page, UTCDateTime
from drift.orchestrator import job_service
from drift.orchestrator.events import ASSIGNMENTS_CHANGED, JOBS_SUBMITTED
from drift.orchestrator.job_service import load_job
from drift.orchestrator.lifecycle import IllegalTransition
from drift.orchestrator.registry import JOB_TYPES, JobRequestBody
from drift.orchestrator.states import JobStatus
from drift.orchestrator.templates import JobCheckError

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobTypeName = Literal[tuple(JOB_TYPES)]  # type: ignore[valid-type]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="repeat a submission safely: the same key returns the job made the first time",
    ),
]


def _load(session, job_id: uuid.UUID):
    job = load_job(session, job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such job")
    return job


@router.post(
    "",
    response_model=JobDetail,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "the job an earlier request with this Idempotency-Key made"}},
)
def submit_job(
    request: Annotated[JobRequestBody, Body(description="one of the job types, chosen by `type`")],
    user: Operator,
    session: SessionDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
):
    try:
        job, created = job_service.submit_job(session, request, user, utcnow(), idempotency_key)
    except job_service.NotPermitted as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except JobCheckError as exc:
        raise field_error(exc.loc, str(exc)) from None
    if created:
        JOBS_SUBMITTED.wake()
    else:
        response.status_code = status.HTTP_200_OK
    return job


@router.get("", response_model=Page[JobPublic])
def list_jobs(
    _: Viewer,
    session: ReadSessionDep,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    type_: Annotated[JobTypeName | None, Query(alias="type")] = None,
    node_id: Annotated[uuid.UUID | None, Query(description="jobs this node took part in")] = None,
    created_after: Annotated[UTCDateTime | None, Query()] = None,
    created_before: Annotated[UTCDateTime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Page[JobPublic]:
    if created_after and created_before and created_after > created_before:
        raise field_error(("query", "created_before"), "created_before is before created_after")
    items, total = job_service.list_jobs(
        session,
        job_service.JobFilter(status_, type_, node_id, created_after, created_before),
        limit,
        offset,
    )
    return Page[JobPublic](
        items=[JobPublic.model_validate(j) for j in items], total=total, limit=limit, offset=offset
    )


@router.get("/{job_id}", response_model=JobDetail)
def get_job(job_id: uuid.UUID, _: Viewer, session: ReadSessionDep):
    return _load(session, job_id)


@router.post(
    "/{job_id}/cancel",
    response_model=JobDetail,
    responses={409: {"description": "the job has already ended"}},
)
def cancel(
    job_id: uuid.UUID,
    user: Operator,
    session: SessionDep,
    body: Annotated[CancelRequest | None, Body()] = None,
):
    job = _load(session, job_id)
    try:
        job_service.cancel(session, job, user, body.reason if body else None, utcnow())
    except job_service.NotPermitted as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except IllegalTransition as e:
        raise HTTPException(status.HTTP_409_CONFLICT, f"job is {e.current}; cannot cancel") from e
    ASSIGNMENTS_CHANGED.wake(a.node_id for a in job.assignments)
    return _load(session, job.id)
