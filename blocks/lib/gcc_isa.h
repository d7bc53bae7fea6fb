/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

/* The delay estimator's loops over bins and lags, included by gcc.cc once per instruction
 * set it is compiled for, inside a namespace named DRIFT_GCC_ISA and under that set's
 * `#pragma GCC target` (no include guard on purpose), as sim_kernels_isa.h. Each loop is
 * written for the compiler to vectorize: structure of arrays or interleaved complex floats,
 * reductions under `omp simd` (-fopenmp-simd), branch-free selects, and a log and a sin/cos
 * by polynomials instead of library calls. */

namespace gr {
namespace drift {
namespace gcc_kernels {
namespace DRIFT_GCC_ISA {

namespace {
#ifndef DRIFT_GCC_INLINE
#define DRIFT_GCC_INLINE inline __attribute__((always_inline))
#endif

#include "fast_math_isa.h" // TWO_PI, MAGIC, sincos_cycles


/* log10(y) for normal y > 0 to about 1e-9: the exponent from the bits, the mantissa's
 * logarithm by the atanh series on [sqrt(1/2), sqrt(2)); branch-free. */
DRIFT_GCC_INLINE double log10_fast(double y)
{
    uint64_t bits;
    std::memcpy(&bits, &y, sizeof bits);
    const uint64_t ebits = (bits >> 52) & 0x7ff;
    uint64_t mbits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
    double m;
    std::memcpy(&m, &mbits, sizeof m);
    // the exponent as a double without an int64 conversion (2^52 + e, minus 2^52)
    uint64_t eb = 0x4330000000000000ULL | ebits;
    double e;
    std::memcpy(&e, &eb, sizeof e);
    e -= 4503599627370496.0 + 1023.0;
    const bool big = m > 1.4142135623730951;
    m = big ? 0.5 * m : m;
    e = big ? e + 1.0 : e;
    const double z = (m - 1.0) / (m + 1.0);
    const double z2 = z * z;
    const double ln_m =
        2.0 * z * (1.0 + z2 * (1.0 / 3 + z2 * (1.0 / 5 + z2 * (1.0 / 7 + z2 * (1.0 / 9)))));
    return (e * 0.6931471805599453 + ln_m) * 0.4342944819032518;
}
} // namespace

/* yw = y / |y| (PHAT), y scaled by its largest component first so |y|^2 cannot overflow;
 * bins below 1e-30 of the largest are divided by that floor instead (zero stays zero). */
void phat(const float* y, float* yw, int m)
{
    float mx = 0.0f;
#pragma omp simd reduction(max : mx)
    for (int i = 0; i < 2 * m; ++i)
        mx = std::max(mx, std::fabs(y[i]));
    const float g = mx > 0.0f ? 1.0f / mx : 0.0f;
#pragma omp simd
    for (int i = 0; i < m; ++i) {
        const float ur = y[2 * i] * g, ui = y[2 * i + 1] * g;
        const float mag = std::sqrt(ur * ur + ui * ui);
        const float inv = 1.0f / std::max(mag, 1e-30f);
        yw[2 * i] = ur * inv;
        yw[2 * i + 1] = ui * inv;
    }
}

/* |c_l|^2 for lags l = -max_lag..max_lag (in that order) of the 2 nf-point correlation whose
 * even lags' and odd lags' halves are a and b: c_m = a_m + t_m b_m, c_{m + nf} = a_m - t_m b_m
 * (t_m = exp(i pi m / nf)). */
void window_mag2(const float* a, const float* b, const float* t, int nf, int max_lag, float* mag2)
{
    const int m0 = nf - max_lag; // lag -max_lag
#pragma omp simd
    for (int j = 0; j < max_lag; ++j) {
        const int m = m0 + j;
        const float ur = t[2 * m] * b[2 * m] - t[2 * m + 1] * b[2 * m + 1];
        const float ui = t[2 * m] * b[2 * m + 1] + t[2 * m + 1] * b[2 * m];
        const float cr = a[2 * m] - ur, ci = a[2 * m + 1] - ui;
        mag2[j] = cr * cr + ci * ci;
    }
    float* pos = mag2 + max_lag;
#pragma omp simd
    for (int m = 0; m <= max_lag; ++m) {
        const float ur = t[2 * m] * b[2 * m] - t[2 * m + 1] * b[2 * m + 1];
        const float ui = t[2 * m] * b[2 * m + 1] + t[2 * m + 1] * b[2 * m];
        const float cr = a[2 * m] + ur, ci = a[2 * m + 1] + ui;
        pos[m] = cr * cr + ci * ci;
    }
}

/* The far-lag sums of the refinement: sum over every lag l of c_l G_j[(l - peak) mod M],
 * j = 0..3 (tables of 2 nf floats each, zero near the peak), c from a, b, t as in
 * window_mag2. out: 8 doubles (re, im of each sum). Float within runs of 1024 lags,
 * double across them. */
void far_sums(const float* a,
              const float* b,
              const float* t,
              int nf,
              int peak,
              const float* g0,
              const float* g1,
              const float* g2,
              const float* g3,
              double* out)
{
    const int M = 2 * nf;
    const int pk = ((peak % M) + M) % M;
    // k_lo = (m - pk) mod M, k_hi = (m + nf - pk) mod M for m = 0..nf-1: split where either
    // wraps, so that within a run both are m plus a constant
    int cuts[4] = { 0, nf, nf, nf };
    int nc = 1;
    if (pk > 0 && pk < nf)
        cuts[nc++] = pk;
    if (pk - nf > 0 && pk - nf < nf)
        cuts[nc++] = pk - nf;
    cuts[nc++] = nf;
    for (int i = 1; i < nc; ++i) // insertion sort of at most four cuts
        for (int j = i; j > 0 && cuts[j - 1] > cuts[j]; --j)
            std::swap(cuts[j - 1], cuts[j]);
    double acc[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    for (int c = 0; c + 1 < nc; ++c) {
        const int beg = cuts[c], end = cuts[c + 1];
        if (beg >= end)
            continue;
        int off_lo = ((beg - pk) % M + M) % M - beg;
        int off_hi = ((beg + nf - pk) % M + M) % M - beg;
        for (int r0 = beg; r0 < end; r0 += 1024) {
            const int r1 = std::min(end, r0 + 1024);
            float s0r = 0, s0i = 0, s1r = 0, s1i = 0, s2r = 0, s2i = 0, s3r = 0, s3i = 0;
#pragma omp simd reduction(+ : s0r, s0i, s1r, s1i, s2r, s2i, s3r, s3i)
            for (int m = r0; m < r1; ++m) {
                const float ur = t[2 * m] * b[2 * m] - t[2 * m + 1] * b[2 * m + 1];
                const float ui = t[2 * m] * b[2 * m + 1] + t[2 * m + 1] * b[2 * m];
                const float lr = a[2 * m] + ur, li = a[2 * m + 1] + ui;
                const float hr = a[2 * m] - ur, hi = a[2 * m + 1] - ui;
                const int kl = m + off_lo, kh = m + off_hi;
                s0r += lr * g0[kl] + hr * g0[kh];
                s0i += li * g0[kl] + hi * g0[kh];
                s1r += lr * g1[kl] + hr * g1[kh];
                s1i += li * g1[kl] + hi * g1[kh];
                s2r += lr * g2[kl] + hr * g2[kh];
                s2i += li * g2[kl] + hi * g2[kh];
                s3r += lr * g3[kl] + hr * g3[kh];
                s3i += li * g3[kl] + hi * g3[kh];
            }
            acc[0] += s0r;
            acc[1] += s0i;
            acc[2] += s1r;
            acc[3] += s1i;
            acc[4] += s2r;
            acc[5] += s2i;
            acc[6] += s3r;
            acc[7] += s3i;
        }
    }
    for (int j = 0; j < 8; ++j)
        out[j] = acc[j];
}

/* z_k = y_k exp(i omega_k d), omega_k = 2 pi fftfreq(nf)_k; returns sum z in (sr, si). The
 * phasors in double: runs of ROT_RUN bins, each from its exact first phase times a table of
 * the phase steps within a run (ROT_RUN + nf / ROT_RUN sin/cos per call instead of nf), so
 * every phasor is exact to double rounding. The non-negative and the negative frequencies
 * start their own runs. */
void rotate(const float* y, int nf, double d, float* z, double& sr, double& si)
{
    constexpr int R = 64;
    const int half = (nf + 1) / 2; // bins 0..half-1 are the non-negative frequencies
    const double step = d / nf;    // cycles per bin
    alignas(64) double pr[R], pim[R];
#pragma omp simd
    for (int j = 0; j < R; ++j)
        sincos_cycles(j * step, pim[j], pr[j]);
    double accr = 0.0, acci = 0.0;
    for (int part = 0; part < 2; ++part) {
        const int lo = part == 0 ? 0 : half, hi = part == 0 ? half : nf;
        const double kk_lo = part == 0 ? 0.0 : double(half - nf);
        for (int k0 = lo; k0 < hi; k0 += R) {
            double bs, bc;
            sincos_cycles((kk_lo + (k0 - lo)) * step, bs, bc);
            const int len = std::min(R, hi - k0);
            const float* yk = y + 2 * k0;
            float* zk = z + 2 * k0;
#pragma omp simd reduction(+ : accr, acci)
            for (int j = 0; j < len; ++j) {
                const double c = bc * pr[j] - bs * pim[j], s = bc * pim[j] + bs * pr[j];
                const double yr = yk[2 * j], yi = yk[2 * j + 1];
                const double zr = yr * c - yi * s, zi = yr * s + yi * c;
                zk[2 * j] = float(zr);
                zk[2 * j + 1] = float(zi);
                accr += zr;
                acci += zi;
            }
        }
    }
    sr = accr;
    si = acci;
}

/* The per-bin values whose running sums make the spectra. Of one input (once per input, for
 * every pair it is in): a = |A|^2 written at xa[k]; returns their sum. */
double auto_values(const float* A, int nf, double* xa)
{
    double t = 0.0;
#pragma omp simd reduction(+ : t)
    for (int k = 0; k < nf; ++k) {
        const double p = double(A[2 * k]) * A[2 * k] + double(A[2 * k + 1]) * A[2 * k + 1];
        xa[k] = p;
        t += p;
    }
    return t;
}

/* Of a pair: s_raw = Re(z exp(-i phi)) (the phase-aligned cross-spectrum) at xs[k]. */
void cross_values(const float* z, int nf, double cos_phi, double sin_phi, double* xs)
{
#pragma omp simd
    for (int k = 0; k < nf; ++k)
        xs[k] = double(z[2 * k]) * cos_phi + double(z[2 * k + 1]) * sin_phi;
}

/* In place: x[0..len) -> its exclusive prefix sums x[0..len] (x[len] the total; the array
 * holds len + 1 values). Eight values at a time: their exclusive scan inside a vector (a
 * shift, then three shift-and-add steps), plus the running total, which is the only serial
 * dependency (one add per eight values). */
void prefix_sums(double* x, int len)
{
    typedef double v8 __attribute__((vector_size(64)));
    typedef long long i8 __attribute__((vector_size(64)));
    const v8 zero = { 0, 0, 0, 0, 0, 0, 0, 0 };
    const i8 s1 = { 0, 8, 9, 10, 11, 12, 13, 14 }; // [0, v0 .. v6]
    const i8 s2 = { 0, 1, 8, 9, 10, 11, 12, 13 };  // [0, 0, v0 .. v5]
    const i8 s4 = { 0, 1, 2, 3, 8, 9, 10, 11 };    // [0, 0, 0, 0, v0 .. v3]
    double run = 0.0;
    int i = 0;
    for (; i + 8 <= len; i += 8) {
        v8 v;
        std::memcpy(&v, x + i, sizeof v);
        v8 e = __builtin_shuffle(zero, v, s1);
        e += __builtin_shuffle(zero, e, s1);
        e += __builtin_shuffle(zero, e, s2);
        e += __builtin_shuffle(zero, e, s4);
        const double total = e[7] + v[7];
        e += run;
        std::memcpy(x + i, &e, sizeof e);
        run += total;
    }
    for (; i < len; ++i) {
        const double xv = x[i];
        x[i] = run;
        run += xv;
    }
    x[len] = run;
}

template <int WT>
void final_pass_t(const final_in& in, final_sums& out)
{
    const int nf = in.nf, pad = in.pad, L = in.L, W = in.wide;
    const int lo_l = L / 2, lo_w = W / 2;
    const double inv_l = 1.0 / L, inv_w = 1.0 / W;
    const double deb = 1.0 / (2.0 * L), inv_vden = 1.0 / (1.0 - 1.0 / (2.0 * L));
    const double inv_nf = 1.0 / nf;
    const double fl = in.floor, fl2 = in.floor * in.floor;
    const double r12 = in.r12, r21 = in.r21, fl_1 = in.floor1, fl_2 = in.floor2;
    const int half = (nf + 1) / 2;
    const double w_scale = TWO_PI / nf;
    const double* ps = in.ps;
    const double* pa1 = in.pa1;
    const double* pa2 = in.pa2;
    double s_sum = 0, n1_sum = 0, n2_sum = 0, sp_sum = 0, spf_sum = 0, spf2_sum = 0;
    double i0 = 0, i1 = 0, i2 = 0, a0 = 0, a1 = 0, a2 = 0, b0 = 0, b1 = 0, b2 = 0;
    const phase_lut lut = in.lut;
    double* psi = in.psi;
#pragma omp simd reduction(+ : s_sum, n1_sum, n2_sum, sp_sum, spf_sum, spf2_sum, i0, i1, i2, \
                               a0, a1, a2, b0, b1, b2)
    for (int k = 0; k < nf; ++k) {
        const int el = k + pad - lo_l, ew = k + pad - lo_w;
        const double s = (ps[el + L] - ps[el]) * inv_l;
        const double a1s = (pa1[el + L] - pa1[el]) * inv_l;
        const double a2s = (pa2[el + L] - pa2[el]) * inv_l;
        const double sw = ps[ew + W] - ps[ew];
        const double n1 = std::max((pa1[ew + W] - pa1[ew] - r12 * sw) * inv_w, fl_1);
        const double n2 = std::max((pa2[ew + W] - pa2[ew] - r21 * sw) * inv_w, fl_2);
        const double prod = a1s * a2s;
        const double ss = s * s;
        const double s2 = std::max(ss - (prod + ss) * deb, 0.0);
        const double sc = std::sqrt(s2);
        const double v = std::max((prod - ss) * inv_vden, fl2);
        const double ne = std::max(std::sqrt(s2 + v) - sc, fl);
        const double kk = k < half ? double(k) : double(k - nf);
        const double om = kk * w_scale;
        const double f = kk * inv_nf;
        s_sum += s;
        n1_sum += n1;
        n2_sum += n2;
        const double sp = std::max(s, 0.0);
        sp_sum += sp;
        spf_sum += sp * f;
        spf2_sum += sp * f * f;
        const double vv = sc * 2.0 * ne + ne * ne; // S (N1 + N2) + N1 N2 with N1 = N2 = ne
        const double inv_vv = 1.0 / vv;
        const double info = s2 * inv_vv; // the CRB's s^2 / (n1 n2 + s (n1 + n2))
        i0 += info;
        i1 += info * om;
        i2 += info * om * om;
        double wa, wb; // denominator and numerator weights of the variance
        if constexpr (WT == 0) {
            const double rho = sc / (sc + ne);
            const double r = std::min(std::max(rho, 0.0), 1.0 - 1e-15);
            const double u = -40.0 * log10_fast(1.0 - r);
            int j = int(std::min(std::max(u, 0.0), 159.0));
            const double c_tab = lut.c[j] + lut.cs[j] * r;
            const double s2_tab = lut.s2[j] + lut.s2s[j] * r;
            // (1 - r^2) / (2 r^2) = x / (2 (1 - x)), x = 1 - r^2: a series, exact to rounding
            // where it is used (r beyond the last knot: x < 2e-4), no division
            const double x = 1.0 - r * r;
            const double s2_hi = 0.5 * x * (1.0 + x * (1.0 + x * (1.0 + x * (1.0 + x))));
            const bool hi = r > lut.last;
            wa = hi ? 1.0 - 0.5 * s2_hi : c_tab; // E[cos phi]
            wb = hi ? s2_hi : s2_tab;            // E[sin^2 phi]
        } else if constexpr (WT == 1) {
            wa = s;  // psi = 1: psi s
            wb = vv; // psi^2 v
        } else {
            const double p = sc * inv_vv;
            psi[k] = p;
            wa = p * s;
            wb = p * p * vv;
        }
        a0 += wa;
        a1 += wa * om;
        a2 += wa * om * om;
        b0 += wb;
        b1 += wb * om;
        b2 += wb * om * om;
    }
    out.s = s_sum;
    out.n1 = n1_sum;
    out.n2 = n2_sum;
    out.sp = sp_sum;
    out.spf = spf_sum;
    out.spf2 = spf2_sum;
    out.info = i0;
    out.info_w = i1;
    out.info_w2 = i2;
    out.a = a0;
    out.a_w = a1;
    out.a_w2 = a2;
    out.b = b0;
    out.b_w = b1;
    out.b_w2 = b2;
}

void final_pass(const final_in& in, final_sums& out)
{
    if (in.weighting == 0)
        final_pass_t<0>(in, out);
    else if (in.weighting == 1)
        final_pass_t<1>(in, out);
    else
        final_pass_t<2>(in, out);
}

/* The ML weights on the 2 nf-point spectrum: even bins psi_k, odd bins the mean of psi_k and
 * psi_{k+1} (as the reference interpolates them). */
void ml_weights(const float* ye, const float* yo, const double* psi, int nf, float* we, float* wo)
{
#pragma omp simd
    for (int k = 0; k < nf; ++k) {
        const float p = float(psi[k]);
        const float q = float(0.5 * (psi[k] + psi[k + 1 < nf ? k + 1 : 0]));
        we[2 * k] = ye[2 * k] * p;
        we[2 * k + 1] = ye[2 * k + 1] * p;
        wo[2 * k] = yo[2 * k] * q;
        wo[2 * k + 1] = yo[2 * k + 1] * q;
    }
}

} // namespace DRIFT_GCC_ISA
} // namespace gcc_kernels
} // namespace drift
} // namespace gr
