#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""df.locate: TDOA, RSS, bearing and hybrid fixes against positions with exactly computed measurements."""

import json

import numpy as np
import pytest
from gnuradio.drift.df import (
    SPEED_OF_LIGHT_M_S,
    GeoOrigin,
    likelihood_geojson,
    likelihood_png,
    locate_hybrid,
    locate_rss,
    locate_tdoa,
    tdoa_likelihood_grid,
    triangulate_bearings,
)

SENSORS = np.array([[0.0, 0.0], [9000.0, 500.0], [4000.0, 8500.0], [-1000.0, 7000.0]])
TRUTH = np.array([3100.0, 4200.0])


def exact_tdoas(p, sensors, ref=0):
    r = np.linalg.norm(sensors - p, axis=1)
    return np.delete(r - r[ref], ref) / SPEED_OF_LIGHT_M_S


def test_exact_tdoas_give_the_position_2d_and_3d():
    fix = locate_tdoa(SENSORS, exact_tdoas(TRUTH, SENSORS), tdoa_std_s=20e-9)
    assert np.allclose(fix.position_enu_m, TRUTH, atol=1e-3)
    assert fix.chi2 < 1e-6 and fix.dof == 1
    s3 = np.vstack([np.c_[SENSORS, [0.0, 40.0, 300.0, 15.0]], [5000.0, 5000.0, 900.0]])
    t3 = np.array([3100.0, 4200.0, 60.0])
    fix3 = locate_tdoa(s3, exact_tdoas(t3, s3, ref=2), tdoa_std_s=1e-9, ref_sensor=2)
    assert np.allclose(fix3.position_enu_m, t3, atol=1e-2)
    assert fix3.covariance_m2.shape == (3, 3)


def test_20ns_errors_position_and_ellipse_coverage():
    rng = np.random.default_rng(20)
    exact = exact_tdoas(TRUTH, SENSORS)
    inside, errors = 0, []
    trials = 300
    for _ in range(trials):
        fix = locate_tdoa(SENSORS, exact + rng.normal(0, 20e-9, 3), tdoa_std_s=20e-9)
        errors.append(np.linalg.norm(fix.position_enu_m - TRUTH))
        inside += bool(fix.ellipse.contains(TRUTH))
    assert np.max(errors) < 30.0
    assert 0.90 <= inside / trials <= 0.98
    # the stated covariance matches the scatter
    assert fix.ellipse.semi_major_m > fix.ellipse.semi_minor_m > 0
    assert 0 <= fix.ellipse.orientation_deg < 180


def test_three_sensors_unique_and_ambiguous():
    s = SENSORS[:3]
    inside = np.array([3000.0, 3000.0])
    fix = locate_tdoa(s, exact_tdoas(inside, s), tdoa_std_s=10e-9)
    assert np.allclose(fix.position_enu_m, inside, atol=1e-2)
    far = np.array([20000.0, -5000.0])
    with pytest.raises(ValueError, match="ambiguous"):
        locate_tdoa(s, exact_tdoas(far, s), tdoa_std_s=10e-9)
    fix = locate_tdoa(
        s, exact_tdoas(far, s), tdoa_std_s=10e-9, initial_enu_m=np.array([15000.0, -3000.0])
    )
    assert np.allclose(fix.position_enu_m, far, atol=1.0)


def test_emitter_at_the_centre_of_a_square():
    # every TDOA is zero: Chan's matrix is singular, the other closed form carries it
    sq = np.array([[0.0, 0.0], [1e4, 0.0], [1e4, 1e4], [0.0, 1e4]])
    fix = locate_tdoa(sq, np.zeros(3), tdoa_std_s=10e-9)
    assert np.allclose(fix.position_enu_m, [5e3, 5e3], atol=1e-3)


