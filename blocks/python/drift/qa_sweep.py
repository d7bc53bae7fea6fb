#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.sweeper, plan_hops and stitch.

The oracle source emits its tuned frequency (MHz) as the sample value, so every sample the
sweeper passes on can be checked against the hop it claims to belong to.
"""

import threading

import numpy as np
import pmt
from gnuradio import blocks, drift, gr, gr_unittest


class freq_source(gr.sync_block):
    """Samples equal to the tuned frequency in MHz. A retune takes effect `latency` samples
    after the command arrives (buffers in flight); with `tag_retunes` the first sample at the
    new frequency is tagged rx_freq. rx_time at sample 0 is t0."""

    def __init__(self, center_hz, samp_rate, latency=0, tag_retunes=True, t0=1000.0):
        gr.sync_block.__init__(self, "freq_source", [], [np.complex64])
        self.fs, self.latency, self.tag_retunes, self.t0 = samp_rate, latency, tag_retunes, t0
        self.changes = [(0, center_hz)]  # (offset, frequency)
        self.lock = threading.Lock()
        self.message_port_register_in(pmt.intern("cmd"))
        self.set_msg_handler(pmt.intern("cmd"), self.on_cmd)

    def on_cmd(self, msg):
        freq = pmt.to_double(pmt.dict_ref(msg, pmt.intern("freq"), pmt.PMT_NIL))
        with self.lock:
            self.changes.append((self.nitems_written(0) + self.latency, freq))

    def work(self, input_items, output_items):
        out = output_items[0]
        n = min(len(out), 1000)  # small calls, so commands land mid-stream
        start = self.nitems_written(0)
        if start == 0:
            self.add_item_tag(
                0,
                0,
                pmt.intern("rx_time"),
                pmt.make_tuple(pmt.from_uint64(int(self.t0)), pmt.from_double(0.0)),
            )
        with self.lock:
            changes = list(self.changes)
        offsets = start + np.arange(n)
        values = np.zeros(n)
        for off, f in changes:
            values[offsets >= off] = f / 1e6
            if self.tag_retunes and start <= off < start + n:
                self.add_item_tag(0, off, pmt.intern("rx_freq"), pmt.from_double(f))
        out[:n] = values
        return n


class qa_sweep(gr_unittest.TestCase):
    def run_sweep(self, plan, latency, tag_retunes, guard=0, sweeps=2, buffer_items=None):
        tb = gr.top_block(catch_exceptions=False)
        src = freq_source(plan.hops[0].center_hz, plan.samp_rate_hz, latency, tag_retunes)
        if buffer_items:
            src.set_max_output_buffer(buffer_items)
        sw = drift.sweeper(plan, retune_tags=tag_retunes, guard_samples=guard, max_sweeps=sweeps)
        sink = blocks.vector_sink_c()
        tb.connect(src, sw, sink)
        tb.msg_connect(sw, "cmd", src, "cmd")
        tb.run()
        return np.array(sink.data()), sink.tags(), src

    def check_dwells(self, plan, data, tags, sweeps):
        hops = [t for t in tags if pmt.symbol_to_string(t.key) == "drift_hop"]
        self.assertEqual(len(hops), sweeps * len(plan.hops))
        self.assertEqual(len(data), sweeps * len(plan.hops) * plan.dwell_samples)
        for k, tag in enumerate(hops):
            hop = plan.hops[pmt.to_long(tag.value)]
            self.assertEqual(pmt.to_long(tag.value), k % len(plan.hops))
            self.assertEqual(tag.offset, k * plan.dwell_samples)
            dwell = data[tag.offset : tag.offset + plan.dwell_samples].real
            # every sample of the dwell was taken at this hop's frequency
            np.testing.assert_allclose(dwell, hop.center_hz / 1e6, rtol=0, atol=1e-3)

    def test_follows_retune_tags_exactly(self):
        plan = drift.plan_hops(100e6, 104e6, 1e6, 1e6 / 64, n_avg=5, settle_s=0.0005)
        data, tags, _ = self.run_sweep(plan, latency=3000, tag_retunes=True)
        self.check_dwells(plan, data, tags, sweeps=2)

    def test_guard_covers_untagged_sources(self):
        # Without retune tags the guard must cover what may sit in the source's output buffer
        # at the old frequency plus the device's own latency.
        plan = drift.plan_hops(100e6, 104e6, 1e6, 1e6 / 64, n_avg=5, settle_s=0.0)
        data, tags, _ = self.run_sweep(
            plan, latency=2500, tag_retunes=False, guard=4096 + 2500, buffer_items=4096
        )
        self.check_dwells(plan, data, tags, sweeps=2)

    def test_rx_time_of_each_dwell(self):
        plan = drift.plan_hops(100e6, 103e6, 1e6, 1e6 / 64, n_avg=4)
        data, tags, src = self.run_sweep(plan, latency=0, tag_retunes=True, sweeps=1)
        times = [t for t in tags if pmt.symbol_to_string(t.key) == "rx_time"]
        self.assertEqual(len(times), len(plan.hops))
        # the source's own record of where each retune landed is the truth
        # hop 0: the source's own rx_freq tag at sample 0 is already the wanted centre; the
        # first command (to hop 0 again) changes nothing; hop k lands where command k did.
        expected = [0] + [off for off, _ in src.changes[2 : len(plan.hops) + 1]]
        for t, off in zip(times, expected, strict=True):
            secs = pmt.to_uint64(pmt.tuple_ref(t.value, 0)) + pmt.to_double(
                pmt.tuple_ref(t.value, 1)
            )
            self.assertAlmostEqual(secs, 1000.0 + off / plan.samp_rate_hz, delta=1e-9)

    def test_stitch_joins_hops_on_one_grid(self):
        plan = drift.plan_hops(10e6, 12e6, 1e6, 1e6 / 128, n_avg=1, usable=0.5)
        rows = {h.index: np.full(128, float(h.index)) for h in plan.hops}
        spectrum = drift.stitch(plan, rows)
        self.assertEqual(spectrum.size, plan.freqs_hz.size)
        expected = np.concatenate([np.full(h.n_bins, float(h.index)) for h in plan.hops])
        np.testing.assert_array_equal(spectrum, expected)
        del rows[1]
        self.assertTrue(np.isnan(drift.stitch(plan, rows)[plan.hops[0].n_bins]))
        f = plan.freqs_hz
        self.assertAlmostEqual(f[0] - plan.bin_hz / 2, 10e6)
        np.testing.assert_allclose(np.diff(f), plan.bin_hz)


if __name__ == "__main__":
    gr_unittest.run(qa_sweep)
