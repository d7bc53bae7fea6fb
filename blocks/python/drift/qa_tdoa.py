#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.tdoa (C++ GCC delay block), drift.gcc_delay and df.estimate_delay against the numpy
reference, df.estimate_delay_reference."""

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


def py_max_lag(n, max_delay_s):
    """The lag range estimate_delay searches for max_delay_s at 1 Hz."""
    return int(min(n - 1, np.ceil(max_delay_s) + 1))


def rx_time_tag(offset, whole, frac):
    t = gr.tag_t()
    t.offset = offset
    t.key = pmt.intern("rx_time")
    t.value = pmt.make_tuple(pmt.from_uint64(whole), pmt.from_double(frac))
    return t


class qa_tdoa(gr_unittest.TestCase):
    def test_same_numbers_as_python(self):
        """Every figure equals the numpy oracle's, for each weighting, at lengths with and
        without the split refinement (short transforms sum every bin) and non-smooth lengths."""
        rng = np.random.default_rng(5)
        for n, delay in ((4096, 12.37), (1000, -7.61), (100, 3.3), (20000, 151.8)):
            for snr in (25, 5, -3):
                for w in ("phat", "plain", "ml"):
                    a, b = delayed_pair(rng, n, delay, snr)
                    a, b = a[:n], b[:n]
                    max_delay_s = 2 * abs(delay) + 10
                    py = df.estimate_delay_reference(
                        a, b, 1.0, weighting=w, max_delay_s=max_delay_s
                    )
                    cc = drift.gcc_delay(a, b, w, py_max_lag(n, max_delay_s))
                    self.assert_same(cc, py)
                    if snr >= 5 and n >= 1000:  # above threshold: the truth, as predicted
                        self.assertLess(
                            abs(cc["delay_samples"] - delay), 5 * cc["std_samples"] + 1e-3
                        )

    def assert_same(self, cc, py):
        self.assertAlmostEqual(cc["delay_samples"], py.delay_samples, delta=1e-5)
        self.assertAlmostEqual(cc["std_samples"] / py.std_samples, 1.0, delta=1e-4)
        self.assertAlmostEqual(cc["crb_std_samples"] / (py.crb_std_s), 1.0, delta=1e-4)
        self.assertAlmostEqual(cc["psr_db"], py.psr_db, delta=1e-3)
        self.assertAlmostEqual(cc["snr_db"], py.snr_db, delta=1e-3)
        self.assertAlmostEqual(cc["rms_bandwidth"], py.rms_bandwidth_hz, delta=1e-5)
        self.assertEqual(cc["n_samples"], py.n_samples)

    def test_unequal_channel_gains_give_the_oracles_snr(self):
        """The channels' scale (a node 40 dB weaker) changes nothing the oracle keeps fixed,
        and the SNR figure, which depends on it, is the oracle's."""
        rng = np.random.default_rng(11)
        a, b = delayed_pair(rng, 4096, 5.5, 10)
        a, b = a[:4096], (b[:4096] * 0.01).astype(np.complex64)
        for w in ("phat", "plain", "ml"):
            py = df.estimate_delay_reference(a, b, 1.0, weighting=w)
            self.assert_same(drift.gcc_delay(a, b, w), py)

    def test_real_inputs(self):
        """Real signals (phase known, half the degrees of freedom) as the oracle takes them."""
        rng = np.random.default_rng(12)
        a, b = delayed_pair(rng, 2048, 9.25, 15)
        a, b = a[:2048].real.copy(), b[:2048].real.copy()
        for w in ("phat", "plain", "ml"):
            py = df.estimate_delay_reference(a, b, 1.0, weighting=w)
            self.assert_same(drift.gcc_delay(a, b, w, real=True), py)

    def test_the_estimator_object_repeats_the_one_shot_call(self):
        """An estimator reused over blocks (its buffers and plans kept) gives each block what a
        fresh call gives."""
        rng = np.random.default_rng(13)
        est = drift.gcc_estimator(1024, "ml", 60)
        self.assertEqual(est.n, 1024)
        self.assertEqual(est.max_lag, 60)
        for _ in range(3):
            a, b = delayed_pair(rng, 1024, -20.4, 8)
            a, b = a[:1024], b[:1024]
            py = df.estimate_delay_reference(a, b, 1.0, weighting="ml", max_delay_s=59)
            self.assert_same(est.estimate(a, b), py)

    def test_df_estimate_delay_runs_the_compiled_estimator(self):
        """df.estimate_delay gives the reference's figures (it runs the C++ estimator here:
        single-precision results, not the reference's own doubles) in its DelayEstimate."""
        rng = np.random.default_rng(14)
        a, b = delayed_pair(rng, 3000, 17.7, 12)
        a, b = a[:3000], b[:3000]
        for w in ("phat", "plain", "ml"):
            fast = df.estimate_delay(a, b, 2e6, weighting=w, max_delay_s=40e-6, smooth_bins=9)
            ref = df.estimate_delay_reference(
                a, b, 2e6, weighting=w, max_delay_s=40e-6, smooth_bins=9
            )
            self.assertNotEqual(fast.delay_samples, ref.delay_samples)  # not the numpy path
            self.assertAlmostEqual(fast.delay_s, ref.delay_s, delta=1e-5 / 2e6)
            self.assertAlmostEqual(fast.std_s / ref.std_s, 1.0, delta=1e-4)
            self.assertAlmostEqual(fast.crb_std_s / ref.crb_std_s, 1.0, delta=1e-4)
            self.assertAlmostEqual(fast.psr_db, ref.psr_db, delta=1e-3)
            self.assertAlmostEqual(fast.snr_db, ref.snr_db, delta=1e-3)
            self.assertAlmostEqual(fast.rms_bandwidth_hz / ref.rms_bandwidth_hz, 1.0, delta=1e-5)
            self.assertEqual((fast.weighting, fast.n_samples), (w, 3000))
        # real inputs take the real-signal model there too
        fast = df.estimate_delay(a.real, b.real, 2e6, weighting="plain")
        ref = df.estimate_delay_reference(a.real, b.real, 2e6, weighting="plain")
        self.assertAlmostEqual(fast.std_s / ref.std_s, 1.0, delta=1e-4)
        # samples beyond single precision's range go to the reference, and are estimated
        x1, x2 = a.astype(np.complex128) * 1e-40, b.astype(np.complex128) * 1e-40
        tiny = df.estimate_delay(x1, x2, 2e6, weighting="plain", max_delay_s=40e-6)
        ref = df.estimate_delay_reference(x1, x2, 2e6, weighting="plain", max_delay_s=40e-6)
        self.assertEqual(tiny, ref)
        self.assertAlmostEqual(tiny.delay_samples, 17.7, delta=5 * tiny.std_samples)

    def test_bad_input(self):
        x = np.zeros(100, dtype=np.complex64)
        with self.assertRaisesRegex(ValueError, "lengths differ"):
            drift.gcc_delay(x, x[:50])
        with self.assertRaisesRegex(ValueError, "at least 16"):
            drift.gcc_delay(x[:8], x[:8])
        with self.assertRaisesRegex(ValueError, "weighting"):
            drift.gcc_delay(x, x, "cross")
        with self.assertRaisesRegex(ValueError, "weighting"):
            drift.tdoa(FS, 1024, 3)
        with self.assertRaisesRegex(ValueError, "takes 100 samples"):
            drift.gcc_estimator(100).estimate(x[:99], x[:99])
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
            py = df.estimate_delay_reference(
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
