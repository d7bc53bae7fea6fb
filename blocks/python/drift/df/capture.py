#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Timestamped captures from several nodes: a common time base, TDOAs, a position fix.

A Capture is one node's samples with the time of its first sample on the node's own clock
(the GNU Radio rx_time convention: whole seconds plus a fraction, so nanoseconds survive at
UNIX epoch scale), the node's position and the standard deviation of its clock.

align_captures cuts every capture to the window they all cover, to the nearest sample, and
keeps the remaining sub-sample start differences, which tdoa_from_captures adds back to the
correlation delays exactly (nothing is resampled). locate_captures turns the TDOAs into a
position with a covariance that holds both the delay estimates' variances and the clocks'
(each non-reference TDOA carries its own clock's error and, shared by all of them, the
reference node's). With a reference transmitter, the clock offsets come from
tdoa.sync_to_reference / reference_offsets and are removed first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft

from .locate import PositionFix, locate_tdoa
from .tdoa import ClockOffsets, DelayEstimate, clock_offsets, estimate_delay


@dataclass(frozen=True)
class Capture:
    """One node's samples and the node-clock time of sample 0 (start_whole + start_frac s)."""

    samples: np.ndarray
    sample_rate_hz: float
    start_whole: int
    start_frac: float
    node_id: str = ""
    position_enu_m: np.ndarray | None = None
    time_std_s: float = 0.0  # 1-sigma uncertainty of the node's clock (its time source)

    def __post_init__(self):
        x = np.asarray(self.samples)
        if x.ndim != 1:
            raise ValueError(
                f"capture {self.node_id!r}: samples must be one-dimensional, got shape {x.shape}"
            )
        fs = float(self.sample_rate_hz)
        if not (math.isfinite(fs) and fs > 0):
            raise ValueError(
                f"capture {self.node_id!r}: sample_rate_hz must be positive and "
                f"finite, got {self.sample_rate_hz}"
            )
        if not (math.isfinite(self.start_frac) and self.time_std_s >= 0):
            raise ValueError(
                f"capture {self.node_id!r}: start time and time_std_s must be "
                "finite (time_std_s >= 0)"
            )
        # keep the fraction in [0, 1)
        whole = int(self.start_whole) + math.floor(self.start_frac)
        object.__setattr__(self, "start_whole", whole)
        object.__setattr__(self, "start_frac", float(self.start_frac - math.floor(self.start_frac)))
        object.__setattr__(self, "samples", x)
        object.__setattr__(self, "sample_rate_hz", fs)

    @property
    def n(self) -> int:
        return int(self.samples.size)

    @property
    def duration_s(self) -> float:
        return self.n / self.sample_rate_hz

    @classmethod
    def from_rx_time(cls, samples, sample_rate_hz, rx_time, offset=0, **kw):
        """From an rx_time value ((whole, frac) or float seconds) that holds at sample
        `offset` of `samples` (a tag's offset relative to the first sample)."""
        if isinstance(rx_time, tuple | list):
            whole, frac = int(rx_time[0]), float(rx_time[1])
        else:
            whole, frac = math.floor(float(rx_time)), float(rx_time) - math.floor(float(rx_time))
        return cls(samples, sample_rate_hz, whole, frac - offset / float(sample_rate_hz), **kw)


def _label(c: Capture, i: int) -> str:
    return c.node_id or f"#{i}"


@dataclass(frozen=True)
class AlignedCaptures:
    """Captures cut to a common window: samples (M, n); start_offset_s[i] is capture i's first
    kept sample time minus the common start (|.| <= half a sample); start (whole, frac)."""

    samples: np.ndarray
    sample_rate_hz: float
    start_whole: int
    start_frac: float
    start_offset_s: np.ndarray
    captures: tuple = field(repr=False, default=())


def align_captures(captures, min_samples=1024):
    """Cut captures to the window they all cover (see the module doc). Raises ValueError naming
    the captures when sample rates differ or the captures do not overlap by min_samples."""
    caps = list(captures)
    if len(caps) < 2:
        raise ValueError(f"need at least 2 captures to align, got {len(caps)}")
    fs = caps[0].sample_rate_hz
    for i, c in enumerate(caps[1:], 1):
        if abs(c.sample_rate_hz - fs) > 1e-9 * fs:
            raise ValueError(
                f"mismatched sample rates: capture {_label(caps[0], 0)} at {fs:g} S/s, "
                f"capture {_label(c, i)} at {c.sample_rate_hz:g} S/s; resample to one rate"
            )
    w0 = caps[0].start_whole
    starts = np.array([(c.start_whole - w0) + c.start_frac for c in caps])  # s after w0
    ends = starts + np.array([c.duration_s for c in caps])
    lo, hi = float(starts.max()), float(ends.min())
    if hi - lo < min_samples / fs:
        a, b = int(np.argmax(starts)), int(np.argmin(ends))
        raise ValueError(
            f"captures do not overlap in time: capture {_label(caps[a], a)} starts at "
            f"{w0 + starts[a]:.9f} s but capture {_label(caps[b], b)} ends at "
            f"{w0 + ends[b]:.9f} s (node clocks); overlap {max(hi - lo, 0.0) * 1e3:.3f} ms, "
            f"need at least {min_samples} samples ({min_samples / fs * 1e3:.3f} ms)"
        )
    skip = np.rint((lo - starts) * fs).astype(np.int64)
    first = starts + skip / fs
    n = int(min(c.n - k for c, k in zip(caps, skip, strict=True)))
    n = min(n, int(math.floor((hi - first.max()) * fs + 1e-6)))
    if n < min_samples:
        raise ValueError(f"captures overlap by only {n} samples, need {min_samples}")
    out = np.stack([c.samples[k : k + n] for c, k in zip(caps, skip, strict=True)])
    whole = w0 + math.floor(lo)
    return AlignedCaptures(
        samples=out,
        sample_rate_hz=fs,
        start_whole=int(whole),
        start_frac=float(lo - math.floor(lo)),
        start_offset_s=first - lo,
        captures=tuple(caps),
    )


def band_select(x, sample_rate_hz, offset_hz, bandwidth_hz):
    """Keep only |f - offset_hz| <= bandwidth_hz / 2 of x (rows of a 2-D array too), by an FFT
    mask over the whole capture: separates a reference transmitter from the emitter of
    interest in one wideband capture."""
    a = np.asarray(x)
    if bandwidth_hz <= 0:
        raise ValueError(f"bandwidth_hz must be positive, got {bandwidth_hz}")
    if abs(offset_hz) + bandwidth_hz / 2 > sample_rate_hz / 2 * (1 + 1e-9):
        raise ValueError(
            f"band {offset_hz:g} +- {bandwidth_hz / 2:g} Hz lies outside the "
            f"capture's +-{sample_rate_hz / 2:g} Hz"
        )
    n = a.shape[-1]
    f = sfft.fftfreq(n, 1.0 / sample_rate_hz)
    mask = np.abs(f - offset_hz) <= bandwidth_hz / 2
    return sfft.ifft(sfft.fft(a, axis=-1) * mask, axis=-1).astype(np.complex64)


@dataclass(frozen=True)
class CaptureTdoa:
    """TDOAs of every capture against the reference capture, node clocks as they read."""

    tdoa_s: np.ndarray  # (M-1,) arrival at capture i minus at the reference, i != ref
    std_s: np.ndarray  # (M-1,) predicted std of the delay estimates alone
    estimates: list  # DelayEstimate per capture, None for the reference
    ref: int
    others: np.ndarray  # the capture indexes of the tdoa_s entries


def tdoa_from_captures(
    aligned: AlignedCaptures,
    ref=0,
    weighting=None,
    max_delay_s=None,
    band=None,
    freq_offsets_hz=None,
):
    """GCC delays of every aligned capture against capture `ref`, start offsets added back.

    freq_offsets_hz: (M,) baseband frequency of each capture minus the reference's (LO
    errors, e.g. from sync_captures); removed before correlating.

    band: optional (offset_hz, bandwidth_hz) to correlate only that part of the captures.
    weighting: None picks "ml" for whole captures and "plain" with a band (the masked bins
    carry no noise to weight by, so "ml" and "phat" cannot be used with a band).
    """
    x = aligned.samples
    m = x.shape[0]
    if not 0 <= ref < m:
        raise ValueError(f"ref {ref} out of range for {m} captures")
    fs = aligned.sample_rate_hz
    if band is not None:
        if weighting not in (None, "plain"):
            raise ValueError(
                f"weighting {weighting!r} cannot be used with a band: the bins "
                "outside it are empty; use 'plain' (or None)"
            )
        weighting = "plain"
        x = band_select(x, fs, *band)
    elif weighting is None:
        weighting = "ml"
    x = remove_frequency_offsets(x, fs, freq_offsets_hz, ref)
    others = np.array([i for i in range(m) if i != ref])
    est: list[DelayEstimate | None] = [None] * m
    for i in others:
        est[i] = estimate_delay(x[ref], x[i], fs, weighting=weighting, max_delay_s=max_delay_s)
    off = aligned.start_offset_s
    tdoa = np.array([est[i].delay_s + off[i] - off[ref] for i in others])
    std = np.array([est[i].std_s for i in others])
    return CaptureTdoa(tdoa_s=tdoa, std_s=std, estimates=est, ref=ref, others=others)


def remove_frequency_offsets(x, sample_rate_hz, freq_offsets_hz, ref=0):
    """Rows of x with their frequency offsets (against row `ref`) removed: x_i(t) *
    exp(-j 2 pi df_i t). None: x unchanged."""
    if freq_offsets_hz is None:
        return x
    f = np.asarray(freq_offsets_hz, dtype=float)
    if f.shape != (x.shape[0],) or not np.all(np.isfinite(f)):
        raise ValueError(f"freq_offsets_hz must hold {x.shape[0]} finite values, got {f}")
    t = np.arange(x.shape[1]) / sample_rate_hz
    out = np.array(x, dtype=np.complex128)
    for i in range(x.shape[0]):
        d = f[i] - f[ref]
        if d != 0:
            out[i] *= np.exp(-2j * np.pi * d * t)
    return out


def delay_and_frequency(reference, signal, sample_rate_hz, max_delay_s, max_freq_hz):
    """Coarse cross-ambiguity search: the (delay_s, freq_hz) maximizing the correlation of
    signal * exp(-j 2 pi f t) with reference, over |delay| <= max_delay_s and |f| <=
    max_freq_hz on a grid of half the 1 / duration spacing, then the frequency refined from
    the tone of the delay-aligned product. Frequency shifts are circular shifts of the
    zero-padded spectrum, so each hypothesis costs one inverse FFT."""
    a = np.asarray(reference)
    b = np.asarray(signal)
    n = a.size
    fs = float(sample_rate_hz)
    nfft = sfft.next_fast_len(2 * n)
    fa = np.conj(sfft.fft(a, nfft))
    fb = sfft.fft(b, nfft)
    bin_hz = fs / nfft
    kmax = int(np.ceil(max_freq_hz / bin_hz))
    max_lag = int(min(n - 1, np.ceil(max_delay_s * fs) + 1))
    win = np.r_[nfft - max_lag : nfft, 0 : max_lag + 1]
    best = (-1.0, 0, 0)
    for k in range(-kmax, kmax + 1):  # every bin: 1 / (2 duration) apart, padding 2x
        c = np.abs(sfft.ifft(np.roll(fb, -k) * fa)[win])
        i = int(np.argmax(c))
        if c[i] > best[0]:
            best = (float(c[i]), i - max_lag, k)
    _, lag, k = best
    # refine the frequency from the tone of b(t + lag) conj(a(t))
    if lag >= 0:
        prod = b[lag:] * np.conj(a[: n - lag])
    else:
        prod = b[: n + lag] * np.conj(a[-lag:])
    nf = sfft.next_fast_len(8 * prod.size)
    spec = np.abs(sfft.fft(prod, nf)) ** 2
    f = sfft.fftfreq(nf, 1 / fs)
    near = np.abs(f - k * bin_hz) <= 2 * bin_hz
    j = np.flatnonzero(near)[np.argmax(spec[near])]
    y0, y1, y2 = spec[j - 1], spec[j], spec[(j + 1) % nf]
    den = y0 - 2 * y1 + y2
    frac = 0.5 * (y0 - y2) / den if den < 0 else 0.0
    return lag / fs, float(f[j] + np.clip(frac, -0.5, 0.5) * fs / nf)


def reference_offsets(
    aligned: AlignedCaptures,
    positions_enu_m,
    ref_tx_enu_m,
    ref=0,
    band=None,
    weighting=None,
    max_delay_s=None,
    freq_offsets_hz=None,
) -> ClockOffsets:
    """Each capture's clock offset against capture `ref`, from a reference transmitter at a
    known position heard in the captures (band: its (offset_hz, bandwidth_hz))."""
    td = tdoa_from_captures(aligned, ref, weighting, max_delay_s, band, freq_offsets_hz)
    m = aligned.samples.shape[0]
    meas = np.zeros(m)
    std = np.zeros(m)
    meas[td.others] = td.tdoa_s
    std[td.others] = td.std_s
    off = clock_offsets(positions_enu_m, ref_tx_enu_m, meas, std, ref)
    if freq_offsets_hz is not None:
        f = np.asarray(freq_offsets_hz, dtype=float)
        off = ClockOffsets(off.offsets_s, off.std_s, ref, f - f[ref])
    return off


def tdoa_covariance(delay_std_s, clock_std_s, ref, others):
    """(M-1, M-1) covariance of TDOAs against `ref`: delay variances on the diagonal, each
    node's clock variance on its own entry and the reference clock's variance shared by all."""
    d = np.asarray(delay_std_s, dtype=float)
    c = np.asarray(clock_std_s, dtype=float)
    cov = np.diag(d**2 + c[others] ** 2) + c[ref] ** 2
    return cov


def locate_captures(
    captures,
    positions_enu_m=None,
    ref=0,
    weighting=None,
    max_delay_s=None,
    band=None,
    offsets: ClockOffsets | None = None,
    min_samples=1024,
    initial_enu_m=None,
    confidence=0.95,
) -> PositionFix:
    """Align, correlate and locate: a PositionFix from timestamped captures of one emitter.

    positions_enu_m: (M, 2|3), default each capture's position_enu_m. Clock errors enter the
    covariance from each capture's time_std_s, or, with offsets (from a reference
    transmitter), are removed and replaced by the offsets' own std. weighting: GCC weighting,
    default "ml" (reaches the CRB and ignores the noise-only part of a capture wider than the
    signal; "phat" suits multipath-rich channels), "plain" with a band. The fix's extra holds the
    TDOAs ("tdoa_s", "tdoa_cov_s2") and the delay estimates ("estimates").
    """
    caps = list(captures)
    if positions_enu_m is None:
        if any(c.position_enu_m is None for c in caps):
            raise ValueError(
                "sensor positions missing: give positions_enu_m or set every "
                "capture's position_enu_m"
            )
        positions_enu_m = np.stack([np.asarray(c.position_enu_m, dtype=float) for c in caps])
    pos = np.asarray(positions_enu_m, dtype=float)
    if pos.ndim != 2 or pos.shape[0] != len(caps):
        raise ValueError(
            f"positions_enu_m must be ({len(caps)}, 2|3), one row per capture, got "
            f"shape {pos.shape}"
        )
    dim = pos.shape[1]
    if len(caps) < dim + 1:
        raise ValueError(
            f"too few sensors: TDOA localization in {dim}-D needs at least "
            f"{dim + 1} captures, got {len(caps)}"
        )
    aligned = align_captures(caps, min_samples)
    freqs = None if offsets is None else offsets.freq_offsets_hz
    td = tdoa_from_captures(aligned, ref, weighting, max_delay_s, band, freqs)
    tdoa = td.tdoa_s
    if offsets is None:
        clock_std = np.array([c.time_std_s for c in caps])
    else:
        if offsets.offsets_s.shape != (len(caps),):
            raise ValueError(f"offsets hold {offsets.offsets_s.size} nodes, captures {len(caps)}")
        tdoa = offsets.correct(tdoa, td.others, ref)
        clock_std = np.asarray(offsets.std_s, dtype=float)
    cov = tdoa_covariance(td.std_s, clock_std, ref, td.others)
    fix = locate_tdoa(
        pos,
        tdoa,
        tdoa_cov_s2=cov,
        ref_sensor=ref,
        initial_enu_m=initial_enu_m,
        confidence=confidence,
    )
    fix.extra.update(
        tdoa_s=tdoa, tdoa_cov_s2=cov, estimates=td.estimates, start_offset_s=aligned.start_offset_s
    )
    return fix


def shift_capture(c: Capture, seconds: float) -> Capture:
    """The same capture with its start time moved by `seconds` (a clock correction)."""
    return Capture(
        c.samples,
        c.sample_rate_hz,
        c.start_whole,
        c.start_frac + seconds,
        c.node_id,
        c.position_enu_m,
        c.time_std_s,
    )


def sync_captures(
    captures,
    positions_enu_m,
    ref_tx_enu_m,
    band=None,
    ref=0,
    max_offset_s=0.01,
    weighting=None,
    min_samples=1024,
    passes=2,
    max_freq_offset_hz=0.0,
):
    """Clock offsets from a reference transmitter at a known position, heard in every capture
    (band: its (offset_hz, bandwidth_hz) within the captures).

    The first pass searches +-max_offset_s (plus the baselines) for each capture's offset;
    its captures are then shifted onto the reference node's clock so that the next pass
    correlates fully overlapping windows. Returns (corrected captures, ClockOffsets): the
    offsets are the total removed (node clock minus reference node clock), their std that of
    the last pass's delay estimates, which becomes each corrected capture's time_std_s (the
    reference node's clock is the time base now: 0).

    max_freq_offset_hz > 0: the receivers' LOs are free-running (RTL-SDR style), so the
    captures are also offset in frequency, which decorrelates them over a long capture. The
    first pass then searches delay and frequency together (delay_and_frequency) and later
    passes correlate with the frequency offsets removed; they are returned in the offsets'
    freq_offsets_hz (pass them on to locate_captures through `offsets`).
    """
    caps = list(captures)
    pos = np.asarray(positions_enu_m, dtype=float)
    span = float(np.max(np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)))
    total = np.zeros(len(caps))
    off = None
    freqs = None
    if max_freq_offset_hz > 0:
        aligned = align_captures(caps, min_samples)
        x = (
            aligned.samples
            if band is None
            else band_select(aligned.samples, aligned.sample_rate_hz, *band)
        )
        limit = span / 299_792_458.0 + max_offset_s
        freqs = np.zeros(len(caps))
        coarse = np.zeros(len(caps))
        for i in range(len(caps)):
            if i != ref:
                d, freqs[i] = delay_and_frequency(
                    x[ref], x[i], aligned.sample_rate_hz, limit, max_freq_offset_hz
                )
                coarse[i] = d + aligned.start_offset_s[i] - aligned.start_offset_s[ref]
        rng = np.linalg.norm(pos - np.asarray(ref_tx_enu_m, dtype=float), axis=1)
        coarse -= (rng - rng[ref]) / 299_792_458.0
        total += coarse
        caps = [shift_capture(c, -o) for c, o in zip(caps, coarse, strict=True)]
    for k in range(max(1, passes)):
        aligned = align_captures(caps, min_samples)
        first = k == 0 and freqs is None
        limit = span / 299_792_458.0 + (max_offset_s if first else 1e-4)
        off = reference_offsets(aligned, pos, ref_tx_enu_m, ref, band, weighting, limit, freqs)
        total += off.offsets_s
        caps = [shift_capture(c, -o) for c, o in zip(caps, off.offsets_s, strict=True)]
    caps = [
        Capture(
            c.samples,
            c.sample_rate_hz,
            c.start_whole,
            c.start_frac,
            c.node_id,
            c.position_enu_m,
            float(sd),
        )
        for c, sd in zip(caps, off.std_s, strict=True)
    ]
    return caps, ClockOffsets(
        offsets_s=total, std_s=off.std_s, ref_node=ref, freq_offsets_hz=off.freq_offsets_hz
    )
