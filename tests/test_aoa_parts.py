"""The parts of angle of arrival in the network, one at a time: array layout in the node
protocol, placement of AoA jobs, the array capture flowgraph (every channel cut at one
sample, checked against the simulator's own synthesis), and multi-channel IQ frames joined
back into channels."""

from __future__ import annotations

import math
import os
import subprocess

import numpy as np
import pytest
import yaml
import zmq
from gnuradio.drift import wire
from pydantic import ValidationError

from drift.orchestrator import compiler
from drift.orchestrator.allocator import DeviceView, NodeView, Unplaceable
from drift.orchestrator.captures import join_iq
from drift.orchestrator.jobs import DirectionFindingJob
from drift.orchestrator.registry import JOB_TYPES
from drift.orchestrator.spectrum_store import StoredFrame
from drift.protocol import DeviceSpec

START = 1_764_000_000
RTL = DeviceView(24e6, 1.7e9, 2.4e6)
KRAKEN = DeviceView(24e6, 1.7e9, 2.4e6, channels=5, array=True)

SCENARIO = {
    "seed": 3,
    "propagation": {"model": "free_space"},
    "emitters": [
        {
            "id": "tx",
            "position": {"lat": 48.16, "lon": 11.55, "alt": 550},
            "frequency_hz": 433.95e6,
            "eirp_dbm": -20,
            "waveform": {"type": "cw"},
        },
        {
            # a wideband reference east of the array, outside the AoA band above
            "id": "beacon",
            "position": {"lat": 48.15, "lon": 11.57, "alt": 550},
            "frequency_hz": 434.3e6,
            "eirp_dbm": -10,
            "waveform": {"type": "psk", "order": 2, "symbol_rate_hz": 50e3, "rolloff": 0.35},
        },
    ],
    "nodes": [
        {
            "id": "kraken",
            "position": {"lat": 48.15, "lon": 11.55, "alt": 550},
            "device": "rtlsdr_v3",
            "clock": {"source": "gps", "uncertainty_s": 2e-8},
            "array": {
                "geometry": "uca",
                "elements": 5,
                "radius_m": 0.3,
                "orientation_deg": 10,
                "phase_deg": [0, 40, -70, 120, 10],
                "gain_db": [0, 1, -1, 0.5, 0],
                "delay_samples": [0, 2, 0, 1.5, 3],
            },
        },
        {
            "id": "single",
            "position": {"lat": 48.15, "lon": 11.56, "alt": 550},
            "device": "rtlsdr_v3",
            "clock": {"source": "gps", "uncertainty_s": 2e-8},
        },
    ],
}


@pytest.fixture
def scenario(tmp_path):
    path = tmp_path / "arrays.yaml"
    path.write_text(yaml.safe_dump(SCENARIO))
    return path


# --- the node protocol --------------------------------------------------------------------


def _device(**kw):
    base = {
        "driver": "kraken",
        "freq_min_hz": 24e6,
        "freq_max_hz": 1.7e9,
        "max_bandwidth_hz": 2.4e6,
    }
    return DeviceSpec.model_validate({**base, **kw})


def _uca(**kw):
    r = 0.3
    enu = [[r * math.sin(a), r * math.cos(a), 0.0] for a in np.radians(np.arange(5) * 72.0)]
    return {"geometry": "uca", "elements": 5, "radius_m": r, "element_enu_m": enu, **kw}


def test_an_array_device_states_channels_and_layout_and_errors_name_the_field():
    dev = _device(channels=5, array=_uca())
    assert dev.channels == 5 and dev.array.radius_m == 0.3
    with pytest.raises(ValidationError, match="array: 5 elements but 4 channels"):
        _device(channels=4, array=_uca())
    with pytest.raises(ValidationError, match="radius_m: a UCA needs it"):
        _device(channels=5, array=_uca(radius_m=None))
    with pytest.raises(ValidationError, match="element_enu_m: 4 positions for 5 elements"):
        _device(channels=5, array=_uca(element_enu_m=_uca()["element_enu_m"][:4]))
    with pytest.raises(ValidationError, match="element_enu_m"):
        _device(channels=5, array=_uca(element_enu_m=[[1e4, 0, 0]] * 5))
    assert _device().channels == 1 and _device().array is None  # as before: one channel


