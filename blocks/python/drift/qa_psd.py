#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.psd against scipy.signal.welch (the oracle), its tags and its parameter checks."""

import numpy as np
import pmt
from gnuradio import blocks, fft, gr, gr_unittest
from scipy import signal

try:
    from gnuradio import drift
except ImportError:  # run from the build tree before install
    import os
    import sys

    sys.path.append(os.path.join(os.path.dirname(__file__), "bindings"))
    from gnuradio import drift


def welch_db(x, fs, taps, fft_size, overlap):
    _, p = signal.welch(
        x,
        fs=fs,
        window=np.asarray(taps, dtype=np.float64),
        nperseg=fft_size,
        noverlap=round(overlap * fft_size),
        return_onesided=False,
        scaling="density",
        detrend=False,
    )
    return 10 * np.log10(np.fft.fftshift(p))


def run_psd(x, block, tags=()):
    tb = gr.top_block(catch_exceptions=False)
    src = blocks.vector_source_c(x.astype(np.complex64).tolist(), False, 1, list(tags))
    sink = blocks.vector_sink_f(block_size(block))
    tb.connect(src, block, sink)
    tb.run()
    n = block_size(block)
    data = np.array(sink.data(), dtype=np.float64).reshape(-1, n)
    return data, sink.tags()


def block_size(block):
    return block.output_signature().sizeof_stream_item(0) // 4


def tag(offset, key, value):
    t = gr.tag_t()
    t.offset = offset
    t.key = pmt.intern(key)
    t.value = value
    return t


def rx_time(secs, frac):
    return pmt.make_tuple(pmt.from_uint64(secs), pmt.from_double(frac))


