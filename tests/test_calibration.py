"""`drift calibrate` on a simulated node with a known LO error and gain error."""

import json
import subprocess
import sys

import numpy as np
import pytest

from drift import calibration, devices, scan
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
    cfg = scan.ScanConfig(device=f"sim={path},node=rx,start={START}", start_hz=432.9e6,
                          stop_hz=433.5e6, bin_hz=bin_hz, rate_hz=2e6, interval_s=0.2,
                          progress=False)
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
        [sys.executable, "-m", "drift.cli", "calibrate", "--device", f"sim={path},node=rx",
         "--known-freq", "432.5M", "--known-power", f"{received_power_dbm(scn, ref, node):.3f}",
         "--rate", "2M"], capture_output=True, text=True, timeout=120)
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
