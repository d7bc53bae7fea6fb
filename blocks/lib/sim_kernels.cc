/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <gnuradio/drift/sim_kernels.h>
#include <cmath>
#include <stdexcept>
#include <string>

namespace gr {
namespace drift {
namespace sim {

namespace {
inline uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

inline double uniform(uint64_t key, int64_t counter)
{
    return double(mix(uint64_t(counter) ^ key) >> 11) * (1.0 / 9007199254740992.0);
}
} // namespace

void gauss(uint64_t key, int64_t first, int n, std::complex<double>* out)
{
    const double two_pi = 2.0 * M_PI;
    for (int i = 0; i < n; i++) {
        const int64_t c = first + i;
        const double u1 = uniform(key, 2 * c);
        const double u2 = uniform(key, 2 * c + 1);
        const double r = std::sqrt(-std::log1p(-u1));
        out[i] = std::polar(r, two_pi * u2);
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

} // namespace sim
} // namespace drift
} // namespace gr
