"""driver=drift: gr-drift's SoapySDR module, through real SoapySDR.

Oracles: SoapySDRUtil's own output, a plain SoapySDR client (Debian's python3-soapysdr, no
DRIFT import) against the scenario's geometry (free-space loss computed here), the GNU Radio
sim source (bit for bit), and the hardware matrix for the limits. The module is the one the
project's build installed: SOAPY_SDR_PLUGIN_PATH names its directory explicitly.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pmt
import pymap3d
import pytest
import SoapySDR
from gnuradio import blocks, gr
from gnuradio import drift as grdrift
from gnuradio.drift import devices
from gnuradio.drift.devices import soapy as soapy_devices
from gnuradio.drift.devices._soapy_module import MODULE_DIR
from SoapySDR import SOAPY_SDR_CF32, SOAPY_SDR_CS8, SOAPY_SDR_CS16, SOAPY_SDR_CU8, SOAPY_SDR_RX

from drift import hardware
from drift.sim import load_scenario
from drift.sim.source import sim_source
from drift.sim.synth import NodeReceiver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CITY = os.path.join(ROOT, "examples", "scenarios", "city.yaml")
DF = os.path.join(ROOT, "examples", "scenarios", "df.yaml")
START = 1_764_000_000.25
W, F = 1_764_000_000, 0.25

# a CW tone 2.3 km from a GPS-timed Pluto (no LO or gain errors), an NTP-timed RTL-SDR and
# Airspy, and an emitter that moves
SCENARIO = """\
seed: 7
epoch: 2025-11-24T16:00:00Z
emitters:
  - id: tone
    position: {lat: 48.1500, lon: 11.5800, alt: 30}
    frequency_hz: 433.25e6
    eirp_dbm: 10
    waveform: {type: cw}
  - id: car
    position: {lat: 48.1420, lon: 11.5600, alt: 2}
    frequency_hz: 433.7e6
    eirp_dbm: 0
    waveform: {type: psk, order: 2, symbol_rate_hz: 50e3}
    velocity: {east_mps: 25, north_mps: -10}
nodes:
  - id: pluto
    position: {lat: 48.1290, lon: 11.5550, alt: 520}
    device: adalm_pluto
    noise_figure_db: 5
    clock: {source: gps, uncertainty_s: 20e-9}
  - id: rtl
    position: {lat: 48.1300, lon: 11.5700, alt: 510}
    device: rtlsdr_v3
    clock: {source: ntp, uncertainty_s: 2e-3}
  - id: airspy
    position: {lat: 48.1350, lon: 11.5400, alt: 515}
    device: airspy_r2
    clock: {source: ntp, offset_s: 0.0012, lo_error_ppm: 1.5, uncertainty_s: 2e-3}
"""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    path = tmp_path_factory.mktemp("scn") / "two.yaml"
    path.write_text(SCENARIO)
    return str(path)


def soapy_env():
    """The environment a fresh shell needs: SoapySDR pointed at the project's own build of
    the module, and the interpreter its scenario helper runs with."""
    assert os.path.isfile(os.path.join(MODULE_DIR, "libdriftSupport.so")), MODULE_DIR
    return os.environ | {"SOAPY_SDR_PLUGIN_PATH": MODULE_DIR, "DRIFT_PYTHON": sys.executable}


def read(args, rate, center, n, fmt=SOAPY_SDR_CF32, channels=(0,), gain=None, chunk=None):
    """n samples of each channel from a fresh device, and each readStream's result."""
    dev = SoapySDR.Device(args)
    dev.setSampleRate(SOAPY_SDR_RX, 0, rate)
    dev.setFrequency(SOAPY_SDR_RX, 0, center)
    if gain is not None:
        dev.setGain(SOAPY_SDR_RX, 0, gain)
    st = dev.setupStream(SOAPY_SDR_RX, fmt, list(channels))
    dev.activateStream(st)
    dtype = {SOAPY_SDR_CF32: np.complex64, SOAPY_SDR_CS16: np.int16}.get(fmt, np.uint8)
    width = 1 if fmt == SOAPY_SDR_CF32 else 2
    bufs = [np.zeros(n * width, dtype) for _ in channels]
    results, got = [], 0
    while got < n:
        want = min(n - got, chunk or n)
        r = dev.readStream(st, [b[got * width :] for b in bufs], want, timeoutUs=2_000_000)
        results.append((r.ret, r.flags, r.timeNs))
        assert r.ret > 0, r
        got += r.ret
    dev.deactivateStream(st)
    dev.closeStream(st)
    if fmt == SOAPY_SDR_CS8:
        bufs = [b.view(np.int8) for b in bufs]
    return bufs, results


