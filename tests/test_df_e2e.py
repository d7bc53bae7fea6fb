"""TDOA end to end on the simulator: GNU Radio captures of four nodes -> GCC -> position fix.

Each node is its own sim_source opened through the device layer (sim=SCENARIO,node=ID,start=T),
running in a real flowgraph; the captures carry the node's own rx_time (its clock, offsets
included), and the oracle is the scenario's truth: the emitter's position. The array
calibration tests run on a simulated UCA with channel errors; their oracles are the scenario's
errors and geometry.
"""

import math
import pathlib

import numpy as np
import pmt
import pymap3d
import pytest
import yaml
from gnuradio import blocks, gr
from gnuradio.drift import devices, df

from drift.sim import load_scenario
from drift.sim.scenario import parse_scenario
from drift.sim.synth import NodeReceiver, received_power_dbm

ORIGIN = (48.14, 11.56, 100.0)
START = 1_764_000_000  # whole UNIX seconds; the captures start a quarter second later
F_TX = 433.92e6
F_REF = 432.72e6  # reference transmitter, 1.2 MHz below the emitter
SYMBOL_RATE = 1e6 / 1.35  # a 1 MHz wide PSK (roll-off 0.35)
NODES_ENU = np.array([[-4000.0, -3500.0], [4200.0, -3000.0], [3500.0, 4000.0], [-3800.0, 3800.0]])
TX_ENU = np.array([800.0, 1200.0])
REF_ENU = np.array([-500.0, -4600.0])
SNR_DB = 20.0  # at every node, in the emitter's 1 MHz band
EIRP_DBM = 15.0
GPS_SIGMA_S = 20e-9


CHI2_999 = 13.816  # chi-square, 2 degrees of freedom, 99.9 %


def mahalanobis2(fix, point):
    d = fix.position_enu_m - point
    return float(d @ np.linalg.solve(fix.covariance_m2, d))


def _geo(enu):
    lat, lon, alt = pymap3d.enu2geodetic(enu[0], enu[1], 0.0, *ORIGIN)
    return f"{{lat: {lat:.10f}, lon: {lon:.10f}, alt: {alt:.3f}}}"


def _fspl_db(d_m, f_hz):
    return 20 * math.log10(4 * math.pi * d_m * f_hz / 299_792_458.0)


def scenario_text(
    offsets_s,
    seed=20261124,
    reference=False,
    uncertainty_s=GPS_SIGMA_S,
    source="gps",
    lo_errors_ppm=(0.0, 0.0, 0.0, 0.0),
):
    """Four nodes, one 1 MHz PSK emitter; each node's noise figure set so that the emitter is
    SNR_DB above its noise in 1 MHz; optionally a reference transmitter."""
    lines = [
        f"seed: {seed}",
        "emitters:",
        "  - id: target",
        f"    position: {_geo(TX_ENU)}",
        f"    frequency_hz: {F_TX}",
        f"    eirp_dbm: {EIRP_DBM}",
        f"    waveform: {{type: psk, order: 4, symbol_rate_hz: {SYMBOL_RATE}, rolloff: 0.35}}",
    ]
    if reference:
        lines += [
            "  - id: reference",
            f"    position: {_geo(REF_ENU)}",
            f"    frequency_hz: {F_REF}",
            "    eirp_dbm: 20",
            "    waveform: {type: psk, order: 2, symbol_rate_hz: 500e3, rolloff: 0.35}",
        ]
    lines.append("nodes:")
    for i, (enu, off, lo) in enumerate(zip(NODES_ENU, offsets_s, lo_errors_ppm, strict=True)):
        d = float(np.linalg.norm(enu - TX_ENU))
        nf = EIRP_DBM - _fspl_db(d, F_TX) + 174 - 60 - SNR_DB  # approximately; checked below
        lines += [
            f"  - id: n{i + 1}",
            f"    position: {_geo(enu)}",
            "    device: adalm_pluto",
            f"    noise_figure_db: {nf:.4f}",
            f"    clock: {{source: {source}, offset_s: {off!r}, "
            f"uncertainty_s: {uncertainty_s!r}, lo_error_ppm: {lo!r}}}",
        ]
    return "\n".join(lines) + "\n"


def node_positions(scn):
    return np.array(
        [
            pymap3d.geodetic2enu(n.position.lat, n.position.lon, n.position.alt, *ORIGIN)[:2]
            for n in scn.nodes
        ]
    )


