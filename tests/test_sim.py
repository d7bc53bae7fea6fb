"""The RF world simulator against the scenario's truth: geometry, path loss, clocks, determinism."""

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from gnuradio.drift import devices
from scipy.optimize import minimize_scalar

from drift import scan
from drift.sim import ScenarioError, load_scenario
from drift.sim.scenario import parse_scenario
from drift.sim.synth import NodeReceiver, full_scale_dbm, received_power_dbm

START = 1_764_000_000  # a whole UNIX second: times near it need nanosecond care

TWO_NODES = """\
seed: 7
emitters:
  - id: tx
    position: {lat: 48.15, lon: 11.55, alt: 30}
    frequency_hz: 433.9e6
    eirp_dbm: %(eirp)s
    waveform: {type: psk, symbol_rate_hz: 5e6, order: 4, rolloff: 0.35}
nodes:
  - id: a
    position: {lat: 48.10, lon: 11.50, alt: 20}
    device: adalm_pluto
    noise_figure_db: 6
  - id: b
    position: {lat: 48.20, lon: 11.62, alt: 25}
    device: adalm_pluto
    noise_figure_db: 6
    clock: {offset_s: %(offset)s}
"""


def scenario(eirp=30.0, offset=0.0):
    return parse_scenario(TWO_NODES % {"eirp": eirp, "offset": offset})


def snr_db(scn, node_id, fs):
    node = scn.node(node_id)
    noise = -174 + node.noise_figure_db + 10 * np.log10(fs)
    return received_power_dbm(scn, scn.emitters[0], node) - noise


def ml_delay(xa, xb, fs):
    """Maximum-likelihood delay of xa relative to xb (s): the peak of the cross-spectrum's
    delay transform, searched from the integer-lag peak."""
    n = xa.size
    spec = np.fft.fft(xa, 2 * n) * np.conj(np.fft.fft(xb, 2 * n))
    f = np.fft.fftfreq(2 * n, 1 / fs)
    k = int(np.argmax(np.abs(np.fft.ifft(spec))))
    lag = k if k < n else k - 2 * n

    def neg(d):
        return -abs(np.sum(spec * np.exp(2j * np.pi * f * d)))

    res = minimize_scalar(
        neg, bounds=((lag - 1) / fs, (lag + 1) / fs), method="bounded", options={"xatol": 1e-14}
    )
    return res.x


def test_tdoa_matches_geometry_within_1ns():
    fs = 10e6
    # 20 dB SNR at each node over the sample rate: set the EIRP from the link budget.
    scn0 = scenario()
    eirp = 30.0 + 20.0 - min(snr_db(scn0, "a", fs), snr_db(scn0, "b", fs))
    scn = scenario(eirp=eirp)
    assert min(snr_db(scn, n, fs) for n in "ab") == pytest.approx(20.0, abs=0.01)
    ra, rb = (NodeReceiver(scn, n, fs, 433.9e6) for n in "ab")
    xa = ra.samples(0, 1 << 15, START, 0.0)
    xb = rb.samples(0, 1 << 15, START, 0.0)
    truth = ra.delay_s("tx") - rb.delay_s("tx")
    assert abs(truth) > 1e-6  # the geometry gives a real difference
    assert abs(ml_delay(xa, xb, fs) - truth) < 1e-9

    # A 1 us clock offset on node b: its clock reads 1 us ahead, so it stamps every arrival
    # 1 us late, and the measured t_a - t_b moves by -1 us.
    scn_off = scenario(eirp=eirp, offset=1e-6)
    rb_off = NodeReceiver(scn_off, "b", fs, 433.9e6)
    xb_off = rb_off.samples(0, 1 << 15, START, 0.0)
    moved = ml_delay(xa, xb_off, fs) - ml_delay(xa, xb, fs)
    assert moved == pytest.approx(-1e-6, abs=1e-9)


