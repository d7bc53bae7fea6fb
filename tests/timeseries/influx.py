"""A real InfluxDB 1.x server (Debian's influxd) on loopback ports with its own directories."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class InfluxServer:
    def __init__(self, root: Path):
        binary = shutil.which("influxd") or ("/usr/bin/influxd"
                                             if os.path.exists("/usr/bin/influxd") else None)
        if binary is None:
            message = "influxd is not installed (Debian package influxdb)"
            if os.environ.get("CI"):
                pytest.fail(message + " and CI is set")
            pytest.skip(message)
        self.binary = binary
        self.root = root
        self.port, self.rpc = _port(), _port()
        self.url = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        (root / "influxdb.conf").write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc}"
[meta]
  dir = "{root}/meta"
  logging-enabled = false
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  trace-logging-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
""")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30) -> InfluxServer:
        log = open(self.root / "influxd.log", "ab")
        self.proc = subprocess.Popen([self.binary, "run", "-config",
                                      str(self.root / "influxdb.conf")],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("influxd exited:\n" + (self.root / "influxd.log").read_text()[-2000:])
            try:
                if httpx.get(self.url + "/ping", timeout=1).status_code == 204:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"influxd did not answer within {timeout_s:g} s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
