#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.ref_sync: clock offsets of unsynchronized receivers from a reference transmitter.

The low-cost TDOA method: a transmitter at a known position (a broadcast station, a beacon)
is heard by every node. Cross-correlating each node's capture of it against the reference
node's gives the difference of their clocks once the known geometric delays are removed
(gnuradio.drift.df.sync_captures: a coarse search over +-max_offset, then a fine pass on
windows shifted into full overlap).

Inputs: one timestamped stream per node (rx_time tags, from the device or drift.time_tagger),
all at samp_rate, the reference transmitter within the captured band at ref_offset_hz (from
the centre) and ref_bandwidth_hz wide. Every capture_s of samples, one message on "offsets":
a dict {offsets_s: f64vector (node clock minus the reference node's clock, per input),
std_s: f64vector, ref_node: long, rx_time: the capture's start on the reference node's clock,
drift_ppm: f64vector (from the last two syncs; 0 until there are two), freq_offsets_hz:
f64vector (baseband frequency of each node minus the reference node's: LO errors, measured
when max_freq_offset_hz > 0, else 0)}. Remove them from
TDOAs measured between the same nodes (df.ClockOffsets.correct), or shift each node's
rx_time by -offset.
"""

from __future__ import annotations

import math

import numpy as np
import pmt
from gnuradio import gr

from . import tags
from .df import Capture, GeoOrigin, sync_captures


def _as_geodetic(points, what):
    a = np.asarray(points, dtype=float)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] not in (2, 3):
        raise ValueError(
            f"{what} must be (lat, lon[, alt]) in degrees and metres, got shape {a.shape}"
        )
    if a.shape[1] == 2:
        a = np.column_stack([a, np.zeros(len(a))])
    return a


class ref_sync(gr.sync_block):
    """See the module documentation. positions: one (lat, lon[, alt]) per input; ref_position:
    the reference transmitter's (lat, lon[, alt]); max_offset_s: the largest clock offset
    searched on the first pass; max_freq_offset_hz: > 0 for free-running LOs, the largest
    frequency offset between two nodes searched (delay and frequency together)."""

    def __init__(
        self,
        samp_rate,
        positions,
        ref_position,
        ref_offset_hz=0.0,
        ref_bandwidth_hz=200e3,
        capture_s=0.02,
        max_offset_s=0.01,
        ref_node=0,
        max_freq_offset_hz=0.0,
    ):
        geo = _as_geodetic(positions, "positions")
        m = len(geo)
        if m < 2:
            raise ValueError(f"ref_sync needs at least 2 nodes (positions), got {m}")
        ref_geo = _as_geodetic(ref_position, "ref_position")[0]
        self.fs = float(samp_rate)
        if not (math.isfinite(self.fs) and self.fs > 0):
            raise ValueError(f"samp_rate must be positive, got {samp_rate}")
        if abs(ref_offset_hz) + ref_bandwidth_hz / 2 > self.fs / 2:
            raise ValueError(
                f"the reference band {ref_offset_hz:g} +- {ref_bandwidth_hz / 2:g}"
                f" Hz lies outside the captured +-{self.fs / 2:g} Hz"
            )
        self.n_capture = int(round(capture_s * self.fs))
        if self.n_capture < 1024:
            raise ValueError(
                f"capture_s {capture_s} gives {self.n_capture} samples; need at least 1024"
            )
        if not 0 <= ref_node < m:
            raise ValueError(f"ref_node {ref_node} out of range for {m} inputs")
        gr.sync_block.__init__(self, "drift_ref_sync", [np.complex64] * m, None)
        origin = GeoOrigin.centroid_of(geo[:, 0], geo[:, 1], geo[:, 2])
        self.positions_enu_m = origin.to_enu(geo[:, 0], geo[:, 1], geo[:, 2])
        self.ref_enu_m = origin.to_enu(*ref_geo)
        self.band = (float(ref_offset_hz), float(ref_bandwidth_hz))
        self.max_offset_s = float(max_offset_s)
        self.max_freq_offset_hz = float(max_freq_offset_hz)
        if not (math.isfinite(self.max_freq_offset_hz) and self.max_freq_offset_hz >= 0):
            raise ValueError(f"max_freq_offset_hz must be >= 0, got {max_freq_offset_hz}")
        self.ref_node = int(ref_node)
        self.m = m
        self._buf = [np.empty(self.n_capture, dtype=np.complex64) for _ in range(m)]
        self._fill = 0
        self._anchor: list[tags.Anchor | None] = [None] * m  # each input's last rx_time
        self.results = []  # (rx_time float of the capture start, ClockOffsets)
        self.failures = 0
        self.message_port_register_out(pmt.intern("offsets"))

    def _time_of(self, k, offset):
        a = self._anchor[k]
        return None if a is None else a.at(offset)

    def work(self, input_items, output_items):
        n = len(input_items[0])
        done = 0
        while done < n:
            start_abs = self.nitems_read(0) + done
            take = min(n - done, self.n_capture - self._fill)
            for k in range(self.m):
                for t in self.get_tags_in_window(k, done, done + take, tags.RX_TIME):
                    self._anchor[k] = tags.Anchor.from_tag(t, self.fs) or self._anchor[k]
                self._buf[k][self._fill : self._fill + take] = input_items[k][done : done + take]
            self._fill += take
            done += take
            if self._fill == self.n_capture:
                self._sync(start_abs + take - self.n_capture)
                self._fill = 0
        return n

    def _sync(self, first):
        times = [self._time_of(k, first) for k in range(self.m)]
        if any(t is None for t in times):
            self.failures += 1
            self.logger.error(
                "an input has no rx_time: cannot sync (put drift.time_tagger upstream)"
            )
            return
        caps = [
            Capture(
                self._buf[k].copy(),
                self.fs,
                times[k][0],
                times[k][1],
                str(k),
                self.positions_enu_m[k],
            )
            for k in range(self.m)
        ]
        try:
            _, offs = sync_captures(
                caps,
                self.positions_enu_m,
                self.ref_enu_m,
                self.band,
                self.ref_node,
                self.max_offset_s,
                min_samples=256,
                max_freq_offset_hz=self.max_freq_offset_hz,
            )
        except ValueError as exc:
            self.failures += 1
            self.logger.error(f"reference sync failed: {exc}")
            return
        t_ref = times[self.ref_node]
        drift_ppm = np.zeros(self.m)
        if self.results:
            t_prev, prev = self.results[-1]
            dt = (t_ref[0] + t_ref[1]) - t_prev
            if dt > 0:
                drift_ppm = (offs.offsets_s - prev.offsets_s) / dt * 1e6
        self.results.append((t_ref[0] + t_ref[1], offs))
        msg = pmt.make_dict()
        msg = pmt.dict_add(
            msg,
            pmt.intern("offsets_s"),
            pmt.init_f64vector(self.m, [float(v) for v in offs.offsets_s]),
        )
        msg = pmt.dict_add(
            msg, pmt.intern("std_s"), pmt.init_f64vector(self.m, [float(v) for v in offs.std_s])
        )
        msg = pmt.dict_add(
            msg, pmt.intern("drift_ppm"), pmt.init_f64vector(self.m, [float(v) for v in drift_ppm])
        )
        freqs = np.zeros(self.m) if offs.freq_offsets_hz is None else offs.freq_offsets_hz
        msg = pmt.dict_add(
            msg,
            pmt.intern("freq_offsets_hz"),
            pmt.init_f64vector(self.m, [float(v) for v in freqs]),
        )
        msg = pmt.dict_add(msg, pmt.intern("ref_node"), pmt.from_long(self.ref_node))
        msg = pmt.dict_add(msg, tags.RX_TIME, tags.rx_time(t_ref[0], t_ref[1]))
        self.message_port_pub(pmt.intern("offsets"), msg)
