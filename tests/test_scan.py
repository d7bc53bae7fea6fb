"""Hop plans, sweeps through real flowgraphs, and the `drift scan` command.

Oracles: the test signal's known tones (frequency, power in dBm) and noise floor (dBm/Hz),
scipy.signal.welch on the samples of a recording, and rtl_power's CSV layout.
"""

import csv
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sigmf
from gnuradio import drift as grdrift
from gnuradio import fft
from gnuradio.drift import devices
from scipy import signal as sps

from drift import scan

DRIFT = [sys.executable, "-m", "drift.cli"]
TONES = [(100.3e6, -60.0), (101.1e6, -75.0), (102.65e6, -50.0)]
CITY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples/scenarios/city.yaml")
TESTSIG = "testsig,tones=" + ";".join(f"{f:.0f}@{p}" for f, p in TONES) + ",noise=-150"


def run_drift(*args, timeout=120):
    return subprocess.run(DRIFT + list(args), capture_output=True, text=True, timeout=timeout)


# -- hop plans -------------------------------------------------------------------------------
def test_plan_covers_the_range_on_one_grid():
    plan = grdrift.plan_hops(88e6, 108e6, 2.4e6, 10e3, n_avg=10, usable=0.75)
    f = plan.freqs_hz
    assert plan.fft_size == 256 and plan.bin_hz == pytest.approx(9375.0)
    assert f[0] - plan.bin_hz / 2 == pytest.approx(88e6)
    assert f[-1] + plan.bin_hz / 2 >= 108e6
    np.testing.assert_allclose(np.diff(f), plan.bin_hz, rtol=1e-9)  # no gaps, no overlaps
    for hop in plan.hops:
        # only the central 75 % of each hop is used
        edge = np.abs(plan.hop_freqs_hz(hop) - hop.center_hz).max()
        assert edge <= 0.75 * 2.4e6 / 2 + plan.bin_hz


def test_plan_dwell_and_settle():
    plan = grdrift.plan_hops(400e6, 410e6, 2e6, 5e3, dwell_s=0.1, settle_s=0.01)
    assert plan.n_avg * plan.fft_size == pytest.approx(0.1 * 2e6, rel=0.01)
    assert plan.settle_samples == 20000
    assert plan.dwell_samples == plan.n_avg * plan.fft_size


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(start_hz=2e6, stop_hz=1e6), "start"),
        (dict(start_hz=1e6, stop_hz=2e6, bin_hz=0.01), "bin width"),
        (dict(start_hz=1e6, stop_hz=2e6, bin_hz=1e6), "bin width"),
        (dict(start_hz=20e6, stop_hz=30e6, tuning_range_hz=(24e6, 1.7e9)), "tuning range"),
        (dict(start_hz=1e6, stop_hz=2e6, usable=0.0), "usable"),
    ],
)
def test_plan_refuses_what_cannot_be_done(kwargs, words):
    args = dict(samp_rate_hz=2.4e6, bin_hz=10e3, n_avg=1) | kwargs
    with pytest.raises(ValueError, match=words):
        grdrift.plan_hops(**args)


# -- sweeps through a flowgraph --------------------------------------------------------------
def test_sweep_measures_the_test_signal():
    cfg = scan.ScanConfig(
        device=TESTSIG,
        start_hz=100e6,
        stop_hz=103e6,
        bin_hz=5e3,
        rate_hz=1e6,
        interval_s=0.5,
        duration_s=1.0,
        progress=False,
    )
    result = scan.run_scan(cfg)
    plan = result.plan
    assert len(plan.hops) == 4 and len(result.sweeps) == 2
    f = plan.freqs_hz
    for _, spectrum in result.sweeps:
        assert np.isfinite(spectrum).all()
        lin = 10 ** (spectrum / 10)
        for freq, power in TONES:
            i = int(np.argmin(np.abs(f - freq)))
            assert abs(f[np.argmax(spectrum[i - 3 : i + 4]) + i - 3] - freq) <= plan.bin_hz
            measured = 10 * np.log10(lin[i - 4 : i + 5].sum() * plan.bin_hz)
            assert measured == pytest.approx(power, abs=0.3)
        quiet = np.ones(f.size, bool)
        for freq, _ in TONES:
            quiet &= np.abs(f - freq) > 20 * plan.bin_hz
        floor = 10 * np.log10(lin[quiet].mean())
        assert floor == pytest.approx(-150.0, abs=0.2)
    # one timestamp per sweep row, a sweep apart (stream time)
    times = [t for t, _ in result.sweeps]
    assert times[1] - times[0] >= plan.sweep_s * 0.99


