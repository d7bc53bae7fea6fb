/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

/* The simulator's kernels, included by sim_kernels.cc once per instruction set it is compiled
 * for, each time inside a namespace named DRIFT_SIM_ISA and under that instruction set's
 * `#pragma GCC target` (no include guard on purpose). Everything here is compiled for that
 * instruction set, the loops the compiler vectorizes and the code around them alike;
 * sim_kernels.cc picks one set when the library loads. DRIFT_SIM_WIDE: 512-bit vectors. */

namespace gr {
namespace drift {
namespace sim {
namespace DRIFT_SIM_ISA {

namespace {
#ifndef DRIFT_SIM_INLINE
/* the per-sample helpers go whole into every loop that calls them, which then vectorizes */
#define DRIFT_SIM_INLINE inline __attribute__((always_inline))
#endif

DRIFT_SIM_INLINE uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

DRIFT_SIM_INLINE double uniform(uint64_t key, int64_t counter)
{
    return double(mix(uint64_t(counter) ^ key) >> 11) * (1.0 / 9007199254740992.0);
}

#include "fast_math_isa.h" // TWO_PI, MAGIC, sincos_cycles

/* floor for |x| < 2^51, vectorizable (no SSE4.1 round instruction needed) */
DRIFT_SIM_INLINE double vfloor(double x)
{
    const double q = (x + MAGIC) - MAGIC;
    const double qm = q - 1.0; // both sides computed: a plain select, vectorizable
    return q > x ? qm : q;
}


/* natural log of x in [2^-60, 1]: exponent and mantissa by bits, 2 atanh series on
 * [sqrt(1/2), sqrt(2)) (truncation below 1e-13); vectorizable. */
DRIFT_SIM_INLINE double log_unit(double x)
{
    uint64_t b;
    std::memcpy(&b, &x, sizeof b);
    const uint64_t eb = (b >> 52) | 0x4330000000000000ULL; // 2^52 + biased exponent
    double e;
    std::memcpy(&e, &eb, sizeof e);
    e -= 4503599627370496.0 + 1023.0; // 2^52 + the bias
    const uint64_t mb = (b & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL;
    double m;
    std::memcpy(&m, &mb, sizeof m);
    const bool big = m > 1.4142135623730951;
    const double mh = 0.5 * m, e1 = e + 1.0; // both sides computed: plain selects
    m = big ? mh : m;
    e = big ? e1 : e;
    const double z = (m - 1.0) / (m + 1.0);
    const double z2 = z * z;
    double p = 1.0 / 17;
    p = p * z2 + 1.0 / 15;
    p = p * z2 + 1.0 / 13;
    p = p * z2 + 1.0 / 11;
    p = p * z2 + 1.0 / 9;
    p = p * z2 + 1.0 / 7;
    p = p * z2 + 1.0 / 5;
    p = p * z2 + 1.0 / 3;
    const double lm = 2.0 * z + 2.0 * z * z2 * p;
    return e * 0.6931471803691238 + (e * 1.9082149292705877e-10 + lm);
}

inline int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* A lin_pos at sample k, in extended precision: (whole, fraction in [0, 1)). */
inline void pos_at(const lin_pos& p, int64_t k, int64_t& whole, double& frac)
{
    const long double v = (long double)p.frac + (long double)k * (long double)p.step;
    const long double fl = std::floor(v);
    whole = p.whole + int64_t(fl);
    frac = double(v - fl);
}


// -- vectorized loops --------------------------------------------------------------------
/* the widest vector of doubles the instruction set has (GCC's vector extension) */
#if defined(DRIFT_SIM_WIDE)
constexpr int VLEN = 8;
#else
constexpr int VLEN = 4;
#endif
typedef double vd __attribute__((vector_size(VLEN * sizeof(double))));

void sincos_arr(const double* __restrict x,
                double* __restrict s,
                double* __restrict c,
                int n)
{
    for (int i = 0; i < n; i++)
        sincos_cycles(x[i], s[i], c[i]);
}

/* complex normals from uniforms: sqrt(-ln(1 - u1)) exp(j 2 pi u2) */
void gauss_arr(const double* __restrict u1,
               const double* __restrict u2,
               double* __restrict re,
               double* __restrict im,
               int n)
{
    for (int i = 0; i < n; i++) {
        const double r = std::sqrt(-log_unit(1.0 - u1[i]));
        double s, c;
        sincos_cycles(u2[i], s, c);
        re[i] = r * c;
        im[i] = r * s;
    }
}

/* uniform() without an int-to-double conversion instruction (vectorizable): the top 53
 * bits m = 2 h + l, h as the mantissa of 2^52 + h less 2^52, all exact */
DRIFT_SIM_INLINE double uniform_v(uint64_t key, uint64_t counter)
{
    const uint64_t m = mix(counter ^ key) >> 11;
    const uint64_t b = (m >> 1) | 0x4330000000000000ULL;
    double h;
    std::memcpy(&h, &b, sizeof h);
    const double l = (m & 1) ? 1.0 : 0.0;
    return ((h - 4503599627370496.0) * 2.0 + l) * (1.0 / 9007199254740992.0);
}

void uniforms(uint64_t key, int64_t first, int n, double* __restrict u1,
              double* __restrict u2)
{
    for (int i = 0; i < n; i++) {
        const uint64_t c = uint64_t(first + i);
        u1[i] = uniform_v(key, 2 * c);
        u2[i] = uniform_v(key, 2 * c + 1);
    }
}

/* positions x = frac + (k0 + i) * step: floors and fractions */
void split_arr(double frac,
               double step,
               int k0,
               int n,
               double* __restrict fl,
               double* __restrict fr)
{
    for (int i = 0; i < n; i++) {
        const double x = frac + double(k0 + i) * step;
        const double f = vfloor(x);
        fl[i] = f;
        fr[i] = x - f;
    }
}

/* sum_p c_p y^p with c_p = re[p s] + j im[p s], for y a double or a vector of them: the even
 * and the odd powers as two Horner chains in y^2, half the dependent steps of one chain. The
 * same operations whatever T is, so a sample gets the same bits in a vector or alone. */
template <class T>
DRIFT_SIM_INLINE void
poly_eo(const double* re, const double* im, size_t s, int deg, T y, T& out_re, T& out_im)
{
    const T y2 = y * y;
    T ar = T{} + re[deg * s], ai = T{} + im[deg * s]; // the powers of deg's parity
    T br = T{}, bi = T{};                              // the others
    if (deg >= 1) {
        br = T{} + re[(deg - 1) * s];
        bi = T{} + im[(deg - 1) * s];
    }
    int q = deg - 2;
    for (; q >= 1; q -= 2) {
        ar = ar * y2 + re[q * s];
        ai = ai * y2 + im[q * s];
        br = br * y2 + re[(q - 1) * s];
        bi = bi * y2 + im[(q - 1) * s];
    }
    if (q == 0) {
        ar = ar * y2 + re[0];
        ai = ai * y2 + im[0];
    }
    if (deg & 1) {
        out_re = ar * y + br;
        out_im = ai * y + bi;
    } else {
        out_re = br * y + ar;
        out_im = bi * y + ai;
    }
}

/* sum_p c[p] y^p (complex coefficients c[p] = cr[p s] + j ci[p s], real y) for samples
 * 0 .. n-1 in whole vectors V: up to n rounded up to V's width, so out and y need room past n. */
template <class V>
DRIFT_SIM_INLINE void poly_c_vectors(const double* __restrict cr,
                                     const double* __restrict ci,
                                     size_t s,
                                     int deg,
                                     const double* __restrict y,
                                     double* __restrict outr,
                                     double* __restrict outi,
                                     int n)
{
    constexpr int W = int(sizeof(V) / sizeof(double));
    for (int i = 0; i < n; i += W) {
        V yv, re, im;
        std::memcpy(&yv, y + i, sizeof yv);
        poly_eo(cr, ci, s, deg, yv, re, im);
        std::memcpy(outr + i, &re, sizeof re);
        std::memcpy(outi + i, &im, sizeof im);
    }
}

/* out = sum_p c[p] y^p (complex coefficients c[p] = cr[p s] + j ci[p s], real y) */
void poly_c(const double* __restrict cr,
            const double* __restrict ci,
            size_t s,
            int deg,
            const double* __restrict y,
            double* __restrict outr,
            double* __restrict outi,
            int n)
{
    // VLEN samples at a time, the polynomial in registers; the rest one at a time
    const int whole = n / VLEN * VLEN;
    poly_c_vectors<vd>(cr, ci, s, deg, y, outr, outi, whole);
    for (int i = whole; i < n; i++)
        poly_eo(cr, ci, s, deg, y[i], outr[i], outi[i]);
}

/* poly_c for a short run (a symbol's few samples): whole vectors of four, so every value
 * from y[n] up to the next multiple of four is computed and written too (out and y have room;
 * the next run overwrites what went past this one). The same bits as poly_c: poly_eo does
 * the same operations on a lane as on a double. */
void poly_c_run(const double* __restrict cr,
                const double* __restrict ci,
                size_t s,
                int deg,
                const double* __restrict y,
                double* __restrict outr,
                double* __restrict outi,
                int n)
{
    typedef double v4 __attribute__((vector_size(4 * sizeof(double))));
    poly_c_vectors<v4>(cr, ci, s, deg, y, outr, outi, n);
}

/* c[p] = sum_j sym[j] table[j][p]: one symbol's pulse-train polynomial */
void pulse_coef(const double* __restrict sr,
                const double* __restrict si,
                int taps,
                const double* __restrict table,
                int deg,
                double* __restrict cr,
                double* __restrict ci)
{
    for (int p = 0; p <= deg; p++) {
        cr[p] = 0.0;
        ci[p] = 0.0;
    }
    for (int j = 0; j < taps; j++) {
        const double a = sr[j], b = si[j];
        const double* t = table + j * (deg + 1);
        for (int p = 0; p <= deg; p++) {
            cr[p] += a * t[p];
            ci[p] += b * t[p];
        }
    }
}

/* pulse_coef for nb consecutive symbols at once (nb a multiple of VLEN): symbol m's
 * polynomial c[p nb + m] = sum_j sym[m + j] table[j][p], from the nb + taps - 1 symbols in
 * sym. VLEN symbols a vector, their sums in registers; each sum is taken in pulse_coef's
 * order (from zero, j ascending, one multiply-add a term), so a symbol gets the same bits
 * whichever block it is computed in. */
void pulse_coef_block(const double* __restrict sr,
                      const double* __restrict si,
                      int taps,
                      const double* __restrict table,
                      int deg,
                      int nb,
                      double* __restrict cr,
                      double* __restrict ci)
{
    for (int m = 0; m < nb; m += VLEN) {
        for (int p = 0; p <= deg; p++) {
            vd ar = {}, ai = {};
            for (int j = 0; j < taps; j++) {
                vd a, b;
                std::memcpy(&a, sr + m + j, sizeof a);
                std::memcpy(&b, si + m + j, sizeof b);
                const double t = table[j * (deg + 1) + p];
                ar += a * t;
                ai += b * t;
            }
            std::memcpy(cr + size_t(p) * nb + m, &ar, sizeof ar);
            std::memcpy(ci + size_t(p) * nb + m, &ai, sizeof ai);
        }
    }
}

/* out = sum_p c[p] y^p (real) */
void poly_r(const double* __restrict c,
            int deg,
            const double* __restrict y,
            double* __restrict out,
            int n)
{
    for (int i = 0; i < n; i++)
        out[i] = c[deg];
    for (int p = deg - 1; p >= 0; p--) {
        const double a = c[p];
        for (int i = 0; i < n; i++)
            out[i] = out[i] * y[i] + a;
    }
}

/* s = sum_i x[i] z^i over len samples (Horner's rule, vectorized over the samples) */
void horner_run(int K,
                const double* __restrict xr,
                const double* __restrict xi,
                const double* __restrict zr,
                const double* __restrict zi,
                double* __restrict sr,
                double* __restrict si,
                int len)
{
    for (int k = 0; k < len; k++) {
        sr[k] = xr[K - 1];
        si[k] = xi[K - 1];
    }
    int i = K - 2;
    // four subcarriers a pass: the sums stay in registers, a quarter of the memory traffic
    for (; i >= 3; i -= 4) {
        const double a0 = xr[i], b0 = xi[i], a1 = xr[i - 1], b1 = xi[i - 1];
        const double a2 = xr[i - 2], b2 = xi[i - 2], a3 = xr[i - 3], b3 = xi[i - 3];
        for (int k = 0; k < len; k++) {
            const double zre = zr[k], zim = zi[k];
            double r = sr[k], m = si[k], t;
            // (a - m zim) + r zre, (b + r zim) + m zre: two fused multiply-adds each
            t = (a0 - m * zim) + r * zre;
            m = (b0 + r * zim) + m * zre;
            r = t;
            t = (a1 - m * zim) + r * zre;
            m = (b1 + r * zim) + m * zre;
            r = t;
            t = (a2 - m * zim) + r * zre;
            m = (b2 + r * zim) + m * zre;
            r = t;
            t = (a3 - m * zim) + r * zre;
            m = (b3 + r * zim) + m * zre;
            sr[k] = t;
            si[k] = m;
        }
    }
    for (; i >= 0; i--) {
        const double a = xr[i], b = xi[i];
        for (int k = 0; k < len; k++) {
            const double r = (a - si[k] * zi[k]) + sr[k] * zr[k];
            const double m = (b + sr[k] * zi[k]) + si[k] * zr[k];
            sr[k] = r;
            si[k] = m;
        }
    }
}

/* acc += amp * gate * c */
void mix_in1(double* __restrict acc_re,
             double* __restrict acc_im,
             double amp,
             const double* __restrict gate,
             const double* __restrict cr,
             const double* __restrict ci,
             int n)
{
    for (int i = 0; i < n; i++) {
        const double g = gate ? amp * gate[i] : amp;
        acc_re[i] += g * cr[i];
        acc_im[i] += g * ci[i];
    }
}

/* x (interleaved complex) *= h */
void cmul_arr(double* __restrict x,
              const double* __restrict hr,
              const double* __restrict hi,
              int n)
{
    for (int i = 0; i < n; i++) {
        const double a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * hr[i] - b * hi[i];
        x[2 * i + 1] = a * hi[i] + b * hr[i];
    }
}

/* er + j ei = x (interleaved complex) * post * (cr + j ci) */
void post_arr(const double* __restrict x,
              const double* __restrict pr,
              const double* __restrict pi,
              double cr,
              double ci,
              double* __restrict er,
              double* __restrict ei,
              int n)
{
    for (int i = 0; i < n; i++) {
        const double a = x[2 * i] * pr[i] - x[2 * i + 1] * pi[i];
        const double b = x[2 * i] * pi[i] + x[2 * i + 1] * pr[i];
        er[i] = a * cr - b * ci;
        ei[i] = a * ci + b * cr;
    }
}

/* the interleaved sum_m (j n)^m / m! F_m[q], n = n0 + q, q < len, by Horner's rule in j n
 * (the drift's Taylor terms of the periodic OFDM) */
void taylor_sum(const double* const* __restrict F,
                int M,
                int n0,
                int len,
                double* __restrict out)
{
    const double* fm = F[M];
    for (int q = 0; q < 2 * len; q++)
        out[q] = fm[q];
    for (int m = M - 1; m >= 0; m--) {
        const double inv = 1.0 / double(m + 1);
        const double* f = F[m];
        for (int q = 0; q < len; q++) {
            const double t = double(n0 + q) * inv;
            const double ar = out[2 * q], ai = out[2 * q + 1];
            out[2 * q] = f[2 * q] - t * ai;
            out[2 * q + 1] = f[2 * q + 1] + t * ar;
        }
    }
}

/* exp(j 2 pi (q / 4 + 1 / 8)), q = 0..3 */
constexpr double H = 0.70710678118654757;
constexpr double QPSK_RE[4] = { H, -H, -H, H };
constexpr double QPSK_IM[4] = { H, H, -H, -H };

/* QPSK symbols on K subcarriers: uniform(key, base + q) in quarters, as QPSK_RE/QPSK_IM
 * (written as selects, without a float-to-int conversion, so the loop vectorizes) */
void qpsk_arr(uint64_t key, int64_t base, int K, double* __restrict xr,
              double* __restrict xi)
{
    for (int q = 0; q < K; q++) {
        const double v = vfloor(uniform_v(key, uint64_t(base + q)) * 4.0); // 0, 1, 2 or 3
        xr[q] = (v == 0.0 || v == 3.0) ? H : -H;
        xi[q] = (v < 2.0) ? H : -H;
    }
}

/* out = quantize((acc + sigma * noise) * gain); levels 0: not quantized. Rounding to the
 * nearest level, ties to even, as numpy's round. */
void finish_arr(const double* __restrict acc_re,
                const double* __restrict acc_im,
                const double* __restrict re,
                const double* __restrict im,
                double sigma,
                double gr,
                double gi,
                double levels,
                float* __restrict out,
                int n)
{
    if (levels > 0) {
        const double inv = 1.0 / levels;
        for (int i = 0; i < n; i++) {
            const double xr0 = acc_re[i] + sigma * re[i], xi0 = acc_im[i] + sigma * im[i];
            const double xr = ((xr0 * gr - xi0 * gi) * levels + MAGIC) - MAGIC;
            const double xi = ((xr0 * gi + xi0 * gr) * levels + MAGIC) - MAGIC;
            out[2 * i] = float(std::min(std::max(xr, -levels), levels - 1.0) * inv);
            out[2 * i + 1] = float(std::min(std::max(xi, -levels), levels - 1.0) * inv);
        }
    } else {
        for (int i = 0; i < n; i++) {
            const double xr0 = acc_re[i] + sigma * re[i], xi0 = acc_im[i] + sigma * im[i];
            out[2 * i] = float(xr0 * gr - xi0 * gi);
            out[2 * i + 1] = float(xr0 * gi + xi0 * gr);
        }
    }
}

/* acc += amp * gate * env * carrier for samples k0 .. k0 + n - 1 of an
 * anchor segment (env, gate and acc from sample k0 on). The carrier is made on the way: four
 * interleaved phasor recurrences, each started exactly at the anchor (samples 0 .. 3) and
 * turned by 4 steps at a time, so a sample's carrier depends on its place in the segment
 * only. */
template <bool GATED>
void mix_carrier(double* __restrict acc_re,
                 double* __restrict acc_im,
                 double amp,
                 const double* __restrict gate,
                 const double* __restrict er,
                 const double* __restrict ei,
                 double frac,
                 double step,
                 int k0,
                 int n)
{
    typedef double v4 __attribute__((vector_size(4 * sizeof(double))));
    v4 pr, pi; // lane j: samples j, j + 4, ... of the segment
    for (int j = 0; j < 4; j++)
        sincos_cycles(frac + j * step, pi[j], pr[j]);
    double wi, wr;
    sincos_cycles(4.0 * step, wi, wr);
    auto turn = [&] {
        const v4 t = pr * wr - pi * wi;
        pi = pr * wi + pi * wr;
        pr = t;
    };
    auto mix1 = [&](int i, int j) { // sample k0 + i, lane j
        const double g = GATED ? amp * gate[i] : amp;
        acc_re[i] += g * (er[i] * pr[j] - ei[i] * pi[j]);
        acc_im[i] += g * (er[i] * pi[j] + ei[i] * pr[j]);
    };
    const int end = k0 + n;
    int k = 0;
    for (; k + 4 <= k0; k += 4)
        turn();
    if (k < k0) { // the group that k0 falls in
        for (int j = 0; j < 4; j++)
            if (k + j >= k0 && k + j < end)
                mix1(k + j - k0, j);
        turn();
        k += 4;
    }
    for (; k + 4 <= end; k += 4) { // four samples, one a lane, the same operations as mix1
        const int i = k - k0;
        v4 g = v4{} + amp, r, m, ar, ai;
        if (GATED) {
            v4 gt;
            std::memcpy(&gt, gate + i, sizeof gt);
            g = amp * gt;
        }
        std::memcpy(&r, er + i, sizeof r);
        std::memcpy(&m, ei + i, sizeof m);
        std::memcpy(&ar, acc_re + i, sizeof ar);
        std::memcpy(&ai, acc_im + i, sizeof ai);
        ar += g * (r * pr - m * pi);
        ai += g * (r * pi + m * pr);
        std::memcpy(acc_re + i, &ar, sizeof ar);
        std::memcpy(acc_im + i, &ai, sizeof ai);
        turn();
    }
    for (int j = 0; k + j < end; j++)
        mix1(k + j - k0, j);
}

void symbol(int kind, uint64_t key, int64_t k, double& re, double& im)
{
    if (kind == KIND_BPSK) {
        re = uniform(key, k) < 0.5 ? 1.0 : -1.0;
        im = 0.0;
    } else if (kind == KIND_QPSK) {
        const int q = int(uniform(key, k) * 4.0);
        re = QPSK_RE[q];
        im = QPSK_IM[q];
    } else {
        const double u1 = uniform(key, 2 * k), u2 = uniform(key, 2 * k + 1);
        gauss_arr(&u1, &u2, &re, &im, 1);
    }
}

/* The end of the run of samples from i on with the same floor fl[i]: where the position
 * fa + (k0 + j) step reaches fl[i] + 1, checked against fl itself. */
inline int run_end(const double* fl, int i, int len, double fa, double step, int k0)
{
    const double f0 = fl[i];
    const double est = -vfloor(-((f0 + 1.0 - fa) / step)) - double(k0);
    int r = est >= double(len) ? len : (est <= double(i + 1) ? i + 1 : int(est));
    while (r > i + 1 && fl[r - 1] != f0)
        r--;
    while (r < len && fl[r] == f0)
        r++;
    return r;
}

/* Taylor coefficients of sum_t A_t sin(2 pi th_t + om_t u) in u:
 * poly[m] = sum_t A_t om_t^m sin(2 pi th_t + m pi / 2) / m! */
void taylor_coef(const double* __restrict th,
                 const double* __restrict om,
                 const double* __restrict amp,
                 int tones,
                 int deg,
                 double* __restrict s,
                 double* __restrict c,
                 double* __restrict term,
                 double* __restrict poly)
{
    for (int t = 0; t < tones; t++) {
        sincos_cycles(th[t], s[t], c[t]);
        term[t] = amp[t];
    }
    for (int m = 0; m <= deg; m++) {
        const double* v = (m & 1) ? c : s;
        const double inv = 1.0 / double(m + 1);
        double sum = 0.0;
        for (int t = 0; t < tones; t++) {
            sum += term[t] * v[t];
            term[t] *= om[t] * inv;
        }
        poly[m] = (m & 2) ? -sum : sum;
    }
}


/* sin and cos of 2 pi theta m^2 / 2 + g m (cycles), reduced in extended precision first:
 * m^2 reaches 10^8, where double would keep only 1e-8 of a cycle */
void chirp(double theta, double g, int64_t m, double& s, double& c)
{
    long double v = (long double)theta * (long double)m * (long double)m * 0.5L +
                    (long double)g * (long double)m;
    v -= std::floor(v);
    sincos_cycles(double(v), s, c);
}

/* OFDM. Inside one symbol the subcarrier sum is s(n) = sum_k Y_k exp(j 2 pi k' psi_n),
 * k' = k - K/2, psi_n = psi_0 + n theta the time since the cyclic prefix ended in useful
 * periods (theta: a sample's share of one). Four ways to make it, one per emitter, whichever
 * costs least for K and the samples a symbol (ofdm_method):
 *  - Horner's rule, sample by sample (K complex multiply-adds a sample);
 *  - Taylor polynomials on a grid (ofdm_grid), sample by sample, for signals sampled many
 *    times faster than their subcarriers turn;
 *  - an inverse FFT of P points when the spacing divides the rate (ofdm_periodic), or
 *  - the chirp-z transform (ofdm_chirpz), each making a whole symbol at once (ofdm_symbol),
 *    from its first sample to its last whichever segment they fall in, so the transforms
 *    are as long as the symbol and a stream's cuts change nothing.
 * Each gives the subcarrier sum without the carrier, which add_segment multiplies in as for
 * any other envelope. */

/* The chirp-z transform: the sum at samples n = 0 .. N-1 is sum_k Y_k W^(nk), W = exp(j 2 pi
 * theta), with Y_k folding in z0^k' = exp(j 2 pi k' psi_0); nk = (n^2 + k^2 - (n - k)^2) / 2
 * makes it W^(n^2/2) (a * h)_n with a_k = Y_k W^(k^2/2) and h_m = W^(-m^2/2): one FFT of a,
 * a product with h's FFT, one inverse FFT. The z^(-K/2) shift, linear in n, joins the
 * post-multiplication W^(n^2/2).
 *
 * What depends on the emitter only: a_k's W^(k^2/2) and the post-multiplication. */
struct chirpz_tables {
    int K, nmax;
    double theta, g;
    std::vector<double> pre_r, pre_i, post_r, post_i;
};

/* FFT(h) for one length L (1/L of the inverse FFT folded in) */
struct chirpz_kernel {
    int K, L;
    double theta;
    std::vector<double> hr, hi;
};

std::shared_ptr<const chirpz_tables> make_tables(int K, int nmax, double theta, double g)
{
    auto t = std::make_shared<chirpz_tables>();
    *t = { K, nmax, theta, g, {}, {}, {}, {} };
    t->pre_r.resize(K);
    t->pre_i.resize(K);
    for (int k = 0; k < K; k++)
        chirp(theta, 0.0, k, t->pre_i[k], t->pre_r[k]);
    t->post_r.resize(nmax);
    t->post_i.resize(nmax);
    for (int n = 0; n < nmax; n++)
        chirp(theta, g, n, t->post_i[n], t->post_r[n]);
    return t;
}

std::shared_ptr<const chirpz_kernel> make_kernel(int K, int L, double theta)
{
    auto h = std::make_shared<chirpz_kernel>();
    *h = { K, L, theta, std::vector<double>(L), std::vector<double>(L) };
    fftw_complex* buf = fftw_alloc_complex(L);
    fftw_complex* out = fftw_alloc_complex(L);
    for (int j = 0; j < L; j++) { // h_m, m = -(K-1) .. L-K, circularly
        const int64_t m = j <= L - K ? j : int64_t(j) - L;
        chirp(-theta, 0.0, m, buf[j][1], buf[j][0]);
    }
    fftw_execute_dft(fft_plans(L).fwd, buf, out);
    for (int j = 0; j < L; j++) {
        h->hr[j] = out[j][0] / double(L);
        h->hi[j] = out[j][1] / double(L);
    }
    fftw_free(buf);
    fftw_free(out);
    return h;
}

/* A process-wide cache of immutable tables (the last `size` made): two receivers of one
 * emitter, or the next call for the same stream, find them made. One cache per call site
 * (each has its own lambdas, so its own instantiation). */
template <class T, class Match, class Make>
std::shared_ptr<const T> cached(size_t size, Match match, Make make)
{
    static std::mutex lock;
    static std::vector<std::shared_ptr<const T>> cache;
    {
        std::lock_guard<std::mutex> guard(lock);
        for (const auto& t : cache)
            if (match(*t))
                return t;
    }
    std::shared_ptr<const T> t = make();
    std::lock_guard<std::mutex> guard(lock);
    if (cache.size() >= size)
        cache.erase(cache.begin());
    cache.push_back(t);
    return t;
}

std::shared_ptr<const chirpz_tables> tables_for(int K, int nmax, double theta, double g)
{
    return cached<chirpz_tables>(
        64,
        [&](const chirpz_tables& t) {
            return t.K == K && t.nmax == nmax && t.theta == theta && t.g == g;
        },
        [&] { return make_tables(K, nmax, theta, g); });
}

std::shared_ptr<const chirpz_kernel> kernel_for(int K, int L, double theta)
{
    return cached<chirpz_kernel>(
        64,
        [&](const chirpz_kernel& h) { return h.K == K && h.L == L && h.theta == theta; },
        [&] { return make_kernel(K, L, theta); });
}

inline int chirpz_len(int K, int n) { return fast_len(n + K - 1); }

/* One emitter's chirp-z state: its tables, the kernels of the lengths met so far (a symbol
 * is one of two lengths, a sample apart), the transform's buffers. */
struct ofdm_chirpz {
    std::shared_ptr<const chirpz_tables> t;
    std::map<int, std::shared_ptr<const chirpz_kernel>> kernels;
    std::map<int, std::pair<fftw_complex*, fftw_complex*>> bufs; // the transform's in and out
    std::vector<double> ang, zr, zi;

    explicit ofdm_chirpz(std::shared_ptr<const chirpz_tables> tables)
        : t(std::move(tables)), ang(t->K), zr(t->K), zi(t->K)
    {
    }
    ~ofdm_chirpz()
    {
        for (auto& b : bufs) {
            fftw_free(b.second.first);
            fftw_free(b.second.second);
        }
    }
    ofdm_chirpz(const ofdm_chirpz&) = delete;
    ofdm_chirpz& operator=(const ofdm_chirpz&) = delete;

    /* n <= nmax samples of scale exp(j 2 pi phi0) sum_k X_k z0^k W^(jk) W'^j,
     * z0 = exp(j 2 pi psi0), into er/ei */
    void run(const double* xr, const double* xi, double psi0, double phi0, double scale,
             int n, double* er, double* ei)
    {
        const int K = t->K, L = chirpz_len(K, n);
        auto& h = kernels[L];
        if (!h)
            h = kernel_for(K, L, t->theta);
        auto& bb = bufs[L];
        if (!bb.first) // fftw_malloc: the alignment the plans were made for
            bb = { fftw_alloc_complex(L), fftw_alloc_complex(L) };
        fftw_complex *buf = bb.first, *tmp = bb.second;
        for (int k = 0; k < K; k++)
            ang[k] = double(k) * psi0;
        sincos_arr(ang.data(), zi.data(), zr.data(), K);
        for (int k = 0; k < K; k++) {
            const double ar = xr[k] * zr[k] - xi[k] * zi[k];
            const double ai = xr[k] * zi[k] + xi[k] * zr[k];
            buf[k][0] = ar * t->pre_r[k] - ai * t->pre_i[k];
            buf[k][1] = ar * t->pre_i[k] + ai * t->pre_r[k];
        }
        std::memset(buf + K, 0, sizeof(fftw_complex) * (L - K));
        const fft_pair& plans = fft_plans(L);
        fftw_execute_dft(plans.fwd, buf, tmp);
        cmul_arr(reinterpret_cast<double*>(tmp), h->hr.data(), h->hi.data(), L);
        fftw_execute_dft(plans.bwd, tmp, buf);
        double s0, c0;
        sincos_cycles(phi0 - std::floor(phi0), s0, c0);
        post_arr(reinterpret_cast<const double*>(buf), t->post_r.data(), t->post_i.data(),
                 c0 * scale, s0 * scale, er, ei, n);
    }
};

/* When the subcarrier spacing divides the sample rate (fs / spacing = P, an integer, as
 * OFDM systems are built): W = exp(j 2 pi / P) exactly, and the symbol is an inverse DFT of
 * P points, its subcarriers folded modulo P. The node's clock drift makes W = exp(j 2 pi
 * (1/P + eps)); exp(j 2 pi eps n k) is then a short Taylor series in n whose terms are M more
 * inverse DFTs (of X_k (2 pi eps k)^m), M chosen so that the first term left out is below
 * 1e-12 over a symbol. */
struct periodic_tables {
    int K, P, M, nmax;
    double theta, delta;
};

/* M for symbols of up to nmax samples, or -1 when the series would need more than 8 terms
 * (fs / spacing is not close to an integer) */
int periodic_terms(int K, int nmax, double theta, int& P, double& delta)
{
    const double inv = 1.0 / theta;
    if (!(inv >= 2.0 && inv <= 16384.0))
        return -1;
    P = int(std::llround(inv));
    delta = TWO_PI * (theta - 1.0 / double(P));
    const double x = std::fabs(delta) * double(nmax) * (0.5 * K + 1.0);
    double term = x; // x^(M+1) / (M+1)!
    for (int M = 0; M <= 8; M++) {
        if (term <= 1e-12)
            return M;
        term *= x / double(M + 2);
    }
    return -1;
}

std::shared_ptr<const periodic_tables> periodic_for(int K, int nmax, double theta)
{
    return cached<periodic_tables>(
        64,
        [&](const periodic_tables& t) {
            return t.K == K && t.nmax == nmax && t.theta == theta;
        },
        [&] {
            auto t = std::make_shared<periodic_tables>();
            int P = 0;
            double delta = 0.0;
            const int M = periodic_terms(K, nmax, theta, P, delta);
            *t = { K, P, M, nmax, theta, delta };
            return std::shared_ptr<const periodic_tables>(t);
        });
}

struct ofdm_periodic {
    std::shared_ptr<const periodic_tables> t;
    std::vector<fftw_complex*> bufs, outs; // one per Taylor term: the transform's in and out
    std::vector<const double*> terms;      // outs, as interleaved doubles
    std::vector<double> ang, zr, zi, sum;

    explicit ofdm_periodic(std::shared_ptr<const periodic_tables> tables)
        : t(std::move(tables)), ang(t->K), zr(t->K), zi(t->K), sum(2 * size_t(t->P))
    {
        for (int m = 0; m <= t->M; m++) {
            bufs.push_back(fftw_alloc_complex(t->P));
            outs.push_back(fftw_alloc_complex(t->P));
            terms.push_back(reinterpret_cast<const double*>(outs.back()));
        }
    }
    ~ofdm_periodic()
    {
        for (auto* b : bufs)
            fftw_free(b);
        for (auto* b : outs)
            fftw_free(b);
    }
    ofdm_periodic(const ofdm_periodic&) = delete;
    ofdm_periodic& operator=(const ofdm_periodic&) = delete;

    /* n samples of scale sum_k X_k z0^k' W^(j k'), z0 = exp(j 2 pi psi0), into er/ei */
    void run(const double* xr, const double* xi, double psi0, double scale, int n, double* er,
             double* ei)
    {
        const int K = t->K, P = t->P, M = t->M, half = K / 2;
        for (int k = 0; k < K; k++)
            ang[k] = double(k - half) * psi0;
        sincos_arr(ang.data(), zi.data(), zr.data(), K);
        for (auto* b : bufs)
            std::memset(b, 0, sizeof(fftw_complex) * P);
        for (int k = 0, j = ((-half % P) + P) % P; k < K; k++, j = j + 1 == P ? 0 : j + 1) {
            double yr = xr[k] * zr[k] - xi[k] * zi[k]; // j = k' mod P
            double yi = xr[k] * zi[k] + xi[k] * zr[k];
            const double dk = t->delta * double(k - half);
            for (int m = 0; m <= M; m++) {
                bufs[m][j][0] += yr;
                bufs[m][j][1] += yi;
                yr *= dk;
                yi *= dk;
            }
        }
        const fft_pair& plans = fft_plans(P);
        for (int m = 0; m <= M; m++)
            fftw_execute_dft(plans.bwd, bufs[m], outs[m]);
        for (int n0 = 0; n0 < n; n0 += P) { // one period at a time: F[j mod P] in order
            const int len = std::min(P, n - n0);
            const double* x = terms[0];
            if (M > 0) {
                taylor_sum(terms.data(), M, n0, len, sum.data());
                x = sum.data();
            }
            for (int q = 0; q < len; q++) {
                er[n0 + q] = scale * x[2 * q];
                ei[n0 + q] = scale * x[2 * q + 1];
            }
        }
    }
};

/* Taylor polynomials on a grid, for signals sampled many times faster than their
 * subcarriers turn (20 MS/s and 15 kHz: 1,333 samples a subcarrier period). With u the time
 * since the cyclic prefix ended in 1/L of the useful period, s(u) = sum_k Y_k exp(j 2 pi k'
 * u / L). On the grid of whole u its value and every derivative are inverse DFTs: the p-th
 * Taylor coefficient c_p[m] = s^(p)(m) / p! is the inverse FFT of Y_k (j 2 pi k' / L)^p / p!,
 * P + 1 of them in one batch a symbol. A sample at u = m + d (|d| <= 1/2) is then the
 * degree-P polynomial sum_p c_p[m] d^p, P chosen so that the terms left out stay below 1e-9
 * of the signal's RMS (the fastest subcarrier turns by at most pi K / 2L rad over half a
 * grid step). A sample depends on its own time and its symbol only. */
struct grid_tables {
    int K, L, P;
    std::vector<double> t; // (P + 1) x K: (2 pi k' / L)^p / p!
    std::vector<int> bin;  // K: k' mod L (L >= 2K: no two subcarriers share a bin)
};

/* The grid and the degree for K subcarriers: L = 2K (rounded up to a fast FFT length) */
std::shared_ptr<const grid_tables> grid_for(int K)
{
    return cached<grid_tables>(
        16,
        [&](const grid_tables& t) { return t.K == K; },
        [&] {
            auto t = std::make_shared<grid_tables>();
            t->K = K;
            t->L = fast_len(2 * K);
            // the largest |2 pi k' d / L|, and sum_k |Y_k| x^(P+1) / (P+1)!
            const double x = 0.5 * TWO_PI * (0.5 * K) / double(t->L);
            double term = std::sqrt(double(K)) * x;
            int P = 0;
            while (term > 1e-9 && P < 40) {
                P++;
                term *= x / double(P + 1);
            }
            t->P = P;
            t->t.resize(size_t(P + 1) * K);
            t->bin.resize(K);
            for (int k = 0; k < K; k++) {
                t->bin[k] = (k - K / 2 + t->L) % t->L;
                const double a = TWO_PI * double(k - K / 2) / double(t->L);
                double v = 1.0;
                for (int p = 0; p <= P; p++) {
                    t->t[size_t(p) * K + k] = v;
                    v *= a / double(p + 1);
                }
            }
            return std::shared_ptr<const grid_tables>(t);
        });
}

struct ofdm_grid {
    std::shared_ptr<const grid_tables> t;
    fftw_complex* buf; // (P + 1) x L: the transforms, one after the other; c_p[m] at p L + m
    fftw_plan plan;

    explicit ofdm_grid(std::shared_ptr<const grid_tables> tables)
        : t(std::move(tables)),
          buf(fftw_alloc_complex(size_t(t->P + 1) * t->L)),
          plan(fft_batch(t->L, t->P + 1))
    {
    }
    ~ofdm_grid() { fftw_free(buf); }
    ofdm_grid(const ofdm_grid&) = delete;
    ofdm_grid& operator=(const ofdm_grid&) = delete;

    /* the polynomials of one symbol's subcarriers X (times `norm`) */
    void symbol(const double* xr, const double* xi, double norm)
    {
        const int K = t->K, L = t->L, P = t->P;
        std::memset(buf, 0, sizeof(fftw_complex) * size_t(P + 1) * L);
        for (int p = 0; p <= P; p++) {
            const double* tp = t->t.data() + size_t(p) * K;
            double* b = reinterpret_cast<double*>(buf + size_t(p) * L);
            // Y (j a)^p: the real factor, then j^p as a quarter turn p times
            const double sr = (p & 2) ? -norm : norm;
            for (int k = 0; k < K; k++) {
                const int j = t->bin[k];
                const double vr = sr * tp[k] * xr[k], vi = sr * tp[k] * xi[k];
                b[2 * j] = (p & 1) ? -vi : vr;
                b[2 * j + 1] = (p & 1) ? vr : vi;
            }
        }
        fftw_execute_dft(plan, buf, buf);
    }

    /* s(u[i]) for i < n into er/ei. m and d are work space; every array has room for n +
     * VLEN values (whole vectors are computed, the next run overwrites what goes past one) */
    void eval(const double* u, int n, double* m, double* d, double* er, double* ei) const
    {
        const int P = t->P;
        const double L = t->L, inv = 1.0 / L;
        for (int i = 0; i < n; i++) {
            const double w = u[i] - L * vfloor(u[i] * inv); // into [0, L): the CP wraps
            const double q = vfloor(w + 0.5);
            d[i] = w - q;
            m[i] = q >= L ? q - L : q;
        }
        for (int i = n; i < n + VLEN; i++)
            d[i] = 0.0;
        const size_t stride = 2 * size_t(t->L); // from c_p[m] to c_(p+1)[m]
        int i = 0;
        while (i < n) {
            const double mi = m[i];
            int r = i + 1;
            while (r < n && m[r] == mi)
                r++;
            const double* c = reinterpret_cast<const double*>(buf) + 2 * size_t(mi);
            for (int j = i; j < r; j += VLEN) {
                vd dv, re, im;
                std::memcpy(&dv, d + j, sizeof dv);
                poly_eo(c, c + 1, stride, P, dv, re, im);
                std::memcpy(er + j, &re, sizeof re);
                std::memcpy(ei + j, &im, sizeof im);
            }
            i = r;
        }
    }
};

enum ofdm_way { OFDM_HORNER, OFDM_GRID, OFDM_PERIODIC, OFDM_CHIRPZ };

/* symbols longer than this are not made whole (Horner's rule or the grid make them) */
constexpr int OFDM_SYMBOL_MAX = 1 << 17;

/* The cost constants of ofdm_method, in Horner's steps (one complex multiply-add a sample,
 * 4 / VLEN vector multiply-adds): an FFT of L points as OFDM_FFT L log2 L of them, one step
 * of the grid's polynomial (2 vector multiply-adds) as OFDM_POLY VLEN of them a vector. With
 * these the way chosen ran within a few percent of the fastest of the four (each forced by
 * DRIFT_SIM_OFDM) for 16 to 1,200 subcarriers of 3 and 15 kHz at 1.92 to 20 MS/s, on
 * x86-64-v3 and -v4. */
constexpr double OFDM_FFT = 1.0, OFDM_POLY = 0.5;

/* The way that costs least a sample for K subcarriers and symbols of S samples (a useful
 * period of S_u), given what the periodic way needs (per.M < 0: the spacing does not divide
 * the rate) and the grid (g). */
ofdm_way ofdm_method(int K, double S, double S_u, const periodic_tables& per,
                     const grid_tables& g)
{
    ofdm_way best = OFDM_HORNER;
    double cost = K + 4.0; // and two sin/cos
    // the grid: its FFTs a symbol, and P + 1 polynomial steps for each vector of samples
    // (the samples of one grid point share a polynomial: L (1 + cp) runs a symbol)
    const double run = S_u / g.L;
    const double vectors = std::ceil(run / VLEN) / std::max(run, 1.0); // a sample
    const double grid = OFDM_FFT * (g.P + 1) * g.L * std::log2(double(g.L)) / S +
                        OFDM_POLY * VLEN * (g.P + 1) * vectors + 2.0;
    if (grid < cost) {
        best = OFDM_GRID;
        cost = grid;
    }
    if (S + 6 <= OFDM_SYMBOL_MAX) {
        if (per.M >= 0) {
            const double c =
                (OFDM_FFT * per.P * std::log2(double(per.P)) + K) * (per.M + 1) / S + per.M + 1.0;
            if (c < cost) {
                best = OFDM_PERIODIC;
                cost = c;
            }
        }
        const double L = chirpz_len(K, int(S) + 6);
        const double c = (2.0 * OFDM_FFT * L * std::log2(L) + L + 2.0 * K) / S + 2.0;
        if (c < cost)
            best = OFDM_CHIRPZ;
    }
    return best;
}

/* The way DRIFT_SIM_OFDM names (horner, grid, periodic, chirpz: for tests and comparisons),
 * or -1 when it is not set */
int ofdm_forced(const periodic_tables& per, double S)
{
    const char* env = std::getenv("DRIFT_SIM_OFDM");
    if (!env || !*env)
        return -1;
    const std::string way(env);
    if (way == "horner")
        return OFDM_HORNER;
    if (way == "grid")
        return OFDM_GRID;
    if (way != "periodic" && way != "chirpz")
        throw std::invalid_argument("DRIFT_SIM_OFDM=" + way +
                                    ": not one of horner, grid, periodic, chirpz");
    if (S + 6 > OFDM_SYMBOL_MAX)
        throw std::invalid_argument("DRIFT_SIM_OFDM=" + way + ": symbols of " +
                                    std::to_string(S) + " samples, more than the " +
                                    std::to_string(OFDM_SYMBOL_MAX) + " it makes whole");
    if (way == "chirpz")
        return OFDM_CHIRPZ;
    if (per.M < 0)
        throw std::invalid_argument("DRIFT_SIM_OFDM=periodic: the subcarrier spacing does not "
                                    "divide the sample rate");
    return OFDM_PERIODIC;
}

/* The sample index at which a position (whole + frac + k step, step > 0) reaches s */
inline int64_t first_sample(const lin_pos& p, int64_t s)
{
    const long double k = ((long double)(s - p.whole) - (long double)p.frac) / p.step;
    return int64_t(std::ceil(k));
}

/* One symbol made whole by a transform: samples k0 .. k0 + n - 1 (two more each side than
 * the symbol has: whichever way a position's rounding puts a sample, it is here) */
struct ofdm_symbol {
    int64_t k0 = 0;
    int n = 0;
    std::vector<double> re, im;
};

/* Work buffers and per-emitter state carried from one anchor segment to the next. */
struct scratch {
    std::vector<double> er, ei, cr, ci, gate, fl, fr, y, t1, t2, ph;
    scratch()
    {
        // room for a whole vector past the segment (ofdm_grid::eval)
        for (auto* v : { &er, &ei, &cr, &ci, &gate, &fl, &fr, &y, &t1, &t2, &ph })
            v->resize(ANCHOR + VLEN);
    }
};

/* One emitter's state carried from one anchor segment to the next, and (shared by all
 * emitters of a channel, so it stays in the cache) the segment's scratch buffers. */
struct work {
    std::vector<double>&er, &ei, &cr, &ci, &gate, &fl, &fr, &y, &t1, &t2, &ph;
    // pulse trains: the symbol the coefficients belong to, the symbols around it
    int64_t cur = INT64_MIN;
    std::vector<double> sym_r, sym_i, coef_r, coef_i;
    // or a segment's symbols and their polynomials at once (pulse_coef_block)
    std::vector<double> bsym_r, bsym_i, bcoef_r, bcoef_i;
    // FM noise: the segment its Taylor polynomial belongs to
    int64_t seg = INT64_MIN;
    std::vector<double> poly, tth, tom, ts, tc, tterm;
    // OFDM: the way (-1: not chosen yet) and its state; the symbol whose subcarriers are in
    // xr/xi (and, for the grid, whose polynomials it holds)
    int ofdm_way = -1;
    std::unique_ptr<ofdm_grid> grid;
    std::unique_ptr<ofdm_periodic> per;
    std::unique_ptr<ofdm_chirpz> cz;
    ofdm_symbol whole; // the symbol the periodic or the chirp-z way made
    int64_t ofdm_sym = INT64_MIN;
    std::vector<double> xr, xi;

    explicit work(scratch& s)
        : er(s.er),
          ei(s.ei),
          cr(s.cr),
          ci(s.ci),
          gate(s.gate),
          fl(s.fl),
          fr(s.fr),
          y(s.y),
          t1(s.t1),
          t2(s.t2),
          ph(s.ph)
    {
    }
};

void need(bool ok, int kind)
{
    if (!ok)
        throw std::invalid_argument("add_emitter: too few positions, parameters or table "
                                    "entries for kind " +
                                    std::to_string(kind));
}

/* What envelope() made: a complex envelope in er/ei, or (phase and frequency modulation)
 * only a phase in ph, in cycles, that the carrier's phase is added to. */
enum { ENV_COMPLEX, ENV_PHASE };

/* The envelope (mean power 1) of samples lo..hi-1 of the anchor segment at a, into
 * w.er/w.ei[0 .. hi - lo) or w.ph[0 .. hi - lo). */
int envelope(int kind,
             const lin_pos* pos,
             int npos,
             const double* params,
             int nparams,
             const double* table,
             int64_t table_size,
             uint64_t key,
             int64_t a,
             int64_t lo,
             int64_t hi,
             work& w)
{
    const int len = int(hi - lo);
    const int k0 = int(lo - a); // offset of the first sample in the segment
    double* er = w.er.data();
    double* ei = w.ei.data();
    switch (kind) {
    case KIND_CW:
        std::fill(er, er + len, 1.0);
        std::fill(ei, ei + len, 0.0);
        return ENV_COMPLEX;
    case KIND_BPSK:
    case KIND_QPSK:
    case KIND_NOISE: {
        need(npos >= 3 && nparams >= 3, kind);
        const int span = int(params[1]);
        const int deg = int(params[2]);
        const int taps = 2 * span + 1;
        need(span >= 0 && deg >= 0 && table_size == int64_t(taps) * (deg + 1), kind);
        w.sym_r.resize(taps);
        w.sym_i.resize(taps);
        w.coef_r.resize(deg + 1);
        w.coef_i.resize(deg + 1);
        int64_t wa;
        double fa;
        pos_at(pos[2], a, wa, fa);
        split_arr(fa, pos[2].step, k0, len, w.fl.data(), w.fr.data());
        for (int i = 0; i < len; i++)
            w.y[i] = 2.0 * w.fr[i] - 1.0;
        const int64_t first = wa + int64_t(w.fl[0]);
        const int64_t last = wa + int64_t(w.fl[std::max(len - 1, 0)]);
        if (len > 0 && last >= first && last - first < 4 * int64_t(len)) {
            // up to four symbols a sample: every symbol's polynomial of the segment at once,
            // in vectors (beyond, making the skipped symbols' costs more than a symbol at a
            // time: bench/sim.py's PSK table)
            const int nb = int(last - first + 1);
            const int nbv = (nb + VLEN - 1) / VLEN * VLEN;
            const int ns = nbv + taps - 1;
            w.bsym_r.resize(ns);
            w.bsym_i.resize(ns);
            for (int m = 0; m < ns; m++)
                symbol(kind, key, first - span + m, w.bsym_r[m], w.bsym_i[m]);
            w.bcoef_r.resize(size_t(deg + 1) * nbv);
            w.bcoef_i.resize(size_t(deg + 1) * nbv);
            pulse_coef_block(w.bsym_r.data(), w.bsym_i.data(), taps, table, deg, nbv,
                             w.bcoef_r.data(), w.bcoef_i.data());
            int i = 0;
            while (i < len) {
                const int r = run_end(w.fl.data(), i, len, fa, pos[2].step, k0);
                const int m = int(wa + int64_t(w.fl[i]) - first);
                const double* cr = w.bcoef_r.data() + m;
                const double* ci = w.bcoef_i.data() + m;
                if (r - i <= 8)
                    poly_c_run(cr, ci, nbv, deg, w.y.data() + i, er + i, ei + i, r - i);
                else
                    poly_c(cr, ci, nbv, deg, w.y.data() + i, er + i, ei + i, r - i);
                i = r;
            }
            w.cur = INT64_MIN; // the symbol-at-a-time path below starts afresh
            return ENV_COMPLEX;
        }
        int i = 0;
        while (i < len) {
            const double f0 = w.fl[i];
            const int r = run_end(w.fl.data(), i, len, fa, pos[2].step, k0);
            const int64_t b = wa + int64_t(f0);
            if (b != w.cur) {
                if (b == w.cur + 1) {
                    for (int j = 0; j + 1 < taps; j++) {
                        w.sym_r[j] = w.sym_r[j + 1];
                        w.sym_i[j] = w.sym_i[j + 1];
                    }
                    symbol(kind, key, b + span, w.sym_r[taps - 1], w.sym_i[taps - 1]);
                } else {
                    for (int j = 0; j < taps; j++)
                        symbol(kind, key, b - span + j, w.sym_r[j], w.sym_i[j]);
                }
                w.cur = b;
                pulse_coef(w.sym_r.data(), w.sym_i.data(), taps, table, deg,
                           w.coef_r.data(), w.coef_i.data());
            }
            if (r - i <= 8)
                poly_c_run(w.coef_r.data(), w.coef_i.data(), 1, deg, w.y.data() + i, er + i,
                           ei + i, r - i);
            else
                poly_c(w.coef_r.data(), w.coef_i.data(), 1, deg, w.y.data() + i, er + i,
                       ei + i, r - i);
            i = r;
        }
        return ENV_COMPLEX;
    }
    case KIND_FM_TONE: {
        need(npos >= 3 && nparams >= 2, kind);
        int64_t wa;
        double fa;
        pos_at(pos[2], a, wa, fa);
        split_arr(fa, pos[2].step, k0, len, w.fl.data(), w.fr.data());
        sincos_arr(w.fr.data(), w.t1.data(), w.t2.data(), len);
        const double beta_cycles = params[1] / TWO_PI;
        for (int i = 0; i < len; i++)
            w.ph[i] = beta_cycles * w.t1[i];
        return ENV_PHASE;
    }
    case KIND_FM_NOISE: {
        need(npos >= 2 && nparams >= 4, kind);
        const int tones = int(params[1]);
        const int64_t seg_len = int64_t(params[2]);
        const int deg = int(params[3]);
        need(tones >= 0 && npos >= 2 + tones && table_size >= 2 * tones && seg_len >= 2 &&
                 deg >= 0,
             kind);
        w.poly.resize(deg + 1);
        const double half = 0.5 * double(seg_len);
        int i = 0;
        while (i < len) {
            const int64_t k = lo + i;
            const int64_t seg = floor_div(k, seg_len);
            const int r = int(std::min<int64_t>(len, (seg + 1) * seg_len - lo));
            if (seg != w.seg) {
                // Taylor coefficients in u = (k - centre) / half:
                // sum_t A_t w_t^n sin(theta_t + n pi / 2) / n!
                const int64_t c0 = seg * seg_len;
                for (auto* v : { &w.tth, &w.tom, &w.ts, &w.tc, &w.tterm })
                    v->resize(tones);
                for (int t = 0; t < tones; t++) {
                    int64_t wt;
                    double f;
                    pos_at(pos[2 + t], c0, wt, f);
                    w.tth[t] = f + half * pos[2 + t].step + table[tones + t];
                    w.tom[t] = TWO_PI * pos[2 + t].step * half;
                }
                taylor_coef(w.tth.data(), w.tom.data(), table, tones, deg, w.ts.data(),
                            w.tc.data(), w.tterm.data(), w.poly.data());
                w.seg = seg;
            }
            const double centre = double(seg * seg_len) + half;
            const double inv = 1.0 / half;
            for (int j = i; j < r; j++)
                w.y[j] = (double(lo + j) - centre) * inv;
            poly_r(w.poly.data(), deg, w.y.data() + i, w.ph.data() + i, r - i);
            for (int j = i; j < r; j++)
                w.ph[j] *= 1.0 / TWO_PI;
            i = r;
        }
        return ENV_PHASE;
    }
    case KIND_CHIRP: {
        need(npos >= 3 && nparams >= 3, kind);
        const double bw = params[1], period = params[2];
        int64_t wa;
        double fa;
        pos_at(pos[2], a, wa, fa);
        split_arr(fa, pos[2].step, k0, len, w.fl.data(), w.fr.data());
        for (int i = 0; i < len; i++) {
            const double tau = w.fr[i] * period;
            w.ph[i] = -bw / 2 * tau + bw / (2 * period) * tau * tau;
        }
        return ENV_PHASE;
    }
    case KIND_OFDM: {
        need(npos >= 3 && nparams >= 6, kind);
        const int K = int(params[1]);
        const double spacing = params[2], t_u = params[3], cp = params[4], t_sym = params[5];
        need(K >= 1 && K <= 4096 && pos[2].step > 0.0, kind);
        w.xr.resize(K);
        w.xi.resize(K);
        const double step = pos[2].step; // symbols a sample
        const double theta = spacing * t_sym * step; // useful periods a sample
        const double norm = 1.0 / std::sqrt(double(K));
        const double shift = double(K / 2);
        // the longest symbol, and a margin of two samples each side (ofdm_symbol)
        const double S = 1.0 / step;
        const int nmax = int(std::min<double>(OFDM_SYMBOL_MAX, std::ceil(S) + 6.0));
        if (w.ofdm_way < 0) {
            auto per = periodic_for(K, nmax, theta);
            auto g = grid_for(K);
            w.ofdm_way = ofdm_forced(*per, S);
            if (w.ofdm_way < 0)
                w.ofdm_way = ofdm_method(K, S, S / (1.0 + cp), *per, *g);
            if (w.ofdm_way == OFDM_GRID)
                w.grid = std::make_unique<ofdm_grid>(std::move(g));
            else if (w.ofdm_way == OFDM_PERIODIC)
                w.per = std::make_unique<ofdm_periodic>(std::move(per));
            else if (w.ofdm_way == OFDM_CHIRPZ)
                w.cz = std::make_unique<ofdm_chirpz>(
                    tables_for(K, nmax, theta, -shift * theta));
        }
        int64_t wa;
        double fa;
        pos_at(pos[2], a, wa, fa);
        split_arr(fa, step, k0, len, w.fl.data(), w.fr.data());
        int i = 0;
        while (i < len) {
            const int r = run_end(w.fl.data(), i, len, fa, step, k0);
            const int64_t sym = wa + int64_t(w.fl[i]);
            if (sym != w.ofdm_sym) {
                qpsk_arr(key, sym * 4096, K, w.xr.data(), w.xi.data());
                w.ofdm_sym = sym;
                if (w.ofdm_way == OFDM_GRID) {
                    w.grid->symbol(w.xr.data(), w.xi.data(), norm);
                } else if (w.ofdm_way != OFDM_HORNER) {
                    // the whole symbol, from where its first sample is in an uncut stream
                    ofdm_symbol& o = w.whole;
                    const int64_t first = first_sample(pos[2], sym);
                    o.k0 = first - 2;
                    o.n = int(first_sample(pos[2], sym + 1) - first) + 4;
                    need(o.n <= nmax, kind);
                    o.re.resize(o.n);
                    o.im.resize(o.n);
                    const long double at = (long double)(pos[2].whole - sym) + pos[2].frac +
                                           (long double)o.k0 * step; // in the symbol
                    const double psi0 = spacing * (double(at) * t_sym - t_u * cp);
                    if (w.ofdm_way == OFDM_PERIODIC)
                        w.per->run(w.xr.data(), w.xi.data(), psi0, norm, o.n, o.re.data(),
                                   o.im.data());
                    else
                        w.cz->run(w.xr.data(), w.xi.data(), psi0, -shift * psi0, norm, o.n,
                                  o.re.data(), o.im.data());
                }
            }
            if (w.ofdm_way == OFDM_GRID) {
                const double ul = double(w.grid->t->L) * spacing;
                for (int j = i; j < r; j++) // time since the cyclic prefix ended, in 1/L of t_u
                    w.y[j] = ul * (w.fr[j] * t_sym - t_u * cp);
                w.grid->eval(w.y.data() + i, r - i, w.t1.data(), w.t2.data(), er + i, ei + i);
            } else if (w.ofdm_way == OFDM_HORNER) {
                // z = exp(j 2 pi psi) and z^(-K/2) for each sample, then sum_k X_k z^k
                for (int j = i; j < r; j++) {
                    w.y[j] = spacing * (w.fr[j] * t_sym - t_u * cp);
                    w.ph[j] = -shift * w.y[j];
                }
                sincos_arr(w.y.data() + i, w.ci.data() + i, w.cr.data() + i, r - i);
                horner_run(K, w.xr.data(), w.xi.data(), w.cr.data() + i, w.ci.data() + i,
                           w.t1.data() + i, w.t2.data() + i, r - i);
                sincos_arr(w.ph.data() + i, w.ci.data() + i, w.cr.data() + i, r - i);
                for (int j = i; j < r; j++) {
                    const double sr = w.t1[j] * norm, si = w.t2[j] * norm;
                    er[j] = sr * w.cr[j] - si * w.ci[j];
                    ei[j] = sr * w.ci[j] + si * w.cr[j];
                }
            } else {
                const int64_t at = lo + i - w.whole.k0;
                if (at < 0 || at + (r - i) > w.whole.n)
                    throw std::logic_error("OFDM: a sample outside its symbol's span");
                std::memcpy(er + i, w.whole.re.data() + at, sizeof(double) * (r - i));
                std::memcpy(ei + i, w.whole.im.data() + at, sizeof(double) * (r - i));
            }
            i = r;
        }
        return ENV_COMPLEX;
    }
    default:
        throw std::invalid_argument("add_emitter: unknown kind " + std::to_string(kind));
    }
}
} // namespace

void gauss(uint64_t key, int64_t first, int n, std::complex<double>* out)
{
    std::vector<double> u1(ANCHOR), u2(ANCHOR), re(ANCHOR), im(ANCHOR);
    for (int i0 = 0; i0 < n; i0 += ANCHOR) {
        const int m = std::min(ANCHOR, n - i0);
        uniforms(key, first + i0, m, u1.data(), u2.data());
        gauss_arr(u1.data(), u2.data(), re.data(), im.data(), m);
        for (int i = 0; i < m; i++)
            out[i0 + i] = { re[i], im[i] };
    }
}

void pulse_train(const double* pos,
                 int n,
                 int64_t lo,
                 const std::complex<double>* symbols,
                 int64_t nsym,
                 const double* table,
                 int64_t table_size,
                 int steps,
                 int span,
                 std::complex<double>* out)
{
    const double centre = double(span + 1) * steps;
    for (int i = 0; i < n; i++) {
        const double base = std::floor(pos[i]);
        const double frac = pos[i] - base;
        const int64_t b = int64_t(base);
        std::complex<double> acc(0.0, 0.0);
        for (int j = -span; j <= span; j++) {
            const int64_t s = b + j - lo;
            if (s < 0 || s >= nsym)
                throw std::out_of_range("pulse_train: symbol " + std::to_string(s) +
                                        " outside the table");
            const double xi = (frac - j) * steps + centre;
            const int64_t i0 = int64_t(xi);
            if (i0 < 0 || i0 + 1 >= table_size)
                throw std::out_of_range("pulse_train: pulse table too short");
            const double w = xi - double(i0);
            const double g = table[i0] * (1.0 - w) + table[i0 + 1] * w;
            acc += symbols[s] * g;
        }
        out[i] = acc;
    }
}

namespace {
/* One emitter's samples lo..hi-1 of the anchor segment at a, added to out_re + j out_im
 * (out_re[0] is sample lo). */
void add_segment(const emitter& e,
                 work& w,
                 int64_t a,
                 int64_t lo,
                 int64_t hi,
                 double* out_re,
                 double* out_im)
{
    const lin_pos* pos = e.pos.data();
    const int len = int(hi - lo), k0 = int(lo - a);
    const int mode = envelope(e.kind, pos, int(e.pos.size()), e.params.data(),
                              int(e.params.size()), e.table.data(), int64_t(e.table.size()),
                              e.key, a, lo, hi, w);
    int64_t wc;
    double fc;
    pos_at(pos[0], a, wc, fc);
    if (mode == ENV_PHASE) {
        // one phasor for the carrier (exact at the anchor) and the modulation
        for (int i = 0; i < len; i++)
            w.y[i] = (fc + double(k0 + i) * pos[0].step) + w.ph[i];
        sincos_arr(w.y.data(), w.ci.data(), w.cr.data(), len);
    }
    const double duty = e.params[0];
    const double* gate = nullptr;
    if (duty < 1.0) {
        int64_t ws;
        double fs;
        pos_at(pos[1], a, ws, fs);
        split_arr(fs, pos[1].step, k0, len, w.fl.data(), w.fr.data());
        for (int i = 0; i < len; i++)
            w.gate[i] = w.fr[i] < duty ? 1.0 : 0.0;
        gate = w.gate.data();
    }
    const double *er = w.er.data(), *ei = w.ei.data(), step = pos[0].step;
    if (mode == ENV_PHASE)
        mix_in1(out_re, out_im, e.amp, gate, w.cr.data(), w.ci.data(), len);
    else if (gate) // the carrier: exact at the anchor, phasor recurrences from there
        mix_carrier<true>(out_re, out_im, e.amp, gate, er, ei, fc, step, k0, len);
    else
        mix_carrier<false>(out_re, out_im, e.amp, gate, er, ei, fc, step, k0, len);
}

void check(const emitter& e)
{
    if (e.pos.size() < 2 || e.params.empty())
        throw std::invalid_argument("add_emitter: needs the carrier, the schedule and the "
                                    "duty cycle");
}
} // namespace

void add_emitter(int kind,
                 const lin_pos* pos,
                 int npos,
                 const double* params,
                 int nparams,
                 const double* table,
                 int64_t table_size,
                 uint64_t key,
                 double amp,
                 int64_t first,
                 int n,
                 std::complex<double>* acc)
{
    const emitter e{ kind,
                     std::vector<lin_pos>(pos, pos + std::max(npos, 0)),
                     std::vector<double>(params, params + std::max(nparams, 0)),
                     std::vector<double>(table, table + std::max<int64_t>(table_size, 0)),
                     key,
                     amp };
    check(e);
    scratch sc;
    work w(sc);
    std::vector<double> sum_re(ANCHOR), sum_im(ANCHOR);
    const int64_t end = first + n;
    for (int64_t a = floor_div(first, ANCHOR) * ANCHOR; a < end; a += ANCHOR) {
        const int64_t lo = std::max(first, a), hi = std::min(end, a + int64_t(ANCHOR));
        const int len = int(hi - lo);
        std::fill(sum_re.begin(), sum_re.begin() + len, 0.0);
        std::fill(sum_im.begin(), sum_im.begin() + len, 0.0);
        add_segment(e, w, a, lo, hi, sum_re.data(), sum_im.data());
        for (int i = 0; i < len; i++)
            acc[lo - first + i] += std::complex<double>(sum_re[i], sum_im[i]);
    }
}

void synthesize(const std::vector<emitter>& emitters,
                const std::complex<double>* extra,
                uint64_t noise_key,
                int64_t first,
                int n,
                double sigma,
                std::complex<double> gain,
                int bits,
                std::complex<float>* out)
{
    for (const auto& e : emitters)
        check(e);
    scratch sc;
    std::deque<work> works;
    for (size_t i = 0; i < emitters.size(); i++)
        works.emplace_back(sc);
    std::vector<double> acc_re(ANCHOR), acc_im(ANCHOR); // the sum, real and imaginary apart
    const double levels = bits > 0 ? std::ldexp(1.0, bits - 1) : 0.0;
    const int64_t end = first + n;
    for (int64_t a = floor_div(first, ANCHOR) * ANCHOR; a < end; a += ANCHOR) {
        const int64_t lo = std::max(first, a), hi = std::min(end, a + int64_t(ANCHOR));
        const int len = int(hi - lo);
        if (extra) {
            for (int i = 0; i < len; i++) {
                acc_re[i] = extra[lo - first + i].real();
                acc_im[i] = extra[lo - first + i].imag();
            }
        } else {
            std::fill(acc_re.begin(), acc_re.begin() + len, 0.0);
            std::fill(acc_im.begin(), acc_im.begin() + len, 0.0);
        }
        for (size_t i = 0; i < emitters.size(); i++)
            add_segment(emitters[i], works[i], a, lo, hi, acc_re.data(), acc_im.data());
        // the noise and the ADC, in the scratch buffers the emitters are done with
        uniforms(noise_key, lo, len, sc.t1.data(), sc.t2.data());
        gauss_arr(sc.t1.data(), sc.t2.data(), sc.er.data(), sc.ei.data(), len);
        finish_arr(acc_re.data(), acc_im.data(), sc.er.data(), sc.ei.data(), sigma,
                   gain.real(), gain.imag(), levels,
                   reinterpret_cast<float*>(out + (lo - first)), len);
    }
}

void finish(const std::complex<double>* acc,
            uint64_t key,
            int64_t first,
            int n,
            double sigma,
            std::complex<double> gain,
            int bits,
            std::complex<float>* out)
{
    const double levels = bits > 0 ? std::ldexp(1.0, bits - 1) : 0.0;
    std::vector<double> u1(ANCHOR), u2(ANCHOR), re(ANCHOR), im(ANCHOR), ar(ANCHOR), ai(ANCHOR);
    for (int i0 = 0; i0 < n; i0 += ANCHOR) {
        const int m = std::min(ANCHOR, n - i0);
        for (int i = 0; i < m; i++) {
            ar[i] = acc[i0 + i].real();
            ai[i] = acc[i0 + i].imag();
        }
        uniforms(key, first + i0, m, u1.data(), u2.data());
        gauss_arr(u1.data(), u2.data(), re.data(), im.data(), m);
        finish_arr(ar.data(), ai.data(), re.data(), im.data(), sigma, gain.real(), gain.imag(),
                   levels, reinterpret_cast<float*>(out + i0), m);
    }
}

} // namespace DRIFT_SIM_ISA
} // namespace sim
} // namespace drift
} // namespace gr
