#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""df.tdoa: GCC delays against known fractional delays and the CRB; reference-based clock sync."""

import numpy as np
import pytest
from gnuradio.drift.df import (
    SPEED_OF_LIGHT_M_S,
    clock_offsets,
    delay_crb_bandlimited,
    delay_crb_flat,
    estimate_delay,
    sync_to_reference,
)


def cnoise(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def delayed_pair(rng, n, delay_samples, snr_db, band_fraction=1.0):
    """(reference, signal): one Gaussian signal, flat over band_fraction of the sample rate
    (unit power), the second copy delayed in the frequency domain; white unit noise on each.
    snr_db is the in-band SNR."""
    f = np.fft.fftfreq(n)
    spec = np.fft.fft(cnoise(rng, n))
    spec[np.abs(f) > band_fraction / 2] = 0
    spec /= np.sqrt(band_fraction)
    amp = np.sqrt(10 ** (snr_db / 10) * band_fraction)
    s1 = np.fft.ifft(spec)
    s2 = np.fft.ifft(spec * np.exp(-2j * np.pi * f * delay_samples))
    return amp * s1 + cnoise(rng, n), amp * s2 + cnoise(rng, n)


@pytest.mark.parametrize("weighting", ["phat", "plain", "ml"])
def test_fractional_delay_within_predicted_error(weighting):
    rng = np.random.default_rng(10)
    fs = 10e6
    for delay in (-17.31, 0.0, 2.5, 40.77):
        x1, x2 = delayed_pair(rng, 4096, delay, 5.0, 0.8)
        e = estimate_delay(x1, x2, fs, weighting=weighting, max_delay_s=100 / fs)
        assert abs(e.delay_samples - delay) < 5 * e.std_samples + 1e-9
        assert e.delay_s == pytest.approx(e.delay_samples / fs)
        assert e.psr_db > 6
        assert e.std_samples < 0.05


def test_rmse_reaches_crb_flat_band():
    rng = np.random.default_rng(11)
    n, snr_db, delay = 1024, 10.0, 3.37
    errs, stds = [], []
    for _ in range(200):
        x1, x2 = delayed_pair(rng, n, delay, snr_db)
        e = estimate_delay(x1, x2, 1.0, weighting="plain")
        errs.append(e.delay_samples - delay)
        stds.append(e.std_samples)
    rmse = np.sqrt(np.mean(np.square(errs)))
    crb = np.sqrt(delay_crb_flat(10 ** (snr_db / 10), n))
    assert rmse < 1.3 * crb
    assert rmse > 0.7 * crb  # an error below the bound would mean a wrong test or bound
    assert np.mean(stds) == pytest.approx(crb, rel=0.15)


def test_ml_weighting_reaches_crb_band_limited():
    rng = np.random.default_rng(12)
    n, snr_db, band, delay = 4096, 10.0, 0.4, -5.62
    errs, snrs, stds = [], [], []
    for _ in range(150):
        x1, x2 = delayed_pair(rng, n, delay, snr_db, band)
        e = estimate_delay(x1, x2, 1.0, weighting="ml")
        errs.append(e.delay_samples - delay)
        snrs.append(e.snr_db)
        stds.append(e.std_samples)
    rmse = np.sqrt(np.mean(np.square(errs)))
    crb = np.sqrt(delay_crb_bandlimited(10 ** (snr_db / 10), n, band))
    assert rmse < 1.3 * crb
    assert np.mean(stds) == pytest.approx(rmse, rel=0.25)
    # per-sample SNR over the whole capture band: in-band SNR times the band fraction
    assert np.mean(snrs) == pytest.approx(snr_db + 10 * np.log10(band), abs=0.3)


def test_phat_predicted_std_is_honest_for_band_limited_signal():
    # PHAT weights the noise-only bins as much as the signal: far above the CRB, and it says so.
    rng = np.random.default_rng(13)
    errs, stds, crbs = [], [], []
    for _ in range(100):
        x1, x2 = delayed_pair(rng, 4096, 1.3, 10.0, 0.4)
        e = estimate_delay(x1, x2, 1.0, weighting="phat")
        errs.append(e.delay_samples - 1.3)
        stds.append(e.std_samples)
        crbs.append(e.crb_std_s)
    rmse = np.sqrt(np.mean(np.square(errs)))
    assert np.mean(stds) > 4 * np.mean(crbs)
    assert 0.6 < np.mean(stds) / rmse < 1.6


def test_real_signals():
    rng = np.random.default_rng(14)
    n, d = 8192, 7.25
    f = np.fft.fftfreq(n)
    s = rng.standard_normal(n)
    s2 = np.real(np.fft.ifft(np.fft.fft(s) * np.exp(-2j * np.pi * f * d)))
    e = estimate_delay(
        s + 0.3 * rng.standard_normal(n), s2 + 0.3 * rng.standard_normal(n), 1.0, weighting="plain"
    )
    assert abs(e.delay_samples - d) < 5 * e.std_samples
    assert e.snr_db == pytest.approx(10 * np.log10(1 / 0.09), abs=0.5)


def test_max_delay_limits_the_search():
    rng = np.random.default_rng(15)
    x1, x2 = delayed_pair(rng, 2048, 300.0, 10.0)
    assert abs(estimate_delay(x1, x2, 1.0).delay_samples - 300.0) < 0.05
    limited = estimate_delay(x1, x2, 1.0, max_delay_s=50.0)
    assert abs(limited.delay_samples) <= 51
    assert limited.psr_db < 6  # no real peak inside the window: a low quality figure


@pytest.mark.parametrize(
    "args, message",
    [
        ((np.ones(100), np.ones(90)), "lengths differ"),
        ((np.ones(8), np.ones(8)), "at least 16"),
        ((np.r_[np.ones(99), np.nan], np.ones(100)), "non-finite"),
        ((np.ones((2, 50)), np.ones((2, 50))), "one-dimensional"),
    ],
)
def test_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        estimate_delay(*args, 1.0)
    with pytest.raises(ValueError, match="weighting"):
        estimate_delay(np.ones(64), np.ones(64), 1.0, weighting="scot")


def test_clock_offsets_from_reference_transmitter():
    rng = np.random.default_rng(16)
    fs = 20e6
    nodes = np.array([[0.0, 0.0], [4000.0, 300.0], [1500.0, 5200.0], [-2500.0, 2500.0]])
    tx = np.array([800.0, 1900.0])
    clock_s = np.array([0.0, 130e-9, -420e-9, 75e-9])  # node clock minus node 0's clock
    rng_m = np.linalg.norm(nodes - tx, axis=1)
    arrival_samples = (rng_m / SPEED_OF_LIGHT_M_S + clock_s) * fs
    arrival_samples -= arrival_samples[0]
    n = 8192
    f = np.fft.fftfreq(n)
    spec = np.fft.fft(cnoise(rng, n))
    caps = np.array(
        [
            np.fft.ifft(spec * np.exp(-2j * np.pi * f * d)) + 0.3 * cnoise(rng, n)
            for d in arrival_samples
        ]
    )
    sync, estimates = sync_to_reference(caps, fs, nodes, tx, max_delay_s=20e-6)
    assert estimates[0] is None
    assert np.all(np.abs(sync.offsets_s - clock_s) < 5 * sync.std_s + 1e-15)
    assert np.all(sync.std_s[1:] < 1e-9)
    # correcting a delay between nodes 2 and 1 removes both offsets
    raw = 1e-6 + clock_s[2] - clock_s[1]
    assert sync.correct(raw, 2, against=1) == pytest.approx(1e-6, abs=3e-9)
    with pytest.raises(ValueError, match="mismatched lengths"):
        clock_offsets(nodes, tx, np.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        clock_offsets(nodes, tx, np.array([0, np.nan, 0, 0]))


@pytest.mark.parametrize("weighting", ["plain", "ml"])
@pytest.mark.parametrize("gain", [0.3, 3.0])
def test_predicted_std_honest_with_unequal_channel_gains(weighting, gain):
    """Two receivers with different gains (one channel scaled, its noise with it): the cross-
    spectrum is gain * S while the auto-spectra are S + N and gain^2 (S + N), so a noise
    estimate A - S that assumes equal gains is wrong; the predicted std must still match."""
    rng = np.random.default_rng(17)
    errs, stds = [], []
    for _ in range(120):
        x1, x2 = delayed_pair(rng, 4096, 2.6, 15.0, band_fraction=0.4)
        e = estimate_delay(x1, gain * x2, 1.0, weighting, max_delay_s=20)
        errs.append(e.delay_samples - 2.6)
        stds.append(e.std_samples)
    rmse = float(np.sqrt(np.mean(np.square(errs))))
    assert 0.75 < np.mean(stds) / rmse < 1.3, (np.mean(stds), rmse)
