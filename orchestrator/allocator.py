"""Which nodes run a job: one strategy per job type, pure functions of the job and the nodes.

A strategy sees the nodes as :class:`NodeView` snapshots (what the scheduler read from the
database, with each node's current load) and either returns an :class:`Allocation` or raises
:class:`Unplaceable` with a reason a person can act on ("needs 3 nodes covering 100-200 MHz; 1
qualifies (of 5 known: 2 offline, 2 do not cover 100-200 MHz)").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from drift.orchestrator.jobs import (
    DirectionFindingJob,
    JobBase,
    PropagationTestJob,
    SpectrumScanJob,
)

EARTH_RADIUS_M = 6_371_008.8

RECEIVER = "receiver"
TRANSMITTER = "transmitter"


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

    @property
    def has_capacity(self) -> bool:
        return self.load < self.max_jobs

    def covers(self, low_hz: float, high_hz: float) -> bool:
        """Some device tunes over the whole range (a sweep: hop by hop)."""
        return any(d.covers(low_hz, high_hz) for d in self.devices)

    def receives(self, center_hz: float, bandwidth_hz: float) -> bool:
        """Some device takes the whole band at once."""
        low, high = center_hz - bandwidth_hz / 2, center_hz + bandwidth_hz / 2
        return any(d.covers(low, high) and d.max_bandwidth_hz >= bandwidth_hz for d in self.devices)

    def may_transmit(self, center_hz: float, bandwidth_hz: float, power_dbm: float) -> bool:
        """Opted in, a TX device covers the band, and the licence allows the band and power."""
        if not self.tx_opt_in:
            return False
        low, high = center_hz - bandwidth_hz / 2, center_hz + bandwidth_hz / 2
        device_ok = any(
            d.tx and d.covers(low, high) and d.max_bandwidth_hz >= bandwidth_hz
            for d in self.devices
        )
        licensed = any(
            b.low_hz <= low and high <= b.high_hz and power_dbm <= b.max_power_dbm
            for b in self.tx_bands
        )
        return device_ok and licensed


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


def angle_between_deg(a: float, b: float) -> float:
    d = abs(a - b) % 360.0
    return min(d, 360.0 - d)


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


def greedy_max_min(
    candidates: Sequence[NodeView],
    count: int,
    separation: Callable[[NodeView, NodeView], float],
    first: NodeView | None = None,
    keep: Sequence[NodeView] = (),
) -> list[NodeView]:
    """Farthest-point selection: add, one at a time, the node farthest from those already chosen.

    Ties go to the less loaded node, then to the smaller id, so the choice is deterministic.
    ``keep`` are nodes already in the job (they count for the distance but are not returned).
    """
    chosen = list(keep)
    picked: list[NodeView] = []
    pool = sorted(candidates, key=lambda n: (n.load, n.id))
    if first is not None and count > 0:
        picked.append(first)
        chosen.append(first)
        pool = [n for n in pool if n.id != first.id]
    while len(picked) < count and pool:
        if chosen:
            best = max(pool, key=lambda n: min(separation(n, c) for c in chosen))
        else:
            best = pool[0]
        picked.append(best)
        chosen.append(best)
        pool = [n for n in pool if n.id != best.id]
    return picked


# --- filtering with reasons -----------------------------------------------------------------

Check = tuple[str, Callable[[NodeView], bool]]
#: a node that stays in a job, with its role
Member = tuple[NodeView, str]


def qualify(nodes: Sequence[NodeView], checks: Sequence[Check]) -> tuple[list[NodeView], str]:
    """Nodes that pass every check, and a summary of why the others did not (first failed check)."""
    passed: list[NodeView] = []
    rejected: dict[str, int] = {}
    for node in nodes:
        for label, ok in checks:
            if not ok(node):
                rejected[label] = rejected.get(label, 0) + 1
                break
        else:
            passed.append(node)
    parts = [f"{n} {label}" for label, n in rejected.items()]
    summary = f"of {len(nodes)} known" + (": " + ", ".join(parts) if parts else "")
    return passed, summary


def _available() -> list[Check]:
    return [
        ("offline", lambda n: n.online),
        ("at capacity", lambda n: n.has_capacity),
    ]


def _mhz(hz: float) -> str:
    return f"{hz / 1e6:g} MHz"


def _need(count: int, what: str, found: int, summary: str) -> Unplaceable:
    noun = "node" if count == 1 else "nodes"
    return Unplaceable(f"needs {count} {noun} {what}; {found} qualify ({summary})")


# --- strategies -----------------------------------------------------------------------------

Spec = TypeVar("Spec", bound=JobBase, contravariant=True)


class Strategy(Protocol, Generic[Spec]):
    def allocate(self, job: Spec, nodes: Sequence[NodeView]) -> Allocation: ...

    def replace(
        self, job: Spec, role: str, keep: Sequence[Member], nodes: Sequence[NodeView]
    ) -> NodeView | None:
        """A node to take over ``role`` from a lost one, or None; ``keep`` stay in the job."""
        ...


@dataclass(frozen=True)
class SpectrumScanStrategy:
    """Nodes that tune over the whole range, spread out: greedy max-min great-circle distance."""

    def _checks(self, job: SpectrumScanJob) -> list[Check]:
        span = f"{_mhz(job.start_freq_hz)}-{_mhz(job.stop_freq_hz)}"
        return [
            *_available(),
            (f"do not cover {span}", lambda n: n.covers(job.start_freq_hz, job.stop_freq_hz)),
        ]

    def allocate(self, job: SpectrumScanJob, nodes: Sequence[NodeView]) -> Allocation:
        span = f"{_mhz(job.start_freq_hz)}-{_mhz(job.stop_freq_hz)}"
        if job.node_ids is not None:
            wanted = {str(i) for i in job.node_ids}
            known = [n for n in nodes if n.id in wanted]
            missing = wanted - {n.id for n in known}
            if missing:
                raise Unplaceable(f"unknown node_ids: {', '.join(sorted(missing))}")
            ok, summary = qualify(known, self._checks(job))
            if len(ok) < len(known):
                raise _need(len(known), f"covering {span} (the listed node_ids)", len(ok), summary)
            return Allocation(tuple((n.id, RECEIVER) for n in known), "nodes as requested")
        ok, summary = qualify(nodes, self._checks(job))
        if len(ok) < job.node_count:
            raise _need(job.node_count, f"covering {span}", len(ok), summary)
        picked = greedy_max_min(ok, job.node_count, distance_m)
        note = ""
        if len(picked) > 1:
            spread = min(distance_m(a, b) for i, a in enumerate(picked) for b in picked[i + 1 :])
            note = f"nearest pair {spread / 1000:.1f} km apart"
        return Allocation(tuple((n.id, RECEIVER) for n in picked), note)

    def replace(
        self,
        job: SpectrumScanJob,
        role: str,
        keep: Sequence[Member],
        nodes: Sequence[NodeView],
    ) -> NodeView | None:
        if job.node_ids is not None:
            return None  # the client chose the nodes; another one is not what it asked for
        kept = [n for n, _ in keep]
        ok, _ = qualify(_outside(nodes, kept), self._checks(job))
        picked = greedy_max_min(ok, 1, distance_m, keep=kept)
        return picked[0] if picked else None


@dataclass(frozen=True)
class DirectionFindingStrategy:
    """Nodes near the area of interest, spread in bearing around it; TDOA needs synced clocks."""

    def _checks(self, job: DirectionFindingJob) -> list[Check]:
        centre = (job.area.lat_deg, job.area.lon_deg)
        checks = [
            *_available(),
            (
                f"do not receive {_mhz(job.bandwidth_hz)} at {_mhz(job.center_freq_hz)}",
                lambda n: n.receives(job.center_freq_hz, job.bandwidth_hz),
            ),
            (
                f"farther than {job.max_range_m / 1000:g} km from the area",
                lambda n: distance_m(n, centre) <= job.max_range_m,
            ),
        ]
        if job.method == "tdoa":
            checks.append(
                (
                    f"not synchronised to {job.max_sync_uncertainty_s:g} s",
                    lambda n: n.sync_uncertainty_s <= job.max_sync_uncertainty_s,
                )
            )
        return checks

    def _separation(self, job: DirectionFindingJob) -> Callable[[NodeView, NodeView], float]:
        centre = (job.area.lat_deg, job.area.lon_deg)
        return lambda a, b: angle_between_deg(bearing_deg(centre, a), bearing_deg(centre, b))

    def allocate(self, job: DirectionFindingJob, nodes: Sequence[NodeView]) -> Allocation:
        centre = (job.area.lat_deg, job.area.lon_deg)
        ok, summary = qualify(nodes, self._checks(job))
        if len(ok) < job.node_count:
            raise _need(
                job.node_count, f"for {job.method.upper()} around the area", len(ok), summary
            )
        nearest = min(ok, key=lambda n: (distance_m(n, centre), n.load, n.id))
        picked = greedy_max_min(ok, job.node_count, self._separation(job), first=nearest)
        gap = largest_gap_deg(bearing_deg(centre, n) for n in picked)
        note = f"largest bearing gap {gap:.0f} deg" + (
            " (nodes do not surround the area)" if gap > 180 else ""
        )
        return Allocation(tuple((n.id, RECEIVER) for n in picked), note)

    def replace(
        self,
        job: DirectionFindingJob,
        role: str,
        keep: Sequence[Member],
        nodes: Sequence[NodeView],
    ) -> NodeView | None:
        kept = [n for n, _ in keep]
        ok, _ = qualify(_outside(nodes, kept), self._checks(job))
        picked = greedy_max_min(ok, 1, self._separation(job), keep=kept)
        return picked[0] if picked else None


@dataclass(frozen=True)
class PropagationTestStrategy:
    """A licensed, opted-in transmitter and receivers at varied distances from it (log spread)."""

    min_distance_m: float = field(default=1.0)

    def _synced(self, job: PropagationTestJob) -> Check:
        return (
            f"not synchronised to {job.max_sync_uncertainty_s:g} s",
            lambda n: n.sync_uncertainty_s <= job.max_sync_uncertainty_s,
        )

    def _tx_checks(self, job: PropagationTestJob) -> list[Check]:
        return [
            *_available(),
            (
                f"may not transmit {job.tx_power_dbm:g} dBm at {_mhz(job.freq_hz)}",
                lambda n: n.may_transmit(job.freq_hz, job.bandwidth_hz, job.tx_power_dbm),
            ),
            self._synced(job),
        ]

    def _rx_checks(self, job: PropagationTestJob) -> list[Check]:
        return [
            *_available(),
            (
                f"do not receive {_mhz(job.bandwidth_hz)} at {_mhz(job.freq_hz)}",
                lambda n: n.receives(job.freq_hz, job.bandwidth_hz),
            ),
            self._synced(job),
        ]

    def _log_distance(self, tx: NodeView) -> Callable[[NodeView, NodeView], float]:
        def sep(a: NodeView, b: NodeView) -> float:
            da = max(distance_m(a, tx), self.min_distance_m)
            db = max(distance_m(b, tx), self.min_distance_m)
            return abs(math.log10(da) - math.log10(db))

        return sep

    def allocate(self, job: PropagationTestJob, nodes: Sequence[NodeView]) -> Allocation:
        pool = nodes
        if job.tx_node_id is not None:
            pool = [n for n in nodes if n.id == str(job.tx_node_id)]
            if not pool:
                raise Unplaceable(f"unknown tx_node_id: {job.tx_node_id}")
        transmitters, tx_summary = qualify(pool, self._tx_checks(job))
        if not transmitters:
            raise _need(1, "to transmit", 0, tx_summary)
        receivers, rx_summary = qualify(nodes, self._rx_checks(job))

        def receivers_for(tx: NodeView) -> list[NodeView]:
            return [n for n in receivers if n.id != tx.id]

        tx = max(transmitters, key=lambda t: (len(receivers_for(t)), -t.load, t.id))
        rx_pool = receivers_for(tx)
        if len(rx_pool) < job.receiver_count:
            raise _need(
                job.receiver_count,
                f"to receive from transmitter {tx.id}",
                len(rx_pool),
                rx_summary,
            )
        nearest = min(rx_pool, key=lambda n: (distance_m(n, tx), n.load, n.id))
        picked = greedy_max_min(rx_pool, job.receiver_count, self._log_distance(tx), first=nearest)
        dists = sorted(distance_m(n, tx) / 1000 for n in picked)
        note = "receivers at " + ", ".join(f"{d:.1f}" for d in dists) + " km"
        return Allocation(((tx.id, TRANSMITTER), *((n.id, RECEIVER) for n in picked)), note)

    def replace(
        self,
        job: PropagationTestJob,
        role: str,
        keep: Sequence[Member],
        nodes: Sequence[NodeView],
    ) -> NodeView | None:
        if role == TRANSMITTER:
            return None  # receivers were chosen by their distance to this transmitter
        tx = next((n for n, r in keep if r == TRANSMITTER), None)
        if tx is None:
            return None
        ok, _ = qualify(_outside(nodes, [n for n, _ in keep]), self._rx_checks(job))
        others = [n for n, r in keep if r != TRANSMITTER]
        picked = greedy_max_min(ok, 1, self._log_distance(tx), keep=others)
        return picked[0] if picked else None


def _outside(nodes: Sequence[NodeView], members: Sequence[NodeView]) -> list[NodeView]:
    ids = {n.id for n in members}
    return [n for n in nodes if n.id not in ids]
