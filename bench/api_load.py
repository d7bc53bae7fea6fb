#!/usr/bin/env python3
"""Benchmark: the coordinator under load from another process, over real HTTP.

1. ``GET /api/v1/nodes`` with 100 enrolled nodes, from a second process with 16 concurrent
   connections for 10 s: requests/s and latency p50/p99 (targets: 1,000 req/s, p99 < 50 ms).
   The baseline in the same run is ``GET /healthz`` (no auth, no database): what the HTTP stack
   alone gives on this machine.
2. 1,000 nodes heartbeating at 1 Hz over their node channels (WebSockets, in the second
   process), while 1,000 one-node spectrum scans are submitted over HTTP: allocation time
   (submitted -> scheduled, from the jobs' own transitions), dispatch latency (scheduled,
   stamped when the placement was decided -> the node has the assignment, pushed on its
   channel) p50/p99, and heartbeat
   acknowledgement latency (targets: all allocated in under 2 s, p99 dispatch under 100 ms).
   Then the same nodes while 200 jobs come at 20 a second: dispatch when the coordinator is
   not saturated by the submissions themselves.
3. The baseline for part 2: nodes without a channel (``channel: false``), each sending an
   HTTP heartbeat and an assignment poll every second (``--http-nodes``, 200 by default: a
   thousand saturate one process).

The coordinator is ``drift serve`` with its defaults (SQLite, one process; its scheduler
interval 2 s, though a submission wakes it at once). Prints figures; never fails on a time.

    .venv/bin/python bench/api_load.py [--quick] [--nodes 1000] [--http-nodes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import httpx

from drift.localnet import LocalNetwork, wait_for

SCAN = {
    "type": "spectrum_scan",
    "start_freq_hz": 430e6,
    "stop_freq_hz": 431e6,
    "bin_hz": 10e3,
    "duration_s": 3600,
    "node_count": 1,
}


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
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + "\r\n"
    ).encode()
    lat = []
    stop = time.monotonic() + seconds

    async def worker():
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                status, body = await _request(reader, writer, request)
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


async def _request(reader, writer, request: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a kept-alive raw connection: (status, body)."""
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return int(head[9:12]), await asyncio.wait_for(reader.readexactly(length), 30)


async def _loop_lag(stop, counted_from, lag):
    """The load process's own event-loop lag (how late a 10 ms sleep wakes): a latency the
    process measures includes this much that is not the coordinator's."""
    while time.monotonic() < stop:
        t0 = time.perf_counter()
        await asyncio.sleep(0.01)
        if time.monotonic() > counted_from:
            lag.append(time.perf_counter() - t0 - 0.01)


async def _http_nodes(base, nodes, seconds, out, warmup_s=0.0):
    """Each node on its own kept-alive connection (raw asyncio streams, as lean as the channel
    client): an HTTP heartbeat and an assignment poll once a second, spread over it."""
    host, port = base.split("//", 1)[1].split(":")
    hb, pick, first_seen, errors = [], [], {}, [0]
    counted_from = time.monotonic() + warmup_s
    stop = time.monotonic() + seconds

    async def node(i, node_id, cred):
        await asyncio.sleep(i / len(nodes))
        auth = f"Host: {host}\r\nX-Node-Token: {cred}\r\n"
        beat = (
            f"POST /api/v1/nodes/{node_id}/heartbeat HTTP/1.1\r\n{auth}"
            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        ).encode()
        poll = f"GET /api/v1/nodes/{node_id}/assignments HTTP/1.1\r\n{auth}\r\n".encode()
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            errors[0] += 1
            return
        try:
            while time.monotonic() < stop:
                t_round = time.monotonic()
                t0 = time.perf_counter()
                status, _ = await _request(reader, writer, beat)
                t1 = time.perf_counter()
                status2, body = await _request(reader, writer, poll)
                t2 = time.perf_counter()
                if status != 200 or status2 != 200:
                    errors[0] += 1
                    continue
                now = time.time()
                for a in json.loads(body):
                    first_seen.setdefault(a["id"], now)
                if time.monotonic() > counted_from:
                    hb.append(t1 - t0)
                    pick.append(t2 - t1)
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t_round)))
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            errors[0] += 1
        finally:
            writer.close()

    lag: list[float] = []
    await asyncio.gather(
        _loop_lag(stop, counted_from, lag), *(node(i, n, c) for i, (n, c) in enumerate(nodes))
    )
    out.put({"hb": hb, "pick": pick, "first_seen": first_seen, "errors": errors[0], "lag": lag})


