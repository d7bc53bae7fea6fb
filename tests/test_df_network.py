"""Direction finding through the whole network, as real processes: ``drift serve`` and one
``drift node`` per simulated receiver; a REST ``direction_finding`` job; each node captures IQ
from the job's common start in a compiled GNU Radio flowgraph; the coordinator's analysis
worker turns the captures into a position served at ``GET /jobs/{id}/result``.

Oracles: the scenario's truth (the emitter's position, the nodes' clock offsets), geometry,
and GeoJSON read back with independent parsers (``geojson``, ``shapely``).
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import geojson
import numpy as np
import pymap3d
import pytest
import yaml
from scipy import stats
from shapely.geometry import Point, shape
from websockets.sync.client import connect

from drift.localnet import LocalNetwork, wait_for
from drift.sim import load_scenario

ROOT = Path(__file__).resolve().parent.parent
TDOA4 = ROOT / "examples" / "scenarios" / "tdoa4.yaml"
NODES = ["n1", "n2", "n3", "n4"]
#: the reference transmitter of the unsynchronised scenario (ENU about 48.14 N 11.56 E, 100 m)
REF_ENU = (-500.0, -4600.0)
ORIGIN = (48.14, 11.56, 100.0)
CHI2_95 = float(stats.chi2.ppf(0.95, 2))


def df_job(**kw) -> dict:
    scn = load_scenario(TDOA4)
    em = scn.emitters[0].position
    return {
        "type": "direction_finding",
        "center_freq_hz": 433.92e6,
        "bandwidth_hz": 1e6,
        "method": "tdoa",
        "area": {"lat_deg": em.lat, "lon_deg": em.lon, "radius_m": 5000},
        "duration_s": 0.25,
        "node_count": 4,
        **kw,
    }


def truth(path: Path = TDOA4) -> tuple[float, float, float]:
    p = next(e for e in load_scenario(path).emitters if e.id == "target").position
    return p.lat, p.lon, p.alt


def error_m(result: dict, point: tuple[float, float, float]) -> float:
    p = result["position"]
    e, n, _ = pymap3d.geodetic2enu(
        point[0], point[1], point[2], p["lat_deg"], p["lon_deg"], p["alt_m"]
    )
    return float(math.hypot(e, n))


def mahalanobis2(result: dict, point: tuple[float, float, float]) -> float:
    """The point's squared Mahalanobis distance from the fix, in the result's own frame."""
    o = result["origin"]
    fix = np.array(
        pymap3d.geodetic2enu(
            result["position"]["lat_deg"],
            result["position"]["lon_deg"],
            0.0,
            o["lat_deg"],
            o["lon_deg"],
            o["alt_m"],
        )[:2]
    )
    pt = np.array(
        pymap3d.geodetic2enu(point[0], point[1], 0.0, o["lat_deg"], o["lon_deg"], o["alt_m"])[:2]
    )
    d = pt - fix
    return float(d @ np.linalg.solve(np.array(result["covariance_enu_m2"]), d))


def run_job(net: LocalNetwork, job: dict, timeout_s: float = 180) -> tuple[dict, dict]:
    job_id = net.submit(job)
    done = net.wait_job(job_id, timeout_s)
    r = net.http.get(f"/jobs/{job_id}/result", headers=net._headers)
    return done, (r.json() if r.status_code == 200 else {"status_code": r.status_code, **r.json()})


@pytest.fixture(scope="module")
def gps_net(tmp_path_factory):
    with LocalNetwork(tmp_path_factory.mktemp("gps") / "net", TDOA4, NODES) as net:
        yield net


def test_a_tdoa_job_on_gps_synchronized_nodes_locates_the_emitter(gps_net):
    """Four GPS-synchronized nodes about 8 km apart: the fix within 30 m of the emitter, the
    truth inside the 95 % ellipse (as the GeoJSON polygon draws it, read by shapely), every
    capture's first sample within one sample period of the common start, and the result
    pushed on the live feed."""
    net = gps_net
    job_id = net.submit(df_job())
    feed: list[dict] = []

    def follow():
        url = (
            f"ws://127.0.0.1:{net.port}/api/v1/ws/jobs/{job_id}?token="
            + net._headers["Authorization"].split()[1]
        )
        with connect(url, open_timeout=10, close_timeout=5) as ws:
            for raw in ws:
                feed.append(json.loads(raw))

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    done = net.wait_job(job_id, 180)
    assert done["status"] == "completed", done
    steps = [t["to_status"] for t in done["transitions"]]
    assert steps == ["pending", "scheduled", "running", "analysing", "completed"], steps
    assert "capture starts at" in done["transitions"][1]["reason"]
    res = net.api("GET", f"/jobs/{job_id}/result")
    assert res["kind"] == "location" and res["method"] == "tdoa" and res["usable"], res
    target = truth()
    err = error_m(res, target)
    assert err < 30.0, (err, res["position"])
    assert mahalanobis2(res, target) <= CHI2_95, (mahalanobis2(res, target), res["ellipse_95"])
    q = res["quality"]
    assert q["dof"] == 1 and q["chi2"] >= 0 and 0.5 < q["gdop"] < 10
    # each node's capture: from the common start, to within one sample
    assert len(res["nodes"]) == 4 and all(n["used"] for n in res["nodes"])
    for n in res["nodes"]:
        assert 0 <= n["start_offset_s"] < 1 / n["sample_rate_hz"], n
        assert n["samples"] == round(0.25 * n["sample_rate_hz"])
        assert n["snr_db"] == pytest.approx(20.0, abs=1.5), n  # the scenario's 20 dB
    assert res["capture"]["max_start_offset_s"] < 1 / res["nodes"][0]["sample_rate_hz"]
    # each TDOA against the geometry: arrival-time differences of the scenario's truth
    names = {n["node_id"]: n["name"] for n in res["nodes"]}
    scn = load_scenario(TDOA4)
    t_e, n_e, u_e = pymap3d.geodetic2ecef(*target)
    arrival = {}
    for node in scn.nodes:
        xyz = pymap3d.geodetic2ecef(node.position.lat, node.position.lon, node.position.alt)
        arrival[node.id] = math.dist(xyz, (t_e, n_e, u_e)) / 299_792_458.0
    assert len(res["measurements"]) == 3
    for m in res["measurements"]:
        expect = arrival[names[m["node_id"]]] - arrival[names[m["reference_node_id"]]]
        assert abs(m["delay_s"] - expect) < 4 * m["estimate_std_s"] + 0.05e-9, (m, expect)
    # the live feed said so too
    follower.join(20)
    kinds = [m["type"] for m in feed]
    assert "result" in kinds and kinds[-1] == "end", kinds
    pushed = next(m for m in feed if m["type"] == "result")["result"]
    assert pushed["position"] == res["position"]

    # GeoJSON: valid, the fix and the nodes where they are, the truth inside the ellipse
    r = net.http.get(f"/jobs/{job_id}/result", params={"format": "geojson"}, headers=net._headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    checked = geojson.loads(r.text)  # the geojson package's reader (it rounds to 1e-6 deg)
    assert checked.is_valid, checked.errors()
    assert len(checked["features"]) == 6  # the fix, its ellipse, four nodes
    by_role: dict[str, list] = {}
    for f in r.json()["features"]:
        by_role.setdefault(f["properties"]["role"], []).append(f)
    fix = shape(by_role["fix"][0]["geometry"])
    assert fix.x == pytest.approx(res["position"]["lon_deg"], abs=1e-12)
    assert fix.y == pytest.approx(res["position"]["lat_deg"], abs=1e-12)
    ellipse = shape(by_role["ellipse"][0]["geometry"])
    assert ellipse.is_valid and ellipse.contains(fix)
    assert ellipse.contains(Point(target[1], target[0]))
    nodes = {f["properties"]["name"]: shape(f["geometry"]) for f in by_role["node"]}
    for node in scn.nodes:
        assert nodes[node.id].distance(Point(node.position.lon, node.position.lat)) < 1e-9


def test_an_rss_job_gives_an_honest_coarse_fix(gps_net):
    """RSS from the calibrated powers: a fix whose large ellipse holds the truth."""
    done, res = run_job(gps_net, df_job(method="rss"))
    assert done["status"] == "completed", done
    assert res["method"] == "rss" and res["usable"], res
    assert {m["kind"] for m in res["measurements"]} == {"rss"}
    scn = load_scenario(TDOA4)
    from drift.sim.synth import received_power_dbm

    for m in res["measurements"]:
        name = next(n["name"] for n in res["nodes"] if n["node_id"] == m["node_id"])
        expect = received_power_dbm(scn, scn.emitters[0], scn.node(name))
        assert m["power_dbm"] == pytest.approx(expect, abs=1.5), (name, m, expect)
    assert res["ellipse_95"]["semi_major_m"] > 300  # shadowing of 6 dB assumed: km, not m
    assert mahalanobis2(res, truth()) <= CHI2_95


def test_no_result_says_why(gps_net):
    net = gps_net
    r = net.http.get("/jobs/00000000-0000-0000-0000-000000000000/result", headers=net._headers)
    assert r.status_code == 404 and "no job" in r.json()["detail"]
    # a job no node can take (no device tunes to 10 kHz... here: a band beyond every node)
    job_id = net.submit(df_job(center_freq_hz=5.5e9))
    wait_for(lambda: net.job(job_id)["pending_reason"], 30, "the job's pending reason")
    r = net.http.get(f"/jobs/{job_id}/result", headers=net._headers)
    assert r.status_code == 404 and "pending" in r.json()["detail"], r.text
    net.api("POST", f"/jobs/{job_id}/cancel")
    r = net.http.get(f"/jobs/{job_id}/result", headers=net._headers)
    assert r.status_code == 404 and "cancelled" in r.json()["detail"], r.text
    r = net.http.get(f"/jobs/{job_id}/result", params={"format": "kml"}, headers=net._headers)
    assert r.status_code == 422


def unsynced_scenario(tmp_path: Path) -> tuple[Path, tuple[float, float, float]]:
    """tdoa4.yaml with NTP-grade clocks (offsets of milliseconds, 5 ms stated) and a
    reference transmitter 1.2 MHz below the emitter."""
    d = yaml.safe_load(TDOA4.read_text())
    for node, offset in zip(d["nodes"], [1.3e-3, -2.1e-3, 0.7e-3, -0.45e-3], strict=True):
        node["clock"] = {"source": "ntp", "offset_s": offset, "uncertainty_s": 5e-3}
    lat, lon, alt = (float(v) for v in pymap3d.enu2geodetic(*REF_ENU, 0.0, *ORIGIN))
    d["emitters"].append(
        {
            "id": "reference",
            "position": {"lat": lat, "lon": lon, "alt": alt},
            "frequency_hz": 432.72e6,
            "eirp_dbm": 20.0,
            "waveform": {"type": "psk", "order": 2, "symbol_rate_hz": 500e3, "rolloff": 0.35},
        }
    )
    path = tmp_path / "unsynced.yaml"
    path.write_text(yaml.safe_dump(d))
    return path, (lat, lon, alt)


def test_unsynchronized_nodes_locate_with_a_reference_transmitter_and_not_without(tmp_path):
    """Clocks milliseconds apart: with the reference transmitter in the job the offsets are
    measured (against the scenario's) and the fix is within 100 m; without it the result
    says the fix is unusable (or gives kilometres), never a confident wrong answer."""
    path, ref = unsynced_scenario(tmp_path)
    with LocalNetwork(tmp_path / "net", path, NODES) as net:
        reference = {
            "lat_deg": ref[0],
            "lon_deg": ref[1],
            "alt_m": ref[2],
            "center_freq_hz": 432.72e6,
            "bandwidth_hz": 0.7e6,
        }
        done, res = run_job(net, df_job(reference=reference, max_sync_uncertainty_s=0.01))
        assert done["status"] == "completed", done
        assert res["usable"], res
        err = error_m(res, truth(path))
        assert err < 100.0, (err, res["position"])
        assert mahalanobis2(res, truth(path)) <= stats.chi2.ppf(0.999, 2)
        scn = load_scenario(path)
        names = {n["node_id"]: n["name"] for n in res["nodes"]}
        offsets = {o["node_id"]: o["offset_s"] for o in res["clock_offsets"]}
        first = res["nodes"][0]["node_id"]
        for node_id, offset in offsets.items():
            expect = scn.node(names[node_id]).clock.offset_s - scn.node(names[first]).clock.offset_s
            assert abs(offset - expect) < 20e-9, (names[node_id], offset, expect)
        # the capture held both: the band is the span of the two, centred between them
        assert res["nodes"][0]["sample_rate_hz"] >= 1.7e6

        done, res = run_job(net, df_job(max_sync_uncertainty_s=0.01))
        assert done["status"] == "completed", done
        if res["usable"]:
            # then only with an ellipse of kilometres that holds the truth
            assert res["ellipse_95"]["semi_major_m"] > 2000, res["ellipse_95"]
            assert mahalanobis2(res, truth(path)) <= CHI2_95
        else:
            assert res["position"] is None and res["ellipse_95"] is None
            assert "reference transmitter" in res["reason"], res["reason"]
            assert "node n" in res["reason"]  # names, not indexes


def collinear_scenario(tmp_path: Path) -> Path:
    """Three tdoa4 nodes moved onto one east-west line, 4 km apart."""
    d = yaml.safe_load(TDOA4.read_text())
    d["nodes"] = d["nodes"][:3]
    for node, east in zip(d["nodes"], [-4000.0, 0.0, 4000.0], strict=True):
        lat, lon, alt = pymap3d.enu2geodetic(east, -3000.0, 0.0, *ORIGIN)
        node["position"] = {"lat": float(lat), "lon": float(lon), "alt": float(alt)}
    path = tmp_path / "collinear.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def test_collinear_nodes_fail_with_the_reason(tmp_path):
    with LocalNetwork(tmp_path / "net", collinear_scenario(tmp_path), NODES[:3]) as net:
        done, res = run_job(net, df_job(node_count=3))
        assert done["status"] == "failed", done
        assert done["status_reason"] == (
            "3 of 3 nodes delivered; TDOA needs 3 with distinct "
            "positions: the delivered nodes are collinear"
        )
        assert res["status_code"] == 404 and "collinear" in res["detail"]


def test_a_node_lost_before_its_capture(tmp_path):
    """A node killed after its job was placed: with four nodes the other three still give a
    fix (the lost node is reported, not used); with three, the job fails saying why."""
    with LocalNetwork(tmp_path / "net", TDOA4, NODES, heartbeat_timeout_s=4.0) as net:
        job_id = net.submit(df_job())
        wait_for(lambda: net.job(job_id)["status"] != "pending", 30, "the job placed")
        net.kill_node("n3")
        done = net.wait_job(job_id, 120)
        assert done["status"] == "completed", done
        res = net.api("GET", f"/jobs/{job_id}/result")
        lost = next(n for n in res["nodes"] if n["name"] == "n3")
        assert not lost["used"] and lost["state"] == "failed" and "silent" in lost["note"]
        assert sorted(n["name"] for n in res["nodes"] if n["used"]) == ["n1", "n2", "n4"]
        assert error_m(res, truth()) < 30.0
        assert res["quality"]["dof"] == 0  # three nodes: exactly determined

        job_id = net.submit(df_job(node_count=3))
        wait_for(lambda: net.job(job_id)["status"] != "pending", 30, "the job placed")
        net.kill_node("n2")
        done = net.wait_job(job_id, 120)
        assert done["status"] == "failed", done
        reason = done["status_reason"]
        assert "node n2" in reason and "silent" in reason, reason
        assert "2 of 3 nodes can still deliver, the job needs 3" in reason, reason