def test_same_scenario_same_bits_across_processes(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(TWO_NODES % {"eirp": 30, "offset": 0.0})
    code = textwrap.dedent(f"""
        import hashlib
        from drift.sim import load_scenario
        from drift.sim.synth import NodeReceiver
        rx = NodeReceiver(load_scenario({str(path)!r}), "a", 2e6, 434e6)
        x = rx.samples(1000, 50000, {START}, 0.25)
        print(hashlib.sha256(x.tobytes()).hexdigest())
    """)
    digests = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    rx = NodeReceiver(load_scenario(str(path)), "a", 2e6, 434e6)
    here = hashlib.sha256(rx.samples(1000, 50000, START, 0.25).tobytes()).hexdigest()
    assert digests == {here}
    # blocks are independent of how the stream is cut
    whole = rx.samples(0, 30000, START, 0.25)
    parts = np.concatenate(
        [rx.samples(0, 12345, START, 0.25), rx.samples(12345, 30000 - 12345, START, 0.25)]
    )
    np.testing.assert_array_equal(whole, parts)


def test_received_power_follows_free_space():
    """A CW emitter 40 dB above the noise, measured against EIRP - FSPL + antenna gain."""
    text = TWO_NODES.replace(
        "{type: psk, symbol_rate_hz: 5e6, order: 4, rolloff: 0.35}", "{type: cw}"
    )
    scn = parse_scenario(text % {"eirp": 20, "offset": 0.0})
    fs = 1e6
    for node_id in "ab":
        node = scn.node(node_id)
        rx = NodeReceiver(scn, node_id, fs, 433.9e6 - 100e3)
        x = rx.samples(0, 1 << 17, START, 0.0).astype(np.complex128)
        spec = np.abs(np.fft.fftshift(np.fft.fft(x * np.hanning(x.size)))) ** 2
        f = np.fft.fftshift(np.fft.fftfreq(x.size, 1 / fs))
        band = np.abs(f - 100e3) < 2e3
        tone = spec[band].sum() / np.sum(np.hanning(x.size) ** 2) / x.size
        measured = 10 * np.log10(tone) + full_scale_dbm(node)
        d = np.linalg.norm(rx._emitters[0][2] - rx._node_xyz)
        fspl = 20 * np.log10(4 * np.pi * d * 433.9e6 / 299_792_458.0)
        assert measured == pytest.approx(20 - fspl + node.antenna_gain_dbi, abs=0.5)


def test_scan_of_a_simulated_node_reads_dbm(tmp_path):
    text = TWO_NODES.replace(
        "{type: psk, symbol_rate_hz: 5e6, order: 4, rolloff: 0.35}", "{type: cw}"
    )
    path = tmp_path / "cw.yaml"
    path.write_text(text % {"eirp": 20, "offset": 0.0})
    cfg = scan.ScanConfig(
        device=f"sim={path},node=a,start={START}",
        start_hz=433e6,
        stop_hz=435e6,
        bin_hz=2e3,
        rate_hz=2e6,
        interval_s=0.1,
        progress=False,
    )
    result = scan.run_scan(cfg)
    f, s = result.plan.freqs_hz, result.sweeps[0][1]
    lin = 10 ** (s / 10)
    i = int(np.argmin(np.abs(f - 433.9e6)))
    measured = 10 * np.log10(lin[i - 5 : i + 6].sum() * result.plan.bin_hz)
    scn = load_scenario(str(path))
    assert measured == pytest.approx(
        received_power_dbm(scn, scn.emitters[0], scn.node("a")), abs=0.5
    )
    # the thermal floor: -174 dBm/Hz + noise figure
    assert np.median(s) == pytest.approx(-174 + 6, abs=1.0)


def test_scenario_errors_name_file_line_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        TWO_NODES.replace(
            "device: adalm_pluto\n    noise_figure_db: 6\n  - id: b",
            "device: pluto9000\n    noise_figure_db: 6\n  - id: b",
        )
        % {"eirp": 30, "offset": 0.0}
    )
    with pytest.raises(ScenarioError) as err:
        load_scenario(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}:11: nodes.0.device:"), message
    assert "adalm_pluto" in message  # lists the known models
    with pytest.raises(ScenarioError, match=r"missing.yaml: No such file"):
        load_scenario(str(tmp_path / "missing.yaml"))


def test_device_limits_are_refused_with_the_real_limit():
    scn = scenario()
    with pytest.raises(ValueError, match=r"ADALM-Pluto.*tuning range 3.25e\+08-3.8e\+09 Hz"):
        NodeReceiver(scn, "a", 2e6, 100e6)
    with pytest.raises(ValueError, match=r"maximum bandwidth 5.6e\+07"):
        NodeReceiver(scn, "a", 60e6, 433e6)
    with pytest.raises(devices.DeviceError, match="node=ID"):
        devices.parse_device("sim=nowhere.yaml")


