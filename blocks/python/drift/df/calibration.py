#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Coherent-array calibration: per-channel complex gain (phase, gain) and delay, estimated from
a reference and removed from the snapshots.

Model: channel m outputs x_m[k] = g_m s_m(k - D_m) + noise, with s_m what element m receives,
g_m a complex gain and D_m a delay in samples (integer and fractional: cables, buffers, filter
group delays). Both are relative to channel 0 (g_0 = 1, D_0 = 0).

Estimation from a reference: a known emitter (its azimuth seen from the array) or a common
noise source fed to every channel. calibrate_array gives the complex gains alone (narrowband,
every delay zero); calibrate_wideband first measures each channel's delay against channel 0
(GCC, plain weighting, sub-sample), removes it, then fits the gains.

Removal (ArrayCalibration.apply) is linear: channel m is advanced by D_m with a Kaiser-windowed
sinc fractional-delay FIR of 2 * interp_half_taps taps (integer delays are exact shifts), and
only the samples that every channel has data for are returned. Nothing wraps from one end of a
block to the other; the block loses edge_samples() at its start and end (their sum is the span
of the delays plus the FIR's length). With the default 16 half-taps the FIR's complex error
is below -76 dB over the central 80 % of the sample rate (-24 dB at 90 %): keep the signals of
interest inside it.

Calibrations are saved as JSON (save / load; the format is in to_dict) so a flowgraph
(drift.bearing) can apply one made elsewhere.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np

from .aoa import _rank_one_offdiagonal, _snapshots, spatial_covariance, steering_vectors
from .crb import _positions3
from .tdoa import estimate_delay

FILE_TYPE = "drift_array_calibration"
FILE_VERSION = 1
#: the fields of a calibration's mapping (to_dict / from_dict) besides type and version
FIELDS = (
    "elements",
    "phase_deg",
    "gain_db",
    "delay_samples",
    "sample_rate_hz",
    "center_freq_hz",
    "interp_half_taps",
)
DEFAULT_HALF_TAPS = 16
_KAISER_BETA = 8.0
_INTEGER_TOL = 1e-9  # a delay within this of an integer is shifted exactly (no FIR)


def _vector(value, name, m=None, dtype=float):
    try:
        a = np.array(value, dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of numbers, got {value!r}") from None
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a one-dimensional list of numbers, got shape {a.shape}")
    if m is not None and a.size != m:
        raise ValueError(f"{name} has {a.size} values for {m} channels")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds non-finite values (NaN or inf)")
    return a


def _optional_positive(value, name):
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or None, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return v


def fractional_delay_taps(frac, half_taps=DEFAULT_HALF_TAPS):
    """(offsets, taps) of the FIR that evaluates x at k + frac from x[k + offsets]:
    offsets -half_taps + 1 .. half_taps, a Kaiser-windowed sinc (beta 8), 0 <= frac < 1."""
    n = np.arange(-half_taps + 1, half_taps + 1)
    t = n - frac
    arg = np.clip(1.0 - (t / half_taps) ** 2, 0.0, None)
    return n, np.sinc(t) * np.i0(_KAISER_BETA * np.sqrt(arg)) / np.i0(_KAISER_BETA)


@dataclass(frozen=True)
class ArrayCalibration:
    """Per-channel complex gains and delays (samples) relative to channel 0.

    apply() removes them. sample_rate_hz: the rate the delays were measured at (None: unknown;
    a flowgraph refuses a calibration made at another rate). center_freq_hz: the tuning the
    phases hold at (None: unknown), for the record.
    """

    gains: np.ndarray  # (M,) complex, gains[0] == 1 for an estimated calibration
    delay_samples: np.ndarray  # (M,), zero for a narrowband calibration
    sample_rate_hz: float | None = None
    center_freq_hz: float | None = None
    interp_half_taps: int = DEFAULT_HALF_TAPS

    def __post_init__(self):
        g = _vector(self.gains, "gains", dtype=complex)
        if np.any(g == 0):
            raise ValueError("gains must be non-zero (a channel with zero gain carries nothing)")
        d = _vector(self.delay_samples, "delay_samples", g.size)
        h = self.interp_half_taps
        if isinstance(h, bool) or not isinstance(h, int | np.integer) or not 1 <= h <= 256:
            raise ValueError(f"interp_half_taps must be an integer in 1..256, got {h!r}")
        object.__setattr__(self, "gains", g)
        object.__setattr__(self, "delay_samples", d)
        object.__setattr__(self, "interp_half_taps", int(h))
        object.__setattr__(
            self, "sample_rate_hz", _optional_positive(self.sample_rate_hz, "sample_rate_hz")
        )
        object.__setattr__(
            self, "center_freq_hz", _optional_positive(self.center_freq_hz, "center_freq_hz")
        )

    @classmethod
    def from_errors(cls, phase_deg, gain_db, delay_samples=None, **kwargs):
        """From per-channel phases (deg), gains (dB) and delays (samples), as a scenario's
        array errors or a calibration file list them."""
        ph = _vector(phase_deg, "phase_deg")
        gd = _vector(gain_db, "gain_db", ph.size)
        d = (
            np.zeros(ph.size)
            if delay_samples is None
            else _vector(delay_samples, "delay_samples", ph.size)
        )
        return cls(10 ** (gd / 20) * np.exp(1j * np.deg2rad(ph)), d, **kwargs)

    @property
    def n_channels(self):
        return self.gains.size

    @property
    def phase_deg(self):
        return np.rad2deg(np.angle(self.gains))

    @property
    def gain_db(self):
        return 20 * np.log10(np.abs(self.gains))

    def _plan(self):
        """Per channel: (integer shift, FIR offsets or None, taps or None)."""
        plan = []
        for d in self.delay_samples:
            i = math.floor(d)
            f = d - i
            if f > 1 - _INTEGER_TOL:
                i, f = i + 1, 0.0
            if f < _INTEGER_TOL:
                plan.append((i, None, None))
            else:
                off, taps = fractional_delay_taps(f, self.interp_half_taps)
                plan.append((i, off, taps))
        return plan

    def edge_samples(self):
        """(lead, trail): samples of a block of N that apply() cannot correct at its start
        and end; apply() returns N - lead - trail samples, output k being the time of input
        sample lead + k on channel 0."""
        lo, hi = [], []
        for i, off, _ in self._plan():
            lo.append(i if off is None else i + off[0])
            hi.append(i if off is None else i + off[-1])
        return max(0, -min(lo)), max(0, max(hi))

    def apply(self, snapshots):
        """Corrected snapshots (M, N - lead - trail): each channel advanced by its delay (exact
        integer shift plus the fractional-delay FIR, linear: no sample wraps around) and
        divided by its gain. See edge_samples() for the span."""
        x = np.asarray(snapshots)
        m = self.n_channels
        if x.ndim != 2 or x.shape[0] != m:
            raise ValueError(f"snapshots must be ({m}, N), got shape {x.shape}")
        lead, trail = self.edge_samples()
        n_out = x.shape[1] - lead - trail
        if n_out < 1:
            raise ValueError(
                f"a block of {x.shape[1]} samples is too short for delays of "
                f"{np.round(self.delay_samples, 3).tolist()} samples: it needs "
                f"more than {lead + trail} (the delays' span and the FIR)"
            )
        out = np.empty((m, n_out), dtype=np.result_type(x.dtype, np.complex64))
        for ch, (i, off, taps) in enumerate(self._plan()):
            if off is None:
                start = lead + i
                out[ch] = x[ch, start : start + n_out]
            else:
                start = lead + i + off[0]
                seg = x[ch, start : start + n_out + taps.size - 1]
                # out[k] = sum_j taps[j] x[start + k + j]
                out[ch] = np.convolve(seg, taps[::-1], mode="valid")
        out /= self.gains[:, None].astype(out.dtype)
        return out

    def to_dict(self):
        """The calibration file's content: {"type": "drift_array_calibration", "version": 1,
        "elements": M, "phase_deg", "gain_db", "delay_samples" (lists of M), "sample_rate_hz",
        "center_freq_hz" (numbers or null), "interp_half_taps"}."""
        return {
            "type": FILE_TYPE,
            "version": FILE_VERSION,
            "elements": int(self.n_channels),
            "phase_deg": self.phase_deg.tolist(),
            "gain_db": self.gain_db.tolist(),
            "delay_samples": self.delay_samples.tolist(),
            "sample_rate_hz": self.sample_rate_hz,
            "center_freq_hz": self.center_freq_hz,
            "interp_half_taps": self.interp_half_taps,
        }

    @classmethod
    def from_dict(cls, data, source="calibration"):
        """The inverse of to_dict; errors name the source and the field."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping, got {type(data).__name__}")
        if data.get("type", FILE_TYPE) != FILE_TYPE:
            raise ValueError(f"{source}: type is {data.get('type')!r}, not {FILE_TYPE!r}")
        if data.get("version", FILE_VERSION) != FILE_VERSION:
            raise ValueError(
                f"{source}: version {data.get('version')!r} is not supported "
                f"(this is version {FILE_VERSION})"
            )
        extra = sorted(set(data) - {"type", "version", *FIELDS})
        if extra:
            raise ValueError(f"{source}: unknown field {extra[0]!r}")
        for key in ("phase_deg", "gain_db"):
            if key not in data:
                raise ValueError(f"{source}: missing field {key!r}")
        try:
            cal = cls.from_errors(
                data["phase_deg"],
                data["gain_db"],
                data.get("delay_samples"),
                sample_rate_hz=data.get("sample_rate_hz"),
                center_freq_hz=data.get("center_freq_hz"),
                interp_half_taps=data.get("interp_half_taps", DEFAULT_HALF_TAPS),
            )
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
        if "elements" in data and data["elements"] != cal.n_channels:
            raise ValueError(
                f"{source}: elements is {data['elements']!r} but phase_deg has "
                f"{cal.n_channels} values"
            )
        return cal

    def save(self, path):
        """Write the calibration as JSON (atomically: a temporary file renamed)."""
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=1)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path):
        """Read a calibration file written by save(); errors name the file and the field."""
        path = os.fspath(path)
        try:
            with open(path) as f:
                data = json.load(f)
        except OSError as exc:
            raise ValueError(f"{path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from None
        return cls.from_dict(data, path)


def calibrate_array(ref_snapshots, positions_wl=None, ref_azimuth_deg=None):
    """Narrowband per-channel gain and phase from a reference: a known emitter at
    ref_azimuth_deg (with positions_wl), or a common noise source fed to every channel
    (ref_azimuth_deg None). The rank-one fit to the covariance's off-diagonal entries makes
    the estimate insensitive to unequal channel noise; the steering vector is divided out.
    """
    x = _snapshots(ref_snapshots)
    v = _rank_one_offdiagonal(spatial_covariance(x))
    if ref_azimuth_deg is not None:
        if positions_wl is None:
            raise ValueError("a reference emitter needs positions_wl")
        a = steering_vectors(positions_wl, ref_azimuth_deg)[:, 0]
        if a.size != x.shape[0]:
            raise ValueError(f"mismatched lengths: {x.shape[0]} channels, {a.size} elements")
        v = v / a
    g = v / v[0]
    return ArrayCalibration(gains=g, delay_samples=np.zeros(x.shape[0]))


def aperture_delays_s(positions_wl, azimuth_deg, freq_hz, elevation_deg=0.0):
    """(M,) arrival time of a plane wave's envelope at each element relative to element 0 (s):
    -(p_m - p_0) . u / f, p in wavelengths at freq_hz (earlier at elements towards it)."""
    p = _positions3(positions_wl)
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    u = np.array([np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)])
    return -((p - p[0]) @ u) / float(freq_hz)


def calibrate_wideband(
    ref_captures,
    sample_rate_hz=None,
    max_delay_s=None,
    positions_wl=None,
    ref_azimuth_deg=None,
    ref_freq_hz=None,
    center_freq_hz=None,
    interp_half_taps=DEFAULT_HALF_TAPS,
):
    """Wideband calibration from a reference in every channel (M, N): per-channel integer +
    fractional delay against channel 0 (GCC, plain weighting), then, with the delays removed
    (linearly, see ArrayCalibration.apply), the complex gains as in calibrate_array.

    The reference: a common noise source fed to every channel (ref_azimuth_deg None), or a
    known emitter at ref_azimuth_deg seen from the array with element positions_wl (in
    wavelengths at its frequency). For an emitter, ref_freq_hz (its RF frequency) lets the
    envelope's own delay across the aperture (up to aperture / c, a few thousandths of a sample
    at MS/s rates) be taken out of the measured delays; without it that part stays in them.
    sample_rate_hz: the samples' rate (None: delays and max_delay_s in samples), recorded in
    the result with center_freq_hz (the tuning).
    """
    x = _snapshots(ref_captures)
    fs = _optional_positive(sample_rate_hz, "sample_rate_hz")
    if ref_azimuth_deg is not None and positions_wl is None:
        raise ValueError("a reference emitter (ref_azimuth_deg) needs positions_wl")
    if ref_freq_hz is not None:
        if ref_azimuth_deg is None:
            raise ValueError("ref_freq_hz applies to a reference emitter: give ref_azimuth_deg")
        if fs is None:
            raise ValueError("ref_freq_hz needs sample_rate_hz (the aperture's delay in samples)")
        _optional_positive(ref_freq_hz, "ref_freq_hz")
    delays = np.zeros(x.shape[0])
    for m in range(1, x.shape[0]):
        delays[m] = estimate_delay(
            x[0], x[m], 1.0 if fs is None else fs, weighting="plain", max_delay_s=max_delay_s
        ).delay_samples
    if ref_freq_hz is not None:
        geo = aperture_delays_s(positions_wl, ref_azimuth_deg, ref_freq_hz)
        if geo.size != x.shape[0]:
            raise ValueError(f"mismatched lengths: {x.shape[0]} channels, {geo.size} elements")
        delays -= geo * fs
    aligned = ArrayCalibration(
        np.ones(x.shape[0], complex), delays, interp_half_taps=interp_half_taps
    ).apply(x)
    gains = calibrate_array(aligned, positions_wl, ref_azimuth_deg).gains
    return ArrayCalibration(
        gains=gains,
        delay_samples=delays,
        sample_rate_hz=fs,
        center_freq_hz=center_freq_hz,
        interp_half_taps=interp_half_taps,
    )