def truth(scn, emitter="target"):
    em = next(e for e in scn.emitters if e.id == emitter)
    return np.array(
        pymap3d.geodetic2enu(em.position.lat, em.position.lon, em.position.alt, *ORIGIN)[:2]
    )


def capture_flowgraph(path, scn, fs, center_hz, n, starts):
    """One real flowgraph, one device-layer sim source per node; Captures from the sinks,
    each timed by its own rx_time tag."""
    tb = gr.top_block(catch_exceptions=False)
    sinks = []
    for node, start in zip(scn.nodes, starts, strict=True):
        src = devices.source(f"sim={path},node={node.id},start={start!r}", fs, center_hz)
        head = blocks.head(gr.sizeof_gr_complex, n)
        sink = blocks.vector_sink_c()
        tb.connect(src, head, sink)
        sinks.append((node, src, head, sink))
    tb.run()
    pos = node_positions(scn)
    caps = []
    for i, (node, _src, _head, sink) in enumerate(sinks):
        data = np.array(sink.data(), dtype=np.complex64)
        assert data.size == n
        rx = [t for t in sink.tags() if str(t.key) == "rx_time"]
        assert rx, f"{node.id}: no rx_time tag"
        val = rx[0].value
        rx_time = (pmt.to_uint64(pmt.tuple_ref(val, 0)), pmt.to_double(pmt.tuple_ref(val, 1)))
        caps.append(
            df.Capture.from_rx_time(
                data,
                fs,
                rx_time,
                offset=rx[0].offset,
                node_id=node.id,
                position_enu_m=pos[i],
                time_std_s=node.clock.uncertainty_s,
            )
        )
    return caps


def test_snr_is_as_specified():
    scn = parse_scenario(scenario_text([0.0] * 4))
    for node in scn.nodes:
        p = received_power_dbm(scn, scn.emitters[0], node)
        noise = -174 + node.noise_figure_db + 60
        assert abs(p - noise - SNR_DB) < 0.05, node.id


def test_tdoa4_scenario_file_is_this_geometry():
    """examples/scenarios/tdoa4.yaml (bench/df.py's localization CDF) holds the geometry,
    emitter and per-node SNR of these tests."""
    path = pathlib.Path(__file__).resolve().parent.parent / "examples/scenarios/tdoa4.yaml"
    scn = load_scenario(str(path))
    ours = parse_scenario(scenario_text([0.0] * 4))
    np.testing.assert_allclose(node_positions(scn), NODES_ENU, atol=1e-3)
    np.testing.assert_allclose(truth(scn), TX_ENU, atol=1e-3)
    assert scn.emitters[0].waveform == ours.emitters[0].waveform
    assert scn.emitters[0].frequency_hz == F_TX
    for node, mine in zip(scn.nodes, ours.nodes, strict=True):
        assert node.clock.source == "gps" and node.clock.uncertainty_s == GPS_SIGMA_S
        p = received_power_dbm(scn, scn.emitters[0], node)
        assert abs(p - (-174 + node.noise_figure_db + 60) - SNR_DB) < 0.05, node.id
        assert node.noise_figure_db == pytest.approx(mine.noise_figure_db, abs=1e-4)


def test_gps_synchronized_nodes_locate_within_30_m(tmp_path):
    rng = np.random.default_rng(6)
    offsets = rng.normal(0, GPS_SIGMA_S, 4).tolist()
    path = tmp_path / "df.yaml"
    path.write_text(scenario_text(offsets))
    scn = parse_scenario(path.read_text())
    fs, n = 2e6, 16384
    # each node starts its capture on its own clock, at staggered times (not sample-aligned)
    starts = [START + 0.25 + i * 123.4567e-6 for i in range(4)]
    caps = capture_flowgraph(path, scn, fs, F_TX, n, starts)
    fix = df.locate_captures(caps, max_delay_s=2e-4)
    err = float(np.linalg.norm(fix.position_enu_m - truth(scn)))
    assert err < 30.0, (err, fix.position_enu_m, truth(scn))
    # the TDOAs against the truth: geometry plus the nodes' clock offsets, within 3 sigma
    rx = [NodeReceiver(scn, node.id, fs, F_TX) for node in scn.nodes]
    true = np.array(
        [
            rx[i].delay_s("target") - rx[0].delay_s("target") + offsets[i] - offsets[0]
            for i in (1, 2, 3)
        ]
    )
    delay_std = np.array([fix.extra["estimates"][i].std_s for i in (1, 2, 3)])
    assert np.all(np.abs(fix.extra["tdoa_s"] - true) < 3 * delay_std + 0.2e-9)
    # the delay estimates are far better than the clocks: the ellipse is the clocks'
    assert np.all(delay_std < 2e-9)
    assert 5.0 < fix.ellipse.semi_major_m < 200.0
    assert mahalanobis2(fix, truth(scn)) < CHI2_999  # one draw: the coverage test is below


