"""The InfluxDB 2.x backend: influxdb-client's writer into a bucket, InfluxQL reads through
the bucket's v1 mapping. The server is the real 1.x server behind the 2.x gateway
(tests/timeseries/influx.py); what 2.x refuses (a wrong token, a missing bucket) it refuses
the same way, and those must hold frames back rather than lose them."""

from __future__ import annotations

import time

import numpy as np
import pytest

from drift.orchestrator.collector import Collector
from drift.orchestrator.timeseries import InfluxV2Store, StoreUnavailable, open_store

from .conftest import V2_TOKEN, create_database
from .test_database_outage import _check, _stream, _wait
from .test_stores import psd


def test_writes_go_through_the_v2_api_gzipped(influx2_url, influx2_gateway, tmp_path):
    store = open_store(influx2_url, tmp_path, token=V2_TOKEN)
    assert isinstance(store, InfluxV2Store)
    before = len(influx2_gateway.requests)
    store.add([psd(i, 1_764_000_000 + i) for i in range(5)])
    assert store.count("job-1") == 5
    seen = influx2_gateway.requests[before:]
    assert ("POST", "/api/v2/write", "gzip") in seen
    assert {p for _, p, _ in seen} == {"/api/v2/write", "/query"}  # no 1.x /write
    store.close()


def test_a_wrong_token_is_store_unavailable_naming_it(influx2_url, tmp_path):
    store = open_store(influx2_url, tmp_path, token="not-the-token")
    with pytest.raises(StoreUnavailable, match="refused the token"):
        store.add([psd(0, 1_764_000_000)])
    with pytest.raises(StoreUnavailable, match="401"):
        store.query("job-1")
    store.close()


def test_the_token_can_come_from_the_url(influx2_url, tmp_path):
    url = influx2_url.replace("influxdb2://", f"influxdb2://:{V2_TOKEN}@")
    store = open_store(url, tmp_path)
    store.add([psd(0, 1_764_000_000)])
    assert store.count("job-1") == 1
    store.close()


def test_a_bucket_with_a_retention_policy_reads_and_writes_there(
    influx_server, influx2_gateway, tmp_path
):
    create_database(
        influx_server,
        "withrp",
        'CREATE RETENTION POLICY "short" ON "withrp" DURATION 1h REPLICATION 1',
    )
    store = open_store(
        f"influxdb2://127.0.0.1:{influx2_gateway.port}/withrp/short?org=drift",
        tmp_path,
        token=V2_TOKEN,
    )
    now = time.time()
    sent = [psd(i, now - 10 + i) for i in range(3)]  # inside the policy's hour
    store.add(sent)
    assert [f.seq for f in store.query("job-1")] == [0, 1, 2]
    # the points are in that retention policy, not the database's default one
    default = open_store(
        f"influxdb2://127.0.0.1:{influx2_gateway.port}/withrp?org=drift", tmp_path, token=V2_TOKEN
    )
    assert default.query("job-1") == []
    store.close()
    default.close()


def test_both_influx_backends_read_each_others_points(influx_server, influx2_gateway, tmp_path):
    create_database(influx_server, "shared")
    v1 = open_store(f"influxdb://127.0.0.1:{influx_server.port}/shared", tmp_path)
    v2 = open_store(
        f"influxdb2://127.0.0.1:{influx2_gateway.port}/shared?org=drift", tmp_path, token=V2_TOKEN
    )
    a, b = psd(0, 1_764_000_000.25, node="n1"), psd(1, 1_764_000_001.5, node="n2")
    v1.add([a])
    v2.add([b])
    for store in (v1, v2):
        got = store.query("job-1")
        assert [(f.node_id, f.seq) for f in got] == [("n1", 0), ("n2", 1)]
        assert np.array_equal(got[1].payload, b.payload)
    v1.close()
    v2.close()


def test_frames_wait_in_the_spool_until_the_bucket_exists(influx_server, influx2_gateway, tmp_path):
    url = f"influxdb2://127.0.0.1:{influx2_gateway.port}/later?org=drift"
    store = open_store(url, tmp_path, token=V2_TOKEN)
    with pytest.raises(StoreUnavailable, match="bucket 'later' not found"):
        store.add([psd(0, 1_764_000_000)])
    col = Collector(store, "tcp://127.0.0.1:0", spool_dir=tmp_path / "spool")
    col.start()
    sent = [psd(i, 1_764_000_000 + 0.05 * i) for i in range(50)]
    try:
        _stream(col.address, sent, 0.0)
        assert _wait(lambda: col.spool.depth == 50, 30), "frames must spool, not drop"
        create_database(influx_server, "later")  # the operator creates the bucket
        assert _wait(lambda: col.spool.depth == 0 and col.stats.stored == 50, 60)
        _check(store, sent)
    finally:
        col.close()
        store.close()


@pytest.mark.parametrize(
    ("url", "token", "field"),
    [
        ("influxdb2://127.0.0.1:8086/?org=drift", "t", "bucket"),
        ("influxdb2://127.0.0.1:8086/drift", "t", "org"),
        ("influxdb2://127.0.0.1:8086/drift?org=drift", None, "timeseries_token"),
    ],
)
def test_an_incomplete_v2_url_names_what_is_missing(url, token, field, tmp_path):
    with pytest.raises(ValueError, match=field):
        open_store(url, tmp_path, token=token)


def test_an_unreachable_v2_server_is_store_unavailable(tmp_path):
    store = InfluxV2Store("http://127.0.0.1:9", "drift", "drift", "t", timeout_s=1)
    with pytest.raises(StoreUnavailable, match="127.0.0.1:9"):
        store.add([psd(0, 1_764_000_000)])
    store.close()