def test_render_writes_a_calibrated_recording_that_scans_to_truth(tmp_path):
    text = TWO_NODES.replace(
        "{type: psk, symbol_rate_hz: 5e6, order: 4, rolloff: 0.35}", "{type: cw}"
    )
    path = tmp_path / "cw.yaml"
    path.write_text(text % {"eirp": 20, "offset": 0.0})
    out = tmp_path / "rec"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "drift.cli",
            "sim",
            "render",
            str(path),
            "--node",
            "a",
            "--center",
            "433.8M",
            "--rate",
            "1M",
            "--start",
            "2026-11-24T12:00:00.25Z",
            "--duration",
            "0.3",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    import sigmf

    meta = sigmf.sigmffile.fromfile(f"{out}.sigmf-meta")
    meta.validate()
    assert meta.get_captures()[0]["core:datetime"] == "2026-11-24T12:00:00.250000Z"
    assert meta.sample_count == 300_000
    # scanned as a recording, with its calibration, the carrier reads its true power
    result = scan.run_scan(
        scan.ScanConfig(
            device=f"sigmf={out}.sigmf-meta",
            start_hz=433.5e6,
            stop_hz=434.1e6,
            bin_hz=1e3,
            interval_s=0.1,
            progress=False,
        )
    )
    f, s = result.plan.freqs_hz, result.sweeps[0][1]
    i = int(np.argmin(np.abs(f - 433.9e6)))
    measured = 10 * np.log10(np.sum(10 ** (s[i - 5 : i + 6] / 10)) * result.plan.bin_hz)
    scn = load_scenario(str(path))
    assert measured == pytest.approx(
        received_power_dbm(scn, scn.emitters[0], scn.node("a")), abs=0.5
    )
    # bad input: a frequency the device cannot tune, exit 2, nothing written
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "drift.cli",
            "sim",
            "render",
            str(path),
            "--node",
            "a",
            "--center",
            "100M",
            "--rate",
            "1M",
            "--duration",
            "0.1",
            "-o",
            str(tmp_path / "bad"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "tuning range" in r.stderr
    assert not list(tmp_path.glob("bad*")) and not list(tmp_path.glob(".bad*"))


def test_moving_emitter_shows_its_doppler_shift():
    """An emitter closing on a node at 30 m/s: the carrier arrives f v / c higher."""
    import pymap3d
    from gnuradio.drift.devices.calibration import tone_frequency_hz

    node = (48.10, 11.50, 20.0)
    east, north, up = pymap3d.geodetic2enu(48.15, 11.55, 30.0, *node)
    dist = np.sqrt(east**2 + north**2 + up**2)
    v = -30.0 * np.array([east, north, up]) / dist  # straight at the node
    text = f"""\
seed: 1
epoch: 2025-11-24T15:59:20Z
emitters:
  - id: car
    position: {{lat: 48.15, lon: 11.55, alt: 30}}
    velocity: {{east_mps: {v[0]}, north_mps: {v[1]}, up_mps: {v[2]}}}
    frequency_hz: 433.9e6
    eirp_dbm: 30
    waveform: {{type: cw}}
nodes:
  - id: a
    position: {{lat: {node[0]}, lon: {node[1]}, alt: {node[2]}}}
    device: adalm_pluto
"""
    with pytest.raises(ScenarioError, match="epoch"):
        parse_scenario(text.replace("epoch: 2025-11-24T15:59:20Z\n", ""))
    scn = parse_scenario(text)
    fs = 50e3
    rx = NodeReceiver(scn, "a", fs, 433.9e6 - 10e3)
    x = rx.samples(0, int(fs), START, 0.0)  # 40 s after the epoch: 1.2 km closer, still coming
    shift = tone_frequency_hz(x, fs) - 10e3
    assert shift == pytest.approx(433.9e6 * 30.0 / 299_792_458.0, abs=0.5)  # +43.4 Hz


def test_realtime_source_never_runs_ahead_of_the_wall_clock():
    import time

    from gnuradio import blocks, gr

    from drift.sim.source import sim_source

    rate = 200e3
    tb = gr.top_block(catch_exceptions=False)
    src = sim_source(scenario(), "a", rate, 433.9e6, start_time=START, realtime=True)
    sink = blocks.vector_sink_c()
    tb.connect(src, sink)
    t0 = time.monotonic()
    tb.start()
    deadline = t0 + 0.6
    produced = []
    while time.monotonic() < deadline:
        time.sleep(0.05)
        produced.append((time.monotonic() - t0, len(sink.data())))
    tb.stop()
    tb.wait()
    # paced to real time: never more than elapsed * rate, plus the block being written
    for elapsed, n in produced:
        assert n <= elapsed * rate + (1 << 16)
    assert produced[-1][1] > 0


def test_cxx_kernels_match_the_numpy_reference(monkeypatch):
    from drift.sim import synth

    assert synth.USE_KERNELS, "gr-drift's simulator kernels are missing"
    scn = scenario()
    fast = NodeReceiver(scn, "a", 2e6, 433.9e6, quantize=False).samples(500, 4000, START, 0.1)
    monkeypatch.setattr(synth, "USE_KERNELS", False)
    ref = NodeReceiver(scn, "a", 2e6, 433.9e6, quantize=False).samples(500, 4000, START, 0.1)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    # the thermal noise alone: the same normals as the reference, to double precision
    key = synth._key(7, "noise", "a")
    np.testing.assert_allclose(
        synth._cxx_gauss(int(key), 123_456, 5000),
        synth._gauss(key, 123_456 + np.arange(5000)),
        rtol=0,
        atol=1e-12,
    )


ALL_WAVEFORMS = [
    "{type: cw}",
    "{type: psk, order: 2, symbol_rate_hz: 37e3, rolloff: 0.5}",
    "{type: psk, order: 4, symbol_rate_hz: 410e3, rolloff: 0.22}",
    # five symbols a sample at 2.4 MS/s: the kernels' symbol-at-a-time way (up to four: a
    # segment's symbols at once, as at 20 MS/s)
    "{type: psk, order: 4, symbol_rate_hz: 12e6, rolloff: 0.35}",
    "{type: noise, bandwidth_hz: 150e3}",
    "{type: fm, audio: tone, audio_freq_hz: 1.7e3, deviation_hz: 12e3}",
    "{type: fm, audio: noise, audio_bandwidth_hz: 4e3, deviation_hz: 5e3}",
    "{type: chirp, bandwidth_hz: 200e3, period_s: 0.7e-3}",
    # many subcarriers: the kernels' chirp-z transform (few: Horner's rule)
    "{type: ofdm, subcarriers: 300, spacing_hz: 3e3, cp_fraction: 0.07}",
    "{type: ofdm, subcarriers: 48, spacing_hz: 12.5e3, cp_fraction: 0.1}",
]


def all_waveforms(eirp=75.0, velocity=False):
    """Every waveform, one emitter each, strong (60 dB over the noise), one on a schedule, one
    moving (optional), received by a node with clock offset, drift and LO error."""
    return parse_scenario(all_waveforms_yaml(eirp, velocity))


def all_waveforms_yaml(eirp=75.0, velocity=False):
    lines = ["seed: 5", "epoch: 2025-11-24T16:00:00Z", "emitters:"]
    for i, wave in enumerate(ALL_WAVEFORMS):
        lines += [
            f"  - id: e{i}",
            f"    position: {{lat: 48.1{i}, lon: 11.5{i}, alt: 30}}",
            f"    frequency_hz: {433.0e6 + (i - 4) * 220e3}",
            f"    eirp_dbm: {eirp}",
            f"    waveform: {wave}",
        ]
    lines += ["    schedule: {period_s: 2e-4, duty_cycle: 0.3, offset_s: 1e-5}"]
    if velocity:
        lines += ["    velocity: {east_mps: 30, north_mps: -12}"]
    lines += [
        "nodes:",
        "  - id: n",
        "    position: {lat: 48.2, lon: 11.6, alt: 500}",
        "    device: usrp_b210",
        "    gain_db: 0",
        "    clock: {offset_s: 2.5e-6, drift_ppm: 0.7, lo_error_ppm: -1.5}",
    ]
    return "\n".join(lines)


def _isas():
    from gnuradio import drift

    return drift.sim_isas()


@pytest.fixture(params=_isas())
def isa(request):
    """Each instruction set the kernels are compiled for and this CPU has, in turn."""
    from gnuradio import drift

    before = drift.sim_isa()
    drift.sim_set_isa(request.param)
    yield request.param
    drift.sim_set_isa(before)


def test_the_fastest_instruction_set_is_the_default_and_others_can_be_chosen(tmp_path):
    from gnuradio import drift

    names = drift.sim_isas()
    assert names and drift.sim_isa() == names[0]
    code = "from gnuradio import drift; print(drift.sim_isa())"
    for name in names:
        r = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "DRIFT_SIM_ISA": name},
        )
        assert r.stdout.strip() == name
    with pytest.raises(
        ValueError, match="'avx9' is not available on this CPU; it has: " + ", ".join(names)
    ):
        drift.sim_set_isa("avx9")
    assert drift.sim_isa() == names[0]
    # a bad DRIFT_SIM_ISA: the library loads, every synthesis names the variable
    code = textwrap.dedent(f"""
        from drift.sim import load_scenario
        from drift.sim.synth import NodeReceiver
        rx = NodeReceiver(load_scenario({DF_YAML!r}), "n1", 2.4e6, 433.5e6)
        rx.samples(0, 1000, {START}, 0.0)
    """)
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "DRIFT_SIM_ISA": "avx9"},
    )
    assert r.returncode == 1
    assert "DRIFT_SIM_ISA: simulator instruction set 'avx9' is not available" in r.stderr


