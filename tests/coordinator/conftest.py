"""Coordinator test set-up: a database per test (SQLite file, or a database on a PostgreSQL
server this session starts), an app on it, and helpers to log in and enroll nodes.

The PostgreSQL server: ``initdb`` into a temporary folder, ``pg_ctl start`` on a free loopback
port with its socket in that folder, stopped at the end. Missing server binaries skip its tests,
or fail them when ``CI`` is set. Each test's database is a copy of one migrated template.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from drift.api import create_app
from drift.orchestrator.migrations import upgrade
from drift.orchestrator.settings import Settings
from drift.orchestrator.storage import make_engine, make_session_factory

ADMIN_PASSWORD = "admin-password-for-tests"
PASSWORD = "a-long-enough-password"
SECRET = "k" * 48


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path | None:
    if os.environ.get("DRIFT_PG_BINDIR"):
        return Path(os.environ["DRIFT_PG_BINDIR"])
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


@dataclass
class PostgresServer:
    port: int
    template: str = "drift_template"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return self.url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    bindir = _pg_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        message = "PostgreSQL server binaries (initdb, pg_ctl) not found"
        if os.environ.get("CI"):
            pytest.fail(message + " and CI is set")
        pytest.skip(message)
    as_postgres: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="drift-pg-"))
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(base, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data = base / "data"

    def run(*cmd: str) -> None:
        subprocess.run([*as_postgres, *cmd], check=True, capture_output=True, timeout=120)

    run(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    )
    server: PostgresServer | None = None
    for _ in range(3):
        port = free_port()
        options = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        try:
            run(
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(base / "log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            )
        except subprocess.CalledProcessError:
            continue  # the port was taken in between: try another
        server = PostgresServer(port)
        break
    if server is None:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start:\n{log}")
    try:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{server.template}"')
        upgrade(server.url(server.template))
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh, migrated database for this test."""
    if request.param == "sqlite":
        path = tmp_path / "coordinator.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


def make_settings(data_dir: Path, db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": db_url,
        "secret_key": SecretStr(SECRET),
        "admin_password": SecretStr(ADMIN_PASSWORD),
        "argon2_time_cost": 1,
        "argon2_memory_kib": 64,
        "retry_backoff_initial_s": 5.0,
        "retry_backoff_max_s": 60.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path / "data", db_url)


@pytest.fixture
def sessions(settings: Settings):
    engine = make_engine(settings.sqlalchemy_url)
    yield make_session_factory(engine)
    engine.dispose()


