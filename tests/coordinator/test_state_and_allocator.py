"""The job state machine and the allocator strategies, without a database."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from drift.orchestrator.allocator import (
    DeviceView,
    NodeView,
    PropagationTestStrategy,
    TxBand,
    Unplaceable,
    bearing_deg,
    distance_m,
    largest_gap_deg,
)
from drift.orchestrator.jobs import DirectionFindingJob, PropagationTestJob, SpectrumScanJob
from drift.orchestrator.lifecycle import (
    IllegalTransition,
    cancel_job,
    record_creation,
    retry_delay_s,
    transition_assignment,
    transition_job,
)
from drift.orchestrator.registry import JOB_TYPES
from drift.orchestrator.states import AssignmentState, JobStatus
from drift.orchestrator.storage import Assignment, Job

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
RTL = DeviceView(24e6, 1.7e9, 2.4e6)
HACKRF = DeviceView(1e6, 6e9, 20e6, tx=True)


def new_job() -> Job:
    job = Job(type="spectrum_scan", parameters={}, priority=0, transitions=[], assignments=[])
    record_creation(job, "test", T0)
    return job


# --- state machine --------------------------------------------------------------------------


def test_legal_path_records_every_step():
    job = new_job()
    path = [JobStatus.SCHEDULED, JobStatus.RUNNING, JobStatus.ANALYSING, JobStatus.COMPLETED]
    for i, target in enumerate(path):
        assert transition_job(job, target, f"step {i}", T0 + dt.timedelta(seconds=i + 1))
    assert job.status == JobStatus.COMPLETED
    steps = [(t.from_status, t.to_status, t.reason) for t in job.transitions]
    assert steps == [
        (None, "pending", "test"),
        ("pending", "scheduled", "step 0"),
        ("scheduled", "running", "step 1"),
        ("running", "analysing", "step 2"),
        ("analysing", "completed", "step 3"),
    ]
    assert [t.seq for t in job.transitions] == [0, 1, 2, 3, 4]
    assert job.scheduled_at == T0 + dt.timedelta(seconds=1)
    assert job.started_at == T0 + dt.timedelta(seconds=2)
    assert job.finished_at == T0 + dt.timedelta(seconds=4)


#: Every legal job transition, written out (not read from the table under test): a job
#: completes only through its analysis, and nothing leaves a final state.
LEGAL_JOB_STEPS = {
    ("pending", "scheduled"),
    ("pending", "cancelled"),
    ("pending", "failed"),
    ("scheduled", "running"),
    ("scheduled", "pending"),
    ("scheduled", "cancelled"),
    ("scheduled", "failed"),
    ("running", "analysing"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("analysing", "completed"),
    ("analysing", "failed"),
    ("analysing", "cancelled"),
}
ALL_STATUSES = ["pending", "scheduled", "running", "analysing", "completed", "failed", "cancelled"]


def test_the_statuses_are_these():
    assert sorted(s.value for s in JobStatus) == sorted(ALL_STATUSES)


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL_JOB_STEPS))
def test_legal_transitions_are_taken(current, target):
    job = new_job()
    job.status = current
    assert transition_job(job, JobStatus(target), "yes", T0)
    assert job.status == target and job.transitions[-1].to_status == target


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (s, t)
        for s in ALL_STATUSES
        for t in ALL_STATUSES
        if s != t and (s, t) not in LEGAL_JOB_STEPS
    ],
)
def test_illegal_transitions_are_refused(current, target):
    job = new_job()
    job.status = current
    before = len(job.transitions)
    with pytest.raises(IllegalTransition) as e:
        transition_job(job, JobStatus(target), "no", T0)
    assert (e.value.current, e.value.target) == (current, target)
    assert job.status == current and len(job.transitions) == before


#: Every legal assignment step, written out: an assignment that ended stays ended (a node's
#: late "running" after "completed" is refused), and a retry takes an active one back to
#: assigned.
LEGAL_ASSIGNMENT_STEPS = {
    ("assigned", "running"),
    ("assigned", "failed"),
    ("assigned", "cancelled"),
    ("assigned", "reassigned"),
    ("assigned", "assigned"),
    ("running", "completed"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("running", "reassigned"),
    ("running", "assigned"),
}
ASSIGNMENT_STATES = ["assigned", "running", "completed", "failed", "cancelled", "reassigned"]


@pytest.mark.parametrize(
    ("current", "target"), [(s, t) for s in ASSIGNMENT_STATES for t in ASSIGNMENT_STATES]
)
def test_assignment_transitions_are_the_legal_ones_only(current, target):
    assignment = Assignment(state=current)
    if (current, target) in LEGAL_ASSIGNMENT_STEPS:
        transition_assignment(assignment, AssignmentState(target), T0)
        assert assignment.state == target
    elif current == target:  # re-applying a state is a no-op
        assert not transition_assignment(assignment, AssignmentState(target), T0)
    else:
        with pytest.raises(IllegalTransition):
            transition_assignment(assignment, AssignmentState(target), T0)
        assert assignment.state == current


def test_repeating_a_state_is_a_no_op():
    job = new_job()
    transition_job(job, JobStatus.SCHEDULED, "once", T0)
    assert not transition_job(job, JobStatus.SCHEDULED, "twice", T0)
    assert len(job.transitions) == 2


def test_cancel_then_nothing_moves():
    job = new_job()
    assert cancel_job(job, "changed my mind", T0)
    assert job.status_reason == "changed my mind"
    with pytest.raises(IllegalTransition):
        transition_job(job, JobStatus.SCHEDULED, "too late", T0)


def test_retry_backoff_is_exponential_and_bounded():
    assert [retry_delay_s(n, 5, 60) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


# --- allocator ------------------------------------------------------------------------------


def node(i: str, lat: float, lon: float, **kw) -> NodeView:
    kw.setdefault("devices", (RTL,))
    kw.setdefault("sync_uncertainty_s", 50e-9)
    return NodeView(id=i, lat_deg=lat, lon_deg=lon, **kw)


def scan(**kw) -> SpectrumScanJob:
    return SpectrumScanJob(start_freq_hz=88e6, stop_freq_hz=108e6, bin_hz=10e3, duration_s=60, **kw)


def test_geometry_helpers():
    assert distance_m((0, 0), (0, 1)) == pytest.approx(111_195, rel=1e-3)
    assert bearing_deg((0, 0), node("n", 1, 0)) == pytest.approx(0, abs=1e-6)
    assert bearing_deg((0, 0), node("e", 0, 1)) == pytest.approx(90, abs=1e-6)
    assert largest_gap_deg([0, 90, 180, 270]) == 90
    assert largest_gap_deg([0, 10]) == 350


def test_spectrum_scan_spreads_nodes_out():
    # a tight cluster of four nodes around (50, 8) and three far apart
    cluster = [node(f"c{i}", 50 + 0.001 * i, 8) for i in range(4)]
    far = [node("north", 54, 8), node("south", 46, 8), node("east", 50, 14)]
    allocation = JOB_TYPES["spectrum_scan"].strategy.allocate(scan(node_count=4), cluster + far)
    chosen = set(allocation.node_ids)
    assert {"north", "south", "east"} <= chosen
    assert len(chosen & {c.id for c in cluster}) == 1
    assert "km apart" in allocation.note


def test_spectrum_scan_filters_by_coverage_and_availability():
    nodes = [
        node("hf-only", 0, 0, devices=(DeviceView(10e3, 30e6, 768e3),)),
        node("off", 0, 1, online=False),
        node("busy", 0, 2, load=1, max_jobs=1),
        node("ok", 0, 3),
    ]
    with pytest.raises(Unplaceable) as e:
        JOB_TYPES["spectrum_scan"].strategy.allocate(scan(node_count=2), nodes)
    reason = e.value.reason
    assert "needs 2 nodes covering 88 MHz-108 MHz; 1 qualify" in reason
    assert "1 offline" in reason and "1 at capacity" in reason and "1 do not cover" in reason
    assert JOB_TYPES["spectrum_scan"].strategy.allocate(scan(), nodes).node_ids == ["ok"]


def test_df_tdoa_needs_sync_and_surrounds_the_area():
    area = {"lat_deg": 48.0, "lon_deg": 11.0, "radius_m": 2000}
    ring = [
        node(f"r{k}", 48 + 0.1 * math.cos(math.radians(a)), 11 + 0.15 * math.sin(math.radians(a)))
        for k, a in enumerate(range(0, 360, 30))
    ]
    unsynced = node("ntp", 48.01, 11.0, sync_uncertainty_s=5e-3)
    far = node("far", 52, 11)
    job = DirectionFindingJob(
        center_freq_hz=433.92e6, bandwidth_hz=200e3, area=area, duration_s=10, node_count=4
    )
    allocation = JOB_TYPES["direction_finding"].strategy.allocate(job, [*ring, unsynced, far])
    assert "ntp" not in allocation.node_ids and "far" not in allocation.node_ids
    bearings = [bearing_deg((48, 11), n) for n in ring if n.id in allocation.node_ids]
    assert largest_gap_deg(bearings) <= 120  # four nodes around the area, none bunched
    # RSS does without sync: the unsynced node is the nearest, so it is taken first
    rss = job.model_copy(update={"method": "rss"})
    assert (
        "ntp" in JOB_TYPES["direction_finding"].strategy.allocate(rss, [*ring, unsynced]).node_ids
    )


def test_df_unplaceable_reason_names_sync():
    nodes = [node(f"n{i}", 48 + 0.01 * i, 11, sync_uncertainty_s=1e-2) for i in range(5)]
    job = DirectionFindingJob(
        center_freq_hz=433.92e6,
        bandwidth_hz=200e3,
        area={"lat_deg": 48, "lon_deg": 11},
        duration_s=10,
        node_count=3,
    )
    with pytest.raises(Unplaceable, match="5 not synchronised"):
        JOB_TYPES["direction_finding"].strategy.allocate(job, nodes)


def test_propagation_picks_licensed_transmitter_and_varied_distances():
    band = (TxBand(430e6, 440e6, 30.0),)
    tx = node("tx", 50, 8, devices=(HACKRF,), tx_opt_in=True, tx_bands=band)
    # can transmit but did not opt in: only a receiver, 0.5 km away
    not_opted_in = node("tx-no", 50, 8 + 0.5 / 71.7, devices=(HACKRF,), tx_bands=band)
    # receivers at about 1, 2, 3, 10, 30, 100 km east of the transmitter
    rx = [node(f"rx{d}", 50, 8 + d / 71.7) for d in (1, 2, 3, 10, 30, 100)]
    job = PropagationTestJob(freq_hz=435e6, tx_power_dbm=20, duration_s=30, receiver_count=3)
    allocation = PropagationTestStrategy().allocate(job, [tx, not_opted_in, *rx])
    assert allocation.nodes[0] == ("tx", "transmitter")
    # nearest first, then the farthest, then the one that best splits log-distance: 0.5, 10, 100 km
    assert {n for n, _ in allocation.nodes[1:]} == {"tx-no", "rx10", "rx100"}
    assert allocation.note.startswith("receivers at 0.5, 10.0, ")
    # over the licence's power: nobody may transmit
    loud = job.model_copy(update={"tx_power_dbm": 40})
    with pytest.raises(Unplaceable, match=r"1 are not licensed to transmit 40 dBm .*over"):
        PropagationTestStrategy().allocate(loud, [tx, *rx])


def test_the_licence_is_checked_for_the_band_and_the_power_each_alone():
    """Two licensed bands: 430-440 MHz up to 30 dBm, 144-146 MHz up to 0 dBm. A job inside
    one band at its power is placed; in the gap between the bands at a power both allow
    (the device tunes there) it is not, and neither is one at 20 dBm in the 0 dBm band
    (a power another band of the licence allows)."""
    bands = (TxBand(430e6, 440e6, 30.0), TxBand(144e6, 146e6, 0.0))
    tx = node("tx", 50, 8, devices=(HACKRF,), tx_opt_in=True, tx_bands=bands)
    rx = [node(f"rx{d}", 50, 8 + d / 71.7, devices=(HACKRF,)) for d in (1, 2, 3)]
    strategy = PropagationTestStrategy()

    def place(freq_hz: float, power_dbm: float) -> str:
        job = PropagationTestJob(
            freq_hz=freq_hz, tx_power_dbm=power_dbm, duration_s=30, receiver_count=3
        )
        try:
            return strategy.allocate(job, [tx, *rx]).nodes[0][0]
        except Unplaceable as exc:
            return exc.reason

    assert place(435e6, 30) == "tx"
    assert place(145e6, 0) == "tx"
    assert "outside their bands" in place(300e6, -10)  # no band of the licence holds it
    assert "outside their bands" in place(440e6, 0)  # reaches out of the band's top
    assert "over their power" in place(145e6, 20)  # 20 dBm is licensed, but not here
    assert "over their power" in place(435e6, 30.5)
    # not opted in: the bands alone do not make a transmitter
    quiet = node("tx", 50, 8, devices=(HACKRF,), tx_bands=bands)
    with pytest.raises(Unplaceable, match="4 have not opted in"):
        strategy.allocate(
            PropagationTestJob(freq_hz=435e6, tx_power_dbm=0, duration_s=30, receiver_count=3),
            [quiet, *rx],
        )


# --- the vectorized allocator against a plain reference ---------------------------------------


def _reference_greedy(pool, count, sep, first=None, keep=()):
    """Farthest-point selection written out node by node (ties: lower load, then smaller id)."""
    pool = sorted(pool, key=lambda n: (n.load, n.id))
    chosen, picked = list(keep), []
    if first is not None:
        picked.append(first)
        chosen.append(first)
        pool = [n for n in pool if n.id != first.id]
    while len(picked) < count and pool:
        best = max(pool, key=lambda n: min(sep(n, c) for c in chosen)) if chosen else pool[0]
        picked.append(best)
        chosen.append(best)
        pool = [n for n in pool if n.id != best.id]
    return [n.id for n in picked]


def _random_nodes(n: int, seed: int) -> list[NodeView]:
    rng = np.random.default_rng(seed)
    return [
        node(
            f"n{i:04d}",
            48 + rng.uniform(-1, 1),
            11 + rng.uniform(-1.5, 1.5),
            load=int(rng.integers(0, 3)),
            max_jobs=3,
            online=bool(rng.random() > 0.1),
            devices=(RTL,) if rng.random() > 0.2 else (DeviceView(10e3, 30e6, 768e3),),
            sync_uncertainty_s=float(rng.choice([20e-9, 5e-3])),
        )
        for i in range(n)
    ]


def test_spectrum_scan_matches_the_reference_greedy():
    nodes = _random_nodes(300, 1)
    ok = [n for n in nodes if n.online and n.load < n.max_jobs and n.devices[0] == RTL]
    for count in (1, 2, 7):
        got = JOB_TYPES["spectrum_scan"].strategy.allocate(scan(node_count=count), nodes)
        assert got.node_ids == _reference_greedy(ok, count, distance_m)


def test_df_matches_the_reference_greedy():
    nodes = _random_nodes(300, 2)
    centre = (48.0, 11.0)
    job = DirectionFindingJob(
        center_freq_hz=433.92e6,
        bandwidth_hz=200e3,
        duration_s=10,
        node_count=5,
        area={"lat_deg": centre[0], "lon_deg": centre[1]},
        max_range_m=60_000,
    )
    ok = [
        n
        for n in nodes
        if n.online
        and n.load < n.max_jobs
        and n.devices[0] == RTL
        and distance_m(n, centre) <= 60_000
        and n.sync_uncertainty_s <= 1e-6
    ]

    def sep(a, b):
        d = abs(bearing_deg(centre, a) - bearing_deg(centre, b)) % 360
        return min(d, 360 - d)

    first = min(ok, key=lambda n: (distance_m(n, centre), n.load, n.id))
    got = JOB_TYPES["direction_finding"].strategy.allocate(job, nodes)
    assert got.node_ids == _reference_greedy(ok, 5, sep, first=first)
    # a lost member's replacement is the qualifying outsider farthest in bearing from the rest
    members = [(next(n for n in nodes if n.id == i), "receiver") for i in got.node_ids[1:]]
    others = [n for n in ok if n.id not in got.node_ids]
    spare = JOB_TYPES["direction_finding"].strategy.replace(job, "receiver", members, nodes)
    assert spare.id == _reference_greedy(others, 1, sep, keep=[m for m, _ in members])[0]


def test_one_table_follows_the_load_of_jobs_placed_from_it():
    from drift.orchestrator.allocator import NodeTable

    nodes = [node(f"n{i:04d}", 48 + 0.01 * (i % 40), 11 + 0.01 * (i // 40)) for i in range(1000)]
    table = NodeTable(nodes)
    used: set[str] = set()
    for _ in range(333):
        allocation = JOB_TYPES["spectrum_scan"].strategy.allocate(scan(node_count=3), table)
        assert not used & set(allocation.node_ids)
        used |= set(allocation.node_ids)
        for node_id in allocation.node_ids:
            table.add_load(node_id)
    assert len(used) == 999
    with pytest.raises(Unplaceable) as e:
        JOB_TYPES["spectrum_scan"].strategy.allocate(scan(node_count=3), table)
    assert "1 qualify (of 1000 known: 999 at capacity)" in e.value.reason
