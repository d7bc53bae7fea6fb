"""`drift calibrate` on a simulated node with a known LO error and gain error."""

import json
import subprocess
import sys

import numpy as np
import pytest
from gnuradio.drift import devices
from gnuradio.drift.devices import calibration

from drift import scan
from drift.sim import load_scenario
from drift.sim.synth import received_power_dbm

# An RTL-SDR (8 bits): its default gain leaves about 25 dB above the noise before the ADC
# clips, so the carriers arrive 15-20 dB above the noise, as a real one would need.
SCENARIO = """\
seed: 3
emitters:
  - id: reference
    position: {lat: 48.150, lon: 11.550, alt: 40}
    frequency_hz: 432.5e6
    eirp_dbm: -5
    waveform: {type: cw}
  - id: target
    position: {lat: 48.120, lon: 11.600, alt: 30}
    frequency_hz: 433.2e6
    eirp_dbm: -5
    waveform: {type: cw}
nodes:
  - id: rx
    position: {lat: 48.137, lon: 11.575, alt: 520}
    device: rtlsdr_v3
    noise_figure_db: 6
    gain_error_db: 3.0
    clock: {lo_error_ppm: 12.5, source: none}
"""
START = 1_764_000_000


def measured(path, bin_hz=500.0):
    """(frequency of the strongest bin near the target, its integrated power in dBm)."""
    cfg = scan.ScanConfig(
        device=f"sim={path},node=rx,start={START}",
        start_hz=432.9e6,
        stop_hz=433.5e6,
        bin_hz=bin_hz,
        rate_hz=2e6,
        interval_s=0.2,
        progress=False,
    )
    result = scan.run_scan(cfg)
    f, s = result.plan.freqs_hz, result.sweeps[0][1]
    i = int(np.argmax(s))
    lin = 10 ** (s / 10)
    return f[i], 10 * np.log10(lin[i - 8 : i + 9].sum() * result.plan.bin_hz)


def test_calibration_fixes_lo_and_power(tmp_path):
    path = tmp_path / "cal.yaml"
    path.write_text(SCENARIO)
    scn = load_scenario(str(path))
    node = scn.node("rx")
    ref, target = scn.emitters
    truth_dbm = received_power_dbm(scn, target, node)

    # uncalibrated: 12.5 ppm of LO error moves the carrier by 5.4 kHz, and the 3 dB gain error
    # is not in the nominal calibration
    f0, p0 = measured(path)
    assert f0 - target.frequency_hz == pytest.approx(-12.5e-6 * 433.2e6, abs=600)
    assert p0 - truth_dbm == pytest.approx(3.0, abs=0.5)

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "drift.cli",
            "calibrate",
            "--device",
            f"sim={path},node=rx",
            "--known-freq",
            "432.5M",
            "--known-power",
            f"{received_power_dbm(scn, ref, node):.3f}",
            "--rate",
            "2M",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    record = devices.load_calibration(devices.parse_device(f"sim={path},node=rx"))
    assert record is not None
    assert record.lo_error_ppm == pytest.approx(12.5, abs=0.2)

    f1, p1 = measured(path)
    assert abs(f1 - target.frequency_hz) <= 500  # within a bin
    assert p1 == pytest.approx(truth_dbm, abs=1.0)


def test_records_expire_and_recordings_have_none(tmp_path):
    store = calibration.CalibrationStore(str(tmp_path))
    rec = calibration.new_record("soapy:driver=rtlsdr,serial=1", 1.5, 100e6, -40.0, days=-1)
    store.save(rec)
    assert store.load(rec.device_key) is None  # expired
    rec = calibration.new_record("soapy:driver=rtlsdr,serial=1", 1.5, 100e6, -40.0)
    store.save(rec)
    loaded = store.load(rec.device_key)
    assert loaded.gain_offset_db(50e6) == -40.0 and loaded.tuning_hz(1e8) < 1e8
    assert json.loads(open(store._path(rec.device_key)).read())["lo_error_ppm"] == 1.5
    assert devices.device_key(devices.parse_device("sigmf=x.sigmf-meta")) is None