def test_unsynchronized_nodes_with_reference_transmitter_within_100_m(tmp_path):
    offsets = [1.3e-3, -2.1e-3, 0.7e-3, -0.45e-3]  # NTP-grade / free-running clocks
    path = tmp_path / "df_ref.yaml"
    path.write_text(scenario_text(offsets, reference=True, uncertainty_s=5e-3, source="ntp"))
    scn = parse_scenario(path.read_text())
    fs, n = 4e6, 60000
    center = 433.32e6  # the emitter at +600 kHz, the reference at -600 kHz
    starts = [START + 0.25] * 4  # the same nominal start on four clocks that disagree by ms
    caps = capture_flowgraph(path, scn, fs, center, n, starts)
    pos = node_positions(scn)
    ref_band = (F_REF - center, 0.7e6)
    tx_band = (F_TX - center, 1.0e6)

    # without the reference the ms offsets leave TDOAs far longer than the light time between
    # the nodes: no position reproduces them, and the fix is refused saying so
    with pytest.raises(
        ValueError,
        match="inconsistent with the sensor geometry: the TDOA of "
        "sensor .* light time between them is only",
    ):
        df.locate_captures(caps, max_delay_s=6e-3, band=tx_band)

    synced, offs = df.sync_captures(caps, pos, REF_ENU, band=ref_band, max_offset_s=5e-3)
    true_off = np.array(offsets) - offsets[0]
    assert np.all(np.abs(offs.offsets_s - true_off) < 20e-9), offs.offsets_s - true_off
    fix = df.locate_captures(synced, max_delay_s=1e-4, band=tx_band)
    err = float(np.linalg.norm(fix.position_enu_m - truth(scn)))
    assert err < 100.0, (err, fix.position_enu_m)
    assert mahalanobis2(fix, truth(scn)) < CHI2_999


def test_free_running_receivers_lo_errors_and_ms_offsets_within_100_m(tmp_path):
    """RTL-SDR-like nodes: clocks milliseconds apart and LOs off by ppm (kHz at 433 MHz,
    which decorrelates a 15 ms capture). The reference transmitter gives both the time and
    the frequency offsets; the fix is within 100 m."""
    offsets = [-0.9e-3, 1.6e-3, 0.2e-3, -2.4e-3]
    lo_ppm = [1.5, -2.3, 0.8, 3.1]
    path = tmp_path / "df_rtl.yaml"
    path.write_text(
        scenario_text(
            offsets, reference=True, uncertainty_s=5e-3, source="none", lo_errors_ppm=lo_ppm
        )
    )
    scn = parse_scenario(path.read_text())
    fs, n = 4e6, 60000
    center = 433.32e6
    caps = capture_flowgraph(path, scn, fs, center, n, [START + 0.25] * 4)
    pos = node_positions(scn)
    ref_band = (F_REF - center, 0.7e6)
    tx_band = (F_TX - center, 1.0e6)
    # without the frequency search the offsets are not found (the captures decorrelate)
    _, blind = df.sync_captures(caps, pos, REF_ENU, band=ref_band, max_offset_s=5e-3)
    true_off = np.array(offsets) - offsets[0]
    assert np.max(np.abs(blind.offsets_s - true_off)) > 100e-9
    synced, offs = df.sync_captures(
        caps, pos, REF_ENU, band=ref_band, max_offset_s=5e-3, max_freq_offset_hz=3000
    )
    # baseband shifts: the LO runs high by ppm, so signals come out lower by centre * ppm
    true_df = -center * (np.array(lo_ppm) - lo_ppm[0]) * 1e-6
    assert np.all(np.abs(offs.freq_offsets_hz - true_df) < 2.0), offs.freq_offsets_hz - true_df
    assert np.all(np.abs(offs.offsets_s - true_off) < 20e-9), offs.offsets_s - true_off
    fix = df.locate_captures(
        synced,
        max_delay_s=1e-4,
        band=tx_band,
        offsets=df.ClockOffsets(np.zeros(4), offs.std_s, 0, offs.freq_offsets_hz),
    )
    err = float(np.linalg.norm(fix.position_enu_m - truth(scn)))
    assert err < 100.0, (err, fix.position_enu_m)
    assert mahalanobis2(fix, truth(scn)) < CHI2_999


