"""``drift serve`` as a real process: uvicorn on a random loopback port, with its scheduler."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from drift.localnet import wait_for

from .conftest import ADMIN_PASSWORD, SCAN, free_port, sending_node


def wait_up(proc: subprocess.Popen, base: str) -> None:
    """Until ``drift serve`` answers at ``base`` (its output, should it exit first)."""

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"drift serve exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 30, "the server to answer")


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
        wait_up(proc, base)
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


def test_sigterm_stores_the_frames_waiting_in_the_collector_and_exits_0(tmp_path: Path):
    """A stop by SIGTERM (systemd, Kubernetes, ``kill``) is an orderly shutdown: the frames
    already pushed to the collector are all stored, and the process says so and exits with
    0 (uvicorn's own handling re-raised the signal and killed it before any of that)."""
    import numpy as np
    from gnuradio.drift import wire

    from drift.orchestrator.spectrum_store import SpectrumStore

    port, collector = free_port(), f"tcp://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "DRIFT_DATA_DIR": str(tmp_path / "data"),
        "DRIFT_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "DRIFT_ARGON2_TIME_COST": "1",
        "DRIFT_ARGON2_MEMORY_KIB": "64",
        "DRIFT_COLLECTOR_BIND": collector,
    }
    for key in ("DRIFT_DATABASE_URL", "DRIFT_SECRET_KEY", "DRIFT_TIMESERIES_URL"):
        env.pop(key, None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from drift.cli import main; sys.exit(main())",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "info",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    n = 3000
    try:
        wait_up(proc, f"http://127.0.0.1:{port}")
        node = sending_node(f"http://127.0.0.1:{port}")
        push = node.socket(collector)
        for seq in range(n):
            push.send_multipart(
                wire.encode(
                    wire.Frame(
                        wire.PSD,
                        seq,
                        1_764_000_000 + seq,
                        0.0,
                        1e-3,
                        {
                            "job_id": node.job_id,
                            "node_id": node.node_id,
                            "center_freq_hz": 430e6,
                            "bin_hz": 10e3,
                        },
                        np.full(64, -seq, dtype=np.float32),
                    )
                )
            )
        push.close(linger=10_000)  # all handed to the collector's socket
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, out
    assert "coordinator stopped" in out
    assert "objects set aside from garbage collection" in out  # its start-up heap, frozen
    store = SpectrumStore(str(tmp_path / "data" / "spectrum.sqlite"))
    try:
        assert store.count(node.job_id) == n
    finally:
        store.close()


def test_a_busy_port_is_one_line_before_anything_starts(tmp_path: Path):
    """Another process holds the port: drift serve says so in one line and exits 2, without
    first migrating a database, making an admin or starting its collector."""
    import socket

    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    env = {**os.environ, "DRIFT_DATA_DIR": str(tmp_path / "data")}
    env.pop("DRIFT_DATABASE_URL", None)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "drift.cli", "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.close()
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port} on 127.0.0.1 is in use" in lines[0], r.stderr
    assert not (tmp_path / "data").exists()
