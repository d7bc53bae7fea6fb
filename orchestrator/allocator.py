"""Which nodes run a job: one strategy per job type, pure functions of the job and the nodes.

A strategy sees the nodes as :class:`NodeView` snapshots (what the scheduler read from the
database, with each node's current load) and either returns an :class:`Allocation` or raises
:class:`Unplaceable` with a reason a person can act on ("needs 3 nodes covering 100-200 MHz; 1
qualifies (of 5 known: 2 offline, 2 do not cover 100-200 MHz)").

Internally the nodes are a :class:`NodeTable` (one NumPy column per property, one row per device
for the radio checks): each filter is one vectorized comparison and each greedy step one
vectorized distance, so a job is placed among thousands of nodes in well under a millisecond.
The scheduler builds the table once per tick and updates the loads as it places jobs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from drift.orchestrator.jobs import (
    DirectionFindingJob,
    JobBase,
    PropagationTestJob,
    SpectrumScanJob,
)

EARTH_RADIUS_M = 6_371_008.8

RECEIVER = "receiver"
TRANSMITTER = "transmitter"
#: a hybrid direction-finding job's array nodes (their bearings; the receivers time the signal)
ARRAY = "array"


class Unplaceable(Exception):
    """The job cannot be placed now; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DeviceView:
    freq_min_hz: float
    freq_max_hz: float
    max_bandwidth_hz: float
    tx: bool = False
    #: coherent receive channels
    channels: int = 1
    #: the channels feed an antenna array of known layout (it can measure bearings)
    array: bool = False

    def covers(self, low_hz: float, high_hz: float) -> bool:
        return self.freq_min_hz <= low_hz and high_hz <= self.freq_max_hz


@dataclass(frozen=True)
class TxBand:
    """A band the node's licence allows transmitting in, up to a power."""

    low_hz: float
    high_hz: float
    max_power_dbm: float


@dataclass(frozen=True)
class NodeView:
    id: str
    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0
    online: bool = True
    load: int = 0
    max_jobs: int = 1
    sync_uncertainty_s: float = 1e-2
    devices: tuple[DeviceView, ...] = ()
    tx_opt_in: bool = False
    tx_bands: tuple[TxBand, ...] = ()
    #: a device of the node has a valid calibration record: preferred over an otherwise
    #: equal node without one (a tie-break, never a filter)
    calibrated: bool = False

    def tx_device_covers(self, center_hz: float, bandwidth_hz: float) -> bool:
        """A device of the node transmits across the band."""
        low, high = center_hz - bandwidth_hz / 2, center_hz + bandwidth_hz / 2
        return any(
            d.tx and d.covers(low, high) and d.max_bandwidth_hz >= bandwidth_hz
            for d in self.devices
        )

    def licensed_bands(self, center_hz: float, bandwidth_hz: float) -> list[TxBand]:
        """The node's licensed bands that hold the whole band."""
        low, high = center_hz - bandwidth_hz / 2, center_hz + bandwidth_hz / 2
        return [b for b in self.tx_bands if b.low_hz <= low and high <= b.high_hz]

    def licensed_power(self, center_hz: float, bandwidth_hz: float, power_dbm: float) -> bool:
        """A licensed band that holds the band allows the power."""
        return any(
            power_dbm <= b.max_power_dbm for b in self.licensed_bands(center_hz, bandwidth_hz)
        )

    def may_transmit(self, center_hz: float, bandwidth_hz: float, power_dbm: float) -> bool:
        """Opted in, a TX device covers the band, and the licence allows the band and power."""
        return (
            self.tx_opt_in
            and self.tx_device_covers(center_hz, bandwidth_hz)
            and self.licensed_power(center_hz, bandwidth_hz, power_dbm)
        )


@dataclass(frozen=True)
class Allocation:
    """Nodes chosen for a job, each with its role, and a note on the choice."""

    nodes: tuple[tuple[str, str], ...]  # (node id, role)
    note: str = ""

    @property
    def node_ids(self) -> list[str]:
        return [node_id for node_id, _ in self.nodes]


# --- geometry -------------------------------------------------------------------------------


