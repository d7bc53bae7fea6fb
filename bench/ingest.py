#!/usr/bin/env python3
"""Benchmark: spectrum ingest into each time-series backend through the real collector.

PSD frames of 1,024 bins are pushed over ZeroMQ (loopback) to a collector writing into the
embedded SQLite store, then into a real InfluxDB 1.x (Debian's influxd, started here on free
ports with its own directories). Prints frames/s end to end and losses (must be 0), and the ratio
to the embedded store measured in the same run. Targets: 5,000/s embedded, 1,000/s InfluxDB.

    .venv/bin/python bench/ingest.py [--frames 20000]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq
from gnuradio.drift import wire

from drift.localnet import InfluxServer
from drift.orchestrator.collector import Collector
from drift.orchestrator.timeseries import open_store


def run(store, n, bins, directory):
    col = Collector(store, "tcp://127.0.0.1:0", spool_dir=directory)
    col.start()
    rows = np.random.default_rng(0).normal(-150, 3, size=(16, bins)).astype(np.float32)
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.connect(col.address)
    t0 = time.perf_counter()
    for i in range(n):
        f = wire.Frame(
            wire.PSD,
            i,
            1_764_000_000 + i // 100,
            (i % 100) / 100,
            1e-3,
            {"job_id": "bench", "node_id": "n1", "center_freq_hz": 1e8, "bin_hz": 1e3},
            rows[i % 16],
        )
        push.send_multipart(wire.encode(f))
    deadline = time.monotonic() + 600
    while (col.stats.stored < n or col.spool.depth) and time.monotonic() < deadline:
        time.sleep(0.01)
    dt = time.perf_counter() - t0
    push.close()
    col.close()
    stored = store.count("bench")
    return n / dt, n - stored


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20000)
    args = ap.parse_args()
    n = args.frames
    print(f"{'backend':<22} {'frames':>7} {'frames/s':>9} {'lost':>5} {'vs embedded':>11}")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        store = open_store(None, d / "sqlite")
        base, lost = run(store, n, 1024, d / "sqlite")
        store.close()
        print(f"{'embedded SQLite':<22} {n:7d} {base:9.0f} {lost:5d} {1:11.2f}")
        server = InfluxServer(d / "influx").start()
        try:
            store = open_store(f"influxdb://127.0.0.1:{server.port}/bench", d)
            rate, lost = run(store, n, 1024, d / "influx")
            store.close()
            print(
                f"{'InfluxDB 1.x (influxd)':<22} {n:7d} {rate:9.0f} {lost:5d} {rate / base:11.2f}"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