# --- placement ----------------------------------------------------------------------------


def _node(i: str, lat: float, lon: float, devices=(KRAKEN,)) -> NodeView:
    return NodeView(id=i, lat_deg=lat, lon_deg=lon, devices=devices, sync_uncertainty_s=1e-2)


def _aoa(**kw) -> DirectionFindingJob:
    return DirectionFindingJob(
        center_freq_hz=433.92e6,
        bandwidth_hz=200e3,
        method="aoa",
        area={"lat_deg": 48.0, "lon_deg": 11.0},
        duration_s=0.1,
        node_count=2,
        **kw,
    )


def test_aoa_jobs_go_to_array_nodes_only_spread_in_bearing():
    """Single-channel nodes nearer the area are passed over; of the arrays, the nearest and
    then the one at the widest angle from it around the area (unsynchronised clocks do not
    matter to bearings)."""
    strategy = JOB_TYPES["direction_finding"].strategy
    plain = [_node(f"rtl{k}", 48.0 + 0.01 * k, 11.01, devices=(RTL,)) for k in range(4)]
    arrays = [
        _node("north", 48.05, 11.0),
        _node("north2", 48.06, 11.01),
        _node("south", 47.9, 11.0),
    ]
    allocation = strategy.allocate(_aoa(), [*plain, *arrays])
    assert sorted(allocation.node_ids) == ["north", "south"]


def test_an_aoa_job_without_array_nodes_waits_with_the_reason():
    strategy = JOB_TYPES["direction_finding"].strategy
    nodes = [_node(f"rtl{k}", 48.0 + 0.01 * k, 11.0, devices=(RTL,)) for k in range(3)]
    nodes.append(_node("one-array", 48.1, 11.0))
    with pytest.raises(Unplaceable, match=r"needs 2 nodes.*1 qualify.*3 have no coherent array"):
        strategy.allocate(_aoa(), nodes)
    # an array that does not cover the band does not count either
    deaf = DeviceView(1e6, 30e6, 2.4e6, channels=5, array=True)
    nodes[0] = _node("hf-array", 48.0, 11.0, devices=(deaf,))
    with pytest.raises(Unplaceable, match="do not receive"):
        strategy.allocate(_aoa(), nodes)


def test_the_estimator_is_an_aoa_field():
    assert _aoa(estimator="mvdr").estimator == "mvdr"
    with pytest.raises(ValidationError, match="estimator: only AoA"):
        DirectionFindingJob(
            center_freq_hz=433.92e6,
            bandwidth_hz=200e3,
            area={"lat_deg": 48.0, "lon_deg": 11.0},
            duration_s=0.1,
            estimator="music",
        )


def _hybrid(**kw) -> DirectionFindingJob:
    return DirectionFindingJob(
        center_freq_hz=433.92e6,
        bandwidth_hz=200e3,
        method="hybrid",
        area={"lat_deg": 48.0, "lon_deg": 11.0},
        duration_s=0.1,
        **{"node_count": 5, **kw},
    )


def _synced(i: str, lat: float, lon: float, devices=(RTL,), sync=2e-8) -> NodeView:
    return NodeView(id=i, lat_deg=lat, lon_deg=lon, devices=devices, sync_uncertainty_s=sync)


