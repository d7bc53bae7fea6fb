#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""gnuradio.drift.tags: rx_time values made and read back, and times carried by counting,
against exact rational arithmetic."""

from fractions import Fraction

import pmt
from gnuradio import gr, gr_unittest
from gnuradio.drift import tags

WHOLE = 1_796_530_791


class qa_tags(gr_unittest.TestCase):
    def test_rx_time_is_a_tuple_of_whole_seconds_and_a_fraction(self):
        v = tags.rx_time(WHOLE, 0.25)
        self.assertTrue(pmt.is_tuple(v))
        self.assertEqual(pmt.to_uint64(pmt.tuple_ref(v, 0)), WHOLE)
        self.assertEqual(pmt.to_double(pmt.tuple_ref(v, 1)), 0.25)
        self.assertEqual(tags.read_rx_time(v), (WHOLE, 0.25))

    def test_fractions_carry_into_the_whole_seconds(self):
        self.assertEqual(tags.read_rx_time(tags.rx_time(WHOLE, 1.75)), (WHOLE + 1, 0.75))
        self.assertEqual(tags.read_rx_time(tags.rx_time(WHOLE, -0.25)), (WHOLE - 1, 0.75))
        self.assertEqual(tags.split_seconds(WHOLE + 0.5), (WHOLE, 0.5))

    def test_what_is_not_an_rx_time_reads_as_none(self):
        for value in (
            pmt.from_double(1.0),
            pmt.intern("now"),
            pmt.make_tuple(pmt.from_long(1)),
            pmt.make_tuple(pmt.intern("a"), pmt.intern("b")),
        ):
            self.assertIsNone(tags.read_rx_time(value))

    def test_an_anchor_counts_to_any_sample_to_the_nanosecond(self):
        rate = 2_400_000.0
        anchor = tags.Anchor(WHOLE, 0.123456789, 1000, rate)
        for offset in (1000, 1001, 3_400_999, 10**9 + 17):
            whole, frac = anchor.at(offset)
            exact = WHOLE + Fraction(0.123456789) + Fraction(offset - 1000) / Fraction(rate)
            self.assertLess(abs((whole - WHOLE) + Fraction(frac) - (exact - WHOLE)), 1e-9)
            self.assertTrue(0 <= frac < 1)

    def test_an_anchor_from_a_stream_tag(self):
        tag = gr.tag_utils.python_to_tag(
            (42, tags.RX_TIME, tags.rx_time(WHOLE, 0.5), pmt.intern("src"))
        )
        anchor = tags.Anchor.from_tag(tag, 1000.0)
        self.assertEqual(anchor.at(542), (WHOLE + 1, 0.0))
        self.assertEqual(anchor.seconds_after(WHOLE, 0.25), 0.25)
        bad = gr.tag_utils.python_to_tag((0, tags.RX_TIME, pmt.from_double(1.0), pmt.intern("src")))
        self.assertIsNone(tags.Anchor.from_tag(bad, 1000.0))
        self.assertTrue(tags.is_key(tag, tags.RX_TIME))
        self.assertFalse(tags.is_key(tag, tags.RX_FREQ))


if __name__ == "__main__":
    gr_unittest.run(qa_tags)
