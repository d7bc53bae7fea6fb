#!/usr/bin/env python3
"""Benchmark: the DF library (gnuradio.drift.df) against its Cramer-Rao bounds.

Tables (Monte Carlo, seeded):
  1. TDOA delay RMSE / CRB over SNR (flat band, complex baseband, fractional delays applied in
     the frequency domain) for N = 1024 and 4096, weightings plain and PHAT; the outlier
     rate (|error| > 5 CRB std or > 0.5 sample) and the mean predicted std / RMSE.
  2. Bearing RMSE / CRB (stochastic CRB) for a ULA (M=5, d=lambda/2) and a UCA (M=5,
     r=0.425 lambda), Bartlett, MVDR and MUSIC, over SNR, N = 64 and 1024 snapshots.
  The threshold SNR is the lowest SNR from which RMSE / CRB stays <= 1.5 at every higher SNR.
  3. TDOA localization error percentiles for a 4-node geometry (20 ns TDOA errors), and
     end to end: delays from GCC on synthesized captures, their predicted std into the solver.
  4. The delay estimator's throughput (MS/s of each input channel, one thread): Python
     (df.estimate_delay) and C++ (drift.gcc_delay, and the drift.tdoa block in a flowgraph).
Not a test: it never fails on a number.

    .venv/bin/python bench/df.py [--quick] [--seed 1]
"""

import argparse
import time

import numpy as np
from gnuradio.drift import df

try:
    from gnuradio import drift
    drift.gcc_delay  # noqa: B018 - the C++ estimator of a full gr-drift build
except (ImportError, AttributeError):  # pragma: no cover
    drift = None

RATIO_OK = 1.5


