#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.tdoa_multi (every pair of M streams from one transform per input) against one
drift.tdoa per pair on the same streams, and against the numpy oracle
df.estimate_delay_reference."""

import itertools

import numpy as np
import pmt
from gnuradio import blocks, drift, gr, gr_unittest
from gnuradio.drift import df

FS = 1e6
T0 = 1_764_000_000


def delayed_streams(rng, n, delays, snr_db, bw=0.4):
    """Band-limited noise seen with the given delays (samples, frequency-domain shift), each
    with independent white noise SNR_DB below it, and a different gain per stream."""
    m = 2 * n
    f = np.fft.fftfreq(m)
    spec = (rng.standard_normal(m) + 1j * rng.standard_normal(m)) * (np.abs(f) < bw / 2)
    out = []
    for k, d in enumerate(delays):
        x = np.fft.ifft(spec * np.exp(-2j * np.pi * f * d))
        g = np.std(x) * 10 ** (-snr_db / 20)
        x = x + g * (rng.standard_normal(m) + 1j * rng.standard_normal(m)) / np.sqrt(2)
        out.append((x[:n] * 10 ** (-k)).astype(np.complex64))  # gains 1, 0.1, 0.01, ...
    return out


def rx_time_tag(whole, frac):
    t = gr.tag_t()
    t.offset = 0
    t.key = pmt.intern("rx_time")
    t.value = pmt.make_tuple(pmt.from_uint64(whole), pmt.from_double(frac))
    return t


def metas(dbg):
    return [pmt.to_python(pmt.car(dbg.get_message(k))) for k in range(dbg.num_messages())]


class qa_tdoa_multi(gr_unittest.TestCase):
    def run_both(self, streams, starts, n, weighting, max_delay_s, pairs, max_items=0):
        """tdoa_multi and one drift.tdoa per pair on the same sources: the PDUs of each."""
        tb = gr.top_block(catch_exceptions=False)
        srcs = [
            blocks.vector_source_c(x, False, 1, [rx_time_tag(T0, s)])
            for x, s in zip(streams, starts, strict=True)
        ]
        multi = drift.tdoa_multi(FS, n, len(streams), weighting, max_delay_s, pairs)
        if max_items:  # blocks split across calls
            multi.set_output_multiple(1)
            multi.set_max_noutput_items(max_items)
        got_multi, got_pair = [], []
        for p, src in enumerate(srcs):
            tb.connect(src, (multi, p))
        for k, (i, j) in enumerate(multi.pairs()):
            pair = drift.tdoa(FS, n, weighting, max_delay_s)
            tb.connect(srcs[i], (pair, 0))
            tb.connect(srcs[j], (pair, 1))
            d_multi, d_pair = blocks.message_debug(), blocks.message_debug()
            tb.msg_connect(multi, f"pair{k}", d_multi, "store")
            tb.msg_connect(pair, "delays", d_pair, "store")
            got_multi.append(d_multi)
            got_pair.append(d_pair)
        tb.run()
        return multi, [metas(d) for d in got_multi], [metas(d) for d in got_pair]

    def test_every_pair_equals_the_pair_block(self):
        """Each pair's PDUs equal those of a drift.tdoa on the same two streams, to the bit,
        whether the blocks lie whole in the input buffers or are gathered across calls."""
        rng = np.random.default_rng(3)
        n, nblocks = 6000, 3
        delays = [0.0, 12.37, -31.6, 77.25]
        streams = delayed_streams(rng, n * nblocks, delays, 10)
        starts = [0.25, 0.2500035, 0.2499990, 0.25]  # node clocks: start offsets
        for max_items in (0, 997):
            for w in (drift.GCC_PHAT, drift.GCC_PLAIN, drift.GCC_ML):
                multi, got, want = self.run_both(streams, starts, n, w, 150e-6, [], max_items)
                self.assertEqual(
                    multi.pairs(), [list(p) for p in itertools.combinations(range(4), 2)]
                )
                self.assertEqual(multi.estimates(), nblocks)
                for k in range(6):
                    self.assertEqual(len(got[k]), nblocks)
                    self.assertEqual(got[k], want[k], f"pair {k}, weighting {w}")

    def test_against_the_oracle(self):
        """Every figure of every pair is the numpy oracle's on that pair's samples, and
        delay_s adds the streams' start offset (rx_time) to the sample delay."""
        rng = np.random.default_rng(8)
        n, nblocks = 4096, 2
        delays = [5.5, -20.3, 40.75]
        streams = delayed_streams(rng, n * nblocks, delays, 15)
        starts = [0.5, 0.5000021, 0.4999970]
        for w, name in ((drift.GCC_PHAT, "phat"), (drift.GCC_PLAIN, "plain"), (drift.GCC_ML, "ml")):
            _, got, _ = self.run_both(streams, starts, n, w, 100e-6, [[2, 0], [1, 2]])
            for k, (i, j) in enumerate(((2, 0), (1, 2))):
                for b in range(nblocks):
                    meta = got[k][b]
                    cut = slice(b * n, (b + 1) * n)
                    py = df.estimate_delay_reference(
                        streams[i][cut], streams[j][cut], FS, weighting=name, max_delay_s=100e-6
                    )
                    offset = starts[j] - starts[i]
                    self.assertEqual(meta["offset"], b * n)
                    self.assertEqual(meta["weighting"], name)
                    self.assertEqual(meta["n_samples"], n)
                    self.assertAlmostEqual(meta["delay_samples"], py.delay_samples, delta=1e-5)
                    self.assertAlmostEqual(meta["start_offset_s"], offset, delta=1e-9)
                    self.assertAlmostEqual(meta["delay_s"], py.delay_s + offset, delta=1e-11)
                    self.assertAlmostEqual(meta["std_s"] / py.std_s, 1.0, delta=1e-4)
                    self.assertAlmostEqual(meta["crb_std_s"] / py.crb_std_s, 1.0, delta=1e-4)
                    self.assertAlmostEqual(meta["psr_db"], py.psr_db, delta=1e-3)
                    self.assertAlmostEqual(meta["snr_db"], py.snr_db, delta=1e-3)
                    self.assertAlmostEqual(
                        meta["rms_bandwidth_hz"], py.rms_bandwidth_hz, delta=1e-5 * FS
                    )
                    whole, frac = meta["rx_time"]
                    self.assertEqual(whole, T0)
                    self.assertAlmostEqual(frac, starts[i] + b * n / FS, delta=1e-9)
                    # the truth, as predicted
                    truth = delays[j] - delays[i]
                    self.assertLess(abs(meta["delay_samples"] - truth), 5 * meta["std_s"] * FS)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "n_inputs"):
            drift.tdoa_multi(FS, 1024, 1)
        with self.assertRaisesRegex(ValueError, "weighting"):
            drift.tdoa_multi(FS, 1024, 3, 3)
        with self.assertRaisesRegex(ValueError, "two different inputs"):
            drift.tdoa_multi(FS, 1024, 3, 0, 0.0, [[0, 3]])
        with self.assertRaisesRegex(ValueError, "two different inputs"):
            drift.tdoa_multi(FS, 1024, 3, 0, 0.0, [[1, 1]])
        with self.assertRaisesRegex(ValueError, "n must be"):
            drift.tdoa_multi(FS, 8, 3)
        with self.assertRaisesRegex(ValueError, "samp_rate"):
            drift.tdoa_multi(0, 1024, 3)


if __name__ == "__main__":
    gr_unittest.run(qa_tdoa_multi)
