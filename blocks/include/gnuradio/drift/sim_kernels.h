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
#include <string>
#include <vector>

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

/*! Waveform kinds of add_emitter. */
enum emitter_kind {
    KIND_CW = 0,
    KIND_BPSK = 1,
    KIND_QPSK = 2,
    KIND_NOISE = 3,
    KIND_FM_TONE = 4,
    KIND_FM_NOISE = 5,
    KIND_CHIRP = 6,
    KIND_OFDM = 7,
};

/*!
 * \brief A position that is linear in the absolute sample index k: whole + frac + k * step.
 *
 * \details
 * Cycles of a carrier, symbols of a pulse train, periods of a chirp or a schedule: the
 * caller reduces the large part exactly (whole), the kernels evaluate frac + k * step in
 * extended precision at anchors (every ANCHOR samples, at absolute multiples) and in double
 * precision from there, so every sample depends on its absolute index only: any block of a
 * stream is the same whichever way the stream is cut.
 */
struct lin_pos {
    int64_t whole;
    double frac;
    double step;
};

/*! Samples between two anchors (carrier phasor re-anchoring, position re-evaluation). */
constexpr int ANCHOR = 512;

/*!
 * \brief Adds amp * envelope * carrier of one static emitter to acc[0..n) (samples first..).
 *
 * \details
 * pos[0]: the carrier phase in cycles (emitted carrier at emission time minus the node's LO
 * at arrival time), made by a phasor recurrence re-anchored every ANCHOR samples;
 * pos[1]: the on/off schedule in periods (on while its fraction < params[0], the duty cycle;
 * a duty cycle of 1 ignores it); pos[2..]: the waveform's own positions. Per kind:
 *  - KIND_CW: none.
 *  - KIND_BPSK/QPSK/NOISE: pos[2] in symbols; params[1] span S, params[2] degree D; table:
 *    (2S+1) x (D+1) monomial coefficients of the pulse g(x - j), j = -S..S, in y = 2x - 1
 *    for x in [0, 1): the pulse train sum_j a[b + j] g(x - j), b = floor(pos), symbols
 *    counter-hashed with key (BPSK +-1, QPSK exp(j 2 pi (q/4 + 1/8)), NOISE complex normal).
 *  - KIND_FM_TONE: pos[2] in audio cycles; params[1] the modulation index.
 *  - KIND_FM_NOISE: pos[2..2+T) the audio tones in cycles; params[1] T, params[2] segment
 *    length L, params[3] degree D; table: T amplitudes (rad) then T phases (cycles). The
 *    phase sum_t A_t sin(2 pi (pos_t + p_t)) is a degree-D Taylor polynomial per segment of
 *    L samples (anchored at absolute multiples of L), exact to ~1e-12 rad.
 *  - KIND_CHIRP: pos[2] in periods; params[1] bandwidth (Hz), params[2] period (s).
 *  - KIND_OFDM: pos[2] in OFDM symbols; params[1] subcarriers K, [2] spacing (Hz), [3] useful
 *    time (s), [4] cyclic prefix fraction, [5] symbol time (s); QPSK subcarrier symbols
 *    hashed with key at (symbol * 4096 + subcarrier).
 * The same function of time as drift.sim.synth.envelope (the numpy reference).
 */
DRIFT_API void add_emitter(int kind,
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
                           std::complex<double>* acc);

/*! One static emitter: add_emitter's arguments. */
struct emitter {
    int kind;
    std::vector<lin_pos> pos;
    std::vector<double> params;
    std::vector<double> table;
    uint64_t key;
    double amp;
};

/*!
 * \brief A receiver channel's output in one pass: the emitters (as add_emitter) plus extra
 * (n samples made elsewhere, or null), then finish(). Anchor segment by anchor segment, so
 * the sum stays in the first-level cache; the same numbers as add_emitter + finish.
 */
DRIFT_API void synthesize(const std::vector<emitter>& emitters,
                          const std::complex<double>* extra,
                          uint64_t noise_key,
                          int64_t first,
                          int n,
                          double sigma,
                          std::complex<double> gain,
                          int bits,
                          std::complex<float>* out);

/*!
 * \brief The receiver's output: (acc + sigma * thermal noise) * gain, quantized to `bits`
 * (0: not quantized), as complex float. The noise is gauss(key, first + i).
 */
DRIFT_API void finish(const std::complex<double>* acc,
                      uint64_t key,
                      int64_t first,
                      int n,
                      double sigma,
                      std::complex<double> gain,
                      int bits,
                      std::complex<float>* out);

/*!
 * \brief The instruction sets the kernels can run with on this CPU, fastest first.
 *
 * \details
 * The kernels are compiled once per instruction set: on x86-64 with GCC "x86-64-v4"
 * (AVX-512), "x86-64-v3" (AVX2, FMA) and "x86-64" (the baseline); elsewhere only
 * "baseline". The fastest one this CPU has is used, unless the environment variable
 * DRIFT_SIM_ISA names another (read when the library loads) or set_isa() is called. Each
 * set gives the same numbers to within a few roundings (whether a multiply and an add are
 * fused differs); within one set every process gives the same bits.
 */
DRIFT_API std::vector<std::string> isas();

/*! \brief The instruction set the kernels run with now (one of isas()). */
DRIFT_API std::string isa();

/*!
 * \brief Runs the kernels with the instruction set `name` from now on, in every thread.
 * \throws std::invalid_argument when `name` is not one of isas() (the message lists them).
 */
DRIFT_API void set_isa(const std::string& name);

} // namespace sim
} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_SIM_KERNELS_H */
