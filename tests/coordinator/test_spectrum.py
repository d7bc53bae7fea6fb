"""GET /api/v1/spectrum/{job_id} over the embedded store."""

import struct
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient
from gnuradio.drift import wire

from drift.api.app import create_app
from drift.orchestrator.spectrum_store import SpectrumStore
from drift.orchestrator.timeseries import open_store

from .conftest import Api, make_settings

SCAN = {
    "type": "spectrum_scan",
    "start_freq_hz": 88e6,
    "stop_freq_hz": 108e6,
    "bin_hz": 1e4,
    "duration_s": 10,
    "interval_s": 1,
}
T0 = 1_764_000_000


def store_frames(settings, job_id, node_id, n, bins=8):
    store = SpectrumStore(str(settings.data_dir / "spectrum.sqlite"))
    frames = [
        wire.Frame(
            wire.PSD,
            s,
            T0 + s,
            0.5,
            1e-3,
            {"job_id": job_id, "node_id": node_id, "center_freq_hz": 100e6, "bin_hz": 1e3},
            np.arange(bins, dtype=np.float32) - 150 + s,
        )
        for s in range(n)
    ]
    frames[1].payload[0] = -np.inf  # a bin with no power
    store.add(frames)
    store.close()
    return frames


def split_binary(data):
    frames, i = [], 0
    while i < len(data):
        parts = []
        for _ in range(3):
            (n,) = struct.unpack_from("<I", data, i)
            parts.append(data[i + 4 : i + 4 + n])
            i += 4 + n
        frames.append(wire.decode(parts))
    return frames


def test_spectrum_json_binary_filters_and_auth(api, settings):
    job = api.client.post("/api/v1/jobs", json=SCAN, headers=api.user("operator")).json()
    sent = store_frames(settings, job["id"], "n1", 5) + store_frames(settings, job["id"], "n2", 2)
    viewer = api.user("viewer")
    url = f"/api/v1/spectrum/{job['id']}"

    page = api.client.get(url, headers=viewer).json()
    assert len(page["frames"]) == 7 and not page["truncated"]
    times = [f["time_unix_s"] for f in page["frames"]]
    assert times == sorted(times)
    first = page["frames"][0]
    assert first["psd_db"] == [float(v) for v in sent[0].payload]
    assert page["frames"][2]["psd_db"][0] is None  # n1 seq 1 at T0 + 1.5 (n1 before n2)

    r = api.client.get(
        url,
        params={
            "node_id": "n1",
            "start_time": "2025-11-24T16:00:02Z",
            "end_time": "2025-11-24T16:00:04Z",
        },
        headers=viewer,
    )
    assert [f["seq"] for f in r.json()["frames"]] == [2, 3]

    r = api.client.get(
        url, params={"format": "binary", "node_id": "n1", "limit": 3}, headers=viewer
    )
    assert r.headers["content-type"] == "application/x-drift-frames"
    assert r.headers["x-truncated"] == "true"
    got = split_binary(r.content)
    assert [f.seq for f in got] == [0, 1, 2]
    np.testing.assert_array_equal(got[2].payload, sent[2].payload)
    assert (got[2].time_s, got[2].time_frac) == (T0 + 2, 0.5)

    assert api.client.get(url).status_code == 401
    assert api.client.get(f"/api/v1/spectrum/{uuid.uuid4()}", headers=viewer).status_code == 404
    r = api.client.get(
        url,
        params={"start_time": "2025-11-24T16:00:05Z", "end_time": "2025-11-24T16:00:01Z"},
        headers=viewer,
    )
    assert r.status_code == 422 and "end_time" in r.text
    assert api.client.get(url, params={"limit": 0}, headers=viewer).status_code == 422


def test_a_time_series_store_that_is_down_is_503_with_retry_after(tmp_path, db_url):
    settings = make_settings(
        tmp_path / "data", db_url, timeseries_url="influxdb://127.0.0.1:9/drift", collector_bind=""
    )
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        job = client.post("/api/v1/jobs", json=SCAN, headers=api.user("operator")).json()
        for params in ({}, {"decimate": 10}, {"rows": 10, "format": "binary"}):
            r = client.get(
                f"/api/v1/spectrum/{job['id']}", params=params, headers=api.user("viewer")
            )
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "5"
            assert "time-series store is unavailable" in r.json()["detail"]


# --- a page of a large job -------------------------------------------------------------------

BIG_FRAMES, BIG_BINS = 3000, 4096  # 48 MiB of PSD payload


