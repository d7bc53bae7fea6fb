#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.align (C++) against drift.align_reference (the same block in Python) on the same
tagged streams: the same samples, the same tags at the same offsets, the same breaks."""

import numpy as np
import pmt
from gnuradio import blocks, drift, gr, gr_unittest

FS = 1e6
WHOLE = 1_764_000_000


def tag(offset, key, value):
    t = gr.tag_t()
    t.offset = offset
    t.key = pmt.intern(key)
    t.value = value
    return t


def rx_time(whole, frac):
    return pmt.make_tuple(pmt.from_uint64(whole), pmt.from_double(frac))


def run(block, streams, tag_lists, max_items=0):
    tb = gr.top_block(catch_exceptions=False)
    if max_items:
        block.set_max_noutput_items(max_items)
    sinks = []
    for k, (x, tags) in enumerate(zip(streams, tag_lists, strict=True)):
        src = blocks.vector_source_c(x, False, 1, tags)
        sink = blocks.vector_sink_c()
        tb.connect(src, (block, k), sink)
        sinks.append(sink)
    tb.run()
    out = []
    for s in sinks:
        tags = sorted(
            (t.offset, pmt.symbol_to_string(t.key), pmt.write_string(t.value)) for t in s.tags()
        )
        out.append((np.array(s.data()), tags))
    return out


class qa_align(gr_unittest.TestCase):
    def streams(self, n=20000):
        rng = np.random.default_rng(4)
        return [
            (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
            for _ in range(3)
        ]

    def assert_same(self, streams, tag_lists, max_wait=1 << 20, max_items=0):
        cc = drift.align(FS, len(streams), max_wait)
        py = drift.align_reference(FS, len(streams), max_wait)
        py.logger.set_level("off")
        cc.set_log_level("off")
        got, want = run(cc, streams, tag_lists, max_items), run(py, streams, tag_lists, max_items)
        for (x, xt), (y, yt) in zip(got, want, strict=True):
            np.testing.assert_array_equal(x, y)
            self.assertEqual(xt, yt)
        self.assertEqual(cc.breaks, py.breaks)
        np.testing.assert_array_equal(np.array(cc.offsets_s), py.offsets_s)
        self.assertEqual(list(cc.drops), list(py.drop))
        return cc, got

    def test_the_reference_s_samples_and_tags(self):
        """Three streams starting 12.3456 and 4.0004 us apart, a foreign tag in the dropped
        part and one after it, an rx_time in the middle that agrees with the count: what the
        Python reference gives, sample for sample and tag for tag, in large and small calls."""
        fracs = [0.25, 0.2500123456, 0.2500040004]
        x = self.streams()
        tags = [[tag(0, "rx_time", rx_time(WHOLE, f))] for f in fracs]
        tags[0].append(tag(5, "burst", pmt.from_long(1)))  # dropped with its sample
        tags[0].append(tag(500, "burst", pmt.from_long(2)))
        tags[2].append(tag(9000, "rx_time", rx_time(WHOLE, fracs[2] + 9000 / FS)))
        for max_items in (0, 333):
            cc, got = self.assert_same(x, tags, max_items=max_items)
            self.assertEqual(list(cc.drops), [12, 0, 8])
            self.assertEqual(cc.breaks, 0)
            self.assertEqual(len(got[0][0]), 20000 - 12)
            np.testing.assert_array_equal(got[0][0][:100], x[0][12:112])
            first = {key: v for off, key, v in got[1][1] if off == 0}
            self.assertIn("align_offset_s", first)
            self.assertIn("rx_time", first)

    def test_a_break_and_an_input_without_rx_time(self):
        """An rx_time that disagrees with the count is counted in breaks; an input that has no
        rx_time within max_wait passes unaligned; both as the reference does."""
        x = self.streams()
        tags = [
            [tag(0, "rx_time", rx_time(WHOLE, 0.5)), tag(7000, "rx_time", rx_time(WHOLE, 0.9))],
            [tag(0, "rx_time", rx_time(WHOLE, 0.5000031))],
            [],
        ]
        cc, got = self.assert_same(x, tags, max_wait=4096)
        self.assertEqual(cc.breaks, 1)
        self.assertEqual(list(cc.drops), [3, 0, 0])

    def test_bad_parameters(self):
        with self.assertRaisesRegex(ValueError, "n_inputs"):
            drift.align(FS, 1)
        with self.assertRaisesRegex(ValueError, "samp_rate"):
            drift.align(0, 2)


if __name__ == "__main__":
    gr_unittest.run(qa_align)
