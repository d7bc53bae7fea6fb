#!/usr/bin/env python3
"""Benchmark: simulator synthesis throughput (MS/s on one core) for 1, 5 and 20 emitters.

Emitters cycle through the waveform types (psk, noise, fm with noise audio, chirp, ofdm,
cw), all inside the band, with thermal noise and ADC quantization, as
drift.sim.synth.NodeReceiver makes them: with gr-drift's C++ synthesis (the default), and with
the numpy reference (synth.USE_KERNELS = False) in the same process, on shorter runs (it is
slow). 0 emitters is the thermal noise and the ADC alone.

The cases take turns: each round runs every case once, so a change in the machine's speed
(on a shared machine it moves by a third within seconds) meets all of them alike. Each figure
is the best of --repeat rounds; "block" is the best single call of 65,536 samples in them
(what the code does when the machine's other work leaves the core alone). The last table
runs the 5-emitter case with each instruction set the kernels have for this CPU, in turns,
as ratios to the slowest; the one before it, the same case as a GNU Radio source block in a
flowgraph; before that, one OFDM emitter, and one PSK emitter by samples a symbol (the pulse
train's cost is per symbol). Not a test.

    .venv/bin/python bench/sim.py [--seconds 0.5] [--ref-samples 131072] [--repeat 3]
"""

import argparse
import contextlib
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core: no BLAS helper threads

from gnuradio import drift  # noqa: E402

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
RATES = (2.4e6, 20e6)


def scenario(n_emitters, rate, waveforms=WAVEFORMS):
    lines = ["seed: 1", "emitters:"]
    for i in range(n_emitters):
        f = 433e6 + (i - n_emitters / 2) * rate * 0.6 / max(n_emitters, 1)
        wave = waveforms[i % len(waveforms)] % {"bw": rate / 40}
        lines += [
            f"  - id: e{i}",
            f"    position: {{lat: 48.1, lon: 11.5{i:02d}, alt: 10}}",
            f"    frequency_hz: {f}",
            "    eirp_dbm: 10",
            f"    waveform: {wave}",
        ]
    if not n_emitters:
        lines[-1] = "emitters: []"
    lines += [
        "nodes:",
        "  - id: n",
        "    position: {lat: 48.2, lon: 11.6, alt: 500}",
        "    device: usrp_b210",
    ]
    return parse_scenario("\n".join(lines))


class Case:
    """One receiver, run `total` samples at a time; the best whole run and the best call."""

    def __init__(self, n_emitters, rate, total, kernels=True, waveforms=WAVEFORMS, isa=None):
        self.kernels, self.isa, self.total = kernels, isa, total
        self.best = self.block = 0.0
        with self._setup():
            self.rx = NodeReceiver(scenario(n_emitters, rate, waveforms), "n", rate, 433e6)
            self.rx.samples(0, 1024, 1_764_000_000, 0.0)  # tables and caches

    @contextlib.contextmanager
    def _setup(self):
        before = drift.sim_isa()  # DRIFT_SIM_ISA's choice, or the fastest
        synth.USE_KERNELS = self.kernels
        if self.isa:
            drift.sim_set_isa(self.isa)
        try:
            yield
        finally:
            synth.USE_KERNELS = True
            drift.sim_set_isa(before)

    def run(self):
        with self._setup():
            t0 = time.perf_counter()
            for start in range(0, self.total, CHUNK):
                n = min(CHUNK, self.total - start)
                t1 = time.perf_counter()
                self.rx.samples(start, n, 1_764_000_000, 0.0)
                self.block = max(self.block, n / (time.perf_counter() - t1) / 1e6)
            self.best = max(self.best, self.total / (time.perf_counter() - t0) / 1e6)


def flowgraph_msps(rate, n):
    """MS/s of a flowgraph sim_source -> head(n) -> null_sink (5 emitters)."""
    from gnuradio import blocks, gr

    from drift.sim.source import sim_source

    tb = gr.top_block()
    src = sim_source(scenario(5, rate), "n", rate, 433e6, start_time=1_764_000_000)
    tb.connect(src, blocks.head(gr.sizeof_gr_complex, n), blocks.null_sink(gr.sizeof_gr_complex))
    t0 = time.perf_counter()
    tb.run()
    return n / (time.perf_counter() - t0) / 1e6


