"""One time-series interface, three backends: the embedded SQLite store and a real InfluxDB 1.x
server, written to directly (1.x API) and through influxdb-client (2.x API). The same test body
runs against each; the oracle is what was written."""

from __future__ import annotations

import numpy as np
import pytest
from gnuradio.drift import wire

from drift.orchestrator.spectrum_store import DeviceMetricsPoint
from drift.orchestrator.timeseries import InfluxStore, StoreUnavailable, open_store

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
    return wire.Frame(
        wire.PSD,
        seq,
        whole,
        t - whole,
        2e-8,
        {
            "job_id": job,
            "node_id": node,
            "center_freq_hz": center,
            "bin_hz": 2.4e6 / bins,
            "units": "dBm/Hz",
        },
        data,
        flags,
    )


def test_frames_round_trip_exactly_and_queries_filter(store):
    t0 = 1_764_000_000.123456789
    frames = [psd(i, t0 + 0.25 * i, node="n1" if i % 2 else "n2") for i in range(40)]
    frames.append(psd(0, t0, job="other"))
    store.add(frames)
    got = store.query("job-1")
    assert len(got) == 40
    assert [(f.node_id, f.seq) for f in got] == [(fr.meta["node_id"], fr.seq) for fr in frames[:40]]
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
    dets = [
        wire.Frame(
            wire.DETECTION,
            i,
            1_764_000_000,
            0.5,
            1e-3,
            {"job_id": "job-1", "node_id": "n1"},
            [{"center_freq_hz": 433.92e6 + i, "power_db": -60.0 - i}],
        )
        for i in range(3)
    ]  # the same time: three frames, all kept
    store.add([big, *dets])
    (got,) = store.query("job-1")
    assert np.array_equal(got.payload, big.payload)
    stored = store.query("job-1", frame_type=wire.DETECTION)
    assert [f.seq for f in stored] == [0, 1, 2]


def test_stream_stats_are_stored_with_the_job(store):
    store.save_stream_stats(
        {
            ("job-1", "n1", wire.PSD): [100, 3, 1],
            ("job-1", "n2", wire.PSD): [50, 0, 0],
            ("job-2", "n1", wire.PSD): [1, 0, 0],
        }
    )
    store.save_stream_stats({("job-1", "n1", wire.PSD): [120, 2, 1]})  # later counts win
    assert store.stream_stats("job-1") == [
        {"node_id": "n1", "type": "psd", "received": 120, "lost": 2, "duplicates": 1},
        {"node_id": "n2", "type": "psd", "received": 50, "lost": 0, "duplicates": 0},
    ]


def test_device_metrics_round_trip_as_the_device_metrics_series(store):
    t0 = 1_780_000_000.25
    points = [
        DeviceMetricsPoint("n1", "d1", t0, 37.5, 2.4e6, 1554, 2, 2e-8),
        DeviceMetricsPoint("n1", "d1", t0 + 2, 38.25, 2.4e6, 2331, 3, 2e-8),
        DeviceMetricsPoint("n1", "d2", t0 + 1, None, None, None, 0, None),  # nothing known
        DeviceMetricsPoint("n2", "d3", t0 + 1, 30.0, 1e6, 0, 0, 1e-3),
    ]
    store.add_device_metrics(points)
    store.add_device_metrics(points[:1])  # a rewrite stores nothing twice
    assert store.device_metrics("n1") == [points[0], points[2], points[1]]
    assert store.device_metrics("n1", "d1", start=t0 + 1) == [points[1]]
    assert store.device_metrics("n1", end=t0 + 1) == [points[0]]
    got = store.device_metrics("n2")[0]
    assert isinstance(got.dropped_samples, int) and isinstance(got.overflows, int)
    assert store.device_metrics("n3") == []


def test_unreachable_influxdb_is_store_unavailable():
    s = InfluxStore("http://127.0.0.1:9", "drift", timeout_s=1)
    with pytest.raises(StoreUnavailable, match="127.0.0.1:9"):
        s.add([psd(0, 1_764_000_000)])


