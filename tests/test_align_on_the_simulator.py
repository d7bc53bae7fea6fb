#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.align on simulated nodes whose streams start at different times."""

import numpy as np
import pmt
from gnuradio import blocks, drift, gr, gr_unittest

from drift.sim.scenario import parse_scenario
from drift.sim.source import sim_source
from drift.sim.synth import NodeReceiver

SCENARIO = """\
seed: 11
emitters:
  - id: tx
    position: {lat: 48.15, lon: 11.55, alt: 30}
    frequency_hz: 433.92e6
    eirp_dbm: 20
    waveform: {type: psk, order: 4, symbol_rate_hz: 250e3}
nodes:
  - id: a
    position: {lat: 48.10, lon: 11.50, alt: 20}
    device: adalm_pluto
  - id: b
    position: {lat: 48.20, lon: 11.62, alt: 25}
    device: adalm_pluto
  - id: c
    position: {lat: 48.12, lon: 11.64, alt: 25}
    device: adalm_pluto
"""
FS = 1e6
WHOLE = 1_764_000_000


class qa_align(gr_unittest.TestCase):
    def test_streams_cut_onto_the_latest_start(self):
        scn = parse_scenario(SCENARIO)
        fracs = [0.25, 0.2500123456, 0.2500040004]  # b starts 12.3456 us after a, c 4.0004
        n = 50000
        tb = gr.top_block(catch_exceptions=False)
        srcs = [
            sim_source(scn, nid, FS, 433.92e6, start_time=WHOLE + f)
            for nid, f in zip("abc", fracs, strict=True)
        ]
        # the sources' own start (the float start_time rounds at UNIX scale): use theirs
        starts = [(s._whole, s._frac) for s in srcs]
        heads = [blocks.head(gr.sizeof_gr_complex, n) for _ in srcs]
        al = drift.align(FS, 3)
        sinks = [blocks.vector_sink_c() for _ in srcs]
        for k in range(3):
            tb.connect(srcs[k], heads[k], (al, k), sinks[k])
        tb.run()
        rel = [(w - WHOLE) + f for w, f in starts]
        lo = max(rel)
        drop = [int(round((lo - r) * FS)) for r in rel]
        self.assertEqual(drop[1], 0)
        self.assertEqual(drop[0], 12)  # 12.3456 samples, to the nearest
        self.assertEqual(drop[2], 8)  # 8.3452
        out = [np.array(s.data()) for s in sinks]
        m = min(len(o) for o in out)
        self.assertEqual({len(o) for o in out}, {n - max(drop)})
        for k, nid in enumerate("abc"):
            rx = NodeReceiver(scn, nid, FS, 433.92e6)
            want = rx.samples(drop[k], m, *starts[k])
            np.testing.assert_array_equal(out[k][:m], want)
            tags = {pmt.symbol_to_string(t.key): t for t in sinks[k].tags() if t.offset == 0}
            off = pmt.to_double(tags["align_offset_s"].value)
            self.assertAlmostEqual(off, rel[k] + drop[k] / FS - lo, delta=1e-12)
            self.assertLessEqual(abs(off), 0.5 / FS)
            v = tags["rx_time"].value
            t0 = (pmt.to_uint64(pmt.tuple_ref(v, 0)) - WHOLE) + pmt.to_double(pmt.tuple_ref(v, 1))
            self.assertAlmostEqual(t0, rel[k] + drop[k] / FS, delta=1e-12)
        self.assertEqual(al.breaks, 0)

    def test_bad_parameters(self):
        with self.assertRaisesRegex(ValueError, "n_inputs"):
            drift.align(FS, 1)
        with self.assertRaisesRegex(ValueError, "samp_rate"):
            drift.align(0, 2)


if __name__ == "__main__":
    gr_unittest.run(qa_align)
