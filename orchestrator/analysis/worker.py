"""The analysis worker: runs each ``analysing`` job's analysis once, and stores its result.

``drift serve`` runs an :class:`Analyst` in its own asyncio task beside the scheduler (never in
a request handler or a scheduler tick); the analyses themselves run in a pool of worker
processes (``analysis_workers``; 0: a thread), so a TDOA correlation never holds up the API.

With several coordinator replicas exactly one runs a job's analysis: a replica claims the job
with a conditional update of its row (``analysis_owner``, ``analysis_lease_until``) that only one
replica's update can satisfy, on SQLite and PostgreSQL alike, and renews the claim while the
analysis runs. A replica that dies leaves a claim that expires; another replica then takes the
job over (``analysis_max_attempts`` bounds the retries of an analysis that keeps killing its
worker). Storing the result and the job's move to ``completed`` are one transaction, made only
by the claim's holder, so a result is stored once.

Before it runs, an analysis waits (up to ``analysis_wait_s``) until the time-series store holds
every frame the job's nodes reported sending: a node reports "completed" once its frames have
reached the collector, which may still be writing them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import logging
import multiprocessing
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from drift.orchestrator.analysis.base import AnalysisError, AnalysisInput, Delivery
from drift.orchestrator.events import ANALYSIS_DUE
from drift.orchestrator.lifecycle import fail_job, transition_job
from drift.orchestrator.settings import Settings
from drift.orchestrator.states import AssignmentState, JobStatus
from drift.orchestrator.storage.models import Assignment, Job, JobResult, Node

log = logging.getLogger(__name__)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Outcome:
    """What one run of an analysis gave: a result document, or the reason there is none."""

    ok: bool
    kind: str = ""
    document: dict[str, Any] | None = None
    reason: str = ""
    cpu_s: float = 0.0


_STORES: dict[str, Any] = {}


def _store(settings: Settings):
    """The time-series store of a worker process, opened once per process."""
    from drift.orchestrator.timeseries import open_configured_store

    key = settings.model_dump_json()
    if key not in _STORES:
        _STORES[key] = open_configured_store(settings)
    return _STORES[key]


def run_analysis(
    job_type: str, job: AnalysisInput, settings: Settings | None = None, store: Any = None
) -> Outcome:
    """Run a job type's analysis (in a worker process, or a thread with `store` given)."""
    from drift.orchestrator.registry import JOB_TYPES

    t0 = time.process_time()
    try:
        if store is None:
            store = _store(settings)
        result = JOB_TYPES[job_type].analyse(job, store)
        return Outcome(
            True,
            kind=result.kind,
            document=result.model_dump(mode="json"),
            cpu_s=time.process_time() - t0,
        )
    except AnalysisError as exc:
        return Outcome(False, reason=str(exc), cpu_s=time.process_time() - t0)
    except Exception as exc:  # a bug, or data the analysis cannot take: the job says which
        log.exception("job %s: the %s analysis failed", job.job_id, job_type)
        return Outcome(
            False,
            reason=f"the analysis failed: {type(exc).__name__}: {exc}",
            cpu_s=time.process_time() - t0,
        )


def _warm() -> None:
    """Worker process start-up: import what analyses use, so that the first job's time is
    its own (NumPy, SciPy and GNU Radio's DF module take seconds to import)."""
    import importlib

    for name in ("numpy", "scipy.signal", "drift.orchestrator.analysis.location"):
        importlib.import_module(name)
    try:
        importlib.import_module("gnuradio.drift.df")
    except ImportError:  # a coordinator without GNU Radio: the location analysis says so
        pass


@dataclass
class Claimed:
    job_id: uuid.UUID
    job_type: str
    job: AnalysisInput


