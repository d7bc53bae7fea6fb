"""The analysis worker on a real database (SQLite and PostgreSQL): one replica runs a job's
analysis, a lost replica's job is taken over, failures end the job with their reason, and an
analysis waits for the frames its nodes reported sending."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import numpy as np
import pytest
from gnuradio.drift import wire

from drift.orchestrator.analysis import location
from drift.orchestrator.analysis.worker import Analyst, Outcome, run_analysis
from drift.orchestrator.spectrum_store import SpectrumStore
from drift.orchestrator.states import AssignmentState, JobStatus
from drift.orchestrator.storage import Assignment, Job, JobResult, JobTransition, Node

from .conftest import make_settings

T0 = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
DF = {
    "center_freq_hz": 433.92e6,
    "bandwidth_hz": 1e6,
    "method": "tdoa",
    "duration_s": 0.1,
    "node_count": 3,
    "area": {"lat_deg": 48.15, "lon_deg": 11.57, "radius_m": 1000.0},
    "max_range_m": 50000.0,
    "max_sync_uncertainty_s": 1e-6,
    "reference": None,
}


@pytest.fixture
def store(tmp_path):
    s = SpectrumStore(str(tmp_path / "spectrum.db"))
    yield s
    s.close()


def analysing_job(
    sessions, frames_sent=None, job_type="direction_finding", parameters=None
) -> uuid.UUID:
    """A job whose three nodes have delivered: status analysing since T0."""
    job_id = uuid.uuid4()
    with sessions.begin() as session:
        nodes = [
            Node(
                id=uuid.uuid4(),
                name=f"n{i}",
                lat_deg=48.1 + 0.03 * i,
                lon_deg=11.5 + 0.05 * (i % 2),
                alt_m=100.0,
                heartbeat_timeout_s=60,
                credential_hash=uuid.uuid4().hex,
                sync_source="gps",
                sync_uncertainty_s=2e-8,
                created_at=T0,
            )
            for i in range(3)
        ]
        session.add_all(nodes)
        job = Job(
            id=job_id,
            type=job_type,
            parameters=parameters or DF,
            priority=0,
            status=JobStatus.ANALYSING,
            created_at=T0,
            started_at=T0,
        )
        job.transitions = [
            JobTransition(seq=0, from_status=None, to_status="pending", at=T0, reason="submitted"),
            JobTransition(
                seq=1,
                from_status="running",
                to_status="analysing",
                at=T0,
                reason="3 of 3 nodes delivered",
            ),
        ]
        job.assignments = [
            Assignment(
                node_id=n.id,
                state=AssignmentState.COMPLETED,
                created_at=T0,
                updated_at=T0,
                frames_sent=frames_sent,
            )
            for n in nodes
        ]
        session.add(job)
    return job_id


def status(sessions, job_id) -> tuple[str, str | None]:
    with sessions() as session:
        job = session.get(Job, job_id)
        return job.status, job.status_reason


def test_one_replica_claims_a_job_and_another_takes_it_over_when_its_claim_expires(
    sessions, settings, store
):
    job_id = analysing_job(sessions)
    a = Analyst(sessions, settings, store=store, replica="a")
    b = Analyst(sessions, settings, store=store, replica="b")
    claimed = a.claim(T0)
    assert claimed is not None and claimed.job_id == job_id
    assert b.claim(T0 + dt.timedelta(seconds=1)) is None  # a holds it
    assert a.claim(T0 + dt.timedelta(seconds=1)) is None  # nothing else to do
    # a renews while it works; b still cannot take it
    a.renew([job_id], T0 + dt.timedelta(seconds=settings.analysis_lease_s - 1))
    assert b.claim(T0 + dt.timedelta(seconds=settings.analysis_lease_s + 1)) is None
    # a is lost: its claim runs out, and b takes the job over
    later = T0 + dt.timedelta(seconds=3 * settings.analysis_lease_s)
    taken = b.claim(later)
    assert taken is not None and taken.job_id == job_id
    # a comes back with an outcome: it no longer holds the job, nothing is stored
    outcome = Outcome(
        True, kind="frames", document={"kind": "frames", "job_id": str(job_id), "nodes": []}
    )
    assert not a.finish(claimed, outcome, later)
    with sessions() as session:
        assert session.get(JobResult, job_id) is None
    assert b.finish(taken, outcome, later)
    assert status(sessions, job_id)[0] == "completed"
    with sessions() as session:
        assert session.get(JobResult, job_id).kind == "frames"
        assert session.get(Job, job_id).analysis_attempts == 2
    assert b.claim(later) is None


def test_an_analysis_that_raises_fails_the_job_with_the_error(
    sessions, settings, store, monkeypatch
):
    job_id = analysing_job(sessions)

    def broken(job, store):
        raise ZeroDivisionError("the covariance has no inverse")

    monkeypatch.setattr(location, "analyse_direction_finding", broken)
    analyst = Analyst(sessions, settings, store=store)
    claimed = analyst.claim(T0)
    outcome = run_analysis(claimed.job_type, claimed.job, store=store)
    assert not outcome.ok
    analyst.finish(claimed, outcome, T0)
    assert status(sessions, job_id) == (
        "failed",
        "the analysis failed: ZeroDivisionError: the covariance has no inverse",
    )


def test_too_few_deliveries_fail_the_job_with_what_tdoa_needs(sessions, settings, store):
    """Only one of the three nodes' captures is in the store: the job fails saying so."""
    job_id = analysing_job(sessions)
    with sessions() as session:
        node = session.get(Job, job_id).assignments[0].node_id
    x = (np.arange(4096) % 7).astype(np.complex64)
    store.add(
        [
            wire.Frame(
                wire.IQ,
                0,
                1_796_000_000,
                0.25,
                2e-8,
                {
                    "job_id": str(job_id),
                    "node_id": str(node),
                    "samp_rate_hz": 1.25e6,
                    "center_freq_hz": 433.92e6,
                },
                x,
            )
        ]
    )
    analyst = Analyst(sessions, settings, store=store)
    claimed = analyst.claim(T0)
    analyst.finish(claimed, run_analysis(claimed.job_type, claimed.job, store=store), T0)
    state, reason = status(sessions, job_id)
    assert state == "failed"
    assert reason.startswith("1 of 3 nodes delivered; TDOA needs 3 with distinct positions"), reason


