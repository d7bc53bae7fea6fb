#!/usr/bin/env python3
"""Benchmark: drift.psd against GNU Radio's stock PSD chain and scipy.signal.welch.

Same input, same process, same run:
  drift   drift.psd(fft_size, n_avg, rate)
  stock   stream_to_vector -> fft_vcc (window, shift) -> complex_to_mag_squared
          -> integrate_ff(n_avg) -> nlog10_ff
  scipy   scipy.signal.welch(scaling='density', return_onesided=False) on a NumPy array

Two figures per GNU Radio chain:
  core MS/s  samples / the chain's own work() time (GNU Radio's performance counters, summed
             over the chain's blocks): what one core sustains, without the feeding blocks.
  wall MS/s  samples / wall time of the whole flowgraph, fed by null_source -> head (the feed
             itself tops out near 300 MS/s here, so this saturates).
  1-core     the same, with every thread of the process pinned to one core and GNU Radio's
             default buffers: what a flowgraph gets on a busy single core.
  bare FFTW  fft_vcc without a window (FFTW through gr::fft, plus its input copy): the floor
             that any FFT-based PSD pays per sample.
Best of --repeat runs. Not a test: it never fails on a time.

    .venv/bin/python bench/psd.py [--samples 40e6] [--repeat 3] [--n-avg 100]
"""

import argparse
import os
import time

# Performance counters must be on before GNU Radio starts.
os.environ.setdefault("GR_CONF_PERFCOUNTERS_ON", "True")
os.environ.setdefault("GR_CONF_PERFCOUNTERS_CLOCK", "thread")

import numpy as np  # noqa: E402
from gnuradio import blocks, drift, fft, gr  # noqa: E402
from scipy import signal  # noqa: E402

BUFFER_ITEMS = 65536


def run_graph(chain, n_samples, vlen, big_buffers=True):
    """(core MS/s, wall MS/s) for one run of a chain fed by null_source -> head."""
    tb = gr.top_block()
    src = blocks.null_source(gr.sizeof_gr_complex)
    head = blocks.head(gr.sizeof_gr_complex, int(n_samples))
    if big_buffers:
        head.set_min_output_buffer(BUFFER_ITEMS)
    members = chain(tb)
    tb.connect(src, head, members[0])
    tb.connect(members[-1], blocks.null_sink(gr.sizeof_float * vlen))
    t0 = time.perf_counter()
    tb.run()
    wall = time.perf_counter() - t0
    work_ns = sum(b.pc_work_time_total() for b in members)
    return n_samples / work_ns * 1e3, n_samples / wall / 1e6


def drift_chain(fft_size, n_avg, rate):
    def build(tb):
        return [drift.psd(fft_size, n_avg, rate)]

    return build


def stock_chain(fft_size, n_avg, rate):
    def build(tb):
        win = fft.window.build(fft.window.WIN_BLACKMAN_HARRIS, fft_size)
        k = -10 * np.log10(n_avg * rate * float(np.sum(np.square(win))))
        chain = [
            blocks.stream_to_vector(gr.sizeof_gr_complex, fft_size),
            fft.fft_vcc(fft_size, True, win, True, 1),
            blocks.complex_to_mag_squared(fft_size),
            blocks.integrate_ff(n_avg, fft_size),
            blocks.nlog10_ff(10, fft_size, k),
        ]
        tb.connect(*chain)
        return chain

    return build


def bare_fft(fft_size):
    def build(tb):
        s2v = blocks.stream_to_vector(gr.sizeof_gr_complex, fft_size)
        f = fft.fft_vcc(fft_size, True, [], False, 1)
        mag = blocks.complex_to_mag_squared(fft_size)
        tb.connect(s2v, f, mag)
        return [s2v, f, mag]

    return build