@pytest.mark.parametrize(
    "sensors, tdoas, message",
    [
        (
            np.array([[0.0, 0.0], [1000.0, 0.0], [2500.0, 0.0], [5000.0, 0.0]]),
            np.zeros(3),
            "collinear",
        ),
        (np.array([[0, 0, 0], [1e3, 0, 0], [0, 1e3, 0], [1e3, 1e3, 0.0]]), np.zeros(3), "coplanar"),
        (SENSORS[:2], np.zeros(1), "too few sensors"),
        (SENSORS, np.zeros(2), "mismatched lengths"),
        (SENSORS, np.array([1e-6, np.nan, 0.0]), "non-finite TDOA"),
        (np.r_[SENSORS[:3], [[np.nan, 0.0]]], np.zeros(3), "non-finite sensor"),
        (np.r_[SENSORS[:3], SENSORS[:1]], np.zeros(3), "coincident sensors"),
        (
            SENSORS,
            np.array([1e-3, 0.0, 0.0]),
            "inconsistent with the sensor geometry: the "
            "TDOA of sensor 1 against sensor 0 is 1000 us but the light time between them is "
            "only 30.07 us",
        ),
    ],
)
def test_bad_geometry_and_input_raise(sensors, tdoas, message):
    with pytest.raises(ValueError, match=message):
        locate_tdoa(sensors, tdoas, tdoa_std_s=20e-9)


def test_tdoas_past_the_baselines_within_a_loose_std_are_refused_not_fixed_at_infinity():
    # millisecond range differences with a millisecond std (clock offsets left in, NTP-grade
    # uncertainty): within 5 sigma, but the fit runs off along an asymptote
    with pytest.raises(
        ValueError,
        match="inconsistent with the sensor geometry.*the fit ran off to .* km from the sensors",
    ):
        locate_tdoa(SENSORS, np.array([-3e-3, 1e-3, 2.5e-3]), tdoa_std_s=7e-3)


def test_tdoa_at_the_baseline_within_its_noise_is_accepted():
    # an emitter beyond sensor 1 on the line from sensor 0: |range difference| = the baseline,
    # and noise pushes it past; a fix, not a refusal
    beyond = SENSORS[1] + 0.3 * (SENSORS[1] - SENSORS[0])
    t = exact_tdoas(beyond, SENSORS)
    fix = locate_tdoa(SENSORS, t + np.array([3 * 20e-9, 0, 0]), tdoa_std_s=20e-9)
    assert np.all(np.isfinite(fix.position_enu_m))


def test_uncertainty_is_required_and_checked():
    t = exact_tdoas(TRUTH, SENSORS)
    with pytest.raises(ValueError, match="uncertainty"):
        locate_tdoa(SENSORS, t)
    with pytest.raises(ValueError, match="positive definite"):
        locate_tdoa(SENSORS, t, tdoa_std_s=0.0)
    with pytest.raises(ValueError, match="mismatched"):
        locate_tdoa(SENSORS, t, tdoa_std_s=[1e-8, 1e-8])


def test_full_covariance_with_shared_reference_error():
    # per-sensor timing errors: TDOAs against sensor 0 share its error
    rng = np.random.default_rng(21)
    sigma = 15e-9
    cov = sigma**2 * (np.eye(3) + np.ones((3, 3)))
    exact = exact_tdoas(TRUTH, SENSORS)
    m2 = []
    for _ in range(200):
        t_arr = rng.normal(0, sigma, 4)
        fix = locate_tdoa(SENSORS, exact + t_arr[1:] - t_arr[0], tdoa_cov_s2=cov)
        d = fix.position_enu_m - TRUTH
        m2.append(d @ np.linalg.solve(fix.covariance_m2, d))
    assert 1.6 < np.mean(m2) < 2.4  # chi2 with 2 dof has mean 2