# -- the command line -----------------------------------------------------------------------
def test_scan_cli_writes_all_outputs(tmp_path):
    out = tmp_path / "scan"
    r = run_drift(
        "scan",
        "--device",
        TESTSIG,
        "--start",
        "100M",
        "--stop",
        "103M",
        "--bin",
        "5k",
        "--rate",
        "1M",
        "--interval",
        "0.5",
        "--duration",
        "1",
        "--csv",
        f"{out}.csv",
        "--png",
        f"{out}.png",
        "--sigmf",
        str(out),
        "--detections",
        f"{out}.json",
    )
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(open(f"{out}.csv"), skipinitialspace=True))
    assert len(rows) == 4 * 2  # hops x sweeps, one line per hop as rtl_power
    for a, b in zip(rows[:3], rows[1:4], strict=True):
        assert float(a[3]) == pytest.approx(float(b[2]))  # Hz high of a hop = Hz low of next
    for row in rows:
        dt.datetime.strptime(f"{row[0]} {row[1]}", "%Y-%m-%d %H:%M:%S")
        low, high, step = float(row[2]), float(row[3]), float(row[4])
        assert len(row) - 6 == round((high - low) / step)
        assert all(-160 < float(v) < -20 for v in row[6:])
    assert open(f"{out}.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    meta = sigmf.sigmffile.fromfile(f"{out}.sigmf-meta")
    meta.validate()
    bins = meta.get_global_field("drift:fft_size")
    frames = np.fromfile(f"{out}.sigmf-data", dtype="<f4").reshape(-1, bins)
    assert frames.shape[0] == 8 and len(meta.get_captures()) == 8
    found = json.load(open(f"{out}.json"))
    for freq, power in TONES:
        near = [d for d in found if abs(d["center_freq_hz"] - freq) < 3 * 1e6 / 256]
        assert len(near) == 1, (freq, found)
        assert near[0]["power_db"] == pytest.approx(power, abs=1.0)
    leftovers = [p for p in os.listdir(tmp_path) if p.endswith(".part")]
    assert leftovers == []


@pytest.mark.parametrize(
    "args, words",
    [
        (["--start", "103M", "--stop", "100M"], "start"),
        (["--start", "100M", "--stop", "7G"], "tuning range"),
        (["--start", "100M", "--stop", "101M", "--bin", "0.5"], "bin width"),
        (["--start", "100M", "--stop", "101M", "--rate", "50M"], "rate"),
    ],
)
def test_scan_cli_bad_input_exit_2_and_no_file(tmp_path, args, words):
    out = tmp_path / "x.csv"
    full = ["scan", "--device", "testsig", "--bin", "10k", "--csv", str(out), *args]
    if "--bin" in args:
        full = ["scan", "--device", "testsig", "--csv", str(out), *args]
    r = run_drift(*full)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert os.listdir(tmp_path) == []


def test_scan_cli_unknown_device(tmp_path):
    r = run_drift(
        "scan", "--device", "driver=nosuchradio", "--start", "1M", "--stop", "2M", "--bin", "1k"
    )
    assert r.returncode == 2 and "nosuchradio" in r.stderr


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _signal_state(pid: int) -> str:
    """The process's blocked, ignored and caught signal masks (/proc), and this process's."""
    out = []
    for who, path in (("scan", f"/proc/{pid}/status"), ("pytest", "/proc/self/status")):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        sig = [
            ln.replace("\t", " ") for ln in lines if ln.startswith(("SigBlk", "SigIgn", "SigCgt"))
        ]
        out.append(f"{who}: {', '.join(sig)}")
    return "; ".join(out)


def test_ctrl_c_leaves_valid_outputs(tmp_path):
    out = tmp_path / "long.csv"
    proc = subprocess.Popen(
        DRIFT
        + [
            "scan",
            "--device",
            TESTSIG,
            "--start",
            "100M",
            "--stop",
            "103M",
            "--bin",
            "5k",
            "--rate",
            "1M",
            "--interval",
            "0.2",
            "--duration",
            "1h",
            "--csv",
            str(out),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as a terminal delivers it: the test runner's own signal state (an ignored
        # or blocked SIGINT is inherited across exec) must not decide what the scan sees
        preexec_fn=_default_sigint,
    )
    part = tmp_path / ".long.csv.part"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > 0):
        time.sleep(0.05)
    assert part.exists(), "scan did not start writing"
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        state = _signal_state(proc.pid)
        proc.kill()
        _, err = proc.communicate(timeout=30)
        pytest.fail(
            f"drift scan still running 60 s after Ctrl-C ({state}); its stderr:\n{err[-8000:]}"
        )
    assert proc.returncode == 130, err
    assert out.exists() and not part.exists()
    text = out.read_text()
    assert text.endswith("\n")
    for row in csv.reader(text.splitlines(), skipinitialspace=True):
        assert len(row) - 6 == round((float(row[3]) - float(row[2])) / float(row[4]))


# -- SigMF recordings as a device ------------------------------------------------------------
def write_recording(base, x, rate, center, when, datatype="cf32_le"):
    if datatype == "cf32_le":
        x.astype(np.complex64).tofile(f"{base}.sigmf-data")
    elif datatype == "ci16_le":
        iq = np.empty(2 * x.size, np.int16)
        iq[0::2], iq[1::2] = np.round(x.real * 32767), np.round(x.imag * 32767)
        iq.tofile(f"{base}.sigmf-data")
    elif datatype == "cu8":
        iq = np.empty(2 * x.size, np.uint8)
        iq[0::2] = np.clip(np.round(x.real * 128 + 127.5), 0, 255)
        iq[1::2] = np.clip(np.round(x.imag * 128 + 127.5), 0, 255)
        iq.tofile(f"{base}.sigmf-data")
    meta = sigmf.SigMFFile(
        data_file=f"{base}.sigmf-data",
        global_info={sigmf.DATATYPE_KEY: datatype, sigmf.SAMPLE_RATE_KEY: rate},
    )
    meta.add_capture(0, metadata={sigmf.FREQUENCY_KEY: center, sigmf.DATETIME_KEY: when})
    meta.tofile(f"{base}.sigmf-meta")


def decoded(x, datatype):
    """What the recording holds after its datatype's quantization, as complex64."""
    if datatype == "ci16_le":
        return (np.round(x.real * 32767) + 1j * np.round(x.imag * 32767)) / 32768
    if datatype == "cu8":
        q = lambda v: (np.clip(np.round(v * 128 + 127.5), 0, 255) - 127.5) / 128  # noqa: E731
        return q(x.real) + 1j * q(x.imag)
    return x


@pytest.mark.parametrize(
    "datatype, bin_hz",
    [("cf32_le", 1e3), ("ci16_le", 1e3), ("cu8", 1e3), ("cf32_le", 50.0)],
    ids=["cf32_le", "ci16_le", "cu8", "cf32_le-fine-bins"],
)
def test_recording_scan_matches_welch(tmp_path, datatype, bin_hz):
    """The PSD rows, and the CSV's lines, against scipy's Welch on the recording's samples
    (fine bins: 8192-point FFTs)."""
    rate, center, n = 250e3, 433.92e6, 1 << 16
    rng = np.random.default_rng(7)
    t = np.arange(n) / rate
    x = 0.3 * np.exp(2j * np.pi * 31e3 * t) + 0.01 * (
        rng.standard_normal(n) + 1j * rng.standard_normal(n)
    )
    base = tmp_path / "rec"
    write_recording(base, x, rate, center, "2026-03-01T12:00:00.250000Z", datatype)
    cfg = scan.ScanConfig(
        device=f"sigmf={base}.sigmf-meta",
        start_hz=center - 100e3,
        stop_hz=center + 100e3,
        bin_hz=bin_hz,
        interval_s=0.1,
        sigmf=str(tmp_path / "out"),
        csv=str(tmp_path / "out.csv"),
        progress=False,
    )
    result = scan.run_scan(cfg)
    plan = result.plan
    nfft = 1 << int(np.ceil(np.log2(rate / bin_hz)))  # the next power of two
    assert len(plan.hops) == 1 and plan.fft_size == nfft
    assert len(result.sweeps) == n // (plan.n_avg * plan.fft_size) >= 2
    # the first row against scipy on the same samples
    _, ref = sps.welch(
        decoded(x, datatype).astype(np.complex64)[: plan.n_avg * nfft],
        fs=rate,
        window=np.asarray(fft.window.build(fft.window.WIN_BLACKMAN_HARRIS, nfft)),
        nperseg=nfft,
        noverlap=0,
        return_onesided=False,
        scaling="density",
        detrend=False,
    )
    ref_db = 10 * np.log10(np.fft.fftshift(ref))
    hop = plan.hops[0]
    np.testing.assert_allclose(result.sweeps[0][1], ref_db[hop.first_bin : hop.stop_bin], atol=0.01)
    # time from core:datetime, advancing by the samples of each row
    t0 = dt.datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=dt.UTC).timestamp()
    assert result.sweeps[0][0] == pytest.approx(t0, abs=1e-6)
    assert result.sweeps[1][0] - result.sweeps[0][0] == pytest.approx(plan.n_avg * nfft / rate)
    # the CSV: scipy's first row in its first line, rounded to 0.01 dB; Hz low/high/step
    # from the band; samples: what one line averages, the recording's time between lines
    lines = list(csv.reader(open(cfg.csv), skipinitialspace=True))
    assert len(lines) == len(result.sweeps)
    first = lines[0]
    np.testing.assert_allclose(
        [float(v) for v in first[6:]], ref_db[hop.first_bin : hop.stop_bin], atol=0.0051 + 0.01
    )
    step = rate / nfft
    assert float(first[4]) == pytest.approx(step, abs=0.005)
    # fftshifted bin k is centred on center + (k - nfft/2) step: low and high are the edges
    low = center + (hop.first_bin - nfft / 2 - 0.5) * step
    assert float(first[2]) == pytest.approx(low, abs=0.5)
    assert float(first[3]) == pytest.approx(low + (hop.stop_bin - hop.first_bin) * step, abs=0.5)
    gap = result.sweeps[1][0] - result.sweeps[0][0]
    assert int(first[5]) == round(gap * rate)
    assert int(first[5]) * len(lines) <= n
    caps = devices.capabilities(devices.parse_device(f"sigmf={base}.sigmf-meta"))
    assert caps.fixed_center_hz == center and caps.length_samples == n


