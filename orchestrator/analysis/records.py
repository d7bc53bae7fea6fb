"""Reading a job's stored result (the query behind ``GET /jobs/{id}/result`` and the live feed)."""

from __future__ import annotations

import uuid

from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session

from drift.orchestrator.analysis.results import JobResultBody
from drift.orchestrator.states import JobStatus
from drift.orchestrator.storage.models import Job, JobResult

_RESULT = TypeAdapter(JobResultBody)


class NoResult(LookupError):
    """The job has no result (yet, or ever); the message says why."""


#: why a job in each status has no result
_WHY = {
    JobStatus.PENDING: "the job is pending: it has not run yet",
    JobStatus.SCHEDULED: "the job is scheduled: its nodes have not delivered yet",
    JobStatus.RUNNING: "the job is running: its nodes have not all delivered yet",
    JobStatus.ANALYSING: "the job is analysing what its nodes delivered; ask again shortly",
    JobStatus.CANCELLED: "the job was cancelled before it had a result",
}


def read_result(session: Session, job_id: uuid.UUID):
    """The job's result model; raises :class:`NoResult` saying why there is none, and
    LookupError("no such job") for an unknown job."""
    row = session.execute(select(Job.status, Job.status_reason).where(Job.id == job_id)).first()
    if row is None:
        raise LookupError(f"no job {job_id}")
    doc = session.scalar(select(JobResult.document).where(JobResult.job_id == job_id))
    if doc is not None:
        return _RESULT.validate_python(doc)
    status, reason = JobStatus(row[0]), row[1]
    if status == JobStatus.FAILED:
        raise NoResult(f"the job failed: {reason}")
    raise NoResult(_WHY.get(status, f"the job is {status}"))