def test_no_newer_instruction_reaches_code_outside_its_own_set():
    """Every function with an AVX (VEX/EVEX) instruction in libgnuradio-drift belongs to the
    x86-64-v3 or -v4 kernels: code shared between the sets (standard library templates the
    linker keeps one copy of) stays baseline, so a CPU without AVX never meets one."""
    import shutil
    from pathlib import Path

    from gnuradio import drift

    if drift.sim_isas() == ["baseline"]:
        pytest.skip("not x86-64 with GCC: the kernels have one instruction set only")
    # the library this process has loaded
    lib = next(
        Path(line.split()[-1])
        for line in Path("/proc/self/maps").read_text().splitlines()
        if "libgnuradio-drift.so" in line
    )
    assert shutil.which("objdump"), "objdump (binutils) is needed to read the library"
    asm = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-C", str(lib)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    where, avx = None, set()
    for line in asm.splitlines():
        if line.endswith(">:"):
            where = line
        elif where and line.startswith(" ") and "\t" in line:
            if line.split("\t")[1].startswith("v"):
                avx.add(where)
    assert avx, "the library has no AVX code at all: the v3/v4 kernels are missing"
    outside = sorted(f for f in avx if "x86_64_v3::" not in f and "x86_64_v4::" not in f)
    assert not outside, outside[:5]


