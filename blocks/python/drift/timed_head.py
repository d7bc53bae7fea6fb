#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""timed_head: a capture that starts at an absolute instant of the stream's own clock.

Several nodes that must capture the same moment (TDOA) are each given one absolute start time;
their devices start streaming whenever their flowgraphs are ready, and this block drops every
sample before the first one whose time (from the upstream rx_time tags) reaches the start, then
passes exactly ``n_samples`` and ends the stream. Its first output sample is tagged with that
sample's own rx_time, which is at most one sample period after the start.
"""

from __future__ import annotations

import math

import numpy as np
import pmt
from gnuradio import gr

from . import tags


class timed_head(gr.basic_block):
    """Stream in, at most `n_samples` out from the first sample at or after `start_time`.

    start_time: UNIX seconds on the stream's clock (its rx_time tags); 0 starts at the first
    sample. A stream that begins after the start is passed from its first sample, with a
    warning saying how late. A stream without any rx_time tag cannot be started on time: the
    block logs an error and ends the stream with nothing passed. Tags of the passed samples are kept (at their new offsets), and a
    later rx_time (a re-anchor after an overflow) moves on with them.
    """

    def __init__(
        self, itemsize=gr.sizeof_gr_complex, n_samples=1, samp_rate=1.0, start_time=0.0, vlen=1
    ):
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        if not float(samp_rate) > 0:
            raise ValueError(f"samp_rate must be > 0, got {samp_rate}")
        if not (math.isfinite(float(start_time)) and float(start_time) >= 0):
            raise ValueError(f"start_time must be UNIX seconds >= 0, got {start_time}")
        dtype = {gr.sizeof_gr_complex: np.complex64, gr.sizeof_float: np.float32}.get(int(itemsize))
        if dtype is None:
            raise ValueError(
                f"itemsize must be {gr.sizeof_gr_complex} (complex) or "
                f"{gr.sizeof_float} (float), got {itemsize}"
            )
        if int(vlen) < 1:
            raise ValueError(f"vlen must be >= 1, got {vlen}")
        # vlen > 1: items are vectors (an array's snapshots, one sample of every channel)
        item = dtype if int(vlen) == 1 else (dtype, int(vlen))
        gr.basic_block.__init__(self, "drift_timed_head", [item], [item])
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self.n_samples = int(n_samples)
        self.rate = float(samp_rate)
        self._start = tags.split_seconds(float(start_time))
        self._anchor: tags.Anchor | None = None
        self._first: int | None = None  # input offset of the first sample passed
        self._passed = 0
        #: tags seen before the first sample (rx_freq...), put on the first output sample
        self._carried: dict[str, pmt.pmt_t] = {}

    def _first_at_or_after_start(self, begin: int, end: int) -> int | None:
        """The first input offset in [begin, end) whose time is at or after the start."""
        # samples after the anchor until the start: (start - anchor time) * rate, exactly
        # in whole and fractional parts so that nanoseconds survive at UNIX scale
        ahead = -self._anchor.seconds_after(*self._start) * self.rate
        k = self._anchor.offset + max(0, math.ceil(ahead - 1e-6))
        first = max(begin, k)
        return first if first < end else None

    def _find_first(self, stream_tags, begin: int, end: int) -> int | None:
        """The input offset of the first sample to pass, if it is in [begin, end); rx_time
        tags on the way re-anchor the time (the latest before a sample holds for it), other
        tags are remembered to go on the first output sample."""
        pos = begin
        for tag in [*stream_tags, None]:
            seg_end = end if tag is None else tag.offset
            if seg_end > pos:
                if self._anchor is None:
                    if self._start == (0, 0.0):
                        return pos  # no time to wait for, and none to stamp
                elif (first := self._first_at_or_after_start(pos, seg_end)) is not None:
                    return first
            if tag is None:
                return None
            if tags.is_key(tag, tags.RX_TIME):
                self._anchor = tags.Anchor.from_tag(tag, self.rate) or self._anchor
            else:
                self._carried[pmt.symbol_to_string(tag.key)] = tag.value
            pos = tag.offset

    def general_work(self, input_items, output_items):
        x = input_items[0]
        out = output_items[0]
        begin = self.nitems_read(0)
        end = begin + len(x)
        stream_tags = sorted(self.get_tags_in_range(0, begin, end), key=lambda t: t.offset)
        if self._first is None:
            first = self._find_first(stream_tags, begin, end)
            if first is None:
                if self._anchor is None and self._start != (0, 0.0) and len(x):
                    self.logger.error(
                        "the stream has no rx_time tag, so the start time "
                        "cannot be found in it: nothing captured"
                    )
                    return -1  # WORK_DONE: ends the flowgraph empty
                self.consume(0, len(x))
                return 0
            self._first = first
            for key, value in self._carried.items():
                self.add_item_tag(0, 0, pmt.intern(key), value)
            if self._anchor is not None:
                whole, frac = self._anchor.at(first)
                self.add_item_tag(0, 0, tags.RX_TIME, tags.rx_time(whole, frac))
                late = (whole - self._start[0]) + (frac - self._start[1])
                if self._start != (0, 0.0) and late >= 1 / self.rate:
                    self.logger.warn(
                        f"the stream began {late:.6f} s after the start time: "
                        "the capture starts late (launch the flowgraph earlier)"
                    )
        skip = max(0, self._first - begin)
        n = min(len(x) - skip, len(out), self.n_samples - self._passed)
        if n <= 0 and self._passed >= self.n_samples:
            return -1  # WORK_DONE: the capture is complete
        out[:n] = x[skip : skip + n]
        out_base = self.nitems_written(0)
        for tag in stream_tags:
            if begin + skip <= tag.offset < begin + skip + n:
                if tag.offset == self._first and (
                    tags.is_key(tag, tags.RX_TIME) or pmt.symbol_to_string(tag.key) in self._carried
                ):
                    continue  # already on the first output sample
                self.add_item_tag(0, out_base + tag.offset - (begin + skip), tag.key, tag.value)
        self.consume(0, skip + n)
        self._passed += n
        return n

    def forecast(self, noutput_items, ninputs):
        return [noutput_items]
