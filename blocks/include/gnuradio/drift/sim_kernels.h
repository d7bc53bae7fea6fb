/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_SIM_KERNELS_H
#define INCLUDED_DRIFT_SIM_KERNELS_H

#include <gnuradio/drift/api.h>
#include <complex>
#include <cstdint>

namespace gr {
namespace drift {
namespace sim {

/*!
 * \brief Counter-based complex Gaussian noise: out[i] for counters first + i.
 *
 * \details
 * Each value depends only on (key, counter): splitmix64 of counter*2 and counter*2+1 xor
 * key gives two uniforms, Box-Muller makes a complex normal with E|z|^2 = 1. The same
 * numbers as drift.sim.synth._gauss (the numpy reference), so any block of a stream can be
 * made on its own and two processes agree.
 */
DRIFT_API void gauss(uint64_t key, int64_t first, int n, std::complex<double>* out);

/*!
 * \brief A pulse train evaluated at arbitrary positions (in symbols).
 *
 * \details
 * out[i] = sum over j in [-span, span] of symbols[floor(pos[i]) + j - lo] *
 * pulse(pos[i] - floor(pos[i]) - j), the pulse linearly interpolated from a table of
 * `steps` points per symbol centred at (span + 1) * steps. symbols covers indices
 * lo .. lo + nsym - 1 (relative to the same origin as pos).
 */
DRIFT_API void pulse_train(const double* pos,
                           int n,
                           int64_t lo,
                           const std::complex<double>* symbols,
                           int64_t nsym,
                           const double* table,
                           int64_t table_size,
                           int steps,
                           int span,
                           std::complex<double>* out);

} // namespace sim
} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_SIM_KERNELS_H */
