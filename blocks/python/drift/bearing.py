#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.bearing: angle of arrival from a coherent multi-channel receiver (a thin GR wrapper
over gnuradio.drift.df.aoa.estimate_bearings).

M inputs, one per array element (one LO and one clock: KrakenSDR, a 2-channel Pluto or
B210, or a simulated array node). Every n_snapshots samples, the spatial covariance of the
(optionally calibrated) snapshots gives the method's spectrum (Bartlett, MVDR or MUSIC) over
azimuth, the n_sources highest peaks refined to the continuous maximum, each with its
standard deviation from the stochastic Cramer-Rao bound at the estimated SNR. One PDU per
estimate on "bearings": metadata {azimuth_deg (f64vector, strongest first), std_deg, snr_db,
method, n_snapshots, offset, rx_time (of the first snapshot, when input 0 carries rx_time)},
data: the spectrum in dB over the azimuth grid (f32vector, 0 dB maximum; grid: 0..360 deg
in grid_step_deg for a planar array, broadside +-90 deg for a linear one).

Geometry: "uca" (element 0 due north of the centre, the others clockwise, radius size_wl) or
"ula" (west to east, element 0 westmost, spacing size_wl), turned clockwise by
orientation_deg: the layout of the simulator's array nodes. Azimuths are clockwise from
north (for a ULA, from the array's broadside, which cannot tell front from back).

Calibration (per-channel phase, gain and delay; see gnuradio.drift.df.calibration), either
calibration_file: the path of a file written by ArrayCalibration.save (e.g. from
df.calibrate_wideband on a reference capture), or calibration: an ArrayCalibration, a dict
in the file's format, or, as before, M complex factors that multiply the channels (a
narrowband calibration: 1 / the gains). A calibration made at another sample rate is refused
(its delays are in samples). Delays are removed linearly: each estimate uses n_snapshots
corrected snapshots, for which the block keeps the span of the delays plus the fractional-delay
FIR's length from the previous samples (the first estimate waits for them), and its offset
and rx_time are those of its first corrected snapshot on input 0.
"""

from __future__ import annotations

import math

import numpy as np
import pmt
from gnuradio import gr

from . import tags
from .df import aoa
from .df.calibration import ArrayCalibration


def array_positions_wl(geometry, elements, size_wl, orientation_deg=0.0):
    """(M, 2) element positions in wavelengths (east, north) of a ULA or UCA."""
    if geometry == "uca":
        p = aoa.uca_positions(int(elements), float(size_wl))
    elif geometry == "ula":
        p = aoa.ula_positions(int(elements), float(size_wl))
    else:
        raise ValueError(f"geometry must be 'uca' or 'ula', got {geometry!r}")
    th = math.radians(orientation_deg)  # clockwise seen from above
    e, n = p[:, 0], p[:, 1]
    return np.column_stack(
        [e * math.cos(th) + n * math.sin(th), -e * math.sin(th) + n * math.cos(th)]
    )


def load_calibration(calibration, calibration_file, elements, samp_rate):
    """The ArrayCalibration for the block's parameters (None when there is none)."""
    if calibration_file not in (None, "") and calibration is not None:
        raise ValueError("give calibration or calibration_file, not both")
    if calibration_file not in (None, ""):
        cal = ArrayCalibration.load(calibration_file)
        where = f"calibration_file {calibration_file}"
    elif calibration is None:
        return None
    elif isinstance(calibration, ArrayCalibration):
        cal, where = calibration, "calibration"
    elif isinstance(calibration, dict):
        cal, where = ArrayCalibration.from_dict(calibration, "calibration"), "calibration"
    else:
        try:
            factors = np.asarray(calibration, dtype=complex)
        except (TypeError, ValueError):
            raise ValueError(
                "calibration must be an ArrayCalibration, a dict in the calibration "
                f"file format or {elements} complex factors, got "
                f"{calibration!r}"
            ) from None
        if factors.shape != (elements,):
            raise ValueError(
                f"calibration must hold {elements} complex factors, got shape {factors.shape}"
            )
        if not np.all(np.isfinite(factors)) or np.any(factors == 0):
            raise ValueError("calibration factors must be finite and non-zero")
        return ArrayCalibration(1.0 / factors, np.zeros(elements))
    if cal.n_channels != elements:
        raise ValueError(
            f"{where} is for {cal.n_channels} channels, the block has {elements} elements"
        )
    if cal.sample_rate_hz is not None and abs(cal.sample_rate_hz - samp_rate) > 1e-9 * samp_rate:
        raise ValueError(
            f"{where} was made at {cal.sample_rate_hz:g} Hz but samp_rate is "
            f"{samp_rate:g} Hz: its delays (in samples) do not hold"
        )
    return cal


