#!/usr/bin/env python3
"""Benchmark: a direction-finding job through the whole network, submit to result.

A coordinator and the four simulated nodes of examples/scenarios/tdoa4.yaml run as real
processes, paced to the wall clock (``realtime=1``, as hardware streams). Each round submits a
``direction_finding`` job (TDOA, 0.5 s captures at 2.4 MS/s: a 1.92 MHz band) over REST and
splits its submit-to-result time, from the job's own record, into:

  placement         submitted -> the scheduler placed it
  waiting for start placed -> the common capture start (the dispatch lead)
  capture           the capture itself (its duration)
  delivery          capture end -> every node reported its frames delivered
  analysis          -> the result stored (the worker's CPU time beside it)

Then, in this process, the analysis's core on the stored captures: one node pair's delay
estimate (GCC-ML with its predicted std, 1.2 M samples each), against the three FFTs of the
same size that any GCC needs (the baseline, measured in the same run).

    .venv/bin/python bench/df_network.py [--rounds 3]
"""

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import fft as sfft

from drift.localnet import LocalNetwork

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "examples" / "scenarios" / "tdoa4.yaml"
JOB = {
    "type": "direction_finding",
    "center_freq_hz": 433.92e6,
    "bandwidth_hz": 1.92e6,
    "method": "tdoa",
    "area": {"lat_deg": 48.1508, "lon_deg": 11.5708, "radius_m": 5000},
    "duration_s": 0.5,
    "node_count": 4,
}
PRESTART_S = 5.0


def at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def split(job: dict, result: dict) -> dict[str, float]:
    steps = {t["to_status"]: at(t["at"]) for t in job["transitions"]}
    start = at(result["capture"]["planned_start"])
    end = start + dt.timedelta(seconds=JOB["duration_s"])
    return {
        "placement": (steps["scheduled"] - steps["pending"]).total_seconds(),
        "waiting for start": (start - steps["scheduled"]).total_seconds(),
        "capture": JOB["duration_s"],
        "delivery": (steps["analysing"] - end).total_seconds(),
        "analysis": (steps["completed"] - steps["analysing"]).total_seconds(),
        "total": (steps["completed"] - steps["pending"]).total_seconds(),
        "analysis CPU": result["analysis_cpu_s"],
    }


def pair_cost(data_dir: Path, job_id: str, node_ids: list[str]) -> tuple[float, float]:
    """Best-of-3 CPU seconds of one pair's delay estimate and of its three FFTs."""
    from gnuradio.drift import df

    from drift.orchestrator.timeseries import open_store

    store = open_store(None, data_dir)
    try:
        a, b = (store.iq_capture(job_id, n) for n in node_ids[:2])
    finally:
        store.close()
    n = min(a.samples.size, b.samples.size)
    xa, xb = a.samples[:n], b.samples[:n]
    nfft = sfft.next_fast_len(2 * n)

    def best(fn) -> float:
        times = []
        for _ in range(3):
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
        return min(times)

    gcc = best(
        lambda: df.estimate_delay(xa, xb, a.sample_rate_hz, weighting="ml", max_delay_s=1e-4)
    )
    ffts = best(lambda: sfft.ifft(sfft.fft(xa, nfft) * np.conj(sfft.fft(xb, nfft))))
    return gcc, ffts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as d:
        # four nodes launching GNU Radio at once on this machine's cores take longer than
        # one node on its own machine: they launch 5 s ahead, and the coordinator plans 6 s
        with LocalNetwork(
            Path(d) / "net",
            SCENARIO,
            ["n1", "n2", "n3", "n4"],
            device_options=",realtime=1",
            node_options={"capture_prestart_s": PRESTART_S},
            env={"DRIFT_CAPTURE_LEAD_S": str(PRESTART_S + 1)},
        ) as net:
            for k in range(args.rounds):
                job_id = net.submit(JOB)
                job = net.wait_job(job_id, 300)
                if job["status"] != "completed":
                    raise SystemExit(f"round {k}: job {job['status']}: {job['status_reason']}")
                result = net.api("GET", f"/jobs/{job_id}/result")
                rows.append(split(job, result))
                err = result["ellipse_95"]["semi_major_m"]
                print(f"round {k + 1}: {rows[-1]['total']:.2f} s, 95 % ellipse {err:.1f} m")
            ids = [n["node_id"] for n in result["nodes"]]
            gcc, ffts = pair_cost(net.workdir / "coordinator", job_id, ids)
    print(f"\nsubmit to result, {args.rounds} rounds (4 nodes, 0.5 s at 2.4 MS/s):")
    print(f"{'step':<18} {'median s':>9} {'min s':>7} {'max s':>7}")
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(f"{key:<18} {statistics.median(values):9.3f} {min(values):7.3f} {max(values):7.3f}")
    print(
        f"\nanalysis per node pair (1.2 M samples each): GCC-ML {gcc:.3f} s CPU; its three "
        f"FFTs alone {ffts:.3f} s; ratio {gcc / ffts:.2f}"
    )


if __name__ == "__main__":
    main()
