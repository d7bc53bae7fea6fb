"""`make demo`: the whole network on one machine, end to end.

Starts the coordinator and one node agent per simulated receiver of a bundled scenario (separate
processes), submits a ``spectrum_scan`` over REST, waits for it, reads every node's detections
(which its flowgraph made on every sweep) and spectrum back over REST, reports what each node
found against the scenario's truth at its antenna, writes a waterfall PNG per node, and shuts
everything down.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from drift.localnet import LocalNetwork
from drift.orchestrator.detections import NodeDetection

DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "examples" / "scenarios" / "city.yaml"


def stitch(frames: list[dict[str, Any]]) -> tuple[np.ndarray, list[tuple[float, np.ndarray]]]:
    """One node's PSD frames (one per hop, time order) -> frequency axis and stitched sweeps.

    Each bin is taken from the hop whose centre is nearest to it, which is the central usable
    share of each hop: the hop plan spaces hops by exactly that share.
    """
    if not frames:
        raise ValueError("no frames")
    centres = sorted({f["center_freq_hz"] for f in frames})
    bin_hz = frames[0]["bin_hz"]
    sweeps: list[list[dict[str, Any]]] = []
    for f in frames:
        if not sweeps or f["center_freq_hz"] <= sweeps[-1][-1]["center_freq_hz"]:
            sweeps.append([])
        sweeps[-1].append(f)
    mids = [(a + b) / 2 for a, b in zip(centres, centres[1:], strict=False)]
    half = (centres[1] - centres[0]) / 2 if len(centres) > 1 else np.inf
    edges = [centres[0] - half, *mids, centres[-1] + half]
    axis_parts = []
    for i, c in enumerate(centres):
        n = len(frames[0]["psd_db"])
        f = c + (np.arange(n) - n // 2) * bin_hz
        axis_parts.append(f[(f >= edges[i]) & (f < edges[i + 1])])
    freqs = np.concatenate(axis_parts)
    out = []
    for sweep in sweeps:
        by_centre = {f["center_freq_hz"]: f for f in sweep}
        if len(by_centre) != len(centres):
            continue  # an incomplete sweep (the job ended in it)
        rows = []
        for i, c in enumerate(centres):
            psd = np.array([-np.inf if v is None else v for v in by_centre[c]["psd_db"]])
            n = len(psd)
            f = c + (np.arange(n) - n // 2) * bin_hz
            rows.append(psd[(f >= edges[i]) & (f < edges[i + 1])])
        out.append((sweep[0]["time_unix_s"], np.concatenate(rows)))
    return freqs, out


def compare(truth: list[dict[str, Any]], found: list[NodeDetection]) -> list[dict[str, Any]]:
    """Each emitter of the truth table against the strongest detection near it."""
    rows = []
    for t in truth:
        near = [d for d in found if abs(d.center_freq_hz - t["frequency_hz"]) < 200e3]
        best = max(near, key=lambda d: d.power_dbm) if near else None
        rows.append({**t, "found": best})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="drift-demo", description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default=str(DEFAULT_SCENARIO))
    p.add_argument("--nodes", default="n1,n2,n3,n4", help="scenario node ids to run [n1..n4]")
    p.add_argument("--start", type=float, default=430e6)
    p.add_argument("--stop", type=float, default=440e6)
    p.add_argument("--bin", type=float, default=5e3)
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument(
        "--interval",
        type=float,
        default=2.0,
        help="seconds a sweep takes [2]: a longer dwell per hop catches the bursty "
        "link's 0.3 s bursts in every sweep",
    )
    p.add_argument("--out", default="var/demo", help="where logs and PNGs go [var/demo]")
    args = p.parse_args(argv)

    from drift.scan import render_waterfall
    from drift.sim import load_scenario
    from drift.sim.render import truth_table
    from drift.sim.synth import full_scale_dbm

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    node_ids = args.nodes.split(",")
    scn = load_scenario(args.scenario)
    t0 = time.monotonic()
    print(
        f"==> starting the coordinator and {len(node_ids)} simulated nodes "
        f"({', '.join(node_ids)}) of {Path(args.scenario).name}; logs in {out}/net"
    )
    with LocalNetwork(out / "net", args.scenario, node_ids) as net:
        print(
            f"    coordinator {net.base} (API docs at {net.base}/docs), collector "
            f"tcp://127.0.0.1:{net.collector_port}; all nodes online after "
            f"{time.monotonic() - t0:.1f} s"
        )
        job = {
            "type": "spectrum_scan",
            "start_freq_hz": args.start,
            "stop_freq_hz": args.stop,
            "bin_hz": args.bin,
            "interval_s": args.interval,
            "duration_s": args.duration,
            "node_count": len(node_ids),
        }
        print(f"==> POST /api/v1/jobs {job}")
        job_id = net.submit(job)
        seen = []

        def progress(j):
            if j["status"] not in seen:
                seen.append(j["status"])
                print(
                    f"    {time.monotonic() - t0:6.1f} s  job {job_id[:8]}: {j['status']}",
                    flush=True,
                )

        final = net.wait_job(job_id, timeout_s=600, progress=progress)
        if final["status"] != "completed":
            print(f"job {final['status']}: {final.get('reason') or final}", file=sys.stderr)
            return 1
        print(
            "==> GET /api/v1/jobs/{job_id}/detections and /api/v1/spectrum/{job_id}: what "
            "each node found, against the truth at its antenna"
        )
        for node in node_ids:
            frames = net.spectrum(job_id, node)
            freqs, sweeps = stitch(frames)
            page = net.api(
                "GET",
                f"/jobs/{job_id}/detections",
                params={"node_id": net.node_uuid[node], "limit": 10000},
            )
            found = [NodeDetection.model_validate(d) for d in page["detections"]]
            truth = truth_table(scn, node)
            model = next(n for n in scn.nodes if n.id == node)
            fs = full_scale_dbm(model)
            strongest = max(t["power_dbm"] for t in truth)
            print(
                f"\n  node {node} ({model.device}, {model.model.adc_bits}-bit ADC, full scale "
                f"{fs:.1f} dBm): {len(frames)} frames, {len(sweeps)} sweeps, "
                f"{len(found)} detections"
            )
            if strongest > fs - 3:
                print(
                    f"  ! the strongest emitter ({strongest:.1f} dBm) overloads this "
                    "receiver's ADC: clipping spreads power and hides weaker signals "
                    "(a real operator lowers the gain: the job's gain_db)"
                )
            print(
                f"  {'emitter':<12} {'type':<6} {'MHz':>9} {'dBm':>6} | {'found MHz':>10} "
                f"{'dBm':>6} {'error':>6} {'SNR dB':>6}"
            )
            for row in compare(truth, found):
                line = (
                    f"  {row['id']:<12} {row['waveform']:<6} "
                    f"{row['frequency_hz'] / 1e6:9.3f} {row['power_dbm']:6.1f} | "
                )
                d = row["found"]
                if d is None:
                    print(line + "below the noise" if row["power_dbm"] < -120 else line + "missed")
                    continue
                err = d.power_dbm - row["power_dbm"]
                note = (
                    f"  (on {row['duty_cycle']:.0%} of the time)" if row["duty_cycle"] < 1 else ""
                )
                print(
                    line + f"{d.center_freq_hz / 1e6:10.4f} {d.power_dbm:6.1f} {err:+6.1f} "
                    f"{d.snr_db:6.1f}{note}"
                )
            png = out / f"waterfall-{node}.png"
            render_waterfall(
                str(png), freqs, sweeps, found, title=f"DRIFT job {job_id[:8]}, node {node}"
            )
            print(f"  waterfall: {png}")
        print(f"\n==> done in {time.monotonic() - t0:.1f} s; shutting down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