def test_monte_carlo_ellipse_coverage():
    """Over independent draws of the GPS clock errors and the receiver noise, the share of
    true positions inside the reported 95 % ellipse lies between 90 % and 98 %."""
    rng = np.random.default_rng(2026)
    fs, n, trials = 2e6, 4096, 200
    inside = 0
    errors = []
    for k in range(trials):
        offsets = rng.normal(0, GPS_SIGMA_S, 4).tolist()
        scn = parse_scenario(scenario_text(offsets, seed=1000 + k))
        t0 = START + 0.25 + float(rng.uniform(0, 1))
        caps = []
        pos = node_positions(scn)
        for i, node in enumerate(scn.nodes):
            rx = NodeReceiver(scn, node.id, fs, F_TX)
            whole = math.floor(t0)
            caps.append(
                df.Capture(
                    rx.samples(0, n, whole, t0 - whole),
                    fs,
                    whole,
                    t0 - whole,
                    node.id,
                    pos[i],
                    GPS_SIGMA_S,
                )
            )
        fix = df.locate_captures(caps, max_delay_s=2e-4)
        errors.append(np.linalg.norm(fix.position_enu_m - truth(scn)))
        inside += bool(fix.ellipse.contains(truth(scn)))
    share = inside / trials
    assert 0.90 <= share <= 0.98, (share, np.percentile(errors, [50, 95]))


# -- array calibration on the simulator -----------------------------------------------------

CAL_SCENARIO = (
    pathlib.Path(__file__).resolve().parent.parent / "examples/scenarios/array_calibration.yaml"
)
CAL_FS = 2e6
CAL_CENTER = 433.5e6
CAL_START = 1_795_521_600  # whole seconds: the emitters take turns within each second
CAL_SLOTS = {"target": 0.05, "beacon": 0.45, "noise_src": 0.82}  # capture starts in the second