class Api:
    """A TestClient with log-in and enrollment helpers."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self._headers: dict[str, dict[str, str]] = {}

    def login(self, username: str, password: str) -> dict[str, str]:
        r = self.client.post(
            "/api/v1/auth/token", data={"username": username, "password": password}
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    @property
    def admin(self) -> dict[str, str]:
        if "admin" not in self._headers:
            self._headers["admin"] = self.login("admin", ADMIN_PASSWORD)
        return self._headers["admin"]

    def user(self, role: str, permissions: tuple[str, ...] = ()) -> dict[str, str]:
        """Headers of a (new, cached) user with this role and these permissions."""
        key = f"{role}:{','.join(permissions)}"
        if key not in self._headers:
            username = f"{role}-{'-'.join(permissions) or 'plain'}"
            r = self.client.post(
                "/api/v1/users",
                json={
                    "username": username,
                    "password": PASSWORD,
                    "role": role,
                    "permissions": list(permissions),
                },
                headers=self.admin,
            )
            assert r.status_code == 201, r.text
            self._headers[key] = self.login(username, PASSWORD)
        return self._headers[key]

    def enroll(
        self,
        name: str,
        lat_deg: float,
        lon_deg: float,
        *,
        freq_min_hz: float = 24e6,
        freq_max_hz: float = 1.7e9,
        max_bandwidth_hz: float = 2.4e6,
        tx: bool = False,
        sync: str = "gps",
        capabilities: dict[str, Any] | None = None,
        heartbeat_timeout_s: float = 30.0,
    ) -> tuple[str, dict[str, str]]:
        """Enroll a node; its id and the headers it authenticates with."""
        r = self.client.post("/api/v1/nodes/enrollment-tokens", headers=self.admin)
        assert r.status_code == 201, r.text
        r = self.client.post(
            "/api/v1/nodes/enroll",
            json={
                "token": r.json()["token"],
                "name": name,
                "location": {"lat_deg": lat_deg, "lon_deg": lon_deg},
                "devices": [
                    {
                        "driver": "hackrf" if tx else "rtlsdr",
                        "freq_min_hz": freq_min_hz,
                        "freq_max_hz": freq_max_hz,
                        "max_bandwidth_hz": max_bandwidth_hz,
                        "tx": tx,
                    }
                ],
                "capabilities": capabilities or {},
                "sync": {"source": sync},
                "heartbeat_timeout_s": heartbeat_timeout_s,
            },
        )
        assert r.status_code == 201, r.text
        body = r.json()
        return body["node_id"], {"X-Node-Token": body["credential"]}


@pytest.fixture
def app(settings: Settings):
    return create_app(settings)


@pytest.fixture
def api(app) -> Iterator[Api]:
    with TestClient(app) as client:
        yield Api(client)


SCAN = {
    "type": "spectrum_scan",
    "start_freq_hz": 88e6,
    "stop_freq_hz": 108e6,
    "bin_hz": 10e3,
    "duration_s": 60,
    "interval_s": 1,
}


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free loopback port with its own directory, no persistence."""
    import time

    import redis

    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if binary is None:
        message = "redis-server not found (Debian package redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message + " and CI is set")
        pytest.skip(message)
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="drift-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            workdir,
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            os.path.join(workdir, "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    for _ in range(100):
        with contextlib.suppress(redis.exceptions.ConnectionError):
            if client.ping():
                break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("redis-server did not answer")
    client.close()
    yield url
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class SendingNode:
    """A node enrolled over real HTTP with a Curve key pair made here, and a job placed on
    it, so that a test can send that job's frames as that node to a real collector."""

    node_id: str
    credential: str
    keys: Any  # drift.curve.KeyPair
    server_key: str
    job_id: str

    def socket(self, endpoint: str):
        """A PUSH socket connected to the collector at `endpoint` as this node."""
        import zmq

        from drift.curve import make_client

        sock = zmq.Context.instance().socket(zmq.PUSH)
        make_client(sock, self.server_key, self.keys)
        sock.connect(endpoint)
        return sock


def sending_node(base: str, job: dict[str, Any] | None = None) -> SendingNode:
    """Enrol a node with a Curve key at the coordinator at `base` (admin: ADMIN_PASSWORD),
    and place a job on it (the scheduler must run)."""
    import time

    import httpx

    from drift.curve import KeyPair

    http = httpx.Client(base_url=base + "/api/v1", timeout=30)
    try:
        token = http.post("/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
        keys = KeyPair.new()
        r = http.post(
            "/nodes/enroll",
            json={
                "token": http.post("/nodes/enrollment-tokens", headers=admin).json()["token"],
                "name": f"sender-{uuid.uuid4().hex[:8]}",
                "location": {"lat_deg": 50.0, "lon_deg": 8.0},
                "devices": [
                    {
                        "driver": "rtlsdr",
                        "freq_min_hz": 24e6,
                        "freq_max_hz": 1.7e9,
                        "max_bandwidth_hz": 2.4e6,
                    }
                ],
                "heartbeat_timeout_s": 3600,
                "curve_public_key": keys.public,
            },
        )
        assert r.status_code == 201, r.text
        enrolled = r.json()
        node_id = enrolled["node_id"]
        r = http.post("/jobs", json={**(job or SCAN), "node_ids": [node_id]}, headers=admin)
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 30
        while not http.get(f"/jobs/{job_id}", headers=admin).json()["assignments"]:
            assert time.monotonic() < deadline, "the job was not placed on the node"
            time.sleep(0.1)
        return SendingNode(
            node_id,
            enrolled["credential"],
            keys,
            enrolled["data_plane"]["server_public_key"],
            job_id,
        )
    finally:
        http.close()


@pytest.fixture(scope="module")
def influx_server(tmp_path_factory):
    """A real InfluxDB 1.x for one test module (missing influxd fails under CI, else skips)."""
    from tests.timeseries.influx import InfluxServer

    server = InfluxServer(tmp_path_factory.mktemp("influxdb")).start()
    yield server
    server.stop()
