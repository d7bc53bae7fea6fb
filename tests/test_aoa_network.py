"""Angle of arrival through the whole network, as real processes: ``drift serve``, one
``drift node`` per simulated 5-element UCA (KrakenSDR-like: one clock and LO, each channel
with its own phase, gain and delay error, drawn at random here), ``drift calibrate --array``
against a beacon at a known place, and REST ``direction_finding`` jobs with ``method: aoa``:
each node captures all its channels from the job's common start (``array_capture.grc``), and
the coordinator's analysis turns the captures into bearings and a position.

Oracles: the scenario (the emitter's and beacon's positions, the nodes' positions, the drawn
channel errors) and geometry: the true bearing of the emitter from each node is computed
here from positions alone, and GeoJSON is read back with shapely.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pymap3d
import pytest
import yaml
from scipy import stats
from shapely.geometry import Point, shape

from drift.localnet import LocalNetwork, wait_for

CHI2_95 = float(stats.chi2.ppf(0.95, 2))
ORIGIN = (48.15, 11.55, 500.0)
FREQ_HZ = 433.92e6
BEACON_HZ = 434.3e6
SYMBOL_RATE_HZ = 50e3
NOISE_FIGURE_DB = 6.0
#: per element, in the emitter's band (the symbol rate: an RRC pulse's noise bandwidth)
SNR_DB = 10.0
JOB_BANDWIDTH_HZ = 200e3
#: the rate an AoA capture of JOB_BANDWIDTH_HZ runs at (the band with a 25 % margin)
CAPTURE_RATE_HZ = 1.25 * JOB_BANDWIDTH_HZ
NODES = {"arr_a": (-3000.0, 0.0, 17.0), "arr_b": (3000.0, 0.0, -40.0)}  # east, north, orient
TARGET_EN = (0.0, 4000.0)
BEACON_EN = (0.0, -6000.0)


def _geo(east: float, north: float) -> dict[str, float]:
    lat, lon, alt = pymap3d.enu2geodetic(east, north, 0.0, *ORIGIN)
    return {"lat": float(lat), "lon": float(lon), "alt": float(alt)}


def _eirp_dbm(snr_db: float, distance_m: float, freq_hz: float) -> float:
    """The EIRP that gives snr_db per element in the symbol-rate band at this free-space
    distance (thermal noise -174 dBm/Hz plus the noise figure)."""
    fspl = 20 * math.log10(4 * math.pi * distance_m * freq_hz / 299_792_458.0)
    return snr_db + (-174 + NOISE_FIGURE_DB + 10 * math.log10(SYMBOL_RATE_HZ)) + fspl


def _scenario(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    nodes = []
    for node_id, (east, north, orientation) in NODES.items():
        nodes.append(
            {
                "id": node_id,
                "position": _geo(east, north),
                "device": "rtlsdr_v3",
                "noise_figure_db": NOISE_FIGURE_DB,
                "clock": {"source": "gps", "uncertainty_s": 2e-8},
                "array": {
                    "geometry": "uca",
                    "elements": 5,
                    "radius_wl": 0.425,
                    "design_frequency_hz": FREQ_HZ,
                    "orientation_deg": orientation,
                    "phase_deg": [float(v) for v in rng.uniform(-180, 180, 5)],
                    "gain_db": [float(v) for v in rng.uniform(-2, 2, 5)],
                    "delay_samples": [float(v) for v in rng.uniform(0, 4, 5)],
                },
            }
        )
    target_m = math.dist(TARGET_EN, NODES["arr_a"][:2])
    assert target_m == pytest.approx(math.dist(TARGET_EN, NODES["arr_b"][:2]))
    beacon_m = max(math.dist(BEACON_EN, n[:2]) for n in NODES.values())
    return {
        "seed": seed,
        "propagation": {"model": "free_space"},
        "emitters": [
            {
                "id": "target",
                "position": _geo(*TARGET_EN),
                "frequency_hz": FREQ_HZ,
                "eirp_dbm": _eirp_dbm(SNR_DB, target_m, FREQ_HZ),
                "waveform": {
                    "type": "psk",
                    "order": 4,
                    "symbol_rate_hz": SYMBOL_RATE_HZ,
                    "rolloff": 0.35,
                },
            },
            {
                # outside every AoA capture's band, and the target outside the beacon's
                "id": "beacon",
                "position": _geo(*BEACON_EN),
                "frequency_hz": BEACON_HZ,
                "eirp_dbm": _eirp_dbm(25.0, beacon_m, BEACON_HZ),
                "waveform": {
                    "type": "psk",
                    "order": 2,
                    "symbol_rate_hz": SYMBOL_RATE_HZ,
                    "rolloff": 0.35,
                },
            },
        ],
        "nodes": nodes,
    }


def true_azimuth_deg(node_id: str) -> float:
    """The emitter's azimuth from the node, clockwise from the node's own north."""
    node, target = _geo(*NODES[node_id][:2]), _geo(*TARGET_EN)
    e, n, _ = pymap3d.geodetic2enu(
        target["lat"], target["lon"], target["alt"], node["lat"], node["lon"], node["alt"]
    )
    return math.degrees(math.atan2(e, n)) % 360.0


def angle_error_deg(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def aoa_job(**kw) -> dict:
    target = _geo(*TARGET_EN)
    return {
        "type": "direction_finding",
        "method": "aoa",
        "center_freq_hz": FREQ_HZ,
        "bandwidth_hz": JOB_BANDWIDTH_HZ,
        "area": {"lat_deg": target["lat"], "lon_deg": target["lon"], "radius_m": 5000},
        "duration_s": 0.1,
        "node_count": 2,
        **kw,
    }


def mahalanobis2(result: dict, east_north: tuple[float, float]) -> float:
    o = result["origin"]
    p = result["position"]
    fix = np.array(
        pymap3d.geodetic2enu(p["lat_deg"], p["lon_deg"], 0.0, o["lat_deg"], o["lon_deg"], 0.0)[:2]
    )
    t = _geo(*east_north)
    pt = np.array(
        pymap3d.geodetic2enu(t["lat"], t["lon"], 0.0, o["lat_deg"], o["lon_deg"], 0.0)[:2]
    )
    d = pt - fix
    return float(d @ np.linalg.solve(np.array(result["covariance_enu_m2"]), d))


def error_m(result: dict, east_north: tuple[float, float]) -> float:
    p, t = result["position"], _geo(*east_north)
    e, n, _ = pymap3d.geodetic2enu(
        t["lat"], t["lon"], t["alt"], p["lat_deg"], p["lon_deg"], p["alt_m"]
    )
    return float(math.hypot(e, n))


def run_job(net: LocalNetwork, job: dict) -> dict:
    job_id = net.submit(job)
    done = net.wait_job(job_id, 180)
    assert done["status"] == "completed", done
    return net.api("GET", f"/jobs/{job_id}/result") | {"_job_id": job_id}


def calibrate(net: LocalNetwork, node_id: str) -> str:
    beacon = _geo(*BEACON_EN)
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "drift"),
            "calibrate",
            "--array",
            "--device",
            f"sim={net.scenario},node={node_id}",
            "--known-freq",
            str(BEACON_HZ),
            "--rate",
            str(CAPTURE_RATE_HZ),
            "--duration",
            "0.2",
            "--ref-position",
            f"{beacon['lat']},{beacon['lon']},{beacon['alt']}",
        ],
        env=net.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.fixture(scope="module")
def array_net(tmp_path_factory):
    root = tmp_path_factory.mktemp("aoa")
    scenario = root / "arrays.yaml"
    scenario.write_text(yaml.safe_dump(_scenario(seed=int(os.environ.get("AOA_SEED", "14")))))
    with LocalNetwork(root / "net", scenario, list(NODES)) as net:
        yield net


def test_array_nodes_report_their_array(array_net):
    """Each node enrols with its device's channel count and array layout (from the
    scenario's array: 5 elements on a circle of 0.425 wavelength, turned by its
    orientation)."""
    radius = 0.425 * 299_792_458.0 / FREQ_HZ
    for node in array_net.api("GET", "/nodes"):
        dev = node["devices"][0]["capabilities"]
        assert dev["channels"] == 5, dev
        arr = dev["array"]
        assert arr["geometry"] == "uca" and arr["elements"] == 5
        assert arr["radius_m"] == pytest.approx(radius)
        orientation = NODES[node["name"]][2]
        assert arr["orientation_deg"] == pytest.approx(orientation)
        enu = np.array(arr["element_enu_m"])
        assert np.linalg.norm(enu[:, :2], axis=1) == pytest.approx([radius] * 5)
        # element 0 at the orientation's azimuth, the others clockwise
        azimuths = np.degrees(np.arctan2(enu[:, 0], enu[:, 1]))
        expect = orientation + 72.0 * np.arange(5)
        assert all(angle_error_deg(a, b) < 1e-6 for a, b in zip(azimuths, expect, strict=True))


def test_aoa_bearings_uncalibrated_then_calibrated(array_net):
    """Uncalibrated, the random channel errors make the bearings wrong, and the result says
    so: each is flagged uncalibrated and its std covers its error. Calibrated from the beacon
    (``drift calibrate --array``, reported by the agents), each bearing comes within 1 degree
    of the truth at 10 dB SNR, and the emitter lies inside the fix's 95 % ellipse (also as
    the GeoJSON polygon draws it)."""
    net = array_net
    raw = run_job(net, aoa_job())
    assert raw["method"] == "aoa" and len(raw["measurements"]) == 2, raw
    names = {n["node_id"]: n["name"] for n in raw["nodes"]}
    raw_err, raw_std = {}, {}
    for m in raw["measurements"]:
        assert m["kind"] == "bearing" and m["calibrated"] is False, m
        assert "uncalibrated" in m["calibration"], m
        name = names[m["node_id"]]
        raw_err[name] = angle_error_deg(m["azimuth_deg"], true_azimuth_deg(name))
        raw_std[name] = m["std_deg"]
        # not hidden: the stated uncertainty covers the error the channels cause
        assert raw_err[name] <= 3 * m["std_deg"], (name, raw_err[name], m["std_deg"])
    # a fix from such bearings, if any, says where they came from; an undetermined bearing
    # (std of a bearing uniform over the circle) is shown but left out of the fix
    assert "uncalibrated" in raw["reason"], raw["reason"]
    for n in raw["nodes"]:
        m = next(m for m in raw["measurements"] if m["node_id"] == n["node_id"])
        if m["std_deg"] > 100:
            assert not n["used"] and "undetermined" in n["note"], n
    if not raw["usable"]:
        assert raw["position"] is None and "usable bearing" in raw["reason"], raw["reason"]

    for node_id in NODES:
        out = calibrate(net, node_id)
        assert "channel 4" in out, out

    def reported():
        nodes = net.api("GET", "/nodes")
        cals = [(n["devices"][0].get("calibration") or {}).get("array") for n in nodes]
        return nodes if all(cals) else None

    wait_for(reported, 30, "both nodes to report their array calibration", 0.5)

    res = run_job(net, aoa_job())
    assert res["usable"], (res["reason"], [n.get("note") for n in res["nodes"]])
    names = {n["node_id"]: n["name"] for n in res["nodes"]}
    for m in res["measurements"]:
        name = names[m["node_id"]]
        assert m["calibrated"] is True, m
        err = angle_error_deg(m["azimuth_deg"], true_azimuth_deg(name))
        assert err < 1.0, (name, m["azimuth_deg"], true_azimuth_deg(name))
        assert err <= 4 * m["std_deg"], (name, err, m["std_deg"])
        print(
            f"{name}: calibrated bearing {m['azimuth_deg']:.3f} deg (truth "
            f"{true_azimuth_deg(name):.3f}), error {err:.3f}, std {m['std_deg']:.3f}; "
            f"uncalibrated error {raw_err[name]:.1f}, std {raw_std[name]:.1f}"
        )
        # the calibrated bearing states a smaller uncertainty than the uncalibrated one
        assert m["std_deg"] < raw_std[name] / 3, (name, m["std_deg"], raw_std[name])
        assert m["estimator"] == "music"
        spec = m["spectrum"]
        assert len(spec["azimuth_deg"]) == len(spec["power_db"]) == 360
        peak = spec["azimuth_deg"][int(np.argmax(spec["power_db"]))]
        assert angle_error_deg(peak, true_azimuth_deg(name)) <= 1.5
    print(
        f"fix {error_m(res, TARGET_EN):.1f} m from the emitter, Mahalanobis^2 "
        f"{mahalanobis2(res, TARGET_EN):.2f}, ellipse {res['ellipse_95']['semi_major_m']:.1f} x "
        f"{res['ellipse_95']['semi_minor_m']:.1f} m"
    )
    assert mahalanobis2(res, TARGET_EN) <= CHI2_95, (
        res["position"],
        res["ellipse_95"],
        [
            (
                m["azimuth_deg"],
                true_azimuth_deg(names[m["node_id"]]),
                m["std_deg"],
                m["crb_std_deg"],
                m["model_std_deg"],
                m["phase_misfit_deg"],
            )
            for m in res["measurements"]
        ],
    )

    gj = net.api("GET", f"/jobs/{res['_job_id']}/result", params={"format": "geojson"})
    feats = {f["id"]: f for f in gj["features"]}
    t = _geo(*TARGET_EN)
    assert shape(feats["ellipse_95"]["geometry"]).contains(Point(t["lon"], t["lat"]))
    lines = [f for f in gj["features"] if f["properties"].get("role") == "bearing"]
    assert len(lines) == 2
    for f in lines:
        # the line passes within the fix's ellipse of the target
        line = shape(f["geometry"])
        assert line.distance(Point(t["lon"], t["lat"])) < 1e-3, f


def test_aoa_job_waits_without_array_nodes(tmp_path):
    """A network whose nodes have no array: an AoA job stays pending, and says why."""
    scn = _scenario(seed=1)
    for n in scn["nodes"]:
        del n["array"]
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(scn))
    with LocalNetwork(tmp_path / "net", path, list(NODES)) as net:
        job_id = net.submit(aoa_job())

        def reason():
            job = net.job(job_id)
            assert job["status"] == "pending", job
            why = job["pending_reason"] or ""
            return why if "no coherent array" in why else None

        why = wait_for(reason, 20, "the job to say why it waits", 0.5)
        assert "2 have no coherent array" in why, why


def test_aoa_through_soapysdr_array_devices_laid_out_in_node_yaml(tmp_path):
    """Hardware's path: each node's device is a 5-channel SoapySDR device (gr-drift's
    driver=drift module, opened with channels=5: one with device time, read by DRIFT's own
    SoapySDR source, one without, read through gr-soapy and stamped from the host clock), and
    its array layout comes from node.yaml, as for a KrakenSDR. Arrays without channel errors
    need no calibration: each bearing within 1 degree of the truth, the emitter inside the
    95 % ellipse."""
    scn = _scenario(seed=5)
    orientation = 25.0
    for n in scn["nodes"]:
        n["array"].update(orientation_deg=orientation)
        for key in ("phase_deg", "gain_db", "delay_samples"):
            del n["array"][key]
    scn["nodes"][1]["clock"] = {"source": "ntp", "uncertainty_s": 5e-3}  # no device time
    path = tmp_path / "ideal.yaml"
    path.write_text(yaml.safe_dump(scn))
    radius = 0.425 * 299_792_458.0 / FREQ_HZ
    with LocalNetwork(
        tmp_path / "net",
        path,
        list(NODES),
        device="driver=drift,scenario={scenario},node={node},channels=5",
        node_options={
            "array": {
                "geometry": "uca",
                "elements": 5,
                "radius_m": radius,
                "orientation_deg": orientation,
            },
            "capture_prestart_s": 12,
        },
        # the agent compiles the flowgraph before its next heartbeat: opening a driver=drift
        # device (its scenario helper) several times, on a shared machine
        heartbeat_timeout_s=60.0,
        # a device's flowgraph starts well ahead of the capture (its driver starts a
        # scenario helper first, on a shared machine)
        env={"DRIFT_CAPTURE_LEAD_S": "15"},
    ) as net:
        for node in net.api("GET", "/nodes"):
            dev = node["devices"][0]["capabilities"]
            assert dev["channels"] == 5 and dev["array"]["radius_m"] == pytest.approx(radius)
        res = run_job(net, aoa_job())
        assert res["usable"], (res["reason"], [n.get("note") for n in res["nodes"]])
        names = {n["node_id"]: n["name"] for n in res["nodes"]}
        for m in res["measurements"]:
            name = names[m["node_id"]]
            assert m["calibrated"] is False
            err = angle_error_deg(m["azimuth_deg"], true_azimuth_deg(name))
            assert err < 1.0, (name, m["azimuth_deg"], true_azimuth_deg(name))
        assert mahalanobis2(res, TARGET_EN) <= CHI2_95, (res["position"], res["ellipse_95"])


#: a hybrid job's synchronised single-channel nodes (east, north), around the emitter
TIMING_NODES = {"time_s": (0.0, -2500.0), "time_w": (-4500.0, 5000.0), "time_e": (4500.0, 5500.0)}


def _ellipse_area(part: dict) -> float:
    e = part["ellipse_95"]
    return math.pi * e["semi_major_m"] * e["semi_minor_m"]


def test_hybrid_job_fuses_tdoa_and_bearings(tmp_path):
    """A hybrid job on two 5-element UCA nodes and three single-channel nodes with 20 ns GPS
    clocks: the allocator gives the arrays the array role (every channel captured, a bearing
    each) and the others the timing role (one channel, TDOAs against the first); one fit
    weights both by their variances. Its 95 % ellipse is smaller than the TDOA-only and the
    bearing-only fixes' from the same captures (both in ``components``), and holds the
    emitter. Arrays without channel errors here: calibration is the AoA test's subject."""
    scn = _scenario(seed=21)
    for n in scn["nodes"]:
        for key in ("phase_deg", "gain_db", "delay_samples"):
            del n["array"][key]
    for node_id, (east, north) in TIMING_NODES.items():
        scn["nodes"].append(
            {
                "id": node_id,
                "position": _geo(east, north),
                "device": "rtlsdr_v3",
                "noise_figure_db": NOISE_FIGURE_DB,
                "clock": {"source": "gps", "uncertainty_s": 2e-8},
            }
        )
    path = tmp_path / "hybrid.yaml"
    path.write_text(yaml.safe_dump(scn))
    with LocalNetwork(tmp_path / "net", path, [*NODES, *TIMING_NODES]) as net:
        res = run_job(net, aoa_job(method="hybrid", node_count=5, duration_s=0.2))
        names = {n["node_id"]: n["name"] for n in res["nodes"]}
        assert res["method"] == "hybrid" and res["usable"], (res["reason"], res["nodes"])
        bearing = {names[m["node_id"]] for m in res["measurements"] if m["kind"] == "bearing"}
        tdoa = [m for m in res["measurements"] if m["kind"] == "tdoa"]
        assert bearing == set(NODES), res["measurements"]
        # every timing node against the first of them: 2 TDOAs
        timed = {names[m["node_id"]] for m in tdoa} | {names[tdoa[0]["reference_node_id"]]}
        assert len(tdoa) == 2 and timed == set(TIMING_NODES), tdoa
        assert all(n["used"] for n in res["nodes"]), res["nodes"]
        for m in res["measurements"]:
            if m["kind"] == "bearing":
                err = angle_error_deg(m["azimuth_deg"], true_azimuth_deg(names[m["node_id"]]))
                assert err <= 4 * m["std_deg"], (names[m["node_id"]], err, m["std_deg"])
        parts = {c["method"]: c for c in res["components"]}
        assert set(parts) == {"tdoa", "aoa"} and all(c["usable"] for c in parts.values()), parts
        fused = _ellipse_area(res)
        print(
            f"hybrid: fix {error_m(res, TARGET_EN):.1f} m from the emitter, 95 % ellipse "
            f"{fused:.0f} m^2; TDOA alone {_ellipse_area(parts['tdoa']):.0f} m^2 "
            f"({error_m(parts['tdoa'], TARGET_EN):.1f} m off), bearings alone "
            f"{_ellipse_area(parts['aoa']):.0f} m^2 ({error_m(parts['aoa'], TARGET_EN):.1f} m off)"
        )
        assert fused < _ellipse_area(parts["tdoa"]) and fused < _ellipse_area(parts["aoa"])
        assert mahalanobis2(res, TARGET_EN) <= CHI2_95, (res["position"], res["ellipse_95"])

        gj = net.api("GET", f"/jobs/{res['_job_id']}/result", params={"format": "geojson"})
        feats = {f["id"]: f for f in gj["features"]}
        t = _geo(*TARGET_EN)
        assert shape(feats["ellipse_95"]["geometry"]).contains(Point(t["lon"], t["lat"]))
        for method in ("tdoa", "aoa"):
            ring = shape(feats[f"ellipse_95-{method}"]["geometry"])
            assert ring.area > shape(feats["ellipse_95"]["geometry"]).area, method
