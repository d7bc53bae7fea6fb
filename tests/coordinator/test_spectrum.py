"""GET /api/v1/spectrum/{job_id} over the embedded store."""

import struct
import uuid

import numpy as np
from fastapi.testclient import TestClient
from gnuradio.drift import wire

from drift.api.app import create_app
from drift.orchestrator.spectrum_store import SpectrumStore

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
        r = client.get(f"/api/v1/spectrum/{job['id']}", headers=api.user("viewer"))
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "5"
        assert "time-series store is unavailable" in r.json()["detail"]