def distance_m(a: NodeView | tuple[float, float], b: NodeView | tuple[float, float]) -> float:
    """Great-circle distance (haversine on a sphere), metres."""
    lat1, lon1 = _latlon(a)
    lat2, lon2 = _latlon(b)
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bearing_deg(origin: tuple[float, float], target: NodeView) -> float:
    """Initial bearing from origin to target, degrees clockwise from north, [0, 360)."""
    lat1, lon1 = map(math.radians, origin)
    lat2, lon2 = math.radians(target.lat_deg), math.radians(target.lon_deg)
    dl = lon2 - lon1
    y = math.sin(dl) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def largest_gap_deg(bearings: Iterable[float]) -> float:
    """The widest empty sector between bearings; under 180 means the nodes surround the point."""
    ordered = sorted(bearings)
    if len(ordered) < 2:
        return 360.0
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    gaps.append(360.0 - ordered[-1] + ordered[0])
    return max(gaps)


def _latlon(p: NodeView | tuple[float, float]) -> tuple[float, float]:
    return (p.lat_deg, p.lon_deg) if isinstance(p, NodeView) else p


def haversine_m(lat1_deg, lon1_deg, lat2_deg, lon2_deg) -> np.ndarray:
    """Great-circle distances (as :func:`distance_m`), vectorized."""
    p1, p2 = np.radians(lat1_deg), np.radians(lat2_deg)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2_deg) - lon1_deg)
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(h)))


# --- the nodes as columns -------------------------------------------------------------------


class NodeTable:
    """Nodes as NumPy columns (and their devices as rows pointing at a node), for filters and
    geometry over many nodes at once. Row order is the order the nodes were given in."""

    def __init__(self, nodes: Iterable[NodeView]) -> None:
        self.views = list(nodes)
        v = self.views
        n = len(v)
        self.index = {node.id: i for i, node in enumerate(v)}
        self.lat = np.fromiter((x.lat_deg for x in v), float, n)
        self.lon = np.fromiter((x.lon_deg for x in v), float, n)
        self.online = np.fromiter((x.online for x in v), bool, n)
        self.load = np.fromiter((x.load for x in v), np.int64, n)
        self.max_jobs = np.fromiter((x.max_jobs for x in v), np.int64, n)
        self.sync_uncertainty_s = np.fromiter((x.sync_uncertainty_s for x in v), float, n)
        self.uncalibrated = np.fromiter((not x.calibrated for x in v), bool, n)
        self.id_rank = np.empty(n, np.int64)
        self.id_rank[sorted(range(n), key=lambda i: v[i].id)] = np.arange(n)
        devices = [(i, d) for i, x in enumerate(v) for d in x.devices]
        m = len(devices)
        self.dev_node = np.fromiter((i for i, _ in devices), np.int64, m)
        self.dev_min = np.fromiter((d.freq_min_hz for _, d in devices), float, m)
        self.dev_max = np.fromiter((d.freq_max_hz for _, d in devices), float, m)
        self.dev_bw = np.fromiter((d.max_bandwidth_hz for _, d in devices), float, m)
        self.dev_array = np.fromiter((d.array and d.channels >= 2 for _, d in devices), bool, m)

    def __len__(self) -> int:
        return len(self.views)

    def add_load(self, node_id: str, jobs: int = 1) -> None:
        i = self.index[node_id]
        self.load[i] += jobs
        self.views[i] = dataclasses.replace(self.views[i], load=int(self.load[i]))

    def _any_device(self, device_ok: np.ndarray) -> np.ndarray:
        out = np.zeros(len(self), bool)
        out[self.dev_node[device_ok]] = True
        return out

    def covers(self, low_hz: float, high_hz: float) -> np.ndarray:
        return self._any_device((self.dev_min <= low_hz) & (high_hz <= self.dev_max))

    def receives(self, center_hz: float, bandwidth_hz: float) -> np.ndarray:
        low, high = center_hz - bandwidth_hz / 2, center_hz + bandwidth_hz / 2
        return self._any_device(
            (self.dev_min <= low) & (high <= self.dev_max) & (self.dev_bw >= bandwidth_hz)
        )

    def has_array(self) -> np.ndarray:
        """Nodes with a coherent array device (two or more channels of known layout)."""
        return self._any_device(self.dev_array)

    def receives_with_array(self, center_hz: float, bandwidth_hz: float) -> np.ndarray:
        """Nodes whose array device receives the band."""
        low, high = center_hz - bandwidth_hz / 2, center_hz + bandwidth_hz / 2
        return self._any_device(
            self.dev_array
            & (self.dev_min <= low)
            & (high <= self.dev_max)
            & (self.dev_bw >= bandwidth_hz)
        )

    def distances_m(self, lat_deg: float, lon_deg: float, rows=slice(None)) -> np.ndarray:
        return haversine_m(lat_deg, lon_deg, self.lat[rows], self.lon[rows])

    def bearings_deg(self, origin: tuple[float, float]) -> np.ndarray:
        lat1, lon1 = np.radians(origin[0]), np.radians(origin[1])
        lat2, lon2 = np.radians(self.lat), np.radians(self.lon)
        dl = lon2 - lon1
        y = np.sin(dl) * np.cos(lat2)
        x = np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * np.cos(dl)
        return np.degrees(np.arctan2(y, x)) % 360.0

    def each(self, ok: Callable[[NodeView], bool]) -> np.ndarray:
        """A check that has no column form, node by node."""
        return np.fromiter((ok(x) for x in self.views), bool, len(self))

    def by_load_then_id(self, rows: np.ndarray) -> np.ndarray:
        """Least loaded first; of equally loaded ones, calibrated first; then by id."""
        return rows[np.lexsort((self.id_rank[rows], self.uncalibrated[rows], self.load[rows]))]