class bearing(gr.sync_block):
    """See the module documentation."""

    def __init__(
        self,
        samp_rate,
        geometry="uca",
        elements=5,
        size_wl=0.425,
        orientation_deg=0.0,
        method="music",
        n_snapshots=1024,
        n_sources=1,
        grid_step_deg=1.0,
        calibration=None,
        calibration_file="",
    ):
        self._fs = float(samp_rate)
        if not (math.isfinite(self._fs) and self._fs > 0):
            raise ValueError(f"samp_rate must be positive, got {samp_rate}")
        if int(elements) < 2:
            raise ValueError(f"elements must be at least 2, got {elements}")
        if method not in aoa.METHODS:
            raise ValueError(f"method must be one of {aoa.METHODS}, got {method!r}")
        if int(n_snapshots) < int(elements):
            raise ValueError(
                f"n_snapshots ({n_snapshots}) must be at least the number of elements ({elements})"
            )
        if not 1 <= int(n_sources) < int(elements):
            raise ValueError(f"n_sources must be 1..{int(elements) - 1}, got {n_sources}")
        self.positions_wl = array_positions_wl(geometry, elements, size_wl, orientation_deg)
        m = int(elements)
        self.cal = load_calibration(calibration, calibration_file, m, self._fs)
        gr.sync_block.__init__(self, "drift_bearing", [np.complex64] * m, None)
        self.m = m
        self.method = method
        self.n = int(n_snapshots)
        self.n_sources = int(n_sources)
        self.grid_step = float(grid_step_deg)
        lead, trail = (0, 0) if self.cal is None else self.cal.edge_samples()
        self._lead = lead
        self._keep = lead + trail  # samples carried over from one estimate to the next
        self._buf = np.empty((m, self._keep + self.n), dtype=np.complex64)
        self._fill = 0
        self._buf_start = 0  # absolute input index of _buf[:, 0]
        self._anchor = None
        self.results = []  # BearingResult per estimate
        self.message_port_register_out(pmt.intern("bearings"))

    def work(self, input_items, output_items):
        n = len(input_items[0])
        done = 0
        size = self._buf.shape[1]
        while done < n:
            take = min(n - done, size - self._fill)
            for t in self.get_tags_in_window(0, done, done + take, tags.RX_TIME):
                self._anchor = tags.Anchor.from_tag(t, self._fs) or self._anchor
            for k in range(self.m):
                self._buf[k, self._fill : self._fill + take] = input_items[k][done : done + take]
            self._fill += take
            done += take
            if self._fill == size:
                self._estimate(self._buf_start + self._lead)
                if self._keep:
                    self._buf[:, : self._keep] = self._buf[:, self.n :]
                self._fill = self._keep
                self._buf_start += self.n
        return n

    def _estimate(self, first):
        x = self._buf if self.cal is None else self.cal.apply(self._buf)
        res = aoa.estimate_bearings(
            x, self.positions_wl, self.method, self.n_sources, self.grid_step
        )
        self.results.append(res)
        meta = pmt.make_dict()
        for key, vals in (
            ("azimuth_deg", [b.azimuth_deg for b in res.bearings]),
            ("std_deg", [b.std_deg for b in res.bearings]),
            ("snr_db", [b.snr_db for b in res.bearings]),
        ):
            meta = pmt.dict_add(meta, pmt.intern(key), pmt.init_f64vector(len(vals), vals))
        meta = pmt.dict_add(meta, pmt.intern("method"), pmt.intern(self.method))
        meta = pmt.dict_add(meta, pmt.intern("n_snapshots"), pmt.from_long(self.n))
        meta = pmt.dict_add(meta, pmt.intern("offset"), pmt.from_uint64(int(first)))
        if self._anchor is not None:
            meta = pmt.dict_add(meta, tags.RX_TIME, tags.rx_time(*self._anchor.at(first)))
        spec = [float(v) for v in res.spectrum_db]
        self.message_port_pub(
            pmt.intern("bearings"), pmt.cons(meta, pmt.init_f32vector(len(spec), spec))
        )
