#!/usr/bin/env python3
"""Benchmark: PSD frames through frame_sink -> ZeroMQ -> collector -> embedded store.

A flowgraph pushes N PSD vectors through drift's frame_sink (PUSH, loopback TCP) to a collector
(PULL) that decodes, checks sequences and stores them in SQLite. Prints frames/s end to end,
the collector's CPU time per frame, and losses (must be 0). The baseline in the same run is
the sender alone into a socket drained without decoding or storing. Not a test.

    .venv/bin/python bench/dataplane.py [--frames 20000]
"""

import argparse
import os
import tempfile
import threading
import time

import numpy as np
import zmq
from gnuradio import blocks, gr
from gnuradio.drift.frame_sink import frame_sink

from drift.orchestrator.collector import Collector
from drift.orchestrator.spectrum_store import SpectrumStore


def send(address, n_frames, bins):
    rows = np.random.default_rng(0).normal(-150, 1, size=(64, bins)).astype(np.float32)
    tb = gr.top_block()
    src = blocks.vector_source_f(rows.ravel().tolist(), True, bins)
    head = blocks.head(gr.sizeof_float * bins, n_frames)
    sink = frame_sink(address, "bench", "n1", bins, 2.4e6, 100, bind=False, socket_type="push")
    tb.connect(src, head, sink)
    tb.run()


def baseline(n_frames, bins):
    """Sender only: a PULL socket drained in a thread, frames counted, not decoded."""
    ctx = zmq.Context.instance()
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    got = [0]

    def drain():
        while got[0] < n_frames and pull.poll(5000):
            pull.recv_multipart()
            got[0] += 1

    t = threading.Thread(target=drain)
    t.start()
    t0 = time.perf_counter()
    send(f"tcp://127.0.0.1:{port}", n_frames, bins)
    t.join()
    pull.close()
    return got[0] / (time.perf_counter() - t0)


def end_to_end(n_frames, bins, directory):
    store = SpectrumStore(os.path.join(directory, f"bench-{bins}.sqlite"))
    col = Collector(store, "tcp://127.0.0.1:0")
    cpu = [0.0]

    def run():
        c0 = time.thread_time()
        while col.stats.stored + col.stats.duplicates < n_frames and not stop.is_set():
            col.poll(100)
        cpu[0] = time.thread_time() - c0

    stop = threading.Event()
    t = threading.Thread(target=run)
    t.start()
    t0 = time.perf_counter()
    send(col.address, n_frames, bins)
    t.join(timeout=120)
    elapsed = time.perf_counter() - t0
    stop.set()
    stats = col.stats
    col.close()
    stored = store.count("bench")
    store.close()
    return stored / elapsed, cpu[0] / max(stored, 1) * 1e6, n_frames - stored, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20000)
    args = ap.parse_args()
    print(f"frame_sink -> ZeroMQ (tcp loopback) -> collector -> SQLite, {args.frames} frames")
    print(
        f"{'bins':>6} | {'end to end':>12} {'sender only':>12} {'ratio':>6} | "
        f"{'collector CPU':>14} | {'lost':>5}"
    )
    with tempfile.TemporaryDirectory() as d:
        for bins in (1024, 16384):
            n = args.frames if bins == 1024 else max(1000, args.frames // 8)
            rate, cpu_us, lost, _ = end_to_end(n, bins, d)
            base = baseline(n, bins)
            print(
                f"{bins:>6} | {rate:>9.0f}/s {base:>9.0f}/s {rate / base:>5.2f}x | "
                f"{cpu_us:>9.1f} us/fr | {lost:>5}"
            )


if __name__ == "__main__":
    main()