def as_table(nodes: Sequence[NodeView] | NodeTable) -> NodeTable:
    return nodes if isinstance(nodes, NodeTable) else NodeTable(nodes)


#: separation between one row and many rows of a table
Separation = Callable[[int, np.ndarray], np.ndarray]


def greedy_max_min(
    table: NodeTable,
    candidates: np.ndarray,
    count: int,
    separation: Separation,
    first: int | None = None,
    keep: Sequence[int] = (),
) -> list[int]:
    """Farthest-point selection over table rows: add, one at a time, the candidate farthest
    from those already chosen (each candidate's distance to the chosen set kept up to date).

    Ties go to the less loaded node, then to a calibrated one, then to the smaller id, so the
    choice is deterministic.
    ``keep`` are rows already in the job (they count for the distance but are not returned).
    """
    pool = table.by_load_then_id(np.asarray(candidates, np.int64))
    nearest = np.full(len(pool), np.inf)
    alive = np.ones(len(pool), bool)
    picked: list[int] = []
    chosen = False

    def choose(row: int) -> None:
        nonlocal nearest, chosen
        nearest = np.minimum(nearest, separation(row, pool))
        chosen = True

    for row in keep:
        choose(row)
    if first is not None and count > 0:
        picked.append(first)
        alive &= pool != first
        choose(first)
    while len(picked) < count and alive.any():
        j = int(np.argmax(np.where(alive, nearest, -np.inf))) if chosen else int(np.argmax(alive))
        picked.append(int(pool[j]))
        alive[j] = False
        choose(int(pool[j]))
    return picked


# --- filtering with reasons -----------------------------------------------------------------

#: a check: a label for the nodes that fail it, and the rows that pass
Check = tuple[str, Callable[[NodeTable], np.ndarray]]
#: a node that stays in a job, with its role
Member = tuple[NodeView, str]


def qualify(
    table: NodeTable, checks: Sequence[Check], rows: np.ndarray | None = None
) -> tuple[np.ndarray, str]:
    """Rows (of ``rows``, default all) that pass every check, and a summary of why the others
    did not (counted under the first check each one fails)."""
    remaining = np.zeros(len(table), bool)
    if rows is None:
        remaining[:] = True
    else:
        remaining[rows] = True
    total = int(remaining.sum())
    rejected: dict[str, int] = {}
    for label, ok in checks:
        failed = remaining & ~ok(table)
        if failed.any():
            rejected[label] = rejected.get(label, 0) + int(failed.sum())
            remaining &= ~failed
    parts = [f"{n} {label}" for label, n in rejected.items()]
    summary = f"of {total} known" + (": " + ", ".join(parts) if parts else "")
    return np.flatnonzero(remaining), summary


def _available() -> list[Check]:
    return [
        ("offline", lambda t: t.online),
        ("at capacity", lambda t: t.load < t.max_jobs),
    ]


def _mhz(hz: float) -> str:
    return f"{hz / 1e6:g} MHz"


def _need(count: int, what: str, found: int, summary: str) -> Unplaceable:
    noun = "node" if count == 1 else "nodes"
    return Unplaceable(f"needs {count} {noun} {what}; {found} qualify ({summary})")


def _outside(table: NodeTable, members: Sequence[NodeView]) -> np.ndarray:
    rows = np.ones(len(table), bool)
    for m in members:
        if m.id in table.index:
            rows[table.index[m.id]] = False
    return np.flatnonzero(rows)