def test_a_hybrid_job_takes_arrays_for_bearings_and_synchronised_nodes_for_timing():
    """node_count 5: two array nodes (role array, clocks irrelevant) and three synchronised
    single-channel nodes (role receiver); an unsynchronised node and a synchronised array are
    not taken for timing, and the timing nodes spread around the arrays already chosen."""
    strategy = JOB_TYPES["direction_finding"].strategy
    nodes = [
        _node("arr-n", 48.05, 11.0),  # unsynchronised (1e-2 s): fine for a bearing
        _node("arr-s", 47.95, 11.0),
        _synced("arr-synced", 48.0, 11.06, devices=(KRAKEN,)),
        _synced("t-w", 48.0, 10.94),
        _synced("t-e", 48.0, 11.05),
        _synced("t-e2", 48.001, 11.051),  # next to t-e: the spread takes one of the two
        _synced("t-ne", 48.04, 11.04),
        _synced("ntp", 48.0, 10.95, sync=5e-3),
    ]
    allocation = strategy.allocate(_hybrid(), nodes)
    roles = dict(allocation.nodes)
    arrays = sorted(i for i, r in roles.items() if r == "array")
    timing = sorted(i for i, r in roles.items() if r == "receiver")
    assert len(arrays) == 2 and set(arrays) <= {"arr-n", "arr-s", "arr-synced"}, roles
    assert {"t-ne", "t-w"} < set(timing) and len({"t-e", "t-e2"} & set(timing)) == 1, roles
    assert _hybrid().array_count == 2 and _hybrid(node_count=3).array_count == 1
    assert _hybrid(array_nodes=3).array_count == 3
    # too few timing nodes: pending, and the reason names what they lack
    with pytest.raises(Unplaceable, match=r"needs 3 nodes synchronised for TDOA.*not synchronised"):
        strategy.allocate(_hybrid(), [n for n in nodes if n.id not in ("t-e", "t-e2")])
    with pytest.raises(Unplaceable, match=r"needs 2 nodes with an array.*no coherent array"):
        strategy.allocate(_hybrid(), [n for n in nodes if not n.id.startswith("arr")][:5])
    # a lost array node is replaced by an array, a lost timing node by a synchronised one
    members = [(n, roles[n.id]) for n in nodes if n.id in roles and n.id not in ("arr-n", "t-w")]
    assert strategy.replace(_hybrid(), "array", members, nodes).id in ("arr-n", "arr-synced")
    assert strategy.replace(_hybrid(), "receiver", members, nodes).id in ("t-w", "t-e2")


def test_hybrid_fields_are_checked():
    with pytest.raises(ValidationError, match="array_nodes: only hybrid"):
        _aoa(array_nodes=1)
    with pytest.raises(ValidationError, match="array_nodes must leave at least 2"):
        _hybrid(array_nodes=4)
    with pytest.raises(ValidationError, match="node_count must be at least 3 for hybrid"):
        _hybrid(node_count=2)
    assert _hybrid(estimator="mvdr").estimator == "mvdr"


# --- the array capture flowgraph ----------------------------------------------------------


def _ctx(tmp_path, scenario, node, frames_to="", **kw):
    return compiler.NodeContext(
        device_args=f"sim={scenario},node={node}",
        job_id="job-1",
        node_id="node-a",
        frames_to=frames_to,
        workdir=str(tmp_path),
        **kw,
    )


def test_an_aoa_job_compiles_to_the_array_capture_on_array_nodes_only(tmp_path, scenario):
    job = _aoa().model_dump(mode="json")
    cmd = compiler.compile_job(
        "direction_finding", job, _ctx(tmp_path, scenario, "kraken"), cache=tmp_path / "c"
    )
    assert cmd.template.id == "array_capture"
    assert "--channels=5" in cmd.argv
    with pytest.raises(compiler.CompileError, match="AoA needs a coherent array"):
        compiler.compile_job(
            "direction_finding", job, _ctx(tmp_path, scenario, "single"), cache=tmp_path / "c"
        )
    # a hybrid job: its array nodes capture every channel, its timing nodes one
    hybrid = _hybrid().model_dump(mode="json")
    for node, role, template in (
        ("kraken", "array", "array_capture"),
        ("single", "receiver", "iq_capture"),
    ):
        cmd = compiler.compile_job(
            "direction_finding",
            hybrid,
            _ctx(tmp_path, scenario, node),
            cache=tmp_path / "c",
            role=role,
        )
        assert cmd.template.id == template, (node, role)
    tdoa = {**job, "method": "tdoa", "estimator": None, "node_count": 3}
    assert (
        compiler.compile_job(
            "direction_finding", tdoa, _ctx(tmp_path, scenario, "kraken"), cache=tmp_path / "c"
        ).template.id
        == "iq_capture"
    )


