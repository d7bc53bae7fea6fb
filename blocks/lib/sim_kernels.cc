/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

/* The simulator's synthesis (drift.sim.synth, whose numpy code is the reference).
 *
 * The kernels themselves are in sim_kernels_isa.h, included here once per instruction set:
 * on x86-64 with GCC for x86-64-v4 (AVX-512), x86-64-v3 (AVX2, FMA) and the baseline, each
 * whole (every loop and the code around it), the fastest one the CPU has picked when the
 * library loads. Speed comes from structure-of-arrays loops the compiler vectorizes, from
 * polynomial sin/cos/log that need no library calls, from per-symbol polynomials for pulse
 * trains and per-segment Taylor polynomials for FM audio, from carrier phasor recurrences
 * that are re-anchored exactly every ANCHOR samples, and for OFDM from inverse FFTs or the
 * chirp-z transform (FFTW, double precision) wherever they cost less than the direct sum.
 * Every sample depends on its absolute index only: any block of a stream is bit-identical
 * whichever way the stream is cut. */

#if defined(__FAST_MATH__)
#error "sim_kernels.cc needs IEEE arithmetic (its rounding tricks): build it without -ffast-math"
#endif

// Every standard header comes before the first `#pragma GCC target`: what they define is
// compiled for the baseline only, so no instruction of a newer set can reach a function the
// linker shares between the instruction sets' code.
#include <gnuradio/drift/sim_kernels.h>
#include <fftw3.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace gr {
namespace drift {
namespace sim {
namespace {
/* FFTW's planner is not thread-safe (executing a plan is): every plan is made holding this */
std::mutex fftw_planner;

/* FFTW plans (double, out of place: for the short lengths here FFTW's in-place plans copy
 * through a buffer they allocate at every call, 1.5-4x the time), one pair per length,
 * shared by every thread: FFTW's planner is not thread-safe, executing a plan is.
 * FFTW_ESTIMATE plans do not depend on timing, so every process makes the same plan and the
 * same numbers. */
struct fft_pair {
    fftw_plan fwd, bwd;
};

const fft_pair& fft_plans(int L)
{
    static std::map<int, fft_pair> plans; // never erased: references stay valid
    std::lock_guard<std::mutex> guard(fftw_planner);
    auto it = plans.find(L);
    if (it != plans.end())
        return it->second;
    fftw_complex* in = fftw_alloc_complex(L);
    fftw_complex* out = fftw_alloc_complex(L);
    const fft_pair p{ fftw_plan_dft_1d(L, in, out, FFTW_FORWARD, FFTW_ESTIMATE),
                      fftw_plan_dft_1d(L, in, out, FFTW_BACKWARD, FFTW_ESTIMATE) };
    fftw_free(in);
    fftw_free(out);
    if (!p.fwd || !p.bwd)
        throw std::runtime_error("FFTW could not plan a transform of " + std::to_string(L));
    return plans.emplace(L, p).first->second;
}

/* A batch of `howmany` inverse FFTs of L points (double, in place, one after the other in
 * memory): one call does them all, far cheaper than one call each for small L (and in place
 * here costs no more than out of place). Plans as fft_plans: made once, shared,
 * deterministic. */
fftw_plan fft_batch(int L, int howmany)
{
    static std::map<std::pair<int, int>, fftw_plan> plans;
    std::lock_guard<std::mutex> guard(fftw_planner);
    auto it = plans.find({ L, howmany });
    if (it != plans.end())
        return it->second;
    fftw_complex* tmp = fftw_alloc_complex(size_t(L) * howmany);
    const int n[1] = { L };
    fftw_plan p = fftw_plan_many_dft(
        1, n, howmany, tmp, nullptr, 1, L, tmp, nullptr, 1, L, FFTW_BACKWARD, FFTW_ESTIMATE);
    fftw_free(tmp);
    if (!p)
        throw std::runtime_error("FFTW could not plan " + std::to_string(howmany) +
                                 " transforms of " + std::to_string(L));
    return plans.emplace(std::make_pair(L, howmany), p).first->second;
}

/* the smallest 2^a 3^b 5^c >= n (FFTW's fast lengths) */
int fast_len(int n)
{
    int best = 1;
    while (best < n)
        best *= 2;
    for (int p5 = 1; p5 < best; p5 *= 5)
        for (int p35 = p5; p35 < best; p35 *= 3) {
            int v = p35;
            while (v < n)
                v *= 2;
            best = std::min(best, v);
        }
    return best;
}
} // namespace
} // namespace sim
} // namespace drift
} // namespace gr

