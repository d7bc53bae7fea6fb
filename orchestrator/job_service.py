"""Jobs as a service: submitting, listing, loading and cancelling, for the REST routes and for
anything else that makes jobs (benchmarks, tests). The routes only translate HTTP to these calls
and these calls' refusals to status codes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from drift.orchestrator.jobs import JobBase
from drift.orchestrator.lifecycle import cancel_job, record_creation
from drift.orchestrator.registry import JOB_TYPES, stored_parameters
from drift.orchestrator.states import JobStatus, Role
from drift.orchestrator.storage import Assignment, Job, Node, User


class NotPermitted(Exception):
    """The user may not do this (the message says why)."""


def load_job(session: Session, job_id: uuid.UUID) -> Job | None:
    """A job with its transitions and assignments."""
    return session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .options(selectinload(Job.transitions), selectinload(Job.assignments))
    )


def submit_job(
    session: Session,
    request: JobBase,
    owner: User | None,
    now: dt.datetime,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Store a new pending job and commit; (the job, True). With an `idempotency_key` the
    owner used before, the job that key made: (it, False).

    Raises :class:`NotPermitted` for a transmitting job (of a type that transmits, or one
    whose uploaded template has a transmitting block) without the ``transmit`` permission
    (owner None: nobody's, so never permitted), and the job type's own check's
    :class:`~drift.orchestrator.templates.JobCheckError` naming the field.
    """
    jt = JOB_TYPES[request.type]
    if jt.transmits and (owner is None or "transmit" not in owner.permissions):
        raise NotPermitted(f"{request.type} transmits: needs the transmit permission")
    if idempotency_key is not None:
        earlier = _by_key(session, owner, idempotency_key)
        if earlier is not None:
            return earlier, False
    if jt.check is not None:
        request = jt.check(session, request) or request
    if (
        not jt.transmits
        and jt.transmits_when is not None
        and jt.transmits_when(session, request)
        and (owner is None or "transmit" not in owner.permissions)
    ):
        raise NotPermitted(
            f"{request.type}: the template has a transmitting block; needs the transmit permission"
        )
    job = Job(
        type=request.type,
        parameters=stored_parameters(request),
        priority=request.priority,
        owner_id=None if owner is None else owner.id,
        idempotency_key=idempotency_key,
        created_at=now,
        assignments=[],
    )
    record_creation(job, f"submitted by {owner.username if owner else 'the coordinator'}", now)
    session.add(job)
    try:
        session.commit()
    except IntegrityError:  # the same key, submitted concurrently
        session.rollback()
        earlier = _by_key(session, owner, idempotency_key) if idempotency_key else None
        if earlier is None:
            raise
        return earlier, False
    return job, True  # as committed (the session does not expire it), with its one transition


def _by_key(session: Session, owner: User | None, key: str) -> Job | None:
    if owner is None:
        return None
    job_id = session.scalar(
        select(Job.id).where(Job.owner_id == owner.id, Job.idempotency_key == key)
    )
    return load_job(session, job_id) if job_id is not None else None


@dataclass(frozen=True)
class JobFilter:
    status: JobStatus | None = None
    type: str | None = None
    #: jobs this node took part in
    node_id: uuid.UUID | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None

    def conditions(self) -> list:
        out = []
        if self.status is not None:
            out.append(Job.status == self.status)
        if self.type is not None:
            out.append(Job.type == self.type)
        if self.node_id is not None:
            out.append(
                exists().where(Assignment.job_id == Job.id, Assignment.node_id == self.node_id)
            )
        if self.created_after is not None:
            out.append(Job.created_at >= self.created_after)
        if self.created_before is not None:
            out.append(Job.created_at < self.created_before)
        return out


def list_jobs(session: Session, where: JobFilter, limit: int, offset: int) -> tuple[list[Job], int]:
    """A page of jobs, newest first, and how many match in all."""
    conditions = where.conditions()
    total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    items = session.scalars(
        select(Job)
        .where(*conditions)
        .order_by(Job.created_at.desc(), Job.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(items), total


def cancel(session: Session, job: Job, user: User, reason: str | None, now: dt.datetime) -> None:
    """Cancel a job that has not ended (its owner or an admin) and commit. Raises
    :class:`NotPermitted`, and :class:`~drift.orchestrator.lifecycle.IllegalTransition`
    for a job that has ended."""
    if job.owner_id != user.id and user.role != Role.ADMIN:
        raise NotPermitted("only its owner or an admin can cancel a job")
    cancel_job(job, f"cancelled by {user.username}" + (f": {reason}" if reason else ""), now)
    session.commit()


def job_exists(session: Session, job_id: uuid.UUID) -> bool:
    return session.get(Job, job_id) is not None


def participant(session: Session, job_id: uuid.UUID, node_id: uuid.UUID) -> Node | None:
    """The node, if it took part in the job (had an assignment of it)."""
    took_part = session.scalar(
        select(exists().where(Assignment.job_id == job_id, Assignment.node_id == node_id))
    )
    return session.get(Node, node_id) if took_part else None


def job_steps(session: Session, job_id: uuid.UUID) -> tuple[str, list[dict]] | None:
    """A job's status and its transitions (from, to, at, reason), or None for no such job."""
    job = session.scalar(select(Job).where(Job.id == job_id).options(selectinload(Job.transitions)))
    if job is None:
        return None
    return job.status, [
        {
            "from_status": t.from_status,
            "to_status": t.to_status,
            "at": t.at.isoformat(),
            "reason": t.reason,
        }
        for t in job.transitions
    ]


def counts_by_status_and_type(session: Session) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(Job.status, Job.type, func.count()).group_by(Job.status, Job.type)
    ).all()
    return {(s, t): n for s, t, n in rows}