async def _channel_nodes(base, nodes, seconds, out, warmup_s=0.0):
    """Each node: its channel open, a heartbeat a second (spread over the second), every
    pushed assignment list read as it comes. Acknowledgements in the first `warmup_s` (the
    channels opening) are not counted."""
    from websockets.asyncio.client import connect

    from drift.protocol import channel_url

    acks, first_seen, errors, opened = [], {}, [0], [0]
    counted_from = time.monotonic() + warmup_s
    stop = time.monotonic() + seconds

    async def node(i, node_id, cred):
        await asyncio.sleep(i / len(nodes))
        sent: dict[int, float] = {}
        try:
            async with connect(
                channel_url(base, node_id),
                open_timeout=30,
                compression=None,
                additional_headers={"X-Node-Token": cred},
            ) as ws:
                opened[0] += 1

                async def read():
                    async for raw in ws:
                        now = time.time()
                        msg = json.loads(raw)
                        if msg["type"] == "ack":
                            took = time.perf_counter() - sent.pop(msg["seq"])
                            if time.monotonic() > counted_from:
                                acks.append(took)
                        elif msg["type"] == "assignments":
                            for a in msg["assignments"]:
                                first_seen.setdefault(a["id"], now)

                reader = asyncio.create_task(read())
                seq = 0
                while time.monotonic() < stop:
                    t_round = time.monotonic()
                    seq += 1
                    sent[seq] = time.perf_counter()
                    await ws.send(json.dumps({"type": "heartbeat", "seq": seq}))
                    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t_round)))
                reader.cancel()
        except Exception:
            errors[0] += 1

    lag: list[float] = []
    await asyncio.gather(
        _loop_lag(stop, counted_from, lag), *(node(i, n, c) for i, (n, c) in enumerate(nodes))
    )
    out.put(
        {"hb": acks, "first_seen": first_seen, "errors": errors[0], "opened": opened[0], "lag": lag}
    )


def run_nodes(mode, base, nodes, seconds, out, warmup_s=0.0):
    run = _channel_nodes if mode == "channel" else _http_nodes
    asyncio.run(run(base, nodes, seconds, out, warmup_s))


# --- the benchmark -----------------------------------------------------------------------------


