"""Job and assignment lifecycle: legal transitions only, each job step recorded with time and reason.

The functions change ORM objects inside the caller's session and never commit: the caller decides
the unit of work. Re-applying the state an object is already in is a no-op (returns False), so a
node that reports "completed" twice, or two scheduler ticks racing, change nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from tenacity import RetryCallState, wait_exponential

from drift.orchestrator import metrics
from drift.orchestrator.states import (
    ACTIVE_ASSIGNMENT,
    ASSIGNMENT_TRANSITIONS,
    JOB_TRANSITIONS,
    AssignmentState,
    JobStatus,
)
from drift.orchestrator.storage.models import Assignment, Job, JobTransition

log = logging.getLogger(__name__)


class IllegalTransition(Exception):
    """A job or an assignment was asked to move to a state it cannot reach from where it is."""

    def __init__(self, kind: str, ident: object, current: str, target: str) -> None:
        super().__init__(f"{kind} {ident}: cannot go from {current} to {target}")
        self.kind = kind
        self.current = current
        self.target = target


def transition_job(job: Job, target: JobStatus, reason: str, now: dt.datetime) -> bool:
    """Move ``job`` to ``target``, recording the step; False if it was already there."""
    current = JobStatus(job.status)
    if current == target:
        return False
    if target not in JOB_TRANSITIONS[current]:
        raise IllegalTransition("job", job.id, current, target)
    job.transitions.append(
        JobTransition(
            seq=len(job.transitions),
            from_status=current,
            to_status=target,
            at=now,
            reason=reason,
        )
    )
    job.status = target
    if target == JobStatus.PENDING:
        job.pending_reason = reason
        job.scheduled_at = None
        job.allocated_nodes = []
    elif target == JobStatus.SCHEDULED:
        job.pending_reason = None
        job.scheduled_at = now
    elif target == JobStatus.RUNNING:
        job.started_at = now
    else:  # terminal
        job.finished_at = now
        job.status_reason = reason
        job.pending_reason = None
        metrics.jobs_total.labels(str(target), job.type).inc()
        if job.started_at is not None:
            metrics.job_duration.labels(job.type).observe(
                max(0.0, (now - job.started_at).total_seconds())
            )
    log.info("job %s: %s -> %s (%s)", job.id, current, target, reason)
    return True


def scheduling_rows(
    job_id: uuid.UUID, seq: int, allocated_nodes: list[str], reason: str, now: dt.datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What :func:`transition_job` to ``scheduled`` does to a pending job, as rows for bulk
    writes (the scheduler places a queue of thousands): its step (a ``job_transitions`` row,
    ``seq`` the number of steps it has) and its update (``jobs`` columns, with its id)."""
    if JobStatus.SCHEDULED not in JOB_TRANSITIONS[JobStatus.PENDING]:
        raise IllegalTransition("job", job_id, JobStatus.PENDING, JobStatus.SCHEDULED)
    log.info("job %s: %s -> %s (%s)", job_id, JobStatus.PENDING, JobStatus.SCHEDULED, reason)
    step = {
        "job_id": job_id,
        "seq": seq,
        "from_status": JobStatus.PENDING,
        "to_status": JobStatus.SCHEDULED,
        "at": now,
        "reason": reason,
    }
    update = {
        "id": job_id,
        "status": JobStatus.SCHEDULED,
        "pending_reason": None,
        "scheduled_at": now,
        "allocated_nodes": allocated_nodes,
    }
    return step, update


def record_creation(job: Job, reason: str, now: dt.datetime) -> None:
    """The first step of every job: from nothing to pending."""
    job.status = JobStatus.PENDING
    job.pending_reason = "waiting for the scheduler"
    job.transitions.append(
        JobTransition(seq=0, from_status=None, to_status=JobStatus.PENDING, at=now, reason=reason)
    )


def transition_assignment(
    assignment: Assignment, target: AssignmentState, now: dt.datetime, error: str | None = None
) -> bool:
    """Move an assignment; False if it was already in ``target`` (retries excepted)."""
    current = AssignmentState(assignment.state)
    if current == target and target != AssignmentState.ASSIGNED:
        return False
    if target not in ASSIGNMENT_TRANSITIONS[current]:
        raise IllegalTransition("assignment", assignment.id, current, target)
    assignment.state = target
    assignment.updated_at = now
    if error is not None:
        assignment.last_error = error
    return True


def cancel_job(job: Job, reason: str, now: dt.datetime) -> bool:
    """Cancel a job that has not ended, and every assignment still active."""
    changed = transition_job(job, JobStatus.CANCELLED, reason, now)
    for a in job.assignments:
        if a.state in ACTIVE_ASSIGNMENT:
            transition_assignment(a, AssignmentState.CANCELLED, now, reason)
    return changed


def fail_job(job: Job, reason: str, now: dt.datetime) -> bool:
    changed = transition_job(job, JobStatus.FAILED, reason, now)
    for a in job.assignments:
        if a.state in ACTIVE_ASSIGNMENT:
            transition_assignment(a, AssignmentState.CANCELLED, now, f"job failed: {reason}")
    return changed


def requeue_job(job: Job, reason: str, now: dt.datetime) -> bool:
    """A scheduled job that lost a node before it started goes back to the queue."""
    changed = transition_job(job, JobStatus.PENDING, reason, now)
    for a in job.assignments:
        if a.state in ACTIVE_ASSIGNMENT:
            transition_assignment(a, AssignmentState.CANCELLED, now, f"requeued: {reason}")
    return changed


def retry_delay_s(attempt: int, initial_s: float, max_s: float) -> float:
    """Exponential back-off before retry ``attempt`` (1, 2, ...): initial, 2x initial, ... max."""
    wait = wait_exponential(multiplier=initial_s, min=0, max=max_s, exp_base=2)
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return float(wait(state))
