"""``drift serve`` as a real process: uvicorn on a random loopback port, with its scheduler."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from drift.localnet import wait_for

from .conftest import ADMIN_PASSWORD, SCAN, free_port


def test_serve_places_a_job_over_real_http(tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "DRIFT_DATA_DIR": str(tmp_path / "data"),
        "DRIFT_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "DRIFT_ARGON2_TIME_COST": "1",
        "DRIFT_ARGON2_MEMORY_KIB": "64",
        "DRIFT_SCHEDULER_INTERVAL_S": "0.1",
    }
    env.pop("DRIFT_DATABASE_URL", None)
    env.pop("DRIFT_SECRET_KEY", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from drift.api import serve; sys.exit(serve(sys.argv[1:]))",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"drift serve exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 30, "the server to answer")
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/api/v1/jobs").status_code == 401
            token = http.post(
                "/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
            ).json()["access_token"]
            admin = {"Authorization": f"Bearer {token}"}
            enroll_token = http.post("/api/v1/nodes/enrollment-tokens", headers=admin).json()
            node = http.post(
                "/api/v1/nodes/enroll",
                json={
                    "token": enroll_token["token"],
                    "name": "roof",
                    "location": {"lat_deg": 50, "lon_deg": 8},
                    "devices": [
                        {
                            "driver": "rtlsdr",
                            "freq_min_hz": 24e6,
                            "freq_max_hz": 1.7e9,
                            "max_bandwidth_hz": 2.4e6,
                        }
                    ],
                },
            ).json()
            job = http.post("/api/v1/jobs", json=SCAN, headers=admin).json()

            def scheduled() -> dict | None:
                current = http.get(f"/api/v1/jobs/{job['id']}", headers=admin).json()
                return current if current["status"] == "scheduled" else None

            placed = wait_for(scheduled, 20, "the scheduler to place the job")
            assert placed["allocated_nodes"] == [node["node_id"]]
            work = http.get(
                f"/api/v1/nodes/{node['node_id']}/assignments",
                headers={"X-Node-Token": node["credential"]},
            ).json()
            assert [a["job_id"] for a in work] == [job["id"]]
        # the generated signing key stays in the data directory, readable by its owner only
        assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait(timeout=5)
