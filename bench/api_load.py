#!/usr/bin/env python3
"""Benchmark: the coordinator under load from another process, over real HTTP.

1. ``GET /api/v1/nodes`` with 100 enrolled nodes, from a second process with 16 concurrent
   connections for 10 s: requests/s and latency p50/p99 (targets: 1,000 req/s, p99 < 50 ms).
   The baseline in the same run is ``GET /healthz`` (no auth, no database): what the HTTP stack
   alone gives on this machine.
2. 1,000 nodes heartbeating at 1 Hz and polling for assignments at 1 Hz (the second process),
   while 1,000 one-node spectrum scans are submitted: time until all are allocated, and dispatch
   latency as a node sees it (the pick-up request), p50/p99 (targets: all allocated in under
   2 s, p99 under 100 ms).

The coordinator is ``drift serve`` with its defaults (SQLite, one process, scheduler every
0.2 s). Prints figures; never fails on a time.

    .venv/bin/python bench/api_load.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from drift.localnet import LocalNetwork, wait_for

SCAN = {"type": "spectrum_scan", "start_freq_hz": 430e6, "stop_freq_hz": 431e6,
        "bin_hz": 10e3, "duration_s": 3600, "node_count": 1}


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


# --- the load process --------------------------------------------------------------------------

async def _hammer(base, path, headers, seconds, conns, out):
    """Keep-alive HTTP/1.1 over raw asyncio streams: the generator costs far less CPU per
    request than an HTTP client library, which matters when it shares the cores."""
    host, port = base.split("//", 1)[1].split(":")
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    lat = []
    stop = time.monotonic() + seconds

    async def worker():
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await asyncio.wait_for(reader.readexactly(length), 30)
                lat.append(time.perf_counter() - t0)
                if status != 200:
                    raise SystemExit(f"{path}: {status} {body[:200]!r}")
        finally:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(conns)))
    out.put({"n": len(lat), "s": time.monotonic() - t0, "lat": lat})


def hammer(base, path, headers, seconds, conns, out):
    asyncio.run(_hammer(base, path, headers, seconds, conns, out))


async def _nodes(base, nodes, seconds, out):
    """Each node: heartbeat and pick-up once a second, spread over the second."""
    hb, pick, first_seen, errors = [], [], {}, [0]
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        async def node(i, node_id, cred):
            await asyncio.sleep(i / len(nodes))
            h = {"X-Node-Token": cred}
            while time.monotonic() < stop:
                t_round = time.monotonic()
                try:
                    t0 = time.perf_counter()
                    await client.post(f"/api/v1/nodes/{node_id}/heartbeat", headers=h,
                                      json={})
                    hb.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    r = await client.get(f"/api/v1/nodes/{node_id}/assignments", headers=h)
                    pick.append(time.perf_counter() - t0)
                    if r.status_code != 200:
                        errors[0] += 1
                        continue
                    for a in r.json():
                        first_seen.setdefault(a["id"], time.time())
                except httpx.HTTPError:
                    errors[0] += 1
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t_round)))
        await asyncio.gather(*(node(i, n, c) for i, (n, c) in enumerate(nodes)))
    out.put({"hb": hb, "pick": pick, "first_seen": first_seen, "errors": errors[0]})


def run_nodes(base, nodes, seconds, out):
    asyncio.run(_nodes(base, nodes, seconds, out))


# --- the benchmark -----------------------------------------------------------------------------

def enroll(net, n, start=0):
    out = []
    for i in range(start, start + n):
        t = net.api("POST", "/nodes/enrollment-tokens")["token"]
        r = net.http.post("/nodes/enroll", json={
            "token": t, "name": f"bench{i}",
            "location": {"lat_deg": 40 + (i % 100) * 0.1, "lon_deg": 10 + (i // 100) * 0.1},
            "devices": [{"driver": "rtlsdr", "freq_min_hz": 24e6, "freq_max_hz": 1.7e9,
                         "max_bandwidth_hz": 2.4e6}],
            "capabilities": {"max_jobs": 4}, "sync": {"source": "gps"},
            "heartbeat_timeout_s": 600})
        r.raise_for_status()
        out.append((r.json()["node_id"], r.json()["credential"]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    ap.add_argument("--nodes", type=int, default=1000,
                    help="nodes heartbeating in part 2, and jobs submitted [1000]")
    args = ap.parse_args()
    seconds = 4 if args.quick else 10
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as d:
        env = {"DRIFT_SCHEDULER_INTERVAL_S": "0.2", "DRIFT_ARGON2_TIME_COST": "1",
               "DRIFT_ARGON2_MEMORY_KIB": "64"}
        scenario = Path(__file__).resolve().parent.parent / "examples" / "scenarios" / "city.yaml"
        with LocalNetwork(Path(d) / "net", scenario, [], env=env) as net:
            print(f"==> enrolling 100 nodes on {net.base}", flush=True)
            nodes = enroll(net, 100)
            print(f"{'request':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs healthz':>10}")
            base_rate = None
            for label, path, headers in [
                    ("GET /healthz (baseline)", "/healthz", {}),
                    ("GET /api/v1/nodes (100)", "/api/v1/nodes", net._headers)]:
                q = ctx.Queue()
                p = ctx.Process(target=hammer, args=(net.base, path, headers, seconds, 16, q))
                p.start()
                res = q.get(timeout=seconds + 120)
                p.join()
                rate = res["n"] / res["s"]
                base_rate = base_rate or rate
                print(f"{label:<28} {rate:8.0f} {pct(res['lat'], 50) * 1e3:8.1f} "
                      f"{pct(res['lat'], 99) * 1e3:8.1f} {rate / base_rate:10.2f}", flush=True)

            n_total = max(100, args.nodes)
            print(f"==> enrolling {n_total - 100} more nodes", flush=True)
            nodes += enroll(net, n_total - 100, start=100)
            q = ctx.Queue()
            run_s = seconds + 20
            p = ctx.Process(target=run_nodes, args=(net.base, nodes, run_s, q))
            p.start()
            time.sleep(3)  # heartbeats flowing
            print(f"==> submitting {n_total} jobs while {n_total} nodes heartbeat at 1 Hz",
                  flush=True)
            submitted = {}
            t_submit = time.time()
            refused = 0
            for _ in range(n_total):
                try:
                    job_id = net.api("POST", "/jobs", json=SCAN)["id"]
                except httpx.HTTPError:
                    refused += 1  # timed out under the load
                    continue
                submitted[job_id] = time.time()
            if refused:
                print(f"  {refused} submissions timed out (30 s): the coordinator is saturated")
            t_last = time.time()

            def all_scheduled():
                page = net.api("GET", "/jobs", params={"status": "scheduled", "limit": 1})
                return page["total"] >= len(submitted) if isinstance(page, dict) else None

            wait_for(all_scheduled, 300, "every job to be allocated", 0.05)
            t_alloc = time.time()
            res = q.get(timeout=run_s + 300)
            p.join()
            print(f"  submission of {n_total} jobs: {t_last - t_submit:.1f} s "
                  f"({n_total / (t_last - t_submit):.0f} jobs/s over HTTP)")
            print(f"  all {n_total} allocated {t_alloc - t_last:.2f} s after the last "
                  f"submission ({t_alloc - t_submit:.1f} s after the first)")
            hb, pick = res["hb"], res["pick"]
            print(f"  heartbeat latency p50 {pct(hb, 50) * 1e3:.1f} ms, p99 "
                  f"{pct(hb, 99) * 1e3:.1f} ms ({len(hb) / run_s:.0f} heartbeats/s)")
            print(f"  dispatch (pick-up request) latency p50 {pct(pick, 50) * 1e3:.1f} ms, "
                  f"p99 {pct(pick, 99) * 1e3:.1f} ms; {res['errors']} requests timed out "
                  "(30 s) or failed")
            seen = res["first_seen"]
            delays = []
            for job_id, t in submitted.items():
                job = net.api("GET", f"/jobs/{job_id}")
                aid = job["assignments"][0]["id"] if job["assignments"] else None
                if aid in seen:
                    delays.append(seen[aid] - t)
            if delays:
                print(f"  submit -> node has it: p50 {statistics.median(delays):.2f} s, p99 "
                      f"{pct(delays, 99):.2f} s ({len(delays)} of {n_total} seen; nodes poll "
                      "at 1 Hz)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