def _big_job(tmp_path, sqlite_template):
    """An app on SQLite, a job with BIG_FRAMES frames of BIG_BINS bins from two nodes, and a
    viewer's headers."""
    import shutil

    db = tmp_path / "coordinator.db"
    shutil.copy(sqlite_template, db)
    settings = make_settings(tmp_path / "data", f"sqlite:///{db}", collector_bind="")
    client = TestClient(create_app(settings))
    client.__enter__()
    api = Api(client)
    job_id = client.post("/api/v1/jobs", json=SCAN, headers=api.user("operator")).json()["id"]
    viewer = api.user("viewer")
    store = SpectrumStore(str(settings.data_dir / "spectrum.sqlite"))
    rng = np.random.default_rng(0)
    for first in range(0, BIG_FRAMES, 250):
        store.add(
            [
                wire.Frame(
                    wire.PSD,
                    s // 2,
                    T0 + s,
                    0.25,
                    1e-3,
                    {"job_id": job_id, "node_id": f"n{s % 2}", "center_freq_hz": 100e6},
                    rng.normal(-150, 1, BIG_BINS).astype(np.float32),
                )
                for s in range(first, first + 250)
            ]
        )
    store.close()
    return settings, client, job_id, viewer


def held_json(client, url, headers):
    return client.get(url, params={"rows": 4}, headers=headers).json()["frames"]


def test_a_page_of_a_large_job_costs_the_memory_of_the_page_not_of_the_job(
    tmp_path, sqlite_template
):
    """limit=1 on a job of 48 MiB of frames: the peak of Python's allocations while the
    request is answered (tracemalloc: every object, NumPy's buffers included) stays under
    4 MiB, and so does a decimated answer that reads every frame of the job. Reading every
    frame to answer one (as before) peaks above the job's size."""
    import tracemalloc

    settings, client, job_id, viewer = _big_job(tmp_path, sqlite_template)
    url = f"/api/v1/spectrum/{job_id}"
    try:
        assert client.get(url, params={"limit": 1}, headers=viewer).status_code == 200  # warm
        tracemalloc.start()
        try:
            for params in ({"limit": 1}, {"limit": 1, "node_id": "n1"}, {"limit": 3}):
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
                r = client.get(url, params=params, headers=viewer)
                peak = tracemalloc.get_traced_memory()[1] - base
                assert r.status_code == 200
                page = r.json()
                assert len(page["frames"]) == params["limit"] and page["truncated"]
                assert peak < 4 << 20, f"{params}: peak {peak / 2**20:.1f} MiB"
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            r = client.get(url, params={"limit": 1, "format": "binary"}, headers=viewer)
            assert tracemalloc.get_traced_memory()[1] - base < 4 << 20
            # every frame of the job read and held: the memory of a few frames still
            for params in ({"rows": 4}, {"decimate": 500, "hold": "mean", "format": "binary"}):
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
                held = client.get(url, params=params, headers=viewer)
                peak = tracemalloc.get_traced_memory()[1] - base
                assert held.status_code == 200
                assert peak < 4 << 20, f"{params}: peak {peak / 2**20:.1f} MiB"
                n_rows = len(split_binary(held.content)) if "format" in params else None
                assert n_rows in (None, 6)  # 1,500 frames a node, 500 a row
            assert [f["frames"] for f in held_json(client, url, viewer)] == [750] * 4
        finally:
            tracemalloc.stop()
        # what the page holds: the first frames in time order, the filters applied
        (frame,) = split_binary(r.content)
        assert (frame.seq, frame.meta["node_id"], frame.time_s) == (0, "n0", T0)
        assert r.headers["x-truncated"] == "true"
        got = client.get(
            url,
            params={"limit": 2, "node_id": "n1", "start_time": "2025-11-24T16:00:10Z"},
            headers=viewer,
        ).json()["frames"]
        assert [(f["node_id"], f["seq"], f["time_unix_s"]) for f in got] == [
            ("n1", 5, T0 + 11.25),
            ("n1", 6, T0 + 13.25),
        ]
        last = client.get(url, params={"start_time": "2025-11-24T16:49:59Z"}, headers=viewer).json()
        assert [f["seq"] for f in last["frames"]] == [1499] and not last["truncated"]
    finally:
        client.__exit__(None, None, None)


