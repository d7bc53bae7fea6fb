#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Bearings and fixes written with SigMF's spatial extension, validated by the sigmf package's
schema and read back."""

import json
import os
import tempfile
import unittest

import numpy as np
from gnuradio.drift.df import GeoOrigin, locate_tdoa, uca_positions
from gnuradio.drift.df import sigmf_spatial as ss
from sigmf import validate

C = 299_792_458.0


def base_meta():
    return {
        "global": {"core:datatype": "cf32_le", "core:version": "1.2.0", "core:sample_rate": 2e6},
        "captures": [{"core:sample_start": 0, "core:frequency": 433.5e6}],
        "annotations": [],
    }


class qa_sigmf_spatial(unittest.TestCase):
    def test_bearings_round_trip_and_validate(self):
        meta = base_meta()
        lam = C / 433.5e6
        ss.add_array(meta, uca_positions(5, 0.425) * lam, aperture_azimuth_deg=90.0)
        geom = meta["captures"][0]["spatial:element_geometry"]
        # element 0 lies due north of the centre: to the left of an east-facing boresight
        np.testing.assert_allclose(geom[0]["point"], [0.0, 0.425 * lam, 0.0], atol=1e-12)
        self.assertEqual(meta["global"]["spatial:num_elements"], 5)
        ss.add_bearing(meta, 123.7, 0.02, 4096, 2048, 433.0e6, 434.0e6, snr_db=20.3)
        ss.add_bearing(meta, 45.0, 0.5, 0, 2048)
        self.assertEqual([a["core:sample_start"] for a in meta["annotations"]], [0, 4096])
        sb = meta["annotations"][1]["spatial:signal_bearing"]
        self.assertAlmostEqual(sb["azimuth"], 33.7)  # relative to the boresight (east)
        validate.validate(meta)  # the SigMF schema
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "df1.sigmf-meta")
            ss.write_meta(path, meta)
            self.assertEqual(os.listdir(d), ["df1.sigmf-meta"])  # no temporary left behind
            with open(path) as f:
                back = json.load(f)
        bs = ss.read_bearings(back)
        self.assertEqual([b.sample_start for b in bs], [0, 4096])
        self.assertAlmostEqual(bs[0].azimuth_deg, 45.0)
        self.assertAlmostEqual(bs[1].azimuth_deg, 123.7)
        self.assertAlmostEqual(bs[1].std_deg, 0.02)
        names = [e["name"] for e in back["global"]["core:extensions"]]
        self.assertEqual(names, ["spatial", "drift"])

    def test_fix_round_trip(self):
        origin = GeoOrigin(48.14, 11.56, 520.0)
        sensors = np.array([[-4000.0, -3500], [4200, -3000], [3500, 4000], [-3800, 3800]])
        truth = np.array([800.0, 1200.0])
        r = np.linalg.norm(sensors - truth, axis=1)
        fix = locate_tdoa(sensors, (r[1:] - r[0]) / C, 20e-9)
        meta = base_meta()
        ss.add_fix(meta, fix, origin, 0, 65536, "TDOA fix")
        validate.validate(meta)
        (f,) = ss.read_fixes(meta)
        lat, lon, _ = origin.to_geodetic(truth)
        self.assertAlmostEqual(f.lat_deg, float(lat), places=7)
        self.assertAlmostEqual(f.lon_deg, float(lon), places=7)
        self.assertAlmostEqual(f.ellipse["semi_major_m"], fix.ellipse.semi_major_m)
        self.assertEqual(f.ellipse["confidence"], 0.95)

    def test_bad_input(self):
        meta = base_meta()
        with self.assertRaisesRegex(ValueError, "azimuth_deg must be finite"):
            ss.add_bearing(meta, float("nan"), 1.0, 0)
        with self.assertRaisesRegex(ValueError, "std_deg must be >= 0"):
            ss.add_bearing(meta, 10.0, -1.0, 0)
        with self.assertRaisesRegex(ValueError, "sample_start"):
            ss.add_bearing(meta, 10.0, 1.0, -5)
        with self.assertRaisesRegex(ValueError, "element_enu_m"):
            ss.add_array(meta, np.zeros(3))
        self.assertEqual(meta["annotations"], [])
        bad = {
            "annotations": [
                {"core:sample_start": 0, "spatial:emitter_location": {"type": "Polygon"}}
            ]
        }
        with self.assertRaisesRegex(ValueError, "GeoJSON Point"):
            ss.read_fixes(bad)


if __name__ == "__main__":
    unittest.main()
