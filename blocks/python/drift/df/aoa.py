#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Angle of arrival with coherent arrays: steering vectors, spectra, root-MUSIC (calibration:
df.calibration).

Conventions: element positions are in wavelengths in the array's local (east, north[, up])
frame; azimuths are in degrees clockwise from north; a source in direction u (unit vector
towards it) gives element m the phase exp(+j 2 pi p_m . u). A linear array only sees the
half-plane in front of it (its mirror image is identical); for a ULA along east
(ula_positions) the azimuth grid is -90..90 degrees (broadside north).

Snapshots are (M, N) arrays: M channels, N time samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .crb import _positions3, bearing_crb

METHODS = ("bartlett", "mvdr", "music")


def ula_positions(n_elements, spacing_wl=0.5):
    """(M, 2) positions of a uniform linear array along east, centred, in wavelengths."""
    x = (np.arange(n_elements) - (n_elements - 1) / 2) * spacing_wl
    return np.column_stack([x, np.zeros(n_elements)])


def uca_positions(n_elements, radius_wl):
    """(M, 2) positions of a uniform circular array; element 0 due north of the centre."""
    phi = 2 * np.pi * np.arange(n_elements) / n_elements
    return radius_wl * np.column_stack([np.sin(phi), np.cos(phi)])


def steering_vectors(positions_wl, azimuth_deg, elevation_deg=0.0):
    """(M, G) steering vectors for G azimuths (degrees clockwise from north)."""
    p = _positions3(positions_wl)
    az = np.deg2rad(np.atleast_1d(np.asarray(azimuth_deg, dtype=float)))
    el = np.deg2rad(elevation_deg)
    u = np.stack([np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.full_like(az, np.sin(el))])
    return np.exp(2j * np.pi * (p @ u))


def _snapshots(x):
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"snapshots must be (M channels, N samples), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("snapshots hold non-finite samples (NaN or inf)")
    if a.shape[1] < a.shape[0]:
        raise ValueError(
            f"need at least as many snapshots as channels ({a.shape[0]}), got {a.shape[1]}"
        )
    return a


def spatial_covariance(snapshots, forward_backward=False):
    """Sample covariance X X^H / N (M, M); forward_backward for centro-symmetric arrays (ULA)."""
    x = _snapshots(snapshots)
    r = x @ x.conj().T / x.shape[1]
    if forward_backward:
        j = np.eye(len(r))[::-1]
        r = 0.5 * (r + j @ r.conj() @ j)
    return r


def bartlett_spectrum(cov, positions_wl, azimuth_deg):
    """Bartlett (delay-and-sum) power a^H R a / (a^H a) per azimuth."""
    a = steering_vectors(positions_wl, azimuth_deg)
    return np.real(np.sum(a.conj() * (cov @ a), axis=0)) / a.shape[0]


def mvdr_spectrum(cov, positions_wl, azimuth_deg, diagonal_loading=0.0):
    """Capon / MVDR power 1 / (a^H R^-1 a); diagonal_loading is relative to trace(R)/M."""
    m = len(cov)
    r = cov + diagonal_loading * np.real(np.trace(cov)) / m * np.eye(m)
    a = steering_vectors(positions_wl, azimuth_deg)
    return 1.0 / np.real(np.sum(a.conj() * np.linalg.solve(r, a), axis=0))


def _noise_subspace(cov, n_sources):
    m = len(cov)
    if not 1 <= n_sources < m:
        raise ValueError(f"n_sources must be between 1 and {m - 1} for {m} elements")
    _, vecs = np.linalg.eigh(cov)
    return vecs[:, : m - n_sources]


def music_spectrum(cov, positions_wl, azimuth_deg, n_sources=1):
    """MUSIC pseudo-spectrum 1 / |E_n^H a|^2 per azimuth."""
    en = _noise_subspace(cov, n_sources)
    a = steering_vectors(positions_wl, azimuth_deg)
    return 1.0 / np.sum(np.abs(en.conj().T @ a) ** 2, axis=0) * a.shape[0]


def root_music(cov, spacing_wl=0.5, n_sources=1):
    """Root-MUSIC azimuths (degrees, -90..90) for a ULA along east (element order = east)."""
    en = _noise_subspace(cov, n_sources)
    c = en @ en.conj().T
    m = len(c)
    coeffs = np.array([np.trace(c, offset=k) for k in range(m - 1, -m, -1)])
    roots = np.roots(coeffs)
    roots = roots[np.abs(roots) < 1.0]
    roots = roots[np.argsort(1.0 - np.abs(roots))][:n_sources]
    # a^H C a = sum_k z^k trace(C, k) with z = exp(+j 2 pi d sin(az)) in this convention.
    sin_az = np.angle(roots) / (2 * np.pi * spacing_wl)
    return np.sort(np.rad2deg(np.arcsin(np.clip(sin_az, -1, 1))))


def estimate_n_sources(cov, n_snapshots):
    """Number of sources by the MDL criterion (Wax-Kailath)."""
    m = len(cov)
    lam = np.clip(np.sort(np.linalg.eigvalsh(cov))[::-1], 1e-300, None)
    mdl = []
    for k in range(m):
        tail = lam[k:]
        ratio = np.exp(np.mean(np.log(tail))) / np.mean(tail)
        mdl.append(
            -n_snapshots * (m - k) * np.log(ratio) + 0.5 * k * (2 * m - k) * np.log(n_snapshots)
        )
    return int(np.argmin(mdl))


