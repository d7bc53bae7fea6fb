"""A flood of log-ins does not stall the coordinator: 100 log-ins, 40 at a time, against a
real ``drift serve`` with a real argon2 cost, while a node heartbeats every 120 ms. Password
checks hold no database transaction and take their own bounded share of the machine, so
every heartbeat is acknowledged in under 100 ms (they waited seconds when each log-in held
SQLite's write lock through its argon2 check)."""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from .conftest import ADMIN_PASSWORD
from .served import drift_serve

LOGINS = 100
AT_ONCE = 40
#: the coordinator stores heartbeats together at most every 100 ms: beats further apart than
#: that are each stored at once, so what is measured is the coordinator, not the batching
BEAT_EVERY_S = 0.12
LIMIT_S = 0.100

#: 100 log-ins, 40 at a time: half for a user that does not exist (as costly: the same
#: argon2 check runs), half the admin's; prints the status codes
FLOOD = f"""
import asyncio, json, sys
import httpx

async def main(base, password):
    gate = asyncio.Semaphore({AT_ONCE})
    async with httpx.AsyncClient(base_url=base, timeout=300) as client:
        async def one(i):
            who, pw = ("nobody", "some-password") if i % 2 else ("admin", password)
            async with gate:
                r = await client.post("/api/v1/auth/token", data={{"username": who, "password": pw}})
            return r.status_code
        print(json.dumps(await asyncio.gather(*(one(i) for i in range({LOGINS})))))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_heartbeats_stay_under_100_ms_during_a_login_flood(tmp_path: Path):
    env = {
        # about 70 ms of CPU per check on this machine (the default, 3 and 64 MiB, is 300 ms)
        "DRIFT_ARGON2_TIME_COST": "2",
        "DRIFT_ARGON2_MEMORY_KIB": "32768",
        # the flood is of real checks, not throttled refusals
        "DRIFT_LOGIN_MAX_FAILURES": "100000",
        "DRIFT_LOGIN_MAX_FAILURES_PER_ADDRESS": "100000",
        "DRIFT_PASSWORD_CHECK_QUEUE": "1000",
    }
    with (
        drift_serve(tmp_path, env=env) as served,
        httpx.Client(base_url=served.base, timeout=60) as http,
    ):
        admin = served.admin(http)
        node = served.enroll(http, admin, "roof")
        beat_url = f"/api/v1/nodes/{node['node_id']}/heartbeat"
        node_headers = {"X-Node-Token": node["credential"]}

        flooding = threading.Event()
        done = threading.Event()
        during: list[float] = []
        before: list[float] = []

        def heartbeats() -> None:
            with httpx.Client(base_url=served.base, timeout=30) as beat_http:
                while not done.is_set():
                    in_flood = flooding.is_set()  # it counts if it started in the flood
                    t0 = time.perf_counter()
                    r = beat_http.post(beat_url, headers=node_headers)
                    took = time.perf_counter() - t0
                    assert r.status_code == 200, r.text
                    (during if in_flood else before).append(took)
                    time.sleep(BEAT_EVERY_S)

        beater = threading.Thread(target=heartbeats, daemon=True)
        beater.start()
        time.sleep(1.5)
        flooding.set()
        t0 = time.perf_counter()
        # the flood comes from a process of its own: its 40 connections do not compete with
        # the heartbeats' client for this process's interpreter
        flood = subprocess.run(
            [sys.executable, "-c", FLOOD, served.base, ADMIN_PASSWORD],
            capture_output=True,
            text=True,
            timeout=600,
        )
        flood_s = time.perf_counter() - t0
        assert flood.returncode == 0, flood.stderr
        codes = json.loads(flood.stdout)
        flooding.clear()
        done.set()
        beater.join(30)
    assert sorted(set(codes)) == [200, 401] and codes.count(200) == LOGINS // 2
    assert during, "no heartbeat came back during the flood"
    worst = max(during)
    logging.getLogger(__name__).info(
        "%d log-ins in %.1f s; %d heartbeats during them: median %.1f ms, worst %.1f ms "
        "(before: median %.1f ms)",
        LOGINS,
        flood_s,
        len(during),
        statistics.median(during) * 1e3,
        worst * 1e3,
        statistics.median(before) * 1e3,
    )
    # (before the change: 6 heartbeats in a 6.5 s flood, each waiting about a second)
    assert worst < LIMIT_S, (
        f"a heartbeat took {worst * 1e3:.0f} ms during the flood "
        f"(median {statistics.median(during) * 1e3:.1f} ms)"
    )
    assert len(during) >= 0.5 * flood_s / BEAT_EVERY_S, f"{len(during)} in {flood_s:.1f} s"