@pytest.mark.parametrize("rate", [2.4e6, 20e6])
def test_cxx_synthesis_matches_the_numpy_reference_for_every_waveform(monkeypatch, rate, isa):
    from drift.sim import synth

    scn = all_waveforms(velocity=True)
    for em in scn.emitters:
        one = scn.model_copy(update={"emitters": [em]})
        fast = NodeReceiver(one, "n", rate, 433e6, quantize=False).samples(
            70_001, 6000, START, 0.123
        )
        with monkeypatch.context() as m:
            m.setattr(synth, "USE_KERNELS", False)
            ref = NodeReceiver(one, "n", rate, 433e6, quantize=False).samples(
                70_001, 6000, START, 0.123
            )
        signal = np.abs(ref).max()
        assert signal > 100 * NodeReceiver(one, "n", rate, 433e6)._noise_sigma(), em.id
        # the output is complex64: 3e-7 is a few of its roundings
        np.testing.assert_allclose(fast, ref, rtol=0, atol=3e-7 * signal, err_msg=em.id)


@pytest.mark.parametrize("rate", [2.4e6, 20e6])
def test_every_waveform_gives_the_same_bits_in_every_process(tmp_path, rate):
    """FFT plans, tables and caches made afresh in another process change no bit."""
    path = tmp_path / "all.yaml"
    path.write_text(all_waveforms_yaml(eirp=40.0))
    code = textwrap.dedent(f"""
        import hashlib
        from drift.sim import load_scenario
        from drift.sim.synth import NodeReceiver
        rx = NodeReceiver(load_scenario({str(path)!r}), "n", {rate}, 433e6)
        print(hashlib.sha256(rx.samples(5000, 40000, {START}, 0.5).tobytes()).hexdigest())
    """)
    digests = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    rx = NodeReceiver(load_scenario(str(path)), "n", rate, 433e6)
    rx.samples(0, 100_000, START, 0.5)  # this process has its caches warm
    assert digests == {hashlib.sha256(rx.samples(5000, 40000, START, 0.5).tobytes()).hexdigest()}