def one_emitter_table(args, column, fmt, keys, wave):
    """One emitter alone (with the noise), its waveform's YAML wave(rate, key) for each key,
    C++ against numpy in turns, at both rates."""
    print(f"{'rate':>10} | {column:>11} | {'C++':>8} | {'numpy':>7} | {'x':>6}")
    cases = {}
    for rate in RATES:
        for key in keys:
            waves = [wave(rate, key)]
            cases[rate, key] = (
                Case(1, rate, int(args.seconds * rate), waveforms=waves),
                Case(1, rate, args.ref_samples // 4, kernels=False, waveforms=waves),
            )
    rounds([c for pair in cases.values() for c in pair], args.repeat)
    for (rate, key), (case, numpy) in cases.items():
        print(
            f"{rate / 1e6:>5.1f} MS/s | {fmt.format(key)} | {case.best:>8.2f} | "
            f"{numpy.best:>7.3f} | {case.best / numpy.best:>5.0f}x"
        )


def rounds(cases, repeat):
    """Every case once a round, `repeat` rounds."""
    for _ in range(repeat):
        for case in cases:
            case.run()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--seconds", type=float, default=0.5, help="simulated seconds per case (C++ synthesis)"
    )
    ap.add_argument(
        "--ref-samples", type=int, default=1 << 17, help="samples per case for the numpy reference"
    )
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the best counts")
    args = ap.parse_args()
    if not synth.USE_KERNELS:
        raise SystemExit("gr-drift's simulator kernels are missing (run scripts/bootstrap)")
    counts = (0, 1, 5, 20)
    fast = {(r, n): Case(n, r, int(args.seconds * r)) for r in RATES for n in counts}
    ref = {(r, n): Case(n, r, args.ref_samples, kernels=False) for r in RATES for n in counts}
    rounds(list(fast.values()), args.repeat)
    rounds(list(ref.values()), args.repeat)
    print(
        f"drift.sim synthesis, MS/s on one core ({drift.sim_isa()} kernels): gr-drift C++ "
        "(numpy reference, speed-up)"
    )
    print(
        f"{'rate':>10} | {'emitters':>8} | {'C++':>8} | {'block':>8} | {'numpy':>7} | "
        f"{'x':>6} | {'x real time':>11}"
    )
    for (rate, n), case in fast.items():
        numpy = ref[rate, n].best
        print(
            f"{rate / 1e6:>5.1f} MS/s | {n:>8} | {case.best:>8.2f} | {case.block:>8.2f} | "
            f"{numpy:>7.3f} | {case.best / numpy:>5.0f}x | {case.best * 1e6 / rate:>10.2f}x"
        )

    print(
        "\none OFDM emitter, 15 kHz subcarriers (at 2.4 MS/s, 160 of them: an inverse FFT "
        "a symbol; at 20 MS/s Taylor polynomials on a grid for 64, the chirp-z transform "
        "for 1,200)"
    )
    one_emitter_table(
        args,
        "subcarriers",
        "{:>11}",
        (64, 1200),
        lambda rate, k: f"{{type: ofdm, subcarriers: {k}, spacing_hz: 15e3}}",
    )

    print(
        "\none QPSK emitter (roll-off 0.35) by samples a symbol: down to 0.25, a segment's "
        "symbols\nat once; below, a symbol at a time (tdoa4.yaml's 740 kbaud at 2.4 MS/s: 3.24)"
    )
    one_emitter_table(
        args,
        "samples/sym",
        "{:>11.2f}",
        (40.0, 8.0, 3.24, 1.6, 0.8, 0.4, 0.2),
        lambda rate, sps: f"{{type: psk, order: 4, symbol_rate_hz: {rate / sps}, rolloff: 0.35}}",
    )

    print(
        "\n5 emitters through drift.sim.source.sim_source in a GNU Radio flowgraph "
        "(-> head -> null sink), against the synthesis called directly (the table above)"
    )
    print(f"{'rate':>10} | {'flowgraph':>9} | {'direct':>8} | {'x':>6}")
    for rate in RATES:
        best = max(flowgraph_msps(rate, int(args.seconds * rate)) for _ in range(args.repeat))
        direct = fast[rate, 5].best
        print(f"{rate / 1e6:>5.1f} MS/s | {best:>9.2f} | {direct:>8.2f} | {best / direct:>5.2f}x")

    isas = drift.sim_isas()
    print(
        "\n5 emitters by instruction set, in turns (MS/s; block: the best call; x: to the "
        f"slowest, {isas[-1]})"
    )
    print(f"{'rate':>10} | {'set':>9} | {'C++':>8} | {'block':>8} | {'x':>6}")
    by_isa = {(r, i): Case(5, r, int(args.seconds * r / 5), isa=i) for r in RATES for i in isas}
    rounds(list(by_isa.values()), args.repeat)
    for (rate, isa), case in by_isa.items():
        slowest = by_isa[rate, isas[-1]].best
        print(
            f"{rate / 1e6:>5.1f} MS/s | {isa:>9} | {case.best:>8.2f} | {case.block:>8.2f} | "
            f"{case.best / slowest:>5.1f}x"
        )


if __name__ == "__main__":
    main()