def run_fft_only(fft_size, n_samples):
    """Core MS/s of fft_vcc alone (no window, no shift): FFTW's cost per sample."""
    tb = gr.top_block()
    head = blocks.head(gr.sizeof_gr_complex, int(n_samples))
    head.set_min_output_buffer(BUFFER_ITEMS)
    members = bare_fft(fft_size)(tb)
    tb.connect(blocks.null_source(gr.sizeof_gr_complex), head, members[0])
    tb.connect(members[-1], blocks.null_sink(gr.sizeof_float * fft_size))
    tb.run()
    return n_samples / members[1].pc_work_time_total() * 1e3


def scipy_welch(x, fft_size, rate):
    win = np.asarray(fft.window.build(fft.window.WIN_BLACKMAN_HARRIS, fft_size))
    t0 = time.perf_counter()
    signal.welch(
        x,
        fs=rate,
        window=win,
        nperseg=fft_size,
        noverlap=0,
        return_onesided=False,
        scaling="density",
        detrend=False,
    )
    return x.size / (time.perf_counter() - t0) / 1e6


def best(repeat, fn, *args, **kwargs):
    """Element-wise best (highest MS/s) of `repeat` runs of fn(*args, **kwargs)."""
    runs = [fn(*args, **kwargs) for _ in range(repeat)]
    return tuple(max(r[i] for r in runs) for i in range(len(runs[0])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=float, default=40e6, help="samples per GNU Radio run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (best is kept)")
    ap.add_argument("--n-avg", type=int, default=100)
    args = ap.parse_args()
    rate = 2.4e6
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(1 << 22) + 1j * rng.standard_normal(1 << 22)).astype(np.complex64)
    print(
        f"drift.psd vs the stock GNU Radio chain vs scipy.signal.welch: n_avg={args.n_avg}, "
        f"{args.samples / 1e6:g} M samples per run, best of {args.repeat}"
    )
    print(
        f"{'fft':>5} | {'drift core':>10} {'stock core':>10} {'ratio':>6} | "
        f"{'drift wall':>10} {'stock wall':>10} {'ratio':>6} | {'scipy':>7} {'drift/scipy':>11}"
    )
    results = {}
    for fft_size in (1024, 4096):
        d = best(
            args.repeat, run_graph, drift_chain(fft_size, args.n_avg, rate), args.samples, fft_size
        )
        s = best(
            args.repeat, run_graph, stock_chain(fft_size, args.n_avg, rate), args.samples, fft_size
        )
        w = max(scipy_welch(x, fft_size, rate) for _ in range(args.repeat))
        results[fft_size] = d, s
        print(
            f"{fft_size:>5} | {d[0]:>10.1f} {s[0]:>10.1f} {d[0] / s[0]:>5.2f}x | "
            f"{d[1]:>10.1f} {s[1]:>10.1f} {d[1] / s[1]:>5.2f}x | {w:>7.1f} {d[0] / w:>10.2f}x"
        )
    print()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(
        f"{'fft':>5} | {'drift 1-core':>12} {'stock 1-core':>12} {'ratio':>6} | "
        f"{'bare FFTW core':>14} {'drift/bare':>10}"
    )
    for fft_size in (1024, 4096):
        d1 = best(
            args.repeat,
            run_graph,
            drift_chain(fft_size, args.n_avg, rate),
            args.samples,
            fft_size,
            big_buffers=False,
        )
        s1 = best(
            args.repeat,
            run_graph,
            stock_chain(fft_size, args.n_avg, rate),
            args.samples,
            fft_size,
            big_buffers=False,
        )
        fft_only = max(run_fft_only(fft_size, args.samples) for _ in range(args.repeat))
        print(
            f"{fft_size:>5} | {d1[1]:>12.1f} {s1[1]:>12.1f} {d1[1] / s1[1]:>5.2f}x | "
            f"{fft_only:>14.1f} {results[fft_size][0][0] / fft_only:>9.2f}x"
        )
    print(
        "(MS/s. core: samples per second of the chain's own work() time; wall: end to end "
        "with 64k-item buffers on all cores; 1-core: end to end pinned to one core)"
    )


if __name__ == "__main__":
    main()