def test_an_analysis_waits_for_the_frames_its_nodes_sent(sessions, tmp_path, db_url, store):
    settings = make_settings(tmp_path / "data", db_url, analysis_wait_s=10.0)
    job_id = analysing_job(sessions, frames_sent={"iq": 2})
    analyst = Analyst(sessions, settings, store=store)
    # 6 frames sent (2 per node), none stored: not yet
    assert analyst.claim(T0 + dt.timedelta(seconds=1)) is None
    with sessions() as session:
        assert session.get(Job, job_id).analysis_attempts == 0  # waiting spends no attempt
    frames = [
        wire.Frame(
            wire.IQ,
            k,
            1_796_000_000,
            0.25,
            2e-8,
            {"job_id": str(job_id), "node_id": f"node-{k // 2}"},
            np.zeros(16, np.complex64),
        )
        for k in range(6)
    ]
    store.add(frames[:5])
    assert analyst.claim(T0 + dt.timedelta(seconds=3)) is None  # one still missing
    store.add(frames[5:])
    assert analyst.claim(T0 + dt.timedelta(seconds=5)) is not None


def test_after_the_wait_the_analysis_runs_on_what_arrived_and_says_so(
    sessions, tmp_path, db_url, store
):
    settings = make_settings(tmp_path / "data", db_url, analysis_wait_s=10.0)
    analysing_job(sessions, frames_sent={"iq": 2})
    claimed = Analyst(sessions, settings, store=store).claim(T0 + dt.timedelta(seconds=11))
    assert claimed is not None
    assert "6 frame(s) the nodes sent were not stored after 11 s" in claimed.job.reason


def test_a_job_whose_analysis_keeps_dying_is_failed(sessions, settings, store):
    job_id = analysing_job(sessions)
    analyst = Analyst(sessions, settings, store=store)
    t = T0
    for _ in range(settings.analysis_max_attempts):
        assert analyst.claim(t) is not None  # claimed, then the worker dies: never finished
        t += dt.timedelta(seconds=2 * settings.analysis_lease_s)
    assert analyst.claim(t) is None
    state, reason = status(sessions, job_id)
    assert (
        state == "failed"
        and f"did not finish in {settings.analysis_max_attempts} attempts" in reason
    )


def test_replicas_claiming_at_once_give_each_job_to_exactly_one(sessions, settings, store):
    """Eight replicas look for work at the same moment, for five jobs: each job is claimed
    once (on PostgreSQL their reads overlap; the conditional update decides)."""
    jobs = {analysing_job(sessions) for _ in range(5)}
    replicas = [Analyst(sessions, settings, store=store, replica=f"r{i}") for i in range(8)]
    barrier = threading.Barrier(len(replicas))
    claims: list[uuid.UUID] = []
    lock = threading.Lock()

    def work(analyst):
        barrier.wait()
        while (c := analyst.claim(T0)) is not None:
            with lock:
                claims.append(c.job_id)

    threads = [threading.Thread(target=work, args=(a,)) for a in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claims) == sorted(jobs)


def test_a_capture_with_a_gap_gives_its_first_or_its_longest_run_each_with_its_own_time():
    """Frames of 1000 samples at 1 MS/s; 500 samples dropped after frame 1 (the next frame's
    rx_time says so): the stream's first run is frames 0-1, its longest frames 2-5, which
    starts at 2.5 ms."""
    from drift.orchestrator.captures import join_iq
    from drift.orchestrator.spectrum_store import StoredFrame

    rng = np.random.default_rng(5)
    meta = {"samp_rate_hz": 1e6, "center_freq_hz": 433e6}
    frames, start = [], {}
    for seq in range(6):
        sample = seq * 1000 + (500 if seq >= 2 else 0)  # where the frame starts
        start[seq] = sample
        payload = rng.standard_normal(1000).astype(np.complex64)
        frames.append(
            StoredFrame("j", "n", wire.IQ, seq, 100 + sample / 1e6, 433e6, None, 0, payload,
                        time_s=100, time_frac=sample / 1e6, meta=meta)
        )  # fmt: skip
    first = join_iq(reversed(frames))
    assert first.frames == 2 and first.samples.size == 2000 and not first.complete
    assert (first.time_s, first.time_frac) == (100, 0.0)
    longest = join_iq(frames, longest=True)
    assert longest.frames == 4 and not longest.complete
    assert (longest.time_s, longest.time_frac) == (100, start[2] / 1e6)
    np.testing.assert_array_equal(longest.samples[:1000], frames[2].payload)
    whole = join_iq(frames[2:4], longest=True)  # no gap: the whole stream, as before
    assert whole.frames == 2
