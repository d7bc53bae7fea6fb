#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.Detector and drift.detector: noise floor, false alarms, measured signals, tracking."""

import time

import numpy as np
import pmt
from gnuradio import blocks, gr, gr_unittest
from scipy import signal

from gnuradio import drift  # isort: skip


def noise_rows(rng, rows, bins, n_avg, mean):
    """Averaged-periodogram noise: Gamma(n_avg) about `mean` in every bin (dB)."""
    return 10 * np.log10(rng.gamma(n_avg, mean / n_avg, size=(rows, bins)))


def psd_of(x, fs, fft_size, n_avg):
    tb = gr.top_block(catch_exceptions=False)
    src = blocks.vector_source_c(x.astype(np.complex64).tolist())
    sink = blocks.vector_sink_f(fft_size)
    tb.connect(src, drift.psd(fft_size, n_avg, fs), sink)
    tb.run()
    return np.array(sink.data()).reshape(-1, fft_size)


class qa_detector(gr_unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(42)

    def test_noise_floor_and_false_alarms(self):
        bins, n_avg, mean = 1024, 20, 1e-12
        det = drift.Detector(bin_hz=1e3, n_avg=n_avg, pfa=1e-4)
        rows = noise_rows(self.rng, 200, bins, n_avg, mean)
        floors = [10 * np.log10(np.mean(det.noise_floor(10 ** (r / 10)))) for r in rows[:20]]
        self.assertAlmostEqual(np.mean(floors), 10 * np.log10(mean), delta=0.2)
        # bins above the on threshold: pfa per bin (200 x 1024 x 1e-4 = 20 expected)
        over = sum(
            int(np.sum(10 ** (r / 10) > det.noise_floor(10 ** (r / 10)) * det.on_factor))
            for r in rows
        )
        self.assertLess(over, 45)  # Poisson(20): 45 is 5.6 sigma
        self.assertGreater(over, 5)
        strict = drift.Detector(bin_hz=1e3, n_avg=n_avg, pfa=1e-7)
        f = np.arange(bins) * 1e3
        self.assertEqual(sum(len(strict.regions(r, f)) for r in rows), 0)

    def test_signals_through_psd(self):
        fs, n, fft_size, n_avg = 1e6, 1 << 18, 1024, 32
        t = np.arange(n) / fs
        noise_power = 1e-9  # -90 dB total: density 1e-15 /Hz
        x = np.sqrt(noise_power / 2) * (
            self.rng.standard_normal(n) + 1j * self.rng.standard_normal(n)
        )
        x += np.sqrt(1e-7) * np.exp(2j * np.pi * 123.4e3 * t)  # tone, -70 dB
        taps = signal.firwin(801, 50e3, fs=fs)  # band-limited noise, 100 kHz wide, -80 dB
        band = signal.lfilter(
            taps, 1.0, self.rng.standard_normal(n) + 1j * self.rng.standard_normal(n)
        )
        band *= np.sqrt(1e-8 / np.mean(np.abs(band) ** 2))
        x += band * np.exp(-2j * np.pi * 250e3 * t)
        rows = psd_of(x, fs, fft_size, n_avg)
        freqs = (np.arange(fft_size) - fft_size // 2) * fs / fft_size
        found = drift.Detector(fs / fft_size, n_avg).regions(rows[2], freqs)
        self.assertEqual(len(found), 2, found)
        tone = min(found, key=lambda d: abs(d.center_freq_hz - 123.4e3))
        wide = min(found, key=lambda d: abs(d.center_freq_hz + 250e3))
        self.assertLess(abs(tone.center_freq_hz - 123.4e3), fs / fft_size)
        self.assertAlmostEqual(tone.power_db, -70.0, delta=1.0)
        self.assertAlmostEqual(
            tone.snr_db, -70 - 10 * np.log10(1e-15 * 1e6 / fft_size * 2.0), delta=3.0
        )  # Blackman-Harris: ENBW ~2 bins
        self.assertLess(abs(wide.center_freq_hz + 250e3), 5e3)
        self.assertAlmostEqual(wide.power_db, -80.0, delta=1.0)
        self.assertAlmostEqual(wide.bandwidth_hz, 100e3, delta=10e3)

    def test_steady_signal_is_one_detection(self):
        bins, n_avg = 512, 10
        det = drift.Detector(bin_hz=1e3, n_avg=n_avg, pfa=1e-6, confirm_frames=2, hold_frames=3)
        f = np.arange(bins) * 1e3
        events = []
        threshold_db = 10 * np.log10(det.on_factor)
        for k, row in enumerate(noise_rows(self.rng, 50, bins, n_avg, 1.0)):
            lin = 10 ** (row / 10)
            # a signal around the threshold: every few frames it dips below it
            level = threshold_db + (-2.0 if k % 4 == 3 else 2.0)
            lin[200:203] += 10 ** (level / 10)
            events += det.update(10 * np.log10(lin), f, float(k))
        events += det.flush()
        kinds = [e for e, _ in events]
        self.assertEqual(kinds, ["new", "end"])
        d = events[-1][1]
        self.assertEqual((d.first_seen_s, d.last_seen_s), (0.0, 49.0))
        self.assertAlmostEqual(d.center_freq_hz, 201e3, delta=1e3)

    def test_gap_longer_than_hold_gives_two(self):
        det = drift.Detector(bin_hz=1e3, n_avg=10, hold_frames=2)
        f = np.arange(256) * 1e3
        events = []
        for k, row in enumerate(noise_rows(self.rng, 20, 256, 10, 1.0)):
            lin = 10 ** (row / 10)
            if not 8 <= k < 12:  # off for 4 frames
                lin[100] += 1e3
            events += det.update(10 * np.log10(lin), f, float(k))
        events += det.flush()
        self.assertEqual([e for e, _ in events], ["new", "end", "new", "end"])

    def test_block_publishes_pdus_with_time(self):
        fft_size, n_avg = 256, 10
        rows = noise_rows(self.rng, 12, fft_size, n_avg, 1e-15)
        rows[:, 100] += 40  # a strong tone
        tags = []
        for offset, key, value in [
            (0, "rx_freq", pmt.from_double(433e6)),
            (0, "rx_time", pmt.make_tuple(pmt.from_uint64(1_700_000_000), pmt.from_double(0.5))),
        ]:
            t = gr.tag_t()
            t.offset, t.key, t.value = offset, pmt.intern(key), value
            tags.append(t)
        tb = gr.top_block(catch_exceptions=False)
        src = blocks.vector_source_f(
            rows.astype(np.float32).ravel().tolist(), False, fft_size, tags
        )
        # a source that never ends keeps the flowgraph (and message delivery) running
        tail = blocks.vector_source_f(rows[0].astype(np.float32).tolist(), True, fft_size)
        cat = blocks.stream_mux(gr.sizeof_float * fft_size, [rows.shape[0], 1 << 30])
        throttle = blocks.throttle(gr.sizeof_float * fft_size, 2000)
        # positional, in drift.psd's order: (fft_size, n_avg, samp_rate)
        blk = drift.detector(fft_size, n_avg, 1e6, 1e-6, 3.0, 1, 2)
        dbg = blocks.message_debug()
        tb.connect(src, (cat, 0))
        tb.connect(tail, (cat, 1))
        tb.connect(cat, throttle, blk)
        tb.msg_connect(blk, "detections", dbg, "store")
        tb.start()
        try:
            deadline = time.monotonic() + 20
            while dbg.num_messages() < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            blk.flush()  # the signal is still on: flush ends it
            while dbg.num_messages() < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            tb.stop()
            tb.wait()
        metas = [pmt.car(dbg.get_message(i)) for i in range(dbg.num_messages())]
        events = [
            pmt.symbol_to_string(pmt.dict_ref(m, pmt.intern("event"), pmt.PMT_NIL)) for m in metas
        ]
        self.assertEqual(events[:2], ["new", "end"])
        centre = pmt.to_double(pmt.dict_ref(metas[0], pmt.intern("center_freq_hz"), pmt.PMT_NIL))
        self.assertAlmostEqual(centre, 433e6 + (100 - 128) * 1e6 / fft_size, delta=1e6 / fft_size)
        first = pmt.to_double(pmt.dict_ref(metas[0], pmt.intern("first_seen_s"), pmt.PMT_NIL))
        self.assertAlmostEqual(first, 1_700_000_000.5, delta=1e-6)

    def test_arguments_in_the_order_of_drift_psd(self):
        """(fft_size, n_avg, samp_rate) as drift.psd, so one positional call fits both; a
        call in the old order (fft_size, samp_rate, n_avg) still means what it meant."""
        import inspect

        psd_doc = drift.psd.__init__.__doc__  # pybind11's signature line
        names = list(inspect.signature(drift.detector.__init__).parameters)[1:4]
        self.assertEqual(names, ["fft_size", "n_avg", "samp_rate"])
        self.assertIn("fft_size: int, n_avg: int, samp_rate: float", psd_doc)
        blk = drift.detector(512, 20, 2e6)
        self.assertEqual((blk.samp_rate, blk.det.n_avg), (2e6, 20))
        self.assertAlmostEqual(blk.det.bin_hz, 2e6 / 512)
        with self.assertWarns(DeprecationWarning):
            old = drift.detector(512, 2e6, 20)
        self.assertEqual((old.samp_rate, old.det.n_avg), (2e6, 20))
        kw = drift.detector(fft_size=512, samp_rate=2e6, n_avg=20)
        self.assertEqual((kw.samp_rate, kw.det.n_avg), (2e6, 20))

    def test_bad_parameters(self):
        for kwargs, word in [
            (dict(bin_hz=0, n_avg=1), "bin_hz"),
            (dict(bin_hz=1, n_avg=0), "n_avg"),
            (dict(bin_hz=1, n_avg=1, pfa=1.5), "pfa"),
            (dict(bin_hz=1, n_avg=1, hysteresis_db=-1), "hysteresis_db"),
            (dict(bin_hz=1, n_avg=1, confirm_frames=0), "confirm_frames"),
        ]:
            with self.assertRaisesRegex(ValueError, word):
                drift.Detector(**kwargs)
        with self.assertRaisesRegex(ValueError, "fft_size"):
            drift.detector(fft_size=0)
        with self.assertRaisesRegex(ValueError, "bins"):
            drift.Detector(1, 1).regions(np.zeros(8), np.zeros(9))


if __name__ == "__main__":
    gr_unittest.run(qa_detector)