def enroll(net, n, start=0):
    return [
        net.enroll(f"bench{i}", 40 + (i % 100) * 0.1, 10 + (i // 100) * 0.1, max_jobs=4)
        for i in range(start, start + n)
    ]


def _submit_all(net, n, conns=8, rate=None):
    """n one-node scans, over `conns` connections at once, or one at a time at `rate` a
    second: (job ids, submissions that timed out)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(_):
        try:
            return net.api("POST", "/jobs", json=SCAN)["id"]
        except httpx.HTTPError:
            return None  # timed out under the load

    if rate is None:
        with ThreadPoolExecutor(conns) as pool:
            ids = list(pool.map(one, range(n)))
    else:
        ids, t0 = [], time.monotonic()
        for k in range(n):
            time.sleep(max(0.0, t0 + k / rate - time.monotonic()))
            ids.append(one(k))
    return [i for i in ids if i is not None], ids.count(None)


def _at(job, status):
    t = next(t["at"] for t in job["transitions"] if t["to_status"] == status)
    return dt.datetime.fromisoformat(t).timestamp()


def load_round(net, ctx, mode, nodes, seconds, jobs=None, rate=None):
    """Nodes heartbeating in `mode` while `jobs` (default: as many as nodes) are submitted,
    as fast as 8 connections go or at `rate` a second; prints the figures."""
    q = ctx.Queue()
    warmup_s = 3 + len(nodes) / 250  # every node connected and heartbeating
    run_s = seconds + 20 + warmup_s
    p = ctx.Process(target=run_nodes, args=(mode, net.base, nodes, run_s, q, warmup_s))
    p.start()
    time.sleep(warmup_s)
    n = jobs or len(nodes)
    pace = f"at {rate:g}/s" if rate else "as fast as they go"
    print(
        f"==> {mode}: submitting {n} jobs {pace} while {len(nodes)} nodes heartbeat at 1 Hz",
        flush=True,
    )
    t_submit = time.time()
    submitted, refused = _submit_all(net, n, rate=rate)
    t_last = time.time()
    if refused:
        print(f"  {refused} submissions timed out (30 s): the coordinator is saturated")

    def all_scheduled():
        page = net.api("GET", "/jobs", params={"status": "scheduled", "limit": 1})
        return page["total"] >= len(submitted) if isinstance(page, dict) else None

    wait_for(all_scheduled, 300, "every job to be allocated", 0.05)
    t_alloc = time.time()
    res = q.get(timeout=run_s + 300)
    p.join()
    print(
        f"  submission of {n} jobs: {t_last - t_submit:.1f} s "
        f"({n / (t_last - t_submit):.0f} jobs/s over HTTP" + (")" if rate else ", 8 connections)")
    )
    alloc, dispatch = [], []
    for job_id in submitted:
        job = net.api("GET", f"/jobs/{job_id}")
        net.api("POST", f"/jobs/{job_id}/cancel")  # frees the node for the next round
        scheduled = _at(job, "scheduled")
        alloc.append(scheduled - _at(job, "pending"))
        aid = job["assignments"][0]["id"] if job["assignments"] else None
        if aid in res["first_seen"]:
            dispatch.append(res["first_seen"][aid] - scheduled)
    print(
        f"  all {n} allocated {t_alloc - t_last:.2f} s after the last submission; "
        f"submitted -> scheduled p50 {pct(alloc, 50) * 1e3:.0f} ms, p99 "
        f"{pct(alloc, 99) * 1e3:.0f} ms, max {max(alloc) * 1e3:.0f} ms"
    )
    hb = res["hb"]
    print(
        f"  heartbeat latency p50 {pct(hb, 50) * 1e3:.1f} ms, p99 {pct(hb, 99) * 1e3:.1f} ms "
        f"({len(hb) / (run_s - warmup_s):.0f} heartbeats/s); {res['errors']} nodes/requests "
        "failed"
    )
    if "pick" in res:
        pick = res["pick"]
        print(
            f"  pick-up request latency p50 {pct(pick, 50) * 1e3:.1f} ms, p99 "
            f"{pct(pick, 99) * 1e3:.1f} ms"
        )
    lag = res["lag"]
    print(
        f"  the load process's own event-loop lag (in every latency above and below): "
        f"p50 {pct(lag, 50) * 1e3:.1f} ms, p99 {pct(lag, 99) * 1e3:.1f} ms"
    )
    how = "pushed on its channel" if mode == "channel" else "polled at 1 Hz"
    if dispatch:
        print(
            f"  scheduled -> node has it ({how}): p50 {pct(dispatch, 50) * 1e3:.0f} ms, "
            f"p99 {pct(dispatch, 99) * 1e3:.0f} ms ({len(dispatch)} of {n} seen)"
        )
    else:
        print(f"  no node saw its assignment ({how})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    ap.add_argument(
        "--nodes",
        type=int,
        default=1000,
        help="nodes on channels in part 2, and jobs submitted [1000]",
    )
    ap.add_argument(
        "--http-nodes",
        type=int,
        default=200,
        help="nodes polling over HTTP in part 3, and jobs submitted; 0: skip [200]",
    )
    args = ap.parse_args()
    seconds = 4 if args.quick else 10
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as d:
        env = {"DRIFT_ARGON2_TIME_COST": "1", "DRIFT_ARGON2_MEMORY_KIB": "64"}
        scenario = Path(__file__).resolve().parent.parent / "examples" / "scenarios" / "city.yaml"
        with LocalNetwork(Path(d) / "net", scenario, [], env=env) as net:
            print(f"==> enrolling 100 nodes on {net.base}", flush=True)
            nodes = enroll(net, 100)
            print(f"{'request':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs healthz':>10}")
            base_rate = None
            for label, path, headers in [
                ("GET /healthz (baseline)", "/healthz", {}),
                ("GET /api/v1/nodes (100)", "/api/v1/nodes", net._headers),
            ]:
                q = ctx.Queue()
                p = ctx.Process(target=hammer, args=(net.base, path, headers, seconds, 16, q))
                p.start()
                res = q.get(timeout=seconds + 120)
                p.join()
                rate = res["n"] / res["s"]
                base_rate = base_rate or rate
                print(
                    f"{label:<28} {rate:8.0f} {pct(res['lat'], 50) * 1e3:8.1f} "
                    f"{pct(res['lat'], 99) * 1e3:8.1f} {rate / base_rate:10.2f}",
                    flush=True,
                )

            n_total = max(100, args.nodes, args.http_nodes)
            print(f"==> enrolling {n_total - 100} more nodes", flush=True)
            nodes += enroll(net, n_total - 100, start=100)
            load_round(net, ctx, "channel", nodes[: args.nodes], seconds)
            load_round(net, ctx, "channel", nodes[: args.nodes], seconds, jobs=200, rate=20)
            if args.http_nodes:
                load_round(net, ctx, "http", nodes[: args.http_nodes], seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
