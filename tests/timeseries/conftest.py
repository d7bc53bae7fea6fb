from __future__ import annotations

import itertools

import httpx
import pytest

from .influx import InfluxServer, V2Gateway

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


#: the API token the InfluxDB 2 gateway accepts
V2_TOKEN = "drift-test-token-0123456789"


@pytest.fixture(scope="session")
def influx2_gateway(influx_server):
    gateway = V2Gateway(influx_server.url, V2_TOKEN).start()
    yield gateway
    gateway.stop()


def create_database(influx_server, name: str, *statements: str) -> None:
    """What an operator does before pointing DRIFT at a 2.x bucket: create it."""
    for q in (f'CREATE DATABASE "{name}"', *statements):
        r = httpx.post(influx_server.url + "/query", data={"q": q})
        r.raise_for_status()


@pytest.fixture
def influx2_url(influx_server, influx2_gateway):
    """influxdb2:// URL of a fresh, existing bucket behind the 2.x gateway (the token is
    V2_TOKEN, passed to open_store)."""
    name = f"bucket{next(_db)}"
    create_database(influx_server, name)
    return f"influxdb2://127.0.0.1:{influx2_gateway.port}/{name}?org=drift"
