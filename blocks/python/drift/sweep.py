#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Wideband sweeps: a hop plan, the sweeper block that retunes a source, and stitching.

A sweep covers [start_hz, stop_hz] in hops, as rtl_power does. Each hop tunes the device,
discards the settle samples, then passes one PSD average worth of samples (its dwell) to
drift.psd. Only the central `usable` fraction of each hop's bins is kept (the edges of a
receiver's band roll off), and the hops' bins fall on one common frequency grid, so stitching
is concatenation. Every hop keeps its own timestamp (rx_time of its first sample).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
import pmt
from gnuradio import gr

from . import tags
from .tags import Anchor

MAX_FFT_SIZE = 1 << 20


@dataclass(frozen=True)
class Hop:
    """One tuning of a sweep: its centre and the slice of its PSD bins that is kept."""

    index: int
    center_hz: float
    first_bin: int  # first kept bin of the hop's fftshifted PSD vector
    stop_bin: int  # one past the last kept bin

    @property
    def n_bins(self) -> int:
        return self.stop_bin - self.first_bin


@dataclass(frozen=True)
class HopPlan:
    """How a band is swept: FFT size, averages, settle time, and the hops on one bin grid."""

    start_hz: float
    stop_hz: float
    samp_rate_hz: float
    fft_size: int
    n_avg: int
    settle_samples: int
    hops: tuple[Hop, ...]
    overlap: float = 0.0  # PSD frame overlap, as drift.psd's `overlap`
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def bin_hz(self) -> float:
        return self.samp_rate_hz / self.fft_size

    @property
    def step(self) -> int:
        """Samples between PSD frame starts (drift.psd's step())."""
        return max(1, self.fft_size - round(self.overlap * self.fft_size))

    @property
    def dwell_samples(self) -> int:
        """Samples one hop passes to drift.psd: exactly one average of n_avg frames."""
        return (self.n_avg - 1) * self.step + self.fft_size

    @property
    def n_bins(self) -> int:
        return sum(h.n_bins for h in self.hops)

    def hop_freqs_hz(self, hop: Hop) -> np.ndarray:
        """Centre frequencies of the kept bins of one hop."""
        k = np.arange(hop.first_bin, hop.stop_bin)
        return hop.center_hz + (k - self.fft_size // 2) * self.bin_hz

    @property
    def freqs_hz(self) -> np.ndarray:
        """Centre frequencies of the stitched spectrum's bins, ascending."""
        return np.concatenate([self.hop_freqs_hz(h) for h in self.hops])

    @property
    def sweep_samples(self) -> int:
        """Samples one full sweep takes at the device, settle time included."""
        per_hop = self.dwell_samples + (self.settle_samples if len(self.hops) > 1 else 0)
        return per_hop * len(self.hops)

    @property
    def sweep_s(self) -> float:
        return self.sweep_samples / self.samp_rate_hz


def fft_size_for_bin(samp_rate_hz: float, bin_hz: float) -> int:
    """Smallest power of two whose bins are no wider than `bin_hz` (as rtl_power picks)."""
    if not bin_hz > 0:
        raise ValueError(f"bin width must be > 0 Hz, got {bin_hz}")
    n = 1 << max(0, math.ceil(math.log2(samp_rate_hz / bin_hz - 1e-9)))
    if n > MAX_FFT_SIZE:
        raise ValueError(
            f"bin width {bin_hz:g} Hz is below the finest this device gives at "
            f"{samp_rate_hz:g} S/s: {samp_rate_hz / MAX_FFT_SIZE:g} Hz (FFT size {MAX_FFT_SIZE})"
        )
    if n < 8:
        raise ValueError(
            f"bin width {bin_hz:g} Hz is coarser than this device allows at {samp_rate_hz:g} S/s: "
            f"at most {samp_rate_hz / 8:g} Hz (8 bins per hop)"
        )
    return n


def plan_hops(
    start_hz: float,
    stop_hz: float,
    samp_rate_hz: float,
    bin_hz: float,
    *,
    dwell_s: float | None = None,
    n_avg: int | None = None,
    usable: float = 0.75,
    hop_overlap: float = 0.0,
    settle_s: float = 0.0,
    overlap: float = 0.0,
    tuning_range_hz: tuple[float, float] | None = None,
    fixed_center_hz: float | None = None,
) -> HopPlan:
    """Plan a sweep of [start_hz, stop_hz].

    samp_rate_hz: the device's sample rate (its instantaneous bandwidth).
    bin_hz: wanted bin width; the FFT size is the next power of two, so bins may be narrower.
    dwell_s or n_avg: integration per hop (n_avg frames of fft_size samples).
    usable: fraction of each hop's band kept (the rest is filter roll-off).
    hop_overlap: fraction of the usable band that neighbouring hops share (bins are taken
        from the hop whose centre is nearer, so this only moves the seams inward).
    settle_s: time discarded after each retune (PLL lock, AGC, buffers in flight).
    tuning_range_hz: the device's (min, max) centre frequency, checked for every hop.
    fixed_center_hz: a source that cannot retune (a recording): one hop at this centre,
        cropped to [start_hz, stop_hz], which must lie inside its band.
    """
    if not samp_rate_hz > 0:
        raise ValueError(f"sample rate must be > 0, got {samp_rate_hz}")
    if not stop_hz > start_hz:
        raise ValueError(f"start ({start_hz:g} Hz) must be below stop ({stop_hz:g} Hz)")
    if not 0 < usable <= 1:
        raise ValueError(f"usable fraction must be in (0, 1], got {usable}")
    if not 0 <= hop_overlap < 1:
        raise ValueError(f"hop overlap must be in [0, 1), got {hop_overlap}")
    if settle_s < 0:
        raise ValueError(f"settle time must be >= 0 s, got {settle_s}")
    fft_size = fft_size_for_bin(samp_rate_hz, bin_hz)
    b = samp_rate_hz / fft_size
    step = max(1, fft_size - round(overlap * fft_size))
    if n_avg is None:
        if dwell_s is None:
            raise ValueError("give dwell_s or n_avg")
        n_avg = max(1, int((dwell_s * samp_rate_hz - fft_size) // step) + 1)
    if n_avg < 1:
        raise ValueError(f"n_avg must be >= 1, got {n_avg}")

    if fixed_center_hz is not None:
        lo, hi = fixed_center_hz - samp_rate_hz / 2, fixed_center_hz + samp_rate_hz / 2
        if start_hz < lo - b / 2 or stop_hz > hi + b / 2:
            raise ValueError(
                f"range {start_hz:g}-{stop_hz:g} Hz is outside the recording's band "
                f"{lo:g}-{hi:g} Hz"
            )
        k = np.arange(fft_size)
        f = fixed_center_hz + (k - fft_size // 2) * b
        keep = np.nonzero((f >= start_hz - b / 2) & (f < stop_hz + b / 2))[0]
        hops = (Hop(0, float(fixed_center_hz), int(keep[0]), int(keep[-1]) + 1),)
        return HopPlan(start_hz, stop_hz, samp_rate_hz, fft_size, n_avg, 0, hops, overlap)

    usable_bins = max(1, int(usable * fft_size))
    advance = max(1, int(usable_bins * (1 - hop_overlap)))
    total_bins = max(1, math.ceil((stop_hz - start_hz) / b))
    n_hops = math.ceil(total_bins / advance)
    hops = []
    for i in range(n_hops):
        first = i * advance
        width = min(advance, total_bins - first)
        # Hop bin j sits on grid bin first + (j - fft_size//2) + advance//2.
        center = start_hz + (first + advance // 2 + 0.5) * b
        lo_bin = fft_size // 2 - advance // 2
        hops.append(Hop(i, center, lo_bin, lo_bin + width))
    if tuning_range_hz is not None:
        tmin, tmax = tuning_range_hz
        lo_c, hi_c = hops[0].center_hz, hops[-1].center_hz
        if lo_c < tmin or hi_c > tmax:
            raise ValueError(
                f"range {start_hz:g}-{stop_hz:g} Hz needs centres {lo_c:g}-{hi_c:g} Hz, outside "
                f"the device's tuning range {tmin:g}-{tmax:g} Hz"
            )
    settle = int(round(settle_s * samp_rate_hz)) if n_hops > 1 else 0
    return HopPlan(start_hz, stop_hz, samp_rate_hz, fft_size, n_avg, settle, tuple(hops), overlap)


def stitch(plan: HopPlan, rows: dict[int, np.ndarray]) -> np.ndarray:
    """One spectrum from the hops' PSD vectors (hop index -> fft_size bins); NaN where missing."""
    parts = []
    for hop in plan.hops:
        row = rows.get(hop.index)
        if row is None:
            parts.append(np.full(hop.n_bins, np.nan, dtype=np.float32))
        else:
            parts.append(np.asarray(row, dtype=np.float32)[hop.first_bin : hop.stop_bin])
    return np.concatenate(parts)


# Tag keys the sweeper puts on the first sample of each dwell (with rx_time and rx_freq).
HOP = pmt.intern("drift_hop")
SWEEP = pmt.intern("drift_sweep")


class sweeper(gr.basic_block):
    """Retunes a source through a hop plan and passes one PSD average of samples per hop.

    Input: complex samples from a source whose `cmd`/`command` message port is connected to
    this block's `cmd` output (gr-soapy, gr-osmosdr and the DRIFT simulator accept
    {"freq": Hz}). Output: for each hop, exactly plan.dwell_samples samples, the first tagged
    rx_freq (hop centre), rx_time (absolute time from upstream rx_time tags and the count),
    drift_hop and drift_sweep. Samples taken while tuning or settling are dropped.

    Knowing where the retune lands in the stream: a source that tags its first sample at the
    new frequency with rx_freq (gr-uhd, the DRIFT simulator) is followed exactly
    (`retune_tags=True`). Otherwise `guard_samples` (samples that may still be in flight at
    the old frequency: the source's buffers) plus the settle samples are dropped after
    sending the command.

    The flowgraph ends (WORK_DONE) after `max_sweeps` sweeps when it is > 0.
    """

    def __init__(self, plan: HopPlan, retune_tags=True, guard_samples=0, max_sweeps=0):
        gr.basic_block.__init__(
            self, name="drift_sweeper", in_sig=[np.complex64], out_sig=[np.complex64]
        )
        self.plan = plan
        self.retune_tags = bool(retune_tags)
        self.guard = int(guard_samples)
        self.max_sweeps = int(max_sweeps)
        self.message_port_register_out(pmt.intern("cmd"))
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self._lock = threading.Lock()
        self._hop = 0
        self._sweep = 0
        self._state = "tune"  # tune -> settle -> dwell -> (next hop) tune
        self._drop = 0  # samples left to drop in settle
        self._left = 0  # samples left to pass in dwell
        self._cmd_sent = False
        self._anchor: tags.Anchor | None = None  # the latest upstream rx_time
        self._single = len(plan.hops) == 1
        self._done = False

    # -- time ------------------------------------------------------------------------------
    def _time_at(self, offset):
        if self._anchor is None:
            return tags.split_seconds(offset / self.plan.samp_rate_hz)
        return self._anchor.at(offset)

    def _handle_tags(self, start, end):
        """Read upstream tags in [start, end); return the offset where the wanted tune lands."""
        landed = None
        target = self.plan.hops[self._hop].center_hz
        for tag in self.get_tags_in_range(0, start, end):
            if tags.is_key(tag, tags.RX_TIME):
                self._anchor = Anchor.from_tag(tag, self.plan.samp_rate_hz) or self._anchor
            elif tags.is_key(tag, tags.RX_FREQ) and self._state == "tune" and self._cmd_sent:
                if abs(pmt.to_double(tag.value) - target) < 0.5 * self.plan.bin_hz:
                    landed = tag.offset if landed is None else landed
        return landed

    def _send_tune(self):
        center = self.plan.hops[self._hop].center_hz
        msg = pmt.make_dict()
        msg = pmt.dict_add(msg, pmt.intern("freq"), pmt.from_double(center))
        self.message_port_pub(pmt.intern("cmd"), msg)
        self._cmd_sent = True
        if not self.retune_tags:
            self._state = "settle"
            self._drop = self.guard + self.plan.settle_samples

    def start(self):
        with self._lock:
            self._hop, self._sweep = 0, 0
            self._cmd_sent = False
            self._done = False
            if self._single:
                self._state, self._left = "dwell", self.plan.dwell_samples
            else:
                self._state = "tune"
        return True

    def forecast(self, noutput_items, ninputs):
        return [1] * ninputs

    def general_work(self, input_items, output_items):
        with self._lock:
            return self._work(input_items[0], output_items[0])

    def _work(self, inp, out):
        if self._done:
            return -1  # WORK_DONE: the wanted sweeps are complete
        base = self.nitems_read(0)
        n_in, n_out = len(inp), len(out)
        i = o = 0
        while i < n_in and o < n_out:
            if self._state == "tune":
                if not self._cmd_sent:
                    self._send_tune()
                    continue
                landed = self._handle_tags(base + i, base + n_in)
                if landed is None:
                    i = n_in  # still the old frequency: drop all
                    break
                i = landed - base
                self._state, self._drop = "settle", self.plan.settle_samples
            elif self._state == "settle":
                self._handle_tags(base + i, base + min(n_in, i + self._drop))
                k = min(self._drop, n_in - i)
                i += k
                self._drop -= k
                if self._drop == 0:
                    self._state, self._left = "dwell", self.plan.dwell_samples
            else:  # dwell
                if self._left == self.plan.dwell_samples:
                    self._tag_dwell_start(base + i, self.nitems_written(0) + o)
                k = min(self._left, n_in - i, n_out - o)
                self._handle_tags(base + i, base + i + k)
                out[o : o + k] = inp[i : i + k]
                i += k
                o += k
                self._left -= k
                if self._left == 0:
                    if self._next_hop():
                        self._done = True
                        self.consume(0, i)
                        return o
        self.consume(0, i)
        return o

    def _tag_dwell_start(self, in_offset, out_offset):
        hop = self.plan.hops[self._hop]
        self.add_item_tag(0, out_offset, tags.RX_TIME, tags.rx_time(*self._time_at(in_offset)))
        self.add_item_tag(0, out_offset, tags.RX_FREQ, tags.rx_freq(hop.center_hz))
        self.add_item_tag(0, out_offset, HOP, pmt.from_long(hop.index))
        self.add_item_tag(0, out_offset, SWEEP, pmt.from_long(self._sweep))

    def _next_hop(self):
        """Advance to the next hop; True when the last wanted sweep is complete."""
        self._hop += 1
        if self._hop == len(self.plan.hops):
            self._hop = 0
            self._sweep += 1
            if self.max_sweeps and self._sweep >= self.max_sweeps:
                return True
        if self._single:
            self._left = self.plan.dwell_samples
        else:
            self._state, self._cmd_sent = "tune", False
        return False