def test_the_array_capture_cuts_every_channel_at_one_sample(tmp_path, scenario):
    """The flowgraph's frames hold all five channels interleaved, from the first sample at or
    after the start, each channel exactly what the simulator synthesizes for that element at
    that same sample (one timestamp for all), and a frame's time follows from the previous
    frame's snapshots (not its interleaved values)."""
    pull = zmq.Context.instance().socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    job = {**_aoa().model_dump(mode="json"), "duration_s": 0.05}
    start = START + 0.3125
    cmd = compiler.compile_job(
        "direction_finding",
        job,
        _ctx(tmp_path, scenario, "kraken", f"tcp://127.0.0.1:{port}", start_time=start),
        cache=tmp_path / "c",
    )
    proc = subprocess.run(
        cmd.argv, capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = []
    while pull.poll(2000):
        frames.append(wire.decode(pull.recv_multipart()))
    pull.close(linger=0)
    rate = float(cmd.values["samp_rate_hz"])
    n = int(cmd.values["n_samples"])
    assert rate == pytest.approx(250e3) and n == round(0.05 * rate)
    assert all(f.meta["channels"] == 5 for f in frames)
    x = np.concatenate([f.payload for f in frames]).reshape(-1, 5).T
    assert x.shape == (5, n)
    for prev, f in zip(frames, frames[1:], strict=False):
        step = (f.time_s - prev.time_s) + (f.time_frac - prev.time_frac)
        assert step == pytest.approx(len(prev.payload) / 5 / rate, abs=1e-9)
    from drift.sim import load_scenario
    from drift.sim.synth import NodeReceiver

    lead = compiler.SIM_LEAD_IN_S
    whole = math.floor(start - lead)
    frac = (start - lead) - whole
    skip = math.ceil(((START - whole) + (start - START - frac)) * rate - 1e-6)
    rx = NodeReceiver(load_scenario(scenario), "kraken", rate, 433.92e6)
    ref = rx.samples(skip, 2000, whole, frac)
    assert np.allclose(x[:, :2000], ref, atol=1e-6)
    t = frac + skip / rate
    assert frames[0].time_s == whole + math.floor(t)
    assert frames[0].time_frac == pytest.approx(t % 1, abs=1e-9)
    # and the stored frames join back into the same channels
    stored = [
        StoredFrame(
            job_id="job-1",
            node_id="node-a",
            frame_type=wire.IQ,
            seq=f.seq,
            time=f.time_s + f.time_frac,
            center_freq_hz=f.meta["center_freq_hz"],
            bin_hz=None,
            time_s=f.time_s,
            time_frac=f.time_frac,
            time_uncertainty_s=f.time_uncertainty_s,
            flags=f.flags,
            meta=f.meta,
            payload=f.payload,
        )
        for f in frames
    ]
    cap = join_iq(stored)
    assert cap.complete and cap.channels == 5
    assert np.array_equal(cap.channel_samples(), x)
    assert cap.duration_s == pytest.approx(n / rate)


# --- the analysis: bearings and which calibration applies -----------------------------------


def _truth_azimuth_deg(scenario_doc: dict, node: str) -> float:
    import pymap3d

    n = next(x for x in scenario_doc["nodes"] if x["id"] == node)["position"]
    t = scenario_doc["emitters"][0]["position"]
    e, nn, _ = pymap3d.geodetic2enu(t["lat"], t["lon"], t["alt"], n["lat"], n["lon"], n["alt"])
    return math.degrees(math.atan2(e, nn)) % 360.0


@pytest.mark.parametrize("estimator", ["music", "bartlett", "mvdr"])
def test_each_estimator_bears_on_the_emitter_once_the_errors_are_removed(scenario, estimator):
    """The simulator's channels of an array turned by 10 degrees, the scenario's own channel
    errors removed: every estimator's bearing within 0.5 degree of the geometric azimuth,
    its std no smaller than the CRB; with the errors left in, MUSIC says the array model does
    not fit (a misfit std far above the CRB)."""
    from gnuradio.drift import df

    from drift.orchestrator.analysis.aoa import node_bearing
    from drift.sim import load_scenario
    from drift.sim.device import array_geometry
    from drift.sim.synth import NodeReceiver

    rate = 250e3
    scn = load_scenario(scenario)
    rx = NodeReceiver(scn, "kraken", rate, 433.92e6)
    x = rx.samples(0, 20000, START, 0.0)
    # the errors as the simulator drew them, relative to channel 0 (what calibration finds)
    cal = df.ArrayCalibration.from_errors(
        rx.channel_phase_deg - rx.channel_phase_deg[0],
        rx.channel_gain_db - rx.channel_gain_db[0],
        rx.channel_delay_samples - rx.channel_delay_samples[0],
    )
    enu = array_geometry(scn.node("kraken"))["element_enu_m"]
    truth = _truth_azimuth_deg(SCENARIO, "kraken")
    meas, _ = node_bearing(cal.apply(x), enu, 433.95e6, estimator)
    err = abs((meas.azimuth_deg - truth + 180) % 360 - 180)
    assert err < 0.5, (estimator, meas.azimuth_deg, truth)
    assert meas.std_deg >= meas.crb_std_deg > 0
    assert meas.estimator == estimator and len(meas.spectrum.power_db) == 360
    if estimator == "music":
        raw, _ = node_bearing(x, enu, 433.95e6, estimator)
        assert raw.phase_misfit_deg > 10 * meas.phase_misfit_deg
        assert raw.std_deg > 10 * meas.std_deg


def test_a_calibration_applies_only_where_it_holds():
    """Valid, of the capture's channel count and sample rate, near its frequency: applied;
    otherwise not, with the reason."""
    import datetime as dt

    from drift.orchestrator.analysis.aoa import array_calibration_for

    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    doc = {
        "elements": 5,
        "phase_deg": [0, 10, 20, 30, 40],
        "gain_db": [0, 0, 0, 0, 0],
        "delay_samples": [0, 1, 0, 0, 0],
        "sample_rate_hz": 250e3,
        "center_freq_hz": 434.27e6,
        "interp_half_taps": 16,
        "measured": "2026-11-30T12:00:00+00:00",
        "valid_until": "2026-12-01T12:00:00+00:00",
        "notes": "beacon",
    }
    cal, why = array_calibration_for(doc, 5, 250e3, 433.92e6, now)
    assert cal is not None and cal.phase_deg[2] == pytest.approx(20) and "calibrated" in why
    for changed, args, reason in [
        ({}, (5, 250e3, 433.92e6, now + dt.timedelta(days=1)), "expired"),
        ({}, (4, 250e3, 433.92e6, now), "for 5 channels, the capture has 4"),
        ({}, (5, 1e6, 433.92e6, now), "measured at 250000 S/s, the capture is at 1e+06"),
        ({}, (5, 250e3, 868e6, now), "too far from the capture's 868 MHz"),
        ({"valid_until": None}, (5, 250e3, 433.92e6, now + dt.timedelta(days=900)), None),
    ]:
        cal, why = array_calibration_for({**doc, **changed}, *args)
        if reason is None:
            assert cal is not None, why
        else:
            assert cal is None and reason in why, why
    assert array_calibration_for(None, 5, 250e3, 433.92e6, now)[1].startswith("uncalibrated")


def test_drift_calibrate_array_finds_the_channel_errors_of_a_soapysdr_array(scenario, tmp_path):
    """``drift calibrate --array`` on a 5-channel SoapySDR device (driver=drift) whose layout
    comes from node.yaml, against the beacon's known position: the stored phases, gains and
    delays are the scenario's channel errors (relative to channel 0). A device without an
    array is refused, naming what is missing."""
    import json
    import sys
    from pathlib import Path

    from drift.sim import load_scenario
    from drift.sim.synth import NodeReceiver

    node_yaml = tmp_path / "node.yaml"
    node_yaml.write_text(
        yaml.safe_dump(
            {
                "coordinator": "http://127.0.0.1:8000",
                "device": "unused",
                "location": {"lat_deg": 48.15, "lon_deg": 11.55, "alt_m": 550},
                "array": {"geometry": "uca", "elements": 5, "radius_m": 0.3, "orientation_deg": 10},
            }
        )
    )
    drift = str(Path(sys.executable).parent / "drift")
    env = {**os.environ, "DRIFT_DATA_DIR": str(tmp_path / "data")}
    device = f"driver=drift,scenario={scenario},node=kraken,channels=5"
    common = ["--known-freq", "434.3e6", "--rate", "250e3", "--duration", "0.2"]
    r = subprocess.run(
        [
            drift,
            "calibrate",
            "--array",
            "--device",
            device,
            *common,
            "--ref-position",
            "48.15,11.57,550",
            "--node-config",
            str(node_yaml),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (record_path,) = (tmp_path / "data" / "calibration").glob("*.json")
    arr = json.loads(record_path.read_text())["array"]
    rx = NodeReceiver(load_scenario(scenario), "kraken", 250e3, 434.3e6)
    phase = rx.channel_phase_deg - rx.channel_phase_deg[0]
    wrapped = (np.array(arr["phase_deg"]) - phase + 180) % 360 - 180
    assert np.abs(wrapped).max() < 1.0, (arr["phase_deg"], phase)
    gain = rx.channel_gain_db - rx.channel_gain_db[0]
    assert np.abs(np.array(arr["gain_db"]) - gain).max() < 0.1
    delay = rx.channel_delay_samples - rx.channel_delay_samples[0]
    assert np.abs(np.array(arr["delay_samples"]) - delay).max() < 0.05
    assert arr["sample_rate_hz"] == 250e3 and arr["valid_until"] > arr["measured"]
    # one channel, no layout: refused, and the record is as it was
    r = subprocess.run(
        [
            drift,
            "calibrate",
            "--array",
            "--device",
            f"sim={scenario},node=single",
            *common,
            "--ref-azimuth",
            "90",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode != 0 and "--array" in r.stderr and "1 channel" in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("array", "words"),
    [
        ({"geometry": "uca", "elements": 4, "radius_m": 0.3}, "4 elements, but the device opens 5"),
        ({"geometry": "uca", "elements": 5, "spacing_m": 0.3}, "a UCA takes radius_m"),
        ({"geometry": "ring", "elements": 5, "radius_m": 0.3}, "geometry"),
    ],
)
def test_drift_node_check_config_refuses_an_array_that_does_not_fit(
    scenario, tmp_path, array, words
):
    """node.yaml's array must fit its device's channels and its own geometry: exit 2 and a
    line naming the field."""
    import sys

    path = tmp_path / "node.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "coordinator": "http://127.0.0.1:8000",
                "enrollment_token": "drift-enroll-test",
                "device": f"sim={scenario},node=kraken",
                "state_dir": str(tmp_path / "state"),
                "array": array,
            }
        )
    )
    r = subprocess.run(
        [sys.executable, "-m", "drift.cli", "node", "--config", str(path), "--check-config"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert any("array" in line and words in line for line in errors), r.stderr