def test_spectrum_answers_while_another_writer_holds_the_sqlite_write_locks(
    tmp_path, sqlite_template
):
    """Another process's writer holds the write lock of the coordinator's database and of
    the spectrum store: GET /spectrum reads past both (their WAL snapshots) and answers at
    once. Taking the write lock (as a request session does) would wait for it."""
    import concurrent.futures
    import sqlite3

    settings, client, job_id, viewer = _big_job(tmp_path, sqlite_template)
    lockers = [
        sqlite3.connect(path, isolation_level=None)
        for path in (tmp_path / "coordinator.db", settings.data_dir / "spectrum.sqlite")
    ]
    try:
        for db in lockers:
            db.execute("BEGIN IMMEDIATE")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            answer = pool.submit(
                client.get, f"/api/v1/spectrum/{job_id}", params={"limit": 1}, headers=viewer
            )
            r = answer.result(timeout=5)  # the writers would keep it waiting for 30 s
            for db in lockers:
                db.execute("ROLLBACK")
        assert r.status_code == 200 and len(r.json()["frames"]) == 1
    finally:
        for db in lockers:
            db.close()
        client.__exit__(None, None, None)


# --- decimated answers: max / mean hold over time --------------------------------------------


@pytest.fixture(params=["embedded", "influxdb"])
def held_app(request, tmp_path, sqlite_template):
    """An app on SQLite whose time series live in the embedded store or in a real InfluxDB
    1.x, the store it reads (to write frames into), and a viewer's and an operator's headers."""
    import shutil

    db = tmp_path / "coordinator.db"
    shutil.copy(sqlite_template, db)
    url = None
    if request.param == "influxdb":
        url = (
            f"influxdb://127.0.0.1:{request.getfixturevalue('influx_server').port}/t{tmp_path.name}"
        )
    settings = make_settings(
        tmp_path / "data", f"sqlite:///{db}", collector_bind="", timeseries_url=url
    )
    store = open_store(url, settings.data_dir)
    with TestClient(create_app(settings)) as client:
        yield client, store, Api(client)
    store.close()


def _sent_frames(job_id):
    """Three streams, interleaved in time: n1 sweeping two hops, n2 on one; random PSDs with
    empty bins (-inf) and a flag on one frame."""
    rng = np.random.default_rng(7)
    frames = []
    for i in range(60):
        node, center = [("n1", 100e6), ("n1", 102e6), ("n2", 100e6)][i % 3]
        data = rng.normal(-140, 6, 16).astype(np.float32)
        data[rng.integers(0, 16)] = -np.inf
        frames.append(
            wire.Frame(
                wire.PSD,
                i // 3 * 2 + (center == 102e6),  # each node's own sequence
                T0 + i,
                0.125,
                1e-3,
                {"job_id": job_id, "node_id": node, "center_freq_hz": center, "bin_hz": 1e3},
                data,
                wire.FLAG_OVERFLOW if i == 31 else 0,
            )
        )
    return frames


def _oracle(frames, every, hold):
    """Per stream (node, centre frequency), every `every` consecutive frames held with numpy:
    {(node, centre, first seq): (held bins, frames held, last frame's time, flags)}."""
    streams: dict = {}
    for f in frames:
        streams.setdefault((f.meta["node_id"], f.meta["center_freq_hz"]), []).append(f)
    out = {}
    for (node, center), fs in streams.items():
        for i in range(0, len(fs), every):
            group = fs[i : i + every]
            x = np.array([g.payload for g in group], dtype=np.float64)
            if hold == "max":
                held = x.max(axis=0)
            else:
                with np.errstate(divide="ignore"):
                    held = 10 * np.log10(np.mean(10 ** (x / 10), axis=0))
            flags = 0
            for g in group:
                flags |= g.flags
            out[(node, center, group[0].seq)] = (held, len(group), group[-1].time, flags)
    return out


@pytest.mark.parametrize("hold", ["max", "mean"])
def test_a_decimated_answer_holds_each_streams_frames_like_numpy(held_app, hold):
    client, store, api = held_app
    job = client.post("/api/v1/jobs", json=SCAN, headers=api.user("operator")).json()["id"]
    sent = _sent_frames(job)
    store.add(sent)
    url, viewer = f"/api/v1/spectrum/{job}", api.user("viewer")

    for every in (1, 4, 7, 100):
        expect = _oracle(sent, every, hold)
        page = client.get(url, params={"decimate": every, "hold": hold}, headers=viewer).json()
        assert page["decimate"] == every and not page["truncated"]
        got = {(f["node_id"], f["center_freq_hz"], f["seq"]): f for f in page["frames"]}
        assert got.keys() == expect.keys() and len(page["frames"]) == len(expect)
        for key, (held, n, t_end, flags) in expect.items():
            row = got[key]
            psd = np.array([-np.inf if v is None else v for v in row["psd_db"]])
            np.testing.assert_allclose(psd, held, rtol=0, atol=1e-4)
            assert (row["frames"], row["hold"]) == (n, hold)
            assert row["time_end_unix_s"] == pytest.approx(t_end)
            assert row["flags"] == (["overflow"] if flags else [])
        # a row comes when its last frame is read
        ends = [f["time_end_unix_s"] for f in page["frames"] if f["frames"] == every]
        assert ends == sorted(ends)

        r = client.get(
            url, params={"decimate": every, "hold": hold, "format": "binary"}, headers=viewer
        )
        assert (r.headers["x-decimate"], r.headers["x-hold"]) == (str(every), hold)
        rows = split_binary(r.content)
        assert len(rows) == len(expect)
        for row in rows:
            held, n, t_end, _ = expect[(row.meta["node_id"], row.meta["center_freq_hz"], row.seq)]
            np.testing.assert_allclose(row.payload, held, rtol=0, atol=1e-4)
            assert (row.meta["frames"], row.meta["hold"]) == (n, hold)


