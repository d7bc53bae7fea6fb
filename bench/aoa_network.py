#!/usr/bin/env python3
"""Benchmark: bearing RMSE against the Cramer-Rao bound through the whole network.

A coordinator and two simulated 5-element array nodes run as real processes, once with
UCAs (radius 0.425 wavelength) and once with ULAs (half-wavelength spacing, broadside
north), both 5 km from three emitters at one place on three frequencies (433.5, 433.92 and
434.34 MHz, each outside the others' capture band), 0, 10 and 20 dB above the noise per
element in their band (QPSK, 50 kbaud). The arrays have no channel
errors, so what is measured is the estimator and everything on the way to it: the timed
multi-channel capture, the wire format, the collector, the store and the analysis. Each round
submits one AoA job (MUSIC, 0.1 s, a 200 kHz band: 25,000 snapshots) per emitter over REST;
per geometry and SNR it prints the bearing RMSE (each node's bearing against the emitter's
true azimuth from that node), the stochastic CRB at the scenario's SNR (gnuradio.drift.df),
their ratio, the mean std the results reported (both nodes) and the fix's mean error.

Not a test: it never fails on a number.

    .venv/bin/python bench/aoa_network.py [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
import pymap3d
import yaml
from gnuradio.drift import df

from drift.localnet import LocalNetwork

ORIGIN = (48.15, 11.55, 500.0)
C = 299_792_458.0
NOISE_FIGURE_DB = 6.0
SYMBOL_RATE_HZ = 50e3
BANDWIDTH_HZ = 200e3
RATE_HZ = 1.25 * BANDWIDTH_HZ
DURATION_S = 0.1
NODES = {"west": (-3000.0, 0.0), "east": (3000.0, 0.0)}
TARGET_EN = (0.0, 4000.0)
EMITTERS = {0.0: 433.5e6, 10.0: 433.92e6, 20.0: 434.34e6}  # SNR dB -> frequency


def geo(east: float, north: float) -> dict[str, float]:
    lat, lon, alt = pymap3d.enu2geodetic(east, north, 0.0, *ORIGIN)
    return {"lat": float(lat), "lon": float(lon), "alt": float(alt)}


def eirp_dbm(snr_db: float, distance_m: float, freq_hz: float) -> float:
    fspl = 20 * math.log10(4 * math.pi * distance_m * freq_hz / C)
    return snr_db + (-174 + NOISE_FIGURE_DB + 10 * math.log10(SYMBOL_RATE_HZ)) + fspl


def scenario(geometry: str) -> dict:
    size = {"radius_wl": 0.425} if geometry == "uca" else {"spacing_wl": 0.5}
    distance = math.dist(TARGET_EN, NODES["west"])
    return {
        "seed": 11,
        "propagation": {"model": "free_space"},
        "emitters": [
            {
                "id": f"snr{snr:g}",
                "position": geo(*TARGET_EN),
                "frequency_hz": f,
                "eirp_dbm": eirp_dbm(snr, distance, f),
                "waveform": {
                    "type": "psk",
                    "order": 4,
                    "symbol_rate_hz": SYMBOL_RATE_HZ,
                    "rolloff": 0.35,
                },
            }
            for snr, f in EMITTERS.items()
        ],
        "nodes": [
            {
                "id": node,
                "position": geo(*en),
                "device": "rtlsdr_v3",
                "noise_figure_db": NOISE_FIGURE_DB,
                "clock": {"source": "gps", "uncertainty_s": 2e-8},
                "array": {
                    "geometry": geometry,
                    "elements": 5,
                    "design_frequency_hz": 433.92e6,
                    **size,
                },
            }
            for node, en in NODES.items()
        ],
    }


def true_azimuth_deg(node: str) -> float:
    n, t = geo(*NODES[node]), geo(*TARGET_EN)
    e, nn, _ = pymap3d.geodetic2enu(t["lat"], t["lon"], t["alt"], n["lat"], n["lon"], n["alt"])
    return math.degrees(math.atan2(e, nn)) % 360.0


def crb_deg(net_nodes: list[dict], node: str, snr_db: float, freq_hz: float) -> float:
    """The stochastic CRB at the scenario's SNR per element over the whole capture band."""
    arr = next(n for n in net_nodes if n["name"] == node)["devices"][0]["capabilities"]["array"]
    positions_wl = np.asarray(arr["element_enu_m"]) / (C / freq_hz)
    snr = 10 ** (snr_db / 10) * SYMBOL_RATE_HZ / RATE_HZ
    n = int(round(DURATION_S * RATE_HZ))
    return float(np.ravel(df.bearing_crb_std_deg(positions_wl, true_azimuth_deg(node), snr, n))[0])


def fix_error_m(res: dict) -> float:
    p, t = res["position"], geo(*TARGET_EN)
    e, n, _ = pymap3d.geodetic2enu(t["lat"], t["lon"], t["alt"], p["lat_deg"], p["lon_deg"], 0)
    return math.hypot(e, n)


def run(geometry: str, rounds: int, workdir: Path) -> None:
    path = workdir / f"{geometry}.yaml"
    path.write_text(yaml.safe_dump(scenario(geometry)))
    with LocalNetwork(workdir / geometry, path, list(NODES)) as net:
        nodes = net.api("GET", "/nodes")
        for snr, freq in EMITTERS.items():
            errors, stds, fixes = {n: [] for n in NODES}, [], []
            for _ in range(rounds):
                t = geo(*TARGET_EN)
                job = {
                    "type": "direction_finding",
                    "method": "aoa",
                    "center_freq_hz": freq,
                    "bandwidth_hz": BANDWIDTH_HZ,
                    "area": {"lat_deg": t["lat"], "lon_deg": t["lon"], "radius_m": 5000},
                    "duration_s": DURATION_S,
                    "node_count": 2,
                }
                job_id = net.submit(job)
                done = net.wait_job(job_id, 180)
                if done["status"] != "completed":
                    print(f"  job {job_id} {done['status']}: {done.get('status_reason')}")
                    continue
                res = net.api("GET", f"/jobs/{job_id}/result")
                names = {n["node_id"]: n["name"] for n in res["nodes"]}
                for m in res["measurements"]:
                    name = names[m["node_id"]]
                    err = (m["azimuth_deg"] - true_azimuth_deg(name) + 180) % 360 - 180
                    errors[name].append(err)
                    stds.append(m["std_deg"])
                if res["usable"]:
                    fixes.append(fix_error_m(res))
            for node in NODES:
                e = np.asarray(errors[node])
                if not e.size:
                    continue
                rmse = float(np.sqrt(np.mean(e**2)))
                crb = crb_deg(nodes, node, snr, freq)
                print(
                    f"{geometry}  {snr:5.1f} dB  {node:5s}  RMSE {rmse:8.4f} deg  CRB "
                    f"{crb:8.4f} deg  RMSE/CRB {rmse / crb:6.2f}  reported std "
                    f"{np.mean(stds):8.4f} deg  fix error {np.mean(fixes) if fixes else math.nan:7.1f} m"
                    f"  ({e.size} bearings)"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="jobs per geometry and SNR [5]")
    ap.add_argument("--quick", action="store_true", help="2 rounds")
    args = ap.parse_args()
    rounds = 2 if args.quick else args.rounds
    with tempfile.TemporaryDirectory(prefix="drift-aoa-bench-") as tmp:
        for geometry in ("uca", "ula"):
            run(geometry, rounds, Path(tmp))


if __name__ == "__main__":
    main()
