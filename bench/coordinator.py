"""Coordinator figures: allocator time per job type against the node count, and scheduler ticks
placing a queue of one-node scans on an embedded SQLite database (200 on 200 nodes, 1,000 on
1,000: the coordinator's target is all 1,000 allocated in under 2 s). Prints figures; never fails on
a time.

    .venv/bin/python bench/coordinator.py
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from drift.orchestrator.allocator import (
    DeviceView,
    NodeTable,
    NodeView,
    PropagationTestStrategy,
    TxBand,
)
from drift.orchestrator.job_service import submit_job
from drift.orchestrator.jobs import DirectionFindingJob, PropagationTestJob, SpectrumScanJob
from drift.orchestrator.migrations import upgrade
from drift.orchestrator.registry import JOB_TYPES
from drift.orchestrator.scheduler import Scheduler
from drift.orchestrator.settings import Settings
from drift.orchestrator.storage import Device, Node, make_engine, make_session_factory

RTL = DeviceView(24e6, 1.7e9, 2.4e6)
HACKRF = DeviceView(1e6, 6e9, 20e6, tx=True)
BAND = (TxBand(430e6, 440e6, 30.0),)


def random_nodes(n: int, rng: random.Random) -> list[NodeView]:
    nodes = []
    for i in range(n):
        tx = i % 10 == 1
        nodes.append(
            NodeView(
                id=f"n{i:05d}",
                lat_deg=48 + rng.uniform(-1, 1),
                lon_deg=11 + rng.uniform(-1.5, 1.5),
                max_jobs=4,
                sync_uncertainty_s=50e-9 if i % 3 else 5e-3,
                devices=(HACKRF,) if tx else (RTL,),
                tx_opt_in=tx,
                tx_bands=BAND if tx else (),
            )
        )
    return nodes


JOBS = {
    "spectrum_scan": SpectrumScanJob(
        start_freq_hz=88e6, stop_freq_hz=108e6, bin_hz=10e3, duration_s=60, node_count=8
    ),
    "direction_finding": DirectionFindingJob(
        center_freq_hz=433.92e6,
        bandwidth_hz=200e3,
        area={"lat_deg": 48, "lon_deg": 11},
        duration_s=10,
        node_count=6,
        max_range_m=200_000,
    ),
    "propagation_test": PropagationTestJob(
        freq_hz=435e6, tx_power_dbm=20, duration_s=30, receiver_count=5
    ),
}


#: propagation_test is not a registered job type until it can run; its strategy is measured
STRATEGIES = {
    "spectrum_scan": JOB_TYPES["spectrum_scan"].strategy,
    "direction_finding": JOB_TYPES["direction_finding"].strategy,
    "propagation_test": PropagationTestStrategy(),
}


def bench_allocator() -> None:
    """Per allocation: from a list of NodeViews (the table built for the call: the baseline),
    and from one NodeTable reused as the scheduler does within a tick."""
    rng = random.Random(1)
    print("allocator: median time per allocation (ms), table built per call / reused in a tick")
    print(f"{'nodes':>7} " + " ".join(f"{name:>22}" for name in JOBS))
    for n in (10, 100, 1000, 10000):
        nodes = random_nodes(n, rng)
        table = NodeTable(nodes)
        row = []
        for name, job in JOBS.items():
            strategy = STRATEGIES[name]
            cells = []
            for given in (nodes, table):
                times = []
                for _ in range(5 if n >= 1000 else 20):
                    t = time.perf_counter()
                    strategy.allocate(job, given)
                    times.append(time.perf_counter() - t)
                cells.append(statistics.median(times) * 1e3)
            row.append(f"{cells[0]:.2f} / {cells[1]:.2f} ({cells[0] / cells[1]:.0f}x)")
        print(f"{n:>7} " + " ".join(f"{cell:>22}" for cell in row))


def bench_ticks(node_count: int = 200, job_count: int = 200) -> None:
    rng = random.Random(2)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        now = dt.datetime.now(dt.UTC)
        with sessions.begin() as s:
            for view in random_nodes(node_count, rng):
                s.add(
                    Node(
                        name=view.id,
                        lat_deg=view.lat_deg,
                        lon_deg=view.lon_deg,
                        status="online",
                        last_seen=now,
                        heartbeat_timeout_s=3600,
                        capabilities={"max_jobs": 4},
                        sync_source="gps",
                        sync_uncertainty_s=view.sync_uncertainty_s,
                        credential_hash=uuid.uuid4().hex,
                        devices=[
                            Device(
                                driver="rtlsdr",
                                capabilities={
                                    "freq_min_hz": 24e6,
                                    "freq_max_hz": 1.7e9,
                                    "max_bandwidth_hz": 2.4e6,
                                    "tx": False,
                                },
                            )
                        ],
                    )
                )
        with sessions() as s:
            for i in range(job_count):  # one-node scans, as many as nodes
                spec = JOBS["spectrum_scan"].model_copy(update={"node_count": 1, "priority": i % 5})
                submit_job(s, spec, None, now)
        scheduler = Scheduler(sessions, Settings(data_dir=Path(tmp)))
        t = time.perf_counter()
        report = scheduler.tick(now)
        first = time.perf_counter() - t
        t = time.perf_counter()
        scheduler.tick(now)
        idle = time.perf_counter() - t
        engine.dispose()
    print(
        f"scheduler tick, {node_count} nodes, {job_count} pending scans: "
        f"{first * 1e3:.0f} ms placing {len(report.scheduled)} "
        f"({first / max(1, len(report.scheduled)) * 1e3:.2f} ms per job, "
        f"{len(report.pending)} left pending); next tick {idle * 1e3:.0f} ms"
    )


def main() -> int:
    bench_allocator()
    bench_ticks(200, 200)
    bench_ticks(1000, 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