def _rows_of(table: NodeTable, members: Sequence[NodeView]) -> NodeTable | None:
    """A table holding the members too (they may be missing from the candidates)."""
    missing = [m for m in members if m.id not in table.index]
    return NodeTable([*table.views, *missing]) if missing else None


# --- strategies -----------------------------------------------------------------------------

Spec = TypeVar("Spec", bound=JobBase, contravariant=True)
Nodes = Sequence[NodeView] | NodeTable


class Strategy(Protocol, Generic[Spec]):
    def allocate(self, job: Spec, nodes: Nodes) -> Allocation: ...

    def replace(
        self, job: Spec, role: str, keep: Sequence[Member], nodes: Nodes
    ) -> NodeView | None:
        """A node to take over ``role`` from a lost one, or None; ``keep`` stay in the job."""
        ...


def _great_circle(table: NodeTable) -> Separation:
    return lambda r, rows: haversine_m(table.lat[r], table.lon[r], table.lat[rows], table.lon[rows])


def _replacement(
    table: NodeTable,
    checks: Sequence[Check],
    members: Sequence[Member],
    separation: Callable[[NodeTable], Separation],
    spread_from: Sequence[NodeView] | None = None,
) -> NodeView | None:
    """The qualifying node outside the job's ``members`` farthest (by ``separation``) from
    ``spread_from`` (default: all the members)."""
    kept = [n for n, _ in members]
    spread_from = kept if spread_from is None else spread_from
    table = _rows_of(table, kept) or table
    ok, _ = qualify(table, checks, _outside(table, kept))
    rows = [table.index[n.id] for n in spread_from]
    picked = greedy_max_min(table, ok, 1, separation(table), keep=rows)
    return table.views[picked[0]] if picked else None


def _ids(
    table: NodeTable, rows: Iterable[int], role: str = RECEIVER
) -> tuple[tuple[str, str], ...]:
    return tuple((table.views[r].id, role) for r in rows)


@dataclass(frozen=True)
class SpectrumScanStrategy:
    """Nodes that tune over the whole range, spread out: greedy max-min great-circle distance."""

    def _checks(self, job: SpectrumScanJob) -> list[Check]:
        span = f"{_mhz(job.start_freq_hz)}-{_mhz(job.stop_freq_hz)}"
        return [
            *_available(),
            (f"do not cover {span}", lambda t: t.covers(job.start_freq_hz, job.stop_freq_hz)),
        ]

    def allocate(self, job: SpectrumScanJob, nodes: Nodes) -> Allocation:
        table = as_table(nodes)
        span = f"{_mhz(job.start_freq_hz)}-{_mhz(job.stop_freq_hz)}"
        if job.node_ids is not None:
            wanted = sorted({str(i) for i in job.node_ids})
            missing = [i for i in wanted if i not in table.index]
            if missing:
                raise Unplaceable(f"unknown node_ids: {', '.join(missing)}")
            rows = np.array([table.index[i] for i in wanted], np.int64)
            ok, summary = qualify(table, self._checks(job), rows)
            if len(ok) < len(rows):
                raise _need(len(rows), f"covering {span} (the listed node_ids)", len(ok), summary)
            return Allocation(_ids(table, np.sort(rows)), "nodes as requested")
        ok, summary = qualify(table, self._checks(job))
        if len(ok) < job.node_count:
            raise _need(job.node_count, f"covering {span}", len(ok), summary)
        picked = greedy_max_min(table, ok, job.node_count, _great_circle(table))
        note = ""
        if len(picked) > 1:
            sep = _great_circle(table)
            rows = np.array(picked)
            spread = min(float(sep(r, rows[i + 1 :]).min()) for i, r in enumerate(picked[:-1]))
            note = f"nearest pair {spread / 1000:.1f} km apart"
        return Allocation(_ids(table, picked), note)

    def replace(
        self, job: SpectrumScanJob, role: str, keep: Sequence[Member], nodes: Nodes
    ) -> NodeView | None:
        if job.node_ids is not None:
            return None  # the client chose the nodes; another one is not what it asked for
        return _replacement(as_table(nodes), self._checks(job), keep, _great_circle)


