/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

/* Polynomial math shared by the per-instruction-set kernels (sim_kernels_isa.h, gcc_isa.h).
 * Included by each of them inside its instruction set's namespace and `#pragma GCC target`, so
 * every instruction set gets its own copy, which goes whole into the loops that call it (no
 * include guard on purpose). Needs <cstdint> and <cstring>. */

#ifndef DRIFT_FAST_INLINE
#define DRIFT_FAST_INLINE inline __attribute__((always_inline))
#endif

constexpr double TWO_PI = 6.283185307179586476925;
constexpr double MAGIC = 6755399441055744.0; // 1.5 * 2^52: x + MAGIC - MAGIC rounds x

/* sin and cos of 2 pi x (x in cycles, |x| < 2^49): quadrant reduction, Taylor polynomials on
 * [-pi/4, pi/4] (truncation below 3e-14); branch-free, vectorizable. */
DRIFT_FAST_INLINE void sincos_cycles(double x, double& s, double& c)
{
    const double t = 4.0 * x + MAGIC;
    const double q = t - MAGIC;
    uint64_t bits;
    std::memcpy(&bits, &t, sizeof bits);
    const double r = (x - 0.25 * q) * TWO_PI;
    const double r2 = r * r;
    double ps = 1.0 / 6227020800.0;
    ps = ps * r2 - 1.0 / 39916800.0;
    ps = ps * r2 + 1.0 / 362880.0;
    ps = ps * r2 - 1.0 / 5040.0;
    ps = ps * r2 + 1.0 / 120.0;
    ps = ps * r2 - 1.0 / 6.0;
    const double sn = r + r * r2 * ps;
    double pc = -1.0 / 87178291200.0;
    pc = pc * r2 + 1.0 / 479001600.0;
    pc = pc * r2 - 1.0 / 3628800.0;
    pc = pc * r2 + 1.0 / 40320.0;
    pc = pc * r2 - 1.0 / 720.0;
    pc = pc * r2 + 1.0 / 24.0;
    pc = pc * r2 - 0.5;
    const double cs = 1.0 + r2 * pc;
    const bool odd = bits & 1, neg_s = bits & 2, neg_c = (bits + 1) & 2;
    const double a = odd ? cs : sn;
    const double b = odd ? sn : cs;
    s = neg_s ? -a : a;
    c = neg_c ? -b : b;
}