def array_with_errors(seed):
    """examples/scenarios/array_calibration.yaml with freshly drawn channel errors: phase
    uniform in +-180 deg, gain in +-3 dB, delays in 0..50 samples (one an exact integer)."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(-180, 180, 5)
    gain = rng.uniform(-3, 3, 5)
    delay = rng.uniform(0, 50, 5)
    delay[2] = np.round(delay[2])
    data = yaml.safe_load(CAL_SCENARIO.read_text())
    data["nodes"][0]["array"].update(
        phase_deg=phase.tolist(), gain_db=gain.tolist(), delay_samples=delay.tolist()
    )
    return parse_scenario(yaml.safe_dump(data)), phase, gain, delay


def seen_from(scn, node_id, emitter_id):
    """(azimuth deg clockwise from north, elevation deg) of an emitter from a node."""
    n = scn.node(node_id).position
    e = next(x for x in scn.emitters if x.id == emitter_id).position
    east, north, up = pymap3d.geodetic2enu(e.lat, e.lon, e.alt, n.lat, n.lon, n.alt)
    return (
        float(np.degrees(np.arctan2(east, north)) % 360),
        float(np.degrees(np.arctan2(up, np.hypot(east, north)))),
    )


def test_array_calibration_scenario_as_documented():
    scn = load_scenario(str(CAL_SCENARIO))
    node = scn.node("kraken")
    noise = -174 + node.noise_figure_db + 10 * math.log10(CAL_FS)
    for em in scn.emitters:
        assert abs(received_power_dbm(scn, em, node) - noise - 15.0) < 0.5, em.id
    # the noise source is straight above the array: equally far from every element
    assert seen_from(scn, "kraken", "noise_src")[1] > 89.9
    rx = NodeReceiver(scn, "kraken", CAL_FS, CAL_CENTER)
    d = [rx.delay_s("noise_src", channel=c) for c in range(5)]
    assert np.ptp(d) < 1e-15
    # the slots: in each capture window only its own emitter is on
    for em_id, start in CAL_SLOTS.items():
        em = next(e for e in scn.emitters if e.id == em_id)
        on = (start - em.schedule.offset_s) % 1.0
        assert on + 65536 / CAL_FS < em.schedule.duty_cycle, em_id


@pytest.mark.parametrize("reference", ["beacon", "noise_src"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_wideband_array_calibration_on_the_simulator(seed, reference):
    """The calibration figures DF asks for, on a simulated UCA whose channels have random phases,
    +-3 dB gains and integer + fractional delays up to 50 samples: calibrated from a reference
    (the beacon at its known position, or the common noise source above the array), the
    delays are within 0.03 samples of the scenario's, the phases within 0.5 deg and the gains
    within 0.05 dB; the target's bearing is then within 0.5 deg of its true azimuth (mean of
    eight estimates), where the uncalibrated array is degrees off."""
    scn, phase, gain, delay = array_with_errors(seed)
    rx = NodeReceiver(scn, "kraken", CAL_FS, CAL_CENTER)
    np.testing.assert_array_equal(rx.channel_delay_samples, delay)  # the scenario's truth
    x = rx.samples(0, 65536, CAL_START, CAL_SLOTS[reference])
    if reference == "beacon":
        f_ref = next(e for e in scn.emitters if e.id == "beacon").frequency_hz
        az_ref, _ = seen_from(scn, "kraken", "beacon")
        cal = df.calibrate_wideband(
            x,
            CAL_FS,
            max_delay_s=60 / CAL_FS,
            positions_wl=rx.element_positions_wl(f_ref),
            ref_azimuth_deg=az_ref,
            ref_freq_hz=f_ref,
            center_freq_hz=CAL_CENTER,
        )
    else:
        cal = df.calibrate_wideband(x, CAL_FS, max_delay_s=60 / CAL_FS, center_freq_hz=CAL_CENTER)
    g = 10 ** (gain / 20) * np.exp(1j * np.deg2rad(phase))
    assert np.max(np.abs(cal.delay_samples - (delay - delay[0]))) <= 0.03
    assert np.max(np.abs((np.rad2deg(np.angle(cal.gains / (g / g[0]))) + 180) % 360 - 180)) <= 0.5
    assert np.max(np.abs(cal.gain_db - (gain - gain[0]))) <= 0.05
    assert cal.sample_rate_hz == CAL_FS

    n_snap, blocks_ = 2048, 8
    lead, trail = cal.edge_samples()
    xt = rx.samples(0, n_snap * blocks_ + lead + trail, CAL_START, CAL_SLOTS["target"])
    y = cal.apply(xt)
    assert y.shape == (5, n_snap * blocks_)
    pos = rx.element_positions_wl(CAL_CENTER)
    az_true, _ = seen_from(scn, "kraken", "target")
    errs, stds = [], []
    for k in range(blocks_):
        b = df.estimate_bearings(y[:, k * n_snap : (k + 1) * n_snap], pos).bearings[0]
        errs.append((b.azimuth_deg - az_true + 180) % 360 - 180)
        stds.append(b.std_deg)
    assert abs(np.mean(errs)) < 0.5, errs
    assert np.max(np.abs(errs)) < 5 * np.mean(stds) + 0.1, (errs, stds)
    raw = df.estimate_bearings(xt[:, :n_snap], pos).bearings[0].azimuth_deg
    assert abs((raw - az_true + 180) % 360 - 180) > 5.0  # uncalibrated: degrees off


# -- bad input ------------------------------------------------------------------------------


def _sim_captures(fs=2e6, n=4096, starts=None, rates=None, count=4):
    scn = parse_scenario(scenario_text([0.0] * 4))
    pos = node_positions(scn)
    caps = []
    for i, node in enumerate(scn.nodes[:count]):
        rate = fs if rates is None else rates[i]
        t0 = START + 0.25 if starts is None else starts[i]
        rx = NodeReceiver(scn, node.id, rate, F_TX)
        whole = math.floor(t0)
        caps.append(
            df.Capture(
                rx.samples(0, n, whole, t0 - whole),
                rate,
                whole,
                t0 - whole,
                node.id,
                pos[i],
                GPS_SIGMA_S,
            )
        )
    return caps


def test_captures_that_do_not_overlap_are_refused():
    starts = [START + 0.25, START + 0.25, START + 0.26, START + 0.25]  # n3 10 ms later
    with pytest.raises(ValueError, match="do not overlap in time.*n3"):
        df.locate_captures(_sim_captures(starts=starts))


def test_mismatched_sample_rates_are_refused():
    with pytest.raises(ValueError, match="mismatched sample rates.*n2 at 1e"):
        df.locate_captures(_sim_captures(rates=[2e6, 1e6, 2e6, 2e6]))


def test_too_few_sensors_are_refused():
    with pytest.raises(ValueError, match="too few sensors.*needs at least 3.*got 2"):
        df.locate_captures(_sim_captures(count=2))


def test_collinear_sensors_are_refused():
    caps = _sim_captures(count=3)
    line = np.array([[0.0, 0.0], [1000.0, 0.0], [2500.0, 0.0]])
    with pytest.raises(ValueError, match="collinear"):
        df.locate_captures(caps, positions_enu_m=line)


# -- the example flowgraph ------------------------------------------------------------------


def test_tdoa_two_node_flowgraph_runs_on_the_simulator(tmp_path):
    """flowgraphs/examples/tdoa_two_node.grc compiled with grcc and run on
    examples/scenarios/df.yaml: every printed delay is the scenario's TDOA (geometry plus the
    two GPS clocks' offsets) within its predicted accuracy."""
    import os
    import re
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parent.parent
    env = dict(os.environ, GRC_BLOCKS_PATH=str(root / ".prefix/share/gnuradio/grc/blocks"))
    subprocess.run(
        ["grcc", "-o", str(tmp_path), str(root / "flowgraphs/examples/tdoa_two_node.grc")],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    scenario = root / "examples/scenarios/df.yaml"
    r = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "tdoa_two_node.py"),
            "--scenario",
            str(scenario),
            "--n-samples",
            "131072",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    delays = [float(v) for v in re.findall(r"\(delay_s \. ([-0-9.e+]+)\)", r.stdout)]
    stds = [float(v) for v in re.findall(r"\(std_s \. ([-0-9.e+]+)\)", r.stdout)]
    assert len(delays) == 2 and len(stds) == 2, r.stdout[-2000:]
    scn = load_scenario(str(scenario))
    a, b = (NodeReceiver(scn, n, 2e6, 433.5e6) for n in ("n1", "n2"))
    truth_s = (
        b.delay_s("target")
        - a.delay_s("target")
        + scn.node("n2").clock.offset_s
        - scn.node("n1").clock.offset_s
    )
    for d, s in zip(delays, stds, strict=True):
        assert abs(d - truth_s) < 4 * s + 1e-11, (d, truth_s, s)