#define DRIFT_SIM_ISA baseline
#include "sim_kernels_isa.h"
#undef DRIFT_SIM_ISA

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DRIFT_SIM_X86_LEVELS 1
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define DRIFT_SIM_ISA x86_64_v3
#include "sim_kernels_isa.h"
#undef DRIFT_SIM_ISA
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define DRIFT_SIM_ISA x86_64_v4
#define DRIFT_SIM_WIDE 1
#include "sim_kernels_isa.h"
#undef DRIFT_SIM_WIDE
#undef DRIFT_SIM_ISA
#pragma GCC pop_options
#endif

namespace gr {
namespace drift {
namespace sim {
namespace {
/* One instruction set's entry points. */
struct kernel_set {
    const char* name;
    bool (*supported)();
    decltype(&baseline::gauss) gauss;
    decltype(&baseline::pulse_train) pulse_train;
    decltype(&baseline::add_emitter) add_emitter;
    decltype(&baseline::synthesize) synthesize;
    decltype(&baseline::finish) finish;
};

#define DRIFT_SIM_SET(label, ns, test)                                                      \
    kernel_set                                                                              \
    {                                                                                       \
        label, test, &ns::gauss, &ns::pulse_train, &ns::add_emitter, &ns::synthesize,       \
            &ns::finish                                                                     \
    }

const kernel_set SETS[] = {
#if defined(DRIFT_SIM_X86_LEVELS)
    DRIFT_SIM_SET("x86-64-v4",
                  x86_64_v4,
                  [] { return __builtin_cpu_supports("x86-64-v4") != 0; }),
    DRIFT_SIM_SET("x86-64-v3",
                  x86_64_v3,
                  [] { return __builtin_cpu_supports("x86-64-v3") != 0; }),
    DRIFT_SIM_SET("x86-64", baseline, [] { return true; }),
#else
    DRIFT_SIM_SET("baseline", baseline, [] { return true; }),
#endif
};
#undef DRIFT_SIM_SET

const kernel_set* find_set(const std::string& name)
{
    for (const auto& s : SETS)
        if (name == s.name && s.supported())
            return &s;
    std::string have;
    for (const auto& s : SETS)
        if (s.supported())
            have += (have.empty() ? "" : ", ") + std::string(s.name);
    throw std::invalid_argument("simulator instruction set '" + name +
                                "' is not available on this CPU; it has: " + have);
}

/* The set in use: DRIFT_SIM_ISA when it is set, else the fastest the CPU has. A
 * DRIFT_SIM_ISA that names no set of this CPU leaves none in use, and every call raises
 * the error (an exception, not a failure to load the library). */
std::string env_error;

const kernel_set* initial_set()
{
#if defined(DRIFT_SIM_X86_LEVELS)
    __builtin_cpu_init(); // this runs before the constructors that would do it
#endif
    if (const char* env = std::getenv("DRIFT_SIM_ISA"); env && *env) {
        try {
            return find_set(env);
        } catch (const std::invalid_argument& e) {
            env_error = std::string("DRIFT_SIM_ISA: ") + e.what();
            return nullptr;
        }
    }
    for (const auto& s : SETS)
        if (s.supported())
            return &s;
    return nullptr; // not reached: the last set is always supported
}

std::atomic<const kernel_set*> current{ initial_set() };

const kernel_set& use()
{
    const kernel_set* s = current.load(std::memory_order_relaxed);
    if (!s)
        throw std::invalid_argument(env_error);
    return *s;
}
} // namespace

std::vector<std::string> isas()
{
    std::vector<std::string> out;
    for (const auto& s : SETS)
        if (s.supported())
            out.push_back(s.name);
    return out;
}

std::string isa() { return use().name; }

void set_isa(const std::string& name)
{
    current.store(find_set(name), std::memory_order_relaxed);
}

void gauss(uint64_t key, int64_t first, int n, std::complex<double>* out)
{
    use().gauss(key, first, n, out);
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
    use().pulse_train(pos, n, lo, symbols, nsym, table, table_size, steps, span, out);
}

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
    use().add_emitter(
        kind, pos, npos, params, nparams, table, table_size, key, amp, first, n, acc);
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
    use().synthesize(emitters, extra, noise_key, first, n, sigma, gain, bits, out);
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
    use().finish(acc, key, first, n, sigma, gain, bits, out);
}

} // namespace sim
} // namespace drift
} // namespace gr
