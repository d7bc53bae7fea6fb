#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""df.aoa: bearings from simulated array snapshots, root-MUSIC, triangulation (calibration:
qa_calibration)."""

import numpy as np
import pytest
from gnuradio.drift.df import (
    METHODS,
    bearing_crb_std_deg,
    estimate_bearings,
    estimate_n_sources,
    root_music,
    spatial_covariance,
    steering_vectors,
    triangulate_bearings,
    uca_positions,
    ula_positions,
)

UCA = uca_positions(5, 0.425)
ULA = ula_positions(5, 0.5)


def cnoise(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def snapshots(rng, positions, azimuth_deg, snr_db, n, gains=None):
    """Element signals of uncorrelated Gaussian sources plus unit white noise per element
    (the noise enters before the channel gains, as thermal noise does)."""
    a = steering_vectors(positions, azimuth_deg)
    x = a @ (cnoise(rng, a.shape[1], n) * 10 ** (snr_db / 20)) + cnoise(rng, a.shape[0], n)
    return x if gains is None else gains[:, None] * x


def wrap(d):
    return (np.asarray(d) + 180.0) % 360.0 - 180.0


def test_steering_geometry():
    # broadside on a ULA: equal phases; along the axis: half a wavelength = pi per element
    assert np.allclose(steering_vectors(ULA, 0.0)[:, 0], 1.0)
    ph = np.angle(steering_vectors(ULA, 90.0)[:, 0])
    assert np.allclose(np.abs(wrap(np.rad2deg(np.diff(ph)))), 180.0)
    assert np.allclose(np.linalg.norm(UCA, axis=1), 0.425)


@pytest.mark.parametrize("method", METHODS)
def test_uca_bearing_10db_256_snapshots(method):
    rng = np.random.default_rng(30)
    for az in (0.0, 137.3, 251.9, 359.4):
        res = estimate_bearings(snapshots(rng, UCA, az, 10.0, 256), UCA, method)
        b = res.bearings[0]
        assert abs(wrap(b.azimuth_deg - az)) < 1.0
        assert b.snr_db == pytest.approx(10.0, abs=1.0)
        assert 0.05 < b.std_deg < 0.5
        assert res.spectrum_db.max() == 0.0


def test_music_rmse_near_crb():
    rng = np.random.default_rng(31)
    az = 75.0
    errs = [
        wrap(
            estimate_bearings(snapshots(rng, UCA, az, 10.0, 256), UCA).bearings[0].azimuth_deg - az
        )
        for _ in range(150)
    ]
    crb = bearing_crb_std_deg(UCA, az, 10.0, 256)[0]
    rmse = np.sqrt(np.mean(np.square(errs)))
    assert 0.7 * crb < rmse < 1.3 * crb


def test_ula_half_plane_and_root_music():
    rng = np.random.default_rng(32)
    for az in (-61.0, -5.5, 23.4, 70.0):
        x = snapshots(rng, ULA, az, 10.0, 256)
        res = estimate_bearings(x, ULA, "music")
        assert abs(res.bearings[0].azimuth_deg - az) < 1.0
        assert res.azimuth_grid_deg[0] == -90 and res.azimuth_grid_deg[-1] == 90
        assert abs(root_music(spatial_covariance(x), 0.5)[0] - az) < 1.0


def test_two_sources():
    rng = np.random.default_rng(33)
    x = snapshots(rng, UCA, [40.0, 200.0], 15.0, 512)
    assert estimate_n_sources(spatial_covariance(x), 512) == 2
    res = estimate_bearings(x, UCA, "music", n_sources=2)
    got = sorted(b.azimuth_deg for b in res.bearings)
    assert np.allclose(got, [40.0, 200.0], atol=1.5)
    x1 = snapshots(rng, ULA, [-20.0, 35.0], 15.0, 512)
    assert np.allclose(root_music(spatial_covariance(x1), 0.5, n_sources=2), [-20, 35], atol=1.5)


def test_two_arrays_triangulate():
    """Two UCAs' MUSIC bearings (10 dB, 256 snapshots) with their CRB std, triangulated: the
    truth inside the fix's 95 % ellipse 90-99 % of the time over independent draws."""
    rng = np.random.default_rng(34)
    nodes = np.array([[0.0, 0.0], [6000.0, -1000.0]])
    emitter = np.array([2500.0, 4000.0])
    az_true = np.rad2deg(np.arctan2(emitter[0] - nodes[:, 0], emitter[1] - nodes[:, 1])) % 360
    trials, inside, errors = 200, 0, []
    for _ in range(trials):
        bearings = [
            estimate_bearings(snapshots(rng, UCA, az, 10.0, 256), UCA).bearings[0] for az in az_true
        ]
        fix = triangulate_bearings(
            nodes, [b.azimuth_deg for b in bearings], [b.std_deg for b in bearings]
        )
        errors.append(np.linalg.norm(fix.position_enu_m - emitter))
        inside += bool(fix.ellipse.contains(emitter))
    assert 0.90 <= inside / trials <= 0.99, inside / trials
    assert np.median(errors) < 100.0


def test_bad_snapshots():
    with pytest.raises(ValueError, match="non-finite"):
        estimate_bearings(np.full((5, 64), np.nan), UCA)
    with pytest.raises(ValueError, match="mismatched"):
        estimate_bearings(np.ones((4, 64)), UCA)
    with pytest.raises(ValueError, match="at least as many snapshots"):
        estimate_bearings(np.ones((5, 3)), UCA)
    with pytest.raises(ValueError, match="method"):
        estimate_bearings(np.ones((5, 64)) + 0j, UCA, method="esprit")
