"""A direction-finding job on a real network (``drift serve`` and four ``drift node`` agents of
examples/scenarios/tdoa4.yaml, each capturing IQ in its own GNU Radio flowgraph), then every
node's capture fetched over HTTP as a SigMF archive.

Oracles, all on the node's side of the network: the capture file the node's flowgraph wrote
itself (``iq.cf32`` in its assignment's directory), the frames as the node sent them (its
relay's spool, decoded with drift.wire), and the node's position in the scenario.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest
from gnuradio.drift import wire
from sigmf import sigmffile

from drift.localnet import LocalNetwork, NetworkError, wait_for
from drift.sim import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "examples" / "scenarios" / "tdoa4.yaml"
NODES = ["n1", "n2", "n3", "n4"]


def direction_finding_job(scn):
    target = next(e for e in scn.emitters if e.id == "target")
    return {
        "type": "direction_finding",
        "center_freq_hz": 433.92e6,
        "bandwidth_hz": 1e6,
        "method": "tdoa",
        "duration_s": 0.5,
        "node_count": 4,
        "area": {
            "lat_deg": target.position.lat,
            "lon_deg": target.position.lon,
            "radius_m": 2000.0,
        },
    }


def sent_frames(state_dir: Path, job_id: str) -> list[wire.Frame]:
    """The job's IQ frames as the node's relay took them from its flowgraph, by sequence."""
    db = sqlite3.connect(f"file:{state_dir / 'spool.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT p0, p1, p2 FROM spool ORDER BY id").fetchall()
    finally:
        db.close()
    frames = [wire.decode(list(r)) for r in rows]
    return sorted(
        (f for f in frames if f.frame_type == wire.IQ and f.meta.get("job_id") == job_id),
        key=lambda f: f.seq,
    )


def fetch_whole(net: LocalNetwork, job_id: str, node_id: str, path: Path, n_samples: int):
    """GET the node's archive into `path` until it holds `n_samples` (the collector may still
    be storing the last frames when the node reports its assignment completed)."""

    def whole():
        r = net.http.get(f"/jobs/{job_id}/iq", params={"node_id": node_id}, headers=net._headers)
        if r.status_code != 200:
            return None
        path.write_bytes(r.content)
        return r if sigmffile.fromarchive(str(path)).sample_count == n_samples else None

    return wait_for(whole, 30, f"node {node_id}'s whole capture in the store")


def parse_sigmf_datetime(text: str) -> tuple[int, float]:
    """(whole UNIX seconds, fraction) of an RFC 3339 UTC time, every fractional digit kept."""
    assert text.endswith("Z"), text
    whole, _, digits = text[:-1].partition(".")
    stamp = dt.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return int(stamp.timestamp()), float("0." + (digits or "0"))


def test_every_nodes_capture_is_served_as_sigmf_bit_for_bit_with_its_time_and_place(tmp_path):
    scn = load_scenario(SCENARIO)
    workdir = tmp_path / "net"
    with LocalNetwork(workdir, SCENARIO, NODES) as net:
        job_id = net.submit(direction_finding_job(scn))
        seen = {}

        def all_completed():
            job = seen["job"] = net.job(job_id)
            states = [a["state"] for a in job["assignments"]]
            if "failed" in states:
                raise NetworkError(f"an assignment failed: {job['assignments']}")
            done = len(states) == len(NODES) and all(s == "completed" for s in states)
            return job if done else None

        try:
            job = wait_for(all_completed, 180, "every assignment of the job to complete", 0.5)
        except NetworkError as exc:
            logs = "\n".join(
                f"--- {n}:\n{net.log_text(n)[-1500:]}"
                for n in ["coordinator", *(f"node-{x}" for x in NODES)]
            )
            raise AssertionError(f"{exc}\njob: {seen.get('job')}\n{logs}") from None
        name_of = {uuid: name for name, uuid in net.node_uuid.items()}
        assert sorted(name_of[a["node_id"]] for a in job["assignments"]) == NODES

        def get_iq(node_id):
            return net.http.get(
                f"/jobs/{job_id}/iq", params={"node_id": node_id}, headers=net._headers
            )

        for a in job["assignments"]:
            name = name_of[a["node_id"]]
            state_dir = workdir / f"node-{name}"
            local = np.fromfile(state_dir / "jobs" / a["id"] / "iq.cf32", np.complex64)
            frames = sent_frames(state_dir, job_id)
            assert [f.seq for f in frames] == list(range(len(frames))) and len(frames) > 1
            first = frames[0]
            assert len(local) == round(0.5 * first.meta["samp_rate_hz"])  # duration_s 0.5
            path = tmp_path / f"{name}.sigmf"
            r = fetch_whole(net, job_id, a["node_id"], path, len(local))
            assert r.headers["content-type"] == "application/x-tar"
            assert (
                r.headers["content-disposition"]
                == f'attachment; filename="drift-{job_id.replace("-", "")[:8]}-{name}.sigmf"'
            )
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                rec = sigmffile.fromarchive(str(path))
                rec.validate()
            samples = rec.read_samples()
            assert samples.dtype == np.complex64
            assert np.array_equal(samples.view(np.uint64), local.view(np.uint64)), name

            g = rec.get_global_info()
            (capture,) = rec.get_captures()
            assert parse_sigmf_datetime(capture["core:datetime"]) == (
                first.time_s,
                first.time_frac,
            ), name
            assert capture["core:frequency"] == first.meta["center_freq_hz"]
            assert g["core:sample_rate"] == first.meta["samp_rate_hz"]
            position = scn.node(name).position
            assert g["core:geolocation"]["type"] == "Point"
            assert g["core:geolocation"]["coordinates"] == pytest.approx(
                [position.lon, position.lat, position.alt], abs=1e-9
            )
            assert g["drift:complete"] is True and g["drift:frames"] == len(frames)
            assert g["drift:time_uncertainty_s"] == first.time_uncertainty_s
            assert g["drift:flowgraph_hash"] == first.meta["flowgraph_hash"]
            assert (g["drift:job_id"], g["drift:node_id"], g["drift:node_name"]) == (
                job_id,
                a["node_id"],
                name,
            )

        # a node that took no part, a job that does not exist, an id that is not one
        bystander, _ = net.enroll("bystander", 48.15, 11.57)
        r = get_iq(bystander)
        assert r.status_code == 404 and "took no part" in r.json()["detail"]
        r = net.http.get(
            "/jobs/00000000-0000-0000-0000-000000000000/iq",
            params={"node_id": bystander},
            headers=net._headers,
        )
        assert r.status_code == 404 and "no job" in r.json()["detail"]
        r = get_iq("n1")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "node_id"]
