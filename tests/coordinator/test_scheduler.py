"""Scheduling through the API: placement, pending reasons, node reports, retries, silent nodes,
restarts. Time is passed to the scheduler (``now``), never slept."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from fastapi.testclient import TestClient

from drift.api import create_app
from drift.orchestrator.analysis.worker import Analyst, run_analysis
from drift.orchestrator.dispatch import deliverable
from drift.orchestrator.scheduler import Scheduler

from .conftest import SCAN, Api


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def scheduler(api: Api, settings) -> Scheduler:
    return Scheduler(api.client.app.state.runtime.sessions, settings)


def submit(api: Api, body: dict, headers=None) -> str:
    r = api.client.post("/api/v1/jobs", json=body, headers=headers or api.user("operator"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def job(api: Api, job_id: str) -> dict:
    return api.client.get(f"/api/v1/jobs/{job_id}", headers=api.user("viewer")).json()


def pickup(api: Api, node_id: str, headers: dict) -> list[dict]:
    r = api.client.get(f"/api/v1/nodes/{node_id}/assignments", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def analyse_one(api: Api, settings) -> str | None:
    """Claim one job due for analysis and run it here, as the analysis worker does; its id."""
    runtime = api.client.app.state.runtime
    analyst = Analyst(runtime.sessions, settings, store=runtime.spectrum)
    claimed = analyst.claim()
    if claimed is None:
        return None
    analyst.finish(claimed, run_analysis(claimed.job_type, claimed.job, store=runtime.spectrum))
    return str(claimed.job_id)


def report(api: Api, node_id: str, headers: dict, assignment_id: str, state: str, **kw):
    return api.client.post(
        f"/api/v1/nodes/{node_id}/assignments/{assignment_id}/report",
        json={"state": state, **kw},
        headers=headers,
    )


def test_job_runs_to_completion(api: Api, scheduler: Scheduler, settings):
    nodes = [api.enroll(name, lat, 8.0) for name, lat in [("a", 50), ("b", 50.001), ("c", 53)]]
    job_id = submit(api, {**SCAN, "node_count": 2})
    tick = scheduler.tick()
    assert [str(j) for j in tick.scheduled] == [job_id]
    placed = job(api, job_id)
    assert placed["status"] == "scheduled" and placed["pending_reason"] is None
    assert "allocated 2 node(s)" in placed["transitions"][-1]["reason"]
    assert nodes[2][0] in placed["allocated_nodes"]  # the far node, for spread

    running = 0
    for node_id, headers in nodes:
        work = pickup(api, node_id, headers)
        if node_id not in placed["allocated_nodes"]:
            assert work == []
            continue
        [a] = work
        assert a["job_id"] == job_id and a["template"] == "spectrum_scan"
        assert a["parameters"]["stop_freq_hz"] == 108e6
        assert report(api, node_id, headers, a["id"], "running").json() == {"changed": True}
        running += 1
        assert job(api, job_id)["status"] == "running"
        assert report(api, node_id, headers, a["id"], "completed").json() == {"changed": True}
        # a repeated report is harmless; a late "running" after "completed" is refused
        assert report(api, node_id, headers, a["id"], "completed").json() == {"changed": False}
        late = report(api, node_id, headers, a["id"], "running")
        assert late.status_code == 409 and "completed" in late.json()["detail"]
    assert running == 2
    delivered = job(api, job_id)
    assert delivered["status"] == "analysing"
    r = api.client.get(f"/api/v1/jobs/{job_id}/result", headers=api.user("viewer"))
    assert r.status_code == 404 and "analysing" in r.json()["detail"]
    assert analyse_one(api, settings) == job_id
    done = job(api, job_id)
    assert done["status"] == "completed"
    assert [t["to_status"] for t in done["transitions"]] == [
        "pending",
        "scheduled",
        "running",
        "analysing",
        "completed",
    ]
    r = api.client.get(f"/api/v1/jobs/{job_id}/result", headers=api.user("viewer"))
    assert r.status_code == 200 and r.json()["kind"] == "scan", r.text
    r = api.client.post(f"/api/v1/jobs/{job_id}/cancel", headers=api.admin)
    assert r.status_code == 409
    by_node = api.client.get(
        "/api/v1/jobs", params={"node_id": nodes[2][0]}, headers=api.user("viewer")
    ).json()
    assert [j["id"] for j in by_node["items"]] == [job_id]


def test_unplaceable_job_stays_pending_with_reason(api: Api, scheduler: Scheduler):
    api.enroll("a", 50, 8)
    api.enroll("hf", 50, 9, freq_min_hz=10e3, freq_max_hz=30e6)
    job_id = submit(api, {**SCAN, "node_count": 2})
    tick = scheduler.tick()
    assert not tick.scheduled
    pending = job(api, job_id)
    assert pending["status"] == "pending"
    assert pending["pending_reason"] == (
        "needs 2 nodes covering 88 MHz-108 MHz; 1 qualify (of 2 known: 1 do not cover 88 MHz-108 MHz)"
    )
    # a second node arrives: the next tick places the job
    api.enroll("b", 51, 8)
    assert [str(j) for j in scheduler.tick().scheduled] == [job_id]


def test_higher_priority_goes_first(api: Api, scheduler: Scheduler):
    api.enroll("only", 50, 8)
    low = submit(api, {**SCAN, "priority": 1})
    high = submit(api, {**SCAN, "priority": 9})
    tick = scheduler.tick()
    assert [str(j) for j in tick.scheduled] == [high]
    assert "at capacity" in job(api, low)["pending_reason"]


def test_failed_assignment_is_retried_with_backoff_then_fails_the_job(
    api: Api, scheduler: Scheduler, settings
):
    node_id, headers = api.enroll("a", 50, 8)
    job_id = submit(api, SCAN)
    scheduler.tick()
    [a] = pickup(api, node_id, headers)
    assert report(api, node_id, headers, a["id"], "failed", error="device busy").status_code == 200
    detail = job(api, job_id)
    [assignment] = detail["assignments"]
    assert assignment["state"] == "assigned" and assignment["attempts"] == 1
    assert assignment["last_error"] == "attempt 1 failed: device busy"
    not_before = dt.datetime.fromisoformat(assignment["not_before"])
    assert 4 < (not_before - utcnow()).total_seconds() <= 5
    assert pickup(api, node_id, headers) == []  # backing off
    sessions = api.client.app.state.runtime.sessions
    with sessions() as s:
        later = deliverable(s, __import__("uuid").UUID(node_id), utcnow() + dt.timedelta(seconds=6))
        assert [str(x.id) for x in later] == [a["id"]]
    # the second failure doubles the back-off; the third (max_attempts=3) ends the job
    report(api, node_id, headers, a["id"], "failed", error="device busy")
    second = job(api, job_id)["assignments"][0]
    delay = dt.datetime.fromisoformat(second["not_before"]) - utcnow()
    assert 9 < delay.total_seconds() <= 10
    report(api, node_id, headers, a["id"], "failed", error="device gone")
    failed = job(api, job_id)
    assert failed["status"] == "failed"
    assert failed["status_reason"] == f"node {node_id} failed 3 time(s); last error: device gone"
    assert settings.assignment_max_attempts == 3
    # a node cannot revive an assignment of a failed job
    assert report(api, node_id, headers, a["id"], "running").status_code == 409


def test_silent_node_goes_offline_and_its_work_moves(api: Api, scheduler: Scheduler):
    flaky, flaky_h = api.enroll("flaky", 50, 8, heartbeat_timeout_s=5)
    job_id = submit(api, SCAN)
    scheduler.tick()
    assert job(api, job_id)["allocated_nodes"] == [flaky]
    steady, steady_h = api.enroll("steady", 50, 8.001, heartbeat_timeout_s=3600)
    [a] = pickup(api, flaky, flaky_h)
    report(api, flaky, flaky_h, a["id"], "running")

    tick = scheduler.tick(utcnow() + dt.timedelta(seconds=6))
    assert [str(n) for n in tick.nodes_offline] == [flaky]
    moved = job(api, job_id)
    assert moved["status"] == "running" and moved["allocated_nodes"] == [steady]
    old, new = moved["assignments"]
    assert old["state"] == "reassigned" and "silent since" in old["last_error"]
    assert new["node_id"] == steady and new["replaces_id"] == old["id"]
    nodes = {n["name"]: n for n in api.client.get("/api/v1/nodes", headers=api.admin).json()}
    assert nodes["flaky"]["status"] == "offline" and nodes["steady"]["load"] == 1
    [b] = pickup(api, steady, steady_h)
    assert b["job_id"] == job_id
    # the flaky node comes back: its old assignment is gone, and reporting on it is refused
    api.client.post(f"/api/v1/nodes/{flaky}/heartbeat", headers=flaky_h)
    assert pickup(api, flaky, flaky_h) == []
    assert report(api, flaky, flaky_h, a["id"], "completed").status_code == 409


@pytest.fixture
def lone(api: Api, scheduler: Scheduler):
    """A job on the only node, which then falls silent."""
    node_id, headers = api.enroll("lone", 50, 8, heartbeat_timeout_s=5)
    return node_id, headers, submit(api, SCAN)


def test_silent_node_without_replacement_fails_running_job(api: Api, scheduler: Scheduler, lone):
    node_id, headers, job_id = lone
    scheduler.tick()
    [a] = pickup(api, node_id, headers)
    report(api, node_id, headers, a["id"], "running")
    tick = scheduler.tick(utcnow() + dt.timedelta(seconds=6))
    assert [str(j) for j in tick.failed] == [job_id]
    failed = job(api, job_id)
    assert failed["status"] == "failed"
    assert "silent since" in failed["status_reason"]
    assert "no capable node to take over its receiver role" in failed["status_reason"]


def test_silent_node_requeues_a_job_not_yet_started(api: Api, scheduler: Scheduler, lone):
    node_id, _, job_id = lone
    scheduler.tick()
    tick = scheduler.tick(utcnow() + dt.timedelta(seconds=6))
    assert [str(j) for j in tick.requeued] == [job_id]
    requeued = job(api, job_id)
    assert requeued["status"] == "pending" and requeued["allocated_nodes"] == []
    assert "silent since" in requeued["transitions"][-1]["reason"]
    # the same round tried to place it again, and says why it waits
    assert requeued["pending_reason"].endswith("(of 1 known: 1 offline)")
    assert [a["state"] for a in requeued["assignments"]] == ["failed"]


def test_a_requeued_job_placed_again_keeps_its_steps_in_order(api: Api, scheduler: Scheduler, lone):
    """Placements are written as rows (not through the ORM): a job placed, requeued by its
    silent node and placed again on a newcomer has its four steps in order, each stamped
    with the moment it was decided (within its tick), and its assignment from that moment."""
    from sqlalchemy import select

    from drift.orchestrator.storage.models import JobTransition

    node_id, _, job_id = lone
    t0 = utcnow()
    scheduler.tick(t0)
    t1 = t0 + dt.timedelta(seconds=6)
    assert [str(j) for j in scheduler.tick(t1).requeued] == [job_id]
    newcomer, _ = api.enroll("newcomer", 50.01, 8)
    t2 = t1 + dt.timedelta(seconds=1)
    assert [str(j) for j in scheduler.tick(t2).scheduled] == [job_id]
    placed = job(api, job_id)
    assert [t["to_status"] for t in placed["transitions"]] == [
        "pending",
        "scheduled",
        "pending",
        "scheduled",
    ]
    assert placed["allocated_nodes"] == [newcomer] and placed["pending_reason"] is None
    with api.client.app.state.runtime.sessions() as session:
        seqs = session.scalars(
            select(JobTransition.seq)
            .where(JobTransition.job_id == uuid.UUID(job_id))
            .order_by(JobTransition.id)
        ).all()
    assert seqs == [0, 1, 2, 3]
    stamps = [dt.datetime.fromisoformat(t["at"]) for t in placed["transitions"]]
    assert t0 <= stamps[1] < t0 + dt.timedelta(seconds=5)
    assert t2 <= stamps[3] < t2 + dt.timedelta(seconds=5)
    assert dt.datetime.fromisoformat(placed["scheduled_at"]) == stamps[3]
    [old, new] = sorted(placed["assignments"], key=lambda a: a["state"] != "failed")
    assert (old["node_id"], old["state"]) == (node_id, "failed")
    assert (new["node_id"], new["state"]) == (newcomer, "assigned")


def test_restart_loses_no_job(settings, tmp_path):
    with TestClient(create_app(settings)) as client:
        first = Api(client)
        first.enroll("a", 50, 8)
        job_id = submit(first, SCAN)
        Scheduler(client.app.state.runtime.sessions, settings).tick()
        second_id = submit(first, {**SCAN, "priority": 3})
    with TestClient(create_app(settings)) as client:
        again = Api(client)
        page = client.get("/api/v1/jobs", headers=again.admin).json()
        assert {j["id"] for j in page["items"]} == {job_id, second_id}
        assert job(again, job_id)["status"] == "scheduled"
        assert job(again, second_id)["status"] == "pending"
        assert len(job(again, job_id)["transitions"]) == 2


@pytest.mark.parametrize("delivered", [0, 1])
def test_a_job_running_past_its_duration_is_ended(
    api: Api, scheduler: Scheduler, settings, delivered
):
    nodes = [
        api.enroll(name, lat, 8.0, heartbeat_timeout_s=3600) for name, lat in [("a", 50), ("b", 52)]
    ]
    job_id = submit(api, {**SCAN, "node_count": 2})  # duration_s 60
    scheduler.tick()
    assignments = []
    for node_id, headers in nodes:
        [a] = pickup(api, node_id, headers)
        report(api, node_id, headers, a["id"], "running")
        assignments.append((node_id, headers, a))
    if delivered:
        node_id, headers, a = assignments[0]
        report(api, node_id, headers, a["id"], "completed")
    started = dt.datetime.fromisoformat(job(api, job_id)["started_at"])
    on_time = started + dt.timedelta(seconds=60 + settings.job_grace_s - 1)
    scheduler.tick(on_time)
    assert job(api, job_id)["status"] == "running"
    scheduler.tick(on_time + dt.timedelta(seconds=2))
    ended = job(api, job_id)
    assert ended["status"] == ("analysing" if delivered else "failed")
    assert "timed out" in ended["status_reason"]
    assert f"{delivered} of 2 assignment(s) completed" in ended["status_reason"]
    late = [a for a in ended["assignments"] if a["state"] == "cancelled"]
    assert len(late) == 2 - delivered
    # the late nodes are told: the assignment is gone from their list
    for node_id, headers, _ in assignments[delivered:]:
        assert pickup(api, node_id, headers) == []


def test_delivery_marks_of_finished_attempts_are_dropped(api: Api, scheduler: Scheduler):
    """The in-process ledger keeps a mark per delivered (assignment, attempt): the hub drops
    those whose attempt is over, so it holds the work in progress, not all work ever done;
    an attempt still running keeps its mark (its next delivery is still a repeat)."""
    a_id, a_headers = api.enroll("a", 50, 8)
    b_id, b_headers = api.enroll("b", 52, 8)
    done, going = submit(api, SCAN), submit(api, SCAN)
    scheduler.tick()
    work = {node: pickup(api, node, h) for node, h in [(a_id, a_headers), (b_id, b_headers)]}
    mine = {x["job_id"]: (node, x) for node, xs in work.items() for x in xs}
    assert all(x["first_delivery"] for _, x in mine.values())
    runtime = api.client.app.state.runtime
    node, x = mine[done]
    headers = a_headers if node == a_id else b_headers
    report(api, node, headers, x["id"], "running")
    report(api, node, headers, x["id"], "completed")
    assert len(runtime.ledger.held()) == 2
    assert runtime.hub.forget_delivered() == 1
    [(kept, attempt)] = runtime.ledger.held()
    assert str(kept) == mine[going][1]["id"] and attempt == mine[going][1]["attempts"]
    node, _ = mine[going]
    again = pickup(api, node, a_headers if node == a_id else b_headers)
    assert [y["first_delivery"] for y in again] == [False]
    assert runtime.hub.forget_delivered() == 0


def test_node_views_follow_status_and_load_and_keep_what_did_not_change(
    api: Api, scheduler: Scheduler
):
    from drift.orchestrator.nodes import NodeViews

    busy, _ = api.enroll("busy", 50, 8)
    idle, _ = api.enroll("idle", 52, 8)
    views = NodeViews()
    sessions = api.client.app.state.runtime.sessions
    with sessions() as session:
        first = views.load(session)
    assert {v.load for v in first.values()} == {0} and all(v.online for v in first.values())
    submit(api, {**SCAN, "node_ids": [busy]})
    scheduler.tick()
    with sessions() as session:
        second = views.load(session)
    assert second[busy].load == 1 and second[busy] is not first[busy]
    assert second[idle] is first[idle]  # unchanged: the same (frozen) view
    scheduler.tick(utcnow() + dt.timedelta(seconds=120))  # both fall silent
    with sessions() as session:
        third = views.load(session)
    assert not third[idle].online and not third[busy].online


def test_a_placement_is_stamped_after_what_its_tick_did_before_it(
    api: Api, scheduler: Scheduler, monkeypatch
):
    """The decision stamp counts the whole tick so far, the node snapshot included: a slow
    snapshot makes the stamp later, not the dispatch that follows it look slower."""
    import time

    api.enroll("n1", 50, 8)
    job_id = submit(api, SCAN)
    load = scheduler.views.load

    def slow_load(session):
        time.sleep(0.3)
        return load(session)

    monkeypatch.setattr(scheduler.views, "load", slow_load)
    t0 = utcnow()
    assert [str(j) for j in scheduler.tick(t0).scheduled] == [job_id]
    at = dt.datetime.fromisoformat(job(api, job_id)["scheduled_at"])
    assert t0 + dt.timedelta(seconds=0.3) <= at < t0 + dt.timedelta(seconds=5)


DF_JOB = {
    "type": "direction_finding",
    "center_freq_hz": 433.92e6,
    "bandwidth_hz": 200e3,
    "method": "tdoa",
    "area": {"lat_deg": 48.0, "lon_deg": 11.0},
    "duration_s": 0.5,
    "node_count": 3,
}


def test_a_timed_job_starts_after_its_nodes_measured_dispatch_latency(api: Api, settings):
    """Every node of a direction-finding job gets one start: the placement decision plus the
    longest dispatch latency measured for its nodes (their first deliveries) plus the capture
    lead, on the 1/64 s grid; a node never measured counts with the default latency."""
    runtime = api.client.app.state.runtime
    scheduler = Scheduler(runtime.sessions, settings, runtime.ledger)
    nodes = [
        api.enroll(name, 48.0 + dlat, 11.0 + dlon, capabilities={"max_jobs": 2})
        for name, dlat, dlon in [("a", 0.05, 0), ("b", -0.03, 0.06), ("c", -0.03, -0.06)]
    ]
    # a scan placed 2.5 s before its nodes pick it up: each node's latency measures 2.5 s
    submit(api, {**SCAN, "node_count": 2})
    scheduler.tick(utcnow() - dt.timedelta(seconds=2.5))
    measured = [n for n, h in nodes if pickup(api, n, h)]
    assert len(measured) == 2
    latencies = runtime.ledger.dispatch_latency_s([n for n, _ in nodes])
    assert set(latencies) == set(measured)
    assert all(2.5 <= v < 4.0 for v in latencies.values()), latencies
    job_id = submit(api, DF_JOB)
    now = utcnow()
    scheduler.tick(now)
    placed = job(api, job_id)
    assert placed["status"] == "scheduled", placed
    decided = dt.datetime.fromisoformat(placed["scheduled_at"])
    starts = {pickup(api, n, h)[-1]["start_time"] for n, h in nodes}
    assert len(starts) == 1  # one instant for every node
    start = dt.datetime.fromisoformat(starts.pop())
    lead = (start - decided).total_seconds()
    expect = max(latencies.values()) + settings.capture_lead_s
    assert expect <= lead < expect + 1 / 64, (lead, expect)
    assert (start.timestamp() * 64) % 1 == 0  # on the grid: exact as a float
    assert f"capture starts at {start.isoformat()}" in placed["transitions"][-1]["reason"]


def test_a_timed_job_on_unmeasured_nodes_uses_the_default_latency(api: Api, settings):
    runtime = api.client.app.state.runtime
    scheduler = Scheduler(runtime.sessions, settings, runtime.ledger)
    nodes = [
        api.enroll(name, 48.0 + dlat, 11.0 + dlon)
        for name, dlat, dlon in [("a", 0.05, 0), ("b", -0.03, 0.06), ("c", -0.03, -0.06)]
    ]
    job_id = submit(api, DF_JOB)
    scheduler.tick()
    placed = job(api, job_id)
    start = dt.datetime.fromisoformat(pickup(api, *nodes[0])[0]["start_time"])
    lead = (start - dt.datetime.fromisoformat(placed["scheduled_at"])).total_seconds()
    expect = settings.dispatch_latency_default_s + settings.capture_lead_s
    assert expect <= lead < expect + 1 / 64
