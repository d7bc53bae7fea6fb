"""Device telemetry and calibration state through a real coordinator: heartbeats carrying
per-device metrics land in the time-series store's ``device_metrics`` series (embedded and a real
InfluxDB 1.x) and in the /metrics gauges, calibration records in the devices table and GET
/nodes, and the allocator prefers a calibrated node of two otherwise equal ones.

Oracles: the values the heartbeats carried, and the records' own times."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
from fastapi.testclient import TestClient

from drift.api.app import create_app
from drift.localnet import wait_for
from drift.orchestrator.scheduler import Scheduler
from drift.orchestrator.timeseries import open_store

from .conftest import SCAN, Api, make_settings
from .test_metrics import _samples, _value


@pytest.fixture(params=["embedded", "influxdb"])
def coordinator(request, tmp_path, sqlite_template):
    """An app whose time series live in the embedded store or a real InfluxDB 1.x, and a
    second handle on that store to read what the coordinator wrote."""
    db = tmp_path / "coordinator.db"
    shutil.copy(sqlite_template, db)
    url = None
    if request.param == "influxdb":
        port = request.getfixturevalue("influx_server").port
        url = f"influxdb://127.0.0.1:{port}/t{tmp_path.name}"
    settings = make_settings(
        tmp_path / "data", f"sqlite:///{db}", collector_bind="", timeseries_url=url
    )
    with TestClient(create_app(settings)) as client:
        store = open_store(url, settings.data_dir)
        yield Api(client), store, settings
        store.close()


def _beat(api: Api, node_id, headers, **body):
    r = api.client.post(f"/api/v1/nodes/{node_id}/heartbeat", json=body, headers=headers)
    assert r.status_code == 200, r.text


HEALTH = {"cpu_percent": 5.0, "running_jobs": 1}
RTL = {
    "driver": "rtlsdr",
    "temperature_c": 41.25,
    "sample_rate_hz": 2.4e6,
    "dropped_samples": 1554,
    "overflows": 2,
    "sync_uncertainty_s": 2e-8,
    "clock_locked": True,
}


def test_device_metrics_reach_the_device_metrics_series_and_the_gauges(coordinator):
    api, store, _ = coordinator
    node_id, headers = api.enroll("roof", 48.1, 11.5)
    (device,) = api.client.get(f"/api/v1/nodes/{node_id}", headers=api.admin).json()["devices"]
    t0 = dt.datetime.now(dt.UTC).timestamp()
    # a device the node never enrolled is not the coordinator's to keep
    stranger = {"driver": "hackrf", "serial": "x1", "temperature_c": 99.0, "overflows": 5}
    _beat(api, node_id, headers, health={**HEALTH, "devices": [RTL, stranger]})
    _beat(api, node_id, headers, health={**HEALTH, "devices": [{**RTL, "overflows": 3}]})

    # written by the coordinator's own task, after the heartbeats were acknowledged
    points = wait_for(
        lambda: len(store.device_metrics(node_id)) >= 2 and store.device_metrics(node_id),
        10,
        "the device metrics in the store",
    )
    assert len(points) == 2 and {p.device_id for p in points} == {device["id"]}
    first, second = points
    assert t0 - 1 <= first.time <= second.time <= dt.datetime.now(dt.UTC).timestamp()
    assert (first.temperature, first.sample_rate, first.dropped_samples, first.overflows) == (
        41.25,
        2.4e6,
        1554,
        2,
    )
    assert first.sync_uncertainty_s == 2e-8 and second.overflows == 3

    samples = _samples(api.client.get("/metrics", headers=api.admin).text)
    labels = {"node": node_id, "device": "rtlsdr"}
    for name, value in [
        ("drift_device_temperature_celsius", 41.25),
        ("drift_device_sample_rate_hz", 2.4e6),
        ("drift_device_dropped_samples", 1554),
        ("drift_device_overflows", 3),
        ("drift_device_sync_uncertainty_seconds", 2e-8),
    ]:
        assert samples.get((name, tuple(sorted(labels.items())))) == value, name
    assert not [k for k in samples if dict(k[1]).get("device") == "hackrf:x1"]

    # idle: no sample rate, and its series is gone (no stale value)
    idle = {k: v for k, v in RTL.items() if k != "sample_rate_hz"}
    _beat(api, node_id, headers, health={**HEALTH, "devices": [idle]})
    samples = _samples(api.client.get("/metrics", headers=api.admin).text)
    assert ("drift_device_sample_rate_hz", tuple(sorted(labels.items()))) not in samples
    assert _value(samples, "drift_device_temperature_celsius", **labels) == 41.25


def test_device_metrics_are_bounded(coordinator):
    api, _, _ = coordinator
    node_id, headers = api.enroll("roof", 48.1, 11.5)
    for bad in (
        {**RTL, "temperature_c": 1e9},
        {**RTL, "overflows": -1},
        {**RTL, "sample_rate_hz": 0},
        {**RTL, "driver": "x" * 101},
        {**RTL, "fan_rpm": 3000},
    ):
        r = api.client.post(
            f"/api/v1/nodes/{node_id}/heartbeat",
            json={"health": {**HEALTH, "devices": [bad]}},
            headers=headers,
        )
        assert r.status_code == 422, bad
    r = api.client.post(
        f"/api/v1/nodes/{node_id}/heartbeat",
        json={"health": {**HEALTH, "devices": [RTL] * 33}},
        headers=headers,
    )
    assert r.status_code == 422


def _record(days_ago: float, valid_days: float, ppm: float = 1.75, started_days_ago=None):
    """A record last measured `days_ago`, valid for `valid_days` from then (started
    `started_days_ago`: more measurements joined it since)."""
    now = dt.datetime.now(dt.UTC)
    made = now - dt.timedelta(days=days_ago)
    return {
        "driver": "rtlsdr",
        "lo_error_ppm": ppm,
        "gain_points": [[433.92e6, -3.5], [162.55e6, -2.0]],
        "created": (now - dt.timedelta(days=started_days_ago or days_ago)).isoformat(),
        "measured": made.isoformat(),
        "valid_until": (made + dt.timedelta(days=valid_days)).isoformat(),
    }


def test_a_calibration_record_reaches_the_devices_table_and_get_nodes(coordinator):
    api, _, _ = coordinator
    node_id, headers = api.enroll("roof", 48.1, 11.5)
    other_id, _ = api.enroll("yard", 48.2, 11.6)
    record = _record(days_ago=2, valid_days=30, started_days_ago=10)
    _beat(api, node_id, headers, health=HEALTH, calibration=[record])
    _beat(api, node_id, headers, health=HEALTH)  # no calibration in it: the record stays

    nodes = {n["id"]: n for n in api.client.get("/api/v1/nodes", headers=api.admin).json()}
    (device,) = nodes[node_id]["devices"]
    cal = device["calibration"]
    assert cal["lo_error_ppm"] == 1.75 and cal["gain_offset_db"] == -2.0  # lowest frequency
    assert [tuple(p) for p in cal["gain_points"]] == [(433.92e6, -3.5), (162.55e6, -2.0)]
    made = dt.datetime.fromisoformat(record["measured"])  # its latest measurement
    assert dt.datetime.fromisoformat(device["last_calibrated"]).replace(tzinfo=dt.UTC) == made
    assert 2 * 86400 - 5 < device["calibration_age_s"] < 2 * 86400 + 60
    assert device["calibration_valid"] is True
    (never,) = nodes[other_id]["devices"]
    assert never["calibration"] is None and never["calibration_age_s"] is None
    assert never["calibration_valid"] is False

    samples = _samples(api.client.get("/metrics", headers=api.admin).text)
    age = _value(samples, "drift_device_calibration_age_seconds", node=node_id, device="rtlsdr")
    assert 2 * 86400 - 5 < age < 2 * 86400 + 60

    # a new record replaces it; an expired one is shown as such
    _beat(api, node_id, headers, calibration=[_record(days_ago=40, valid_days=30, ppm=-0.5)])
    (device,) = api.client.get(f"/api/v1/nodes/{node_id}", headers=api.admin).json()["devices"]
    assert device["calibration"]["lo_error_ppm"] == -0.5
    assert device["calibration_valid"] is False and device["calibration_age_s"] > 39 * 86400


@pytest.mark.parametrize("which", ["first", "second"])
def test_the_allocator_prefers_the_calibrated_node_of_two_equal_ones(coordinator, which):
    api, _, settings = coordinator
    a_id, a_headers = api.enroll("a", 48.1, 11.5)
    b_id, b_headers = api.enroll("b", 48.1, 11.5)  # the same place, device and sync
    calibrated, headers = (a_id, a_headers) if which == "first" else (b_id, b_headers)
    _beat(api, calibrated, headers, calibration=[_record(days_ago=1, valid_days=30)])
    # an expired record on the other one is no calibration
    other, other_headers = (b_id, b_headers) if which == "first" else (a_id, a_headers)
    _beat(api, other, other_headers, calibration=[_record(days_ago=40, valid_days=30)])
    job = api.client.post("/api/v1/jobs", json={**SCAN, "node_count": 1}, headers=api.admin)
    assert job.status_code in (200, 201, 202), job.text
    Scheduler(api.client.app.state.runtime.sessions, settings).tick()
    got = api.client.get(f"/api/v1/jobs/{job.json()['id']}", headers=api.admin).json()
    assert [str(n) for n in got["allocated_nodes"]] == [calibrated], got


def test_heartbeats_do_not_wait_for_a_time_series_store_that_is_down(tmp_path, sqlite_template):
    db = tmp_path / "coordinator.db"
    shutil.copy(sqlite_template, db)
    settings = make_settings(
        tmp_path / "data",
        f"sqlite:///{db}",
        collector_bind="",
        timeseries_url="influxdb://127.0.0.1:9/drift",  # nothing listens there
    )
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        node_id, headers = api.enroll("roof", 48.1, 11.5)
        for n in range(3):
            _beat(api, node_id, headers, health={**HEALTH, "devices": [{**RTL, "overflows": n}]})
        samples = _samples(api.client.get("/metrics", headers=api.admin).text)
        assert _value(samples, "drift_device_overflows", node=node_id, device="rtlsdr") == 2


def test_the_agent_leaves_out_what_the_coordinator_would_refuse():
    """A sensor reading out of bounds must not cost a node its heartbeat."""
    from drift.node.agent import _within_protocol
    from drift.protocol import DeviceCalibration, DeviceMetrics

    m = {"driver": "drift", "temperature_c": 500.0, "overflows": 3, "sample_rate_hz": 2.4e6}
    assert _within_protocol(DeviceMetrics, m) == {
        "driver": "drift",
        "overflows": 3,
        "sample_rate_hz": 2.4e6,
    }
    assert _within_protocol(DeviceMetrics, RTL) == RTL
    bad = {"driver": "drift", "lo_error_ppm": 5000.0, "created": "2026-01-01T00:00:00+00:00"}
    assert _within_protocol(DeviceCalibration, bad) == {}
