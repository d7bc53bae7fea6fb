#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.sweep_detector: detection on whole sweeps, across the hops of a swept scan.

The oracle is the test signal: a retunable source that synthesizes emitters of known frequency,
power and width at whatever frequency it is tuned to, two of them on the seams between hops,
where detecting hop by hop would cut them in two. Times are checked against the sweeper's own
rx_time tags on the vectors the block passes through.
"""

import threading

import numpy as np
import pmt
from gnuradio import blocks, gr, gr_unittest
from scipy import signal

from gnuradio import drift  # isort: skip


class emitter_source(gr.sync_block):
    """A retunable receiver of known emitters: complex samples (units: sqrt(power)) of CW
    tones and noise bands at absolute frequencies, over white noise of a known density, as a
    receiver tuned to `center_hz` sees them (emitters outside its band are filtered out). A {"freq": Hz} command on `cmd` retunes from the
    next sample produced, which is tagged rx_freq; sample 0 is tagged rx_time t0."""

    BAND_SAMPLES = 1 << 16

    def __init__(self, center_hz, samp_rate, emitters, noise_density, t0=1_800_000_000.0, seed=7):
        gr.sync_block.__init__(self, "emitter_source", [], [np.complex64])
        self.fs, self.t0 = samp_rate, t0
        self.rng = np.random.default_rng(seed)
        self.noise_sigma = np.sqrt(noise_density * samp_rate / 2)
        self.emitters = []
        for freq_hz, power, width_hz in emitters:
            band = None
            if width_hz > 0:  # noise of the given width, normalized to its power
                taps = signal.firwin(511, width_hz / 2, fs=samp_rate)
                white = self.rng.standard_normal(
                    self.BAND_SAMPLES + 510
                ) + 1j * self.rng.standard_normal(self.BAND_SAMPLES + 510)
                band = signal.lfilter(taps, 1.0, white)[510:]
                band *= np.sqrt(power / np.mean(np.abs(band) ** 2))
            self.emitters.append((freq_hz, power, band, width_hz))
        self.center_hz = center_hz
        self.pending = [center_hz]
        self.lock = threading.Lock()
        self.message_port_register_in(pmt.intern("cmd"))
        self.set_msg_handler(pmt.intern("cmd"), self.on_cmd)

    def on_cmd(self, msg):
        with self.lock:
            self.pending.append(pmt.to_double(pmt.dict_ref(msg, pmt.intern("freq"), pmt.PMT_NIL)))

    def work(self, input_items, output_items):
        out = output_items[0]
        n = min(len(out), 2048)  # small calls, so retunes land soon after their command
        start = self.nitems_written(0)
        if start == 0:
            self.add_item_tag(
                0,
                0,
                pmt.intern("rx_time"),
                pmt.make_tuple(pmt.from_uint64(int(self.t0)), pmt.from_double(self.t0 % 1)),
            )
        with self.lock:
            pending, self.pending = self.pending, []
        if pending:
            self.center_hz = pending[-1]
            self.add_item_tag(0, start, pmt.intern("rx_freq"), pmt.from_double(self.center_hz))
        k = start + np.arange(n)
        x = self.noise_sigma * (self.rng.standard_normal(n) + 1j * self.rng.standard_normal(n))
        for freq_hz, power, band, width_hz in self.emitters:
            if abs(freq_hz - self.center_hz) + width_hz / 2 >= self.fs / 2:
                continue  # outside the receiver's band (an ideal anti-aliasing filter)
            mix = np.exp(2j * np.pi * (freq_hz - self.center_hz) / self.fs * k)
            env = np.sqrt(power) if band is None else band[k % self.BAND_SAMPLES]
            x += env * mix
        out[:n] = x
        return n


class recorder(gr.sync_block):
    """Sink of PSD vectors and detection PDUs: keeps the PDUs' metadata and the vectors' tags."""

    def __init__(self, fft_size):
        gr.sync_block.__init__(self, "recorder", [(np.float32, fft_size)], [])
        self.detections = []
        self.tags = []
        self.rows = 0
        self.message_port_register_in(pmt.intern("detections"))
        self.set_msg_handler(pmt.intern("detections"), self.on_detection)

    def on_detection(self, msg):
        self.detections.append(pmt.to_python(pmt.car(msg)))

    def work(self, input_items, output_items):
        n = len(input_items[0])
        start = self.nitems_read(0)
        for tag in self.get_tags_in_range(0, start, start + n):
            self.tags.append((tag.offset, pmt.symbol_to_string(tag.key), pmt.to_python(tag.value)))
        self.rows += n
        return n


def by_signal(detections):
    """The events of each detection id, in order."""
    out = {}
    for d in detections:
        out.setdefault(int(d["id"]), []).append(d)
    return out


class qa_sweep_detector(gr_unittest.TestCase):
    def test_signals_on_hop_seams_are_one_detection_each_over_the_whole_scan(self):
        fs, fft_size, n_avg, sweeps = 1e6, 256, 20, 3
        plan = drift.plan_hops(100e6, 103e6, fs, fs / fft_size, n_avg=n_avg, usable=0.75)
        seams = [
            plan.hops[i].center_hz + plan.bin_hz * plan.hops[i].n_bins / 2
            for i in range(len(plan.hops) - 1)
        ]
        self.assertEqual(len(plan.hops), 4)
        # (frequency, power, width): a noise band across the first seam, a tone on the second,
        # a weaker tone inside the last hop; noise -100 dB/Hz (-64 dB a bin)
        emitters = [
            (seams[0], 10**-3.5, 150e3),
            (seams[1] + 500.0, 1e-4, 0.0),
            (102.6e6, 1e-5, 0.0),
        ]
        tb = gr.top_block(catch_exceptions=False)
        src = emitter_source(plan.hops[0].center_hz, fs, emitters, 1e-10)
        sweeper = drift.sweeper(plan, retune_tags=True, max_sweeps=sweeps)
        psd = drift.psd(fft_size, n_avg, fs)
        blk = drift.sweep_detector(plan, pfa=1e-6, max_sweeps=sweeps, passthrough=True)
        sink = recorder(fft_size)
        tb.connect(src, sweeper, psd, blk, sink)
        tb.msg_connect(sweeper, "cmd", src, "cmd")
        tb.msg_connect(blk, "detections", sink, "detections")
        tb.run()

        self.assertEqual(sink.rows, sweeps * len(plan.hops))
        self.assertEqual((blk.sweeps_detected, blk.sweeps_skipped), (sweeps, 0))
        # each sweep's time is its first hop's rx_time, as the sweeper tagged it
        hop_rows = {o for o, k, v in sink.tags if k == "drift_hop" and v == 0}
        sweep_times = sorted(
            v[0] + v[1] for o, k, v in sink.tags if k == "rx_time" and o in hop_rows
        )
        self.assertEqual(len(sweep_times), sweeps)
        tracks = by_signal(sink.detections)
        self.assertEqual(len(tracks), len(emitters), sink.detections)
        for freq_hz, power, width_hz in emitters:
            events = min(tracks.values(), key=lambda ev: abs(ev[-1]["center_freq_hz"] - freq_hz))
            # one signal, one track for the whole scan: confirmed at once, ended by the last
            # sweep (not at every hop change)
            self.assertEqual([e["event"] for e in events], ["new", "end"], events)
            end = events[-1]
            self.assertEqual(end["frames"], sweeps)
            # a tone within a bin; the noise band's power-weighted centre wanders with its
            # noise (1.3-4.0 kHz off in 20 runs, its bins 3.9 kHz): within two bins
            tolerance_hz = plan.bin_hz if width_hz == 0 else 2 * plan.bin_hz
            self.assertLessEqual(abs(end["center_freq_hz"] - freq_hz), tolerance_hz, end)
            self.assertAlmostEqual(end["power_db"], 10 * np.log10(power), delta=1.0)
            if width_hz:
                self.assertAlmostEqual(end["bandwidth_hz"], width_hz, delta=0.15 * width_hz)
            self.assertAlmostEqual(end["first_seen_s"], sweep_times[0], delta=1e-6)
            self.assertAlmostEqual(end["last_seen_s"], sweep_times[-1], delta=1e-6)

    def test_untagged_vectors_are_sweeps_of_a_one_hop_plan(self):
        fft_size, n_avg = 256, 10
        plan = drift.plan_hops(433.9e6, 434.1e6, 1e6, 1e6 / fft_size, n_avg=n_avg)
        self.assertEqual(len(plan.hops), 1)
        rng = np.random.default_rng(3)
        rows = 10 * np.log10(rng.gamma(n_avg, 1e-12 / n_avg, size=(12, fft_size)))
        # a signal 30 dB over the floor in the kept band, on for vectors 2..6
        k = plan.hops[0].first_bin + 20
        rows[2:7, k] = -90.0
        tags = []
        for i in range(len(rows)):
            t = gr.tag_t()
            t.offset, t.key = i, pmt.intern("rx_time")
            t.value = pmt.make_tuple(pmt.from_uint64(1000 + i), pmt.from_double(0.25))
            tags.append(t)
        tb = gr.top_block(catch_exceptions=False)
        src = blocks.vector_source_f(
            rows.astype(np.float32).ravel().tolist(), False, fft_size, tags
        )
        blk = drift.sweep_detector(plan, passthrough=True)
        sink = recorder(fft_size)
        tb.connect(src, blk, sink)
        tb.msg_connect(blk, "detections", sink, "detections")
        tb.run()
        self.assertEqual(blk.sweeps_detected, len(rows))
        self.assertEqual([d["event"] for d in sink.detections], ["new", "end"])
        end = sink.detections[-1]
        self.assertEqual(
            (end["first_seen_s"], end["last_seen_s"], end["frames"]), (1002.25, 1006.25, 5)
        )
        self.assertAlmostEqual(
            end["center_freq_hz"], plan.hop_freqs_hz(plan.hops[0])[20], delta=1.0
        )

    def test_bad_parameters(self):
        plan = drift.plan_hops(100e6, 101e6, 1e6, 1e6 / 64, n_avg=4)
        for kwargs, word in [
            (dict(confirm_sweeps=0), "confirm_sweeps"),
            (dict(hold_sweeps=-1), "hold_sweeps"),
            (dict(max_sweeps=-1), "max_sweeps"),
            (dict(pfa=2.0), "pfa"),
        ]:
            with self.assertRaisesRegex(ValueError, word):
                drift.sweep_detector(plan, **kwargs)
        with self.assertRaisesRegex(TypeError, "HopPlan"):
            drift.sweep_detector({"start_hz": 100e6})


if __name__ == "__main__":
    gr_unittest.run(qa_sweep_detector)