def test_likelihood_map_geojson_png():
    t = exact_tdoas(TRUTH, SENSORS)
    east = np.linspace(2900, 3300, 81)
    north = np.linspace(4000, 4400, 81)
    grid = tdoa_likelihood_grid(SENSORS, t, east, north, tdoa_std_s=20e-9)
    iy, ix = np.unravel_index(np.argmax(grid.probability), grid.probability.shape)
    assert abs(east[ix] - TRUTH[0]) <= 5 and abs(north[iy] - TRUTH[1]) <= 5
    assert grid.probability.sum() == pytest.approx(1.0)
    fix = locate_tdoa(SENSORS, t, tdoa_std_s=20e-9)
    origin = GeoOrigin(48.137, 11.575, 520.0)
    gj = json.loads(json.dumps(likelihood_geojson(grid, origin, sensors_enu_m=SENSORS, fix=fix)))
    kinds = [f["properties"]["kind"] for f in gj["features"]]
    assert gj["type"] == "FeatureCollection"
    assert kinds.count("sensor") == 4 and "estimate" in kinds and "confidence_ellipse" in kinds
    cells = [f for f in gj["features"] if f["properties"]["kind"] == "likelihood_cell"]
    assert 0.99 <= sum(f["properties"]["probability"] for f in cells) <= 1.0 + 1e-9
    est = next(f for f in gj["features"] if f["properties"]["kind"] == "estimate")
    lat, lon, _ = origin.to_geodetic(TRUTH)
    assert est["geometry"]["coordinates"][0] == pytest.approx(float(lon), abs=1e-6)
    assert est["geometry"]["coordinates"][1] == pytest.approx(float(lat), abs=1e-6)
    png = likelihood_png(grid, SENSORS, fix, TRUTH, title="test")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_geodetic_round_trip():
    origin = GeoOrigin(48.137, 11.575, 520.0)
    enu = np.array([[1234.5, -987.6, 12.0], [-5000.0, 7000.0, -3.0]])
    lat, lon, alt = origin.to_geodetic(enu)
    assert np.allclose(origin.to_enu(lat, lon, alt), enu, atol=1e-6)
    # 1 km north is about 1/111 of a degree of latitude
    lat1, _, _ = origin.to_geodetic(np.array([0.0, 1000.0]))
    assert float(lat1) - 48.137 == pytest.approx(1000 / 111_200, rel=0.01)


def test_rss_fit():
    sensors = np.r_[SENSORS, [[6000.0, 6000.0]]]
    d = np.linalg.norm(sensors - TRUTH, axis=1)
    rss = -25.0 - 10 * 3.2 * np.log10(d)
    fix = locate_rss(sensors, rss, shadowing_std_db=2.0)
    assert np.linalg.norm(fix.position_enu_m - TRUTH) < 1.0
    assert fix.path_loss_exponent == pytest.approx(3.2, abs=1e-3)
    assert fix.p0_dbm == pytest.approx(-25.0, abs=0.05)
    fix_n = locate_rss(sensors, rss, path_loss_exponent=3.2, shadowing_std_db=2.0)
    assert np.linalg.norm(fix_n.position_enu_m - TRUTH) < 1.0
    # with a shadowing of 2 dB the ellipse is hundreds of metres, not zero
    assert 10 < fix_n.ellipse.semi_major_m < 5000
    with pytest.raises(ValueError, match="shadowing"):
        locate_rss(sensors[:4], rss[:4])
    with pytest.raises(ValueError, match="too few"):
        locate_rss(sensors[:3], rss[:3])


def test_rss_shadowing_within_ellipse_scale():
    rng = np.random.default_rng(22)
    sensors = np.array(
        [[0, 0], [9e3, 0], [9e3, 9e3], [0, 9e3], [4.5e3, 4.5e3], [2e3, 7e3]], dtype=float
    )
    truth = np.array([5200.0, 3100.0])
    d = np.linalg.norm(sensors - truth, axis=1)
    errs = []
    for _ in range(30):
        rss = -30 - 30 * np.log10(d) + rng.normal(0, 1.0, len(d))
        fix = locate_rss(sensors, rss, path_loss_exponent=3.0, shadowing_std_db=1.0)
        errs.append(np.linalg.norm(fix.position_enu_m - truth))
    assert np.median(errs) < 600