def test_cxx_synthesis_is_the_same_however_the_stream_is_cut(isa):
    scn = all_waveforms(eirp=40.0)
    rx = NodeReceiver(scn, "n", 2.4e6, 433e6)
    whole = rx.samples(3000, 9000, START, 0.25)
    cuts = [3000, 3001, 4023, 4100, 7777, 12000]
    parts = np.concatenate(
        [rx.samples(a, b - a, START, 0.25) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    )
    np.testing.assert_array_equal(whole, parts)
    again = NodeReceiver(scn, "n", 2.4e6, 433e6).samples(4100, 3677, START, 0.25)
    np.testing.assert_array_equal(again, whole[1100:4777])


# -- array nodes ----------------------------------------------------------------------------
DF_YAML = "examples/scenarios/df.yaml"

ARRAY = """\
seed: 11
emitters:
  - id: tx
    position: {lat: 48.15, lon: 11.55, alt: 540}
    frequency_hz: 433.5e6
    eirp_dbm: %(eirp)s
    waveform: %(wave)s
nodes:
  - id: k
    position: {lat: 48.17, lon: 11.50, alt: 530}
    device: rtlsdr_v3
    noise_figure_db: 6
    array: %(array)s
"""


def array_scenario(array, wave="{type: psk, order: 4, symbol_rate_hz: 200e3}", eirp=0.0):
    return parse_scenario(ARRAY % {"array": array, "wave": wave, "eirp": eirp})


def true_azimuth(scn, emitter, node):
    import pymap3d

    p, q = scn.node(node).position, next(e for e in scn.emitters if e.id == emitter).position
    e, n, _ = pymap3d.geodetic2enu(q.lat, q.lon, q.alt, p.lat, p.lon, p.alt)
    return float(np.degrees(np.arctan2(e, n)) % 360)


def test_uca_music_bearing_matches_geometry():
    from gnuradio.drift.df import aoa

    fs = 2e6
    for orientation in (0.0, 33.0):
        uca = f"{{geometry: uca, elements: 5, radius_m: 0.29, orientation_deg: {orientation}}}"
        scn0 = array_scenario(uca)
        # 10 dB SNR per element over the sample rate
        eirp = 10.0 - (
            received_power_dbm(scn0, scn0.emitters[0], scn0.node("k"))
            - (-174 + 6 + 10 * np.log10(fs))
        )
        scn = array_scenario(uca, eirp=eirp)
        rx = NodeReceiver(scn, "k", fs, 433.4e6)
        assert rx.channels == 5
        x = rx.samples(0, 4096, START, 0.0)
        assert x.shape == (5, 4096) and x.dtype == np.complex64
        res = aoa.estimate_bearings(x, rx.element_positions_wl(433.5e6), "music")
        truth = true_azimuth(scn, "tx", "k")
        err = (res.bearings[0].azimuth_deg - truth + 180) % 360 - 180
        assert abs(err) < 1.0, (orientation, res.bearings[0], truth)
        # each element's geometric delay is its own: the plane wave crosses the array
        spread = max(rx.delay_s("tx", channel=c) for c in range(5)) - min(
            rx.delay_s("tx", channel=c) for c in range(5)
        )
        assert 0.5 * 2 * 0.29 / 299_792_458.0 < spread <= 2 * 0.29 / 299_792_458.0


def test_ula_bearing_in_front_of_the_array():
    from gnuradio.drift.df import aoa

    # broadside turned towards the emitter (bearing about 121 deg from k)
    scn = array_scenario(
        "{geometry: ula, elements: 5, spacing_wl: 0.5, "
        "design_frequency_hz: 433.5e6, orientation_deg: 110}",
        eirp=10,
    )
    rx = NodeReceiver(scn, "k", 2e6, 433.4e6)
    x = rx.samples(0, 4096, START, 0.0)
    res = aoa.estimate_bearings(x, rx.element_positions_wl(433.5e6), "music")
    err = (res.bearings[0].azimuth_deg - true_azimuth(scn, "tx", "k") + 180) % 360 - 180
    assert abs(err) < 1.0


def test_array_channel_errors_are_what_the_channels_show():
    fs = 2e6
    phase = [0.0, 35.0, -120.0, 170.0, 5.5]
    gain = [0.0, -2.0, 1.5, 3.0, -0.5]
    delay = [0.0, 3.25, -1.5, 12.0, 0.4]
    arr = (
        f"{{geometry: uca, elements: 5, radius_m: 0.3, phase_deg: {phase}, "
        f"gain_db: {gain}, delay_samples: {delay}}}"
    )
    # a CW carrier about 19 dB above the noise (and well inside the ADC's full scale)
    scn = array_scenario(arr, wave="{type: cw}", eirp=12)
    rx = NodeReceiver(scn, "k", fs, 433.4e6)
    x = rx.samples(0, 1 << 16, START, 0.0).astype(np.complex128)
    # geometric phase of each element (carrier at 433.5 MHz): exp(+j 2 pi f (tau_0 - tau_m))
    geo = np.exp(
        2j
        * np.pi
        * 433.5e6
        * np.array([rx.delay_s("tx", channel=0) - rx.delay_s("tx", channel=c) for c in range(5)])
    )
    # a delay of d samples also turns the 100 kHz baseband tone by -2 pi 100e3 d / fs
    tone = np.exp(-2j * np.pi * 100e3 * np.array(delay) / fs)
    # channel 0's carrier power: its power less the thermal noise (the quantization's is ~1 %)
    noise = 10 ** ((-174 + 6 + 10 * np.log10(fs) - full_scale_dbm(scn.node("k"))) / 10)
    ratio = np.mean(x * x[0].conj(), axis=1) / (np.mean(np.abs(x[0]) ** 2) - noise) / geo / tone
    np.testing.assert_allclose(np.degrees(np.angle(ratio[1:])), phase[1:], atol=0.2)
    np.testing.assert_allclose(20 * np.log10(np.abs(ratio[1:])), gain[1:], atol=0.05)
    # band-limited noise: the delays, from each channel's cross-correlation with channel 0
    scn = array_scenario(arr, wave="{type: noise, bandwidth_hz: 1.5e6}", eirp=12)
    rx = NodeReceiver(scn, "k", fs, 433.5e6)
    x = rx.samples(0, 1 << 14, START, 0.0).astype(np.complex128)
    for c in range(1, 5):
        geometric = (rx.delay_s("tx", channel=c) - rx.delay_s("tx", channel=0)) * fs
        measured = ml_delay(x[c], x[0], fs) * fs - geometric
        assert measured == pytest.approx(delay[c], abs=0.01)


def test_random_channel_errors_are_seeded_and_scaled():
    arr = (
        "{geometry: ula, elements: 8, spacing_m: 0.3, phase_deg: {sigma: 40}, gain_db: {sigma: 2}}"
    )
    a = NodeReceiver(array_scenario(arr), "k", 2e6, 433.4e6)
    b = NodeReceiver(array_scenario(arr), "k", 2e6, 433.4e6)
    np.testing.assert_array_equal(a.channel_phase_deg, b.channel_phase_deg)
    assert np.all(a.channel_delay_samples == 0)
    assert 5 < np.std(a.channel_phase_deg) < 100 and 0.3 < np.std(a.channel_gain_db) < 5
    assert len(set(np.round(a.channel_phase_deg, 6))) == 8
    # the errors are applied: the channels' relative phases follow them
    x = a.samples(0, 1 << 14, START, 0.0).astype(np.complex128)
    c = np.mean(x * x[0].conj(), axis=1)
    d0 = np.array([a.delay_s("tx", channel=k) for k in range(8)])
    geo = np.exp(2j * np.pi * 433.5e6 * (d0[0] - d0))
    got = np.degrees(np.angle(c / geo))
    want = a.channel_phase_deg - a.channel_phase_deg[0]
    assert np.allclose((got - want + 180) % 360 - 180, 0, atol=3)


def test_array_errors_name_the_field(tmp_path):
    bad = {
        "{geometry: uca, elements: 5, spacing_m: 0.3}": "radius_m",
        "{geometry: ula, elements: 4, spacing_wl: 0.5}": "design_frequency_hz",
        "{geometry: uca, elements: 5, radius_m: 0.3, phase_deg: [1, 2]}": "2 values for 5",
        "{geometry: uca, elements: 1, radius_m: 0.3}": "elements",
    }
    for arr, words in bad.items():
        path = tmp_path / "a.yaml"
        path.write_text(ARRAY % {"array": arr, "wave": "{type: cw}", "eirp": 0})
        with pytest.raises(ScenarioError) as err:
            load_scenario(str(path))
        assert f"{path}:13: nodes.0.array" in str(err.value) and words in str(err.value)


def test_array_node_through_the_device_layer_and_a_flowgraph():
    from gnuradio import blocks, gr

    scn = load_scenario(DF_YAML)
    spec = devices.parse_device(f"sim={DF_YAML},node=df1,start={START}")
    caps = devices.capabilities(spec)
    assert caps.channels == 5
    src, _ = devices.open_source(spec, 2e6, 434e6, calibration=None)
    tb = gr.top_block(catch_exceptions=False)
    sinks = []
    for c in range(5):
        head = blocks.head(gr.sizeof_gr_complex, 5000)
        sink = blocks.vector_sink_c()
        tb.connect((src, c), head, sink)
        sinks.append((head, sink))
    tb.run()
    got = np.array([s.data() for _, s in sinks], dtype=np.complex64)
    want = NodeReceiver(scn, "df1", 2e6, 434e6).samples(0, 5000, START, 0.0)
    np.testing.assert_array_equal(got, want)
    for _, s in sinks:  # every channel carries the node's time
        assert sorted(pmt_sym(t) for t in s.tags() if t.offset == 0) == ["rx_freq", "rx_time"]
    # one element alone
    one = devices.parse_device(f"sim={DF_YAML},node=df1,start={START},channel=3")
    assert devices.capabilities(one).channels == 1
    src1, _ = devices.open_source(one, 2e6, 434e6, calibration=None)
    tb, head, sink = (
        gr.top_block(catch_exceptions=False),
        blocks.head(gr.sizeof_gr_complex, 5000),
        blocks.vector_sink_c(),
    )
    tb.connect(src1, head, sink)
    tb.run()
    np.testing.assert_array_equal(np.array(sink.data(), dtype=np.complex64), want[3])
    with pytest.raises(devices.DeviceError, match="channel 7 does not exist"):
        devices.open_source(
            devices.parse_device(f"sim={DF_YAML},node=df1,channel=7"), 2e6, 434e6, calibration=None
        )


def pmt_sym(tag):
    import pmt

    return pmt.symbol_to_string(tag.key)


def test_scan_of_an_array_node_reads_its_first_channel():
    cfg = scan.ScanConfig(
        device=f"sim={DF_YAML},node=df1,start={START}",
        start_hz=432.8e6,
        stop_hz=434.2e6,
        bin_hz=5e3,
        rate_hz=2e6,
        interval_s=0.1,
        progress=False,
    )
    result = scan.run_scan(cfg)
    f, s = result.plan.freqs_hz, result.sweeps[0][1]
    lin = 10 ** (s / 10)
    floor = np.median(lin[np.abs(f - 433.5e6) > 0.6e6])
    band = np.abs(f - 433.5e6) < 0.55e6
    measured = 10 * np.log10((lin[band] - floor).sum() * result.plan.bin_hz)
    scn = load_scenario(DF_YAML)
    assert measured == pytest.approx(
        received_power_dbm(scn, scn.emitters[0], scn.node("df1")), abs=1.0
    )


def test_cxx_array_channels_match_the_numpy_reference(monkeypatch):
    from drift.sim import synth

    arr = (
        "{geometry: uca, elements: 4, radius_m: 0.4, phase_deg: [0, 20, -40, 60], "
        "gain_db: [0, 1, -1, 2], delay_samples: [0, 2.5, -0.75, 7]}"
    )
    scn = array_scenario(arr, wave="{type: psk, order: 4, symbol_rate_hz: 300e3}", eirp=40)
    fast = NodeReceiver(scn, "k", 2.4e6, 433.4e6, quantize=False).samples(999, 3000, START, 0.5)
    monkeypatch.setattr(synth, "USE_KERNELS", False)
    ref = NodeReceiver(scn, "k", 2.4e6, 433.4e6, quantize=False).samples(999, 3000, START, 0.5)
    assert fast.shape == ref.shape == (4, 3000)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=3e-7 * np.abs(ref).max())