def _is_linear(positions_wl):
    p = np.asarray(positions_wl, dtype=float)[:, :2]
    sv = np.linalg.svd(p - p.mean(axis=0), compute_uv=False)
    return sv[1] <= 1e-9 * sv[0], p


@dataclass(frozen=True)
class Bearing:
    azimuth_deg: float
    std_deg: float  # stochastic CRB at the estimated SNR (valid above the threshold SNR)
    snr_db: float  # per element, estimated from the covariance


@dataclass(frozen=True)
class BearingResult:
    bearings: tuple  # of Bearing, strongest first
    azimuth_grid_deg: np.ndarray
    spectrum_db: np.ndarray  # normalized to a 0 dB maximum
    method: str


def _spectrum_fn(method, cov, positions_wl, n_sources, diagonal_loading):
    if method == "bartlett":
        return lambda az: bartlett_spectrum(cov, positions_wl, az)
    if method == "mvdr":
        return lambda az: mvdr_spectrum(cov, positions_wl, az, diagonal_loading)
    if method == "music":
        return lambda az: music_spectrum(cov, positions_wl, az, n_sources)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def estimate_bearings(
    snapshots,
    positions_wl,
    method="music",
    n_sources=1,
    grid_step_deg=1.0,
    forward_backward=False,
    diagonal_loading=0.0,
):
    """Bearings from array snapshots (M, N): the n_sources highest peaks of the method's
    spectrum on a grid, each refined to the continuous maximum (bounded Brent, +-1 grid step).

    Each bearing's std_deg is the stochastic CRB evaluated at the source powers and noise
    estimated from the covariance (noise = mean of the M - K smallest eigenvalues).
    """
    x = _snapshots(snapshots)
    p = np.asarray(positions_wl, dtype=float)
    if p.ndim != 2 or p.shape[0] != x.shape[0]:
        raise ValueError(
            f"mismatched lengths: {x.shape[0]} channels but element positions of shape {p.shape}"
        )
    cov = spatial_covariance(x, forward_backward)
    fn = _spectrum_fn(method, cov, p, n_sources, diagonal_loading)
    linear, p2 = _is_linear(p)
    if linear:
        axis = p2[-1] - p2[0]
        broadside = np.rad2deg(np.arctan2(axis[0], axis[1])) - 90.0
        grid = broadside + np.arange(-90.0, 90.0 + grid_step_deg / 2, grid_step_deg)
    else:
        grid = np.arange(0.0, 360.0, grid_step_deg)
    spec = fn(grid)
    if linear:
        is_peak = np.r_[
            spec[0] > spec[1],
            (spec[1:-1] > spec[:-2]) & (spec[1:-1] >= spec[2:]),
            spec[-1] > spec[-2],
        ]
    else:
        is_peak = (spec > np.roll(spec, 1)) & (spec >= np.roll(spec, -1))
    peaks = np.flatnonzero(is_peak)
    peaks = peaks[np.argsort(spec[peaks])[::-1]][:n_sources]
    azimuths = []
    for k in peaks:
        lo, hi = grid[k] - grid_step_deg, grid[k] + grid_step_deg
        if linear:
            lo, hi = max(lo, grid[0]), min(hi, grid[-1])
        sol = optimize.minimize_scalar(
            lambda a: -fn(np.array([a]))[0],
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-5},
        )
        az = sol.x if -sol.fun >= spec[k] else grid[k]
        azimuths.append(az if linear else az % 360.0)
    azimuths = np.array(azimuths)
    bearings = []
    if azimuths.size:
        lam = np.sort(np.linalg.eigvalsh(cov))
        k_src = azimuths.size
        noise = max(np.mean(lam[: len(lam) - k_src]), 1e-300)
        a = steering_vectors(p, azimuths)
        api = np.linalg.pinv(a)
        powers = np.real(np.diag(api @ (cov - noise * np.eye(len(cov))) @ api.conj().T))
        snr = np.maximum(powers / noise, 1e-6)
        try:
            std = np.rad2deg(np.sqrt(np.diag(bearing_crb(p, azimuths, snr, x.shape[1]))))
        except np.linalg.LinAlgError:
            std = np.full(azimuths.size, np.inf)
        bearings = [
            Bearing(float(az), float(sd), float(10 * np.log10(g)))
            for az, sd, g in zip(azimuths, std, snr, strict=True)
        ]
    return BearingResult(
        bearings=tuple(bearings),
        azimuth_grid_deg=grid,
        spectrum_db=10 * np.log10(np.maximum(spec / spec.max(), 1e-30)),
        method=method,
    )


def _rank_one_offdiagonal(cov, n_iter=50):
    """The rank-one v v^H that best fits cov's off-diagonal entries (diagonal noise ignored)."""
    r = cov.copy()
    diag = np.real(np.diag(cov))
    vals, vecs = np.linalg.eigh(r)
    v = vecs[:, -1] * np.sqrt(max(vals[-1], 0.0))
    for _ in range(n_iter):
        np.fill_diagonal(r, np.abs(v) ** 2)
        vals, vecs = np.linalg.eigh(r)
        v_new = vecs[:, -1] * np.sqrt(max(vals[-1], 0.0))
        v_new *= np.exp(-1j * np.angle(v_new[0]))
        if np.allclose(v_new, v, rtol=1e-10, atol=1e-12 * np.sqrt(diag.max())):
            v = v_new
            break
        v = v_new
    return v * np.exp(-1j * np.angle(v[0]))
