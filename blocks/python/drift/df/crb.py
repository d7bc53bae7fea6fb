#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Cramer-Rao bounds for the estimators of gnuradio.drift.df.

Delay (TDOA) between two noisy receptions of one Gaussian signal. For one DFT bin k with
signal power S_k and noise powers N1_k, N2_k, the 2x2 complex Gaussian model gives the
Fisher information 2 w_k^2 S_k^2 / (N1_k N2_k + S_k (N1_k + N2_k)) = 2 w_k^2 g/(1-g) in terms of
the magnitude-squared coherence g, with w_k the bin's angular frequency in rad/sample. Summed
over N independent bins of a flat band spanning the whole sample rate, with per-sample SNR
g = S/N, this is

    var(D) >= 3 (1 + 2 g) / (2 pi^2 N g^2)   [samples^2]

When the carrier phase between the receivers is unknown (independent local oscillators), w_k is
taken about the spectrum's centroid: the bound is governed by the RMS bandwidth about the centre.

Bearing: the stochastic (unconditional) CRB of Stoica and Nehorai for uncorrelated sources in
white noise, CRB = 1/(2 N) {Re[(D^H P_A^perp D) o (P A^H R^-1 A P)^T]}^-1 with unit noise power.
"""

from __future__ import annotations

import numpy as np


def delay_crb_flat(snr, n_samples):
    """Delay CRB in samples^2 for a flat band equal to the sample rate (complex baseband).

    snr: per-sample linear SNR (signal / noise power, the same at both receivers).
    """
    g = np.asarray(snr, dtype=float)
    return 3.0 * (1.0 + 2.0 * g) / (2.0 * np.pi**2 * n_samples * g**2)


def delay_crb_bandlimited(snr_in_band, n_samples, bandwidth_fraction):
    """Delay CRB in samples^2 for a flat band of `bandwidth_fraction` of the sample rate.

    snr_in_band: linear SNR within the occupied band (the per-sample SNR of the whole capture
    is snr_in_band * bandwidth_fraction). The band's RMS bandwidth is fraction / sqrt(12)
    cycles/sample, and it holds fraction * n_samples independent bins:
        var = 1 / (2 g^2/(1+2g) (2 pi)^2 N b b^2/12).
    """
    g = np.asarray(snr_in_band, dtype=float)
    b = float(bandwidth_fraction)
    if not 0 < b <= 1:
        raise ValueError(f"bandwidth_fraction must be in (0, 1], got {b}")
    rms2 = b**2 / 12.0
    fim = 2.0 * g**2 / (1.0 + 2.0 * g) * (2 * np.pi) ** 2 * n_samples * b * rms2
    return 1.0 / fim


def delay_crb_from_spectra(
    signal_psd, noise1_psd, noise2_psd=None, dof_scale=1.0, phase_known=False
):
    """Delay CRB in samples^2 from per-bin spectra on an n-point DFT grid (fftfreq order).

    signal_psd, noise*_psd: per-bin powers in any common unit. dof_scale: independent
    complex bins per listed bin (1 for an n-point DFT of n complex samples, 0.5 for real
    samples, n / nfft for a zero-padded DFT). phase_known: False treats the carrier phase
    between the channels as unknown, so the frequencies count about the spectral centroid.
    """
    s = np.clip(np.asarray(signal_psd, dtype=float), 0.0, None)
    n1 = np.asarray(noise1_psd, dtype=float)
    n2 = n1 if noise2_psd is None else np.asarray(noise2_psd, dtype=float)
    w = 2 * np.pi * np.fft.fftfreq(s.size)
    info = s**2 / (n1 * n2 + s * (n1 + n2))
    if not phase_known and info.sum() > 0:
        w = w - np.sum(info * w) / np.sum(info)
    fim = 2.0 * dof_scale * np.sum(w**2 * info)
    return np.inf if fim <= 0 else 1.0 / fim


def _unit_vectors(azimuth_rad, elevation_rad):
    """Direction towards the source (east, north, up) and its azimuth derivative, (3, K)."""
    az = np.atleast_1d(azimuth_rad)
    el = np.broadcast_to(np.atleast_1d(elevation_rad), az.shape)
    ce = np.cos(el)
    u = np.stack([ce * np.sin(az), ce * np.cos(az), np.sin(el)])
    du = np.stack([ce * np.cos(az), -ce * np.sin(az), np.zeros_like(az)])
    return u, du


def _positions3(positions_wl):
    p = np.asarray(positions_wl, dtype=float)
    if p.ndim != 2 or p.shape[1] not in (2, 3):
        raise ValueError(f"element positions must be (M, 2) or (M, 3) wavelengths, got {p.shape}")
    if p.shape[1] == 2:
        p = np.column_stack([p, np.zeros(len(p))])
    return p


def bearing_crb(positions_wl, azimuth_deg, snr, n_snapshots, elevation_deg=0.0):
    """Stochastic CRB on azimuths (rad^2, a K x K matrix) for K uncorrelated sources.

    positions_wl: element positions (M, 2|3) in wavelengths (east, north[, up]).
    azimuth_deg: K azimuths, clockwise from north. snr: per-element linear SNR of each source
    (source power over the noise power of one element). n_snapshots: N.
    """
    p = _positions3(positions_wl)
    az = np.deg2rad(np.atleast_1d(np.asarray(azimuth_deg, dtype=float)))
    pw = np.broadcast_to(np.atleast_1d(np.asarray(snr, dtype=float)), az.shape)
    u, du = _unit_vectors(az, np.deg2rad(elevation_deg))
    a = np.exp(2j * np.pi * (p @ u))  # (M, K)
    d = 2j * np.pi * (p @ du) * a  # d a / d azimuth (per rad)
    m = p.shape[0]
    cov = (a * pw) @ a.conj().T + np.eye(m)
    proj_perp = np.eye(m) - a @ np.linalg.pinv(a)
    h = d.conj().T @ proj_perp @ d
    big_p = np.diag(pw)
    q = big_p @ a.conj().T @ np.linalg.solve(cov, a) @ big_p
    fim = 2.0 * n_snapshots * np.real(h * q.T)
    return np.linalg.inv(fim)


def bearing_crb_std_deg(positions_wl, azimuth_deg, snr, n_snapshots, elevation_deg=0.0):
    """Square roots of the stochastic CRB's diagonal, in degrees (one per source)."""
    c = bearing_crb(positions_wl, azimuth_deg, snr, n_snapshots, elevation_deg)
    return np.rad2deg(np.sqrt(np.diag(c)))
