#!/usr/bin/env python3
"""Benchmark: simulator synthesis throughput (MS/s on one core) for 1, 5 and 20 emitters.

Emitters cycle through the waveform types (psk, noise, fm, chirp, ofdm, cw), all inside the
band, with thermal noise and ADC quantization, as drift.sim.synth.NodeReceiver makes them.
The baseline in the same run is the cost of the thermal noise alone (0 emitters). Not a test.

    .venv/bin/python bench/sim.py [--seconds 0.5]
"""

import argparse
import time

from drift.sim.scenario import parse_scenario
from drift.sim.synth import NodeReceiver

WAVEFORMS = [
    "{type: psk, order: 4, symbol_rate_hz: %(bw)s, rolloff: 0.35}",
    "{type: noise, bandwidth_hz: %(bw)s}",
    "{type: fm, audio: noise, deviation_hz: 5e3, audio_bandwidth_hz: 3e3}",
    "{type: chirp, bandwidth_hz: %(bw)s, period_s: 1e-3}",
    "{type: ofdm, subcarriers: 64, spacing_hz: 15e3}",
    "{type: cw}",
]


def scenario(n_emitters, rate):
    lines = ["seed: 1", "emitters:"]
    for i in range(n_emitters):
        f = 433e6 + (i - n_emitters / 2) * rate * 0.6 / max(n_emitters, 1)
        wave = WAVEFORMS[i % len(WAVEFORMS)] % {"bw": rate / 40}
        lines += [f"  - id: e{i}", f"    position: {{lat: 48.1, lon: 11.5{i:02d}, alt: 10}}",
                  f"    frequency_hz: {f}", "    eirp_dbm: 10", f"    waveform: {wave}"]
    if not n_emitters:
        lines[-1] = "emitters: []"
    lines += ["nodes:", "  - id: n", "    position: {lat: 48.2, lon: 11.6, alt: 500}",
              "    device: usrp_b210"]
    return parse_scenario("\n".join(lines))


def rate_msps(n_emitters, rate, seconds):
    rx = NodeReceiver(scenario(n_emitters, rate), "n", rate, 433e6)
    chunk = 1 << 16
    total = int(seconds * rate)
    t0 = time.perf_counter()
    for start in range(0, total, chunk):
        rx.samples(start, min(chunk, total - start), 1_764_000_000, 0.0)
    return total / (time.perf_counter() - t0) / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="simulated seconds per case")
    args = ap.parse_args()
    print("drift.sim synthesis (numpy, with gr-drift C++ kernels for noise and pulse trains), "
          "MS/s on one core, and x real time")
    print(f"{'rate':>9} | {'0 (noise)':>10} | {'1 emitter':>10} {'5 emitters':>11} "
          f"{'20 emitters':>12} | {'5: x real time':>14}")
    for rate in (2.4e6, 20e6):
        base = rate_msps(0, rate, args.seconds)
        r = [rate_msps(n, rate, args.seconds) for n in (1, 5, 20)]
        print(f"{rate / 1e6:>6.1f} MS/s | {base:>10.2f} | {r[0]:>10.2f} {r[1]:>11.2f} "
              f"{r[2]:>12.2f} | {r[1] * 1e6 / rate:>13.2f}x")


if __name__ == "__main__":
    main()