def test_fm_audio_as_fast_as_the_sample_rate_falls_back_to_the_reference(monkeypatch):
    from drift.sim import synth

    text = TWO_NODES.replace(
        "{type: psk, symbol_rate_hz: 5e6, order: 4, rolloff: 0.35}",
        "{type: fm, audio: noise, audio_bandwidth_hz: 15e3, deviation_hz: 3e3}",
    )
    scn = parse_scenario(text % {"eirp": 60, "offset": 0.0})
    rx = NodeReceiver(scn, "a", 20e3, 433.9e6 - 2e3, quantize=False)
    assert rx._kernel_specs(0, START, 0.0, rx.center_hz)[0][0] == "numpy"
    fast = rx.samples(0, 2000, START, 0.0)
    monkeypatch.setattr(synth, "USE_KERNELS", False)
    ref = NodeReceiver(scn, "a", 20e3, 433.9e6 - 2e3, quantize=False).samples(0, 2000, START, 0.0)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=3e-7 * np.abs(ref).max())


OFDM_CASES = [
    (2.4e6, 0.0, 72),
    (2.4e6, 3.0, 72),
    (1.92e6, -20.0, 72),
    (2.048e6, 0.0, 72),
    (1.92e6, 1.0, 200),
    (20e6, 0.0, 64),
    (20e6, -3.0, 128),
    (5e6, 0.5, 1200),
]


