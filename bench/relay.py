#!/usr/bin/env python3
"""Benchmark: the node agent's frame relay (flowgraph -> relay -> disk spool -> collector socket).

Every frame a flowgraph makes is committed to the node's SQLite spool before it is forwarded, so
nothing is lost when the coordinator is away. This measures what that costs: PSD frames of 1,024
and 16,384 bins pushed into the relay's endpoint and drained from the collector side, against
the same frames pushed straight to the drain (the baseline, same process, same run). Not a test.

    .venv/bin/python bench/relay.py [--frames 20000]
"""

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq
from gnuradio.drift import wire

from drift.node.relay import Relay


def frames(n, bins):
    rows = np.random.default_rng(0).normal(-150, 1, size=(16, bins)).astype(np.float32)
    for i in range(n):
        f = wire.Frame(
            wire.PSD,
            i,
            1_764_000_000 + i // 10,
            (i % 10) / 10,
            1e-3,
            {
                "job_id": "bench",
                "node_id": "n1",
                "center_freq_hz": 1e8,
                "bin_hz": 1e3,
                "n_bins": bins,
            },
            rows[i % 16],
        )
        yield wire.encode(f)


def drain(pull, n, out):
    got = 0
    while got < n and pull.poll(10000):
        pull.recv_multipart()
        got += 1
    out.append(got)


def run(n, bins, via_relay, directory):
    ctx = zmq.Context.instance()
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    relay = None
    target = f"tcp://127.0.0.1:{port}"
    if via_relay:
        relay = Relay(Path(directory), target)
        relay.start()
        target = relay.endpoint
    push = ctx.socket(zmq.PUSH)
    push.connect(target)
    got = []
    t = threading.Thread(target=drain, args=(pull, n, got))
    t.start()
    t0 = time.perf_counter()
    for parts in frames(n, bins):
        push.send_multipart(parts)
    t.join()
    dt = time.perf_counter() - t0
    push.close()
    pull.close()
    if relay:
        relay.close()
    return got[0], got[0] / dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20000)
    args = ap.parse_args()
    print(f"{'bins':>6} {'path':<28} {'frames':>7} {'frames/s':>9} {'lost':>5} {'vs direct':>9}")
    for bins in (1024, 16384):
        n = args.frames if bins == 1024 else args.frames // 8
        _, base = run(n, bins, False, None)
        print(f"{bins:6d} {'direct (baseline)':<28} {n:7d} {base:9.0f} {0:5d} {1:9.2f}")
        with tempfile.TemporaryDirectory() as d:
            got, rate = run(n, bins, True, d)
        print(
            f"{bins:6d} {'relay + SQLite spool':<28} {n:7d} {rate:9.0f} {n - got:5d} "
            f"{rate / base:9.2f}"
        )


if __name__ == "__main__":
    main()