@dataclass(frozen=True)
class DirectionFindingStrategy:
    """Nodes near the area of interest, spread in bearing around it; TDOA needs synced clocks."""

    def _checks(self, job: DirectionFindingJob, role: str = RECEIVER) -> list[Check]:
        """What a node must be to take `role` in the job (hybrid: ARRAY for bearings,
        RECEIVER for timing; the other methods have one role)."""
        centre = (job.area.lat_deg, job.area.lon_deg)
        band_center, band_width = job.capture_band_hz
        checks = [
            *_available(),
            (
                f"do not receive {_mhz(band_width)} at {_mhz(band_center)}",
                lambda t: t.receives(band_center, band_width),
            ),
            (
                f"farther than {job.max_range_m / 1000:g} km from the area",
                lambda t: t.distances_m(*centre) <= job.max_range_m,
            ),
        ]
        bearings = job.method == "aoa" or (job.method == "hybrid" and role == ARRAY)
        if bearings:
            checks += [
                ("have no coherent array", lambda t: t.has_array()),
                (
                    f"have no array that receives {_mhz(band_width)} at {_mhz(band_center)}",
                    lambda t: t.receives_with_array(band_center, band_width),
                ),
            ]
        if job.method == "tdoa" or (job.method == "hybrid" and not bearings):
            checks.append(
                (
                    f"not synchronised to {job.max_sync_uncertainty_s:g} s",
                    lambda t: t.sync_uncertainty_s <= job.max_sync_uncertainty_s,
                )
            )
        if job.method == "hybrid" and not bearings:
            # an array's channels each have their own delay (calibrated only relative to
            # one another): its bearing is what it gives
            checks.append(("have an antenna array (they take bearings)", lambda t: ~t.has_array()))
        return checks

    @staticmethod
    def _separation(job: DirectionFindingJob) -> Callable[[NodeTable], Separation]:
        """Angle between two nodes' bearings from the area's centre."""

        def make(table: NodeTable) -> Separation:
            bearings = table.bearings_deg((job.area.lat_deg, job.area.lon_deg))

            def sep(row: int, rows: np.ndarray) -> np.ndarray:
                d = np.abs(bearings[row] - bearings[rows]) % 360.0
                return np.minimum(d, 360.0 - d)

            return sep

        return make

    def allocate(self, job: DirectionFindingJob, nodes: Nodes) -> Allocation:
        table = as_table(nodes)
        centre = (job.area.lat_deg, job.area.lon_deg)
        sep = self._separation(job)(table)
        groups = (
            [
                (ARRAY, job.array_count, "with an array for bearings"),
                (RECEIVER, job.node_count - job.array_count, "synchronised for TDOA"),
            ]
            if job.method == "hybrid"
            else [(RECEIVER, job.node_count, "")]
        )
        picked: list[tuple[int, str]] = []
        for role, count, what in groups:
            ok, summary = qualify(table, self._checks(job, role))
            if len(ok) < count:
                what = f"{what} " if what else ""
                raise _need(
                    count, f"{what}for {job.method.upper()} around the area", len(ok), summary
                )
            first = None
            if not picked:  # the nearest, least loaded, calibrated node leads
                dist = table.distances_m(*centre, rows=ok)
                key = (table.id_rank[ok], table.uncalibrated[ok], table.load[ok], dist)
                first = int(ok[np.lexsort(key)[0]])
            rows = greedy_max_min(table, ok, count, sep, first=first, keep=[r for r, _ in picked])
            picked += [(r, role) for r in rows]
        gap = largest_gap_deg(table.bearings_deg(centre)[[r for r, _ in picked]])
        note = f"largest bearing gap {gap:.0f} deg" + (
            " (nodes do not surround the area)" if gap > 180 else ""
        )
        return Allocation(tuple((table.views[r].id, role) for r, role in picked), note)

    def replace(
        self, job: DirectionFindingJob, role: str, keep: Sequence[Member], nodes: Nodes
    ) -> NodeView | None:
        return _replacement(as_table(nodes), self._checks(job, role), keep, self._separation(job))


