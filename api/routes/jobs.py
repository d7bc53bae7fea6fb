"""Jobs: submit (validated against the job-type registry), list, read, cancel."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from drift.api.deps import (
    Operator,
    ReadSessionDep,
    SessionDep,
    Viewer,
    field_error,
    has_role,
    utcnow,
)
from drift.api.schemas import CancelRequest, JobDetail, JobPublic, Page, UTCDateTime
from drift.orchestrator.events import ASSIGNMENTS_CHANGED, JOBS_SUBMITTED
from drift.orchestrator.lifecycle import IllegalTransition, cancel_job, record_creation
from drift.orchestrator.registry import JOB_TYPES, JobRequestBody, stored_parameters
from drift.orchestrator.states import JobStatus, Role
from drift.orchestrator.storage import Assignment, Job, User
from drift.orchestrator.templates import JobCheckError
from fastapi import APIRouter, Body, Header, HTTPException, Query, Response, status
from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

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


def _load(session: Session, job_id: uuid.UUID) -> Job:
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .options(selectinload(Job.transitions), selectinload(Job.assignments))
    )
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
) -> Job:
    jt = JOB_TYPES[request.type]
    if jt.transmits and "transmit" not in user.permissions:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"{request.type} transmits: needs the transmit permission"
        )
    if idempotency_key is not None:
        earlier = _by_key(session, user, idempotency_key)
        if earlier is not None:
            response.status_code = status.HTTP_200_OK
            return earlier
    if jt.check is not None:
        try:
            jt.check(session, request)
        except JobCheckError as exc:
            raise field_error(exc.loc, str(exc)) from None
    now = utcnow()
    job = Job(
        type=request.type,
        parameters=stored_parameters(request),
        priority=request.priority,
        owner_id=user.id,
        idempotency_key=idempotency_key,
        created_at=now,
        assignments=[],
    )
    record_creation(job, f"submitted by {user.username}", now)
    session.add(job)
    try:
        session.commit()
    except IntegrityError:  # the same key, submitted concurrently
        session.rollback()
        earlier = _by_key(session, user, idempotency_key) if idempotency_key else None
        if earlier is None:
            raise
        response.status_code = status.HTTP_200_OK
        return earlier
    JOBS_SUBMITTED.wake()
    return job  # as committed (the session does not expire it), with its one transition


def _by_key(session: Session, user: User, key: str) -> Job | None:
    job_id = session.scalar(
        select(Job.id).where(Job.owner_id == user.id, Job.idempotency_key == key)
    )
    return _load(session, job_id) if job_id is not None else None


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
    conditions = []
    if status_ is not None:
        conditions.append(Job.status == status_)
    if type_ is not None:
        conditions.append(Job.type == type_)
    if node_id is not None:
        conditions.append(
            exists().where(Assignment.job_id == Job.id, Assignment.node_id == node_id)
        )
    if created_after is not None:
        conditions.append(Job.created_at >= created_after)
    if created_before is not None:
        conditions.append(Job.created_at < created_before)
    total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    items = session.scalars(
        select(Job)
        .where(*conditions)
        .order_by(Job.created_at.desc(), Job.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return Page[JobPublic](
        items=[JobPublic.model_validate(j) for j in items], total=total, limit=limit, offset=offset
    )


@router.get("/{job_id}", response_model=JobDetail)
def get_job(job_id: uuid.UUID, _: Viewer, session: ReadSessionDep) -> Job:
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
) -> Job:
    job = _load(session, job_id)
    if job.owner_id != user.id and not has_role(user, Role.ADMIN):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "only its owner or an admin can cancel a job"
        )
    reason = f"cancelled by {user.username}" + (f": {body.reason}" if body and body.reason else "")
    try:
        cancel_job(job, reason, utcnow())
    except IllegalTransition as e:
        raise HTTPException(status.HTTP_409_CONFLICT, f"job is {e.current}; cannot cancel") from e
    session.commit()
    ASSIGNMENTS_CHANGED.wake(a.node_id for a in job.assignments)
    return _load(session, job.id)
