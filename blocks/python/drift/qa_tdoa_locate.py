#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.tdoa_locate: fixes from six drift.tdoa pairs against the geometry's truth."""

import itertools

import numpy as np
import pmt
import pymap3d
from gnuradio import blocks, drift, gr, gr_unittest
from gnuradio.drift.tdoa_locate import pairs_to_reference

FS = 2.4e6
C = 299_792_458.0
# four nodes around an emitter (ENU metres about 48.14 N, 11.56 E, 100 m), as
# examples/scenarios/tdoa4.yaml
ORIGIN = (48.14, 11.56, 100.0)
NODES_ENU = [(-4000, -3500), (4200, -3000), (3500, 4000), (-3800, 3800)]
EMITTER_ENU = (800.0, 1200.0)


def lla(east, north):
    lat, lon, alt = pymap3d.enu2geodetic(east, north, 0.0, *ORIGIN)
    return [float(lat), float(lon), float(alt)]


def arrival_s(node_lla, emitter_lla):
    """Straight-line propagation time (ECEF), independent of the block's frames."""
    a = np.array(pymap3d.geodetic2ecef(*node_lla))
    b = np.array(pymap3d.geodetic2ecef(*emitter_lla))
    return float(np.linalg.norm(a - b)) / C


def node_streams(rng, delays_samples, n_total, snr_db):
    """Band-limited noise (1 MHz of 2.4) delayed per node, white noise snr_db below it."""
    m = n_total + 4096
    f = np.fft.fftfreq(m)
    spec = (rng.standard_normal(m) + 1j * rng.standard_normal(m)) * (np.abs(f) < 0.5 / 2.4)
    out = []
    for d in delays_samples:
        x = np.fft.ifft(spec * np.exp(-2j * np.pi * f * d))[2048 : 2048 + n_total]
        g = np.std(x) * 10 ** (-snr_db / 20) / np.sqrt(2)
        x = x + g * (rng.standard_normal(n_total) + 1j * rng.standard_normal(n_total))
        out.append(x.astype(np.complex64))
    return out


class qa_tdoa_locate(gr_unittest.TestCase):
    def test_pairwise_delays_reduce_to_arrival_times_against_node_0(self):
        t = np.array([0.0, 3e-6, -1.5e-6, 7e-6])
        pairs = list(itertools.combinations(range(4), 2))
        a = np.zeros((6, 4))
        for k, (i, j) in enumerate(pairs):
            a[k, j], a[k, i] = 1.0, -1.0
        d = np.array([t[j] - t[i] for i, j in pairs])
        est, cov = pairs_to_reference(a[:, 1:], d, np.full(6, 1e-9))
        np.testing.assert_allclose(est, t[1:], atol=1e-15)
        # three independent ways to each time: the variance is below one pair's
        self.assertTrue(np.all(np.diag(cov) < 1e-18))

    def test_bad_parameters(self):
        nodes = [lla(*p) for p in NODES_ENU]
        with self.assertRaisesRegex(ValueError, "nodes_lla"):
            drift.tdoa_locate(nodes[:2], [[0, 1]])
        with self.assertRaisesRegex(ValueError, "do not connect"):
            drift.tdoa_locate(nodes, [[0, 1], [1, 0], [2, 3]])
        with self.assertRaisesRegex(ValueError, "two different nodes"):
            drift.tdoa_locate(nodes, [[0, 1], [1, 1], [2, 3]])
        with self.assertRaisesRegex(ValueError, "at least 3"):
            drift.tdoa_locate(nodes, [[0, 1], [0, 2]])

    def test_six_pairs_in_a_flowgraph_fix_the_emitter(self):
        """Four node streams with their true propagation delays, six drift.tdoa blocks and
        drift.tdoa_locate: one fix per block, at the emitter within its ellipse's scale."""
        rng = np.random.default_rng(3)
        nodes = [lla(*p) for p in NODES_ENU]
        emitter = lla(*EMITTER_ENU)
        arrivals = np.array([arrival_s(p, emitter) for p in nodes])
        n, n_blocks = 8192, 3
        streams = node_streams(rng, (arrivals - arrivals.min()) * FS, n * n_blocks, 20)
        pairs = list(itertools.combinations(range(4), 2))
        tb = gr.top_block(catch_exceptions=False)
        srcs = [blocks.vector_source_c(x, False) for x in streams]
        loc = drift.tdoa_locate(nodes, [list(p) for p in pairs])
        dbg = blocks.message_debug()
        for k, (i, j) in enumerate(pairs):
            t = drift.tdoa(FS, n, drift.GCC_PLAIN, 60e-6)
            tb.connect(srcs[i], (t, 0))
            tb.connect(srcs[j], (t, 1))
            tb.msg_connect(t, "delays", loc, f"pair{k}")
        tb.msg_connect(loc, "fixes", dbg, "store")
        tb.run()
        self.assertEqual(loc.failures(), 0)
        self.assertEqual(dbg.num_messages(), n_blocks)
        truth = np.array(pymap3d.geodetic2enu(*emitter, loc.origin.lat_deg, loc.origin.lon_deg, 0))
        for b in range(n_blocks):
            meta = pmt.to_python(pmt.car(dbg.get_message(b)))
            self.assertEqual(meta["offset"], b * n)
            err = np.array([meta["east_m"], meta["north_m"]]) - truth[:2]
            cov = np.reshape(meta["covariance_m2"], (2, 2))
            # a few metres of Earth curvature are outside the 2-D model: allowed on top
            self.assertLess(np.linalg.norm(err), 4 * np.sqrt(np.trace(cov)) + 5.0)
            self.assertLess(np.sqrt(np.trace(cov)), 30.0)
            e_lat, e_lon, _ = emitter
            self.assertAlmostEqual(meta["lat_deg"], e_lat, delta=1e-3)
            self.assertAlmostEqual(meta["lon_deg"], e_lon, delta=1e-3)
            # the reduced arrival times against node 0 are the geometry's
            np.testing.assert_allclose(
                meta["tdoa_s"], arrivals[1:] - arrivals[0], atol=5 * max(meta["tdoa_std_s"])
            )


if __name__ == "__main__":
    gr_unittest.run(qa_tdoa_locate)