def test_recording_out_of_band_is_refused(tmp_path):
    base = tmp_path / "rec"
    write_recording(base, np.zeros(4096, complex), 250e3, 100e6, "2026-01-01T00:00:00Z")
    r = run_drift(
        "scan",
        "--device",
        f"sigmf={base}.sigmf-meta",
        "--start",
        "99M",
        "--stop",
        "100M",
        "--bin",
        "1k",
        "--csv",
        str(tmp_path / "o.csv"),
    )
    assert r.returncode == 2 and "recording's band" in r.stderr
    assert not (tmp_path / "o.csv").exists()


def test_scan_cli_osmosdr_device_missing():
    r = run_drift(
        "scan", "--device", "osmosdr:rtl=0", "--start", "100M", "--stop", "101M", "--bin", "10k"
    )
    assert r.returncode == 2
    assert "no gr-osmosdr device matches" in r.stderr.strip().splitlines()[-1]


# -- the scanner's rough edges --------------------------------------------------------------
def read_csv(path):
    return list(csv.reader(open(path), skipinitialspace=True))


def tone_column(row, freq):
    """The column of a CSV line's dB values whose bin holds freq (from the line's own Hz low
    and Hz step: bin k spans low + k step .. low + (k + 1) step)."""
    return int((freq - float(row[2])) // float(row[4]))


def test_large_ffts_scan_the_test_signal(tmp_path):
    """--bin 100 needs 16384-point FFTs (and 32768 at the default rate): the flowgraph gives
    drift.psd the buffers they need, over one hop and over several."""
    for extra, hops in ([], 1), (["--rate", "1M", "--stop", "101.5M"], 2):
        out = tmp_path / f"fine{hops}.csv"
        args = ["--start", "100M", "--stop", "100.5M", "--bin", "100"]
        r = run_drift("scan", "--device", TESTSIG, *args, *extra, "--csv", str(out), "--quiet")
        assert r.returncode == 0, r.stderr
        assert "requesting more input" not in r.stderr
        rows = read_csv(out)
        assert len(rows) == hops
        step = float(rows[0][4])
        assert 50 <= step <= 100
        # the -60 dBm tone at 100.3 MHz, in its own column, at its power; the floor
        row = rows[0]
        db = np.array([float(v) for v in row[6:]])
        k = tone_column(row, 100.3e6)
        assert abs(int(np.argmax(db)) - k) <= 1
        power = 10 * np.log10((10 ** (db[k - 6 : k + 7] / 10)).sum() * step)
        assert power == pytest.approx(-60.0, abs=0.3)
        floor = 10 * np.log10(np.mean(10 ** (np.delete(db, np.s_[k - 50 : k + 50]) / 10)))
        assert floor == pytest.approx(-150.0, abs=0.2)


def test_csv_holds_the_sweeps_and_stamps_each_sweep_once(tmp_path):
    """Each sweep's lines hold its spectrum (tones in their columns at their powers), all
    stamped with the sweep's time as rtl_power does; --csv-hop-times stamps each hop with its
    own (the times SigMF keeps)."""
    cfg = scan.ScanConfig(
        device=TESTSIG,
        start_hz=100e6,
        stop_hz=103e6,
        bin_hz=5e3,
        rate_hz=1e6,
        interval_s=4.0,  # four hops of about a second each: their times span seconds
        duration_s=8.0,
        csv=str(tmp_path / "sweep.csv"),
        sigmf=str(tmp_path / "frames"),
        progress=False,
    )
    result = scan.run_scan(cfg)
    rows = read_csv(cfg.csv)
    n_hops = len(result.plan.hops)
    assert n_hops == 4 and len(result.sweeps) == 2 and len(rows) == 8
    caps = sigmf.sigmffile.fromfile(f"{tmp_path}/frames.sigmf-meta").get_captures()
    hop_times = [dt.datetime.fromisoformat(c["core:datetime"].replace("Z", "+00:00")) for c in caps]
    assert (hop_times[3] - hop_times[0]).total_seconds() > 2.5  # the hops are seconds apart
    for s, (t0, spectrum) in enumerate(result.sweeps):
        lines = rows[s * n_hops : (s + 1) * n_hops]
        stamp = dt.datetime.fromtimestamp(t0, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        assert {f"{r[0]} {r[1]}" for r in lines} == {stamp}  # one time per sweep
        assert hop_times[s * n_hops] == dt.datetime.fromtimestamp(t0, dt.UTC)  # its first hop's
        values = np.array([float(v) for r in lines for v in r[6:]])
        np.testing.assert_allclose(values, spectrum, atol=0.0051)
        for freq, power in TONES:
            line = next(r for r in lines if float(r[2]) <= freq < float(r[3]))
            db = np.array([float(v) for v in line[6:]])
            k = tone_column(line, freq)
            assert int(np.argmax(db[k - 3 : k + 4])) == 3
            measured = 10 * np.log10((10 ** (db[k - 4 : k + 5] / 10)).sum() * float(line[4]))
            assert measured == pytest.approx(power, abs=0.3)
    # each hop's own time, as an option
    cfg.csv, cfg.sigmf, cfg.csv_hop_times = str(tmp_path / "hops.csv"), None, True
    cfg.duration_s = 4.0
    scan.run_scan(cfg)
    stamps = [f"{r[0]} {r[1]}" for r in read_csv(cfg.csv)]
    assert len(set(stamps)) >= 3  # hops a second apart carry different seconds


def test_a_scan_with_no_sweep_fails_and_writes_nothing(tmp_path):
    """A recording shorter than one sweep (the README's fine bins with the default interval),
    and a truncated one, are refused with the reason: exit 2, one line, no file."""
    rate, center = 250e3, 100.2e6
    n = int(0.5 * rate)  # half a second: one 1 s --interval needs more
    rng = np.random.default_rng(3)
    x = 0.01 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    base = tmp_path / "rec"
    write_recording(base, x, rate, center, "2026-03-01T12:00:00Z")
    trunc = tmp_path / "trunc"
    write_recording(trunc, x, rate, center, "2026-03-01T12:00:00Z")
    with open(f"{trunc}.sigmf-data", "r+b") as f:
        f.truncate(1001)  # cut in the middle of a sample
    outs = ["--csv", str(tmp_path / "o.csv"), "--png", str(tmp_path / "o.png")]
    for rec, interval in (base, "1"), (trunc, "0.01"):
        r = run_drift(
            "scan", "--device", f"sigmf={rec}.sigmf-meta", "--start", "100.1M", "--stop",
            "100.3M", "--bin", "100", "--interval", interval, "--sigmf",
            str(tmp_path / "frames"), *outs,
        )  # fmt: skip
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "fewer than one sweep needs" in lines[0], r.stderr
        assert not [p for p in os.listdir(tmp_path) if p.startswith(("o.", ".o", "frames"))]
    # the same recording with an interval it holds: sweeps
    r = run_drift(
        "scan", "--device", f"sigmf={base}.sigmf-meta", "--start", "100.1M", "--stop",
        "100.3M", "--bin", "100", "--interval", "0.1", "--csv", str(tmp_path / "o.csv"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(read_csv(tmp_path / "o.csv")) == 5


@pytest.mark.parametrize(
    "case, words",
    [
        ("csv-dir", "--csv: {tmp} is a directory"),
        ("same-path", "--csv and --png name the same file"),
        ("sigmf-no-data", "has no data file"),
        ("gain", "no gain control"),
        ("gain-range", "gain 1000 dB is outside the device's range 0-73 dB"),
    ],
)
def test_scan_mistakes_are_one_line(tmp_path, case, words):
    base = tmp_path / "rec"
    write_recording(base, np.zeros(4096, complex), 250e3, 100e6, "2026-01-01T00:00:00Z")
    device, band, out = TESTSIG, ["--start", "100M", "--stop", "101M"], []
    if case == "csv-dir":
        (tmp_path / "dir").mkdir()
        out = ["--csv", str(tmp_path / "dir")]
        words = words.format(tmp=tmp_path / "dir")
    elif case == "same-path":
        out = ["--csv", str(tmp_path / "x"), "--png", str(tmp_path / "." / "x")]
    elif case == "sigmf-no-data":
        os.unlink(f"{base}.sigmf-data")
        device, band = f"sigmf={base}.sigmf-meta", ["--start", "99.95M", "--stop", "100.05M"]
    else:
        out = ["--gain", "1000"]
    if case == "gain-range":  # a simulated RTL-SDR: its tuner's gains
        device, band = f"sim={CITY},node=n1", ["--start", "432M", "--stop", "433M"]
    before = set(os.listdir(tmp_path))
    r = run_drift("scan", "--device", device, *band, "--bin", "10k", *out)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert set(os.listdir(tmp_path)) == before


def test_sim_devices_are_listed_in_help_and_errors():
    r = run_drift("scan", "--help")
    assert r.returncode == 0 and "sim=SCENARIO.yaml,node=ID" in r.stdout
    assert "driver=drift,scenario=" in r.stdout
    r = run_drift("scan", "--device", "nonsense", "--start", "1M", "--stop", "2M", "--bin", "1k")
    assert r.returncode == 2 and "sim=<scenario>,node=<id>" in r.stderr