@dataclass(frozen=True)
class PropagationTestStrategy:
    """A licensed, opted-in transmitter and receivers at varied distances from it (log spread)."""

    min_distance_m: float = field(default=1.0)

    def _synced(self, job: PropagationTestJob) -> Check:
        return (
            f"not synchronised to {job.max_sync_uncertainty_s:g} s",
            lambda t: t.sync_uncertainty_s <= job.max_sync_uncertainty_s,
        )

    def _tx_checks(self, job: PropagationTestJob) -> list[Check]:
        return [
            *_available(),
            ("have not opted in to transmit", lambda t: t.each(lambda n: n.tx_opt_in)),
            (
                f"have no device that transmits {_mhz(job.bandwidth_hz)} at {_mhz(job.freq_hz)}",
                lambda t: t.each(lambda n: n.tx_device_covers(job.freq_hz, job.bandwidth_hz)),
            ),
            (
                f"are not licensed to transmit {_mhz(job.bandwidth_hz)} at "
                f"{_mhz(job.freq_hz)} (outside their bands)",
                lambda t: t.each(lambda n: bool(n.licensed_bands(job.freq_hz, job.bandwidth_hz))),
            ),
            (
                f"are not licensed to transmit {job.tx_power_dbm:g} dBm at {_mhz(job.freq_hz)} "
                "(over their power)",
                lambda t: t.each(
                    lambda n: n.licensed_power(job.freq_hz, job.bandwidth_hz, job.tx_power_dbm)
                ),
            ),
            self._synced(job),
        ]

    def _rx_checks(self, job: PropagationTestJob) -> list[Check]:
        return [
            *_available(),
            (
                f"do not receive {_mhz(job.bandwidth_hz)} at {_mhz(job.freq_hz)}",
                lambda t: t.receives(job.freq_hz, job.bandwidth_hz),
            ),
            self._synced(job),
        ]

    def _log_distance(self, tx: NodeView) -> Callable[[NodeTable], Separation]:
        """Separation of two receivers: how far apart their distances to ``tx`` are, in
        decades."""

        def make(table: NodeTable) -> Separation:
            d = np.maximum(table.distances_m(tx.lat_deg, tx.lon_deg), self.min_distance_m)
            decades = np.log10(d)
            return lambda row, rows: np.abs(decades[row] - decades[rows])

        return make

    def allocate(self, job: PropagationTestJob, nodes: Nodes) -> Allocation:
        table = as_table(nodes)
        pool = None
        if job.tx_node_id is not None:
            if str(job.tx_node_id) not in table.index:
                raise Unplaceable(f"unknown tx_node_id: {job.tx_node_id}")
            pool = np.array([table.index[str(job.tx_node_id)]], np.int64)
        transmitters, tx_summary = qualify(table, self._tx_checks(job), pool)
        if not len(transmitters):
            raise _need(1, "to transmit", 0, tx_summary)
        receivers, rx_summary = qualify(table, self._rx_checks(job))
        is_rx = np.zeros(len(table), bool)
        is_rx[receivers] = True
        # the transmitter with the most receivers besides itself, then the least loaded, then
        # a calibrated one, then the largest id
        others = len(receivers) - is_rx[transmitters]
        order = np.lexsort(
            (
                table.id_rank[transmitters],
                ~table.uncalibrated[transmitters],
                -table.load[transmitters],
                others,
            )
        )
        tx_row = int(transmitters[order[-1]])
        tx = table.views[tx_row]
        rx_pool = receivers[receivers != tx_row]
        if len(rx_pool) < job.receiver_count:
            raise _need(
                job.receiver_count,
                f"to receive from transmitter {tx.id}",
                len(rx_pool),
                rx_summary,
            )
        dist = table.distances_m(tx.lat_deg, tx.lon_deg)
        nearest = int(
            rx_pool[
                np.lexsort(
                    (
                        table.id_rank[rx_pool],
                        table.uncalibrated[rx_pool],
                        table.load[rx_pool],
                        dist[rx_pool],
                    )
                )[0]
            ]
        )
        picked = greedy_max_min(
            table, rx_pool, job.receiver_count, self._log_distance(tx)(table), first=nearest
        )
        note = "receivers at " + ", ".join(f"{d / 1000:.1f}" for d in sorted(dist[picked])) + " km"
        return Allocation(((tx.id, TRANSMITTER), *_ids(table, picked)), note)

    def replace(
        self, job: PropagationTestJob, role: str, keep: Sequence[Member], nodes: Nodes
    ) -> NodeView | None:
        if role == TRANSMITTER:
            return None  # receivers were chosen by their distance to this transmitter
        tx = next((n for n, r in keep if r == TRANSMITTER), None)
        if tx is None:
            return None
        others = [n for n, r in keep if r != TRANSMITTER]
        return _replacement(
            as_table(nodes), self._rx_checks(job), keep, self._log_distance(tx), others
        )
