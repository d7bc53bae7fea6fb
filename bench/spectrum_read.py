#!/usr/bin/env python3
"""Benchmark: ``GET /api/v1/spectrum/{job_id}`` served by ``drift serve`` over real HTTP.

Jobs of 10^3 and 10^5 PSD frames of 1,024 bins (10^6 with ``--million``: a 4 GB store,
written in about a minute) are written straight into the coordinator's embedded store in bulk.
A client in this process then reads each job (it counts frames in the answer without decoding
them):

- every frame, in pages of 10,000 (each page starts where the last ended: ``start_time``),
  binary and JSON (JSON: the last 10^5 frames at most, the deepest pages);
- the whole job decimated to 1,000 rows (``rows=1000``, max hold; every frame is read and
  held on the server), binary.

Prints frames/s served, the coordinator's CPU time per frame, and its peak memory during each
read (its resident set's high-water mark, reset before each read, less its resident set
before). The baseline in the same run is the store read raw in this process: ``SELECT
payload`` of the same rows in the same order with Python's sqlite3, payloads counted and
dropped. Target: >= 20,000 frames/s binary, memory flat in the job's size. Not a test; never
fails on a time.

    .venv/bin/python bench/spectrum_read.py [--million] [--sizes 1000 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from drift.localnet import LocalNetwork
from drift.orchestrator.spectrum_store import SpectrumStore

BINS = 1024
PAGE = 10_000
T0 = 1_764_000_000
STEP_S = 0.01  # frames 10 ms apart
SCAN = {
    "type": "spectrum_scan",
    "start_freq_hz": 88e6,
    "stop_freq_hz": 108e6,
    "bin_hz": 1e4,
    "duration_s": 10,
}


def fill(path: Path, job_id: str, n: int) -> float:
    """n frames of one node written in bulk; returns the seconds it took."""
    SpectrumStore(str(path)).close()  # the schema
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    pool = np.random.default_rng(0).normal(-150, 3, (64, BINS)).astype("<f4")
    blobs = [row.tobytes() for row in pool]
    meta = json.dumps({"job_id": job_id, "node_id": "n1", "center_freq_hz": 1e8, "bin_hz": 1e3})
    t0 = time.perf_counter()
    for first in range(0, n, 20_000):
        rows = []
        for i in range(first, min(n, first + 20_000)):
            whole, cs = divmod(i, 100)
            rows.append(
                (
                    job_id,
                    "n1",
                    1,
                    i,
                    T0 + whole,
                    cs * STEP_S,
                    1e-3,
                    1e8,
                    1e3,
                    BINS,
                    0,
                    meta,
                    blobs[i % 64],
                )
            )
        db.execute("BEGIN")
        db.executemany("INSERT INTO frames VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        db.execute("COMMIT")
    db.close()
    return time.perf_counter() - t0


def raw_read(path: Path, job_id: str) -> float:
    """Baseline: the same rows, in the same order, straight from SQLite; frames/s."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    t0 = time.perf_counter()
    cur = db.execute(
        "SELECT payload FROM frames WHERE job_id = ? AND frame_type = 1 "
        "ORDER BY time_s, time_frac, node_id, seq",
        (job_id,),
    )
    n = 0
    while rows := cur.fetchmany(256):
        n += len(rows)
    dt = time.perf_counter() - t0
    db.close()
    return n / dt


def cpu_s(pid: int) -> float:
    """CPU time (user + system) of another process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Peak:
    """The coordinator's resident-set high-water mark over a block, less its resident set at
    the start (Linux: /proc/PID/clear_refs resets VmHWM)."""

    def __init__(self, pid: int):
        self.pid = pid

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    def __enter__(self):
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.start = self._status("VmRSS")
        self.cpu0 = cpu_s(self.pid)
        return self

    def __exit__(self, *exc):
        self.peak = self._status("VmHWM") - self.start
        self.cpu = cpu_s(self.pid) - self.cpu0


def _iso(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


def count_binary(chunks) -> tuple[int, float]:
    """Frames in a binary answer (three length-prefixed parts each), and the last one's time."""
    buf = b""
    n, last = 0, None
    for chunk in chunks:
        buf += chunk
        i = 0
        while True:
            if len(buf) - i < 4:
                break
            (h,) = struct.unpack_from("<I", buf, i)
            j = i + 4 + h
            if len(buf) - j < 4:
                break
            (m,) = struct.unpack_from("<I", buf, j)
            k = j + 4 + m
            if len(buf) - k < 4:
                break
            (p,) = struct.unpack_from("<I", buf, k)
            end = k + 4 + p
            if len(buf) < end:
                break
            secs, frac = struct.unpack_from("<qd", buf, i + 4 + 16)
            last = secs + frac
            n += 1
            i = end
        buf = buf[i:]
    return n, last


