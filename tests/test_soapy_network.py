"""The network on the hardware path: every node's device is a SoapySDR radio
(``driver=drift``, SoapyDRIFT) instead of the simulator's own GNU Radio source, so the
jobs run through the device layer's SoapySDR sources exactly as with an RTL-SDR or a Pluto,
and the node.yaml says where each node is and its time source, as a real one's would.

Oracles: the scenario's truth at each node's antenna (``drift.sim.render.truth_table``), the
emitter's position, and the job and node records the coordinator keeps.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pymap3d
import pytest

from drift import netdemo
from drift.localnet import LocalNetwork, wait_for
from drift.orchestrator.detections import NodeDetection
from drift.sim import load_scenario
from drift.sim.render import truth_table

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent
NETWORK = DATA / "network.yaml"
TDOA4 = ROOT / "examples" / "scenarios" / "tdoa4.yaml"
SOAPY = "driver=drift,scenario={scenario},node={node}"
SCAN = {
    "type": "spectrum_scan",
    "start_freq_hz": 430e6,
    "stop_freq_hz": 436e6,
    "bin_hz": 5e3,
    "interval_s": 1.0,
    "duration_s": 2.0,
}


def test_a_scan_on_soapysdr_nodes_finds_every_emitter_at_its_true_power(tmp_path):
    scn = load_scenario(NETWORK)
    nodes = ["a", "b", "c"]
    with LocalNetwork(tmp_path / "net", NETWORK, nodes, device=SOAPY) as net:
        listed = {n["name"]: n for n in net.api("GET", "/nodes")}
        for node in nodes:  # declared in node.yaml, as for hardware
            p = scn.node(node).position
            assert (listed[node]["lat_deg"], listed[node]["lon_deg"]) == (p.lat, p.lon)
        job_id = net.submit({**SCAN, "node_count": 3})
        job = net.wait_job(job_id, timeout_s=180)
        assert job["status"] == "completed", job
        for node in nodes:
            jobs = tmp_path / "net" / f"node-{node}" / "jobs"
            assert "driver=drift" in "".join(f.read_text() for f in jobs.glob("*/command.json"))
            frames = wait_for(
                lambda n=node: net.spectrum(job_id, n) or None, 30, f"node {node}'s frames"
            )
            bin_hz = frames[0]["bin_hz"]
            found = [
                NodeDetection.model_validate(d)
                for d in net.api(
                    "GET", f"/jobs/{job_id}/detections", params={"node_id": net.node_uuid[node]}
                )["detections"]
            ]
            for row in netdemo.compare(truth_table(scn, node), found):
                d = row["found"]
                assert d is not None, f"node {node}: {row['id']} not detected"
                assert abs(d.center_freq_hz - row["frequency_hz"]) <= bin_hz, (node, row["id"])
                assert abs(d.power_dbm - row["power_dbm"]) <= 2.0, (node, row, d)


def test_a_tdoa_job_on_soapysdr_nodes_with_device_time_locates_the_emitter(tmp_path):
    """Four GPS-timed Plutos as SoapySDR devices: their captures carry the device's time
    (readStream's timeNs), and the fix is within 30 m of the emitter, also with n2's driver
    overflowing every 150,000 samples (777 lost each time), so that its capture has gaps
    mid-way: each re-anchors rx_time on the device's time of the sample after the gap."""
    scn = load_scenario(TDOA4)
    em = scn.emitters[0].position
    nodes = ["n1", "n2", "n3", "n4"]
    # the device's clock reads the host's when its stream starts, then counts samples (not
    # paced, so a busy machine cannot make it drop any); the flowgraph starts well ahead of
    # the capture and its Timed Head finds the start in the device's time. Opening a
    # SoapySDR device (its driver loads the scenario) takes seconds on a busy machine while
    # the agent compiles the job: a heartbeat timeout to match
    with LocalNetwork(
        tmp_path / "net",
        TDOA4,
        nodes,
        device=SOAPY,
        node_device_options={"n2": ",overflow_every=150000,overflow_drop=777"},
        heartbeat_timeout_s=20.0,
        # a real device's flowgraph starts well ahead of the capture (four at once here,
        # each starting its driver's scenario helper, on a shared machine)
        env={"DRIFT_CAPTURE_LEAD_S": "30"},
        node_options={"capture_prestart_s": 25.0},
    ) as net:
        job_id = net.submit(
            {
                "type": "direction_finding",
                "center_freq_hz": 433.92e6,
                "bandwidth_hz": 1e6,
                "method": "tdoa",
                "area": {"lat_deg": em.lat, "lon_deg": em.lon, "radius_m": 5000},
                "duration_s": 0.25,
                "node_count": 4,
            }
        )
        done = net.wait_job(job_id, 180)
        assert done["status"] == "completed", done
        res = net.api("GET", f"/jobs/{job_id}/result")
        assert res["kind"] == "location" and res["method"] == "tdoa" and res["usable"], res
        p = res["position"]
        e, n, _ = pymap3d.geodetic2enu(em.lat, em.lon, em.alt, p["lat_deg"], p["lon_deg"], 0)
        assert math.hypot(e, n) < 30.0, (math.hypot(e, n), p)
        names = {n["name"]: n for n in res["nodes"]}
        for name, node in names.items():
            if name != "n2":  # from the common start, to within one sample
                assert 0 <= node["start_offset_s"] < 1 / node["sample_rate_hz"], node
        # n2: gaps mid-capture, so its longest unbroken run (at least one whole 150,000
        # samples between two overflows) was used, placed by its re-anchored time; a time
        # that ignored the 777 samples lost before it would put n2 186 km off
        n2, full = names["n2"], round(0.25 * names["n1"]["sample_rate_hz"])
        assert n2["used"] and "longest unbroken run" in n2["note"], n2
        assert 150_000 <= n2["samples"] < full, n2
        assert 0 <= n2["start_offset_s"] < 0.25, n2
        # each node's flowgraph opened the SoapySDR device
        for node in nodes:
            jobs = tmp_path / "net" / f"node-{node}" / "jobs"
            argv = "".join(f.read_text() for f in jobs.glob("*/command.json"))
            assert "driver=drift" in argv, argv


def test_an_unplugged_device_is_in_the_nodes_health_and_its_job_moves(tmp_path):
    """Node a's Pluto is unplugged 300,000 samples into its scan: its agent reports the device
    lost (health: device_ok false, the driver's error), the coordinator does not retry the
    work there, and the scan moves to node c as soon as c is up, and completes there."""
    with LocalNetwork(
        tmp_path / "net",
        NETWORK,
        ["a"],
        device=SOAPY,
        node_device_options={"a": ",unplug_after=300000"},
        node_options={"device_probe_interval_s": 3600},
    ) as net:
        job_id = net.submit({**SCAN, "node_count": 1})

        def lost():
            node = net.api("GET", f"/nodes/{net.node_uuid['a']}")
            return node if node["health"].get("device_ok") is False else None

        node = wait_for(lost, 120, "node a to report its device lost")
        assert "device lost" in node["health"]["last_error"], node["health"]
        job = net.job(job_id)
        assert job["status"] in ("scheduled", "running"), job  # waiting, not failed
        [first] = job["assignments"]
        assert first["state"] in ("assigned", "running") and first["attempts"] == 0, first
        net.start_node("c")
        net.wait_nodes_online()
        job = net.wait_job(job_id, timeout_s=180)
        assert job["status"] == "completed", job
        states = {a["node_id"]: a for a in job["assignments"]}
        assert states[net.node_uuid["a"]]["state"] == "reassigned"
        assert "device lost" in states[net.node_uuid["a"]]["last_error"]
        assert states[net.node_uuid["c"]]["state"] == "completed"
        assert wait_for(lambda: net.spectrum(job_id, "c") or None, 30, "node c's frames")
        assert "device lost" in net.log_text("node-a")


def test_device_telemetry_and_calibration_reach_the_coordinator(tmp_path):
    """A SoapySDR node whose board sits at 37.5 C and whose driver overflows every 200,000
    samples, losing 500 each time, with a calibration record `drift calibrate` stored for its
    device: its agent reports what the device's source saw (read from the job's directory,
    not from a second handle on a streaming device), the coordinator keeps it as the
    ``device_metrics`` series and /metrics gauges, and GET /nodes shows the calibration."""
    import datetime as dt

    from gnuradio.drift import devices
    from gnuradio.drift.devices import calibration
    from prometheus_client.parser import text_string_to_metric_families

    from drift.orchestrator.spectrum_store import SpectrumStore

    scn = load_scenario(NETWORK)
    every, drop = 200_000, 500
    workdir = tmp_path / "net"
    device = SOAPY.format(scenario=NETWORK.resolve(), node="a")
    made = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    record = calibration.CalibrationRecord(
        device_key=devices.device_key(devices.parse_device(device)),
        lo_error_ppm=0.4,
        gain_points=[(433e6, -1.25)],
        created=made.isoformat(),
        valid_until=(made + dt.timedelta(days=30)).isoformat(),
    )
    with LocalNetwork(
        workdir,
        NETWORK,
        ["a"],
        device=SOAPY,
        node_device_options={"a": f",temperature=37.5,overflow_every={every},overflow_drop={drop}"},
    ) as net:
        node_id = net.node_uuid["a"]
        # calibrated while the node runs, where `drift calibrate` run as the node's user
        # stores it ($DRIFT_DATA_DIR/calibration): the agent sends it once it changed
        calibration.CalibrationStore(str(workdir / "coordinator" / "calibration")).save(record)
        job_id = net.submit({**SCAN, "node_count": 1})
        done = net.wait_job(job_id, timeout_s=180)
        assert done["status"] == "completed", done
        (stats_file,) = (workdir / "node-a" / "jobs").glob("*/device-stats.json")

        def reported():
            node = net.api("GET", f"/nodes/{node_id}")
            (m,) = node["health"].get("devices") or [{}]
            # the finished capture's counts, once the agent has folded them in
            done = m.get("overflows") and m.get("sample_rate_hz") is None
            return (node, m) if done and node["devices"][0]["calibration"] else None

        node, m = wait_for(reported, 30, "the finished capture's device metrics")
        # the device model's truth: its fixed temperature, its clock's uncertainty
        # (GPS-locked, the scenario's 20 ns), and the injected losses
        assert m["temperature_c"] == 37.5
        assert m["sync_uncertainty_s"] == pytest.approx(scn.node("a").clock.uncertainty_s)
        assert m["overflows"] >= 2 and m["dropped_samples"] == drop * m["overflows"]
        stats = json.loads(stats_file.read_text())
        assert stats["overflows"] == m["overflows"]

        (dev,) = node["devices"]
        assert dev["calibration"]["lo_error_ppm"] == 0.4
        assert dev["calibration"]["gain_offset_db"] == -1.25
        assert 3 * 3600 - 5 < dev["calibration_age_s"] < 3 * 3600 + 300
        assert dev["calibration_valid"] is True

        # the device_metrics series, in the coordinator's time-series store: the capture's
        # sample rate while it ran, the losses growing to the final count
        store = SpectrumStore(str(workdir / "coordinator" / "spectrum.sqlite"))
        try:
            points = store.device_metrics(node_id, dev["id"])
        finally:
            store.close()
        running = [p for p in points if p.sample_rate is not None]
        assert running and {p.sample_rate for p in running} == {stats["sample_rate_hz"]}
        # before its first capture, the node had no reading of the sensor yet
        assert {p.temperature for p in running} == {37.5}
        assert {p.temperature for p in points} <= {None, 37.5}
        counts = [p.overflows for p in points]
        assert counts == sorted(counts) and counts[-1] == m["overflows"]
        # mid-capture, the samples an overflow lost count from the next read on
        assert all(
            p.dropped_samples in (None, drop * p.overflows, drop * (p.overflows - 1))
            for p in points
        )
        assert points[-1].dropped_samples == drop * points[-1].overflows

        text = net.http.get(net.base + "/metrics", headers=net._headers).text
        gauges = {
            (s.name, s.labels.get("node"), s.labels.get("device")): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
        }
        label = dev["driver"]
        assert gauges[("drift_device_temperature_celsius", node_id, label)] == 37.5
        assert gauges[("drift_device_overflows", node_id, label)] == m["overflows"]
        assert gauges[("drift_device_dropped_samples", node_id, label)] == drop * m["overflows"]
        assert 3 * 3600 - 5 < gauges[("drift_device_calibration_age_seconds", node_id, label)]
