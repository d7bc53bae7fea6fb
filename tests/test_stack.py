"""The container images and the compose stack, as an operator runs them (``make images``,
``make stack-up``): built with podman (or docker), started with two simulated nodes, driven over
REST from this host, restarted mid-job, and torn down.

Oracles: the scenario's truth (the emitter a scan must find, at its frequency, on both nodes),
the engine's own view of the containers (their user, what is left after ``down``), and the
job's status after the coordinator's container was stopped and started again mid-job.

Needs podman or docker: without either the test is skipped with the reason, except under CI
(``CI`` set), where it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from drift.localnet import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
CONTAINERS = ROOT / "scripts" / "containers"
SCENARIO = yaml.safe_load((ROOT / "examples" / "scenarios" / "city.yaml").read_text())
BEACON_HZ = float(next(e["frequency_hz"] for e in SCENARIO["emitters"] if e["id"] == "beacon"))
BIN_HZ = 2e3
HALF_SPAN_HZ = 100e3
NODES = 2


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 1800, check=True):
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def engine_or_skip() -> str:
    proc = run(CONTAINERS, "engine", check=False, timeout=120)
    if proc.returncode != 0:
        why = proc.stderr.strip() or "no container engine"
        if os.environ.get("CI"):
            pytest.fail(f"{why} and CI is set: the images must be tested here")
        pytest.skip(why)
    return proc.stdout.strip()


class Stack:
    """One compose project of its own (name, ports, secrets, volumes) on this host."""

    def __init__(self, workdir: Path):
        self.project = f"drift-test-{uuid.uuid4().hex[:8]}"
        self.port, self.collector_port = free_port(), free_port()
        self.env_file = workdir / "stack.env"
        self.password = secrets.token_urlsafe(24)
        pw = {k: secrets.token_urlsafe(24) for k in ("pg", "redis", "influx", "key")}
        self.env_file.write_text(
            f"POSTGRES_PASSWORD={pw['pg']}\nREDIS_PASSWORD={pw['redis']}\n"
            f"INFLUXDB_PASSWORD={pw['influx']}\nDRIFT_SECRET_KEY={pw['key']}\n"
            f"DRIFT_ADMIN_PASSWORD={self.password}\n"
        )
        self.env = {
            **os.environ,
            "DRIFT_STACK_ENV": str(self.env_file),
            "DRIFT_HTTP_PORT": str(self.port),
            "DRIFT_COLLECTOR_PORT": str(self.collector_port),
            "DRIFT_SIM_NODES": str(NODES),
        }
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.base + "/api/v1", timeout=30)

    def compose(self, *args: str, timeout: float = 900, check=True):
        return run(
            CONTAINERS,
            "compose",
            "-p",
            self.project,
            *args,
            env=self.env,
            timeout=timeout,
            check=check,
        )

    def engine(self, *args: str, check=True):
        return run(CONTAINERS, *args, env=self.env, timeout=300, check=check)

    def containers(self) -> list[dict]:
        out = self.engine(
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--format",
            "json",
        ).stdout
        return (
            json.loads(out or "[]")
            if out.strip().startswith("[")
            else [json.loads(line) for line in out.splitlines() if line.strip()]
        )

    def volumes(self) -> list[str]:
        out = self.engine(
            "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={self.project}"
        ).stdout
        return out.split()

    def container(self, service: str) -> str:
        names = [
            (c.get("Names") or [c.get("Name")])[0]
            if isinstance(c.get("Names"), list)
            else c.get("Names") or c.get("Name")
            for c in self.containers()
        ]
        found = [n for n in names if f"_{service}_" in n or n.endswith(f"-{service}-1")]
        assert found, f"no {service} container among {names}"
        return found[0]

    def login(self) -> None:
        r = self.http.post("/auth/token", data={"username": "admin", "password": self.password})
        r.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def healthy(self) -> bool:
        try:
            return httpx.get(self.base + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def online(self) -> list[dict]:
        return [n for n in self.http.get("/nodes").json() if n["status"] == "online"]

    def job(self, job_id: str) -> dict:
        r = self.http.get(f"/jobs/{job_id}")
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    engine_or_skip()
    t0 = time.monotonic()
    run(CONTAINERS, "images", timeout=2400)
    build_s = time.monotonic() - t0
    s = Stack(tmp_path_factory.mktemp("stack"))
    try:
        t1 = time.monotonic()
        s.compose("--profile", "sim", "up", "-d")
        wait_for(s.healthy, 180, "the coordinator's /healthz from the host")
        s.login()
        wait_for(lambda: len(s.online()) >= NODES, 240, f"{NODES} simulated nodes online")
        print(
            f"\nimages built (or found cached) in {build_s:.0f} s; "
            f"stack up to {NODES} nodes online in {time.monotonic() - t1:.0f} s"
        )
        yield s
    except BaseException:
        logs = s.compose("--profile", "sim", "logs", timeout=120, check=False)
        print(logs.stdout[-8000:], logs.stderr[-2000:])
        raise
    finally:
        down = s.compose("--profile", "sim", "down", "-v", timeout=300, check=False)
        left = s.containers()
        volumes = s.volumes()
        if down.returncode != 0:
            print(down.stdout[-3000:], down.stderr[-3000:])
        assert not left, f"containers left behind: {left}"
        assert not volumes, f"volumes left behind: {volumes}"


def submit_scan(s: Stack, duration_s: float) -> str:
    r = s.http.post(
        "/jobs",
        json={
            "type": "spectrum_scan",
            "start_freq_hz": BEACON_HZ - HALF_SPAN_HZ,
            "stop_freq_hz": BEACON_HZ + HALF_SPAN_HZ,
            "bin_hz": BIN_HZ,
            "interval_s": 1.0,
            "duration_s": duration_s,
            "node_count": NODES,
        },
    )
    assert r.status_code in (200, 201, 202), r.text
    return r.json()["id"]


def peak_hz(frames: list[dict], low_hz: float, high_hz: float) -> float:
    """The strongest bin between `low_hz` and `high_hz` of a node's mean spectrum (the frames
    of each hop averaged; PSD frames are fftshifted: bin k is at centre + (k - n // 2) * bin_hz,
    docs/wire-format.md)."""
    hops: dict[tuple[float, float, int], list[list[float]]] = {}
    for f in frames:
        psd = [-np.inf if v is None else v for v in f["psd_db"]]
        hops.setdefault((f["center_freq_hz"], f["bin_hz"], len(psd)), []).append(psd)
    best = (-np.inf, 0.0)
    for (centre, bin_hz, n), rows in hops.items():
        mean = 10 * np.log10(np.mean(10 ** (np.asarray(rows, dtype=float) / 10), axis=0))
        freqs = centre + (np.arange(n) - n // 2) * bin_hz
        inside = (freqs >= low_hz) & (freqs <= high_hz)
        if inside.any():
            k = int(np.argmax(np.where(inside, mean, -np.inf)))
            best = max(best, (mean[k], freqs[k]))
    return best[1]


def test_a_scan_over_rest_comes_back_from_both_simulated_nodes(stack):
    """POST /jobs from the host, GET /spectrum back: each node's spectrum peaks at the
    scenario's beacon (a CW carrier inside the scanned band), within two bins."""
    job_id = submit_scan(stack, duration_s=4.0)
    final = wait_for(
        lambda: (j := stack.job(job_id))["status"] in ("completed", "failed", "cancelled") and j,
        180,
        "the scan to finish",
    )
    assert final["status"] == "completed", final
    frames = stack.http.get(f"/spectrum/{job_id}", params={"limit": 10000}).json()["frames"]
    by_node: dict[str, list[dict]] = {}
    for f in frames:
        by_node.setdefault(f["node_id"], []).append(f)
    assert len(by_node) == NODES, f"frames from {sorted(by_node)}"
    # a node's LO error shifts what it sees (the scenario's truth: up to 3 ppm here)
    lo_ppm = max(n["clock"].get("lo_error_ppm", 0.0) for n in SCENARIO["nodes"][:NODES])
    for node, fs in by_node.items():
        found = peak_hz(fs, BEACON_HZ - HALF_SPAN_HZ, BEACON_HZ + HALF_SPAN_HZ)
        tolerance = 2 * fs[0]["bin_hz"] + float(lo_ppm) * 1e-6 * BEACON_HZ
        assert abs(found - BEACON_HZ) <= tolerance, (node, found, BEACON_HZ, tolerance, len(fs))


