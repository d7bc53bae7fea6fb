"""The scheduler: places pending jobs, notices silent nodes, moves or fails their work.

:meth:`Scheduler.tick` does one round and takes ``now``, so tests drive it without sleeping;
:meth:`Scheduler.run` repeats it in its own asyncio task (``drift serve`` starts it beside the API
server, never inside a request). On PostgreSQL a transaction-level advisory lock lets only one
coordinator replica tick at a time; the others skip the round.

Node reports (:func:`report_assignment`) are handled where they arrive: they only move states and
book retries with exponential back-off; placing work is left to the tick.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import false, func, insert, or_, select, text, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from drift.orchestrator import metrics
from drift.orchestrator.allocator import NodeTable, NodeView, Unplaceable
from drift.orchestrator.dispatch import DeliveryLedger, LocalLedger
from drift.orchestrator.events import ANALYSIS_DUE, ASSIGNMENTS_CHANGED, JOBS_SUBMITTED
from drift.orchestrator.lifecycle import (
    fail_job,
    requeue_job,
    retry_delay_s,
    scheduling_rows,
    transition_assignment,
    transition_job,
)
from drift.orchestrator.nodes import NodeViews
from drift.orchestrator.registry import job_type
from drift.orchestrator.settings import Settings
from drift.orchestrator.states import (
    ACTIVE_ASSIGNMENT,
    AssignmentState,
    JobStatus,
    NodeStatus,
)
from drift.orchestrator.storage.models import Assignment, Job, JobTransition, Node

log = logging.getLogger(__name__)

#: Key of the PostgreSQL advisory lock held while a tick runs ("DRIFT" in ASCII).
TICK_LOCK_KEY = 0x4452494654


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class TickReport:
    scheduled: list[uuid.UUID] = field(default_factory=list)
    pending: dict[uuid.UUID, str] = field(default_factory=dict)
    nodes_offline: list[uuid.UUID] = field(default_factory=list)
    reassigned: list[uuid.UUID] = field(default_factory=list)  # new assignment ids
    failed: list[uuid.UUID] = field(default_factory=list)
    requeued: list[uuid.UUID] = field(default_factory=list)
    #: jobs whose nodes are done: their analysis is due
    analysing: list[uuid.UUID] = field(default_factory=list)
    skipped: bool = False  # another replica held the tick lock
    #: nodes whose deliverable assignments may differ after this tick
    touched: set[uuid.UUID] = field(default_factory=set)


class Scheduler:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        ledger: DeliveryLedger | None = None,
        started_at: dt.datetime | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.ledger = ledger or LocalLedger()
        self.views = NodeViews()
        #: when this coordinator started: no node is counted silent for the time before it
        #: (the coordinator's own downtime is not the nodes' silence), so each node gets a
        #: whole heartbeat timeout from the start to be heard from
        self.started_at = started_at or utcnow()

    #: how long a tick's Redis lease lasts if its replica dies before giving it back (the
    #: others skip their ticks until then; it no longer grows with the interval, which held
    #: the others off for ten intervals). A tick that runs longer is still alone: the
    #: database's tick lock holds to its end.
    TICK_LEASE_S = 30.0

    def tick(self, now: dt.datetime | None = None) -> TickReport:
        """One round: silent nodes go offline (their work moves), then pending jobs are placed."""
        now = now or utcnow()
        started = time.monotonic()  # ``now`` on the monotonic clock
        report = TickReport()
        # replicas sharing Redis take turns; the lease outlives a slow tick by a margin
        if not self.ledger.take_tick_lease(self.TICK_LEASE_S):
            report.skipped = True
            return report
        try:
            with self.sessions.begin() as session:
                if not _take_tick_lock(session):
                    report.skipped = True
                    return report
                # the nodes' snapshot is the costly read: only when something needs it
                silent = silent_nodes(session, now, self.started_at)
                lost = lost_devices(session)
                views = self.views.load(session) if silent or lost else None
                expire_nodes(session, silent, views, now, report, self.started_at)
                move_off_lost_devices(session, lost, views, now, report)
                complete_finished(session, now, report)
                time_out_overdue(session, now, self.settings.job_grace_s, report)
                pending = _pending_jobs(session)
                if pending and views is None:
                    views = self.views.load(session)
                place_pending(session, pending, views, now, report, started, self.capture_lead_s)
        finally:
            self.ledger.release_tick_lease()
        if report.touched:
            ASSIGNMENTS_CHANGED.wake(report.touched)
        if report.analysing:
            ANALYSIS_DUE.wake()
        return report

    def capture_lead_s(self, node_ids: list[str]) -> float:
        """How far ahead of its placement a timed job's common start goes: the longest recent
        dispatch latency among its nodes (measured at their first deliveries; a default for
        nodes not measured yet) plus the time a node needs to have its flowgraph streaming."""
        measured = self.ledger.dispatch_latency_s(node_ids)
        latency = max(
            (measured.get(n, self.settings.dispatch_latency_default_s) for n in node_ids),
            default=self.settings.dispatch_latency_default_s,
        )
        return latency + self.settings.capture_lead_s

    #: a tick woken by a submission waits this long after the previous one, or as long as
    #: that one took if longer: a burst of submissions is placed a batch per tick, and ticks
    #: take at most about half of this process's time
    MIN_GAP_S = 0.25

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every ``scheduler_interval_s``, and soon after this process takes a new job,
        until ``stop`` is set; a failed tick is logged."""
        log.info("scheduler running every %g s", self.settings.scheduler_interval_s)
        submitted = JOBS_SUBMITTED.subscribe()
        loop = asyncio.get_running_loop()
        for_submission = False
        try:
            while not stop.is_set():
                submitted.clear()
                t0 = loop.time()
                try:
                    report = await asyncio.to_thread(self.tick)
                except Exception:
                    log.exception("scheduler tick failed")
                    report = None
                took = loop.time() - t0
                if for_submission and report is not None and report.skipped:
                    # another replica was ticking: try again after the gap, not an interval on
                    submitted.set()
                stopping = asyncio.ensure_future(stop.wait())
                woken = asyncio.ensure_future(submitted.wait())
                await asyncio.wait(
                    {stopping, woken},
                    timeout=self.settings.scheduler_interval_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for f in (stopping, woken):
                    f.cancel()
                for_submission = submitted.is_set()
                gap = t0 + took + max(self.MIN_GAP_S, took) - loop.time()
                if not stop.is_set() and gap > 0:
                    await asyncio.sleep(gap)
        finally:
            JOBS_SUBMITTED.unsubscribe(submitted)


def _take_tick_lock(session: Session) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(
        session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": TICK_LOCK_KEY}).scalar()
    )


# --- placing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingJob:
    """What placing a pending job needs of it (read as plain rows: no ORM objects to build,
    track and flush for a queue of thousands)."""

    id: uuid.UUID
    type: str
    parameters: dict
    priority: int
    pending_reason: str | None
    steps: int  # transitions recorded so far: the next one's seq


def _pending_jobs(session: Session) -> list[PendingJob]:
    """Pending jobs, highest priority first, then oldest."""
    steps = (
        select(func.count(JobTransition.id))
        .where(JobTransition.job_id == Job.id)
        .correlate(Job)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Job.id, Job.type, Job.parameters, Job.priority, Job.pending_reason, steps)
        .where(Job.status == JobStatus.PENDING)
        .order_by(Job.priority.desc(), Job.created_at, Job.id)
    )
    return [PendingJob(*row) for row in rows]


