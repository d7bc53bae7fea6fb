#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.align_reference: drift.align (C++, align.h) in Python, the reference its QA test
compares it with. N timestamped streams cut onto a common time base.

Each input must carry rx_time on its first sample (DRIFT sources, drift.time_tagger). The
block waits for every input's first rx_time, takes the latest start as the common start,
drops from each input the samples before it (to the nearest sample), and from then on passes
equal numbers of samples on every output: output k, sample i, is the sample of input k nearest
to the common start + i / samp_rate on that input's clock. Each output's first sample gets
rx_time (its own input's clock) and align_offset_s: its time minus the common start (at most
half a sample; a TDOA correlator adds it back, as gnuradio.drift.df.align_captures does).
Tags of the inputs pass on at their new offsets. A later rx_time that breaks an input's count
(an overflow) is logged and counted in `breaks`: the streams are no longer aligned after it,
so restart the flowgraph segment (or use drift.tdoa, which follows rx_time per block).
"""

from __future__ import annotations

import math

import numpy as np
import pmt
from gnuradio import gr

from . import tags

#: samples of each output's buffer at least
OUTPUT_BUFFER = 1 << 16


class align_reference(gr.basic_block):
    """See the module documentation. samp_rate: of every input (Hz); n_inputs >= 2;
    max_wait: input samples to wait for an input's first rx_time before giving up on it
    (it is then passed on as it comes, logged)."""

    def __init__(self, samp_rate, n_inputs=2, max_wait=1 << 20):
        n_inputs = int(n_inputs)
        if n_inputs < 2:
            raise ValueError(f"n_inputs must be at least 2, got {n_inputs}")
        self.fs = float(samp_rate)
        if not (math.isfinite(self.fs) and self.fs > 0):
            raise ValueError(f"samp_rate must be positive, got {samp_rate}")
        gr.basic_block.__init__(
            self, "drift_align", [np.complex64] * n_inputs, [np.complex64] * n_inputs
        )
        self.set_tag_propagation_policy(gr.TPP_DONT)
        # Each call costs the same fixed Python time whatever it moves: output buffers as
        # large as the sources' (2^16 samples) let it move large chunks. The input chunks are
        # the upstream blocks' buffers (DRIFT sources ask for 2^16 samples as well).
        self.set_min_output_buffer(OUTPUT_BUFFER)
        self.n = n_inputs
        self.max_wait = int(max_wait)
        self.starts = [None] * n_inputs  # (whole, frac) of each input's first sample
        self.drop = None  # samples to drop per input, once known
        self.dropped = [0] * n_inputs
        self.common = None  # (whole, frac) of the common start
        self.offsets_s = None
        self.breaks = 0
        self._tagged = False

    def forecast(self, noutput_items, ninputs):
        return [noutput_items] * ninputs

    def _plan(self):
        w0 = min(s[0] for s in self.starts if s is not None)
        rel = [None if s is None else (s[0] - w0) + s[1] for s in self.starts]
        known = [r for r in rel if r is not None]
        lo = max(known)
        self.drop = [0 if r is None else int(round((lo - r) * self.fs)) for r in rel]
        self.offsets_s = np.array(
            [
                0.0 if r is None else r + d / self.fs - lo
                for r, d in zip(rel, self.drop, strict=True)
            ]
        )
        self.common = (w0 + math.floor(lo), lo - math.floor(lo))

    def general_work(self, input_items, output_items):
        if self.drop is None:
            for k in range(self.n):
                if self.starts[k] is not None:
                    continue
                read = self.nitems_read(k)
                for t in self.get_tags_in_window(k, 0, len(input_items[k])):
                    if tags.is_key(t, tags.RX_TIME) and tags.read_rx_time(t.value):
                        w, f = tags.read_rx_time(t.value)
                        f -= (t.offset - read) / self.fs  # the time of the input's sample 0
                        self.starts[k] = (w + math.floor(f), f - math.floor(f))
                        break
                else:
                    if len(input_items[k]) >= self.max_wait:
                        self.logger.error(
                            f"input {k}: no rx_time in its first "
                            f"{self.max_wait} samples; passed on unaligned"
                        )
                        self.starts[k] = False
            if any(s is None for s in self.starts):
                return 0  # waits for more samples (bounded by max_wait)
            self.starts = [None if s is False else s for s in self.starts]
            if all(s is None for s in self.starts):
                self.drop = [0] * self.n
                self.offsets_s = np.zeros(self.n)
            else:
                self._plan()
        # drop the samples before the common start (consume() takes effect on return)
        dropping = False
        for k in range(self.n):
            left = self.drop[k] - self.dropped[k]
            if left > 0:
                take = min(left, len(input_items[k]))
                self.consume(k, take)
                self.dropped[k] += take
                dropping = True
        if dropping:
            return 0
        n = min(min(len(x) for x in input_items), min(len(y) for y in output_items))
        if n == 0:
            return 0
        for k in range(self.n):
            output_items[k][:n] = input_items[k][:n]
            written = self.nitems_written(k)
            for t in self.get_tags_in_window(k, 0, n):
                if tags.is_key(t, tags.RX_TIME) and self.starts[k] is not None:
                    if t.offset == self.drop[k]:
                        continue  # the first sample's: replaced by the block's own below
                    value = tags.read_rx_time(t.value)
                    w, f = self.starts[k]
                    if value and abs((value[0] - w) + (value[1] - f - t.offset / self.fs)) > 1e-6:
                        self.breaks += 1
                        self.logger.warn(
                            f"input {k}: rx_time jumps at sample {t.offset}; "
                            "the streams are no longer aligned"
                        )
                self.add_item_tag(k, t.offset - self.drop[k], t.key, t.value)
            if not self._tagged:
                if self.starts[k] is not None:
                    s = self.starts[k]
                    self.add_item_tag(
                        k, written, tags.RX_TIME, tags.rx_time(s[0], s[1] + self.drop[k] / self.fs)
                    )
                self.add_item_tag(
                    k,
                    written,
                    pmt.intern("align_offset_s"),
                    pmt.from_double(float(self.offsets_s[k])),
                )
            self.consume(k, n)
        self._tagged = True
        return n