def sim_samples(path, node, rate, center, n, ports=1):
    """n samples of the GNU Radio sim source (each port), in a flowgraph."""
    tb = gr.top_block(catch_exceptions=False)
    src = sim_source(path, node, rate, center, start_time=START)
    sinks = []
    for p in range(ports):
        head = blocks.head(gr.sizeof_gr_complex, n)
        sink = blocks.vector_sink_c()
        tb.connect((src, p), head, sink)
        sinks.append(sink)
    tb.run()
    return [np.array(s.data(), dtype=np.complex64) for s in sinks]


# -- SoapySDRUtil -----------------------------------------------------------------------------
def test_soapysdrutil_finds_the_scenarios_nodes():
    r = subprocess.run(
        ["SoapySDRUtil", f"--find=driver=drift,scenario={CITY}"],
        capture_output=True,
        text=True,
        env=soapy_env(),
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    found = [b for b in r.stdout.split("Found device")[1:]]
    nodes = {n.id: n.model.name for n in load_scenario(CITY).nodes}
    assert len(found) == len(nodes)
    for node_id, name in nodes.items():
        assert any(f"node = {node_id}\n" in b and name in b for b in found), r.stdout


def test_soapysdrutil_probe_shows_the_modelled_device(scenario):
    r = subprocess.run(
        ["SoapySDRUtil", f"--probe=driver=drift,scenario={scenario},node=pluto"],
        capture_output=True,
        text=True,
        env=soapy_env(),
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    m = hardware.model("adalm_pluto")
    assert f"Full freq range: [{m.freq_min_hz / 1e6:g}, {m.freq_max_hz / 1e6:g}] MHz" in out
    assert f"Full gain range: [{m.gain_range_db[0]:g}, {m.gain_range_db[1]:g}] dB" in out
    assert f"Sample rates: [0.001, {m.max_bandwidth_hz / 1e6:g}] MSps" in out
    assert "Timestamps: YES" in out and "Time sources: internal, gps, pps" in out
    assert "clock_locked (Clock locked): true" in out
    assert "sync_uncertainty_ns (Sync uncertainty): 20 ns" in out
    assert "Stream formats: CF32, CS16\n" in out
    # the NTP-timed RTL-SDR: no hardware time, 8-bit formats
    r = subprocess.run(
        ["SoapySDRUtil", f"--probe=driver=drift,scenario={scenario},node=rtl"],
        capture_output=True,
        text=True,
        env=soapy_env(),
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "Timestamps: NO" in r.stdout
    assert "Stream formats: CF32, CS16, CS8, CU8" in r.stdout
    assert "Native format: CU8 [full-scale=128]" in r.stdout


# -- a plain SoapySDR client --------------------------------------------------------------
CLIENT = r"""
import json, sys
import numpy as np
import SoapySDR
from SoapySDR import SOAPY_SDR_RX, SOAPY_SDR_CF32

args, rate, center = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
dev = SoapySDR.Device(args)
dev.setSampleRate(SOAPY_SDR_RX, 0, rate)
dev.setFrequency(SOAPY_SDR_RX, 0, center)
st = dev.setupStream(SOAPY_SDR_RX, SOAPY_SDR_CF32, [0])
dev.activateStream(st)
n = 1 << 18
x = np.zeros(n, np.complex64)
got = 0
while got < n:
    r = dev.readStream(st, [x[got:]], n - got, timeoutUs=1000000)
    assert r.ret > 0, r
    got += r.ret
dev.deactivateStream(st)
dev.closeStream(st)
# the tone: the windowed FFT's peak, then the coherent amplitude on a fine grid around it
t = np.arange(n) / rate
spec = np.abs(np.fft.fft(x * np.hanning(n), 8 * n))
f0 = np.fft.fftfreq(8 * n, 1 / rate)[int(np.argmax(spec))]
grid = f0 + np.linspace(-rate / n, rate / n, 401)
amp = [abs(np.mean(x * np.exp(-2j * np.pi * f * t))) for f in grid]
k = int(np.argmax(amp))
print(json.dumps({"freq_hz": center + grid[k], "dbfs": 20 * np.log10(amp[k]),
                  "full_scale_dbm": float(dev.getHardwareInfo()["full_scale_dbm"])}))
"""


def test_a_plain_soapysdr_client_reads_the_tone_at_its_true_power_and_frequency(scenario, tmp_path):
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    r = subprocess.run(
        ["/usr/bin/python3", "-I", str(client), f"driver=drift,scenario={scenario},node=pluto",
         "2e6", "433e6"],
        capture_output=True,
        text=True,
        env=soapy_env(),
        timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    scn = load_scenario(scenario)
    tone, node = scn.emitters[0], scn.node("pluto")
    # free space from the geometry, computed here
    a = np.array(pymap3d.geodetic2ecef(tone.position.lat, tone.position.lon, tone.position.alt))
    b = np.array(pymap3d.geodetic2ecef(node.position.lat, node.position.lon, node.position.alt))
    d = float(np.linalg.norm(a - b))
    truth_dbm = tone.eirp_dbm - 20 * math.log10(4 * math.pi * d * tone.frequency_hz / 299792458.0)
    assert got["freq_hz"] == pytest.approx(tone.frequency_hz, abs=0.5)
    assert got["dbfs"] + got["full_scale_dbm"] == pytest.approx(truth_dbm, abs=0.1)


# -- the same samples as the GNU Radio sim source -----------------------------------------
def test_samples_equal_the_gnuradio_sim_source_bit_for_bit():
    # every kind of waveform of the city, at 10 MS/s around 435 MHz, in uneven reads
    n = 300_000
    want = sim_samples(CITY, "n1", 10e6, 435e6, n)[0]
    args = f"driver=drift,scenario={CITY},node=n1,start={START!r}"
    (got,), results = read(args, 10e6, 435e6, n, chunk=70_001)
    assert len(results) > 3
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
    # and the 16-bit format carries the same levels: 12-bit samples, k / 2048, times 32768
    (cs16,), _ = read(args, 10e6, 435e6, 50_000, fmt=SOAPY_SDR_CS16)
    iq = cs16.astype(np.float32).reshape(-1, 2) / 32768
    assert np.array_equal((iq[:, 0] + 1j * iq[:, 1]).astype(np.complex64), want[:50_000])


def test_array_node_channels_equal_the_sim_source_in_every_format():
    n = 40_000
    want = sim_samples(DF, "df1", 2e6, 433.5e6, n, ports=5)
    args = f"driver=drift,scenario={DF},node=df1,start={START!r}"
    got, _ = read(args, 2e6, 433.5e6, n, channels=range(5))
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g.view(np.uint64), w.view(np.uint64))
    # an 8-bit receiver: CS8 and CU8 hold its ADC's levels exactly
    for fmt, offset in ((SOAPY_SDR_CS8, 0), (SOAPY_SDR_CU8, 128)):
        (raw,), _ = read(args, 2e6, 433.5e6, n, fmt=fmt, channels=(2,))
        iq = (raw.astype(np.float32) - offset).reshape(-1, 2) / 128
        assert np.array_equal((iq[:, 0] + 1j * iq[:, 1]).astype(np.complex64), want[2])


def test_moving_emitters_and_gain_equal_the_simulator(scenario):
    # the moving car comes from the numpy reference, through the module's helper
    n = 30_000
    rx = NodeReceiver(load_scenario(scenario), "pluto", 1e6, 433.6e6, gain_db=40)
    want = rx.samples(0, n, W, F)
    args = f"driver=drift,scenario={scenario},node=pluto,start={START!r}"
    (got,), _ = read(args, 1e6, 433.6e6, n, gain=40, chunk=9_999)
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
    # 10 dB more gain: the tone 10 dB higher in full-scale terms
    dev = SoapySDR.Device(args)
    fs0 = float(dev.getHardwareInfo()["full_scale_dbm"])
    dev.setGain(SOAPY_SDR_RX, 0, dev.getGain(SOAPY_SDR_RX, 0) - 10)
    assert float(dev.getHardwareInfo()["full_scale_dbm"]) == pytest.approx(fs0 + 10)


# -- limits, formats, time -------------------------------------------------------------
@pytest.mark.parametrize(
    "call, words",
    [
        (lambda d: d.setFrequency(SOAPY_SDR_RX, 0, 100e6), "tuning range 3.25e+08-3.8e+09 Hz"),
        (lambda d: d.setSampleRate(SOAPY_SDR_RX, 0, 61.44e6), "range 1000-5.6e+07 S/s"),
        (lambda d: d.setGain(SOAPY_SDR_RX, 0, 80), "gain 80 dB is outside its range 0-73 dB"),
        (lambda d: d.setBandwidth(SOAPY_SDR_RX, 0, 60e6), "bandwidth"),
        (lambda d: d.setupStream(SOAPY_SDR_RX, SOAPY_SDR_CS8, [0]), "CS8 is not one of"),
        (lambda d: d.setupStream(SoapySDR.SOAPY_SDR_TX, SOAPY_SDR_CF32, [0]), "receives only"),
        (lambda d: d.setTimeSource("ptp"), "internal, gps, pps"),
    ],
)
def test_settings_outside_the_modelled_device_are_refused(scenario, call, words):
    dev = SoapySDR.Device(f"driver=drift,scenario={scenario},node=pluto")
    with pytest.raises(RuntimeError, match=words.replace("+", r"\+")):
        call(dev)


def test_ranges_and_lists_come_from_the_hardware_matrix(scenario):
    dev = SoapySDR.Device(f"driver=drift,scenario={scenario},node=rtl")
    m = hardware.model("rtlsdr_v3")
    (fr,) = dev.getFrequencyRange(SOAPY_SDR_RX, 0)
    assert (fr.minimum(), fr.maximum()) == (m.freq_min_hz, m.freq_max_hz)
    rates = dev.listSampleRates(SOAPY_SDR_RX, 0)
    assert max(rates) == m.max_bandwidth_hz and all(r <= m.max_bandwidth_hz for r in rates)
    g = dev.getGainRange(SOAPY_SDR_RX, 0)
    assert (g.minimum(), g.maximum()) == m.gain_range_db
    assert not dev.hasHardwareTime("") and dev.listTimeSources() == ()
    assert dev.listSensors() == ("temperature",)
    assert 20 < float(dev.readSensor("temperature")) < 45


def test_a_realtime_stream_never_runs_ahead_of_the_wall_clock(scenario):
    import time

    dev = SoapySDR.Device(f"driver=drift,scenario={scenario},node=rtl,realtime=1")
    dev.setSampleRate(SOAPY_SDR_RX, 0, 250e3)
    st = dev.setupStream(SOAPY_SDR_RX, SOAPY_SDR_CF32, [0])
    t0 = time.monotonic()
    dev.activateStream(st)
    buf = np.zeros(65536, np.complex64)
    got = 0
    while got < 50_000:
        r = dev.readStream(st, [buf], buf.size, timeoutUs=1_000_000)
        assert r.ret > 0, r
        got += r.ret
        # never more than the wall clock has reached since the stream started
        assert got <= (time.monotonic() - t0) * 250e3 + 1
    dev.deactivateStream(st)
    dev.closeStream(st)


def test_hardware_time_stamps_every_read_and_follows_the_time_source(scenario):
    args = f"driver=drift,scenario={scenario},node=pluto,start={START!r}"
    dev = SoapySDR.Device(args)
    assert dev.hasHardwareTime("") and dev.getTimeSource() == "gps"
    assert dev.getHardwareTime("") == 1_764_000_000_250_000_000
    dev.setSampleRate(SOAPY_SDR_RX, 0, 2e6)
    dev.setFrequency(SOAPY_SDR_RX, 0, 433e6)
    st = dev.setupStream(SOAPY_SDR_RX, SOAPY_SDR_CF32, [0])
    # a timed start: the first sample at or after 1 ms past START
    dev.activateStream(st, SoapySDR.SOAPY_SDR_HAS_TIME, 1_764_000_000_251_000_250)
    buf = np.zeros(5000, np.complex64)
    k = 0
    for _ in range(3):
        r = dev.readStream(st, [buf], 5000, timeoutUs=1_000_000)
        assert r.ret == 5000 and r.flags & SoapySDR.SOAPY_SDR_HAS_TIME
        assert r.timeNs == 1_764_000_000_251_000_500 + k * 500  # 2 MS/s: 500 ns a sample
        k += r.ret
    assert dev.readSensor("clock_locked") == "true"
    assert float(dev.readSensor("sync_uncertainty_ns")) == pytest.approx(20.0)
    # free-running: not locked; a set time moves the stamps, gps disciplines them back
    dev.setTimeSource("internal")
    assert dev.readSensor("clock_locked") == "false"
    assert float(dev.readSensor("sync_uncertainty_ns")) == 1e9
    dev.setHardwareTime(0, "")
    r = dev.readStream(st, [buf], 100, timeoutUs=1_000_000)
    assert r.timeNs == 0
    dev.setTimeSource("gps")
    r = dev.readStream(st, [buf], 100, timeoutUs=1_000_000)
    assert r.timeNs == 1_764_000_000_251_000_500 + (k + 100) * 500
    dev.deactivateStream(st)
    dev.closeStream(st)


# -- injected faults, as drivers report them ---------------------------------------------
def test_overflows_lose_samples_and_stamp_the_gap(scenario):
    args = f"driver=drift,scenario={scenario},node=pluto,start={START!r},"
    dev = SoapySDR.Device(args + "overflow_every=10000,overflow_drop=2500")
    dev.setSampleRate(SOAPY_SDR_RX, 0, 1e6)
    dev.setFrequency(SOAPY_SDR_RX, 0, 433.6e6)
    st = dev.setupStream(SOAPY_SDR_RX, SOAPY_SDR_CF32, [0])
    dev.activateStream(st)
    buf = np.zeros(65536, np.complex64)
    codes, parts = [], []
    while len(codes) < 8:
        r = dev.readStream(st, [buf], 6000, timeoutUs=1_000_000)
        codes.append(r.ret)
        if r.ret > 0:
            parts.append((r.timeNs, buf[: r.ret].copy()))
    assert codes == [6000, 4000, SoapySDR.SOAPY_SDR_OVERFLOW, 6000, 4000, -4, 6000, 4000]
    rx = NodeReceiver(load_scenario(scenario), "pluto", 1e6, 433.6e6)
    index = [0, 6000, 12500, 18500, 25000, 31000]
    for (ns, x), k in zip(parts, index, strict=True):
        assert ns == 1_764_000_000_250_000_000 + k * 1000
        assert np.array_equal(x, rx.samples(k, x.size, W, F))


def test_a_stalled_device_times_out_and_an_unplugged_one_fails(scenario):
    base = f"driver=drift,scenario={scenario},node=rtl,"
    dev = SoapySDR.Device(base + "drop_after=3000")
    st = dev.setupStream(SOAPY_SDR_RX, SOAPY_SDR_CF32, [0])
    dev.activateStream(st)
    buf = np.zeros(4096, np.complex64)
    assert dev.readStream(st, [buf], 4096, timeoutUs=10_000).ret == 3000
    assert dev.readStream(st, [buf], 4096, timeoutUs=10_000).ret == SoapySDR.SOAPY_SDR_TIMEOUT
    dev.setFrequency(SOAPY_SDR_RX, 0, 433e6)  # still there: it answers
    dev = SoapySDR.Device(base + "unplug_after=3000")
    st = dev.setupStream(SOAPY_SDR_RX, SOAPY_SDR_CF32, [0])
    dev.activateStream(st)
    assert dev.readStream(st, [buf], 4096, timeoutUs=10_000).ret == 3000
    for _ in range(2):
        r = dev.readStream(st, [buf], 4096, timeoutUs=10_000)
        assert r.ret == SoapySDR.SOAPY_SDR_STREAM_ERROR
    with pytest.raises(RuntimeError, match="disconnected"):
        dev.setFrequency(SOAPY_SDR_RX, 0, 433e6)


# -- in flowgraphs: the time tags across an overflow ---------------------------------------
def tagged(src, n, fs):
    """src -> head -> time_tagger -> sink: (tagger, samples, {key: [(offset, value)]})."""
    tb = gr.top_block(catch_exceptions=False)
    head = blocks.head(gr.sizeof_gr_complex, n)
    tagger = grdrift.time_tagger(fs, quality=grdrift.ClockQuality("chrony", True, 1e-4))
    sink = blocks.vector_sink_c()
    tb.connect(src, head, tagger, sink)
    tb.run()
    out = {}
    for t in sink.tags():
        out.setdefault(pmt.symbol_to_string(t.key), []).append((t.offset, t.value))
    return tagger, np.array(sink.data(), np.complex64), out


def seconds(value):
    return pmt.to_uint64(pmt.tuple_ref(value, 0)) + pmt.to_double(pmt.tuple_ref(value, 1))


def test_device_time_re_anchors_rx_time_across_injected_overflows(scenario):
    fs, every, drop = 1e6, 50_000, 12_345
    spec = devices.parse_device(
        f"driver=drift,scenario={scenario},node=pluto,start={START!r},"
        f"overflow_every={every},overflow_drop={drop}"
    )
    src, caps = devices.open_source(spec, fs, 433.6e6)
    assert caps.hardware_time and isinstance(src, soapy_devices.soapy_source)
    tagger, x, tags = tagged(src, 160_000, fs)
    # rx_time at the start and after each overflow: the device's time of the sample that
    # follows the gap, exactly; the tagger re-anchors on each
    assert [o for o, _ in tags["rx_time"]] == [0, 50_000, 100_000, 150_000]
    for m, (_, v) in enumerate(tags["rx_time"]):
        assert seconds(v) == pytest.approx(START + m * (every + drop) / fs, abs=1e-9)
    assert tagger.reanchors == 3 and src.overflows == 3
    assert all(pmt.symbol_to_string(v) == "device" for _, v in tags["time_source"])
    # the samples after the gap are the device's samples after the gap
    rx = NodeReceiver(load_scenario(scenario), "pluto", fs, 433.6e6)
    assert np.array_equal(x[50_000:60_000], rx.samples(every + drop, 10_000, W, F))


def test_host_clock_re_anchors_after_an_overflow_of_a_device_without_time(scenario):
    fs = 1e6
    src = soapy_devices.soapy_source(
        f"driver=drift,scenario={scenario},node=rtl,overflow_every=40000",
        fs,
        433.2e6,
        host_time=False,
    )
    tagger, _, tags = tagged(src, 100_000, fs)
    assert [o for o, _ in tags["rx_overflow"]] == [40_000, 80_000]
    # no device time: the tagger's host anchor at 0, then a fresh host reading at each
    assert [o for o, _ in tags["rx_time"]] == [0, 40_000, 80_000]
    assert tagger.reanchors == 2
    assert all(pmt.symbol_to_string(v) == "chrony" for _, v in tags["time_source"])


# -- drift scan through gr-soapy ---------------------------------------------------------
def scan_json(device, out):
    r = subprocess.run(
        [sys.executable, "-m", "drift.cli", "scan", "--device", device, "--start", "432.8M",
         "--stop", "434.2M", "--bin", "2k", "--quiet", "--detections", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return sorted(json.load(open(out)), key=lambda d: d["center_freq_hz"])


@pytest.mark.parametrize("node", ["airspy", "pluto"], ids=["gr-soapy", "device-time"])
def test_drift_scan_of_driver_drift_finds_what_sim_finds(scenario, tmp_path, node):
    """The NTP-timed Airspy streams through gr-soapy, the GPS-timed Pluto through DRIFT's
    timed source: the same detections as sim=, their powers within 0.2 dB."""
    sim = scan_json(f"sim={scenario},node={node},start={START!r}", tmp_path / "sim.json")
    dev = f"driver=drift,scenario={scenario},node={node},start={START!r}"
    spec = devices.parse_device(dev)
    caps = devices.capabilities(spec)
    assert caps.hardware_time == (node == "pluto")
    if node == "airspy":
        from gnuradio import soapy

        block, _ = devices.open_source(spec, 2.4e6, 433e6, caps=caps)
        assert isinstance(block.source, soapy.source)
        del block
    got = scan_json(dev, tmp_path / "soapy.json")
    assert len(sim) == 2 and len(got) == len(sim)  # the tone and the car
    for a, b in zip(sim, got, strict=True):
        assert abs(a["center_freq_hz"] - b["center_freq_hz"]) <= 2e3
        assert b["power_db"] == pytest.approx(a["power_db"], abs=0.2)


def test_a_device_lost_before_the_first_sweep_fails_the_scan(scenario, tmp_path):
    """The device unplugged 1000 samples in: no sweep, so exit 1 with the reason in the last
    line, and no output written."""
    dev = f"driver=drift,scenario={scenario},node=pluto,start={START!r},unplug_after=1000"
    r = subprocess.run(
        [sys.executable, "-m", "drift.cli", "scan", "--device", dev, "--start", "432.8M",
         "--stop", "434.2M", "--bin", "2k", "--quiet", "--csv", str(tmp_path / "x.csv")],
        capture_output=True,
        text=True,
        timeout=300,
        env=soapy_env(),
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "no sweep: the source ended" in r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr
    assert os.listdir(tmp_path) == []