def count_json(chunks) -> tuple[int, float | None]:
    """Frames in a JSON page and the last one's time, found without parsing the bins (a
    client's JSON parser would cost more than the server's rendering on these 2 cores)."""
    n, tail, last = 0, b"", None
    key = b'"time_unix_s":'
    for chunk in chunks:
        text = tail + chunk
        n += text.count(key) - tail.count(key)
        i = text.rfind(key)
        if i >= 0:
            with contextlib.suppress(ValueError):  # a number cut at the chunk's end
                last = float(text[i + len(key) :].split(b",", 1)[0])
        tail = text[-64:]
    return n, last


def read_pages(net, job_id: str, fmt: str, start: float | None, n_max: int) -> tuple[int, float]:
    """Pages of PAGE frames from `start` on until the job ends or n_max are read: (frames,
    seconds)."""
    got = 0
    t0 = time.perf_counter()
    while got < n_max:
        params = {"limit": min(PAGE, n_max - got), "format": fmt}
        if start is not None:
            params["start_time"] = _iso(start)
        with net.http.stream(
            "GET", f"/spectrum/{job_id}", params=params, headers=net._headers
        ) as r:
            r.raise_for_status()
            if fmt == "binary":
                n, last = count_binary(r.iter_bytes())
            else:
                n, last = count_json(r.iter_bytes())
        got += n
        if n == 0 or last is None:
            break
        start = last + STEP_S / 2
    return got, time.perf_counter() - t0


def read_held(net, job_id: str, rows: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    with net.http.stream(
        "GET",
        f"/spectrum/{job_id}",
        params={"rows": rows, "format": "binary"},
        headers=net._headers,
        timeout=600,
    ) as r:
        r.raise_for_status()
        n, _ = count_binary(r.iter_bytes())
    return n, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    ap.add_argument("--million", action="store_true", help="add a job of 10^6 frames (4 GB)")
    ap.add_argument("--json-max", type=int, default=100_000, help="JSON frames read per job")
    args = ap.parse_args()
    sizes = args.sizes + ([1_000_000] if args.million else [])
    scenario = Path(__file__).resolve().parent.parent / "examples" / "scenarios" / "city.yaml"
    env = {"DRIFT_ARGON2_TIME_COST": "1", "DRIFT_ARGON2_MEMORY_KIB": "64"}
    with (
        tempfile.TemporaryDirectory() as d,
        LocalNetwork(Path(d) / "net", scenario, [], env=env) as net,
    ):
        store = Path(net.env["DRIFT_DATA_DIR"]) / "spectrum.sqlite"
        peak = Peak(net.coordinator.pid)
        print(f"GET /spectrum, {BINS} bins, one node; drift serve (SQLite) on {net.base}")
        print(
            f"{'frames':>9} | {'raw sqlite':>11} | {'binary':>11} {'ratio':>6} {'peak':>7} "
            f"{'CPU':>8} | {'JSON':>9} {'ratio':>6} {'peak':>7} {'CPU':>8} | "
            f"{'rows=1000':>11} {'peak':>7}"
        )
        for n in sizes:
            job_id = net.api("POST", "/jobs", json=SCAN)["id"]
            fill_s = fill(store, job_id, n)
            base = raw_read(store, job_id)
            with peak:
                got, secs = read_pages(net, job_id, "binary", None, n)
            assert got == n, (got, n)
            binary, binary_peak, binary_cpu = got / secs, peak.peak, peak.cpu / got * 1e6
            n_json = min(n, args.json_max)
            with peak:
                first = T0 + (n - n_json) * STEP_S - STEP_S / 2 if n_json < n else None
                got, secs = read_pages(net, job_id, "json", first, n_json)
            assert got == n_json, (got, n_json)
            js, js_peak, js_cpu = got / secs, peak.peak, peak.cpu / got * 1e6
            with peak:
                rows, secs = read_held(net, job_id, 1000)
            held, held_peak = n / secs, peak.peak
            mib = 2**20
            print(
                f"{n:>9,} | {base:>9,.0f}/s | {binary:>9,.0f}/s {binary / base:>5.2f}x "
                f"{binary_peak / mib:>3.0f} MiB {binary_cpu:>5.1f} us | {js:>7,.0f}/s "
                f"{js / base:>5.2f}x {js_peak / mib:>3.0f} MiB {js_cpu:>5.0f} us | "
                f"{held:>9,.0f}/s {held_peak / mib:>3.0f} MiB"
                f"   (store filled in {fill_s:.0f} s; {rows} rows)",
                flush=True,
            )


if __name__ == "__main__":
    main()