@pytest.mark.parametrize("known", [True, False])
def test_rss_ellipse_coverage(known):
    """1 dB log-normal shadowing, 6 sensors: the truth inside the 95 % ellipse 90-98 % of the
    time, with the shadowing known, and estimated from the residuals with the exponent too (2
    degrees of freedom: the F-based region; the chi-square one would hold about 70 %)."""
    rng = np.random.default_rng(24)
    sensors = np.array(
        [[0, 0], [9e3, 0], [9e3, 9e3], [0, 9e3], [4.5e3, 4.5e3], [2e3, 7e3]], dtype=float
    )
    truth = np.array([5200.0, 3100.0])
    d = np.linalg.norm(sensors - truth, axis=1)
    trials, inside, inside_chi2 = 250, 0, 0
    for _ in range(trials):
        rss = -30 - 30 * np.log10(d) + rng.normal(0, 1.0, len(d))
        if known:
            fix = locate_rss(sensors, rss, path_loss_exponent=3.0, shadowing_std_db=1.0)
        else:
            fix = locate_rss(sensors, rss)
        inside += bool(fix.ellipse.contains(truth))
        dd = fix.position_enu_m - truth
        inside_chi2 += bool(dd @ np.linalg.solve(fix.covariance_m2, dd) <= 5.991)
    assert 0.90 <= inside / trials <= 0.98, inside / trials
    if known:
        assert fix.ellipse.scale_dof is None
    else:
        assert fix.ellipse.scale_dof == 2 and inside_chi2 / trials < 0.85
        assert fix.ellipse.radius2 == pytest.approx(2 * 19.0, rel=1e-6)  # 2 F(0.95; 2, 2)