# A front end whose gain error changes with frequency (0.5 dB/MHz, a 3 dB tilt over 6 MHz),
# two reference carriers at the ends of the band and a target at each end and in the middle.
TILTED = """\
seed: 4
emitters:
  - id: ref_low
    position: {lat: 48.150, lon: 11.550, alt: 40}
    frequency_hz: 430.6e6
    eirp_dbm: -5
    waveform: {type: cw}
  - id: ref_high
    position: {lat: 48.152, lon: 11.553, alt: 40}
    frequency_hz: 436.4e6
    eirp_dbm: -5
    waveform: {type: cw}
  - id: low
    position: {lat: 48.120, lon: 11.600, alt: 30}
    frequency_hz: 431.0e6
    eirp_dbm: -8
    waveform: {type: cw}
  - id: mid
    position: {lat: 48.125, lon: 11.590, alt: 30}
    frequency_hz: 433.5e6
    eirp_dbm: -8
    waveform: {type: cw}
  - id: high
    position: {lat: 48.128, lon: 11.610, alt: 30}
    frequency_hz: 436.0e6
    eirp_dbm: -8
    waveform: {type: cw}
nodes:
  - id: rx
    position: {lat: 48.137, lon: 11.575, alt: 520}
    device: rtlsdr_v3
    noise_figure_db: 6
    gain_error_db: 2.0
    gain_tilt: {db_per_mhz: 0.5, center_hz: 433.5e6}
    clock: {lo_error_ppm: 12.5, source: none}
"""


def calibrate(path, scn, ref_id, *extra):
    ref = next(e for e in scn.emitters if e.id == ref_id)
    power = received_power_dbm(scn, ref, scn.node("rx"))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "drift.cli",
            "calibrate",
            "--device",
            f"sim={path},node=rx",
            "--known-freq",
            str(ref.frequency_hz),
            "--known-power",
            f"{power:.3f}",
            "--rate",
            "2M",
            "--offset",
            "100k",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return devices.load_calibration(devices.parse_device(f"sim={path},node=rx"))


def sweep_powers(path, scn):
    """Each target's power (dBm) from one scan over the whole band (several hops)."""
    cfg = scan.ScanConfig(
        device=f"sim={path},node=rx,start={START}",
        start_hz=430.8e6,
        stop_hz=436.2e6,
        bin_hz=2e3,
        rate_hz=2e6,
        interval_s=0.3,
        progress=False,
    )
    result = scan.run_scan(cfg)
    assert len(result.plan.hops) >= 3
    f, s = result.plan.freqs_hz, result.sweeps[0][1]
    lin = 10 ** (s / 10)
    out = {}
    for em in scn.emitters[2:]:
        i = int(np.argmin(np.abs(f - em.frequency_hz)))
        k = i - 6 + int(np.argmax(s[i - 6 : i + 7]))
        out[em.id] = 10 * np.log10(lin[k - 4 : k + 5].sum() * result.plan.bin_hz)
    return out


def test_calibration_points_merge_and_scan_applies_them_per_hop(tmp_path):
    path = tmp_path / "tilt.yaml"
    path.write_text(TILTED)
    scn = load_scenario(str(path))
    node = scn.node("rx")
    truth = {em.id: received_power_dbm(scn, em, node) for em in scn.emitters[2:]}

    one = calibrate(path, scn, "ref_low")
    assert len(one.gain_points) == 1
    two = calibrate(path, scn, "ref_high")
    assert [round(p[0]) for p in two.gain_points] == [430_600_000, 436_400_000]
    assert len(two.lo_points) == 2 and two.lo_error_ppm == pytest.approx(12.5, abs=0.2)
    # the two offsets differ by the tilt over 5.8 MHz (the offsets are PSD offsets, so a
    # higher gain is a lower offset); halfway, the interpolation
    (f_lo, g_lo), (f_hi, g_hi) = two.gain_points
    assert g_lo - g_hi == pytest.approx(0.5 * 5.8, abs=0.3)
    assert two.gain_offset_db(433.5e6) == pytest.approx((g_lo + g_hi) / 2, abs=0.01)
    # a run at a frequency already measured replaces its point
    again = calibrate(path, scn, "ref_high")
    assert len(again.gain_points) == 2

    # per hop: every target reads its truth, at both ends of the sweep and in the middle
    got = sweep_powers(path, scn)
    for em_id, p in got.items():
        assert p == pytest.approx(truth[em_id], abs=1.0), (em_id, got, truth)
    # one offset for the whole sweep (the first hop's) would miss the far end by the tilt
    assert abs((got["high"] - truth["high"]) - (g_lo - g_hi)) > 1.5

    # --restart forgets the earlier points
    fresh = calibrate(path, scn, "ref_low", "--restart")
    assert len(fresh.gain_points) == 1 and len(fresh.lo_points) == 1