def place_pending(
    session: Session,
    jobs: list[PendingJob],
    views: dict[str, NodeView] | None,
    now: dt.datetime,
    report: TickReport,
    started: float,
    capture_lead_s: Callable[[list[str]], float],
) -> None:
    """Place pending jobs in their order; the others keep a stated reason. Each placement is
    stamped with the time it was decided (``now`` plus the time the tick has taken so far:
    `started` is ``now`` on the monotonic clock), and all are written at the end in a few
    statements. A timed job type's job gets its common capture start, `capture_lead_s(its
    nodes)` after the decision (see :func:`capture_start_after`)."""
    if not jobs:
        return
    table = NodeTable(views.values())  # one snapshot; loads follow the jobs placed from it
    assignments: list[dict] = []
    steps: list[dict] = []
    scheduled: list[dict] = []
    reasons: list[dict] = []
    for job in jobs:
        jt = job_type(job.type)
        spec = jt.parse(job.parameters, job.priority)
        try:
            allocation = jt.strategy.allocate(spec, table)
        except Unplaceable as e:
            if job.pending_reason != e.reason:
                reasons.append({"id": job.id, "pending_reason": e.reason})
                metrics.allocation_failures.labels(job.type).inc()
                log.info("job %s stays pending: %s", job.id, e.reason)
            report.pending[job.id] = e.reason
            continue
        at = now + dt.timedelta(seconds=time.monotonic() - started)
        for node_id, role in allocation.nodes:
            assignments.append(
                {
                    "id": uuid.uuid4(),
                    "job_id": job.id,
                    "node_id": uuid.UUID(node_id),
                    "role": role,
                    "state": AssignmentState.ASSIGNED,
                    "attempts": 0,
                    "created_at": at,
                    "updated_at": at,
                }
            )
            table.add_load(node_id)
            report.touched.add(uuid.UUID(node_id))
        reason = f"allocated {len(allocation.nodes)} node(s)"
        if allocation.note:
            reason += f": {allocation.note}"
        step, update_ = scheduling_rows(job.id, job.steps, allocation.node_ids, reason, at)
        if jt.timed:
            update_["capture_start"] = capture_start_after(at, capture_lead_s(allocation.node_ids))
            step["reason"] += f"; capture starts at {update_['capture_start'].isoformat()}"
        steps.append(step)
        scheduled.append(update_)
        report.scheduled.append(job.id)
    if assignments:
        session.execute(insert(Assignment), assignments)
        session.execute(insert(JobTransition), steps)
    for rows in (scheduled, reasons):
        if rows:
            session.execute(update(Job), rows)


