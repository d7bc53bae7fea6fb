#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Time difference of arrival: GCC delay estimation with its predicted accuracy, and clock sync.

estimate_delay(reference, signal, sample_rate_hz) finds D such that signal(t) ~ reference(t - D)
(D > 0: the signal arrives later):

1. Generalized cross-correlation, FFT based and zero-padded to a linear correlation, with PHAT
   (phase transform), plain, or ML (Hannan-Thomson, from the measured coherence) weighting. The
   integer peak is searched within +-max_delay_s; |correlation| is used, since the carrier
   phase between two receivers with their own oscillators is unknown.
2. Sub-sample refinement: Newton steps on |c(D)|^2, the weighted correlation evaluated at a
   continuous lag (the exact band-limited interpolation of the linear correlation), from a
   parabolic start. There is no parabolic bias; at high SNR it reaches the CRB.
3. Spectra: the signal spectrum is the smoothed real part of the delay- and phase-compensated
   cross-spectrum, each noise spectrum the rest of its auto-spectrum (smoothed widely, so it
   can be coloured but varies slowly). From them: the per-sample SNR, the RMS bandwidth, the
   CRB, and the estimator's own first-order variance for its weighting,
       var = sum(psi^2 w^2 V) / 2 / (sum(psi w^2 S))^2,  V = S (N1 + N2) + N1 N2,
   (w about the weighted spectral centroid), which equals the CRB for the ML weights psi = S/V.
   This variance only holds above the threshold SNR, where the peak is the right one: below it
   outliers dominate, which the peak-to-sidelobe ratio (psr_db) shows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import uniform_filter1d

from .crb import delay_crb_from_spectra
from .geo import SPEED_OF_LIGHT_M_S

WEIGHTINGS = ("phat", "plain", "ml")
# the sample magnitudes the single-precision C++ estimator takes (float's range, with room for
# the FFT's gain); estimate_delay gives others to the numpy reference
_FLOAT_SAFE = (1e-30, 1e30)


@dataclass(frozen=True)
class DelayEstimate:
    """One delay estimate (signal relative to reference; > 0: the signal arrives later)."""

    delay_s: float
    delay_samples: float
    std_s: float  # predicted standard deviation of this estimator at the measured spectra
    std_samples: float
    crb_std_s: float  # square root of the CRB at the measured spectra
    psr_db: float  # correlation peak over the highest sidelobe outside the main lobe
    snr_db: float  # per-sample SNR over the capture band, sqrt of both noise powers
    rms_bandwidth_hz: float  # of the signal spectrum, about its centroid
    sample_rate_hz: float
    weighting: str
    n_samples: int


def _as_1d(x, name):
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds non-finite samples (NaN or inf)")
    return a


def _search_window(nfft, max_lag):
    """Indexes of lags -max_lag..max_lag in an nfft-point circular correlation."""
    return np.r_[nfft - max_lag : nfft, 0 : max_lag + 1]


def _peak(weighted_cross, max_lag):
    """(integer lag, |correlation| over lags -max_lag..max_lag, index of the peak in it)."""
    nfft = weighted_cross.size
    cc = sfft.ifft(weighted_cross)
    mag = np.abs(cc[_search_window(nfft, max_lag)])
    i = int(np.argmax(mag))
    return i - max_lag, mag, i


def _refine(weighted_cross, omega, lag, mag, i, max_iter=8):
    """Newton steps on |c(D)|^2 from a parabolic start; returns D in samples."""
    d = float(lag)
    if 0 < i < mag.size - 1:
        m2 = mag[i - 1 : i + 2] ** 2
        den = m2[0] - 2 * m2[1] + m2[2]
        if den < 0:
            d += float(np.clip(0.5 * (m2[0] - m2[2]) / den, -0.5, 0.5))
    y = weighted_cross
    wy = omega * y
    w2y = omega * wy
    for _ in range(max_iter):
        e = np.exp(1j * omega * d)
        c = np.dot(y, e)
        c1 = 1j * np.dot(wy, e)
        c2 = -np.dot(w2y, e)
        f1 = 2 * np.real(np.conj(c) * c1)
        f2 = 2 * (abs(c1) ** 2 + np.real(np.conj(c) * c2))
        if not f2 < 0:
            break
        step = -f1 / f2
        step = float(np.clip(step, -0.5, 0.5))
        if abs(d + step - lag) > 1.0:
            break
        d += step
        if abs(step) < 1e-7:
            break
    return d


