#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Emitter localization in a local ENU frame (metres): TDOA, RSS, bearing triangulation, and
TDOAs with bearings together (locate_hybrid).

TDOA (locate_tdoa): measurements tdoa_s[k] = t(sensor k') - t(ref sensor), for the sensors
other than the reference in their order, with a covariance. Starting points come from closed
forms: Chan's two-step weighted least squares when the sensors overdetermine it (M >= D + 2),
and the spherical-intersection quadratic (range to the reference eliminated), which also
serves the minimal case M = D + 1 and yields both roots there. Each start is refined by
Gauss-Newton on the TDOA log-likelihood weighted by the inverse covariance; the position
covariance is the inverse Fisher information (J^T W J)^-1 at the solution.

Nothing returns a silently wrong position: too few sensors, mismatched lengths, non-finite
input, collinear (2-D) or coplanar (3-D) sensors, coincident sensors, a singular Fisher
information and two distinct positions that fit the data equally well (the ambiguity of the
minimal case) each raise ValueError saying which. An ambiguity is resolved by `initial_enu_m`
(a prior guess: the nearest fit wins) or by another sensor.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg, optimize, stats

from .geo import SPEED_OF_LIGHT_M_S, GeoOrigin


@dataclass(frozen=True)
class ConfidenceEllipse:
    """A horizontal (east, north) confidence ellipse."""

    center_enu_m: np.ndarray
    semi_major_m: float
    semi_minor_m: float
    orientation_deg: float  # azimuth of the major axis, clockwise from north, in [0, 180)
    confidence: float
    covariance_m2: np.ndarray  # the 2x2 east/north covariance it is drawn from
    # residual degrees of freedom when the covariance's scale was estimated from the residuals
    # (RSS with the shadowing estimated): the region is then F-based, not chi-square
    scale_dof: int | None = None

    @property
    def radius2(self):
        """The squared Mahalanobis radius of the ellipse: chi2(confidence, 2), or
        2 F(confidence; 2, scale_dof) for an estimated covariance scale."""
        return _radius2(self.confidence, self.scale_dof)

    def contains(self, point_enu_m):
        """True where the (east, north) points (..., >=2) lie inside the ellipse."""
        d = np.asarray(point_enu_m, dtype=float)[..., :2] - self.center_enu_m
        m2 = np.einsum("...i,ij,...j->...", d, np.linalg.inv(self.covariance_m2), d)
        return m2 <= self.radius2

    def polygon(self, n_points=72):
        """(n_points, 2) east/north vertices of the ellipse, closed (first = last)."""
        t = np.linspace(0, 2 * np.pi, n_points)
        az = np.deg2rad(self.orientation_deg)
        major = np.array([np.sin(az), np.cos(az)])
        minor = np.array([np.cos(az), -np.sin(az)])
        return (
            self.center_enu_m
            + np.outer(self.semi_major_m * np.cos(t), major)
            + np.outer(self.semi_minor_m * np.sin(t), minor)
        )


@functools.lru_cache(maxsize=64)
def _radius2(confidence, scale_dof):
    """The squared radius of the region (the same few values for every fix: kept)."""
    if scale_dof is None:
        return float(stats.chi2.ppf(confidence, 2))
    return float(2 * stats.f.ppf(confidence, 2, scale_dof))


def confidence_ellipse(center_enu_m, covariance_m2, confidence=0.95, scale_dof=None):
    """The ellipse of a position covariance's east/north block at a confidence level.

    scale_dof: when the covariance's scale (a noise variance) was estimated from residuals with
    that many degrees of freedom, the region uses 2 F(2, scale_dof) in place of chi2(2), which
    accounts for the estimate's own uncertainty (much larger for few degrees of freedom).
    """
    cov = np.asarray(covariance_m2, dtype=float)[:2, :2]
    cov = 0.5 * (cov + cov.T)
    vals, vecs = np.linalg.eigh(cov)
    if scale_dof is not None and not scale_dof >= 1:
        raise ValueError(f"scale_dof must be at least 1, got {scale_dof}")
    k2 = _radius2(float(confidence), None if scale_dof is None else float(scale_dof))
    major = vecs[:, 1]
    orient = np.rad2deg(np.arctan2(major[0], major[1])) % 180.0
    return ConfidenceEllipse(
        center_enu_m=np.asarray(center_enu_m, dtype=float)[:2].copy(),
        semi_major_m=float(np.sqrt(k2 * max(vals[1], 0.0))),
        semi_minor_m=float(np.sqrt(k2 * max(vals[0], 0.0))),
        orientation_deg=float(orient),
        confidence=confidence,
        covariance_m2=cov,
        scale_dof=None if scale_dof is None else int(scale_dof),
    )


@dataclass(frozen=True)
class PositionFix:
    """A position estimate with its covariance (from the Fisher information)."""

    position_enu_m: np.ndarray
    covariance_m2: np.ndarray
    ellipse: ConfidenceEllipse
    method: str
    chi2: float  # weighted squared residual at the solution
    dof: int  # measurements minus unknowns
    iterations: int
    start_enu_m: np.ndarray  # the closed-form start the refinement began from
    extra: dict = field(default_factory=dict)

    @property
    def p_value(self):
        """Probability of a chi2 this large under the model (nan when dof == 0)."""
        return float(stats.chi2.sf(self.chi2, self.dof)) if self.dof > 0 else float("nan")


def _sensors(sensors_enu_m, min_count, what):
    s = np.asarray(sensors_enu_m, dtype=float)
    if s.ndim != 2 or s.shape[1] not in (2, 3):
        raise ValueError(f"sensor positions must be (M, 2) or (M, 3) metres, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("non-finite sensor position (NaN or inf)")
    dim = s.shape[1]
    need = min_count(dim)
    if s.shape[0] < need:
        raise ValueError(
            f"too few sensors: {what} in {dim}-D needs at least {need}, got {s.shape[0]}"
        )
    dist = np.linalg.norm(s[:, None, :] - s[None, :, :], axis=-1)
    i, j = np.triu_indices(len(s), 1)
    close = dist[i, j] < 1e-6 * max(1.0, dist.max())
    if np.any(close):
        a, b = i[close][0], j[close][0]
        raise ValueError(f"coincident sensors: {a} and {b} share a position")
    return s, dim


def _check_spread(s, dim, what):
    """Raise for collinear sensors in 2-D (mirror ambiguity) and coplanar ones in 3-D."""
    centred = s - s.mean(axis=0)
    sv = np.linalg.svd(centred, compute_uv=False)
    if sv[dim - 1] <= 1e-6 * sv[0]:
        shape = "collinear" if dim == 2 else "coplanar"
        raise ValueError(
            f"degenerate geometry: the sensors are {shape}, so {what} cannot tell "
            f"the emitter from its mirror image; add a sensor off the "
            f"{'line' if dim == 2 else 'plane'}"
        )


def _tdoa_covariance(n_meas, tdoa_std_s, tdoa_cov_s2):
    if tdoa_cov_s2 is not None:
        if tdoa_std_s is not None:
            raise ValueError("give tdoa_std_s or tdoa_cov_s2, not both")
        q = np.asarray(tdoa_cov_s2, dtype=float)
        if q.shape != (n_meas, n_meas):
            raise ValueError(
                f"mismatched lengths: tdoa_cov_s2 must be ({n_meas}, {n_meas}), got {q.shape}"
            )
    else:
        if tdoa_std_s is None:
            raise ValueError("the TDOA uncertainty is needed: give tdoa_std_s or tdoa_cov_s2")
        sd = np.asarray(tdoa_std_s, dtype=float)
        if sd.ndim > 1 or (sd.ndim == 1 and sd.size != n_meas):
            raise ValueError(
                f"mismatched lengths: {n_meas} TDOAs but {sd.size} standard deviations"
            )
        q = np.diag(np.broadcast_to(sd, (n_meas,)) ** 2)
    if not np.all(np.isfinite(q)):
        raise ValueError("non-finite TDOA covariance")
    q = 0.5 * (q + q.T)
    try:
        chol = np.linalg.cholesky(q)
    except np.linalg.LinAlgError:
        raise ValueError(
            "the TDOA covariance must be positive definite (every standard deviation > 0)"
        ) from None
    return q, chol


class _TdoaModel:
    """Range differences to the reference sensor, whitened by the TDOA covariance."""

    def __init__(self, sensors, ref, tdoa_s, chol_s):
        self.sensors = sensors
        self.ref = ref
        self.others = np.array([i for i in range(len(sensors)) if i != ref])
        self.rd_m = np.asarray(tdoa_s) * SPEED_OF_LIGHT_M_S
        self.chol_m = chol_s * SPEED_OF_LIGHT_M_S  # range-difference covariance factor
        # whitening: the inverse of the Cholesky factor, once (the fit whitens a few dozen
        # times a position; a product is several times cheaper than a triangular solve call)
        self.white = linalg.solve_triangular(self.chol_m, np.eye(len(self.rd_m)), lower=True)

    def predict(self, p):
        """Range differences (..., M-1) for positions p (..., D)."""
        d = p[..., None, :] - self.sensors
        r = np.sqrt(np.einsum("...i,...i->...", d, d))
        return r[..., self.others] - r[..., self.ref, None]

    def whitened(self, p):
        res = self.rd_m - self.predict(p)
        return res @ self.white.T

    def cost(self, p):
        w = self.whitened(p)
        return np.sum(w * w, axis=-1)

    def jacobian(self, p):
        """d(range difference)/dp, (M-1, D), whitened."""
        diff = p - self.sensors
        u = diff / np.maximum(np.sqrt(np.einsum("ij,ij->i", diff, diff)), 1e-9)[:, None]
        j = u[self.others] - u[self.ref]
        return self.white @ j


def _gauss_newton(model, p0, max_iter=100):
    """Gauss-Newton with step halving on a model with whitened(), cost(), jacobian()."""
    p = np.array(p0, dtype=float)
    cost = model.cost(p)
    it = 0
    while it < max_iter:
        it += 1
        j = model.jacobian(p)
        r = model.whitened(p)
        step, *_ = np.linalg.lstsq(j, r, rcond=None)
        t = 1.0
        while t > 1e-6:
            cand = p + t * step
            c = model.cost(cand)
            if c <= cost:
                break
            t *= 0.5
        else:
            break
        moved = np.linalg.norm(p - cand)
        p, cost = cand, c
        if moved < 1e-9 * (1.0 + np.linalg.norm(p)):
            break
    return p, float(cost), it


def _fisher_cov(j_whitened, what):
    fim = j_whitened.T @ j_whitened
    sv = np.linalg.svd(fim, compute_uv=False)
    if sv[-1] <= 1e-12 * sv[0]:
        raise ValueError(
            f"degenerate geometry: the Fisher information of {what} is singular "
            f"at the solution (condition {sv[0] / max(sv[-1], 1e-300):.3g}); the "
            f"position is not determined"
        )
    return np.linalg.inv(fim)


def chan_tdoa(sensors_enu_m, rd_m, rd_cov_m2):
    """Chan's two-step WLS from range differences (needs M >= D + 2 sensors, reference 0).

    rd_m: (M-1,) ranges to sensors 1.. minus the range to sensor 0; rd_cov_m2 their covariance.
    Returns the list of candidate positions (step 1, and step 2 when it is well posed).
    """
    s = np.asarray(sensors_enu_m, dtype=float)
    dim = s.shape[1]
    s1 = s[0]
    g = np.column_stack([s[1:] - s1, rd_m])
    k = np.sum(s**2, axis=1)
    h = 0.5 * (k[1:] - k[0] - rd_m**2)
    psi = np.array(rd_cov_m2, dtype=float)
    z = None
    cov_z = None
    for _ in range(2):
        try:
            w = np.linalg.inv(psi)
            a = g.T @ w @ g
            if np.linalg.cond(a) > 1e12:
                return []
            cov_z = np.linalg.inv(a)
            z = cov_z @ g.T @ w @ h
        except np.linalg.LinAlgError:
            return []
        dist = np.linalg.norm(z[:dim] - s[1:], axis=1)
        b = np.diag(dist)
        psi = b @ rd_cov_m2 @ b + 1e-9 * np.eye(len(rd_m)) * np.trace(rd_cov_m2)
    out = [z[:dim]]
    # Step 2: use R1^2 = |p - s1|^2.
    d = z[:dim] - s1
    if z[dim] > 0 and np.all(np.abs(d) > 1e-3):
        b2 = np.diag(np.r_[d, z[dim]])
        psi2 = 4 * b2 @ cov_z @ b2
        g2 = np.vstack([np.eye(dim), np.ones((1, dim))])
        h2 = np.r_[d**2, z[dim] ** 2]
        try:
            w2 = np.linalg.inv(psi2)
            z2 = np.linalg.solve(g2.T @ w2 @ g2, g2.T @ w2 @ h2)
            if np.all(z2 >= 0):
                out.append(s1 + np.sign(d) * np.sqrt(z2))
        except np.linalg.LinAlgError:
            pass
    return out


def spherical_intersection(sensors_enu_m, rd_m):
    """Closed form with the range R to sensor 0 eliminated: p(R) = a + b R from the linear
    equations, then |p(R) - s0| = R, a quadratic in R. Returns 0, 1 or 2 candidate positions
    (M >= D + 1 sensors, reference 0)."""
    s = np.asarray(sensors_enu_m, dtype=float)
    s1 = s[0]
    g = s[1:] - s1
    k = np.sum((s - s1) ** 2, axis=1)
    h = 0.5 * (k[1:] - rd_m**2)
    pinv = np.linalg.pinv(g)
    a = pinv @ h
    b = -pinv @ rd_m
    qa = b @ b - 1.0
    qb = 2 * a @ b
    qc = a @ a
    if abs(qa) < 1e-12:
        roots = np.array([-qc / qb]) if abs(qb) > 0 else np.array([])
    else:
        disc = qb**2 - 4 * qa * qc
        if disc < 0:
            roots = np.array([-qb / (2 * qa)])
        else:
            sq = np.sqrt(disc)
            roots = np.array([(-qb + sq) / (2 * qa), (-qb - sq) / (2 * qa)])
    roots = roots[np.isfinite(roots) & (roots >= 0)]
    return [s1 + a + b * r for r in roots]


#: with TDOAs beyond their baselines, a fit farther than this many sensor spreads is refused
FAR_SPANS = 100.0


def _beyond_baselines(model, q_s2):
    """(worst excess in sigmas, description) of range differences larger than the baseline
    between their two sensors, which no position reproduces; None when there is none."""
    base = np.linalg.norm(model.sensors[model.others] - model.sensors[model.ref], axis=1)
    sigma_m = np.sqrt(np.diag(q_s2)) * SPEED_OF_LIGHT_M_S
    excess = np.abs(model.rd_m) - base
    if not np.any(excess > 0):
        return None
    k = int(np.argmax(excess / sigma_m))
    c = SPEED_OF_LIGHT_M_S
    return float(excess[k] / sigma_m[k]), (
        f"the TDOA of sensor {model.others[k]} against sensor {model.ref} is "
        f"{model.rd_m[k] / c * 1e6:.4g} us but the light time between them is only "
        f"{base[k] / c * 1e6:.4g} us (stated TDOA std {sigma_m[k] / c * 1e6:.3g} us): no "
        f"position has such range differences; are the clocks' offsets removed?"
    )


def _unambiguous(fits, cov, model, guess, what):
    """(fit, covariance): the best of `fits` (sorted by cost, each (cost, position, ...)),
    unless another distinct position fits as well (cost within 1 of it, farther than 10
    sigma + 1 m): then the one nearest `guess`, or ValueError naming both when there is no
    guess."""
    best = fits[0]
    spread = np.sqrt(np.max(np.linalg.eigvalsh(cov)))
    rivals = [
        f
        for f in fits[1:]
        if f[0] <= best[0] + 1.0 and np.linalg.norm(f[1] - best[1]) > 10 * spread + 1.0
    ]
    if not rivals:
        return best, cov
    if guess is None:
        raise ValueError(
            f"ambiguous {what} solution: positions {np.round(best[1], 1).tolist()} and "
            f"{np.round(rivals[0][1], 1).tolist()} m both fit; give initial_enu_m or add a "
            "sensor"
        )
    best = min([best, *rivals], key=lambda f: np.linalg.norm(f[1] - guess))
    return best, _fisher_cov(model.jacobian(best[1]), f"the {what} fit")


def locate_tdoa(
    sensors_enu_m,
    tdoa_s,
    tdoa_std_s=None,
    tdoa_cov_s2=None,
    ref_sensor=0,
    initial_enu_m=None,
    confidence=0.95,
):
    """Emitter position from TDOAs.

    sensors_enu_m: (M, 2) or (M, 3) sensor positions in metres (the dimension of the solution).
    tdoa_s: (M-1,) arrival time at each non-reference sensor (in sensor order) minus the
    arrival time at sensor `ref_sensor`. tdoa_std_s: scalar or (M-1,) independent standard
    deviations, or tdoa_cov_s2: their full (M-1, M-1) covariance (e.g. with a shared
    reference-channel error). initial_enu_m: an optional prior guess, used to pick between
    ambiguous solutions and as one more starting point.
    Returns a PositionFix; raises ValueError for bad input or geometry, and for TDOAs that
    exceed the light time between their sensors by more than 5 standard deviations (or, within
    that, when no position is determined: the fit fails or runs off beyond FAR_SPANS sensor
    spreads, as with clock offsets not removed); a fit 20,000 km away is always refused.
    """
    s, dim = _sensors(sensors_enu_m, lambda d: d + 1, "TDOA localization")
    m = len(s)
    if not 0 <= ref_sensor < m:
        raise ValueError(f"ref_sensor {ref_sensor} out of range for {m} sensors")
    t = np.asarray(tdoa_s, dtype=float)
    if t.ndim != 1 or t.size != m - 1:
        raise ValueError(
            f"mismatched lengths: {m} sensors need {m - 1} TDOAs (against the "
            f"reference sensor), got {t.size}"
        )
    if not np.all(np.isfinite(t)):
        raise ValueError("non-finite TDOA (NaN or inf)")
    q, chol = _tdoa_covariance(m - 1, tdoa_std_s, tdoa_cov_s2)
    _check_spread(s, dim, "TDOA")
    model = _TdoaModel(s, ref_sensor, t, chol)
    beyond = _beyond_baselines(model, q)
    if beyond is not None and beyond[0] > 5.0:
        raise ValueError(f"TDOAs inconsistent with the sensor geometry: {beyond[1]}")
    order = np.r_[ref_sensor, model.others]
    s_ref_first = s[order]
    rd_cov = q * SPEED_OF_LIGHT_M_S**2
    starts = []
    if m >= dim + 2:
        starts += chan_tdoa(s_ref_first, model.rd_m, rd_cov)
    starts += spherical_intersection(s_ref_first, model.rd_m)
    if initial_enu_m is not None:
        guess = np.asarray(initial_enu_m, dtype=float)
        if guess.shape != (dim,) or not np.all(np.isfinite(guess)):
            raise ValueError(f"initial_enu_m must be {dim} finite coordinates")
        starts.append(guess)
    if not starts:
        starts.append(s.mean(axis=0))
    fits = []
    for p0 in starts:
        p, cost, it = _gauss_newton(model, p0)
        if np.all(np.isfinite(p)):
            fits.append((cost, p, it, np.asarray(p0)))
    if not fits:
        raise ValueError("TDOA localization failed: no finite solution from any start")
    fits.sort(key=lambda f: f[0])
    best = fits[0]
    # range differences longer than the baselines pull the fit out along an asymptote: a
    # position that far is no position at all (and none on Earth is 20,000 km off)
    centre = s.mean(axis=0)
    far_m = float(np.linalg.norm(best[1] - centre))
    span_m = float(max(np.linalg.norm(a - b) for a in s for b in s))
    if far_m > 2e7 or (beyond is not None and far_m > FAR_SPANS * span_m):
        what = (
            f"TDOAs inconsistent with the sensor geometry: {beyond[1]}"
            if beyond is not None
            else "TDOA localization failed"
        )
        raise ValueError(
            f"{what} (the fit ran off to {far_m / 1e3:.3g} km from the sensors, "
            f"{far_m / span_m:.3g} times their spread: no position is determined)"
        )
    try:
        cov = _fisher_cov(model.jacobian(best[1]), "the TDOA fit")
    except ValueError as exc:
        if beyond is None:
            raise
        raise ValueError(
            f"TDOAs inconsistent with the sensor geometry: {beyond[1]} (the fit "
            f"found no determined position: {exc})"
        ) from None
    best, cov = _unambiguous(fits, cov, model, guess if initial_enu_m is not None else None, "TDOA")
    cost, p, it, p0 = best
    return PositionFix(
        position_enu_m=p,
        covariance_m2=cov,
        ellipse=confidence_ellipse(p, cov, confidence),
        method="tdoa",
        chi2=cost,
        dof=m - 1 - dim,
        iterations=it,
        start_enu_m=p0,
    )


@dataclass(frozen=True)
class LikelihoodGrid:
    """The TDOA likelihood over a horizontal grid (ENU metres)."""

    east_m: np.ndarray  # (nx,) cell centres
    north_m: np.ndarray  # (ny,)
    log_likelihood: np.ndarray  # (ny, nx), maximum 0
    probability: np.ndarray  # (ny, nx), normalized to sum 1 over the grid
    up_m: float


def tdoa_likelihood_grid(
    sensors_enu_m,
    tdoa_s,
    east_m,
    north_m,
    tdoa_std_s=None,
    tdoa_cov_s2=None,
    ref_sensor=0,
    up_m=0.0,
):
    """Gaussian TDOA log-likelihood over the grid east_m x north_m (at height up_m in 3-D)."""
    s, dim = _sensors(sensors_enu_m, lambda d: 3, "a TDOA likelihood map")
    t = np.asarray(tdoa_s, dtype=float)
    if t.shape != (len(s) - 1,) or not np.all(np.isfinite(t)):
        raise ValueError(
            f"mismatched lengths or non-finite TDOAs: {len(s)} sensors need "
            f"{len(s) - 1} finite TDOAs"
        )
    _, chol = _tdoa_covariance(len(s) - 1, tdoa_std_s, tdoa_cov_s2)
    model = _TdoaModel(s, ref_sensor, t, chol)
    e = np.asarray(east_m, dtype=float)
    n = np.asarray(north_m, dtype=float)
    ee, nn = np.meshgrid(e, n)
    pts = np.stack([ee, nn] + ([np.full_like(ee, up_m)] if dim == 3 else []), axis=-1)
    ll = -0.5 * model.cost(pts.reshape(-1, dim)).reshape(ee.shape)
    ll -= ll.max()
    prob = np.exp(ll)
    prob /= prob.sum()
    return LikelihoodGrid(east_m=e, north_m=n, log_likelihood=ll, probability=prob, up_m=up_m)


def likelihood_geojson(grid, origin: GeoOrigin, mass=0.999, sensors_enu_m=None, fix=None):
    """A GeoJSON FeatureCollection: one Polygon per grid cell among the most probable ones
    holding `mass` of the probability (property "probability", "log_likelihood"), plus Point
    features for the sensors and the estimate and a Polygon for its confidence ellipse."""
    p = grid.probability
    order = np.argsort(p, axis=None)[::-1]
    keep = order[: int(np.searchsorted(np.cumsum(p.ravel()[order]), mass)) + 1]
    iy, ix = np.unravel_index(keep, p.shape)
    de = np.diff(grid.east_m).mean() if grid.east_m.size > 1 else 1.0
    dn = np.diff(grid.north_m).mean() if grid.north_m.size > 1 else 1.0
    ce, cn = grid.east_m[ix], grid.north_m[iy]
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    ring_e = ce[:, None] + corners[None, :, 0] * de
    ring_n = cn[:, None] + corners[None, :, 1] * dn
    lat, lon, _ = origin.to_geodetic(
        np.stack([ring_e, ring_n, np.full_like(ring_e, grid.up_m)], axis=-1)
    )
    features = []
    for k in range(len(keep)):
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [np.column_stack([lon[k], lat[k]]).tolist()],
                },
                "properties": {
                    "kind": "likelihood_cell",
                    "probability": float(p[iy[k], ix[k]]),
                    "log_likelihood": float(grid.log_likelihood[iy[k], ix[k]]),
                },
            }
        )

    def point(enu, props):
        la, lo, al = origin.to_geodetic(np.asarray(enu, dtype=float))
        return {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [float(lo), float(la), float(al)]},
            "properties": props,
        }

    if sensors_enu_m is not None:
        for i, sp in enumerate(np.asarray(sensors_enu_m, dtype=float)):
            features.append(point(sp, {"kind": "sensor", "index": i}))
    if fix is not None:
        features.append(point(fix.position_enu_m, {"kind": "estimate", "method": fix.method}))
        la, lo, _ = origin.to_geodetic(fix.ellipse.polygon())
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [np.column_stack([lo, la]).tolist()],
                },
                "properties": {
                    "kind": "confidence_ellipse",
                    "confidence": fix.ellipse.confidence,
                    "semi_major_m": fix.ellipse.semi_major_m,
                    "semi_minor_m": fix.ellipse.semi_minor_m,
                    "orientation_deg": fix.ellipse.orientation_deg,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def likelihood_png(grid, sensors_enu_m=None, fix=None, truth_enu_m=None, title=None, dpi=100):
    """The likelihood map as PNG bytes (matplotlib's Agg canvas; no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 5.6), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ext = [grid.east_m[0], grid.east_m[-1], grid.north_m[0], grid.north_m[-1]]
    im = ax.imshow(
        np.maximum(grid.log_likelihood, -30),
        origin="lower",
        extent=ext,
        aspect="equal",
        cmap="viridis",
    )
    fig.colorbar(im, ax=ax, label="log-likelihood (max 0)")
    if sensors_enu_m is not None:
        sp = np.asarray(sensors_enu_m, dtype=float)
        ax.plot(sp[:, 0], sp[:, 1], "w^", markersize=8, label="sensors")
    if fix is not None:
        poly = fix.ellipse.polygon()
        ax.plot(poly[:, 0], poly[:, 1], "r-", lw=1, label=f"{fix.ellipse.confidence:.0%} ellipse")
        ax.plot(*fix.position_enu_m[:2], "r+", markersize=10, label="estimate")
    if truth_enu_m is not None:
        ax.plot(*np.asarray(truth_enu_m)[:2], "wx", markersize=8, label="truth")
    ax.set_xlabel("east (m)")
    ax.set_ylabel("north (m)")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


@dataclass(frozen=True)
class RssFix(PositionFix):
    """An RSS position fix with the fitted path-loss model (rss = p0 - 10 n log10(d / 1 m))."""

    p0_dbm: float = float("nan")  # received power 1 m from the emitter
    path_loss_exponent: float = float("nan")


def locate_rss(
    sensors_enu_m, rss_dbm, path_loss_exponent=None, shadowing_std_db=None, confidence=0.95
):
    """Emitter position from received signal strengths with a log-distance path-loss model.

    The emitter's power is unknown and fitted (p0_dbm, the power at 1 m); so is the exponent
    when path_loss_exponent is None. shadowing_std_db: the standard deviation of log-normal
    shadowing; None estimates it from the residuals (needs more sensors than unknowns).
    scipy.optimize.least_squares from several starts; the covariance is sigma^2 (J^T J)^-1.
    """
    fit_n = path_loss_exponent is None
    s, dim = _sensors(
        sensors_enu_m, lambda d: d + 1 + (1 if path_loss_exponent is None else 0), "RSS fitting"
    )
    rss = np.asarray(rss_dbm, dtype=float)
    if rss.shape != (len(s),):
        raise ValueError(f"mismatched lengths: {len(s)} sensors but {rss.size} RSS values")
    if not np.all(np.isfinite(rss)):
        raise ValueError("non-finite RSS value (NaN or inf)")
    _check_spread(s, dim, "RSS")
    n_unknown = dim + 1 + int(fit_n)
    dof = len(s) - n_unknown
    if shadowing_std_db is None and dof < 1:
        raise ValueError(
            f"too few sensors to estimate the shadowing from residuals ({len(s)} "
            f"sensors, {n_unknown} unknowns): give shadowing_std_db"
        )

    def unpack(x):
        return x[:dim], x[dim], (x[dim + 1] if fit_n else float(path_loss_exponent))

    def residual(x):
        p, p0, n = unpack(x)
        d = np.maximum(np.linalg.norm(s - p, axis=1), 1.0)
        return rss - (p0 - 10 * n * np.log10(d))

    lin = 10 ** ((rss - rss.max()) / 10)
    span = np.ptp(s, axis=0).max()
    starts = [
        np.sum(s * lin[:, None], axis=0) / lin.sum(),
        s[np.argmax(rss)] + 0.05 * span,
        s.mean(axis=0),
    ]
    n0 = 2.5 if fit_n else float(path_loss_exponent)
    best = None
    for p_start in starts:
        d0 = np.maximum(np.linalg.norm(s - p_start, axis=1), 1.0)
        p0_start = np.mean(rss + 10 * n0 * np.log10(d0))
        x0 = np.r_[p_start, p0_start, [n0] if fit_n else []]
        sol = optimize.least_squares(residual, x0, method="lm", x_scale="jac")
        if best is None or sol.cost < best.cost:
            best = sol
    res = best.fun
    sigma2 = shadowing_std_db**2 if shadowing_std_db is not None else res @ res / dof
    jac = best.jac
    cov_full = sigma2 * _fisher_cov(jac, "the RSS fit")
    p, p0, n = unpack(best.x)
    cov = cov_full[:dim, :dim]
    return RssFix(
        position_enu_m=p,
        covariance_m2=cov,
        ellipse=confidence_ellipse(
            p, cov, confidence, scale_dof=dof if shadowing_std_db is None else None
        ),
        method="rss",
        chi2=float(res @ res / sigma2) if sigma2 > 0 else 0.0,
        dof=dof,
        iterations=int(best.nfev),
        start_enu_m=np.asarray(starts[0]),
        p0_dbm=float(p0),
        path_loss_exponent=float(n),
    )


class _BearingModel:
    def __init__(self, sensors, az_rad, std_rad):
        self.sensors = sensors
        self.az = az_rad
        self.std = std_rad

    def whitened(self, p):
        d = p[..., None, :] - self.sensors
        pred = np.arctan2(d[..., 0], d[..., 1])
        return np.angle(np.exp(1j * (self.az - pred))) / self.std

    def cost(self, p):
        w = self.whitened(p)
        return np.sum(w * w, axis=-1)

    def jacobian(self, p):
        d = p - self.sensors
        r2 = np.maximum(np.sum(d**2, axis=1), 1e-12)
        return np.column_stack([d[:, 1] / r2, -d[:, 0] / r2]) / self.std[:, None]


def triangulate_bearings(sensors_enu_m, azimuth_deg, std_deg, confidence=0.95):
    """Emitter position (east, north) from bearings measured at several nodes.

    azimuth_deg: (M,) bearings clockwise from north; std_deg: their standard deviations
    (scalar or (M,)). Weighted least squares on the bearing lines, then Gauss-Newton on the
    angle residuals; covariance (J^T W J)^-1. Raises ValueError for fewer than 2 bearings,
    parallel bearings, or an intersection behind a node.
    """
    s = np.asarray(sensors_enu_m, dtype=float)
    if s.ndim != 2 or s.shape[1] not in (2, 3):
        raise ValueError(f"sensor positions must be (M, 2) or (M, 3) metres, got {s.shape}")
    s = s[:, :2]
    az = np.asarray(azimuth_deg, dtype=float)
    if az.shape != (len(s),):
        raise ValueError(f"mismatched lengths: {len(s)} sensors but {az.size} bearings")
    if len(s) < 2:
        raise ValueError(f"too few sensors: triangulation needs at least 2 bearings, got {len(s)}")
    sd = np.broadcast_to(np.asarray(std_deg, dtype=float), az.shape)
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(az)) and np.all(np.isfinite(sd))):
        raise ValueError("non-finite sensor position, bearing or standard deviation")
    if np.any(sd <= 0):
        raise ValueError("every bearing standard deviation must be > 0")
    a = np.deg2rad(az)
    sdr = np.deg2rad(sd)
    normal = np.column_stack([np.cos(a), -np.sin(a)])  # perpendicular to (sin a, cos a)
    rhs = np.sum(normal * s, axis=1)
    dirs = np.column_stack([np.sin(a), np.cos(a)])
    cross = np.abs(dirs[:, None, 0] * dirs[None, :, 1] - dirs[:, None, 1] * dirs[None, :, 0])
    if cross.max() < np.sin(np.deg2rad(1.0)):
        raise ValueError(
            "degenerate geometry: the bearings are parallel (within 1 degree), "
            "so they do not intersect"
        )
    w = 1.0 / sdr
    p, *_ = np.linalg.lstsq(normal * w[:, None], rhs * w, rcond=None)
    for _ in range(2):  # weight by the distance: a bearing error grows with range
        dist = np.maximum(np.linalg.norm(p - s, axis=1), 1.0)
        wd = 1.0 / (sdr * dist)
        p, *_ = np.linalg.lstsq(normal * wd[:, None], rhs * wd, rcond=None)
    start = p.copy()

    def check_ahead(q):
        ahead = np.sum((q - s) * dirs, axis=1)
        if np.any(ahead <= 0):
            bad = int(np.flatnonzero(ahead <= 0)[0])
            raise ValueError(
                f"bearings do not intersect in front of the nodes: the best "
                f"intersection lies behind node {bad}"
            )

    check_ahead(p)
    model = _BearingModel(s, a, sdr)
    p, cost, it = _gauss_newton(model, p)
    check_ahead(p)
    cov = _fisher_cov(model.jacobian(p), "the bearing fit")
    return PositionFix(
        position_enu_m=p,
        covariance_m2=cov,
        ellipse=confidence_ellipse(p, cov, confidence),
        method="bearings",
        chi2=cost,
        dof=len(s) - 2,
        iterations=it,
        start_enu_m=start,
    )


class _StackedModel:
    """Independent measurement models of one position: their whitened residuals side by side
    (the joint log-likelihood is the sum of theirs)."""

    def __init__(self, *models):
        self.models = models

    def whitened(self, p):
        return np.concatenate([m.whitened(p) for m in self.models], axis=-1)

    def cost(self, p):
        return sum(m.cost(p) for m in self.models)

    def jacobian(self, p):
        return np.vstack([m.jacobian(p) for m in self.models])


def locate_hybrid(
    tdoa_sensors_enu_m,
    tdoa_s,
    tdoa_cov_s2,
    bearing_sensors_enu_m,
    azimuth_deg,
    std_deg,
    ref_sensor=0,
    initial_enu_m=None,
    confidence=0.95,
):
    """Emitter position (east, north) from TDOAs and bearings together, each weighted by its
    own uncertainty: one Gauss-Newton fit of the joint likelihood, the covariance the inverse
    of the summed Fisher information (so never larger than either kind's alone).

    tdoa_sensors_enu_m: (K, 2|3) the timing sensors (heights ignored: bearings are in the
    plane); tdoa_s: (K-1,) arrival times at the non-reference sensors minus at `ref_sensor`,
    tdoa_cov_s2 their covariance. bearing_sensors_enu_m: (B, 2|3), azimuth_deg: (B,)
    clockwise from north, std_deg: scalar or (B,). One bearing and one TDOA already fix a
    point (a line meets a hyperbola), so K >= 2 and B >= 1; the fit starts from every
    closed form the measurements allow (bearing intersection, Chan, spherical intersection)
    and from points along each bearing. Raises ValueError for bad input, a fit behind a
    bearing's node, and two distinct positions that fit equally well (unless
    initial_enu_m picks one). The fix's extra holds each kind's chi2 at the solution.
    """
    ts = np.asarray(tdoa_sensors_enu_m, dtype=float)
    bs = np.asarray(bearing_sensors_enu_m, dtype=float)
    for name, s in (("tdoa_sensors_enu_m", ts), ("bearing_sensors_enu_m", bs)):
        if s.ndim != 2 or s.shape[1] not in (2, 3):
            raise ValueError(f"{name} must be (M, 2) or (M, 3) metres, got shape {s.shape}")
        if not np.all(np.isfinite(s)):
            raise ValueError(f"non-finite position in {name}")
    ts, bs = ts[:, :2], bs[:, :2]
    k, b = len(ts), len(bs)
    if k < 2 or b < 1:
        raise ValueError(
            f"too few sensors: a hybrid fix needs 2 or more timing sensors and 1 or more "
            f"bearings, got {k} and {b} (use locate_tdoa or triangulate_bearings)"
        )
    if not 0 <= ref_sensor < k:
        raise ValueError(f"ref_sensor {ref_sensor} out of range for {k} timing sensors")
    t = np.asarray(tdoa_s, dtype=float)
    if t.shape != (k - 1,):
        raise ValueError(f"mismatched lengths: {k} timing sensors need {k - 1} TDOAs, got {t.size}")
    if not np.all(np.isfinite(t)):
        raise ValueError("non-finite TDOA (NaN or inf)")
    _, chol = _tdoa_covariance(k - 1, None, tdoa_cov_s2)
    az = np.asarray(azimuth_deg, dtype=float)
    if az.shape != (b,):
        raise ValueError(f"mismatched lengths: {b} bearing sensors but {az.size} bearings")
    sd = np.broadcast_to(np.asarray(std_deg, dtype=float), az.shape)
    if not (np.all(np.isfinite(az)) and np.all(np.isfinite(sd))):
        raise ValueError("non-finite bearing or bearing standard deviation")
    if np.any(sd <= 0):
        raise ValueError("every bearing standard deviation must be > 0")
    everyone = np.vstack([ts, bs])
    dist = np.linalg.norm(everyone[:, None] - everyone[None], axis=-1)
    span = float(dist.max())
    if span <= 0:
        raise ValueError("degenerate geometry: every sensor is at one place")
    tdoa_model = _TdoaModel(ts, ref_sensor, t, chol)
    a = np.deg2rad(az)
    bearing_model = _BearingModel(bs, a, np.deg2rad(sd))
    model = _StackedModel(tdoa_model, bearing_model)
    dirs = np.column_stack([np.sin(a), np.cos(a)])

    starts = []
    if b >= 2:
        try:
            starts.append(triangulate_bearings(bs, az, sd).position_enu_m)
        except ValueError:
            pass  # parallel, or crossing behind a node: the other starts remain
    if k >= 3:
        order = np.r_[ref_sensor, tdoa_model.others]
        rd_cov = np.asarray(tdoa_cov_s2, dtype=float) * SPEED_OF_LIGHT_M_S**2
        if k >= 4:
            starts += chan_tdoa(ts[order], tdoa_model.rd_m, rd_cov)
        starts += spherical_intersection(ts[order], tdoa_model.rd_m)
    for r in span * np.geomspace(0.02, 20.0, 16):  # along every bearing
        starts += list(bs + r * dirs)
    if initial_enu_m is not None:
        guess = np.asarray(initial_enu_m, dtype=float)
        if guess.shape != (2,) or not np.all(np.isfinite(guess)):
            raise ValueError("initial_enu_m must be 2 finite coordinates (east, north)")
        starts.append(guess)

    fits = []
    for p0 in starts:
        p, cost, it = _gauss_newton(model, p0)
        ahead = np.sum((p - bs) * dirs, axis=1)
        if np.all(np.isfinite(p)) and np.all(ahead > 0):
            fits.append((cost, p, it, np.asarray(p0, dtype=float)))
    if not fits:
        raise ValueError(
            "hybrid localization failed: no position in front of every bearing's node fits"
        )
    fits.sort(key=lambda f: f[0])
    best = fits[0]
    far_m = float(np.linalg.norm(best[1] - everyone.mean(axis=0)))
    if far_m > FAR_SPANS * span:
        raise ValueError(
            f"hybrid localization failed: the fit ran off to {far_m / 1e3:.3g} km from the "
            f"sensors, {far_m / span:.3g} times their spread (the TDOAs and bearings do not "
            "meet: are the clocks' offsets removed and the arrays calibrated?)"
        )
    cov = _fisher_cov(model.jacobian(best[1]), "the hybrid fit")
    best, cov = _unambiguous(
        fits, cov, model, guess if initial_enu_m is not None else None, "hybrid"
    )
    cost, p, it, p0 = best
    return PositionFix(
        position_enu_m=p,
        covariance_m2=cov,
        ellipse=confidence_ellipse(p, cov, confidence),
        method="hybrid",
        chi2=cost,
        dof=(k - 1) + b - 2,
        iterations=it,
        start_enu_m=p0,
        extra={
            "tdoa_chi2": float(tdoa_model.cost(p)),
            "bearing_chi2": float(bearing_model.cost(p)),
        },
    )