class qa_psd(gr_unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(1234)

    def noise(self, n, power=1.0):
        scale = np.sqrt(power / 2)
        return scale * (self.rng.standard_normal(n) + 1j * self.rng.standard_normal(n))

    def check_against_welch(self, x, fs, fft_size, n_avg, overlap, window):
        block = drift.psd(fft_size, n_avg, fs, overlap, window)
        out, _ = run_psd(x, block)
        step = block.step()
        span = (n_avg - 1) * step + fft_size
        self.assertGreaterEqual(out.shape[0], 2)
        x32 = x.astype(np.complex64)  # what the block sees
        for j, row in enumerate(out):
            start = j * n_avg * step
            ref = welch_db(x32[start : start + span], fs, block.window_taps(), fft_size, overlap)
            np.testing.assert_allclose(row, ref, atol=0.01, err_msg=f"vector {j}")
        return out

    def test_noise_matches_welch(self):
        for fft_size, n_avg, overlap in [(1024, 8, 0.0), (256, 10, 0.5), (100, 3, 0.25)]:
            x = self.noise(fft_size * n_avg * 4, power=2e-3)
            self.check_against_welch(
                x, 2.4e6, fft_size, n_avg, overlap, fft.window.WIN_BLACKMAN_HARRIS
            )
        # White noise of power P has density P / fs everywhere (averaged in linear units).
        out, _ = run_psd(self.noise(1024 * 400, power=2e-3), drift.psd(1024, 10, 2.4e6))
        mean_db = 10 * np.log10(np.mean(10 ** (out / 10)))
        self.assertAlmostEqual(mean_db, 10 * np.log10(2e-3 / 2.4e6), delta=0.05)

    def test_tones_match_welch(self):
        # 48 dB from the tone to the noise per sample, about 80 dB from the peak to the floor of
        # the spectrum (a 12-bit receiver's range). The block computes in float32 like the rest
        # of GNU Radio: bins more than about 85 dB below the strongest one carry the FFT's
        # rounding noise (0.01 dB there), where float64 scipy has none.
        fs, n = 1e6, 4096
        t = np.arange(n * 12) / fs
        x = (
            0.5 * np.exp(2j * np.pi * 123e3 * t)
            + 1e-2 * np.exp(2j * np.pi * -301.7e3 * t)
            + self.noise(t.size, 4e-6)
        )
        for window in (fft.window.WIN_HANN, fft.window.WIN_FLATTOP, fft.window.WIN_RECTANGULAR):
            self.check_against_welch(x, fs, n, 4, 0.0, window)

    def test_linear_output_and_calibration(self):
        x = self.noise(512 * 6)
        lin, _ = run_psd(x, drift.psd(512, 3, 1e5, db=False, cal_offset_db=-3.0))
        db, _ = run_psd(x, drift.psd(512, 3, 1e5, db=True, cal_offset_db=-3.0))
        raw, _ = run_psd(x, drift.psd(512, 3, 1e5))
        np.testing.assert_allclose(10 * np.log10(lin), db, atol=1e-3)
        np.testing.assert_allclose(db, raw - 3.0, atol=1e-4)

    def test_rx_time_follows_upstream_tag_and_count(self):
        fs, fft_size, n_avg = 2e6, 128, 5
        x = self.noise(fft_size * n_avg * 6 + 17)
        t0 = rx_time(1_700_000_000, 0.25)
        _, tags = run_psd(x, drift.psd(fft_size, n_avg, fs), [tag(0, "rx_time", t0)])
        times = [t for t in tags if pmt.symbol_to_string(t.key) == "rx_time"]
        self.assertEqual([t.offset for t in times], list(range(6)))
        for j, t in enumerate(times):
            secs = pmt.to_uint64(pmt.tuple_ref(t.value, 0))
            frac = pmt.to_double(pmt.tuple_ref(t.value, 1))
            expected = 0.25 + j * fft_size * n_avg / fs
            self.assertEqual(secs, 1_700_000_000 + int(expected))
            self.assertAlmostEqual(frac, expected % 1.0, delta=1e-12)

    def test_retune_restarts_the_average(self):
        fs, fft_size, n_avg = 1e6, 64, 4
        x = self.noise(fft_size * 40)
        retune_at = 3 * fft_size + 10  # inside the first average
        tags = [
            tag(0, "rx_time", rx_time(100, 0.0)),
            tag(0, "rx_freq", pmt.from_double(100e6)),
            tag(retune_at, "rx_freq", pmt.from_double(102e6)),
        ]
        block = drift.psd(fft_size, n_avg, fs, window=fft.window.WIN_HANN)
        out, otags = run_psd(x, block, tags)
        # The first vector starts at the retune: no average spans two frequencies.
        span = fft_size * n_avg
        ref = welch_db(
            x.astype(np.complex64)[retune_at : retune_at + span],
            fs,
            block.window_taps(),
            fft_size,
            0.0,
        )
        np.testing.assert_allclose(out[0], ref, atol=0.01)
        freqs = [pmt.to_double(t.value) for t in otags if pmt.symbol_to_string(t.key) == "rx_freq"]
        self.assertEqual(freqs[0], 102e6)
        first_time = next(t for t in otags if pmt.symbol_to_string(t.key) == "rx_time")
        self.assertAlmostEqual(pmt.to_double(pmt.tuple_ref(first_time.value, 1)), retune_at / fs)

    def test_time_jump_restarts_the_average(self):
        fs, fft_size, n_avg = 1e6, 64, 2
        x = self.noise(fft_size * 20)
        jump_at = fft_size + 5
        tags = [
            tag(0, "rx_time", rx_time(10, 0.0)),
            # An overflow: the next samples are 1 ms later than the count says.
            tag(jump_at, "rx_time", rx_time(10, jump_at / fs + 1e-3)),
        ]
        _, otags = run_psd(x, drift.psd(fft_size, n_avg, fs), tags)
        first = next(t for t in otags if pmt.symbol_to_string(t.key) == "rx_time")
        self.assertAlmostEqual(pmt.to_double(pmt.tuple_ref(first.value, 1)), jump_at / fs + 1e-3)

    def test_bad_parameters(self):
        cases = [
            ((0, 1, 1e6), "fft_size"),
            ((-8, 1, 1e6), "fft_size"),
            ((16, 0, 1e6), "n_avg"),
            ((16, 1, 0.0), "samp_rate"),
            ((16, 1, 1e6, 1.0), "overlap"),
            ((16, 1, 1e6, -0.1), "overlap"),
            ((16, 1, 1e6, 0.0, fft.window.win_type(99)), "window"),
        ]
        for args, word in cases:
            with self.assertRaisesRegex(ValueError, word):
                drift.psd(*args)


if __name__ == "__main__":
    gr_unittest.run(qa_psd)