def test_merge_replaces_near_points_and_starts_over_when_expired():
    key = "soapy:driver=rtlsdr,serial=2"
    rec = calibration.merge_measurement(None, key, 2.0, 100e6, -40.0)
    rec = calibration.merge_measurement(rec, key, 4.0, 200e6, -44.0)
    assert rec.gain_offset_db(150e6) == pytest.approx(-42.0)
    assert rec.gain_offset_db(50e6) == -40.0 and rec.gain_offset_db(300e6) == -44.0
    assert rec.lo_error_ppm == pytest.approx(3.0)
    rec = calibration.merge_measurement(rec, key, 4.0, 200e6 + 500, -45.0)
    assert rec.gain_points == [(100e6, -40.0), (200e6 + 500, -45.0)]
    # a point without known power moves the LO estimate only
    rec = calibration.merge_measurement(rec, key, 5.0, 300e6, None)
    assert len(rec.gain_points) == 2 and rec.lo_error_ppm == pytest.approx(11 / 3)
    old = calibration.new_record(key, 1.0, 100e6, -40.0, days=-1)
    assert calibration.merge_measurement(old, key, 2.0, 200e6, -41.0).gain_points == [
        (200e6, -41.0)
    ]


def run_calibrate(device, freq_hz, *extra):
    return subprocess.run(
        [sys.executable, "-m", "drift.cli", "calibrate", "--device", device, "--known-freq",
         str(freq_hz), "--rate", "2M", *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


def store_file(tmp_path):
    files = list((tmp_path / "var" / "calibration").glob("*.json"))
    return json.loads(files[0].read_text()) if files else None


def test_no_carrier_is_refused_with_its_snr(tmp_path, monkeypatch):
    """No carrier at --known-freq (the test signal has none at 100.2 MHz; the scenario's
    reference is at 432.5 MHz, not 432.7): exit 1, the SNR in one line, nothing stored."""
    monkeypatch.setenv("DRIFT_DATA_DIR", str(tmp_path / "var"))
    path = tmp_path / "cal.yaml"
    path.write_text(SCENARIO)
    for device, freq in ("testsig", 100.2e6), (f"sim={path},node=rx", 432.7e6):
        r = run_calibrate(device, freq)
        assert r.returncode == 1, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "no clear carrier" in lines[0], r.stderr
        snr = float(lines[0].split("strongest tone is ")[1].split(" dB")[0])
        assert snr < 0  # a noise peak
        assert store_file(tmp_path) is None


def test_the_reported_snr_is_the_carriers_over_the_noise(tmp_path, monkeypatch):
    """The SNR printed: the reference's received power over kT F in a bin of rate/1024
    (the scenario's truth: free-space loss, noise figure), within 1.5 dB."""
    monkeypatch.setenv("DRIFT_DATA_DIR", str(tmp_path / "var"))
    path = tmp_path / "cal.yaml"
    path.write_text(SCENARIO)
    scn = load_scenario(str(path))
    node = scn.node("rx")
    r = run_calibrate(f"sim={path},node=rx", 432.5e6)
    assert r.returncode == 0, r.stderr
    snr = float(r.stdout.split("carrier ")[1].split(" dB above")[0])
    noise_dbm = -174 + 6 + 10 * np.log10(2e6 / 1024)  # kT at 290 K, NF 6 dB, the bin
    truth = received_power_dbm(scn, scn.emitters[0], node) - noise_dbm
    assert snr == pytest.approx(truth, abs=1.5)
    assert store_file(tmp_path)["history"][0]["snr_db"] == pytest.approx(snr, abs=0.05)


def test_an_estimate_at_odds_with_the_record_is_kept_apart(tmp_path, monkeypatch):
    """A good record (12.5 ppm), then a run with a --known-freq 3 kHz off (a carrier, but
    not where it was said to be: 6.9 ppm more): refused, not averaged in; the history keeps
    both runs; --restart takes it."""
    monkeypatch.setenv("DRIFT_DATA_DIR", str(tmp_path / "var"))
    path = tmp_path / "cal.yaml"
    path.write_text(SCENARIO)
    dev = f"sim={path},node=rx"
    assert run_calibrate(dev, 432.5e6).returncode == 0
    r = run_calibrate(dev, 432.503e6)
    assert r.returncode == 1 and "not merged" in r.stderr.strip().splitlines()[-1], r.stderr
    record = devices.load_calibration(devices.parse_device(dev))
    assert record.lo_error_ppm == pytest.approx(12.5, abs=0.2)  # not (12.5 + 19.4) / 2
    hist = store_file(tmp_path)["history"]
    assert [h["accepted"] for h in hist] == [True, False]
    assert hist[1]["lo_error_ppm"] == pytest.approx(12.5 + 3e3 / 432.25e6 * 1e6, abs=0.2)
    # a second good run at another frequency still averages in
    assert run_calibrate(dev, 432.5e6, "--offset", "300k").returncode == 0
    assert len(store_file(tmp_path)["history"]) == 3
    r = run_calibrate(dev, 432.503e6, "--restart")
    assert r.returncode == 0, r.stderr
    record = devices.load_calibration(devices.parse_device(dev))
    assert record.lo_error_ppm == pytest.approx(19.44, abs=0.2)
