from __future__ import annotations

import itertools

import pytest

from .influx import InfluxServer

_db = itertools.count()


@pytest.fixture(scope="session")
def influx_server(tmp_path_factory):
    server = InfluxServer(tmp_path_factory.mktemp("influxdb")).start()
    yield server
    server.stop()


@pytest.fixture
def influx_url(influx_server):
    """influxdb:// URL of a fresh database on the shared server."""
    return f"influxdb://127.0.0.1:{influx_server.port}/test{next(_db)}"
