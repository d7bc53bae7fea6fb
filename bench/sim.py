#!/usr/bin/env python3
"""Benchmark: simulator synthesis throughput (MS/s on one core) for 1, 5 and 20 emitters.

Emitters cycle through the waveform types (psk, noise, fm with noise audio, chirp, ofdm,
cw), all inside the band, with thermal noise and ADC quantization, as
drift.sim.synth.NodeReceiver makes them: with gr-drift's C++ synthesis (the default), and with
the numpy reference (synth.USE_KERNELS = False) in the same process, on shorter runs (it is
slow). 0 emitters is the thermal noise and the ADC alone. Each figure is the best of
--repeat runs; "block" is the best single call of 65,536 samples in them (what the code does
when the shared machine's other work leaves the core alone). Not a test.

    .venv/bin/python bench/sim.py [--seconds 0.5] [--ref-samples 131072] [--repeat 3]
"""

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core: no BLAS helper threads

from drift.sim import synth  # noqa: E402
from drift.sim.scenario import parse_scenario  # noqa: E402
from drift.sim.synth import NodeReceiver  # noqa: E402

WAVEFORMS = [
    "{type: psk, order: 4, symbol_rate_hz: %(bw)s, rolloff: 0.35}",
    "{type: noise, bandwidth_hz: %(bw)s}",
    "{type: fm, audio: noise, deviation_hz: 5e3, audio_bandwidth_hz: 3e3}",
    "{type: chirp, bandwidth_hz: %(bw)s, period_s: 1e-3}",
    "{type: ofdm, subcarriers: 64, spacing_hz: 15e3}",
    "{type: cw}",
]
CHUNK = 1 << 16


def scenario(n_emitters, rate, waveforms=WAVEFORMS):
    lines = ["seed: 1", "emitters:"]
    for i in range(n_emitters):
        f = 433e6 + (i - n_emitters / 2) * rate * 0.6 / max(n_emitters, 1)
        wave = waveforms[i % len(waveforms)] % {"bw": rate / 40}
        lines += [f"  - id: e{i}", f"    position: {{lat: 48.1, lon: 11.5{i:02d}, alt: 10}}",
                  f"    frequency_hz: {f}", "    eirp_dbm: 10", f"    waveform: {wave}"]
    if not n_emitters:
        lines[-1] = "emitters: []"
    lines += ["nodes:", "  - id: n", "    position: {lat: 48.2, lon: 11.6, alt: 500}",
              "    device: usrp_b210"]
    return parse_scenario("\n".join(lines))


def rate_msps(n_emitters, rate, total, kernels, repeat, waveforms=WAVEFORMS):
    """MS/s: the best of `repeat` runs (the machine's other work only ever slows a run down),
    and the best single call in them."""
    synth.USE_KERNELS = kernels
    try:
        rx = NodeReceiver(scenario(n_emitters, rate, waveforms), "n", rate, 433e6)
        rx.samples(0, 1024, 1_764_000_000, 0.0)  # tables and caches
        best = block = 0.0
        for _ in range(repeat):
            t0 = time.perf_counter()
            for start in range(0, total, CHUNK):
                n = min(CHUNK, total - start)
                t1 = time.perf_counter()
                rx.samples(start, n, 1_764_000_000, 0.0)
                block = max(block, n / (time.perf_counter() - t1) / 1e6)
            best = max(best, total / (time.perf_counter() - t0) / 1e6)
        return best, block
    finally:
        synth.USE_KERNELS = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.5,
                    help="simulated seconds per case (C++ synthesis)")
    ap.add_argument("--ref-samples", type=int, default=1 << 17,
                    help="samples per case for the numpy reference")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case; the best counts")
    args = ap.parse_args()
    if not synth.USE_KERNELS:
        raise SystemExit("gr-drift's simulator kernels are missing (run scripts/bootstrap)")
    print("drift.sim synthesis, MS/s on one core: gr-drift C++ (numpy reference, speed-up)")
    print(f"{'rate':>10} | {'emitters':>8} | {'C++':>8} | {'block':>8} | {'numpy':>7} | "
          f"{'x':>6} | {'x real time':>11}")
    for rate in (2.4e6, 20e6):
        for n in (0, 1, 5, 20):
            fast, block = rate_msps(n, rate, int(args.seconds * rate), True, args.repeat)
            ref, _ = rate_msps(n, rate, args.ref_samples, False, args.repeat)
            print(f"{rate / 1e6:>5.1f} MS/s | {n:>8} | {fast:>8.2f} | {block:>8.2f} | "
                  f"{ref:>7.3f} | {fast / ref:>5.0f}x | {fast * 1e6 / rate:>10.2f}x")
    print("\none OFDM emitter, 15 kHz subcarriers (at 2.4 MS/s, 160 of them: an inverse FFT "
          "a symbol; at 20 MS/s Horner's rule for few, the chirp-z transform for many)")
    print(f"{'rate':>10} | {'subcarriers':>11} | {'C++':>8} | {'numpy':>7} | {'x':>6}")
    for rate in (2.4e6, 20e6):
        for k in (64, 1200):
            wave = [f"{{type: ofdm, subcarriers: {k}, spacing_hz: 15e3}}"]
            fast, _ = rate_msps(1, rate, int(args.seconds * rate), True, args.repeat, wave)
            ref, _ = rate_msps(1, rate, args.ref_samples // 4, False, args.repeat, wave)
            print(f"{rate / 1e6:>5.1f} MS/s | {k:>11} | {fast:>8.2f} | {ref:>7.3f} | "
                  f"{fast / ref:>5.0f}x")


if __name__ == "__main__":
    main()