def test_the_containers_run_as_an_unprivileged_user(stack):
    for service in ("coordinator", "sim-node"):
        uid = stack.engine("exec", stack.container(service), "id", "-u").stdout.strip()
        assert uid.isdigit() and int(uid) != 0, (service, uid)


def test_the_coordinator_restarts_mid_job_and_the_job_completes(stack):
    """The coordinator's container stopped while a scan runs and started again: the job (in
    PostgreSQL) is still there, the nodes come back, and it completes with frames stored
    both before and after the restart."""
    job_id = submit_scan(stack, duration_s=30.0)
    wait_for(lambda: stack.job(job_id)["status"] == "running", 120, "the scan to run")
    stored_before = wait_for(lambda: count(stack, job_id), 60, "the scan's first frames")
    coordinator = stack.container("coordinator")
    stack.engine("stop", "-t", "20", coordinator)
    assert not stack.healthy()
    stack.engine("start", coordinator)
    wait_for(stack.healthy, 180, "the coordinator to answer again")
    stack.login()
    final = wait_for(
        lambda: (j := stack.job(job_id))["status"] in ("completed", "failed", "cancelled") and j,
        180,
        "the scan to finish after the restart",
    )
    assert final["status"] == "completed", final
    # the nodes went on scanning (and spooled what the collector could not take meanwhile)
    assert count(stack, job_id) > stored_before


def count(s: Stack, job_id: str) -> int:
    return len(s.http.get(f"/spectrum/{job_id}", params={"limit": 10000}).json()["frames"])
