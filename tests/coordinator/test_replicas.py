"""Two coordinator processes (``drift serve``) on one PostgreSQL and one Redis: 200 jobs, each
placed once and each assignment dispatched to its node exactly once, whichever replica the node
asks. Real servers, real HTTP."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest

from drift.curve import KeyPair

from .conftest import ADMIN_PASSWORD, SCAN, free_port, sending_node

N_JOBS, N_NODES = 200, 20
#: the collector's Curve key, the same on every replica
REPLICA_CURVE_KEY = KeyPair.new()


def _serve(env: dict, port: int, log) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drift.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait_up(base: str, proc: subprocess.Popen, log_path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("drift serve exited:\n" + log_path.read_text()[-3000:])
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("drift serve did not answer")


@contextlib.contextmanager
def two_replicas(tmp_path, postgres, redis_url, per_replica=None, **settings: str):
    """Two ``drift serve`` processes on one new PostgreSQL database and the Redis server,
    started one after the other (the first creates the admin); yields their base URLs.
    per_replica: {"a": {...}, "b": {...}} settings for one of them."""
    common = {
        **os.environ,
        "DRIFT_DATABASE_URL": postgres.create_database(),
        "DRIFT_REDIS_URL": redis_url,
        "DRIFT_SECRET_KEY": "replica-shared-signing-key-" + "k" * 32,
        "DRIFT_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "DRIFT_ARGON2_TIME_COST": "1",
        "DRIFT_ARGON2_MEMORY_KIB": "64",
        "DRIFT_COLLECTOR_BIND": "",
        "DRIFT_CURVE_SECRET_KEY": REPLICA_CURVE_KEY.secret,
        **settings,
    }
    bases, procs = [], []
    try:
        for name in ("a", "b"):
            port = free_port()
            log_path = tmp_path / f"{name}.log"
            with open(log_path, "wb") as log:
                env = {
                    **common,
                    "DRIFT_DATA_DIR": str(tmp_path / name),
                    **(per_replica or {}).get(name, {}),
                }
                procs.append(_serve(env, port, log))
            bases.append(f"http://127.0.0.1:{port}")
            _wait_up(bases[-1], procs[-1], log_path)
        yield bases
    finally:
        for p in procs:
            p.terminate()
        # an orderly stop (the tick in progress ends and gives its Redis lease back, which the
        # next test's replicas would otherwise wait out)
        codes = [p.wait(30) for p in procs]
    assert codes == [0] * len(procs), f"drift serve exit codes {codes}"


def test_two_coordinators_on_one_redis_dispatch_each_assignment_exactly_once(
    tmp_path, postgres, redis_url
):
    with two_replicas(
        tmp_path,
        postgres,
        redis_url,
        DRIFT_SCHEDULER_INTERVAL_S="0.1",
        DRIFT_HEARTBEAT_TIMEOUT_S="3600",
    ) as bases:
        a, b = (httpx.Client(base_url=u + "/api/v1", timeout=30) for u in bases)
        token = a.post("/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
        nodes = []
        for i in range(N_NODES):
            t = (a if i % 2 else b).post("/nodes/enrollment-tokens", headers=admin).json()
            r = (b if i % 2 else a).post(
                "/nodes/enroll",
                json={
                    "token": t["token"],
                    "name": f"n{i}",
                    "location": {"lat_deg": 48 + i * 0.01, "lon_deg": 11.5},
                    "devices": [
                        {
                            "driver": "rtlsdr",
                            "freq_min_hz": 24e6,
                            "freq_max_hz": 1.7e9,
                            "max_bandwidth_hz": 2.4e6,
                        }
                    ],
                    "capabilities": {"max_jobs": 20},
                    "sync": {"source": "gps"},
                },
            )
            assert r.status_code == 201, r.text
            nodes.append((r.json()["node_id"], {"X-Node-Token": r.json()["credential"]}))
        job_ids = []
        for i in range(N_JOBS):
            r = (a, b)[i % 2].post("/jobs", json={**SCAN, "node_count": 1}, headers=admin)
            assert r.status_code == 201, r.text
            job_ids.append(r.json()["id"])

        first, seen = Counter(), Counter()
        deadline = time.monotonic() + 120
        rounds = 0
        while time.monotonic() < deadline:
            rounds += 1
            for k, (node_id, headers) in enumerate(nodes):
                replica = (a, b)[(k + rounds) % 2]  # each node alternates between replicas
                r = replica.get(f"/nodes/{node_id}/assignments", headers=headers)
                assert r.status_code == 200, r.text
                for item in r.json():
                    seen[item["id"]] += 1
                    first[item["id"]] += item["first_delivery"]
            if len(seen) == N_JOBS and min(seen.values()) >= 2:
                break
            time.sleep(0.2)
        assert len(seen) == N_JOBS, f"only {len(seen)} of {N_JOBS} assignments delivered"
        # exactly once: one first delivery per assignment, through whichever replica
        assert set(first.values()) == {1}
        assert min(seen.values()) >= 2  # and the repeats (through both replicas) were marked
        # each job placed once: one assignment each, never a second placement by the other tick
        counts = [
            len((a, b)[i % 2].get(f"/jobs/{j}", headers=admin).json()["assignments"])
            for i, j in enumerate(job_ids)
        ]
        assert counts == [1] * N_JOBS


def test_a_channel_on_one_replica_hears_of_work_placed_by_the_other(tmp_path, postgres, redis_url):
    import json

    from websockets.sync.client import connect

    from drift.protocol import channel_url

    # ticks and periodic looks far apart: only the submission's own wake-up on replica a and
    # the change it publishes through Redis can bring the assignment to b's channel in time
    with two_replicas(
        tmp_path, postgres, redis_url, DRIFT_SCHEDULER_INTERVAL_S="60", DRIFT_DISPATCH_POLL_S="30"
    ) as bases:
        a = httpx.Client(base_url=bases[0] + "/api/v1", timeout=30)
        token = a.post("/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
        t = a.post("/nodes/enrollment-tokens", headers=admin).json()["token"]
        r = a.post(
            "/nodes/enroll",
            json={
                "token": t,
                "name": "far",
                "location": {"lat_deg": 48, "lon_deg": 11},
                "devices": [
                    {
                        "driver": "rtlsdr",
                        "freq_min_hz": 24e6,
                        "freq_max_hz": 1.7e9,
                        "max_bandwidth_hz": 2.4e6,
                    }
                ],
            },
        )
        node_id, cred = r.json()["node_id"], r.json()["credential"]

        def next_list(ws):
            deadline = time.monotonic() + 10
            while True:
                msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
                if msg["type"] == "assignments":
                    return msg["assignments"]

        with connect(
            channel_url(bases[1], node_id), additional_headers={"X-Node-Token": cred}
        ) as ws:
            assert next_list(ws) == []
            job_id = a.post("/jobs", json={**SCAN, "node_ids": [node_id]}, headers=admin).json()[
                "id"
            ]
            pushed = next_list(ws)  # within 10 s, though b neither ticked nor looked
            assert [(x["job_id"], x["first_delivery"]) for x in pushed] == [(job_id, True)]
            assert a.post(f"/jobs/{job_id}/cancel", headers=admin).status_code == 200
            assert next_list(ws) == []


def test_live_frames_stored_by_one_replica_reach_a_websocket_client_of_the_other(
    tmp_path, postgres, redis_url
):
    import json

    import numpy as np
    import zmq
    from gnuradio.drift import wire
    from websockets.sync.client import connect

    collector = f"tcp://127.0.0.1:{free_port()}"
    with two_replicas(
        tmp_path, postgres, redis_url, per_replica={"a": {"DRIFT_COLLECTOR_BIND": collector}}
    ) as bases:
        a = httpx.Client(base_url=bases[0] + "/api/v1", timeout=30)
        token = a.post("/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        bearer = token.json()["access_token"]
        # a node enrolled through replica b sends its job's frames to a's collector (the
        # replicas share the collector's Curve key)
        node = sending_node(bases[1])
        job_id = node.job_id
        push = node.socket(collector)
        push.setsockopt(zmq.LINGER, 0)
        ws_url = bases[1].replace("http://", "ws://") + f"/api/v1/ws/jobs/{job_id}?token={bearer}"
        try:
            with connect(ws_url) as ws:
                assert json.loads(ws.recv(timeout=10))["type"] == "job"
                # frames go to replica a's collector; the client is on replica b
                got, seq, deadline = None, 0, time.monotonic() + 20
                while got is None and time.monotonic() < deadline:
                    frame = wire.Frame(
                        wire.PSD,
                        seq,
                        1_764_000_000 + seq,
                        0.0,
                        1e-3,
                        {
                            "job_id": job_id,
                            "node_id": node.node_id,
                            "center_freq_hz": 430.5e6,
                            "bin_hz": 10e3,
                        },
                        np.arange(8, dtype=np.float32) - seq,
                    )
                    push.send_multipart(wire.encode(frame))
                    seq += 1
                    try:
                        while True:
                            msg = json.loads(ws.recv(timeout=0.3))
                            if msg["type"] == "psd":
                                got = msg
                                break
                    except TimeoutError:
                        pass
                assert got is not None, "no live frame reached replica b's client"
                assert got["node_id"] == node.node_id and got["center_freq_hz"] == 430.5e6
                assert got["psd_db"] == [float(v) for v in np.arange(8) - got["seq"]]
        finally:
            push.close()


def test_dispatch_latencies_are_shared_through_redis(redis_url):
    """One replica measures first deliveries; the replica that schedules reads the longest
    of each node's recent ones (16 kept per node)."""
    import uuid

    from drift.orchestrator.dispatch import LATENCY_SAMPLES, RedisLedger

    a, b = RedisLedger(redis_url), RedisLedger(redis_url)
    n1, n2, never = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        a.note_dispatch([(n1, 0.25), (n2, 0.1), (n1, 1.5)])
        assert b.dispatch_latency_s([str(n1), str(n2), str(never)]) == {str(n1): 1.5, str(n2): 0.1}
        a.note_dispatch([(n1, 0.2)] * LATENCY_SAMPLES)  # the old 1.5 s is no longer recent
        assert b.dispatch_latency_s([str(n1)]) == {str(n1): 0.2}
    finally:
        a.close()
        b.close()