def test_uca_df_flowgraph_runs_on_the_simulator(tmp_path):
    """flowgraphs/examples/uca_df.grc on the UCA node df1 of examples/scenarios/df.yaml: every
    printed MUSIC bearing is the emitter's true azimuth within 1 degree and 5 predicted std."""
    import os
    import re
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parent.parent
    env = dict(os.environ, GRC_BLOCKS_PATH=str(root / ".prefix/share/gnuradio/grc/blocks"))
    subprocess.run(
        ["grcc", "-o", str(tmp_path), str(root / "flowgraphs/examples/uca_df.grc")],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    scenario = root / "examples/scenarios/df.yaml"
    r = subprocess.run(
        [sys.executable, str(tmp_path / "uca_df.py"), "--scenario", str(scenario)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    az = [float(v) for v in re.findall(r"\(azimuth_deg \. #\[([-0-9.e+]+)\]\)", r.stdout)]
    sd = [float(v) for v in re.findall(r"\(std_deg \. #\[([-0-9.e+]+)\]\)", r.stdout)]
    assert len(az) == 4 and len(sd) == 4, r.stdout[-2000:]
    scn = load_scenario(str(scenario))
    n = scn.node("df1").position
    e = next(x for x in scn.emitters if x.id == "target").position
    east, north, _ = pymap3d.geodetic2enu(e.lat, e.lon, e.alt, n.lat, n.lon, n.alt)
    truth = float(np.degrees(np.arctan2(east, north)))
    for a, s in zip(az, sd, strict=True):
        err = (a - truth + 180) % 360 - 180
        assert abs(err) < min(1.0, 5 * s + 0.05), (a, truth, s)