def test_unknown_url_scheme_is_refused(tmp_path):
    with pytest.raises(ValueError, match="timeseries_url"):
        open_store("mongodb://x/y", tmp_path)


# -- IQ captures ---------------------------------------------------------------------------

IQ_RATE_HZ = 1.25e6
IQ_T0 = (1_764_000_000, 0.9999999996)  # a fraction that rounds up to the next second in ns


def iq_frames(count, n=4096, job="job-1", node="n1", last=1000, t0=IQ_T0, seed=1):
    """`count` IQ frames as a node's iq_sink cuts them: `n` samples each (the last one
    `last`), each stamped with its first sample's time from one anchor."""
    rng = np.random.default_rng(seed)
    out, offset = [], 0
    for seq in range(count):
        size = last if seq == count - 1 else n
        data = (rng.normal(0, 0.3, size) + 1j * rng.normal(0, 0.3, size)).astype(np.complex64)
        data[:3] = [-0.0 + 0j, 1e-45 - 1e-45j, 3.4e38 + 0j]  # -0, denormals, the largest float
        t = t0[1] + offset / IQ_RATE_HZ
        whole = int(np.floor(t))
        meta = {
            "job_id": job,
            "node_id": node,
            "samp_rate_hz": IQ_RATE_HZ,
            "center_freq_hz": 433.92e6,
            "units": "FS",
            "flowgraph_hash": "ab" * 32,
            "cal_offset_db": -3.25,
        }
        out.append(wire.Frame(wire.IQ, seq, t0[0] + whole, t - whole, 2e-8, meta, data))
        offset += size
    return out


def samples_of(frames):
    return np.concatenate([f.payload for f in frames])


def test_iq_frames_join_into_one_bit_exact_capture_whatever_their_arrival_order(store):
    frames = iq_frames(6)
    frames[2].flags = wire.FLAG_CLIPPED
    order = [4, 0, 5, 2, 1, 3]
    store.add([frames[i] for i in order[:3]])
    store.add(
        [frames[i] for i in order[3:]]
        + iq_frames(2, node="n2", seed=2)
        + iq_frames(2, job="job-2", seed=3)
        + [psd(0, 1_764_000_000)]
    )
    cap = store.iq_capture("job-1", "n1")
    want = samples_of(frames)
    assert cap.samples.dtype == np.complex64 and len(cap.samples) == 5 * 4096 + 1000
    assert np.array_equal(cap.samples.view(np.uint64), want.view(np.uint64))  # bit for bit
    assert (cap.job_id, cap.node_id) == ("job-1", "n1")
    assert (cap.time_s, cap.time_frac) == (frames[0].time_s, frames[0].time_frac)
    assert (cap.sample_rate_hz, cap.center_freq_hz) == (IQ_RATE_HZ, 433.92e6)
    assert cap.time_uncertainty_s == 2e-8
    assert cap.meta == frames[0].meta
    assert (cap.frames, cap.flags, cap.complete) == (6, wire.FLAG_CLIPPED, True)
    assert cap.flag_names == ["clipped"]
    other = store.iq_capture("job-1", "n2")
    assert other.frames == 2 and np.array_equal(other.samples, samples_of(iq_frames(2, seed=2)))


def _lost(frames):
    del frames[3]


def _time_jump(frames):
    for f in frames[3:]:  # the node's clock stepped 1 us forward before frame 3
        f.time_frac += 1e-6


def _retune(frames):
    for f in frames[3:]:
        f.meta = {**f.meta, "center_freq_hz": 434.42e6}


def _overflow(frames):
    frames[3].flags = wire.FLAG_OVERFLOW


@pytest.mark.parametrize(
    "brk",
    [_lost, _time_jump, _retune, _overflow],
    ids=["lost-frame", "time-jump", "retune", "overflow"],
)
def test_an_iq_capture_stops_where_the_stream_stops_being_contiguous(store, brk):
    frames = iq_frames(6)
    brk(frames)
    store.add(frames)
    cap = store.iq_capture("job-1", "n1")
    assert not cap.complete
    assert cap.frames == 3
    assert np.array_equal(cap.samples, samples_of(frames[:3]))
    assert (cap.time_s, cap.time_frac) == (frames[0].time_s, frames[0].time_frac)


