"""``drift serve`` as a real process for the tests that need one: its own data directory,
loopback ports, its whole log (at the level asked for) in a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from drift.localnet import wait_for

from .conftest import ADMIN_PASSWORD, free_port


@dataclass
class Served:
    proc: subprocess.Popen
    base: str
    port: int
    log_path: Path
    data_dir: Path
    env: dict[str, str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def admin(self, http: httpx.Client) -> dict[str, str]:
        r = http.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def enroll(
        self, http: httpx.Client, admin: dict[str, str], name: str, **fields: object
    ) -> dict:
        """Enrol a node without an agent (an RTL-SDR at 50 N 8 E): the enrollment answer
        (``node_id``, ``credential``, ...) and the ``enrollment_token`` it used."""
        token = http.post("/api/v1/nodes/enrollment-tokens", headers=admin).json()["token"]
        r = http.post(
            "/api/v1/nodes/enroll",
            json={
                "token": token,
                "name": name,
                "location": {"lat_deg": 50, "lon_deg": 8},
                "devices": [
                    {
                        "driver": "rtlsdr",
                        "freq_min_hz": 24e6,
                        "freq_max_hz": 1.7e9,
                        "max_bandwidth_hz": 2.4e6,
                    }
                ],
                **fields,
            },
        )
        r.raise_for_status()
        return {**r.json(), "enrollment_token": token}

    def rss_bytes(self) -> int:
        """The server process's resident memory."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


def start(
    data_dir: Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    log_level: str = "info",
    port: int | None = None,
) -> Served:
    port = port or free_port()
    full = {
        **os.environ,
        "DRIFT_DATA_DIR": str(data_dir),
        "DRIFT_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "DRIFT_ARGON2_TIME_COST": "1",
        "DRIFT_ARGON2_MEMORY_KIB": "64",
        "DRIFT_COLLECTOR_BIND": f"tcp://127.0.0.1:{free_port()}",
        "PYTHONUNBUFFERED": "1",
    }
    for key in (
        "DRIFT_DATABASE_URL",
        "DRIFT_SECRET_KEY",
        "DRIFT_REDIS_URL",
        "DRIFT_TIMESERIES_URL",
    ):
        full.pop(key, None)
    full.update(env or {})
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
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
                log_level,
            ],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    served = Served(proc, f"http://127.0.0.1:{port}", port, log_path, data_dir, full)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"drift serve exited:\n{served.log()[-3000:]}")
        try:
            return httpx.get(f"{served.base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 60, "drift serve to answer")
    return served


def stop(served: Served) -> None:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        try:
            served.proc.wait(20)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait(5)


@contextmanager
def drift_serve(tmp_path: Path, **kwargs) -> Iterator[Served]:
    served = start(tmp_path / "data", tmp_path / "coordinator.log", **kwargs)
    try:
        yield served
    finally:
        stop(served)