def test_rows_picks_the_decimation_and_the_filters_apply_before_the_hold(held_app):
    client, store, api = held_app
    job = client.post("/api/v1/jobs", json=SCAN, headers=api.user("operator")).json()["id"]
    sent = _sent_frames(job)
    store.add(sent)
    url, viewer = f"/api/v1/spectrum/{job}", api.user("viewer")

    page = client.get(url, params={"rows": 6}, headers=viewer).json()
    assert page["decimate"] == 10  # 60 frames for 6 rows
    assert len(page["frames"]) == len(_oracle(sent, 10, "max")) == 6

    # n1 only, frames at T0 + 10 .. T0 + 39: the oracle holds the same subset
    subset = [f for f in sent if f.meta["node_id"] == "n1" and T0 + 10 <= f.time < T0 + 40]
    params = {
        "rows": 4,
        "hold": "mean",
        "node_id": "n1",
        "start_time": "2025-11-24T16:00:10Z",
        "end_time": "2025-11-24T16:00:40Z",
    }
    page = client.get(url, params=params, headers=viewer).json()
    assert page["decimate"] == 5  # 20 frames for 4 rows
    expect = _oracle(subset, 5, "mean")
    assert {(f["node_id"], f["center_freq_hz"], f["seq"]) for f in page["frames"]} == set(expect)
    for f in page["frames"]:
        held = expect[(f["node_id"], f["center_freq_hz"], f["seq"])][0]
        psd = np.array([-np.inf if v is None else v for v in f["psd_db"]])
        np.testing.assert_allclose(psd, held, rtol=0, atol=1e-4)

    empty = client.get(url, params={"rows": 5, "node_id": "n9"}, headers=viewer).json()
    assert empty["frames"] == [] and empty["decimate"] == 1


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"decimate": 0}, "decimate"),
        ({"decimate": "many"}, "decimate"),
        ({"rows": 0}, "rows"),
        ({"rows": 10001}, "rows"),
        ({"decimate": 2, "hold": "min"}, "hold"),
        ({"hold": "max"}, "hold"),
        ({"decimate": 2, "rows": 10}, "rows"),
        ({"decimate": 2, "limit": 10}, "limit"),
    ],
)
def test_bad_decimation_parameters_are_422_naming_the_parameter(api, params, named):
    job = api.client.post("/api/v1/jobs", json=SCAN, headers=api.user("operator")).json()
    r = api.client.get(f"/api/v1/spectrum/{job['id']}", params=params, headers=api.user("viewer"))
    assert r.status_code == 422, r.text
    assert any(named in e["loc"] for e in r.json()["detail"]), r.text


def test_more_streams_than_open_rows_give_rows_of_fewer_frames_never_more_memory(monkeypatch):
    """With room for two open rows and three streams in turn, the row waiting longest is
    answered early: every frame is still held exactly once, each row holds one stream's
    frames, and never more than `every` of them."""
    from drift.orchestrator import spectrum_hold
    from drift.orchestrator.spectrum_store import StoredFrame

    monkeypatch.setattr(spectrum_hold, "MAX_OPEN_ROWS", 2)
    frames = [
        StoredFrame(
            "j",
            "n1",
            wire.PSD,
            i,
            T0 + i,
            1e8 + (i % 3) * 1e6,
            1e3,
            0,
            np.full(4, float(i), np.float32),
        )
        for i in range(30)
    ]
    rows = list(spectrum_hold.hold_frames(iter(frames), 5, "max"))
    assert sum(r.meta["frames"] for r in rows) == 30
    for r in rows:
        members = [
            f
            for f in frames
            if f.center_freq_hz == r.center_freq_hz
            and r.time <= f.time <= r.meta["time_end_unix_s"]
        ]
        assert len(members) == r.meta["frames"] <= 5
        np.testing.assert_array_equal(r.payload, np.max([f.payload for f in members], axis=0))