def test_an_iq_capture_whose_first_frames_were_lost_starts_at_the_first_stored(store):
    frames = iq_frames(5)
    store.add(frames[2:])
    cap = store.iq_capture("job-1", "n1")
    assert not cap.complete and cap.frames == 3
    assert (cap.time_s, cap.time_frac) == (frames[2].time_s, frames[2].time_frac)
    assert np.array_equal(cap.samples, samples_of(frames[2:]))


def test_no_iq_capture_for_an_unknown_job_or_node_or_without_iq_frames(store):
    store.add(iq_frames(2) + [psd(0, 1_764_000_000, job="scan", node="n1")])
    assert store.iq_capture("job-9", "n1") is None
    assert store.iq_capture("job-1", "n9") is None
    assert store.iq_capture("scan", "n1") is None


def test_iq_frames_over_influxdbs_request_size_limit_are_stored_in_several_writes(store):
    # 40 frames of 65,536 samples (an iq_sink's default snippet): 28 MB of line protocol,
    # over InfluxDB's 25 MB request limit, in one call as the collector makes it
    frames = iq_frames(40, n=65536, last=65536)
    assert store.add(frames) == 40
    cap = store.iq_capture("job-1", "n1")
    assert cap.complete and cap.frames == 40
    assert np.array_equal(cap.samples, samples_of(frames))


def test_frames_stream_with_the_filters_in_the_query_and_are_counted(store):
    """iter_frames reads every matching frame as a stream in the order of query();
    count_frames counts them; query_page streams the first `limit` and says whether more
    follow."""
    t0 = 1_764_000_000.5
    frames = [psd(i, t0 + 0.5 * i, node="n1" if i % 3 else "n2", bins=64) for i in range(30)]
    frames.append(psd(0, t0, job="other", bins=64))
    store.add(frames)
    for kw in (
        {},
        {"node_id": "n1"},
        {"start": t0 + 2.0, "end": t0 + 9.0},
        {"node_id": "n2", "start": t0 + 5},
    ):
        expect = store.query("job-1", **kw)
        streamed = list(store.iter_frames("job-1", **kw))
        assert [(f.node_id, f.seq) for f in streamed] == [(f.node_id, f.seq) for f in expect]
        assert all(
            np.array_equal(a.payload, b.payload) for a, b in zip(streamed, expect, strict=True)
        )
        assert store.count_frames("job-1", **kw) == len(expect)
        page, more = store.query_page("job-1", limit=4, **kw)
        assert [f.seq for f in page] == [f.seq for f in expect[:4]] and more == (len(expect) > 4)
    assert list(store.iter_frames("nobody")) == [] and store.count_frames("nobody") == 0


def test_the_embedded_store_checkpoints_its_wal_off_the_writers_path(tmp_path, monkeypatch):
    """Writers only append to the WAL (SQLite's own checkpoint inside a commit is off); the
    store's thread copies it into the database file once enough is written, and closing
    leaves everything in the file."""
    import os
    import time

    from drift.orchestrator import spectrum_store

    monkeypatch.setattr(spectrum_store, "CHECKPOINT_BYTES", 256 << 10)
    s = open_store(None, tmp_path)
    db_file = tmp_path / "spectrum.sqlite"
    assert s._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    start = os.path.getsize(db_file)
    s.add([psd(i, 1_764_000_000 + i) for i in range(200)])  # 800 KiB of payload
    deadline = time.monotonic() + 10
    while os.path.getsize(db_file) < start + (512 << 10) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.path.getsize(db_file) >= start + (512 << 10)  # the pages reached the file
    assert s.count("job-1") == 200
    s.close()
    assert not os.path.exists(str(db_file) + "-wal") or os.path.getsize(str(db_file) + "-wal") == 0
    again = open_store(None, tmp_path)
    assert again.count("job-1") == 200
    again.close()
