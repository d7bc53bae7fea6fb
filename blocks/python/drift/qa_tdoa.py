#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.tdoa (C++ GCC delay block) and drift.gcc_delay against the Python estimate_delay."""

import numpy as np
import pmt
from gnuradio import blocks, drift, gr, gr_unittest
from gnuradio.drift import df

FS = 1e6


def delayed_pair(rng, n, delay, snr_db, bw=0.4):
    """Band-limited noise and a copy delayed by `delay` samples (frequency-domain shift), each
    with independent white noise SNR_DB below it."""
    m = 2 * n
    f = np.fft.fftfreq(m)
    spec = (rng.standard_normal(m) + 1j * rng.standard_normal(m)) * (np.abs(f) < bw / 2)
    a = np.fft.ifft(spec)
    b = np.fft.ifft(spec * np.exp(-2j * np.pi * f * delay))
    g = np.std(a) * 10 ** (-snr_db / 20)

    def noise():
        return g * (rng.standard_normal(m) + 1j * rng.standard_normal(m)) / np.sqrt(2)

    return (a + noise()).astype(np.complex64), (b + noise()).astype(np.complex64)


def rx_time_tag(offset, whole, frac):
    t = gr.tag_t()
    t.offset = offset
    t.key = pmt.intern("rx_time")
    t.value = pmt.make_tuple(pmt.from_uint64(whole), pmt.from_double(frac))
    return t


class qa_tdoa(gr_unittest.TestCase):
    def test_same_numbers_as_python(self):
        rng = np.random.default_rng(5)
        for snr in (25, 5, -3):
            for w in ("phat", "plain"):
                a, b = delayed_pair(rng, 4096, 12.37, snr)
                a, b = a[:4096], b[:4096]
                py = df.estimate_delay(a, b, 1.0, weighting=w, max_delay_s=40)
                cc = drift.gcc_delay(a, b, w, 41)
                self.assertAlmostEqual(cc["delay_samples"], py.delay_samples, delta=1e-5)
                self.assertAlmostEqual(cc["std_samples"] / py.std_samples, 1.0, delta=1e-4)
                self.assertAlmostEqual(cc["psr_db"], py.psr_db, delta=1e-3)
                self.assertAlmostEqual(cc["snr_db"], py.snr_db, delta=1e-3)
                # and against the truth, within the predicted accuracy
                self.assertLess(abs(cc["delay_samples"] - 12.37), 5 * cc["std_samples"] + 1e-3)

    def test_bad_input(self):
        x = np.zeros(100, dtype=np.complex64)
        with self.assertRaisesRegex(ValueError, "lengths differ"):
            drift.gcc_delay(x, x[:50])
        with self.assertRaisesRegex(ValueError, "at least 16"):
            drift.gcc_delay(x[:8], x[:8])
        with self.assertRaisesRegex(ValueError, "weighting"):
            drift.gcc_delay(x, x, "ml")
        with self.assertRaisesRegex(ValueError, "samp_rate"):
            drift.tdoa(0, 1024)
        with self.assertRaisesRegex(ValueError, "n must be"):
            drift.tdoa(FS, 8)

    def test_block_in_a_flowgraph_with_timestamps(self):
        """Two streams that start at different times (rx_time): the PDUs' delay_s is the
        arrival-time difference, the sample delay plus the start offset."""
        rng = np.random.default_rng(9)
        n, blocks_n = 8192, 4
        a, b = delayed_pair(rng, n * blocks_n, 30.25, 15)
        a, b = a[: n * blocks_n], b[: n * blocks_n]
        # stream 1 starts 3.5 us later
        src0 = blocks.vector_source_c(a, False, 1, [rx_time_tag(0, 1_764_000_000, 0.25)])
        src1 = blocks.vector_source_c(b, False, 1, [rx_time_tag(0, 1_764_000_000, 0.2500035)])
        blk = drift.tdoa(FS, n, drift.GCC_PLAIN, 100e-6)
        dbg = blocks.message_debug()
        tb = gr.top_block(catch_exceptions=False)
        tb.connect(src0, (blk, 0))
        tb.connect(src1, (blk, 1))
        tb.msg_connect(blk, "delays", dbg, "store")
        tb.run()
        self.assertEqual(blk.estimates(), blocks_n)
        self.assertEqual(dbg.num_messages(), blocks_n)
        for k in range(blocks_n):
            msg = dbg.get_message(k)
            meta = pmt.to_python(pmt.car(msg))
            self.assertEqual(meta["offset"], k * n)
            self.assertEqual(meta["weighting"], "plain")
            py = df.estimate_delay(
                a[k * n : (k + 1) * n],
                b[k * n : (k + 1) * n],
                FS,
                weighting="plain",
                max_delay_s=100e-6,
            )
            self.assertAlmostEqual(meta["delay_samples"], py.delay_samples, delta=1e-5)
            self.assertAlmostEqual(meta["start_offset_s"], 3.5e-6, delta=1e-9)
            self.assertAlmostEqual(meta["delay_s"], py.delay_s + 3.5e-6, delta=1e-11)
            self.assertAlmostEqual(meta["std_s"], py.std_s, delta=1e-3 * py.std_s)
            whole, frac = meta["rx_time"]
            self.assertEqual(whole, 1_764_000_000)
            self.assertAlmostEqual(frac, 0.25 + k * n / FS, delta=1e-9)
            self.assertLess(abs(meta["delay_samples"] - 30.25), 5 * meta["std_s"] * FS)


if __name__ == "__main__":
    gr_unittest.run(qa_tdoa)
