#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.bearing on the simulator's array nodes (examples/scenarios/df.yaml): the bearing of
the emitter from each array node against the scenario's geometry, and a fix from two; with a
calibration file (phases, gains, delays) on an array with channel errors
(examples/scenarios/array_calibration.yaml)."""

import math
import pathlib
import tempfile

import numpy as np
import pmt
import pymap3d
from gnuradio import blocks, drift, gr, gr_unittest
from gnuradio.drift import df

from drift.sim import load_scenario
from drift.sim.source import sim_source
from drift.sim.synth import NodeReceiver

SCENARIO = pathlib.Path(__file__).resolve().parents[1] / "examples" / "scenarios" / "df.yaml"
CAL_SCENARIO = SCENARIO.with_name("array_calibration.yaml")
CAL_START = 1_795_521_600  # the target is on for 0.0-0.3 s of each second, the beacon 0.4-0.7 s
FS = 2e6
F0 = 433.5e6


def true_azimuth(scn, node_id, emitter="target"):
    n = scn.node(node_id).position
    e = next(x for x in scn.emitters if x.id == emitter).position
    east, north, _ = pymap3d.geodetic2enu(e.lat, e.lon, e.alt, n.lat, n.lon, n.alt)
    return float(np.degrees(np.arctan2(east, north)) % 360), np.array([east, north])


def run_node(
    scn,
    node_id,
    geometry,
    size_wl,
    orientation_deg,
    n_snap=2048,
    estimates=2,
    start_time=1_795_521_600.5,
    f0=F0,
    extra=0,
    **kwargs,
):
    src = sim_source(scn, node_id, FS, f0, start_time=start_time)
    blk = drift.bearing(FS, geometry, 5, size_wl, orientation_deg, "music", n_snap, **kwargs)
    dbg = blocks.message_debug()
    tb = gr.top_block(catch_exceptions=False)
    for k in range(5):
        head = blocks.head(gr.sizeof_gr_complex, n_snap * estimates + extra)
        tb.connect((src, k), head, (blk, k))
        tb.__dict__.setdefault("_keep", []).append(head)
    tb.msg_connect(blk, "bearings", dbg, "store")
    tb.run()
    return blk, [dbg.get_message(i) for i in range(dbg.num_messages())]


class qa_bearing(gr_unittest.TestCase):
    def test_uca_and_ula_bearings_and_their_fix(self):
        scn = load_scenario(str(SCENARIO))
        fixes = {}
        for node_id, geometry, size, orient in (
            ("df1", "uca", 0.425, 0.0),
            ("df2", "ula", 0.5, -47.0),
        ):
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
                self.assertEqual(
                    len(pmt.f32vector_elements(pmt.cdr(msg))), 360 if geometry == "uca" else 181
                )
                self.assertIn("rx_time", meta)
            fixes[node_id] = (az, max(sd, 0.05))
        # the two bearings triangulate the emitter
        origin = scn.node("df1").position
        pos = [
            pymap3d.geodetic2enu(
                scn.node(n).position.lat,
                scn.node(n).position.lon,
                scn.node(n).position.alt,
                origin.lat,
                origin.lon,
                origin.alt,
            )[:2]
            for n in ("df1", "df2")
        ]
        tgt = next(x for x in scn.emitters if x.id == "target").position
        truth = np.array(
            pymap3d.geodetic2enu(tgt.lat, tgt.lon, tgt.alt, origin.lat, origin.lon, origin.alt)[:2]
        )
        fix = df.triangulate_bearings(
            np.array(pos), [fixes["df1"][0], fixes["df2"][0]], [fixes["df1"][1], fixes["df2"][1]]
        )
        d = fix.position_enu_m - truth
        self.assertLess(np.linalg.norm(d), 200.0)
        self.assertLess(float(d @ np.linalg.solve(fix.covariance_m2, d)), 13.8)

    def test_calibration_file_with_delays_in_a_flowgraph(self):
        """The UCA of array_calibration.yaml has phase, gain and delay errors (up to 47
        samples): calibrated from a capture of the beacon at its known position, saved, and
        given to the block as its calibration file, the target's bearings are within 0.5 deg
        of its true azimuth; without it they are degrees off."""
        scn = load_scenario(str(CAL_SCENARIO))
        rx = NodeReceiver(scn, "kraken", FS, 433.5e6)
        beacon = next(e for e in scn.emitters if e.id == "beacon")
        az_ref, _ = true_azimuth(scn, "kraken", "beacon")
        x = rx.samples(0, 65536, CAL_START, 0.45)
        cal = df.calibrate_wideband(
            x,
            FS,
            max_delay_s=60 / FS,
            positions_wl=rx.element_positions_wl(beacon.frequency_hz),
            ref_azimuth_deg=az_ref,
            ref_freq_hz=beacon.frequency_hz,
            center_freq_hz=433.5e6,
        )
        az_true, _ = true_azimuth(scn, "kraken", "target")
        lead, trail = cal.edge_samples()
        self.assertGreater(lead + trail, 40)  # the delays span over 40 samples
        n_snap, start = 2048, CAL_START + 0.05
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "kraken.json"
            cal.save(path)
            blk, msgs = run_node(
                scn,
                "kraken",
                "uca",
                0.425,
                0.0,
                n_snap,
                3,
                start_time=start,
                f0=433.5e6,
                extra=lead + trail,
                calibration_file=str(path),
            )
        self.assertEqual(len(msgs), 3)
        for i, msg in enumerate(msgs):
            meta = pmt.to_python(pmt.car(msg))
            err = (meta["azimuth_deg"][0] - az_true + 180) % 360 - 180
            self.assertLess(abs(err), min(0.5, 5 * meta["std_deg"][0] + 0.1), (i, err))
            # each estimate's first corrected snapshot: input sample lead + i n on input 0
            self.assertEqual(meta["offset"], lead + i * n_snap)
            whole, frac = meta["rx_time"]
            t = (whole - CAL_START) + frac
            t0 = start - math.floor(start)  # the source's first sample (start in float)
            self.assertAlmostEqual(t, t0 + (lead + i * n_snap) / FS, delta=1e-9)
        # the same flowgraph without the calibration
        _, raw = run_node(scn, "kraken", "uca", 0.425, 0.0, n_snap, 1, start_time=start, f0=433.5e6)
        az_raw = pmt.to_python(pmt.car(raw[0]))["azimuth_deg"][0]
        self.assertGreater(abs((az_raw - az_true + 180) % 360 - 180), 5.0)
        # the calibration as a value, and the older complex factors, give the same numbers
        blk2 = drift.bearing(FS, "uca", 5, 0.425, calibration=cal.to_dict())
        np.testing.assert_allclose(blk2.cal.gains, cal.gains, rtol=1e-12)
        blk3 = drift.bearing(FS, "uca", 5, 0.425, calibration=1 / cal.gains)
        self.assertEqual(blk3.cal.edge_samples(), (0, 0))
        np.testing.assert_allclose(blk3.cal.gains, cal.gains, rtol=1e-12)

    def test_bad_calibrations(self):
        cal = df.ArrayCalibration.from_errors(
            [0, 1, 2, 3, 4], [0] * 5, [0, 1.5, 0, 0, 0], sample_rate_hz=1e6
        )
        with self.assertRaisesRegex(ValueError, "made at 1e\\+06 Hz but samp_rate is 2e\\+06"):
            drift.bearing(FS, calibration=cal)
        with self.assertRaisesRegex(ValueError, "for 4 channels, the block has 5"):
            drift.bearing(FS, calibration=df.ArrayCalibration(np.ones(4), np.zeros(4)))
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "c.json"
            path.write_text('{"phase_deg": [0, 0, 0, 0, 0], "gain_db": [0, 0, 0, 0]}')
            with self.assertRaisesRegex(ValueError, f"{path}: gain_db has 4 values for 5"):
                drift.bearing(FS, calibration_file=str(path))
            with self.assertRaisesRegex(ValueError, "not both"):
                drift.bearing(FS, calibration=[1] * 5, calibration_file=str(path))
        with self.assertRaisesRegex(ValueError, "No such file"):
            drift.bearing(FS, calibration_file="/nonexistent/cal.json")
        with self.assertRaisesRegex(ValueError, "non-zero"):
            drift.bearing(FS, calibration=[1, 1, 0, 1, 1])

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