class Analyst:
    """Claims ``analysing`` jobs and runs their analyses (see the module's docstring)."""

    #: how often it looks for jobs it was not woken for (another replica's, expired claims)
    INTERVAL_S = 2.0

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        store: Any = None,
        replica: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.replica = replica or uuid.uuid4().hex
        self._store = store
        self._own_store = store is None
        self._pool: concurrent.futures.Executor | None = None

    @property
    def store(self):
        if self._store is None:
            from drift.orchestrator.timeseries import open_configured_store

            self._store = open_configured_store(self.settings)
        return self._store

    # -- claims ------------------------------------------------------------------------------

    def claim(self, now: dt.datetime | None = None) -> Claimed | None:
        """Take one ``analysing`` job whose analysis nobody holds and whose frames are all
        stored (or waited for long enough), or None. The store is asked outside the
        database transaction (it may be a slow InfluxDB: the write lock is not held meanwhile)."""
        now = now or utcnow()
        while (taken := self._take(now)) is not None:
            claimed, sent, waited = taken
            missing = self._frames_missing(claimed.job_id, sent)
            if missing and waited < self.settings.analysis_wait_s:
                self._put_back(claimed.job_id, now)  # look again in a second
                continue
            if missing:
                why = (
                    f"{missing} frame(s) the nodes sent were not stored after {waited:.0f} s:"
                    " analysed without them"
                )
                log.warning("job %s: %s", claimed.job_id, why)
                claimed.job = dataclasses.replace(
                    claimed.job, reason=f"{claimed.job.reason}; {why}"
                )
            return claimed
        return None

    def _take(self, now: dt.datetime) -> tuple[Claimed, int, float] | None:
        """Claim one job in one transaction: (what to analyse, frames its nodes reported
        sending, seconds since it became due), or None when no job is free."""
        lease = dt.timedelta(seconds=self.settings.analysis_lease_s)
        free = or_(Job.analysis_lease_until.is_(None), Job.analysis_lease_until < now)
        with self.sessions.begin() as session:
            candidates = session.scalars(
                select(Job.id)
                .where(Job.status == JobStatus.ANALYSING, free)
                .order_by(Job.created_at)
                .limit(16)
            ).all()
            for job_id in candidates:
                taken = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == JobStatus.ANALYSING, free)
                    .values(
                        analysis_owner=self.replica,
                        analysis_lease_until=now + lease,
                        analysis_attempts=Job.analysis_attempts + 1,
                    )
                    .execution_options(synchronize_session=False)
                )
                if taken.rowcount != 1:
                    continue  # another replica's
                job = session.scalars(
                    select(Job)
                    .where(Job.id == job_id)
                    .execution_options(populate_existing=True)
                    .options(
                        selectinload(Job.assignments)
                        .selectinload(Assignment.node)
                        .selectinload(Node.devices),
                        selectinload(Job.transitions),
                    )
                ).one()
                if job.analysis_attempts > self.settings.analysis_max_attempts:
                    fail_job(
                        job,
                        f"the analysis did not finish in {job.analysis_attempts - 1} "
                        "attempts (its worker was lost each time)",
                        now,
                    )
                    continue
                sent = sum(
                    int(v)
                    for a in job.assignments
                    if a.state == AssignmentState.COMPLETED and a.frames_sent
                    for v in a.frames_sent.values()
                )
                due = job.transitions[-1]
                return (
                    Claimed(job.id, job.type, analysis_input(job, due.reason)),
                    sent,
                    (now - due.at).total_seconds(),
                )
        return None

    def _put_back(self, job_id: uuid.UUID, now: dt.datetime) -> None:
        """Give a claim back unspent: the job is looked at again in a second."""
        with self.sessions.begin() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.analysis_owner == self.replica)
                .values(
                    analysis_owner=None,
                    analysis_lease_until=now + dt.timedelta(seconds=1),
                    analysis_attempts=Job.analysis_attempts - 1,
                )
                .execution_options(synchronize_session=False)
            )

    def _frames_missing(self, job_id: uuid.UUID, sent: int) -> int:
        if not sent:
            return 0
        try:
            return max(0, sent - self.store.count(str(job_id)))
        except Exception as exc:  # the store is down: the analysis would fail; wait
            log.warning("job %s: cannot count its stored frames (%s)", job_id, exc)
            return sent

    def renew(self, job_ids: list[uuid.UUID], now: dt.datetime | None = None) -> None:
        if not job_ids:
            return
        now = now or utcnow()
        with self.sessions.begin() as session:
            session.execute(
                update(Job)
                .where(Job.id.in_(job_ids), Job.analysis_owner == self.replica)
                .values(
                    analysis_lease_until=now + dt.timedelta(seconds=self.settings.analysis_lease_s)
                )
                .execution_options(synchronize_session=False)
            )

    def finish(self, claimed: Claimed, outcome: Outcome, now: dt.datetime | None = None) -> bool:
        """Store the result and complete the job, or fail it with the reason; nothing if the
        claim is no longer ours (the job was cancelled, or taken over). True if stored."""
        now = now or utcnow()
        with self.sessions.begin() as session:
            job = session.scalars(
                select(Job)
                .where(Job.id == claimed.job_id)
                .with_for_update()
                .execution_options(populate_existing=True)
                .options(selectinload(Job.assignments), selectinload(Job.transitions))
            ).one_or_none()
            if (
                job is None
                or job.status != JobStatus.ANALYSING
                or job.analysis_owner != self.replica
            ):
                log.info(
                    "job %s: analysis result dropped (the job is %s now)",
                    claimed.job_id,
                    None if job is None else job.status,
                )
                return False
            job.analysis_owner = None
            job.analysis_lease_until = None
            if outcome.ok:
                doc = dict(
                    outcome.document or {},
                    created_at=now.isoformat(),
                    analysis_cpu_s=round(outcome.cpu_s, 6),
                )
                session.merge(
                    JobResult(
                        job_id=job.id,
                        kind=outcome.kind,
                        created_at=now,
                        cpu_s=outcome.cpu_s,
                        document=doc,
                    )
                )
                transition_job(
                    job,
                    JobStatus.COMPLETED,
                    f"{outcome.kind} result stored ({outcome.cpu_s:.2f} s of analysis)",
                    now,
                )
            else:
                fail_job(job, outcome.reason, now)
        return outcome.ok

    # -- running -----------------------------------------------------------------------------

    def _make_pool(self) -> concurrent.futures.Executor:
        if self.settings.analysis_workers == 0:
            return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="drift-analysis")
        # spawn: the coordinator's process has threads (collector, database), which a fork
        # would copy in whatever state they are
        return concurrent.futures.ProcessPoolExecutor(
            self.settings.analysis_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm,
        )

    def _submit(self, claimed: Claimed) -> concurrent.futures.Future:
        if isinstance(self._pool, concurrent.futures.ThreadPoolExecutor):
            return self._pool.submit(run_analysis, claimed.job_type, claimed.job, store=self.store)
        return self._pool.submit(run_analysis, claimed.job_type, claimed.job, self.settings)

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and analyse until ``stop`` is set; woken by :data:`ANALYSIS_DUE`."""
        due = ANALYSIS_DUE.subscribe()
        self._pool = self._make_pool()
        slots = max(1, self.settings.analysis_workers)
        running: dict[uuid.UUID, asyncio.Task] = {}
        renew_every = self.settings.analysis_lease_s / 3
        renewed = time.monotonic()
        log.info(
            "analysis worker running (%s)",
            "in a thread"
            if self.settings.analysis_workers == 0
            else f"{self.settings.analysis_workers} process(es)",
        )
        try:
            while not stop.is_set():
                due.clear()
                while len(running) < slots and not stop.is_set():
                    try:
                        claimed = await asyncio.to_thread(self.claim)
                    except Exception:
                        log.exception("claiming a job to analyse failed")
                        break
                    if claimed is None:
                        break
                    running[claimed.job_id] = asyncio.create_task(self._analyse(claimed))
                    running[claimed.job_id].add_done_callback(
                        lambda t, k=claimed.job_id: running.pop(k, None)
                    )
                if running and time.monotonic() - renewed > renew_every:
                    renewed = time.monotonic()
                    try:
                        await asyncio.to_thread(self.renew, list(running))
                    except Exception:
                        log.exception("renewing analysis claims failed")
                waits = {
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(due.wait()),
                    *running.values(),
                }
                await asyncio.wait(
                    waits, timeout=self.INTERVAL_S, return_when=asyncio.FIRST_COMPLETED
                )
                for w in waits:
                    if w not in running.values():
                        w.cancel()
        finally:
            ANALYSIS_DUE.unsubscribe(due)
            for task in running.values():
                task.cancel()
            self._pool.shutdown(wait=False, cancel_futures=True)
            if self._own_store and self._store is not None:
                self._store.close()

    async def _analyse(self, claimed: Claimed) -> None:
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        try:
            outcome = await asyncio.wrap_future(self._submit(claimed), loop=loop)
        except concurrent.futures.process.BrokenProcessPool:
            # the worker died (killed, out of memory): the claim expires and the job is tried
            # again, up to analysis_max_attempts
            log.error("job %s: the analysis worker died; a new pool is started", claimed.job_id)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._make_pool()
            return
        try:
            await asyncio.to_thread(self.finish, claimed, outcome)
        except Exception:
            log.exception("job %s: storing the analysis outcome failed", claimed.job_id)
            return
        log.info(
            "job %s: analysis %s in %.2f s (%.2f s CPU)%s",
            claimed.job_id,
            "done" if outcome.ok else "failed",
            time.monotonic() - t0,
            outcome.cpu_s,
            "" if outcome.ok else f": {outcome.reason}",
        )


def analysis_input(job: Job, reason: str = "") -> AnalysisInput:
    """What an analysis is given of a job: its parameters and each node's part (the latest
    assignment of each node)."""
    latest: dict[uuid.UUID, Assignment] = {}
    for a in job.assignments:  # in creation order: later attempts win
        latest[a.node_id] = a
    deliveries = []
    for a in latest.values():
        n = a.node
        array, array_cal = _array_of(n)
        deliveries.append(
            Delivery(
                node_id=str(n.id),
                name=n.name,
                lat_deg=n.lat_deg,
                lon_deg=n.lon_deg,
                alt_m=n.alt_m,
                sync_source=n.sync_source,
                sync_uncertainty_s=n.sync_uncertainty_s,
                state=str(a.state),
                role=a.role,
                error=a.last_error,
                frames_sent={k: int(v) for k, v in (a.frames_sent or {}).items()},
                antenna_gain_dbi=float((n.capabilities or {}).get("antenna_gain_dbi") or 0.0),
                array=array,
                array_calibration=array_cal,
            )
        )
    return AnalysisInput(
        job_id=str(job.id),
        job_type=job.type,
        parameters=dict(job.parameters),
        deliveries=tuple(deliveries),
        capture_start=job.capture_start,
        reason=reason,
    )


def _array_of(node) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A node's array device: its layout and its channel calibration, if it has them."""
    for device in node.devices:
        array = (device.capabilities or {}).get("array")
        if array:
            return array, (device.calibration or {}).get("array")
    return None, None
