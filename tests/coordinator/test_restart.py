"""A coordinator restart is not the nodes' silence: after a start, every node gets a whole
heartbeat timeout from the start to be heard from, so running jobs survive a restart shorter
than the timeout (a real ``drift serve`` stopped and started again under a running job),
and a node that stays silent is still declared lost, one timeout after the start."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import httpx

from drift.localnet import wait_for
from drift.orchestrator.scheduler import Scheduler

from .conftest import SCAN, Api
from .served import start, stop


def test_a_node_gets_a_whole_timeout_from_the_start(api: Api, settings):
    node_id, headers = api.enroll("roof", 50, 8, heartbeat_timeout_s=60)
    assert api.client.post(f"/api/v1/nodes/{node_id}/heartbeat", headers=headers).status_code == 200
    beat = dt.datetime.now(dt.UTC)
    # the coordinator was down for 50 s after the node's last heartbeat, then started
    started = beat + dt.timedelta(seconds=50)
    scheduler = Scheduler(api.client.app.state.runtime.sessions, settings, started_at=started)
    # its first tick, 15 s after the start: 65 s since the heartbeat, 15 s since the start
    tick = scheduler.tick(started + dt.timedelta(seconds=15))
    assert tick.nodes_offline == []
    # still heard from within the timeout of the start ...
    assert scheduler.tick(started + dt.timedelta(seconds=59)).nodes_offline == []
    # ... and lost once a whole timeout has passed since the start
    tick = scheduler.tick(started + dt.timedelta(seconds=61))
    assert [str(n) for n in tick.nodes_offline] == [node_id]


def test_running_jobs_survive_a_coordinator_restart_shorter_than_the_timeout(tmp_path: Path):
    timeout_s = 8.0
    env = {"DRIFT_SCHEDULER_INTERVAL_S": "0.2"}
    data, log = tmp_path / "data", tmp_path / "coordinator.log"
    served = start(data, log, env=env)
    try:
        with httpx.Client(base_url=served.base, timeout=20) as http:
            admin = served.admin(http)
            node = served.enroll(http, admin, "roof", heartbeat_timeout_s=timeout_s)
            node_id, me = node["node_id"], {"X-Node-Token": node["credential"]}
            job_id = http.post("/api/v1/jobs", json=SCAN, headers=admin).json()["id"]

            def assigned():
                http.post(f"/api/v1/nodes/{node_id}/heartbeat", headers=me)
                work = http.get(f"/api/v1/nodes/{node_id}/assignments", headers=me).json()
                return work[0] if work else None

            assignment = wait_for(assigned, 30, "the job to be placed on the node")
            r = http.post(
                f"/api/v1/nodes/{node_id}/assignments/{assignment['id']}/report",
                json={"state": "running"},
                headers=me,
            )
            assert r.status_code == 200, r.text
            assert http.get(f"/api/v1/jobs/{job_id}", headers=admin).json()["status"] == "running"
            # the node's last heartbeat, then the coordinator goes down for 2 s
            assert http.post(f"/api/v1/nodes/{node_id}/heartbeat", headers=me).status_code == 200
            last_beat = time.monotonic()
        stop(served)
        time.sleep(2.0)
        served = start(data, log, env=env, port=served.port)
        back = time.monotonic()
        assert back - last_beat < timeout_s, "the restart took longer than the timeout"
        with httpx.Client(base_url=served.base, timeout=20) as http:
            admin = served.admin(http)
            # the node stays silent past its timeout counted from its last heartbeat (the
            # coordinator's ticks every 0.2 s would have declared it lost), not from the start
            time.sleep(max(0.0, last_beat + timeout_s + 1.5 - time.monotonic()))
            assert time.monotonic() - back < timeout_s
            node_now = http.get(f"/api/v1/nodes/{node_id}", headers=admin).json()
            job = http.get(f"/api/v1/jobs/{job_id}", headers=admin).json()
            assert node_now["status"] == "online", node_now
            assert job["status"] == "running", job["transitions"][-1]
            [a] = job["assignments"]
            assert a["id"] == assignment["id"] and a["state"] == "running"
            # the node is back: its job goes on as before
            assert http.post(f"/api/v1/nodes/{node_id}/heartbeat", headers=me).status_code == 200
            work = http.get(f"/api/v1/nodes/{node_id}/assignments", headers=me).json()
            assert [w["id"] for w in work] == [assignment["id"]]
            # silent again: one whole timeout later it is lost, as ever
            wait_for(
                lambda: (
                    http.get(f"/api/v1/nodes/{node_id}", headers=admin).json()["status"]
                    == "offline"
                ),
                timeout_s + 10,
                "the silent node to be declared lost",
            )
    finally:
        stop(served)
