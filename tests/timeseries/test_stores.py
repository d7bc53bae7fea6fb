"""One time-series interface, three backends: the embedded SQLite store and a real InfluxDB 1.x
server, written to directly (1.x API) and through influxdb-client (2.x API). The same test body
runs against each; the oracle is what was written."""

from __future__ import annotations

import numpy as np
import pytest
from drift.orchestrator.timeseries import InfluxStore, StoreUnavailable, open_store

from drift import wire

from .conftest import V2_TOKEN


@pytest.fixture(params=["sqlite", "influxdb", "influxdb2"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store(None, tmp_path)
    elif request.param == "influxdb":
        s = open_store(request.getfixturevalue("influx_url"), tmp_path)
    else:
        s = open_store(request.getfixturevalue("influx2_url"), tmp_path, token=V2_TOKEN)
    yield s
    s.close()


def psd(seq, t, job="job-1", node="n1", bins=1024, center=433e6, flags=0):
    rng = np.random.default_rng(seq)
    data = rng.normal(-150, 3, bins).astype(np.float32)
    data[7] = -np.inf  # an empty bin must survive too
    whole = int(t)
    return wire.Frame(wire.PSD, seq, whole, t - whole, 2e-8,
                      {"job_id": job, "node_id": node, "center_freq_hz": center,
                       "bin_hz": 2.4e6 / bins, "units": "dBm/Hz"}, data, flags)


def test_frames_round_trip_exactly_and_queries_filter(store):
    t0 = 1_764_000_000.123456789
    frames = [psd(i, t0 + 0.25 * i, node="n1" if i % 2 else "n2") for i in range(40)]
    frames.append(psd(0, t0, job="other"))
    store.add(frames)
    got = store.query("job-1")
    assert len(got) == 40
    assert [(f.node_id, f.seq) for f in got] == [
        (fr.meta["node_id"], fr.seq) for fr in frames[:40]]
    for f, sent in zip(got, frames, strict=False):
        assert np.array_equal(f.payload, sent.payload)  # bit for bit, -inf included
        assert f.time == pytest.approx(sent.time, abs=1e-9)
        assert f.center_freq_hz == 433e6 and f.bin_hz == pytest.approx(2.4e6 / 1024)
    only = store.query("job-1", node_id="n1")
    assert [f.seq for f in only] == list(range(1, 40, 2))
    window = store.query("job-1", start=t0 + 1.0, end=t0 + 2.0)
    assert [f.seq for f in window] == [4, 5, 6, 7]
    assert store.count("job-1") == 40 and store.count("other") == 1


def test_writes_are_idempotent_on_job_node_type_and_sequence(store):
    frames = [psd(i, 1_764_000_000 + i) for i in range(10)]
    store.add(frames)
    store.add(frames[3:8])  # a replay
    got = store.query("job-1")
    assert [f.seq for f in got] == list(range(10))
    assert store.count("job-1") == 10


def test_large_frames_and_detections(store):
    big = psd(0, 1_764_000_000.5, bins=16384)
    dets = [wire.Frame(wire.DETECTION, i, 1_764_000_000, 0.5, 1e-3,
                       {"job_id": "job-1", "node_id": "n1"},
                       [{"center_freq_hz": 433.92e6 + i, "power_db": -60.0 - i}])
            for i in range(3)]  # the same time: three frames, all kept
    store.add([big, *dets])
    (got,) = store.query("job-1")
    assert np.array_equal(got.payload, big.payload)
    stored = store.query("job-1", frame_type=wire.DETECTION)
    assert [f.seq for f in stored] == [0, 1, 2]


def test_stream_stats_are_stored_with_the_job(store):
    store.save_stream_stats({("job-1", "n1", wire.PSD): [100, 3, 1],
                             ("job-1", "n2", wire.PSD): [50, 0, 0],
                             ("job-2", "n1", wire.PSD): [1, 0, 0]})
    store.save_stream_stats({("job-1", "n1", wire.PSD): [120, 2, 1]})  # later counts win
    assert store.stream_stats("job-1") == [
        {"node_id": "n1", "type": "psd", "received": 120, "lost": 2, "duplicates": 1},
        {"node_id": "n2", "type": "psd", "received": 50, "lost": 0, "duplicates": 0}]


def test_unreachable_influxdb_is_store_unavailable():
    s = InfluxStore("http://127.0.0.1:9", "drift", timeout_s=1)
    with pytest.raises(StoreUnavailable, match="127.0.0.1:9"):
        s.add([psd(0, 1_764_000_000)])


def test_unknown_url_scheme_is_refused(tmp_path):
    with pytest.raises(ValueError, match="timeseries_url"):
        open_store("mongodb://x/y", tmp_path)
