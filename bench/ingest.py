#!/usr/bin/env python3
"""Benchmark: spectrum ingest into each time-series backend through the real collector.

PSD frames of 1,024 bins are pushed over ZeroMQ (loopback TCP) by a sender in another process
(as a node is) to a collector in this process writing into the embedded SQLite store, then into
a real InfluxDB 1.x (Debian's influxd, started here on free ports with its own directories).
Prints frames/s end to end, losses (must be 0) and the collector's CPU per frame: this
process's CPU time (the collector's thread and ZeroMQ's I/O thread; the sender is elsewhere)
over the frames stored (and for InfluxDB, influxd's own CPU per frame). The baseline in the same run is the sender alone: the same frames into
a socket drained without decoding or storing. Targets: 10,000/s embedded, 5,000/s InfluxDB.

    .venv/bin/python bench/ingest.py [--frames 20000] [--rounds 1]
"""

import argparse
import multiprocessing as mp
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq
from gnuradio.drift import wire

from drift.localnet import InfluxServer
from drift.orchestrator.collector import Collector
from drift.orchestrator.timeseries import open_store

BINS = 1024


def sender(address: str, n: int, ready) -> None:
    """Encode and push n frames (in another process)."""
    rows = np.random.default_rng(0).normal(-150, 3, size=(16, BINS)).astype(np.float32)
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.connect(address)
    ready.wait()
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
    push.close(linger=-1)


def start_sender(address: str, n: int):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=sender, args=(address, n, ready))
    p.start()
    return p, ready


def sender_alone(n: int) -> float:
    """Baseline: the sender into a PULL socket drained here, frames counted, not decoded."""
    pull = zmq.Context.instance().socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    p, ready = start_sender(f"tcp://127.0.0.1:{port}", n)
    time.sleep(1.0)  # the process's start-up is not the sender's time
    ready.set()
    got = 0
    t0 = time.perf_counter()
    while got < n and pull.poll(10_000):
        pull.recv_multipart()
        got += 1
    dt = time.perf_counter() - t0
    p.join()
    pull.close()
    return got / dt


def cpu_s(pid: int) -> float:
    """CPU time (user + system) of another process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(store, n: int, directory: Path, server_pid: int | None = None):
    """(frames/s end to end, frames lost, this process's CPU us per frame stored, and the
    database server's if it has a `server_pid`)."""
    col = Collector(store, "tcp://127.0.0.1:0", spool_dir=directory)
    p, ready = start_sender(col.address, n)
    stop = threading.Event()

    def collect():
        while (col.stats.stored < n or col.spool.depth) and not stop.is_set():
            col.poll(100)

    time.sleep(1.0)
    t = threading.Thread(target=collect)
    c0 = time.process_time()
    s0 = cpu_s(server_pid) if server_pid else 0.0
    t0 = time.perf_counter()
    t.start()
    ready.set()
    t.join(timeout=600)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    server_cpu = cpu_s(server_pid) - s0 if server_pid else None
    stop.set()
    p.join()
    col.close()
    stored = store.count("bench")
    per = max(stored, 1) / 1e6
    return stored / dt, n - stored, cpu / per, server_cpu / per if server_cpu is not None else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=1, help="repeat the whole run")
    args = ap.parse_args()
    n = args.frames
    print(
        f"{'backend':<22} {'frames':>7} {'frames/s':>9} {'sender alone':>12} {'ratio':>6} "
        f"{'collector CPU':>13} {'lost':>5}"
    )
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            alone = sender_alone(n)
            store = open_store(None, d / "sqlite")
            rate, lost, cpu, _ = run(store, n, d / "sqlite")
            store.close()
            print(
                f"{'embedded SQLite':<22} {n:7d} {rate:9.0f} {alone:12.0f} {rate / alone:6.2f} "
                f"{cpu:8.1f} us/fr {lost:5d}",
                flush=True,
            )
            server = InfluxServer(d / "influx").start()
            try:
                store = open_store(f"influxdb://127.0.0.1:{server.port}/bench", d)
                rate, lost, cpu, influxd_cpu = run(store, n, d / "influx", server.proc.pid)
                store.close()
                print(
                    f"{'InfluxDB 1.x (influxd)':<22} {n:7d} {rate:9.0f} {alone:12.0f} "
                    f"{rate / alone:6.2f} {cpu:8.1f} us/fr {lost:5d}   (influxd: "
                    f"{influxd_cpu:.0f} us/frame of CPU)",
                    flush=True,
                )
            finally:
                server.stop()


if __name__ == "__main__":
    main()
