#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.bearing on the simulator's array nodes (examples/scenarios/df.yaml): the bearing of
the emitter from each array node against the scenario's geometry, and a fix from two."""

import pathlib

import numpy as np
import pmt
import pymap3d
from gnuradio import blocks, drift, gr, gr_unittest
from gnuradio.drift import df

from drift.sim import load_scenario
from drift.sim.source import sim_source

SCENARIO = pathlib.Path(__file__).resolve().parents[3] / "examples" / "scenarios" / "df.yaml"
FS = 2e6
F0 = 433.5e6


def true_azimuth(scn, node_id, emitter="target"):
    n = scn.node(node_id).position
    e = next(x for x in scn.emitters if x.id == emitter).position
    east, north, _ = pymap3d.geodetic2enu(e.lat, e.lon, e.alt, n.lat, n.lon, n.alt)
    return float(np.degrees(np.arctan2(east, north)) % 360), np.array([east, north])


def run_node(scn, node_id, geometry, size_wl, orientation_deg, n_snap=2048, estimates=2):
    src = sim_source(scn, node_id, FS, F0, start_time=1_795_521_600.5)
    blk = drift.bearing(FS, geometry, 5, size_wl, orientation_deg, "music", n_snap)
    dbg = blocks.message_debug()
    tb = gr.top_block()
    for k in range(5):
        head = blocks.head(gr.sizeof_gr_complex, n_snap * estimates)
        tb.connect((src, k), head, (blk, k))
        tb.__dict__.setdefault("_keep", []).append(head)
    tb.msg_connect(blk, "bearings", dbg, "store")
    tb.run()
    return blk, [dbg.get_message(i) for i in range(dbg.num_messages())]


class qa_bearing(gr_unittest.TestCase):
    def test_uca_and_ula_bearings_and_their_fix(self):
        scn = load_scenario(str(SCENARIO))
        fixes = {}
        for node_id, geometry, size, orient in (("df1", "uca", 0.425, 0.0),
                                                 ("df2", "ula", 0.5, -47.0)):
            blk, msgs = run_node(scn, node_id, geometry, size, orient)
            self.assertEqual(len(msgs), 2)
            az_true, _ = true_azimuth(scn, node_id)
            for msg in msgs:
                meta = pmt.to_python(pmt.car(msg))
                az = meta["azimuth_deg"][0]
                sd = meta["std_deg"][0]
                err = (az - az_true + 180) % 360 - 180
                if geometry == "ula":  # front/back ambiguity: mirror about the array axis
                    axis = (90.0 - 47.0) % 360  # the axis runs 43 -> 223 deg
                    mirror = (2 * axis - az) % 360
                    err2 = (mirror - az_true + 180) % 360 - 180
                    if abs(err2) < abs(err):
                        az, err = mirror, err2
                self.assertLess(abs(err), 1.0, (node_id, az, az_true))
                self.assertLess(abs(err), 5 * sd + 0.2, (node_id, err, sd))
                self.assertEqual(len(pmt.f32vector_elements(pmt.cdr(msg))),
                                 360 if geometry == "uca" else 181)
                self.assertIn("rx_time", meta)
            fixes[node_id] = (az, max(sd, 0.05))
        # the two bearings triangulate the emitter
        origin = scn.node("df1").position
        pos = [pymap3d.geodetic2enu(scn.node(n).position.lat, scn.node(n).position.lon,
                                    scn.node(n).position.alt, origin.lat, origin.lon,
                                    origin.alt)[:2] for n in ("df1", "df2")]
        tgt = next(x for x in scn.emitters if x.id == "target").position
        truth = np.array(pymap3d.geodetic2enu(tgt.lat, tgt.lon, tgt.alt, origin.lat,
                                              origin.lon, origin.alt)[:2])
        fix = df.triangulate_bearings(np.array(pos), [fixes["df1"][0], fixes["df2"][0]],
                                      [fixes["df1"][1], fixes["df2"][1]])
        d = fix.position_enu_m - truth
        self.assertLess(np.linalg.norm(d), 200.0)
        self.assertLess(float(d @ np.linalg.solve(fix.covariance_m2, d)), 13.8)

    def test_bad_parameters(self):
        with self.assertRaisesRegex(ValueError, "geometry"):
            drift.bearing(FS, "cross")
        with self.assertRaisesRegex(ValueError, "method"):
            drift.bearing(FS, method="esprit")
        with self.assertRaisesRegex(ValueError, "calibration"):
            drift.bearing(FS, calibration=[1, 1])
        with self.assertRaisesRegex(ValueError, "n_snapshots"):
            drift.bearing(FS, n_snapshots=3)


if __name__ == "__main__":
    gr_unittest.run(qa_bearing)
