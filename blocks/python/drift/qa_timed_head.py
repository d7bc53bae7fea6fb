#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.timed_head in real flowgraphs: the first sample passed is the first at or after the
start on the stream's own clock (from its rx_time tags), exactly n samples follow, tags go on."""

import math

import numpy as np
import pmt
from gnuradio import blocks, drift, gr, gr_unittest

FS = 1000.0
WHOLE = 1_764_000_000


def rx_time_tag(offset, whole, frac):
    return gr.tag_utils.python_to_tag(
        (
            offset,
            pmt.intern("rx_time"),
            pmt.make_tuple(pmt.from_uint64(whole), pmt.from_double(frac)),
            pmt.intern("src"),
        )
    )


def tag(offset, key, value):
    return gr.tag_utils.python_to_tag((offset, pmt.intern(key), value, pmt.intern("src")))


def run(x, tags, n, start_time, itemsize=gr.sizeof_gr_complex):
    tb = gr.top_block(catch_exceptions=False)
    src = (blocks.vector_source_c if itemsize == gr.sizeof_gr_complex else blocks.vector_source_f)(
        x, False, 1, tags
    )
    head = drift.timed_head(itemsize, n, FS, start_time)
    sink = (blocks.vector_sink_c if itemsize == gr.sizeof_gr_complex else blocks.vector_sink_f)()
    tb.connect(src, head, sink)
    tb.run()
    return np.array(sink.data()), sink.tags()


def times(tags):
    return {
        t.offset: pmt.to_uint64(pmt.tuple_ref(t.value, 0))
        + pmt.to_double(pmt.tuple_ref(t.value, 1))
        for t in tags
        if pmt.symbol_to_string(t.key) == "rx_time"
    }


class qa_timed_head(gr_unittest.TestCase):
    def test_starts_at_the_first_sample_at_or_after_the_start(self):
        x = (np.arange(5000) + 1j * np.arange(5000)).astype(np.complex64)
        # sample 0 at WHOLE + 0.2503; the start falls between samples 1246 and 1247
        start = WHOLE + 1.4469
        y, tags = run(x, [rx_time_tag(0, WHOLE, 0.2503)], 300, start)
        k = math.ceil((1.4469 - 0.2503) * FS)
        self.assertEqual(k, 1197)
        np.testing.assert_array_equal(y, x[k : k + 300])
        t0 = times(tags)[0]
        self.assertGreaterEqual(t0, start - 1e-6)
        self.assertLess(t0 - start, 1 / FS)
        self.assertAlmostEqual(t0, WHOLE + 0.2503 + k / FS, delta=1e-6)

    def test_a_sample_exactly_at_the_start_is_the_first(self):
        x = np.arange(3000, dtype=np.float32)
        y, tags = run(x, [rx_time_tag(0, WHOLE, 0.5)], 10, WHOLE + 1.5, gr.sizeof_float)
        np.testing.assert_array_equal(y, x[1000:1010])
        self.assertAlmostEqual(times(tags)[0], WHOLE + 1.5, delta=1e-9)

    def test_a_later_rx_time_re_anchors_the_clock_before_the_start(self):
        """An overflow before the start: 500 samples were lost, the re-anchored rx_time says
        so, and the start is found on the new anchor."""
        x = np.arange(4000, dtype=np.float32)
        tags = [rx_time_tag(0, WHOLE, 0.0), rx_time_tag(1000, WHOLE, 1.5)]
        y, out_tags = run(x, tags, 20, WHOLE + 2.0, gr.sizeof_float)
        np.testing.assert_array_equal(y, x[1500:1520])  # not 2000: the clock jumped
        self.assertAlmostEqual(times(out_tags)[0], WHOLE + 2.0, delta=1e-9)

    def test_rx_freq_before_the_start_is_carried_and_later_tags_keep_their_place(self):
        x = np.arange(3000, dtype=np.float32)
        tags = [
            rx_time_tag(0, WHOLE, 0.0),
            tag(0, "rx_freq", pmt.from_double(433.92e6)),
            tag(1200, "rx_freq", pmt.from_double(434e6)),
        ]
        y, out_tags = run(x, tags, 500, WHOLE + 1.0, gr.sizeof_float)
        np.testing.assert_array_equal(y, x[1000:1500])
        freqs = sorted(
            (t.offset, pmt.to_double(t.value))
            for t in out_tags
            if pmt.symbol_to_string(t.key) == "rx_freq"
        )
        self.assertEqual(freqs, [(0, 433.92e6), (200, 434e6)])

    def test_a_stream_that_begins_after_the_start_passes_from_its_first_sample(self):
        x = np.arange(100, dtype=np.float32)
        y, tags = run(x, [rx_time_tag(0, WHOLE, 0.5)], 10, WHOLE + 0.25, gr.sizeof_float)
        np.testing.assert_array_equal(y, x[:10])
        self.assertAlmostEqual(times(tags)[0], WHOLE + 0.5, delta=1e-9)

    def test_start_zero_passes_from_the_first_sample(self):
        x = np.arange(100, dtype=np.float32)
        y, tags = run(x, [rx_time_tag(0, WHOLE, 0.25)], 40, 0.0, gr.sizeof_float)
        np.testing.assert_array_equal(y, x[:40])
        self.assertAlmostEqual(times(tags)[0], WHOLE + 0.25, delta=1e-9)

    def test_a_stream_that_ends_before_the_start_gives_nothing(self):
        x = np.arange(100, dtype=np.float32)
        y, _ = run(x, [rx_time_tag(0, WHOLE, 0.0)], 10, WHOLE + 5.0, gr.sizeof_float)
        self.assertEqual(len(y), 0)

    def test_a_stream_without_rx_time_cannot_start_on_time(self):
        x = np.arange(100, dtype=np.float32)
        y, _ = run(x, [], 10, WHOLE + 5.0, gr.sizeof_float)
        self.assertEqual(len(y), 0)

    def test_bad_parameters_are_refused(self):
        for kwargs in (
            {"n_samples": 0},
            {"samp_rate": 0.0},
            {"start_time": -1.0},
            {"start_time": float("nan")},
            {"itemsize": 3},
        ):
            args = {
                "itemsize": gr.sizeof_gr_complex,
                "n_samples": 1,
                "samp_rate": FS,
                "start_time": 0.0,
                **kwargs,
            }
            with self.assertRaises(ValueError):
                drift.timed_head(**args)


if __name__ == "__main__":
    gr_unittest.run(qa_timed_head)
