#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.ref_sync on four simulated nodes whose clocks disagree by milliseconds."""

import numpy as np
import pmt
from gnuradio import blocks, drift, gr, gr_unittest

from drift.sim.scenario import parse_scenario
from drift.sim.source import sim_source

OFFSETS = [0.8e-3, -1.7e-3, 2.45e-3, -0.3e-3]
LO_PPM = [0.0, 2.0, -1.5, 1.0]  # free-running LOs: kHz apart at 433 MHz
CENTER = 432.8e6
NODES = [(48.10, 11.50), (48.18, 11.51), (48.17, 11.62), (48.09, 11.60)]
REF = (48.16, 11.56, 300.0)
SCENARIO = (
    """\
seed: 4
emitters:
  - id: broadcast
    position: {{lat: {}, lon: {}, alt: {}}}
    frequency_hz: 433.0e6
    eirp_dbm: 30
    waveform: {{type: psk, order: 2, symbol_rate_hz: 400e3}}
nodes:
""".format(*REF)
    + "".join(
        f"  - id: n{i}\n    position: {{lat: {lat}, lon: {lon}, alt: 0}}\n"
        f"    device: hackrf_one\n    clock: {{source: none, offset_s: {off}, "
        f"lo_error_ppm: {lo}}}\n"
        for i, ((lat, lon), off, lo) in enumerate(zip(NODES, OFFSETS, LO_PPM, strict=True))
    )
)
FS = 2e6
CAPTURE_S = 0.02


class qa_ref_sync(gr_unittest.TestCase):
    def test_offsets_against_the_scenario(self):
        scn = parse_scenario(SCENARIO)
        blk = drift.ref_sync(
            FS,
            [(lat, lon, 0.0) for lat, lon in NODES],
            REF,
            ref_offset_hz=200e3,
            ref_bandwidth_hz=600e3,
            capture_s=CAPTURE_S,
            max_offset_s=5e-3,
            max_freq_offset_hz=3000,
        )
        dbg = blocks.message_debug()
        tb = gr.top_block(catch_exceptions=False)
        keep = []
        for k in range(4):
            # every node starts at the same nominal time on its own (wrong) clock
            src = sim_source(scn, f"n{k}", FS, CENTER, start_time=1_764_000_000.5)
            head = blocks.head(gr.sizeof_gr_complex, int(2 * CAPTURE_S * FS))
            tb.connect(src, head, (blk, k))
            keep += [src, head]
        tb.msg_connect(blk, "offsets", dbg, "store")
        tb.run()
        self.assertEqual(blk.failures, 0)
        self.assertEqual(dbg.num_messages(), 2)
        truth = np.array(OFFSETS) - OFFSETS[0]
        df_truth = -CENTER * (np.array(LO_PPM) - LO_PPM[0]) * 1e-6
        for i in range(2):
            msg = pmt.to_python(dbg.get_message(i))
            off = np.asarray(msg["offsets_s"])
            std = np.asarray(msg["std_s"])
            self.assertEqual(msg["ref_node"], 0)
            np.testing.assert_allclose(msg["freq_offsets_hz"], df_truth, atol=2.0)
            np.testing.assert_allclose(off, truth, atol=5e-9)
            self.assertTrue(np.all(np.abs(off - truth)[1:] < 5 * std[1:] + 0.2e-9))
            self.assertTrue(np.all(std[1:] < 20e-9) and std[0] == 0)
        self.assertTrue(np.all(np.abs(np.asarray(msg["drift_ppm"])) < 0.5))

    def test_bad_parameters(self):
        with self.assertRaisesRegex(ValueError, "at least 2 nodes"):
            drift.ref_sync(FS, [(48.1, 11.5)], REF)
        with self.assertRaisesRegex(ValueError, "outside the captured"):
            drift.ref_sync(FS, NODES, REF, ref_offset_hz=0.9e6, ref_bandwidth_hz=600e3)
        with self.assertRaisesRegex(ValueError, "capture_s"):
            drift.ref_sync(FS, NODES, REF, capture_s=1e-4)


if __name__ == "__main__":
    gr_unittest.run(qa_ref_sync)