def cnoise(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def threshold(snrs, ratios):
    """Lowest SNR from which every ratio at it and above is <= RATIO_OK (None if never)."""
    ok = np.asarray(ratios) <= RATIO_OK
    for i in range(len(snrs)):
        if ok[i:].all():
            return snrs[i]
    return None


def fmt_thr(t):
    return "none" if t is None else f"{t:g} dB"


def bench_tdoa(rng, trials, snrs):
    print("\n## 1. TDOA delay: RMSE / CRB (flat band = sample rate)")
    print(f"{trials} trials per row; CRB = 3(1+2g)/(2 pi^2 N g^2); 'pred' = mean predicted std / RMSE")
    head = f"{'N':>5} {'SNR dB':>7} {'CRB smp':>9} | {'plain':>7} {'out %':>6} {'pred':>5} | {'phat':>7} {'out %':>6} {'pred':>5}"
    print(head)
    print("-" * len(head))
    thresholds = {}
    for n in (1024, 4096):
        f = np.fft.fftfreq(n)
        ratios = {"plain": [], "phat": []}
        for snr_db in snrs:
            g = 10 ** (snr_db / 10)
            crb = np.sqrt(df.delay_crb_flat(g, n))
            errs = {"plain": [], "phat": []}
            preds = {"plain": [], "phat": []}
            for _ in range(trials):
                # Small delays: a delay of d samples leaves |d| / N of each capture without
                # a partner, a self-noise floor near -10 log10(N / |d|) dB that the flat-band
                # CRB ignores (the predicted std measures it; try uniform(-20, 20)).
                d = rng.uniform(-2, 2)
                spec = np.fft.fft(cnoise(rng, n)) * np.sqrt(g)
                x1 = np.fft.ifft(spec) + cnoise(rng, n)
                x2 = np.fft.ifft(spec * np.exp(-2j * np.pi * f * d)) + cnoise(rng, n)
                for w in errs:
                    e = df.estimate_delay(x1, x2, 1.0, weighting=w, max_delay_s=64)
                    errs[w].append(e.delay_samples - d)
                    preds[w].append(e.std_samples)
            row = f"{n:5d} {snr_db:7.1f} {crb:9.2e} |"
            for w in ("plain", "phat"):
                err = np.abs(errs[w])
                rmse = np.sqrt(np.mean(err**2))
                out = np.mean((err > 5 * crb) & (err > 0.5)) * 100
                ratios[w].append(rmse / crb)
                row += f" {rmse / crb:7.2f} {out:6.1f} {np.mean(preds[w]) / rmse:5.2f} |"
            print(row.rstrip(" |"))
        for w in ratios:
            thresholds[(n, w)] = threshold(snrs, ratios[w])
    for (n, w), t in thresholds.items():
        print(f"threshold SNR (RMSE/CRB <= {RATIO_OK}), N={n}, {w}: {fmt_thr(t)}")


def bench_aoa(rng, trials, snrs):
    print("\n## 2. Bearing: RMSE / stochastic CRB")
    print(f"{trials} trials per row, one source at a random azimuth (ULA: |az| <= 60 deg); "
          f"'out' = |error| > max(5 CRB std, 3 deg)")
    arrays = {"ULA M=5 d=0.5": df.ula_positions(5, 0.5), "UCA M=5 r=0.425": df.uca_positions(5, 0.425)}
    methods = df.METHODS
    summary = []
    for name, pos in arrays.items():
        linear = name.startswith("ULA")
        for n in (64, 1024):
            print(f"\n{name}, N = {n} snapshots")
            head = f"{'SNR dB':>7} {'CRB deg':>8} | " + " | ".join(f"{m:>8} {'out %':>5}" for m in methods)
            print(head)
            print("-" * len(head))
            ratios = {m: [] for m in methods}
            for snr_db in snrs:
                err = {m: [] for m in methods}
                crbs = []
                for _ in range(trials):
                    az = rng.uniform(-60, 60) if linear else rng.uniform(0, 360)
                    crbs.append(df.bearing_crb_std_deg(pos, az, 10 ** (snr_db / 10), n)[0])
                    a = df.steering_vectors(pos, az)
                    x = a @ (cnoise(rng, 1, n) * 10 ** (snr_db / 20)) + cnoise(rng, len(pos), n)
                    for m in methods:
                        b = df.estimate_bearings(x, pos, m).bearings[0].azimuth_deg
                        err[m].append((b - az + 180) % 360 - 180)
                crb = np.sqrt(np.mean(np.square(crbs)))
                row = f"{snr_db:7.1f} {crb:8.3f} |"
                for m in methods:
                    e = np.abs(err[m])
                    rmse = np.sqrt(np.mean(e**2))
                    ratios[m].append(rmse / crb)
                    out = np.mean(e > np.maximum(5 * np.asarray(crbs), 3.0)) * 100
                    row += f" {rmse / crb:8.2f} {out:5.1f} |"
                print(row.rstrip(" |"))
            for m in methods:
                summary.append((name, n, m, threshold(snrs, ratios[m]), ratios[m][-1]))
    print(f"\nthreshold SNR (RMSE/CRB <= {RATIO_OK} from there up) and RMSE/CRB at the top SNR:")
    for name, n, m, t, top in summary:
        print(f"  {name:16s} N={n:5d} {m:9s} {fmt_thr(t):>8s}   {top:5.2f}")


def bench_locate(rng, trials):
    print("\n## 3. TDOA localization, 4 nodes in a ~10 km area")
    sensors = np.array([[0.0, 0.0], [9000.0, 500.0], [4000.0, 8500.0], [-1000.0, 7000.0]])
    truth = np.array([3100.0, 4200.0])
    r = np.linalg.norm(sensors - truth, axis=1)
    exact = (r[1:] - r[0]) / df.SPEED_OF_LIGHT_M_S
    err, inside, t0 = [], 0, time.perf_counter()
    for _ in range(trials):
        fix = df.locate_tdoa(sensors, exact + rng.normal(0, 20e-9, 3), tdoa_std_s=20e-9)
        err.append(np.linalg.norm(fix.position_enu_m - truth))
        inside += bool(fix.ellipse.contains(truth))
    dt = (time.perf_counter() - t0) / trials
    p = np.percentile(err, [50, 90, 95, 99])
    print(f"20 ns Gaussian TDOA errors, {trials} trials: error percentiles 50/90/95/99 % = "
          f"{p[0]:.1f} / {p[1]:.1f} / {p[2]:.1f} / {p[3]:.1f} m, max {np.max(err):.1f} m; "
          f"truth inside the 95 % ellipse {inside / trials:.1%}; {dt * 1e3:.2f} ms per fix")
    # End to end: GCC on synthesized captures (20 MS/s, 0 dB, 4096 samples).
    fs, n, snr_db = 20e6, 4096, 0.0
    f = np.fft.fftfreq(n)
    err, inside = [], 0
    e2e = max(trials // 3, 20)
    for _ in range(e2e):
        spec = np.fft.fft(cnoise(rng, n)) * 10 ** (snr_db / 20)
        arrival = r / df.SPEED_OF_LIGHT_M_S * fs
        caps = [np.fft.ifft(spec * np.exp(-2j * np.pi * f * (a - arrival[0]))) + cnoise(rng, n)
                for a in arrival]
        ests = [df.estimate_delay(caps[0], c, fs, weighting="plain", max_delay_s=60e-6)
                for c in caps[1:]]
        # TDOAs against one reference share its noise: covariance sigma_i sigma_j / 2 off the
        # diagonal, for equal SNRs (the reference's share of each variance is half).
        sd = np.array([e.std_s for e in ests])
        cov = np.diag(sd**2) / 2 + np.outer(sd, sd) / 2
        fix = df.locate_tdoa(sensors, [e.delay_s for e in ests], tdoa_cov_s2=cov)
        err.append(np.linalg.norm(fix.position_enu_m - truth))
        inside += bool(fix.ellipse.contains(truth))
    p = np.percentile(err, [50, 90, 95])
    print(f"end to end (GCC at {fs / 1e6:g} MS/s, {n} samples, {snr_db:g} dB, predicted std "
          f"{np.mean(sd) * 1e9:.2f} ns), {e2e} trials: percentiles 50/90/95 % = "
          f"{p[0]:.2f} / {p[1]:.2f} / {p[2]:.2f} m; inside the 95 % ellipse {inside / e2e:.1%}")


def _best(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_throughput(rng, repeat):
    print("\n## 4. Delay estimator throughput (one pair of channels, one thread)")
    print("Python: df.estimate_delay; C++: drift.gcc_delay (the same algorithm, PHAT and plain);")
    print("ratio: C++ speed over Python's, same inputs, same process.")
    print(f"{'N':>7} {'weighting':>9} {'Py ms':>8} {'Py MS/s':>8} {'C++ ms':>8} {'C++ MS/s':>9} "
          f"{'ratio':>6}")
    for n in (4096, 65536, 1 << 20):
        x1 = cnoise(rng, n).astype(np.complex64)
        x2 = cnoise(rng, n).astype(np.complex64)
        reps = repeat if n < (1 << 20) else max(repeat // 5, 2)
        for w in df.WEIGHTINGS:
            tp = _best(lambda w=w, a=x1, b=x2: df.estimate_delay(a, b, 1.0, weighting=w,
                                                                    max_delay_s=1000),
                       reps)
            line = f"{n:7d} {w:>9} {tp * 1e3:8.2f} {n / tp / 1e6:8.2f}"
            if drift is not None and w in ("phat", "plain"):
                tc = _best(lambda w=w, a=x1, b=x2: drift.gcc_delay(a, b, w, 1001), reps)
                line += f" {tc * 1e3:8.2f} {n / tc / 1e6:9.2f} {tp / tc:6.2f}"
            print(line)
    if drift is None:
        return
    # the block in a flowgraph: two streams in, one PDU per 65536 samples
    from gnuradio import blocks, gr

    n, total = 65536, 65536 * 64
    x = cnoise(rng, 1 << 16).astype(np.complex64)
    tb = gr.top_block()
    src0 = blocks.vector_source_c(x, True)
    src1 = blocks.vector_source_c(np.roll(x, 3), True)
    head0 = blocks.head(gr.sizeof_gr_complex, total)
    head1 = blocks.head(gr.sizeof_gr_complex, total)
    blk = drift.tdoa(1e6, n, 0, 1e-3)
    tb.connect(src0, head0, (blk, 0))
    tb.connect(src1, head1, (blk, 1))
    t0 = time.perf_counter()
    tb.run()
    t = time.perf_counter() - t0
    print(f"drift.tdoa block (PHAT, n = {n}, +-1000 lags) in a flowgraph: {total / t / 1e6:.2f} "
          f"MS/s per input ({blk.estimates()} estimates)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials (about a quarter)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    scale = 4 if args.quick else 1
    print("# DRIFT DF benchmark" + (" (--quick)" if args.quick else ""))
    bench_tdoa(rng, 200 // scale, list(range(-10, 31, 5)))
    bench_aoa(rng, 120 // scale, list(range(-10, 21, 5)))
    bench_locate(rng, 1000 // scale)
    bench_throughput(rng, 20 // (2 if args.quick else 1))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
