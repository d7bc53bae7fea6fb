#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.tdoa_locate: fixes from six drift.tdoa pairs against the geometry's truth."""

import itertools
import time

import numpy as np
import pmt
import pymap3d
from gnuradio import blocks, drift, gr, gr_unittest
from gnuradio.drift.tdoa_locate import consistent_pairs, pairs_to_reference

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


def run_until(tb, dbg, count, timeout_s=60.0):
    """Start tb, wait until dbg holds count messages (bounded), stop. Its sources repeat: a
    flowgraph that ends by itself may end its message-only blocks (drift.tdoa_locate) before
    they handle their last PDUs, and those fixes would be missing."""
    tb.start()
    deadline = time.monotonic() + timeout_s
    while dbg.num_messages() < count and time.monotonic() < deadline:
        time.sleep(0.01)
    tb.stop()
    tb.wait()


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
        srcs = [blocks.vector_source_c(x, True) for x in streams]
        loc = drift.tdoa_locate(nodes, [list(p) for p in pairs])
        dbg = blocks.message_debug()
        for k, (i, j) in enumerate(pairs):
            t = drift.tdoa(FS, n, drift.GCC_PLAIN, 60e-6)
            tb.connect(srcs[i], (t, 0))
            tb.connect(srcs[j], (t, 1))
            tb.msg_connect(t, "delays", loc, f"pair{k}")
        tb.msg_connect(loc, "fixes", dbg, "store")
        run_until(tb, dbg, n_blocks)
        self.assertEqual(loc.failures(), 0)
        self.assertGreaterEqual(dbg.num_messages(), n_blocks)
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

    def test_a_pair_that_disagrees_with_the_others_is_left_out(self):
        """Six pairs of four nodes, one of them 2 us off (a GCC on a wrong peak): that pair,
        and only it, is rejected, and the arrival times are the geometry's; each of the six
        in turn. With outlier_p = 0 the bad pair stays and pulls the times off."""
        rng = np.random.default_rng(21)
        t_true = np.array([0.0, 3.1e-6, -1.7e-6, 6.4e-6])
        pairs = np.array(list(itertools.combinations(range(4), 2)))
        std = np.full(6, 10e-9)
        for bad in range(6):
            d = t_true[pairs[:, 1]] - t_true[pairs[:, 0]] + std * rng.standard_normal(6)
            d[bad] += 2e-6
            keep, nodes, t, cov, chi2, dof = consistent_pairs(pairs, d, std, 4)
            self.assertEqual(list(np.flatnonzero(~keep)), [bad])
            self.assertEqual(list(nodes), [0, 1, 2, 3])
            self.assertEqual(dof, 2)
            np.testing.assert_allclose(t, t_true[1:], atol=5 * np.sqrt(np.diag(cov)).max())
            keep0, _, t0, _, chi0, _ = consistent_pairs(pairs, d, std, 4, outlier_p=0)
            self.assertTrue(keep0.all())
            self.assertGreater(np.abs(t0 - t_true[1:]).max(), 0.4e-6)
            self.assertGreater(chi0, 1e3)

    def test_a_node_that_agrees_with_nobody_is_left_out(self):
        """Node 2's three pairs are each wrong by a different amount (a node without the
        signal): they go, node 2 with them, and the three others give the times."""
        t_true = np.array([0.0, 3.1e-6, -1.7e-6, 6.4e-6])
        pairs = np.array(list(itertools.combinations(range(4), 2)))
        d = t_true[pairs[:, 1]] - t_true[pairs[:, 0]]
        touch2 = (pairs == 2).any(axis=1)
        d[touch2] += np.array([4e-6, -9e-6, 13e-6])
        keep, nodes, t, cov, chi2, dof = consistent_pairs(pairs, d, np.full(6, 10e-9), 4)
        self.assertEqual(list(nodes), [0, 1, 3])
        np.testing.assert_array_equal(keep, ~touch2)
        np.testing.assert_allclose(t, t_true[[1, 3]] - t_true[0], atol=1e-12)
        self.assertEqual(dof, 1)  # the loop 0-1-3 still checks itself

    def test_pairs_without_a_delay_are_left_out_not_the_block(self):
        t_true = np.array([0.0, 3.1e-6, -1.7e-6, 6.4e-6])
        pairs = np.array(list(itertools.combinations(range(4), 2)))
        d = t_true[pairs[:, 1]] - t_true[pairs[:, 0]]
        std = np.full(6, 10e-9)
        d[1], std[4] = np.nan, np.inf
        keep, nodes, t, _, _, dof = consistent_pairs(pairs, d, std, 4)
        self.assertEqual(list(np.flatnonzero(~keep)), [1, 4])
        np.testing.assert_allclose(t, t_true[1:], atol=1e-12)
        self.assertEqual(dof, 1)
        # two nodes left out of every finite pair: no fix
        d[:] = np.nan
        d[0] = 1e-6
        with self.assertRaisesRegex(ValueError, "fewer than three nodes"):
            consistent_pairs(pairs, d, std, 4)

    def test_three_nodes_that_disagree_give_no_fix(self):
        """Three nodes, three pairs, one of them 2 us off: the loop does not close, and any
        of its pairs could be the wrong one."""
        t_true = np.array([0.0, 3.1e-6, -1.7e-6])
        pairs = np.array([[0, 1], [0, 2], [1, 2]])
        d = t_true[pairs[:, 1]] - t_true[pairs[:, 0]]
        d[2] += 2e-6
        with self.assertRaisesRegex(ValueError, "too few are left to tell which"):
            consistent_pairs(pairs, d, np.full(3, 10e-9), 3)
        keep, nodes, *_ = consistent_pairs(pairs, d, np.full(3, 10e-9), 3, outlier_p=0)
        self.assertTrue(keep.all())

    def test_a_pair_on_a_wrong_peak_in_a_flowgraph_is_rejected_and_the_fix_stays(self):
        """Six drift.tdoa blocks of which one (nodes 2 and 3) sees node 3's stream 9 samples
        late, as a GCC locked on a wrong peak would: every fix rejects that pair and stays on
        the emitter; with outlier_p = 0 the fixes are pulled off it."""
        rng = np.random.default_rng(4)
        nodes = [lla(*p) for p in NODES_ENU]
        emitter = lla(*EMITTER_ENU)
        arrivals = np.array([arrival_s(p, emitter) for p in nodes])
        n, n_blocks = 8192, 2
        delays = list((arrivals - arrivals.min()) * FS)
        streams = node_streams(rng, delays + [delays[3] + 9.0], n * n_blocks, 20)
        pairs = list(itertools.combinations(range(4), 2))
        results = {}
        for outlier_p in (1e-3, 0.0):
            tb = gr.top_block(catch_exceptions=False)
            srcs = [blocks.vector_source_c(x, True) for x in streams]  # run_until
            loc = drift.tdoa_locate(nodes, [list(p) for p in pairs], 0.95, 4096, outlier_p)
            dbg = blocks.message_debug()
            for k, (i, j) in enumerate(pairs):
                t = drift.tdoa(FS, n, drift.GCC_PLAIN, 60e-6)
                tb.connect(srcs[i], (t, 0))
                tb.connect(srcs[4 if k == 5 else j], (t, 1))  # pair 5 is nodes 2 and 3
                tb.msg_connect(t, "delays", loc, f"pair{k}")
            tb.msg_connect(loc, "fixes", dbg, "store")
            run_until(tb, dbg, n_blocks)
            self.assertEqual(loc.failures(), 0)
            results[outlier_p] = (
                loc,
                [pmt.to_python(pmt.car(dbg.get_message(b))) for b in range(n_blocks)],
            )
        truth = np.array(pymap3d.geodetic2enu(*emitter, *ORIGIN))[:2]
        loc, metas = results[1e-3]
        self.assertEqual(loc.rejected(), loc.fixes())
        for meta in metas:
            self.assertEqual(meta["pairs_rejected"], [5])
            self.assertEqual(meta["nodes"], [0, 1, 2, 3])
            self.assertEqual(meta["pairs_dof"], 2)
            origin = np.array(pymap3d.geodetic2enu(meta["lat_deg"], meta["lon_deg"], 0, *ORIGIN))
            cov = np.reshape(meta["covariance_m2"], (2, 2))
            self.assertLess(np.linalg.norm(origin[:2] - truth), 4 * np.sqrt(np.trace(cov)) + 5.0)
        loc0, metas0 = results[0.0]
        self.assertEqual(loc0.rejected(), 0)
        for meta in metas0:
            self.assertEqual(meta["pairs_rejected"], [])
            self.assertGreater(meta["pairs_chi2"], 100.0)
            origin = np.array(pymap3d.geodetic2enu(meta["lat_deg"], meta["lon_deg"], 0, *ORIGIN))
            self.assertGreater(np.linalg.norm(origin[:2] - truth), 100.0)


if __name__ == "__main__":
    gr_unittest.run(qa_tdoa_locate)
