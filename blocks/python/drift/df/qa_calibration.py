#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""df.calibration: per-channel gains and delays estimated from a reference and removed
linearly, against signals built with exactly known delays (band-limited periodic signals, so
a window of the delayed signal is exact) and known gains."""

import json

import numpy as np
import pytest
from gnuradio.drift.df import (
    ArrayCalibration,
    aperture_delays_s,
    calibrate_array,
    calibrate_wideband,
    estimate_bearings,
    steering_vectors,
    uca_positions,
)

UCA = uca_positions(5, 0.425)


def cnoise(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def wrap(d):
    return (np.asarray(d) + 180.0) % 360.0 - 180.0


def snapshots(rng, positions, azimuth_deg, snr_db, n, gains=None):
    """Element signals of uncorrelated Gaussian sources plus unit white noise per element
    (the noise enters before the channel gains, as thermal noise does)."""
    a = steering_vectors(positions, azimuth_deg)
    x = a @ (cnoise(rng, a.shape[1], n) * 10 ** (snr_db / 20)) + cnoise(rng, a.shape[0], n)
    return x if gains is None else gains[:, None] * x


def _random_gains(rng, m):
    g = 10 ** (rng.uniform(-3, 3, m) / 20) * np.exp(1j * rng.uniform(-np.pi, np.pi, m))
    return g / g[0]


def delayed_windows(rng, n, delays, band=0.7, pad=256):
    """(signal s(k) for k = -pad..n+pad-1, windows (M, n) with window m = s(k - delays[m]),
    k = 0..n-1): unit-power noise in |f| < band / 2, periodic over n + 2 pad samples, so every
    fractional delay of it is exact (and nothing wraps into the windows for |delay| < pad)."""
    big = n + 2 * pad
    f = np.fft.fftfreq(big)
    spec = np.fft.fft(cnoise(rng, big)) * (np.abs(f) < band / 2) / np.sqrt(band)
    s = np.fft.ifft(spec)
    win = np.array([np.fft.ifft(spec * np.exp(-2j * np.pi * f * d))[pad : pad + n] for d in delays])
    return s, win


def test_calibration_from_known_emitter():
    rng = np.random.default_rng(35)
    g = _random_gains(rng, 5)
    cal = calibrate_array(snapshots(rng, UCA, 60.0, 20.0, 4096, g), UCA, ref_azimuth_deg=60.0)
    assert np.max(np.abs(wrap(np.rad2deg(np.angle(cal.gains / g))))) <= 0.5
    assert np.max(np.abs(20 * np.log10(np.abs(cal.gains / g)))) < 0.1
    biases = []
    for az in (10.0, 130.0, 250.0):
        x = snapshots(rng, UCA, az, 10.0, 1024, g)
        raw = estimate_bearings(x, UCA).bearings[0].azimuth_deg
        fixed = [
            estimate_bearings(cal.apply(snapshots(rng, UCA, az, 10.0, 1024, g)), UCA)
            .bearings[0]
            .azimuth_deg
            for _ in range(10)
        ]
        biases.append(abs(wrap(np.mean(fixed) - az)))
        assert abs(wrap(raw - az)) > 2.0  # the uncalibrated array is visibly wrong
    assert max(biases) < 0.5


def test_calibration_from_common_noise_source():
    rng = np.random.default_rng(36)
    g = _random_gains(rng, 4)
    common = cnoise(rng, 1, 4096) * 10.0
    x = g[:, None] * (common + cnoise(rng, 4, 4096))
    cal = calibrate_array(x)
    assert np.max(np.abs(wrap(np.rad2deg(np.angle(cal.gains / g))))) <= 0.5
    assert np.all(cal.delay_samples == 0) and cal.edge_samples() == (0, 0)


def test_wideband_calibration_delays_and_gains():
    rng = np.random.default_rng(37)
    n = 8192
    g = _random_gains(rng, 4)
    delays = np.array([0.0, 3.4, -7.25, 0.6])
    _, sig = delayed_windows(rng, n, delays, band=1.0)
    x = g[:, None] * (10.0 * sig + cnoise(rng, 4, n))
    cal = calibrate_wideband(x, sample_rate_hz=1.0, max_delay_s=20)
    assert np.allclose(cal.delay_samples, delays, atol=0.02)
    assert np.max(np.abs(wrap(np.rad2deg(np.angle(cal.gains / g))))) <= 0.5
    y = cal.apply(x)
    rho = np.abs(np.vdot(y[0], y[2])) / np.sqrt(np.vdot(y[0], y[0]).real * np.vdot(y[2], y[2]).real)
    assert rho > 0.98


def test_apply_removes_delays_up_to_50_samples_exactly():
    """Integer and fractional delays up to 50 samples either way: every corrected channel is
    channel 0's signal at the same instant (to the FIR's -70 dB), over the span apply states."""
    rng = np.random.default_rng(40)
    n = 4096
    delays = np.array([0.0, 49.63, -50.0, 12.0, -23.318])
    s, win = delayed_windows(rng, n, delays, band=0.8)
    g = _random_gains(rng, 5)
    cal = ArrayCalibration(g, delays)
    lead, trail = cal.edge_samples()
    # the edges: the delays' span plus the FIR's half length at each end, no more
    assert (lead, trail) == (50, 49 + 16)
    y = cal.apply(g[:, None] * win)
    assert y.shape == (5, n - lead - trail)
    want = s[256 + lead : 256 + lead + y.shape[1]]  # s at the times of input lead + k
    err = np.abs(y - want[None, :]) ** 2
    assert 10 * np.log10(err.mean(axis=1).max()) < -70
    # integer delays are exact shifts
    np.testing.assert_allclose(y[[0, 2, 3]], np.broadcast_to(want, (3, want.size)), atol=1e-12)


@pytest.mark.parametrize("where", ["start", "end"])
def test_apply_never_wraps_samples_around(where):
    """A burst at one end of the block and silence elsewhere: after removing delays of +-40
    samples, the other end of the output is exactly silent (a circular delay in the frequency
    domain would wrap the burst there)."""
    rng = np.random.default_rng(41)
    n, burst = 2048, 300
    x = np.zeros((3, n), complex)
    part = slice(0, burst) if where == "start" else slice(n - burst, n)
    x[:, part] = cnoise(rng, 3, burst)
    cal = ArrayCalibration(np.ones(3), [0.0, 40.3, -39.7])
    lead, trail = cal.edge_samples()
    y = cal.apply(x)
    assert y.shape[1] == n - lead - trail
    quiet = slice(-(n - 2 * burst), None) if where == "start" else slice(0, n - 2 * burst)
    assert np.all(y[:, quiet] == 0)
    # the burst itself is still there, in every channel
    loud = slice(0, burst - 100) if where == "start" else slice(-(burst - 100), None)
    assert np.all(np.mean(np.abs(y[:, loud]) ** 2, axis=1) > 0.5)


def test_wideband_calibration_to_the_spec_50_sample_delays():
    """Random phases, +-3 dB gains, integer + fractional delays up to 50 samples, a known
    emitter as the reference: delays within 0.03 samples, phases within 0.5 deg, gains
    within 0.05 dB, and the bearings of other sources unbiased (< 0.5 deg) afterwards."""
    rng = np.random.default_rng(42)
    m, n, ref_az = 5, 16384, 75.0
    g = _random_gains(rng, m)
    delays = np.r_[0.0, rng.uniform(-50, 50, m - 1)]
    # the reference: one band-limited signal from ref_az, delayed per channel, 20 dB per element
    a = steering_vectors(UCA, ref_az)[:, 0]
    _, sig = delayed_windows(np.random.default_rng(43), n, delays)
    x = g[:, None] * (10.0 * a[:, None] * sig + cnoise(rng, m, n))
    cal = calibrate_wideband(x, positions_wl=UCA, ref_azimuth_deg=ref_az)
    assert np.max(np.abs(cal.delay_samples - delays)) <= 0.03
    assert np.max(np.abs(wrap(np.rad2deg(np.angle(cal.gains / g))))) <= 0.5
    assert np.max(np.abs(20 * np.log10(np.abs(cal.gains / g)))) < 0.05
    for az in (10.0, 200.0, 300.0):
        _, sig = delayed_windows(rng, 2048, delays)
        t = steering_vectors(UCA, az)[:, 0]
        ests = []
        for _ in range(4):
            xt = g[:, None] * (3.0 * t[:, None] * sig + cnoise(rng, m, 2048))
            ests.append(estimate_bearings(cal.apply(xt), UCA).bearings[0].azimuth_deg)
        raw = estimate_bearings(xt, UCA).bearings[0].azimuth_deg
        assert abs(wrap(raw - az)) > 2.0  # uncalibrated: visibly wrong
        assert abs(wrap(np.mean(ests) - az)) < 0.5


def test_aperture_delay_sign():
    # a source due north reaches the northernmost element (UCA element 0) first
    d = aperture_delays_s(UCA, 0.0, 433.5e6)
    assert d[0] == 0 and np.all(d[1:] > 0)
    assert d.max() == pytest.approx(0.425 * (1 + np.cos(np.deg2rad(36))) / 433.5e6)


def test_file_round_trip_and_bad_files(tmp_path):
    cal = ArrayCalibration.from_errors(
        [0, 30, -120, 170.5],
        [0, -2, 1.5, 3],
        [0, 3.25, -40.5, 12],
        sample_rate_hz=2e6,
        center_freq_hz=433.5e6,
    )
    path = tmp_path / "cal.json"
    cal.save(path)
    back = ArrayCalibration.load(path)
    np.testing.assert_allclose(back.gains, cal.gains, rtol=1e-12)
    np.testing.assert_array_equal(back.delay_samples, cal.delay_samples)
    assert back.sample_rate_hz == 2e6 and back.center_freq_hz == 433.5e6
    assert json.loads(path.read_text())["type"] == "drift_array_calibration"
    bad = {
        '{"phase_deg": [0, 1], "gain_db": [0]}': "gain_db has 1 values for 2",
        '{"phase_deg": [0, 1], "gain_db": [0, 0], "delay_samples": [0, "x"]}': "delay_samples",
        '{"phase_deg": [0, 1], "gain_db": [0, 0], "sample_rate_hz": -1}': "sample_rate_hz",
        '{"phase_deg": [0, 1]}': "missing field 'gain_db'",
        '{"phase_deg": [0, 1], "gain_db": [0, 0], "delays": [0, 0]}': "unknown field 'delays'",
        '{"phase_deg": [0, 1], "gain_db": [0, 0], "elements": 3}': "elements",
        '{"type": "sigmf", "phase_deg": [0], "gain_db": [0]}': "type",
        "[1, 2]": "mapping",
        "not json": "not JSON",
    }
    for text, words in bad.items():
        path.write_text(text)
        with pytest.raises(ValueError, match=words) as err:
            ArrayCalibration.load(path)
        assert str(path) in str(err.value)
    with pytest.raises(ValueError, match="No such file"):
        ArrayCalibration.load(tmp_path / "missing.json")


def test_bad_calibrations_and_blocks():
    with pytest.raises(ValueError, match="delay_samples has 2 values for 3"):
        ArrayCalibration(np.ones(3), [0.0, 1.0])
    with pytest.raises(ValueError, match="non-zero"):
        ArrayCalibration([1.0, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="non-finite"):
        ArrayCalibration([1.0, 1.0], [0.0, np.nan])
    with pytest.raises(ValueError, match="interp_half_taps"):
        ArrayCalibration([1.0, 1.0], [0.0, 0.5], interp_half_taps=0)
    cal = ArrayCalibration([1.0, 1.0], [0.0, 30.5])
    with pytest.raises(ValueError, match="too short"):
        cal.apply(np.ones((2, 40)))
    with pytest.raises(ValueError, match=r"\(2, N\)"):
        cal.apply(np.ones((3, 400)))
    with pytest.raises(ValueError, match="positions_wl"):
        calibrate_wideband(np.ones((5, 64)) + 0j, ref_azimuth_deg=10.0)
    with pytest.raises(ValueError, match="sample_rate_hz"):
        calibrate_wideband(
            np.ones((5, 64)) + 0j, positions_wl=UCA, ref_azimuth_deg=10.0, ref_freq_hz=433e6
        )
