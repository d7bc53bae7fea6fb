"""A whole DRIFT network on one machine: a coordinator and simulated nodes as real processes.

`make demo` and the end-to-end tests use it. Every part is the real program (``drift serve``,
``drift node``) started as its own process on loopback ports; this module only starts them,
enrols the nodes with one-time tokens over REST, and talks to the API as a client would.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from drift.tls import client_context


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NetworkError(RuntimeError):
    pass


def wait_for(
    condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.2
) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise NetworkError(f"timed out after {timeout_s:g} s waiting for {what}")


@dataclass(frozen=True)
class TLSFiles:
    """A coordinator's server certificate and key, and the CA file clients check it with."""

    cert: Path
    key: Path
    ca: Path


class LocalNetwork:
    """Coordinator + one node agent per simulated node of `scenario`, under `workdir`.

    Use as a context manager; everything is stopped on exit. `env` adds settings for the
    coordinator (``DRIFT_*``), e.g. a shorter heartbeat timeout for tests.
    """

    def __init__(
        self,
        workdir: Path | str,
        scenario: Path | str,
        node_ids: Sequence[str],
        env: dict[str, str] | None = None,
        heartbeat_interval_s: float = 1.0,
        heartbeat_timeout_s: float = 6.0,
        device_options: str = "",
        node_options: dict[str, Any] | None = None,
        tls: TLSFiles | None = None,
        device: str = "sim={scenario},node={node}",
        node_device_options: dict[str, str] | None = None,
        per_node_options: dict[str, dict[str, Any]] | None = None,
    ):
        self.workdir = Path(workdir).resolve()
        self.scenario = Path(scenario).resolve()
        self.node_ids = list(node_ids)
        self.port = free_port()
        self.collector_port = free_port()
        #: the coordinator's server certificate, key and the CA that signed it: HTTPS, and
        #: nodes authenticate with client certificates
        self.tls = tls
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(16)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.env = {
            **os.environ,
            "DRIFT_DATA_DIR": str(self.workdir / "coordinator"),
            "DRIFT_ADMIN_PASSWORD": self.password,
            "DRIFT_COLLECTOR_BIND": f"tcp://127.0.0.1:{self.collector_port}",
            "DRIFT_SCHEDULER_INTERVAL_S": "0.5",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        for key in (
            "DRIFT_DATABASE_URL",
            "DRIFT_SECRET_KEY",
            "DRIFT_REDIS_URL",
            "DRIFT_TIMESERIES_URL",
        ):
            if env is None or key not in env:
                self.env.pop(key, None)
        #: each node's device string: {scenario} and {node} filled in; "driver=drift,
        #: scenario={scenario},node={node}" gives SoapySDR radios (SoapyDRIFT), whose
        #: node.yaml then says where the node is and its time source, as a real one's would
        self.device = device
        #: appended to each node's device string, e.g. ",realtime=1" to pace the simulator
        self.device_options = device_options
        #: appended to one node's device string only (fault injection, e.g. unplug_after=)
        self.node_device_options = dict(node_device_options or {})
        #: more node.yaml settings for every node (e.g. capture_prestart_s)
        self.node_options = dict(node_options or {})
        #: more node.yaml settings for one node (e.g. its transmit section)
        self.per_node_options = {k: dict(v) for k, v in (per_node_options or {}).items()}
        self.coordinator: subprocess.Popen | None = None
        self.nodes: dict[str, subprocess.Popen] = {}
        self.node_uuid: dict[str, str] = {}
        self.http = httpx.Client(base_url=self.base + "/api/v1", timeout=30, verify=self.verify)
        self._headers: dict[str, str] = {}

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """How clients of this network check the coordinator's certificate."""
        return client_context(self.tls.ca) if self.tls else True

    # -- processes ---------------------------------------------------------------------------

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.workdir / f"{log_name}.log", "ab")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "drift.cli", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        finally:
            log.close()

    def log_text(self, name: str) -> str:
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def start_coordinator(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        tls = ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)] if self.tls else []
        self.coordinator = self._spawn(
            [
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                *tls,
            ],
            "coordinator",
        )

        def up():
            if self.coordinator.poll() is not None:
                raise NetworkError("drift serve exited:\n" + self.log_text("coordinator")[-3000:])
            try:
                r = httpx.get(self.base + "/healthz", timeout=1, verify=self.verify)
                return r.status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 60, "the coordinator to answer")
        r = self.http.post("/auth/token", data={"username": "admin", "password": self.password})
        r.raise_for_status()
        self._headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    def stop_coordinator(self, sig: int = signal.SIGTERM) -> None:
        if self.coordinator is not None and self.coordinator.poll() is None:
            self.coordinator.send_signal(sig)
            try:
                self.coordinator.wait(20)
            except subprocess.TimeoutExpired:
                self.coordinator.kill()
                self.coordinator.wait(5)

    def node_config(self, node_id: str) -> Path:
        return self.workdir / f"node-{node_id}.yaml"

    def start_node(self, node_id: str) -> None:
        cfg = self.node_config(node_id)
        if not cfg.exists():
            token = self.api("POST", "/nodes/enrollment-tokens")["token"]
            cfg.write_text(
                yaml.safe_dump(
                    {
                        "coordinator": self.base,
                        "enrollment_token": token,
                        "name": node_id,
                        "device": self.device.format(scenario=self.scenario, node=node_id)
                        + self.device_options
                        + self.node_device_options.get(node_id, ""),
                        **self._declared(node_id),
                        "state_dir": str(self.workdir / f"node-{node_id}"),
                        "collector": f"tcp://127.0.0.1:{self.collector_port}",
                        **({"ca_file": str(self.tls.ca)} if self.tls else {}),
                        "heartbeat_interval_s": self.heartbeat_interval_s,
                        "heartbeat_timeout_s": self.heartbeat_timeout_s,
                        **self.node_options,
                        **self.per_node_options.get(node_id, {}),
                    }
                )
            )
        self.nodes[node_id] = self._spawn(["node", "--config", str(cfg)], f"node-{node_id}")

    def _declared(self, node_id: str) -> dict[str, Any]:
        """A node that is not sim=: its node.yaml location and time source, from the
        scenario (a simulated node's agent reads them from the scenario itself)."""
        if self.device.startswith("sim="):
            return {}
        from drift.sim import load_scenario

        node = load_scenario(self.scenario).node(node_id)
        p, clock = node.position, node.clock
        sync = {"source": {"none": "system"}.get(clock.source, clock.source)}
        if clock.uncertainty_s:
            sync["uncertainty_s"] = clock.uncertainty_s
        return {"location": {"lat_deg": p.lat, "lon_deg": p.lon, "alt_m": p.alt}, "sync": sync}

    def kill_node(self, node_id: str, sig: int = signal.SIGKILL) -> None:
        proc = self.nodes[node_id]
        proc.send_signal(sig)
        proc.wait(20)

    def wait_nodes_online(self, timeout_s: float = 60) -> dict[str, str]:
        def online():
            for name, proc in self.nodes.items():
                if proc.poll() is not None:
                    raise NetworkError(
                        f"node {name} exited:\n" + self.log_text(f"node-{name}")[-3000:]
                    )
            rows = self.api("GET", "/nodes")
            names = {n["name"]: n["id"] for n in rows if n["status"] == "online"}
            return names if all(n in names for n in self.nodes) else None

        names = wait_for(online, timeout_s, "every node to enrol and come online", 0.5)
        self.node_uuid.update(names)
        return names

    def start(self) -> LocalNetwork:
        """Start from nothing: a previous run's state under `workdir` is removed first."""
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.start_coordinator()
        for node_id in self.node_ids:
            self.start_node(node_id)
        if self.node_ids:
            self.wait_nodes_online()
        return self

    def close(self) -> None:
        for proc in self.nodes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.nodes.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.stop_coordinator()
        self.http.close()

    def __enter__(self) -> LocalNetwork:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the REST API --------------------------------------------------------------------------

    def api(self, method: str, path: str, **kw) -> Any:
        r = self.http.request(method, path, headers=self._headers, **kw)
        if r.status_code >= 400:
            raise NetworkError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def enroll(
        self,
        name: str,
        lat_deg: float,
        lon_deg: float,
        *,
        max_jobs: int = 1,
        heartbeat_timeout_s: float = 600,
        sync: str = "gps",
        curve_public_key: str | None = None,
    ) -> tuple[str, str]:
        """Enrol a node without an agent (an RTL-SDR), with this Curve public key for its
        frames if given; returns its id and credential."""
        token = self.api("POST", "/nodes/enrollment-tokens")["token"]
        r = self.http.post(
            "/nodes/enroll",
            json={
                "token": token,
                "name": name,
                "location": {"lat_deg": lat_deg, "lon_deg": lon_deg},
                "devices": [
                    {
                        "driver": "rtlsdr",
                        "freq_min_hz": 24e6,
                        "freq_max_hz": 1.7e9,
                        "max_bandwidth_hz": 2.4e6,
                    }
                ],
                "capabilities": {"max_jobs": max_jobs},
                "sync": {"source": sync},
                "heartbeat_timeout_s": heartbeat_timeout_s,
                **({"curve_public_key": curve_public_key} if curve_public_key else {}),
            },
        )
        if r.status_code != 201:
            raise NetworkError(f"enrollment of {name}: {r.status_code} {r.text[:300]}")
        return r.json()["node_id"], r.json()["credential"]

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the coordinator's Prometheus metrics (0 when it has none yet)."""
        from prometheus_client.parser import text_string_to_metric_families

        r = self.http.get(self.base + "/metrics", headers=self._headers)
        r.raise_for_status()
        for family in text_string_to_metric_families(r.text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return sample.value
        return 0.0

    def submit(self, job: dict[str, Any]) -> str:
        return self.api("POST", "/jobs", json=job)["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.api("GET", f"/jobs/{job_id}")

    def wait_job(
        self,
        job_id: str,
        timeout_s: float = 120,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        def done():
            job = self.job(job_id)
            if progress:
                progress(job)
            return job if job["status"] in ("completed", "failed", "cancelled") else None

        return wait_for(done, timeout_s, f"job {job_id} to finish", 0.5)

    def spectrum(
        self, job_id: str, node: str | None = None, limit: int = 10000
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if node is not None:
            params["node_id"] = self.node_uuid.get(node, node)
        out = self.api("GET", f"/spectrum/{job_id}", params=params)
        return out["frames"] if isinstance(out, dict) else out


class InfluxServer:
    """Debian's ``influxd`` (InfluxDB 1.x) on free loopback ports with its own directories
    under `root`: for tests and benchmarks. `start` can be called again after `stop` (same
    ports, same data)."""

    def __init__(self, root: Path | str):
        binary = shutil.which("influxd") or "/usr/bin/influxd"
        if not os.path.exists(binary):
            raise FileNotFoundError("influxd is not installed (Debian package influxdb)")
        self.binary = binary
        self.root = Path(root)
        self.port, self.rpc = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root.mkdir(parents=True, exist_ok=True)
        r = self.root
        (r / "influxdb.conf").write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{self.rpc}"\n'
            f'[meta]\n  dir = "{r}/meta"\n  logging-enabled = false\n'
            f'[data]\n  dir = "{r}/data"\n  wal-dir = "{r}/wal"\n'
            f"  query-log-enabled = false\n  trace-logging-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            f"[monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30) -> InfluxServer:
        with open(self.root / "influxd.log", "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "run", "-config", str(self.root / "influxdb.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def up():
            if self.proc.poll() is not None:
                raise NetworkError(
                    "influxd exited:\n" + (self.root / "influxd.log").read_text()[-2000:]
                )
            try:
                return httpx.get(self.url + "/ping", timeout=1).status_code == 204
            except httpx.TransportError:
                return False

        wait_for(up, timeout_s, "influxd to answer", 0.1)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