def _psr_db(mag, i):
    """Peak over the highest value outside the main lobe (the monotonic run about the peak)."""
    right = mag[i:]
    left = mag[i::-1]
    r_up = np.flatnonzero(np.diff(right) > 0)
    l_up = np.flatnonzero(np.diff(left) > 0)
    hi = i + (int(r_up[0]) if r_up.size else right.size - 1)
    lo = i - (int(l_up[0]) if l_up.size else left.size - 1)
    side = np.concatenate([mag[:lo], mag[hi + 1 :]])
    if side.size == 0 or side.max() <= 0:
        return np.inf
    return float(20 * np.log10(mag[i] / side.max()))


def _spectra(xa, xb, d, smooth_bins):
    """Signal and noise spectra per bin of the n-point DFTs xa, xb (signal delayed by d)."""
    nf = xa.size
    omega = 2 * np.pi * sfft.fftfreq(nf)
    r = xb * np.conj(xa) * np.exp(1j * omega * d)
    r *= np.exp(-1j * np.angle(np.sum(r)))
    s_raw = r.real
    s = uniform_filter1d(s_raw, smooth_bins, mode="wrap")
    wide = max(smooth_bins, nf // 16)
    a1 = np.abs(xa) ** 2
    a2 = np.abs(xb) ** 2
    floor = 1e-12 * max(a1.mean(), a2.mean(), np.finfo(float).tiny)
    n1 = np.maximum(uniform_filter1d(a1 - s_raw, wide, mode="wrap"), floor)
    n2 = np.maximum(uniform_filter1d(a2 - s_raw, wide, mode="wrap"), floor)
    # The estimator's variance depends on the spectra only through the cross-spectrum S and
    # V = A1 A2 - S^2 (A the auto-spectra), whatever the two channels' gains: unlike N = A - S,
    # V needs no equal-gain assumption (channels at different distances or gains). Both are
    # debiased for the L-bin smoothing: E[s^2] = S^2 + (A1 A2 + S^2) / (2 L),
    # E[a1 a2 - s^2] = V (1 - 1 / (2 L)). Returned: the noise n_eff of two equal channels with
    # these S and V (S (2 n) + n^2 = V), so every formula below holds unchanged; n1 and n2,
    # the noise as seen in each channel, remain for the SNR figure.
    a1s = uniform_filter1d(a1, smooth_bins, mode="wrap")
    a2s = uniform_filter1d(a2, smooth_bins, mode="wrap")
    prod = a1s * a2s
    s2 = np.maximum(s**2 - (prod + s**2) / (2 * smooth_bins), 0.0)
    v = np.maximum((prod - s**2) / (1 - 1 / (2 * smooth_bins)), floor**2)
    s_clean = np.sqrt(s2)
    n_eff = np.maximum(np.sqrt(s2 + v) - s_clean, floor)
    return omega, s, s_clean, n_eff, n1, n2


def _predicted_var(psi, omega, s, s_clean, n1, n2, centred):
    """First-order variance (samples^2, per listed bin) of GCC with real weights psi."""
    v = s_clean * (n1 + n2) + n1 * n2
    ws = psi * s
    w = omega
    if centred and abs(ws.sum()) > 0:
        w = omega - np.sum(ws * omega) / np.sum(ws)
    den = np.sum(psi * w**2 * s) ** 2
    if den <= 0:
        return np.inf
    return 0.5 * np.sum(psi**2 * w**2 * v) / den


@functools.lru_cache(maxsize=1)
def _phase_table():
    """E[cos phi] and E[sin^2 phi] of the phase error of one cross-spectral bin (single look)
    against its coherence magnitude rho, by integrating the known phase density
    p(phi) = (1 - rho^2) / (2 pi (1 - b^2)) (1 + b arccos(-b) / sqrt(1 - b^2)), b = rho cos phi."""
    rho = 1.0 - np.logspace(0, -4, 161)
    rho[0] = 0.0
    phi = np.linspace(-np.pi, np.pi, 20001)
    b = rho[:, None] * np.cos(phi)[None, :]
    q = np.sqrt(1.0 - b**2)
    pdf = (1 - rho[:, None] ** 2) / (2 * np.pi * q**2) * (1 + b * np.arccos(-b) / q)
    dphi = phi[1] - phi[0]
    norm = pdf.sum(axis=1) * dphi
    e_cos = (pdf * np.cos(phi)).sum(axis=1) * dphi / norm
    e_sin2 = (pdf * np.sin(phi) ** 2).sum(axis=1) * dphi / norm
    return rho, e_cos, e_sin2


def _phase_moments(rho):
    """(E[cos phi], E[sin^2 phi]) per bin; beyond the table, the high-SNR limits."""
    table_rho, e_cos, e_sin2 = _phase_table()
    r = np.clip(rho, 0.0, 1.0 - 1e-15)
    c = np.interp(r, table_rho, e_cos)
    s2 = np.interp(r, table_rho, e_sin2)
    hi = r > table_rho[-1]
    s2[hi] = (1 - r[hi] ** 2) / (2 * r[hi] ** 2)
    c[hi] = 1 - s2[hi] / 2
    return c, s2


def _predicted_var_phat(omega, s_clean, n1, n2, centred):
    """First-order variance (samples^2, per listed bin) of PHAT: every bin counts by its phase,
    sum(w^2 E[sin^2 phi]) / (sum(w^2 E[cos phi]))^2, phase moments from the coherence."""
    rho = s_clean / np.sqrt((s_clean + n1) * (s_clean + n2))
    c, s2 = _phase_moments(rho)
    w = omega
    if centred and c.sum() > 0:
        w = omega - np.sum(c * omega) / np.sum(c)
    den = np.sum(w**2 * c) ** 2
    return np.inf if den <= 0 else np.sum(w**2 * s2) / den


@functools.lru_cache(maxsize=1)
def _native_gcc_delay():
    """gnuradio.drift's C++ estimator (gcc.h), or None where the compiled module is missing
    (an analysis host without GNU Radio): estimate_delay then runs the numpy reference."""
    try:
        from gnuradio.drift.drift_python import gcc_delay
    except ImportError:
        return None
    return gcc_delay


def _checked(reference, signal, sample_rate_hz, weighting, max_delay_s):
    """The arguments checked: (x1, x2, fs, max_lag)."""
    x1 = _as_1d(reference, "reference")
    x2 = _as_1d(signal, "signal")
    if x1.size != x2.size:
        raise ValueError(f"reference and signal lengths differ: {x1.size} != {x2.size}")
    n = x1.size
    if n < 16:
        raise ValueError(f"need at least 16 samples for a delay estimate, got {n}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    fs = float(sample_rate_hz)
    if not (np.isfinite(fs) and fs > 0):
        raise ValueError(f"sample_rate_hz must be positive and finite, got {sample_rate_hz}")
    max_lag = n - 1
    if max_delay_s is not None:
        if not (np.isfinite(max_delay_s) and max_delay_s >= 0):
            raise ValueError(f"max_delay_s must be >= 0 and finite, got {max_delay_s}")
        max_lag = int(min(n - 1, np.ceil(max_delay_s * fs) + 1))
    return x1, x2, fs, max_lag


def estimate_delay(
    reference, signal, sample_rate_hz, weighting="phat", max_delay_s=None, smooth_bins=None
):
    """Delay of `signal` relative to `reference` (equal-length 1-D arrays, real or complex).

    weighting: "phat" (robust to coloured spectra and multipath, the default), "plain" (ML
    for flat spectra) or "ml" (Hannan-Thomson weights from the measured coherence: reaches the
    CRB for band-limited signals). max_delay_s: the largest |delay| physically possible (the
    baseline over c plus the clock uncertainty); limits the peak search. smooth_bins: bins
    averaged for the spectrum estimates (default sqrt(n)/2, between 4 and 64).
    Returns a DelayEstimate; raises ValueError on malformed input.

    Runs gnuradio.drift's C++ estimator (single-precision FFTs, the same algorithm) where the
    compiled module is present, else estimate_delay_reference, the numpy code it is checked
    against.
    """
    native = _native_gcc_delay()
    x1, x2, fs, max_lag = _checked(reference, signal, sample_rate_hz, weighting, max_delay_s)
    peaks = (np.max(np.abs(x1)), np.max(np.abs(x2)))
    if native is None or not all(_FLOAT_SAFE[0] < p < _FLOAT_SAFE[1] for p in peaks):
        # no compiled module, or samples whose scale single precision would not keep
        return estimate_delay_reference(x1, x2, fs, weighting, max_delay_s, smooth_bins)
    is_real = not (np.iscomplexobj(x1) or np.iscomplexobj(x2))
    r = native(
        x1.astype(np.complex64),
        x2.astype(np.complex64),
        weighting,
        max_lag,
        0 if smooth_bins is None else int(smooth_bins),
        is_real,
    )
    return DelayEstimate(
        delay_s=r["delay_samples"] / fs,
        delay_samples=r["delay_samples"],
        std_s=r["std_samples"] / fs,
        std_samples=r["std_samples"],
        crb_std_s=r["crb_std_samples"] / fs,
        psr_db=r["psr_db"],
        snr_db=r["snr_db"],
        rms_bandwidth_hz=r["rms_bandwidth"] * fs,
        sample_rate_hz=fs,
        weighting=weighting,
        n_samples=x1.size,
    )


def estimate_delay_reference(
    reference, signal, sample_rate_hz, weighting="phat", max_delay_s=None, smooth_bins=None
):
    """estimate_delay in numpy (double precision): the reference the C++ estimator is
    checked against, and what estimate_delay runs without the compiled module."""
    x1, x2, fs, max_lag = _checked(reference, signal, sample_rate_hz, weighting, max_delay_s)
    n = x1.size
    is_real = not (np.iscomplexobj(x1) or np.iscomplexobj(x2))
    nf = sfft.next_fast_len(n)
    nfft = 2 * nf
    f1 = sfft.fft(x1, nfft)
    f2 = sfft.fft(x2, nfft)
    cross = f2 * np.conj(f1)
    omega = 2 * np.pi * sfft.fftfreq(nfft)
    if smooth_bins is None:
        smooth_bins = int(np.clip(round(np.sqrt(nf) / 2), 4, 64))
    smooth_bins = int(smooth_bins)

    mag_cross = np.abs(cross)
    if weighting == "phat":
        psi_pad = 1.0 / np.maximum(mag_cross, 1e-30 * max(mag_cross.max(), 1e-300))
    else:
        psi_pad = np.ones(nfft)
    lag, mag, i = _peak(cross * psi_pad, max_lag)
    d = _refine(cross * psi_pad, omega, lag, mag, i)
    # Even bins of the 2 nf-point spectrum are the nf-point DFT.
    om, s, s_clean, ne, n1, n2 = _spectra(f1[::2], f2[::2], d, smooth_bins)
    if weighting == "ml":
        psi = s_clean / (s_clean * 2 * ne + ne * ne)
        psi_pad = np.empty(nfft)
        psi_pad[0::2] = psi
        psi_pad[1::2] = 0.5 * (psi + np.roll(psi, -1))
        lag, mag, i = _peak(cross * psi_pad, max_lag)
        d = _refine(cross * psi_pad, omega, lag, mag, i)
    else:
        psi = psi_pad[0::2]
    dof = (n / nf) * (0.5 if is_real else 1.0)
    centred = not is_real
    if weighting == "phat":
        var = _predicted_var_phat(om, s_clean, ne, ne, centred) / dof
    else:
        var = _predicted_var(psi, om, s, s_clean, ne, ne, centred) / dof
    crb_var = delay_crb_from_spectra(s_clean, ne, ne, dof_scale=dof, phase_known=is_real)
    sp = np.maximum(s, 0.0)
    snr = max(s.sum(), 0.0) / np.sqrt(n1.sum() * n2.sum())
    f = sfft.fftfreq(nf)
    if sp.sum() > 0:
        fc = np.sum(f * sp) / sp.sum() if centred else 0.0
        rms_bw = fs * np.sqrt(np.sum((f - fc) ** 2 * sp) / sp.sum())
    else:
        rms_bw = 0.0
    std = float(np.sqrt(var))
    return DelayEstimate(
        delay_s=d / fs,
        delay_samples=d,
        std_s=std / fs,
        std_samples=std,
        crb_std_s=float(np.sqrt(crb_var)) / fs,
        psr_db=_psr_db(mag, i),
        snr_db=float(10 * np.log10(max(snr, 1e-30))),
        rms_bandwidth_hz=float(rms_bw),
        sample_rate_hz=fs,
        weighting=weighting,
        n_samples=n,
    )


@dataclass(frozen=True)
class ClockOffsets:
    """Clock offsets of the nodes against the reference node, from a reference transmitter.

    offsets_s[i] = node i's clock minus the reference node's clock: a delay measured between
    node i's and node j's captures holds offsets_s[i] - offsets_s[j] too, which correct()
    removes.
    """

    offsets_s: np.ndarray
    std_s: np.ndarray
    ref_node: int
    # baseband frequency of node i minus the reference node's for one signal (Hz): the LO
    # errors of free-running receivers; None when not measured
    freq_offsets_hz: np.ndarray | None = None

    def correct(self, delay_s, node, against=None):
        """A measured delay of `node` against node `against` (default the reference node)
        with the clock offsets removed. Vectorized over arrays of delays and node indexes."""
        other = self.ref_node if against is None else against
        off = self.offsets_s
        return np.asarray(delay_s, dtype=float) - (off[np.asarray(node)] - off[np.asarray(other)])


def clock_offsets(node_enu_m, ref_tx_enu_m, measured_delays_s, delay_std_s=None, ref_node=0):
    """Reference-based sync: clock offset = measured delay - geometric delay, per node.

    node_enu_m: (M, 2|3) node positions; ref_tx_enu_m: the reference transmitter's position.
    measured_delays_s: (M,) delay of the reference signal in node i's capture against the
    reference node's capture, both started at the same nominal time (entry ref_node is 0).
    delay_std_s: their standard deviations (scalar or (M,)); 0 for the reference node.
    """
    nodes = np.asarray(node_enu_m, dtype=float)
    tx = np.asarray(ref_tx_enu_m, dtype=float)
    meas = np.asarray(measured_delays_s, dtype=float)
    if nodes.ndim != 2 or nodes.shape[1] not in (2, 3):
        raise ValueError(f"node_enu_m must be (M, 2) or (M, 3), got shape {nodes.shape}")
    if tx.shape != (nodes.shape[1],):
        raise ValueError(f"ref_tx_enu_m must have {nodes.shape[1]} coordinates, got {tx.shape}")
    if meas.shape != (nodes.shape[0],):
        raise ValueError(f"mismatched lengths: {nodes.shape[0]} nodes but {meas.size} delays")
    if not (np.all(np.isfinite(nodes)) and np.all(np.isfinite(tx)) and np.all(np.isfinite(meas))):
        raise ValueError("non-finite node position, transmitter position or delay")
    if not 0 <= ref_node < nodes.shape[0]:
        raise ValueError(f"ref_node {ref_node} out of range for {nodes.shape[0]} nodes")
    rng = np.linalg.norm(nodes - tx, axis=1)
    geometric = (rng - rng[ref_node]) / SPEED_OF_LIGHT_M_S
    offsets = meas - geometric
    offsets[ref_node] = 0.0
    std = (
        np.zeros(nodes.shape[0])
        if delay_std_s is None
        else np.broadcast_to(np.asarray(delay_std_s, dtype=float), (nodes.shape[0],)).copy()
    )
    std[ref_node] = 0.0
    return ClockOffsets(offsets_s=offsets, std_s=std, ref_node=ref_node)


def sync_to_reference(
    captures,
    sample_rate_hz,
    node_enu_m,
    ref_tx_enu_m,
    ref_node=0,
    weighting="plain",
    max_delay_s=None,
):
    """Clock offsets from simultaneous captures (M, n) of a reference transmitter.

    Each node's capture is correlated with the reference node's; returns (ClockOffsets, the
    list of DelayEstimate, the reference node's entry None).
    """
    x = np.asarray(captures)
    if x.ndim != 2:
        raise ValueError(f"captures must be (M, n), got shape {x.shape}")
    if not 0 <= ref_node < x.shape[0]:
        raise ValueError(f"ref_node {ref_node} out of range for {x.shape[0]} captures")
    estimates = [
        None
        if i == ref_node
        else estimate_delay(
            x[ref_node], x[i], sample_rate_hz, weighting=weighting, max_delay_s=max_delay_s
        )
        for i in range(x.shape[0])
    ]
    delays = np.array([0.0 if e is None else e.delay_s for e in estimates])
    stds = np.array([0.0 if e is None else e.std_s for e in estimates])
    return clock_offsets(node_enu_m, ref_tx_enu_m, delays, stds, ref_node), estimates