@pytest.mark.parametrize(("rate", "drift_ppm", "subcarriers"), OFDM_CASES)
def test_ofdm_matches_the_reference_whether_or_not_its_spacing_divides_the_rate(
    monkeypatch, rate, drift_ppm, subcarriers, isa
):
    """15 kHz subcarriers: 2.4 and 1.92 MS/s are 160 and 128 of them (one inverse FFT a symbol,
    plus Taylor terms for the clock's drift; 200 subcarriers fold onto 128 points), 2.048 MS/s
    is not a whole number (the chirp-z transform or Horner), 20 MS/s is 1,333.3 of them (Taylor
    polynomials on a grid of 2K points a subcarrier period); 1,200 at 5 MS/s: chirp-z."""
    check_ofdm(monkeypatch, rate, drift_ppm, subcarriers)


@pytest.mark.parametrize(
    ("way", "rate", "drift_ppm", "subcarriers"),
    [
        (way, *case)
        for way in ("horner", "grid", "periodic", "chirpz")
        for case in OFDM_CASES[:-1]
        # the periodic way needs a spacing that divides the rate (test_a_bad_ofdm_way_is_refused)
        if way != "periodic" or case[0] in (2.4e6, 1.92e6)
    ],
)
def test_each_way_of_making_ofdm_matches_the_reference(
    monkeypatch, way, rate, drift_ppm, subcarriers
):
    """Each of the four ways, forced by DRIFT_SIM_OFDM, in every case it can make."""
    monkeypatch.setenv("DRIFT_SIM_OFDM", way)
    check_ofdm(monkeypatch, rate, drift_ppm, subcarriers)


def test_a_bad_ofdm_way_is_refused(monkeypatch):
    monkeypatch.setenv("DRIFT_SIM_OFDM", "periodic")
    with pytest.raises(ValueError, match="the subcarrier spacing does not divide the sample rate"):
        ofdm_receiver(2.048e6, 0.0, 72).samples(0, 1000, START, 0.0)
    monkeypatch.setenv("DRIFT_SIM_OFDM", "fft")
    with pytest.raises(
        ValueError, match="DRIFT_SIM_OFDM=fft: not one of horner, grid, periodic, chirpz"
    ):
        ofdm_receiver(2.4e6, 0.0, 72).samples(0, 1000, START, 0.0)


def ofdm_receiver(rate, drift_ppm, subcarriers):
    text = "\n".join(
        [
            "seed: 9",
            "emitters:",
            "  - id: lte",
            "    position: {lat: 48.1, lon: 11.5, alt: 30}",
            "    frequency_hz: 433.1e6",
            "    eirp_dbm: 70",
            f"    waveform: {{type: ofdm, subcarriers: {subcarriers}, spacing_hz: 15e3, "
            "cp_fraction: 0.07}",
            "nodes:",
            "  - id: n",
            "    position: {lat: 48.2, lon: 11.6, alt: 500}",
            "    device: usrp_b210",
            "    gain_db: 0",
            f"    clock: {{drift_ppm: {drift_ppm}, offset_s: 1e-6}}",
        ]
    )
    return NodeReceiver(parse_scenario(text), "n", rate, 433e6, quantize=False)


def check_ofdm(monkeypatch, rate, drift_ppm, subcarriers):
    """The kernels against the reference, on 5,000 samples that start and end inside symbols;
    the same samples again when a stream is cut inside a symbol."""
    from drift.sim import synth

    rx = ofdm_receiver(rate, drift_ppm, subcarriers)
    fast = rx.samples(12_345, 5000, START, 0.3)
    cut = np.concatenate(
        [
            rx.samples(a, b - a, START, 0.3)
            for a, b in [(12_345, 13_000), (13_000, 13_001), (13_001, 17_345)]
        ]
    )
    np.testing.assert_array_equal(cut, fast)
    with monkeypatch.context() as m:
        m.setattr(synth, "USE_KERNELS", False)
        m.delenv("DRIFT_SIM_OFDM", raising=False)
        ref = ofdm_receiver(rate, drift_ppm, subcarriers).samples(12_345, 5000, START, 0.3)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=3e-7 * np.abs(ref).max())
