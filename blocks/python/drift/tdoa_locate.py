#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.tdoa_locate: emitter fixes from the delay PDUs of several drift.tdoa blocks.

The continuous-TDOA end of a flowgraph: N node streams, drift.align, drift.tdoa_multi (or one
drift.tdoa per pair of nodes), and this block. Input port pair<k> takes the PDUs of pair
[pairs[k][0], pairs[k][1]]: drift.tdoa_multi's port pair<k> with the same pairs, or the
drift.tdoa whose input 0 is node pairs[k][0] and input 1 node pairs[k][1] (delay_s: arrival at
the second node minus at the first). Estimates of the same block of samples (the same `offset`:
the streams are aligned, so every pair counts blocks alike) are gathered; once every pair has
reported one, the pairwise delays are reduced to arrival times by weighted least squares
(weights 1 / std_s^2; the reduction's covariance goes on) and gnuradio.drift.df.locate_tdoa
fixes the position in the horizontal plane of the nodes' centroid.

Outliers. More pairs than nodes - 1 over-determine the arrival times: the pairs must agree
(the delays around every loop of nodes sum to zero, within their std). When they do not (the
residuals' chi-square beyond its 1 - outlier_p quantile), the pair with the largest
standardized residual (a GCC that locked on a wrong peak, a node that lost the signal) is
left out and the test repeated. A pair without a finite delay and std is left out first. A
node that no kept pair reaches is left out too, and so is one the test took pairs from that
hangs on a single pair (nothing checks it). A fix needs three nodes; pairs that disagree with
one degree of freedom left give none (every pair of the loop that does not close is equally
suspect). outlier_p = 0 keeps every finite pair.

Each fix is published on "fixes" as a PDU: metadata dict {lat_deg, lon_deg, east_m, north_m
(about the centroid), covariance_m2 (east/north, 4 values row by row), semi_major_m,
semi_minor_m, orientation_deg (the confidence ellipse), confidence, chi2, dof, nodes (the node
indexes the fix used), tdoa_s and tdoa_std_s (arrival at each of nodes[1:] minus at nodes[0]),
pairs_rejected (the port indexes k left out), pairs_chi2 and pairs_dof (the kept pairs'
agreement), offset, n_samples, rx_time (of the block, when the PDUs carry it)}, data an empty
f32 vector. A block whose delays give no position (fewer than three nodes left, geometry) is
logged and counted in failures(); rejected() counts the pairs left out. Message-rate work:
Python.

A flowgraph that ends by itself (finite sources) may end this message-only block before it
handles the last PDUs (GNU Radio ends such a block once its senders are done), so the last
fixes can be missing; stop it from outside once the fixes are in (tb.stop()), as a live
flowgraph is stopped.
"""

from __future__ import annotations

import functools

import numpy as np
import pmt
from gnuradio import gr
from scipy.stats import chi2 as _chi2

from .df import GeoOrigin, locate_tdoa


def _pairs(pairs, m):
    p = np.asarray(pairs, dtype=int)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < m - 1:
        raise ValueError(f"pairs must be at least {m - 1} [ref, sig] node pairs, got {pairs!r}")
    if np.any(p < 0) or np.any(p >= m) or np.any(p[:, 0] == p[:, 1]):
        raise ValueError(f"pairs must name two different nodes of 0..{m - 1}, got {pairs!r}")
    # arrival time of node j minus node i = t_j - t_i, with t_0 = 0: rows of the reduction
    a = np.zeros((len(p), m))
    a[np.arange(len(p)), p[:, 1]] += 1.0
    a[np.arange(len(p)), p[:, 0]] -= 1.0
    a = a[:, 1:]
    if np.linalg.matrix_rank(a) < m - 1:
        raise ValueError(f"pairs {pairs!r} do not connect all {m} nodes")
    return p, a


def pairs_to_reference(a, delay_s, std_s):
    """Arrival times against node 0 (t_1..t_{m-1}) and their covariance from pairwise delays
    (rows of a: +1 at the later node, -1 at the earlier one) by weighted least squares."""
    w = 1.0 / np.square(std_s)
    info = a.T @ (w[:, None] * a)
    cov = np.linalg.inv(info)
    return cov @ (a.T @ (w * delay_s)), cov


@functools.lru_cache(maxsize=64)
def _quantile(p, dof):
    """The chi-square quantile a consistency test with dof degrees of freedom exceeds with
    probability p (a scipy call is slow next to the test it serves, and a block repeats it)."""
    return float(_chi2.isf(p, dof))


def _component(pairs, keep, m):
    """The largest set of nodes the kept pairs connect (ties: the one with the lowest node)."""
    parent = list(range(m))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k in np.flatnonzero(keep):
        i, j = root(pairs[k, 0]), root(pairs[k, 1])
        if i != j:
            parent[max(i, j)] = min(i, j)
    roots = np.array([root(i) for i in range(m)])
    counts = np.bincount(roots, minlength=m)
    return np.flatnonzero(roots == int(np.argmax(counts)))


def consistent_pairs(pairs, delay_s, std_s, m, outlier_p=1e-3):
    """Which pairwise delays to keep, and the arrival times they give.

    pairs (P, 2) node indexes [ref, sig] of m nodes; delay_s, std_s (P,): arrival at sig minus
    at ref and its std. Pairs without a finite delay and positive std go first. Then, while
    the kept pairs over-determine the arrival times and their residuals' chi-square (weights
    1 / std^2) exceeds its 1 - outlier_p quantile, the pair with the largest standardized
    residual goes (outlier_p = 0: none). Nodes no kept pair connects to the largest group go
    with their pairs, and so does a node the test took pairs from that hangs on one pair
    (nothing checks that pair) while three other nodes remain.

    Returns (keep (P,) bool, nodes (ascending), t (arrival at nodes[1:] minus at nodes[0]),
    cov, chi2, dof). Raises ValueError when fewer than three nodes remain, or when the pairs
    disagree with one degree of freedom left: every pair of the loop that does not close is
    then equally suspect, and no fix is better than a wrong one."""
    pairs = np.asarray(pairs, dtype=int)
    d = np.asarray(delay_s, dtype=float)
    sd = np.asarray(std_s, dtype=float)
    keep = np.isfinite(d) & np.isfinite(sd) & (sd > 0)
    tested_out = np.zeros(len(pairs), dtype=bool)
    while True:
        nodes = _component(pairs, keep, m)
        if len(nodes) < 3:
            raise ValueError(
                f"the pairs left ({int(keep.sum())} of {len(pairs)}) reach fewer than three nodes"
            )
        index = np.full(m, -1)
        index[nodes] = np.arange(len(nodes))
        keep &= (index[pairs[:, 0]] >= 0) & (index[pairs[:, 1]] >= 0)
        rows = np.flatnonzero(keep)
        a = np.zeros((len(rows), len(nodes)))
        a[np.arange(len(rows)), index[pairs[rows, 1]]] += 1.0
        a[np.arange(len(rows)), index[pairs[rows, 0]]] -= 1.0
        a = a[:, 1:]
        t, cov = pairs_to_reference(a, d[rows], sd[rows])
        dof = len(rows) - (len(nodes) - 1)
        r = d[rows] - a @ t
        chi2 = float(np.sum(np.square(r / sd[rows])))
        if dof == 0 or outlier_p <= 0 or chi2 <= _quantile(outlier_p, dof):
            if tested_out.any() and len(nodes) > 3:
                ends = pairs[rows].ravel()
                links = np.bincount(ends, minlength=m)
                lost = np.bincount(pairs[tested_out].ravel(), minlength=m)
                hanging = np.flatnonzero((links == 1) & (lost > 0))
                if hanging.size:
                    k = rows[np.flatnonzero((pairs[rows] == hanging[0]).any(axis=1))[0]]
                    keep[k] = False
                    tested_out[k] = True
                    continue
            return keep, nodes, t, cov, chi2, dof
        if dof == 1:
            raise ValueError(
                f"the pairs disagree (chi2 {chi2:.3g} with one degree of freedom) and too few "
                "are left to tell which is wrong"
            )
        # residual variance: std^2 less what the fit explains (the hat matrix's diagonal)
        var = np.square(sd[rows]) - np.einsum("ij,jk,ik->i", a, cov, a)
        z = np.abs(r) / np.sqrt(np.maximum(var, 1e-12 * np.square(sd[rows])))
        k = rows[int(np.argmax(z))]
        keep[k] = False
        tested_out[k] = True


_KEYS = {name: pmt.intern(name) for name in ("offset", "delay_s", "std_s", "n_samples")}
_RX_TIME = pmt.intern("rx_time")


def _delay_fields(meta):
    """The fields of a delay PDU's metadata that a fix uses (a whole pmt.to_python of the
    dict costs several times more, once per pair and block)."""
    out = {}
    for name, key in _KEYS.items():
        value = pmt.dict_ref(meta, key, pmt.PMT_NIL)
        if not pmt.is_null(value):
            out[name] = pmt.to_double(value) if pmt.is_real(value) else pmt.to_python(value)
    value = pmt.dict_ref(meta, _RX_TIME, pmt.PMT_NIL)
    if not pmt.is_null(value):
        out["rx_time"] = pmt.to_python(value)
    return out


class tdoa_locate(gr.basic_block):
    """See the module documentation. nodes_lla: [[lat_deg, lon_deg, alt_m], ...] of the
    nodes (3 or more); pairs: [[ref, sig], ...] node indexes, one per input port pair<k>;
    confidence of the ellipse; max_pending: blocks waiting for their last pairs at most (the
    oldest is dropped beyond); outlier_p: the pairs' agreement test's false-alarm
    probability (0: no pair is rejected for disagreeing)."""

    def __init__(self, nodes_lla, pairs, confidence=0.95, max_pending=4096, outlier_p=1e-3):
        lla = np.asarray(nodes_lla, dtype=float)
        if lla.ndim != 2 or lla.shape[1] != 3 or lla.shape[0] < 3:
            raise ValueError(f"nodes_lla must be 3 or more [lat, lon, alt], got {nodes_lla!r}")
        if not np.all(np.isfinite(lla)):
            raise ValueError("nodes_lla holds non-finite coordinates")
        if not 0 < float(confidence) < 1:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        if int(max_pending) < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        if not 0 <= float(outlier_p) < 1:
            raise ValueError(f"outlier_p must be in [0, 1), got {outlier_p}")
        m = lla.shape[0]
        self.pairs, _ = _pairs(pairs, m)
        gr.basic_block.__init__(self, "drift_tdoa_locate", None, None)
        self.origin = GeoOrigin.centroid_of(lla[:, 0], lla[:, 1], lla[:, 2])
        self.sensors_enu_m = np.asarray(self.origin.to_enu(lla[:, 0], lla[:, 1], lla[:, 2]))[:, :2]
        self.confidence = float(confidence)
        self.max_pending = int(max_pending)
        self.outlier_p = float(outlier_p)
        self._m = m
        self._pending = {}  # offset -> {k: meta}
        self._fixes = 0
        self._failures = 0
        self._rejected = 0
        self.message_port_register_out(pmt.intern("fixes"))
        for k in range(len(self.pairs)):
            port = pmt.intern(f"pair{k}")
            self.message_port_register_in(port)
            # GNU Radio's Python gateway finds a handler by its name on the block
            handler = functools.partial(self._on_delay, k)
            handler.__name__ = f"_on_pair{k}"
            setattr(self, handler.__name__, handler)
            self.set_msg_handler(port, handler)

    def fixes(self):
        """Fixes published so far."""
        return self._fixes

    def failures(self):
        """Blocks whose delays gave no position."""
        return self._failures

    def rejected(self):
        """Pair estimates left out so far (no finite delay, or disagreeing with the others)."""
        return self._rejected

    def _on_delay(self, k, msg):
        meta = _delay_fields(pmt.car(msg))
        offset = int(meta["offset"])
        got = self._pending.setdefault(offset, {})
        got[k] = meta
        if len(got) == len(self.pairs):
            del self._pending[offset]
            self._solve(offset, got)
        elif len(self._pending) > self.max_pending:
            oldest = min(self._pending)
            self.logger.warn(f"block at offset {oldest} dropped: not every pair reported it")
            del self._pending[oldest]

    def _solve(self, offset, got):
        metas = [got[k] for k in range(len(self.pairs))]
        delay = np.array([float(x["delay_s"]) for x in metas])
        std = np.array([float(x["std_s"]) for x in metas])
        try:
            keep, nodes, t, cov, pairs_chi2, pairs_dof = consistent_pairs(
                self.pairs, delay, std, self._m, self.outlier_p
            )
        except ValueError as exc:
            self._failures += 1
            self._rejected += len(self.pairs)
            self.logger.warn(f"block at offset {offset}: no fix ({exc})")
            return
        rejected = [int(k) for k in np.flatnonzero(~keep)]
        self._rejected += len(rejected)
        try:
            fix = locate_tdoa(
                self.sensors_enu_m[nodes], t, tdoa_cov_s2=cov, confidence=self.confidence
            )
        except ValueError as exc:
            self._failures += 1
            self.logger.warn(f"block at offset {offset}: no fix ({exc})")
            return
        p = fix.position_enu_m
        lat, lon, _ = self.origin.to_geodetic(np.r_[p, 0.0])
        e = fix.ellipse
        out = {
            "lat_deg": float(lat),
            "lon_deg": float(lon),
            "east_m": float(p[0]),
            "north_m": float(p[1]),
            "covariance_m2": [float(v) for v in np.ravel(fix.covariance_m2[:2, :2])],
            "semi_major_m": float(e.semi_major_m),
            "semi_minor_m": float(e.semi_minor_m),
            "orientation_deg": float(e.orientation_deg),
            "confidence": self.confidence,
            "chi2": float(fix.chi2),
            "dof": int(fix.dof),
            "nodes": [int(i) for i in nodes],
            "tdoa_s": [float(v) for v in t],
            "tdoa_std_s": [float(v) for v in np.sqrt(np.diag(cov))],
            "pairs_rejected": rejected,
            "pairs_chi2": pairs_chi2,
            "pairs_dof": int(pairs_dof),
            "offset": offset,
            "n_samples": int(metas[0]["n_samples"]),
        }
        meta = pmt.to_pmt(out)
        rx_time = metas[0].get("rx_time")
        if rx_time is not None:
            meta = pmt.dict_add(
                meta,
                pmt.intern("rx_time"),
                pmt.make_tuple(pmt.from_uint64(int(rx_time[0])), pmt.from_double(rx_time[1])),
            )
        self._fixes += 1
        self.message_port_pub(pmt.intern("fixes"), pmt.cons(meta, pmt.init_f32vector(0, [])))