#: timed starts fall on multiples of this: 2^-6 s is a whole number of microseconds (an ISO
#: time carries it exactly) and, as a float of UNIX seconds, exact to the last bit (a float
#: at today's UNIX times resolves 2^-22 s), so every node and block reads the same instant
START_GRID_US = 15_625


def capture_start_after(at: dt.datetime, lead_s: float) -> dt.datetime:
    """`at` plus `lead_s`, rounded up to a multiple of :data:`START_GRID_US`."""
    t = at + dt.timedelta(seconds=lead_s)
    us = (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    grid = -(-us // START_GRID_US) * START_GRID_US
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=grid)


# --- silent nodes ---------------------------------------------------------------------------


def _silent_s(
    now: dt.datetime, last: dt.datetime | None, created: dt.datetime, since: dt.datetime | None
) -> float:
    """How long a node has been silent as far as this coordinator can tell: since it was
    last heard from (or created), but not before `since` (when the coordinator started)."""
    heard = last or created
    if since is not None and since > heard:
        heard = since
    return (now - heard).total_seconds()


def silent_nodes(
    session: Session, now: dt.datetime, since: dt.datetime | None = None
) -> list[uuid.UUID]:
    """Online nodes not heard from within their heartbeat timeout, counted from their last
    heartbeat but not from before `since` (the coordinator's start: its downtime is not
    theirs), and revoked nodes (at once)."""
    online = Node.status == NodeStatus.ONLINE
    shortest = session.scalar(select(func.min(Node.heartbeat_timeout_s)).where(online))
    if shortest is None:
        return []
    cutoff = now - dt.timedelta(seconds=shortest)
    # only nodes silent for at least the shortest timeout can be past their own; none can
    # be when the coordinator started more recently than that
    silent = Node.last_seen.is_(None) | (Node.last_seen < cutoff)
    if since is not None and since >= cutoff:
        silent = false()
    rows = session.execute(
        select(
            Node.id, Node.last_seen, Node.created_at, Node.heartbeat_timeout_s, Node.revoked_at
        ).where(online, or_(silent, Node.revoked_at.is_not(None)))
    )
    return [
        node_id
        for node_id, last, created, timeout_s, revoked in rows
        if revoked is not None or _silent_s(now, last, created, since) > timeout_s
    ]


def expire_nodes(
    session: Session,
    silent: list[uuid.UUID],
    views: dict[str, NodeView] | None,
    now: dt.datetime,
    report: TickReport,
    since: dt.datetime | None = None,
) -> None:
    """Silent nodes go offline; their active work moves or fails."""
    for node_id in silent:
        node = session.get(Node, node_id)
        if node.status != NodeStatus.ONLINE or (
            node.revoked_at is None
            and _silent_s(now, node.last_seen, node.created_at, since) <= node.heartbeat_timeout_s
        ):
            continue  # heard from since it was found silent
        node.status = NodeStatus.OFFLINE
        views[str(node.id)] = dataclasses.replace(views[str(node.id)], online=False)
        report.nodes_offline.append(node.id)
        last = node.last_seen or node.created_at
        if node.revoked_at is not None:
            reason = f"node {node.name} ({node.id}) revoked at {node.revoked_at.isoformat()}"
        else:
            reason = (
                f"node {node.name} ({node.id}) silent since {last.isoformat()} "
                f"(timeout {node.heartbeat_timeout_s:g} s)"
            )
        log.warning("%s: offline", reason)
        move_work_off(session, node.id, views, now, reason, report)


def lost_devices(session: Session) -> list[uuid.UUID]:
    """Online nodes with active work whose device is lost (their health says so)."""
    busy = select(Assignment.node_id).where(Assignment.state.in_(list(ACTIVE_ASSIGNMENT)))
    rows = session.execute(
        select(Node.id, Node.health).where(Node.status == NodeStatus.ONLINE, Node.id.in_(busy))
    )
    return [node_id for node_id, health in rows if (health or {}).get("device_ok") is False]


def move_off_lost_devices(
    session: Session,
    lost: list[uuid.UUID],
    views: dict[str, NodeView] | None,
    now: dt.datetime,
    report: TickReport,
) -> None:
    """The work of nodes whose device is lost moves to other nodes; a job that nobody can
    take yet waits for one (until its deadline) rather than failing at once."""
    for node_id in lost:
        node = session.get(Node, node_id)
        why = (node.health or {}).get("last_error") or "device lost"
        reason = f"node {node.name} ({node.id}): {why}"
        move_work_off(session, node_id, views, now, reason, report, wait_for_replacement=True)


def move_work_off(
    session: Session,
    node_id: uuid.UUID,
    views: dict[str, NodeView],
    now: dt.datetime,
    reason: str,
    report: TickReport,
    wait_for_replacement: bool = False,
) -> None:
    """Give each active assignment of a lost node to another capable node, or end its job
    (`wait_for_replacement`: an untimed job whose role nobody can take keeps its assignment
    until a later call finds someone)."""
    lost = session.scalars(
        select(Assignment)
        .where(Assignment.node_id == node_id, Assignment.state.in_(list(ACTIVE_ASSIGNMENT)))
        .order_by(Assignment.created_at)
    ).all()
    for assignment in lost:
        job = assignment.job
        if job.status not in (JobStatus.SCHEDULED, JobStatus.RUNNING):
            transition_assignment(assignment, AssignmentState.CANCELLED, now, reason)
            continue
        jt = job_type(job.type)
        spec = jt.parse(job.parameters, job.priority)
        replacement = None
        if not jt.timed or _can_still_join(job, now):
            keep = [
                (views[str(a.node_id)], a.role)
                for a in job.assignments
                if a.state in ACTIVE_ASSIGNMENT and a.id != assignment.id
            ]
            others = [v for k, v in views.items() if k != str(node_id)]
            replacement = jt.strategy.replace(spec, assignment.role, keep, others)
        if replacement is None and jt.timed:
            # a capture at one instant: nobody takes the node's place once the start is near
            # (or nobody can); the job goes on without it if its quorum still can be met
            transition_assignment(assignment, AssignmentState.FAILED, now, reason)
            report.touched.update(a.node_id for a in job.assignments)
            if settle_with_quorum(job, now, f"{reason}; its capture is lost"):
                (report.failed if job.status == JobStatus.FAILED else report.analysing).append(
                    job.id
                )
            continue
        if replacement is None and wait_for_replacement:
            continue
        if replacement is None:
            transition_assignment(assignment, AssignmentState.FAILED, now, reason)
            why = f"{reason}; no capable node to take over its {assignment.role} role"
            report.touched.update(a.node_id for a in job.assignments)
            if job.status == JobStatus.SCHEDULED:
                requeue_job(job, why, now)
                report.requeued.append(job.id)
            else:
                fail_job(job, why, now)
                report.failed.append(job.id)
            continue
        transition_assignment(
            assignment,
            AssignmentState.REASSIGNED,
            now,
            f"{reason}; moved to node {replacement.id}",
        )
        new = Assignment(
            node_id=uuid.UUID(replacement.id),
            role=assignment.role,
            replaces_id=assignment.id,
            created_at=now,
            updated_at=now,
        )
        job.assignments.append(new)
        session.flush()
        job.allocated_nodes = [
            str(a.node_id) for a in job.assignments if a.state in ACTIVE_ASSIGNMENT
        ]
        views[replacement.id] = dataclasses.replace(replacement, load=replacement.load + 1)
        report.reassigned.append(new.id)
        report.touched.update({new.node_id, node_id})
        log.info(
            "job %s: %s role moved from %s to %s", job.id, assignment.role, node_id, replacement.id
        )


#: a node lost before a timed job's start is replaced only when the start is at least this
#: far ahead (the replacement must get its assignment and launch its flowgraph)
REPLACEMENT_LEAD_S = 3.0


def _can_still_join(job: Job, now: dt.datetime) -> bool:
    return (
        job.status == JobStatus.SCHEDULED
        and job.capture_start is not None
        and (job.capture_start - now).total_seconds() >= REPLACEMENT_LEAD_S
    )


def _delivered_nodes(job: Job) -> set[uuid.UUID]:
    return {a.node_id for a in job.assignments if a.state == AssignmentState.COMPLETED}


def settle_with_quorum(job: Job, now: dt.datetime, why: str) -> bool:
    """A job with a quorum whose nodes may all have ended: to analysis when enough of them
    delivered, failed when too few can; nothing while some still run and the quorum can be
    met. True if the job moved."""
    jt = job_type(job.type)
    quorum = jt.quorum(jt.parse(job.parameters, job.priority)) if jt.quorum else None
    nodes = {a.node_id for a in job.assignments if a.state != AssignmentState.REASSIGNED}
    done = _delivered_nodes(job)
    active = {a.node_id for a in job.assignments if a.state in ACTIVE_ASSIGNMENT}
    if quorum is None or job.status not in (JobStatus.SCHEDULED, JobStatus.RUNNING):
        return False
    if len(done) + len(active) < quorum:
        return fail_job(
            job,
            f"{why}; {len(done) + len(active)} of {len(nodes)} nodes can "
            f"still deliver, the job needs {quorum}",
            now,
        )
    if active:
        return False
    if job.status == JobStatus.SCHEDULED:
        transition_job(job, JobStatus.RUNNING, why, now)
    return transition_job(
        job, JobStatus.ANALYSING, f"{len(done)} of {len(nodes)} nodes delivered; {why}", now
    )


def end_capture(job: Job, now: dt.datetime) -> bool:
    """A running job whose assignments have all ended goes to its analysis: every one
    completed, or (job types with a quorum) enough of them. True if it moved."""
    if job_type(job.type).quorum is not None:
        return settle_with_quorum(job, now, "capture over")
    if job.status == JobStatus.RUNNING and _all_done(job):
        return transition_job(job, JobStatus.ANALYSING, "all assignments completed", now)
    return False


def _running_jobs(session: Session) -> list[Job]:
    return list(
        session.scalars(
            select(Job)
            .where(Job.status == JobStatus.RUNNING)
            .options(selectinload(Job.assignments), selectinload(Job.transitions))
        ).all()
    )


def complete_finished(session: Session, now: dt.datetime, report: TickReport) -> None:
    """Running jobs whose assignments have all ended well go to their analysis (a safety
    net for reports that raced each other)."""
    for job in _running_jobs(session):
        if end_capture(job, now):
            (report.failed if job.status == JobStatus.FAILED else report.analysing).append(job.id)
            report.touched.update(a.node_id for a in job.assignments)


def time_out_overdue(
    session: Session, now: dt.datetime, grace_s: float, report: TickReport
) -> None:
    """Running jobs past their ``duration_s`` plus `grace_s` are ended: analysed when some
    node delivered (enough of them, for job types with a quorum), failed otherwise; their
    assignments still active are cancelled (the nodes then stop their flowgraphs)."""
    for job in _running_jobs(session):
        duration = job.parameters.get("duration_s")
        if job.started_at is None or not isinstance(duration, (int, float)):
            continue
        deadline = job.started_at + dt.timedelta(seconds=float(duration) + grace_s)
        if now <= deadline:
            continue
        done = sum(a.state == AssignmentState.COMPLETED for a in job.assignments)
        late = [a for a in job.assignments if a.state in ACTIVE_ASSIGNMENT]
        why = (
            f"timed out: still running {grace_s:g} s after its duration_s "
            f"({duration:g} s); {done} of {done + len(late)} assignment(s) completed"
        )
        for a in late:
            transition_assignment(a, AssignmentState.CANCELLED, now, why)
            report.touched.add(a.node_id)
        if job_type(job.type).quorum is not None:
            settle_with_quorum(job, now, why)
            (report.failed if job.status == JobStatus.FAILED else report.analysing).append(job.id)
        elif done:
            transition_job(job, JobStatus.ANALYSING, why, now)
            report.analysing.append(job.id)
        else:
            transition_job(job, JobStatus.FAILED, why, now)
            report.failed.append(job.id)
        log.warning("job %s: %s", job.id, why)


def _all_done(job: Job) -> bool:
    states = [a.state for a in job.assignments]
    return (
        bool(states)
        and not any(s in ACTIVE_ASSIGNMENT for s in states)
        and AssignmentState.COMPLETED in states
        and AssignmentState.FAILED not in states
    )


# --- reports from nodes ---------------------------------------------------------------------

ReportedState = Literal["running", "completed", "failed"]


def report_assignment(
    session: Session,
    assignment: Assignment,
    state: ReportedState,
    now: dt.datetime,
    settings: Settings,
    error: str | None = None,
    frames: dict[str, int] | None = None,
    device_lost: bool = False,
) -> bool:
    """Apply what a node says about one of its assignments; False if nothing changed.
    `frames`: how many frames of each type it sent for it (with "completed"). A failure
    with `device_lost`: the node's device is gone, so its health says so at once and the
    assignment stays active until the next tick moves it to another node
    (:func:`move_off_lost_devices`); it is not retried on this node.

    Raises :class:`~drift.orchestrator.lifecycle.IllegalTransition` when the report does not fit
    (a cancelled assignment cannot start running, for instance).
    """
    job = _lock_job(session, assignment.job_id)
    if state == "running":
        changed = transition_assignment(assignment, AssignmentState.RUNNING, now)
        if job.status == JobStatus.SCHEDULED:
            transition_job(job, JobStatus.RUNNING, f"node {assignment.node_id} started", now)
        return changed
    if state == "completed":
        changed = transition_assignment(assignment, AssignmentState.COMPLETED, now)
        if frames is not None:
            assignment.frames_sent = frames
        if job.status == JobStatus.SCHEDULED:
            transition_job(job, JobStatus.RUNNING, f"node {assignment.node_id} reported", now)
        end_capture(job, now)
        return changed
    if device_lost and assignment.state in ACTIVE_ASSIGNMENT:
        node = session.get(Node, assignment.node_id)
        why = error or "device lost"
        node.health = {**(node.health or {}), "device_ok": False, "last_error": why[-500:]}
        assignment.last_error = why
        assignment.updated_at = now
        return True
    # failed: retry after a back-off, a bounded number of times
    if assignment.state not in ACTIVE_ASSIGNMENT:
        # a repeated failure report for an assignment that already ended changes nothing
        if assignment.state == AssignmentState.FAILED:
            return False
        transition_assignment(assignment, AssignmentState.FAILED, now)  # raises
    assignment.attempts += 1
    message = error or "no error given"
    jt = job_type(job.type)
    if jt.timed:
        # a timed capture cannot be tried again later: the instant has passed
        transition_assignment(
            assignment,
            AssignmentState.FAILED,
            now,
            f"attempt {assignment.attempts} failed: {message}",
        )
        why = f"node {assignment.node_id} failed: {message}"
        if jt.quorum is not None:
            settle_with_quorum(job, now, why)
        else:
            fail_job(job, why, now)
        return True
    if assignment.attempts < settings.assignment_max_attempts:
        delay = retry_delay_s(
            assignment.attempts, settings.retry_backoff_initial_s, settings.retry_backoff_max_s
        )
        transition_assignment(
            assignment,
            AssignmentState.ASSIGNED,
            now,
            f"attempt {assignment.attempts} failed: {message}",
        )
        assignment.not_before = now + dt.timedelta(seconds=delay)
        log.info(
            "assignment %s failed (attempt %d), retry in %g s: %s",
            assignment.id,
            assignment.attempts,
            delay,
            message,
        )
        return True
    transition_assignment(
        assignment,
        AssignmentState.FAILED,
        now,
        f"attempt {assignment.attempts} failed: {message}",
    )
    fail_job(
        job,
        f"node {assignment.node_id} failed {assignment.attempts} time(s); last error: {message}",
        now,
    )
    return True


def _lock_job(session: Session, job_id: uuid.UUID) -> Job:
    """The job row, locked until commit on PostgreSQL (SQLite transactions are serialised)."""
    job = session.scalars(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return job
