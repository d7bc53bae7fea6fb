"""GET /api/v1/jobs/{job_id}/iq over the embedded store: the archive opens with the sigmf
package and says what was stored; bad requests are 404 or 422 with the reason. (The network
test in tests/test_iq_network.py serves what real nodes captured.)"""

from __future__ import annotations

import datetime as dt
import io
import tarfile
import uuid
import warnings

import numpy as np
import pytest
from gnuradio.drift import wire
from sigmf import sigmffile

from drift.orchestrator.spectrum_store import SpectrumStore
from drift.orchestrator.storage import Assignment, Job, Node

RATE_HZ = 2e6
T0 = (1_764_000_000, 0.123456789)


def frames(job_id, node_id, count, n=5000, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for seq in range(count):
        t = T0[1] + seq * n / RATE_HZ
        data = (rng.normal(size=n) + 1j * rng.normal(size=n)).astype(np.complex64)
        meta = {
            "job_id": job_id,
            "node_id": node_id,
            "samp_rate_hz": RATE_HZ,
            "center_freq_hz": 868.3e6,
            "units": "FS",
            "flowgraph_hash": "f" * 64,
            "cal_offset_db": 1.5,
        }
        out.append(
            wire.Frame(
                wire.IQ,
                seq,
                T0[0] + int(t),
                t % 1,
                5e-8,
                meta,
                data,
                wire.FLAG_CLIPPED if seq == 1 else 0,
            )
        )
    return out


@pytest.fixture
def job_with_nodes(api, settings, sessions):
    """A direction-finding job with three nodes: `a` delivered 4 frames, `b` delivered
    frames 0, 1, 3 (frame 2 lost), `c` took part and delivered nothing; `d` is enrolled but
    not in the job."""
    ids = {
        name: api.enroll(name, 48.1 + i / 100, 11.5 + i / 100)[0] for i, name in enumerate("abcd")
    }
    job_id = uuid.uuid4()
    with sessions.begin() as s:
        s.add(
            Job(
                id=job_id,
                type="direction_finding",
                parameters={},
                status="running",
                created_at=dt.datetime.now(dt.UTC),
            )
        )
        s.flush()
        for name in "abc":
            s.add(Assignment(job_id=job_id, node_id=uuid.UUID(ids[name]), state="completed"))
        s.get(Node, uuid.UUID(ids["a"])).alt_m = 512.25
    store = SpectrumStore(str(settings.data_dir / "spectrum.sqlite"))
    sent = {"a": frames(str(job_id), ids["a"], 4), "b": frames(str(job_id), ids["b"], 4, seed=1)}
    store.add(sent["a"] + [f for f in sent["b"] if f.seq != 2])
    store.close()
    return str(job_id), ids, sent


def fetch(api, job_id, node_id, tmp_path):
    r = api.client.get(
        f"/api/v1/jobs/{job_id}/iq", params={"node_id": node_id}, headers=api.user("viewer")
    )
    assert r.status_code == 200, r.text
    path = tmp_path / f"{node_id}.sigmf"
    path.write_bytes(r.content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an undeclared extension is only a warning in sigmf
        recording = sigmffile.fromarchive(str(path))
        recording.validate()
    return r, recording


def test_a_nodes_capture_is_a_valid_sigmf_archive_of_what_it_sent(api, job_with_nodes, tmp_path):
    job_id, ids, sent = job_with_nodes
    r, rec = fetch(api, job_id, ids["a"], tmp_path)
    assert r.headers["content-type"] == "application/x-tar"
    name = f"drift-{job_id.replace('-', '')[:8]}-a"
    assert r.headers["content-disposition"] == f'attachment; filename="{name}.sigmf"'
    assert int(r.headers["content-length"]) == len(r.content)
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        assert sorted(tar.getnames()) == [
            name,
            f"{name}/{name}.sigmf-data",
            f"{name}/{name}.sigmf-meta",
        ]
    want = np.concatenate([f.payload for f in sent["a"]])
    got = rec.read_samples()
    assert got.dtype == np.complex64 and np.array_equal(got.view(np.uint64), want.view(np.uint64))
    g = rec.get_global_info()
    assert g["core:datatype"] == "cf32_le" and g["core:sample_rate"] == RATE_HZ
    assert g["core:recorder"] == "DRIFT" and g["core:version"].startswith("1.")
    assert "a" in g["core:description"] and job_id in g["core:description"]
    assert g["core:geolocation"] == {"type": "Point", "coordinates": [11.5, 48.1, 512.25]}
    assert {"name": "drift", "version": "1.0.0", "optional": True} in g["core:extensions"]
    assert g["drift:job_id"] == job_id and g["drift:node_id"] == ids["a"]
    assert g["drift:node_name"] == "a" and g["drift:flowgraph_hash"] == "f" * 64
    assert g["drift:time_uncertainty_s"] == 5e-8 and g["drift:cal_offset_db"] == 1.5
    assert g["drift:complete"] is True and g["drift:frames"] == 4
    assert g["drift:flags"] == ["clipped"]
    (capture,) = rec.get_captures()
    assert capture["core:sample_start"] == 0 and capture["core:frequency"] == 868.3e6
    assert capture["core:datetime"] == "2025-11-24T16:00:00.123456789Z"


def test_a_capture_with_a_lost_frame_stops_before_it_and_says_it_is_incomplete(
    api, job_with_nodes, tmp_path
):
    job_id, ids, sent = job_with_nodes
    _, rec = fetch(api, job_id, ids["b"], tmp_path)
    g = rec.get_global_info()
    assert g["drift:complete"] is False and g["drift:frames"] == 2
    assert "incomplete" in g["core:description"]
    assert np.array_equal(rec.read_samples(), np.concatenate([f.payload for f in sent["b"][:2]]))


def test_unknown_jobs_other_nodes_missing_iq_and_bad_ids_are_refused_with_the_reason(
    api, job_with_nodes
):
    job_id, ids, _ = job_with_nodes
    viewer = api.user("viewer")
    url = f"/api/v1/jobs/{job_id}/iq"

    def get(path, **params):
        return api.client.get(path, params=params, headers=viewer)

    r = get(f"/api/v1/jobs/{uuid.uuid4()}/iq", node_id=ids["a"])
    assert r.status_code == 404 and "no job" in r.json()["detail"]
    r = get(url, node_id=ids["d"])
    assert r.status_code == 404 and "took no part" in r.json()["detail"]
    r = get(url, node_id=str(uuid.uuid4()))
    assert r.status_code == 404 and "took no part" in r.json()["detail"]
    r = get(url, node_id=ids["c"])
    assert r.status_code == 404 and "delivered no IQ" in r.json()["detail"]
    for bad in ("not-a-uuid", "", "1" * 300):
        r = get(url, node_id=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["detail"][0]["loc"] == ["query", "node_id"]
    r = get(url)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "node_id"]
    r = get("/api/v1/jobs/not-a-job/iq", node_id=ids["a"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "job_id"]
    assert api.client.get(url, params={"node_id": ids["a"]}).status_code == 401
