"""The collector's view of the database (drift.orchestrator.data_plane), on SQLite and
PostgreSQL: which node a Curve key belongs to, and which frames a node may send, read in one
query per batch of frames at most."""

from __future__ import annotations

import datetime as dt
import uuid

from drift.curve import KeyPair
from drift.orchestrator.data_plane import (
    JOB_OVER,
    NOT_ASSIGNED,
    UNKNOWN_JOB,
    FrameGate,
    NodeKeys,
)
from drift.orchestrator.states import JobStatus
from drift.orchestrator.storage import Assignment, Job, Node


def _node(session, name: str, key: str | None = None) -> Node:
    node = Node(
        name=name,
        lat_deg=50.0,
        lon_deg=8.0,
        heartbeat_timeout_s=60.0,
        credential_hash=uuid.uuid4().hex,
        curve_public_key=key,
    )
    session.add(node)
    session.flush()
    return node


def _job(session, status: JobStatus, nodes=(), finished_at=None) -> Job:
    job = Job(
        type="spectrum_scan",
        parameters={},
        status=status,
        created_at=dt.datetime.now(dt.UTC),
        finished_at=finished_at,
        assignments=[Assignment(node_id=n.id) for n in nodes],
    )
    session.add(job)
    session.flush()
    return job


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_gate_takes_frames_of_a_nodes_own_jobs_until_they_are_over(sessions):
    now = dt.datetime.now(dt.UTC)
    with sessions.begin() as s:
        a, b = _node(s, "a"), _node(s, "b")
        jobs = {
            "running": _job(s, JobStatus.RUNNING, [a]),
            "analysing": _job(s, JobStatus.ANALYSING, [a, b]),
            "just_done": _job(
                s, JobStatus.COMPLETED, [a], finished_at=now - dt.timedelta(seconds=5)
            ),
            "long_done": _job(s, JobStatus.CANCELLED, [a], finished_at=now - dt.timedelta(hours=1)),
            "pending": _job(s, JobStatus.PENDING),
        }
        ids = {name: str(job.id) for name, job in jobs.items()}
        a_id, b_id = str(a.id), str(b.id)
    gate = FrameGate(sessions, job_grace_s=60, clock=Clock())
    claims = [
        (a_id, ids["running"]),
        (b_id, ids["running"]),
        (a_id, ids["analysing"]),
        (b_id, ids["analysing"]),
        (a_id, ids["just_done"]),
        (a_id, ids["long_done"]),
        (a_id, ids["pending"]),
        (a_id, str(uuid.uuid4())),
        (a_id, "not-a-job-id"),
        (None, ids["running"]),
    ]
    assert gate.check(claims) == [
        None,
        NOT_ASSIGNED,
        None,
        None,
        None,
        JOB_OVER,
        NOT_ASSIGNED,
        UNKNOWN_JOB,
        UNKNOWN_JOB,
        NOT_ASSIGNED,
    ]
    assert gate.queries == 1  # every job of the batch in one query


def test_a_batch_of_frames_costs_one_query_at_most_and_a_new_assignment_is_seen(sessions):
    """Ten thousand frames of one job in batches of 500: what the gate read is reused for
    `cache_s`. A node assigned later (a reassignment) is refused only while what the gate
    knows of the job is younger than a fifth of `cache_s`, then looked up again at once."""
    with sessions.begin() as s:
        a, b = _node(s, "a"), _node(s, "b")
        job = _job(s, JobStatus.RUNNING, [a])
        a_id, b_id, job_id = str(a.id), str(b.id), str(job.id)
    clock = Clock()
    gate = FrameGate(sessions, cache_s=1.0, clock=clock)
    for _ in range(20):
        assert gate.check([(a_id, job_id)] * 500) == [None] * 500
        clock.now += 0.01
    assert gate.queries == 1
    clock.now += 1.0  # the cache has expired: read again, once
    assert gate.check([(a_id, job_id)] * 500) == [None] * 500
    assert gate.queries == 2

    with sessions.begin() as s:
        s.add(Assignment(job_id=uuid.UUID(job_id), node_id=uuid.UUID(b_id)))
    assert gate.check([(b_id, job_id)]) == [NOT_ASSIGNED]  # read 0 s ago: not again
    assert gate.queries == 2
    clock.now += 0.25
    assert gate.check([(b_id, job_id)] * 500) == [None] * 500  # read again, once
    assert gate.queries == 3


def test_node_keys_find_a_node_enrolled_after_the_last_reading_and_forget_removed_ones(
    sessions,
):
    first, second = KeyPair.new(), KeyPair.new()
    with sessions.begin() as s:
        a = _node(s, "a", first.public)
        a_id = str(a.id)
    keys = NodeKeys(sessions)
    keys.reload()
    assert keys.node_for(first.public) == a_id
    with sessions.begin() as s:
        b_id = str(_node(s, "b", second.public).id)
    assert keys.node_for(second.public) is None  # per frame: memory only
    assert keys.authenticate(second.public) == b_id  # at a handshake: looked up at once
    assert keys.node_for(second.public) == b_id
    assert keys.authenticate(KeyPair.new().public) is None
    with sessions.begin() as s:
        s.delete(s.get(Node, uuid.UUID(a_id)))
    keys.reload()
    assert keys.node_for(first.public) is None and keys.node_for(second.public) == b_id