def test_bearing_triangulation():
    rng = np.random.default_rng(23)
    nodes = np.array([[0.0, 0.0], [8000.0, 1000.0], [3000.0, -4000.0]])
    truth = np.array([3000.0, 6000.0])
    az = np.rad2deg(np.arctan2(truth[0] - nodes[:, 0], truth[1] - nodes[:, 1]))
    fix = triangulate_bearings(nodes, az, 1.0)
    assert np.allclose(fix.position_enu_m, truth, atol=1e-3)
    inside = 0
    for _ in range(200):
        f = triangulate_bearings(nodes, az + rng.normal(0, 1.0, 3), 1.0)
        inside += bool(f.ellipse.contains(truth))
    assert 0.88 <= inside / 200 <= 0.99
    with pytest.raises(ValueError, match="parallel"):
        triangulate_bearings(nodes[:2], [10.0, 10.0], 1.0)
    with pytest.raises(ValueError, match="behind"):
        triangulate_bearings(nodes[:2], (az[:2] + 180) % 360, 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        triangulate_bearings(nodes[:1], az[:1], 1.0)


def _azimuths(p, sensors):
    return np.rad2deg(np.arctan2(p[0] - sensors[:, 0], p[1] - sensors[:, 1])) % 360.0


HY_TDOA = np.array([[0.0, -3000.0], [-2500.0, 2500.0], [2500.0, 2500.0]])
HY_ARRAYS = np.array([[-3000.0, 0.0], [3000.0, 0.0]])
HY_TRUTH = np.array([400.0, 3600.0])


def test_hybrid_exact_and_minimal():
    """Exact TDOAs and bearings give the position. One TDOA (a hyperbola) and one bearing
    (a ray) are enough where the ray crosses the hyperbola's branch once; where it crosses
    twice, both points fit and the fix says so, unless a prior guess picks one."""
    t = exact_tdoas(HY_TRUTH, HY_TDOA)
    az = _azimuths(HY_TRUTH, HY_ARRAYS)
    fix = locate_hybrid(HY_TDOA, t, np.diag([1e-16] * 2), HY_ARRAYS, az, 0.5)
    assert np.allclose(fix.position_enu_m, HY_TRUTH, atol=1e-3)
    assert fix.dof == 2 and fix.method == "hybrid"
    outcomes = []
    for arr in HY_ARRAYS:
        args = (HY_TDOA[:2], t[:1], [[1e-16]], arr[None], _azimuths(HY_TRUTH, arr[None]), 0.5)
        try:
            one = locate_hybrid(*args)
            outcomes.append("unique")
        except ValueError as exc:
            assert "ambiguous" in str(exc), exc
            assert "[400.0, 3600.0]" in str(exc), exc  # the truth is one of the two
            one = locate_hybrid(*args, initial_enu_m=HY_TRUTH + [300.0, -200.0])
            outcomes.append("ambiguous")
        assert np.allclose(one.position_enu_m, HY_TRUTH, atol=1e-2), arr
        assert one.dof == 0
    assert sorted(outcomes) == ["ambiguous", "unique"], outcomes


def test_hybrid_weights_each_kind_by_its_variance_and_covers_the_truth():
    """Noisy TDOAs (30 ns) and bearings (0.1 deg), 300 draws: the hybrid fix's stated
    covariance matches the scatter of its fixes about the truth, its 95 % ellipse holds the
    truth about 95 % of the time, and its ellipse is smaller than the TDOA-only and the
    bearing-only fixes' from the same draws (and those fixes scatter more)."""
    rng = np.random.default_rng(7)
    sd_t, sd_b = 30e-9, 0.1
    cov_t = np.diag([sd_t**2] * 2)
    t0 = exact_tdoas(HY_TRUTH, HY_TDOA)
    az0 = _azimuths(HY_TRUTH, HY_ARRAYS)
    errs, inside, areas = [], 0, {"hybrid": [], "tdoa": [], "aoa": []}
    scatter = {"tdoa": [], "aoa": []}
    for _ in range(300):
        t = t0 + rng.normal(0, sd_t, 2)
        az = az0 + rng.normal(0, sd_b, 2)
        h = locate_hybrid(HY_TDOA, t, cov_t, HY_ARRAYS, az, sd_b)
        td = locate_tdoa(HY_TDOA, t, tdoa_cov_s2=cov_t, initial_enu_m=h.position_enu_m)
        ao = triangulate_bearings(HY_ARRAYS, az, sd_b)
        errs.append(h.position_enu_m - HY_TRUTH)
        inside += bool(h.ellipse.contains(HY_TRUTH))
        for name, f in (("hybrid", h), ("tdoa", td), ("aoa", ao)):
            areas[name].append(f.ellipse.semi_major_m * f.ellipse.semi_minor_m)
        scatter["tdoa"].append(td.position_enu_m - HY_TRUTH)
        scatter["aoa"].append(ao.position_enu_m - HY_TRUTH)
    errs = np.array(errs)
    empirical = np.cov(errs.T)
    stated = h.covariance_m2
    # the scatter's variance along each axis within 20 % of the stated (300 draws: ~8 %)
    assert np.allclose(np.diag(empirical), np.diag(stated), rtol=0.2), (empirical, stated)
    assert 0.91 <= inside / 300 <= 0.99, inside
    assert np.median(areas["hybrid"]) < 0.8 * min(np.median(areas["tdoa"]), np.median(areas["aoa"]))
    mse = {k: float(np.mean(np.sum(np.array(v) ** 2, axis=1))) for k, v in scatter.items()}
    assert float(np.mean(np.sum(errs**2, axis=1))) < min(mse.values()), mse


def test_hybrid_refuses_what_it_cannot_fix():
    t = exact_tdoas(HY_TRUTH, HY_TDOA)
    az = _azimuths(HY_TRUTH, HY_ARRAYS)
    cov = np.diag([1e-16] * 2)
    with pytest.raises(ValueError, match="2 or more timing sensors and 1 or more bearings"):
        locate_hybrid(HY_TDOA[:1], [], np.zeros((0, 0)), HY_ARRAYS, az, 0.5)
    with pytest.raises(ValueError, match="3 timing sensors need 2 TDOAs"):
        locate_hybrid(HY_TDOA, t[:1], cov, HY_ARRAYS, az, 0.5)
    with pytest.raises(ValueError, match="2 bearing sensors but 1 bearings"):
        locate_hybrid(HY_TDOA, t, cov, HY_ARRAYS, az[:1], 0.5)
    with pytest.raises(ValueError, match="standard deviation must be > 0"):
        locate_hybrid(HY_TDOA, t, cov, HY_ARRAYS, az, 0.0)
    # bearings pointing away from where the TDOAs place the emitter: nothing in front fits
    # well, and what fits is not hidden as a confident answer
    with pytest.raises(
        ValueError, match="in front of every bearing|ran off|ambiguous|not determined"
    ):
        locate_hybrid(HY_TDOA[:2], t[:1], [[1e-16]], HY_ARRAYS[:1], [270.0], 0.5)
