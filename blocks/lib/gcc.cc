/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

/* The GCC delay estimator (gnuradio.drift.df.estimate_delay, whose numpy code is the
 * reference) at the speed of its FFTs. gcc.h says what it computes; the comments here say
 * how. The loops over bins and lags are in gcc_isa.h, compiled for each instruction set as
 * the simulator's kernels are; VOLK does the vector products; FFTW (single precision) the
 * transforms, planned once per length and shared. */

#if defined(__FAST_MATH__)
#error "gcc.cc needs IEEE arithmetic (its rounding tricks): build it without -ffast-math"
#endif

// Every standard header comes before the first `#pragma GCC target` (see sim_kernels.cc).
#include <gnuradio/drift/gcc.h>
#include <gnuradio/fft/fft.h>
#include <fftw3.h>
#include <volk/volk.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace gr {
namespace drift {
namespace gcc_kernels {

/* The reference's phase moments E[cos phi], E[sin^2 phi] against the coherence rho: linear
 * interpolation on its table (np.interp; per interval an intercept and a slope: value =
 * c[k] + cs[k] rho), whose knots are rho_k = 1 - 10^(-k / 40), so rho's interval is
 * floor(-40 log10(1 - rho)); beyond the last knot the high-SNR limits. */
struct phase_lut {
    const double* c;
    const double* cs;
    const double* s2;
    const double* s2s;
    double last;
};

/* The final pass reads three arrays of prefix sums over the periodic spectrum extended by
 * `pad` bins on either side: of s_raw (the phase-aligned cross-spectrum), |A1|^2 and |A2|^2. */
struct final_in {
    const double* ps;
    const double* pa1;
    const double* pa2;
    int nf, pad, L, wide;
    double floor;      // of n_eff (v: its square), in the scaled units of the cross-spectrum
    double r12, r21;   // g1 / g2 and g2 / g1 (the inputs' gains): n1 = a1 - r12 s, n2 = a2 - r21 s
    double floor1, floor2; // of n1 and n2 in their channel's scaled units
    int weighting; // 0 phat, 1 plain, 2 ml
    phase_lut lut;
    double* psi; // ML weights out (nf), when weighting == 2
};

/* Sums over the bins: s, the noise spectra n1 and n2 (the SNR), the positive part of s and
 * its first two moments in frequency (RMS bandwidth), the CRB's information and its moments
 * in omega, and the weighting's variance terms: a (denominator) and b (numerator) with their
 * moments in omega (PHAT: E[cos phi], E[sin^2 phi]; plain: s, v; ML: psi s, psi^2 v). */
struct final_sums {
    double s = 0, n1 = 0, n2 = 0;
    double sp = 0, spf = 0, spf2 = 0;
    double info = 0, info_w = 0, info_w2 = 0;
    double a = 0, a_w = 0, a_w2 = 0;
    double b = 0, b_w = 0, b_w2 = 0;
};

} // namespace gcc_kernels
} // namespace drift
} // namespace gr

#define DRIFT_GCC_ISA baseline
#include "gcc_isa.h"
#undef DRIFT_GCC_ISA

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DRIFT_GCC_X86_LEVELS 1
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define DRIFT_GCC_ISA x86_64_v3
#include "gcc_isa.h"
#undef DRIFT_GCC_ISA
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define DRIFT_GCC_ISA x86_64_v4
#include "gcc_isa.h"
#undef DRIFT_GCC_ISA
#pragma GCC pop_options
#endif

namespace gr {
namespace drift {

namespace {

using cf = std::complex<float>;
using cd = std::complex<double>;
constexpr double PI = 3.14159265358979323846;
constexpr int NEAR = 16;            // lags each side of the peak summed exactly when refining
constexpr int SPLIT_MIN_M = 512;    // below: the refinement sums every bin, as the reference
constexpr int MEASURE_MAX = 1 << 17; // FFTW_MEASURE (with wisdom) up to this length
constexpr int MAX_N = 1 << 24;

/* One instruction set's loops. */
struct kernel_set {
    const char* name;
    bool (*supported)();
    decltype(&gcc_kernels::baseline::phat) phat;
    decltype(&gcc_kernels::baseline::window_mag2) window_mag2;
    decltype(&gcc_kernels::baseline::far_sums) far_sums;
    decltype(&gcc_kernels::baseline::rotate) rotate;
    decltype(&gcc_kernels::baseline::auto_values) auto_values;
    decltype(&gcc_kernels::baseline::cross_values) cross_values;
    decltype(&gcc_kernels::baseline::prefix_sums) prefix_sums;
    decltype(&gcc_kernels::baseline::final_pass) final_pass;
    decltype(&gcc_kernels::baseline::ml_weights) ml_weights;
};

#define DRIFT_GCC_SET(label, ns, test)                                                      \
    kernel_set                                                                              \
    {                                                                                       \
        label, test, &gcc_kernels::ns::phat, &gcc_kernels::ns::window_mag2,                 \
            &gcc_kernels::ns::far_sums, &gcc_kernels::ns::rotate,                           \
            &gcc_kernels::ns::auto_values, &gcc_kernels::ns::cross_values,                  \
            &gcc_kernels::ns::prefix_sums,                                                  \
            &gcc_kernels::ns::final_pass, &gcc_kernels::ns::ml_weights                      \
    }

const kernel_set SETS[] = {
#if defined(DRIFT_GCC_X86_LEVELS)
    DRIFT_GCC_SET("x86-64-v4",
                  x86_64_v4,
                  [] { return __builtin_cpu_supports("x86-64-v4") != 0; }),
    DRIFT_GCC_SET("x86-64-v3",
                  x86_64_v3,
                  [] { return __builtin_cpu_supports("x86-64-v3") != 0; }),
    DRIFT_GCC_SET("x86-64", baseline, [] { return true; }),
#else
    DRIFT_GCC_SET("baseline", baseline, [] { return true; }),
#endif
};
#undef DRIFT_GCC_SET

const kernel_set& kernels()
{
    static const kernel_set* set = [] {
#if defined(DRIFT_GCC_X86_LEVELS)
        __builtin_cpu_init();
#endif
        for (const auto& s : SETS)
            if (s.supported())
                return &s;
        return &SETS[0]; // not reached: the last set is always supported
    }();
    return *set;
}

//! The smallest 2,3,5,7,11-smooth number >= n (scipy.fft.next_fast_len for complex data).
int next_fast_len(int n)
{
    for (int m = std::max(n, 1);; ++m) {
        int r = m;
        for (int p : { 2, 3, 5, 7, 11 })
            while (r % p == 0)
                r /= p;
        if (r == 1)
            return m;
    }
}

template <class T>
struct volk_deleter {
    void operator()(T* p) const { volk_free(p); }
};
template <class T>
using volk_ptr = std::unique_ptr<T[], volk_deleter<T>>;

template <class T>
volk_ptr<T> volk_array(size_t n)
{
    void* p = volk_malloc(std::max<size_t>(n, 1) * sizeof(T), volk_get_alignment());
    if (!p)
        throw std::bad_alloc();
    return volk_ptr<T>(static_cast<T*>(p));
}

/* FFTW plans and tables of one length nf, shared by every estimator of that length. The
 * plans are made holding GNU Radio's FFTW planner lock (FFTW's planner is not thread-safe,
 * executing a plan is, on other arrays of the same alignment). Up to MEASURE_MAX points
 * they are FFTW_MEASURE plans: a gr::fft transform of the same length is made first, which
 * loads GNU Radio's wisdom file (and saves what it measures there), so this process and
 * later ones plan from wisdom; longer transforms are FFTW_ESTIMATE plans (measuring them
 * takes minutes, for little gain). */
struct tables {
    int nf = 0, M = 0;
    fftwf_plan fwd = nullptr, bwd = nullptr;
    volk_ptr<cf> tw_fwd; // exp(-i pi j / nf): the odd bins' input twiddle
    volk_ptr<cf> tw_inv; // exp(+i pi m / nf): the odd lags' output twiddle
    volk_ptr<float> g[4]; // far-lag tables (M >= SPLIT_MIN_M)
    double sin_bq[2 * NEAR + 1], cos_bq[2 * NEAR + 1];

    ~tables()
    {
        std::lock_guard<std::mutex> lock(gr::fft::planner::mutex());
        if (fwd)
            fftwf_destroy_plan(fwd);
        if (bwd)
            fftwf_destroy_plan(bwd);
    }
};

void make_plans(tables& t)
{
    const int nf = t.nf;
    unsigned flags = FFTW_ESTIMATE;
    if (nf <= MEASURE_MAX) {
        // gr::fft loads and extends GNU Radio's wisdom (each takes the planner lock itself)
        gr::fft::fft_complex_fwd load_fwd(nf, 1);
        gr::fft::fft_complex_rev load_bwd(nf, 1);
        flags = FFTW_MEASURE;
    }
    auto in = volk_array<cf>(nf), out = volk_array<cf>(nf);
    std::lock_guard<std::mutex> lock(gr::fft::planner::mutex());
    auto* i = reinterpret_cast<fftwf_complex*>(in.get());
    auto* o = reinterpret_cast<fftwf_complex*>(out.get());
    t.fwd = fftwf_plan_dft_1d(nf, i, o, FFTW_FORWARD, flags);
    t.bwd = fftwf_plan_dft_1d(nf, i, o, FFTW_BACKWARD, flags);
    if (!t.fwd || !t.bwd)
        throw std::runtime_error("gcc_estimator: FFTW could not plan " + std::to_string(nf) +
                                 " points");
}

std::shared_ptr<const tables> make_tables(int nf)
{
    auto t = std::make_shared<tables>();
    t->nf = nf;
    t->M = 2 * nf;
    make_plans(*t);
    t->tw_fwd = volk_array<cf>(nf);
    t->tw_inv = volk_array<cf>(nf);
    for (int j = 0; j < nf; ++j) {
        const double a = PI * j / nf;
        t->tw_fwd[j] = cf(float(std::cos(a)), float(-std::sin(a)));
        t->tw_inv[j] = cf(float(std::cos(a)), float(std::sin(a)));
    }
    const int M = t->M;
    const double beta = PI / M;
    for (int q = -NEAR; q <= NEAR; ++q) {
        t->sin_bq[q + NEAR] = std::sin(beta * q);
        t->cos_bq[q + NEAR] = std::cos(beta * q);
    }
    if (M >= SPLIT_MIN_M) {
        // Lag l, k = (l - peak) mod M, m = peak - l = -k: the kernel of a far lag is
        // (-1)^m sin(pi delta) (cot((m + delta) pi / M) - i), cot expanded to second order in
        // delta: cot(th) - eps csc^2(th) + eps^2 csc^2(th) cot(th), th = pi m / M.
        for (int j = 0; j < 4; ++j)
            t->g[j] = volk_array<float>(M);
        for (int k = 0; k < M; ++k) {
            const bool near = k <= NEAR || k >= M - NEAR;
            const double sgn = (k & 1) ? -1.0 : 1.0;
            const double th = PI * k / M; // the tables hold m = -k: cot odd, csc^2 even
            const double cot = k == 0 ? 0.0 : std::cos(th) / std::sin(th);
            const double csc2 = k == 0 ? 0.0 : 1.0 / (std::sin(th) * std::sin(th));
            t->g[0][k] = near ? 0.0f : float(-sgn * cot);
            t->g[1][k] = near ? 0.0f : float(sgn * csc2);
            t->g[2][k] = near ? 0.0f : float(-sgn * csc2 * cot);
            t->g[3][k] = near ? 0.0f : float(sgn);
        }
    }
    return t;
}

std::shared_ptr<const tables> tables_for(int nf)
{
    static std::mutex lock;
    static std::map<int, std::weak_ptr<const tables>> cache;
    {
        std::lock_guard<std::mutex> guard(lock);
        auto it = cache.find(nf);
        if (it != cache.end())
            if (auto t = it->second.lock())
                return t;
    }
    auto t = make_tables(nf); // outside the lock: measuring may take a while
    std::lock_guard<std::mutex> guard(lock);
    auto& slot = cache[nf];
    if (auto other = slot.lock())
        return other; // another thread made it meanwhile
    slot = t;
    return t;
}

//! The reference's table of E[cos phi], E[sin^2 phi] against the coherence (df.tdoa).
struct phase_table {
    static constexpr int NR = 161;
    double rho[NR], e_cos[NR], e_sin2[NR], cos_slope[NR], sin2_slope[NR];
    double cos_icpt[NR], sin2_icpt[NR]; // value = icpt + slope rho on [rho_k, rho_k+1)
    phase_table()
    {
        const int np = 20001;
        for (int k = 0; k < NR; ++k)
            rho[k] = 1.0 - std::pow(10.0, -4.0 * k / (NR - 1));
        rho[0] = 0.0;
        const double dphi = 2 * PI / (np - 1);
        for (int k = 0; k < NR; ++k) {
            double norm = 0, c = 0, s2 = 0;
            const double r = rho[k];
            for (int j = 0; j < np; ++j) {
                const double phi = -PI + j * dphi;
                const double b = r * std::cos(phi);
                const double q = std::sqrt(1.0 - b * b);
                const double pdf =
                    (1 - r * r) / (2 * PI * q * q) * (1 + b * std::acos(-b) / q);
                norm += pdf;
                c += pdf * std::cos(phi);
                s2 += pdf * std::sin(phi) * std::sin(phi);
            }
            e_cos[k] = c / norm;
            e_sin2[k] = s2 / norm;
        }
        for (int k = 0; k + 1 < NR; ++k) {
            cos_slope[k] = (e_cos[k + 1] - e_cos[k]) / (rho[k + 1] - rho[k]);
            sin2_slope[k] = (e_sin2[k + 1] - e_sin2[k]) / (rho[k + 1] - rho[k]);
        }
        cos_slope[NR - 1] = sin2_slope[NR - 1] = 0.0;
        for (int k = 0; k < NR; ++k) {
            cos_icpt[k] = e_cos[k] - cos_slope[k] * rho[k];
            sin2_icpt[k] = e_sin2[k] - sin2_slope[k] * rho[k];
        }
    }
};

const phase_table& phases()
{
    static const phase_table t;
    return t;
}

/* The oracle's sub-sample refinement evaluates c(D) = sum_k y_k exp(i omega_k D) and its
 * first two derivatives (sums over the 2 nf bins). Written over the lags, c(D) = sum_l c_l
 * K(D - l) with K(x) = sin(pi x) (cot(pi x / M) - i): near_eval sums the 2 NEAR + 1 lags
 * about the peak exactly, plus the far lags through their three sums (far). */
struct near_far {
    int M;
    double beta;        // pi / M
    cd c[2 * NEAR + 1]; // c_{peak + q}, q = -NEAR..NEAR
    cd far[4];          // sum c_l (-1)^m {cot, csc^2, csc^2 cot, 1}(pi m / M), m = peak - l
    const double* sin_bq;
    const double* cos_bq;
};

void near_far_eval(const near_far& r, double delta, cd& c0, cd& c1, cd& c2)
{
    const double M = r.M, beta = r.beta;
    const double sd = std::sin(PI * delta), cdl = std::cos(PI * delta);
    const double sb = std::sin(beta * delta), cb = std::cos(beta * delta);
    // sinc(x) = sum a_j x^(2 j), a_j = (-pi^2)^j / (2 j + 1)!
    static const double A[8] = { 1.0,
                                 -PI * PI / 6.0,
                                 std::pow(PI, 4) / 120.0,
                                 -std::pow(PI, 6) / 5040.0,
                                 std::pow(PI, 8) / 362880.0,
                                 -std::pow(PI, 10) / 39916800.0,
                                 std::pow(PI, 12) / 6227020800.0,
                                 -std::pow(PI, 14) / 1307674368000.0 };
    cd s0(0), s1(0), s2(0);
    for (int q = -NEAR; q <= NEAR; ++q) {
        const double x = delta - q;
        const double sg = (q & 1) ? -1.0 : 1.0;
        const double s = sg * sd, co = sg * cdl; // sin(pi x), cos(pi x)
        double P, P1, P2;                         // sin(pi x) cot(beta x) and derivatives
        if (std::abs(x) < 0.25) {
            const double x2 = x * x;
            double S = A[7], S1 = 14 * A[7], S2 = 14 * 13 * A[7];
            for (int j = 6; j >= 1; --j) {
                S = S * x2 + A[j];
                S1 = S1 * x2 + 2 * j * A[j];
                S2 = S2 * x2 + 2 * j * (2 * j - 1) * A[j];
            }
            S = S * x2 + A[0];
            S1 *= x;
            const double th = beta * x, th2 = th * th;
            const double C = 1 - th2 / 3 - th2 * th2 / 45 - 2 * th2 * th2 * th2 / 945;
            const double C1 = beta * (-2 * th / 3 - 4 * th * th2 / 45 - 12 * th * th2 * th2 / 945);
            const double C2 = beta * beta * (-2.0 / 3 - 12 * th2 / 45 - 60 * th2 * th2 / 945);
            P = M * S * C;
            P1 = M * (S1 * C + S * C1);
            P2 = M * (S2 * C + 2 * S1 * C1 + S * C2);
        } else {
            const double sq = r.sin_bq[q + NEAR], cq = r.cos_bq[q + NEAR];
            const double st = sb * cq - cb * sq; // sin(beta x)
            const double ct = cb * cq + sb * sq; // cos(beta x)
            const double cot = ct / st, cs2 = 1.0 / (st * st);
            P = s * cot;
            P1 = PI * co * cot - beta * s * cs2;
            P2 = -PI * PI * s * cot - 2 * PI * beta * co * cs2 + 2 * beta * beta * s * cs2 * cot;
        }
        const cd& cl = r.c[q + NEAR];
        s0 += cl * cd(P, -s);
        s1 += cl * cd(P1, -PI * co);
        s2 += cl * cd(P2, PI * PI * s);
    }
    const double eps = beta * delta;
    const cd I(0, 1);
    const cd Pf = r.far[0] - eps * r.far[1] + eps * eps * r.far[2] - I * r.far[3];
    const cd Pf1 = beta * (-r.far[1] + 2 * eps * r.far[2]);
    const cd Pf2 = 2 * beta * beta * r.far[2];
    c0 = s0 + sd * Pf;
    c1 = s1 + PI * cdl * Pf + sd * Pf1;
    c2 = s2 - PI * PI * sd * Pf + 2 * PI * cdl * Pf1 + sd * Pf2;
}

double psr_db(const float* mag2, int len, int i)
{
    int hi = i, lo = i;
    while (hi + 1 < len && !(mag2[hi + 1] > mag2[hi]))
        ++hi;
    while (lo > 0 && !(mag2[lo - 1] > mag2[lo]))
        --lo;
    float side = -1.0f;
    uint32_t idx = 0;
    if (lo > 0) {
        volk_32f_index_max_32u(&idx, mag2, uint32_t(lo));
        side = std::max(side, mag2[idx]);
    }
    if (hi + 1 < len) {
        volk_32f_index_max_32u(&idx, mag2 + hi + 1, uint32_t(len - hi - 1));
        side = std::max(side, mag2[hi + 1 + idx]);
    }
    if (!(side > 0.0f))
        return std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(double(mag2[i]) / double(side));
}

} // namespace

/* One input's transform: the even and odd bins of its 2 nf-point DFT at unit power, its gain,
 * and the running sums of its auto-spectrum |A|^2 over the even bins (extended by pad bins
 * on either side, as the final pass reads them). */
struct gcc_spectrum::impl {
    int n = 0, nf = 0, pad = 0;
    volk_ptr<cf> even, odd;
    volk_ptr<double> pa;
    double gain = 1.0;
    double sum = 0.0; // of |A|^2 over the even bins
};

gcc_spectrum::gcc_spectrum() : d_impl(std::make_unique<impl>()) {}
gcc_spectrum::~gcc_spectrum() = default;
gcc_spectrum::gcc_spectrum(gcc_spectrum&&) noexcept = default;
gcc_spectrum& gcc_spectrum::operator=(gcc_spectrum&&) noexcept = default;
bool gcc_spectrum::valid() const { return d_impl && d_impl->nf > 0; }
int gcc_spectrum::n() const { return d_impl ? d_impl->n : 0; }
double gcc_spectrum::gain() const { return d_impl ? d_impl->gain : 0.0; }

struct gcc_estimator::impl {
    int n, nf, M, max_lag, L, wide, pad;
    gcc_weighting weighting;
    bool real_input;
    std::shared_ptr<const tables> tab;
    const kernel_set& k = kernels();
    volk_ptr<cf> in_e, in_o, Ye, Yo, Ywe, Ywo;
    gcc_spectrum::impl own[2]; // the inputs' transforms of estimate(x1, x2)
    volk_ptr<float> mag2;
    volk_ptr<double> ps, psi;

    impl(int n_, gcc_weighting w, int max_lag_, int smooth, bool real)
        : n(n_), weighting(w), real_input(real)
    {
        if (n < 16)
            throw std::invalid_argument("gcc_estimator: need at least 16 samples, got " +
                                        std::to_string(n));
        if (n > MAX_N)
            throw std::invalid_argument("gcc_estimator: at most " + std::to_string(MAX_N) +
                                        " samples per estimate, got " + std::to_string(n));
        if (w != GCC_PHAT && w != GCC_PLAIN && w != GCC_ML)
            throw std::invalid_argument(
                "gcc_estimator: weighting must be GCC_PHAT, GCC_PLAIN or GCC_ML");
        nf = next_fast_len(n);
        M = 2 * nf;
        max_lag = (max_lag_ < 0 || max_lag_ > n - 1) ? n - 1 : max_lag_;
        L = smooth > 0 ? smooth
                       : int(std::clamp(std::nearbyint(std::sqrt(double(nf)) / 2), 4.0, 64.0));
        if (L > nf)
            throw std::invalid_argument("gcc_estimator: smooth_bins " + std::to_string(L) +
                                        " exceeds the " + std::to_string(nf) +
                                        "-point spectrum");
        wide = std::max(L, nf / 16);
        pad = std::max({ L / 2, L - L / 2, wide / 2, wide - wide / 2 });
        tab = tables_for(nf);
        for (auto* b : { &in_e, &in_o, &Ye, &Yo, &Ywe, &Ywo })
            *b = volk_array<cf>(nf);
        mag2 = volk_array<float>(2 * max_lag + 1);
        const size_t ext = size_t(nf) + 2 * pad + 1;
        ps = volk_array<double>(ext);
        if (w == GCC_ML)
            psi = volk_array<double>(nf);
        phases(); // the table once, now rather than in the first estimate
    }

    //! The even and odd bins of x's 2 nf-point DFT, x scaled to unit power; returns the gain.
    //! Extends x[pad .. pad + nf) periodically by pad bins on either side, then its running sums.
    void extend_and_sum(double* x) const
    {
        std::copy(x + nf, x + nf + pad, x);            // bins nf - pad .. nf - 1
        std::copy(x + pad, x + 2 * pad, x + pad + nf); // bins 0 .. pad - 1
        k.prefix_sums(x, nf + 2 * pad);
    }

    //! s: x's spectrum (its buffers made on first use).
    void transform(const cf* x, gcc_spectrum::impl& s)
    {
        if (!x)
            throw std::invalid_argument("gcc_estimator: null input");
        if (s.nf != nf || s.pad != pad) {
            s.even = volk_array<cf>(nf);
            s.odd = volk_array<cf>(nf);
            s.pa = volk_array<double>(size_t(nf) + 2 * pad + 1);
            s.nf = nf;
            s.pad = pad;
        }
        s.n = n;
        s.gain = transform(x, s.even.get(), s.odd.get());
        s.sum = k.auto_values(reinterpret_cast<const float*>(s.even.get()), nf, s.pa.get() + pad);
        extend_and_sum(s.pa.get());
    }

    double transform(const cf* x, cf* even, cf* odd)
    {
        float p = 0.0f;
        volk_32f_x2_dot_prod_32f(
            &p, reinterpret_cast<const float*>(x), reinterpret_cast<const float*>(x), 2 * n);
        if (!std::isfinite(p))
            throw std::invalid_argument(
                "gcc_estimator: non-finite samples (NaN or inf, or beyond float's range)");
        const float g = p > 0.0f ? float(1.0 / std::sqrt(double(p) / n)) : 1.0f;
        volk_32f_s32f_multiply_32f(
            reinterpret_cast<float*>(in_e.get()), reinterpret_cast<const float*>(x), g, 2 * n);
        std::fill(in_e.get() + n, in_e.get() + nf, cf(0));
        volk_32fc_x2_multiply_32fc(in_o.get(), in_e.get(), tab->tw_fwd.get(), n);
        std::fill(in_o.get() + n, in_o.get() + nf, cf(0));
        fftwf_execute_dft(tab->fwd,
                          reinterpret_cast<fftwf_complex*>(in_e.get()),
                          reinterpret_cast<fftwf_complex*>(even));
        fftwf_execute_dft(tab->fwd,
                          reinterpret_cast<fftwf_complex*>(in_o.get()),
                          reinterpret_cast<fftwf_complex*>(odd));
        return g;
    }

    //! Correlation of the weighted cross-spectrum (ye, yo): peak, PSR, refined delay.
    double correlate(const cf* ye, const cf* yo, double& psr)
    {
        cf* a = in_e.get(); // the FFT inputs are free now
        cf* b = in_o.get();
        fftwf_execute_dft(tab->bwd,
                          reinterpret_cast<fftwf_complex*>(const_cast<cf*>(ye)),
                          reinterpret_cast<fftwf_complex*>(a));
        fftwf_execute_dft(tab->bwd,
                          reinterpret_cast<fftwf_complex*>(const_cast<cf*>(yo)),
                          reinterpret_cast<fftwf_complex*>(b));
        const float* af = reinterpret_cast<const float*>(a);
        const float* bf = reinterpret_cast<const float*>(b);
        const float* tf = reinterpret_cast<const float*>(tab->tw_inv.get());
        const int len = 2 * max_lag + 1;
        k.window_mag2(af, bf, tf, nf, max_lag, mag2.get());
        uint32_t idx = 0;
        volk_32f_index_max_32u(&idx, mag2.get(), uint32_t(len));
        const int i = int(idx);
        const int lag = i - max_lag;
        psr = psr_db(mag2.get(), len, i);
        double d = lag;
        if (i > 0 && i + 1 < len) {
            const double m0 = mag2[i - 1], m1 = mag2[i], m2 = mag2[i + 1];
            const double den = m0 - 2 * m1 + m2;
            if (den < 0)
                d += std::clamp(0.5 * (m0 - m2) / den, -0.5, 0.5);
        }
        if (M >= SPLIT_MIN_M)
            return refine_split(a, b, lag, d);
        return refine_direct(ye, yo, lag, d);
    }

    //! c_l of the 2 nf-point correlation from its halves.
    cd lag_value(const cf* a, const cf* b, int l) const
    {
        const int j = ((l % M) + M) % M;
        const int m = j < nf ? j : j - nf;
        const cf u = tab->tw_inv[m] * b[m];
        return cd(j < nf ? a[m] + u : a[m] - u);
    }

    template <class Eval>
    static double newton(Eval eval, int lag, double d)
    {
        for (int it = 0; it < 8; ++it) {
            cd c, c1, c2;
            eval(d, c, c1, c2);
            const double f1 = 2 * std::real(std::conj(c) * c1);
            const double f2 = 2 * (std::norm(c1) + std::real(std::conj(c) * c2));
            if (!(f2 < 0))
                break;
            const double step = std::clamp(-f1 / f2, -0.5, 0.5);
            if (std::abs(d + step - lag) > 1.0)
                break;
            d += step;
            if (std::abs(step) < 1e-7)
                break;
        }
        return d;
    }

    double refine_split(const cf* a, const cf* b, int lag, double d)
    {
        near_far r;
        r.M = M;
        r.beta = PI / M;
        r.sin_bq = tab->sin_bq;
        r.cos_bq = tab->cos_bq;
        for (int q = -NEAR; q <= NEAR; ++q)
            r.c[q + NEAR] = lag_value(a, b, lag + q);
        double s[8];
        k.far_sums(reinterpret_cast<const float*>(a),
                   reinterpret_cast<const float*>(b),
                   reinterpret_cast<const float*>(tab->tw_inv.get()),
                   nf,
                   lag,
                   tab->g[0].get(),
                   tab->g[1].get(),
                   tab->g[2].get(),
                   tab->g[3].get(),
                   s);
        for (int j = 0; j < 4; ++j)
            r.far[j] = cd(s[2 * j], s[2 * j + 1]);
        return newton(
            [&](double x, cd& c0, cd& c1, cd& c2) { near_far_eval(r, x - lag, c0, c1, c2); },
            lag,
            d);
    }

    //! Short transforms: the reference's sums over every bin (phasors by recurrence).
    double refine_direct(const cf* ye, const cf* yo, int lag, double d)
    {
        std::vector<cd> y(M), e(M);
        std::vector<double> om(M);
        for (int j = 0; j < M; ++j) {
            y[j] = cd(j % 2 == 0 ? ye[j / 2] : yo[j / 2]);
            om[j] = 2 * PI * (j < M / 2 ? j : j - M) / M;
        }
        auto eval = [&](double x, cd& c, cd& c1, cd& c2) {
            const cd z = std::polar(1.0, 2 * PI * x / M);
            cd cur;
            c = c1 = c2 = 0;
            for (int j = 0; j < M; ++j) {
                if (j % 64 == 0 || j == M / 2)
                    cur = std::polar(1.0, om[j] * x);
                const cd ye_ = y[j] * cur;
                c += ye_;
                c1 += om[j] * ye_;
                c2 += om[j] * om[j] * ye_;
                cur *= z;
            }
            c1 *= cd(0, 1);
            c2 = -c2;
        };
        return newton(eval, lag, d);
    }

    gcc_result estimate(const cf* x1, const cf* x2)
    {
        if (!x1 || !x2)
            throw std::invalid_argument("gcc_estimator: null input");
        transform(x1, own[0]);
        transform(x2, own[1]);
        return estimate(own[0], own[1]);
    }

    void check(const gcc_spectrum::impl& s) const
    {
        if (s.nf == 0)
            throw std::invalid_argument("gcc_estimator: a spectrum not made by transform()");
        if (s.n != n || s.nf != nf || s.pad != pad)
            throw std::invalid_argument(
                "gcc_estimator: a spectrum of another estimator's length or smoothing (" +
                std::to_string(s.n) + " samples; this one takes " + std::to_string(n) + ")");
    }

    //! The delay of s2's input against s1's, from their transforms.
    gcc_result estimate(const gcc_spectrum::impl& s1, const gcc_spectrum::impl& s2)
    {
        check(s1);
        check(s2);
        const cf* A1 = s1.even.get();
        const cf* B1 = s1.odd.get();
        const cf* A2 = s2.even.get();
        const cf* B2 = s2.odd.get();
        const double g1 = s1.gain, g2 = s2.gain;
        volk_32fc_x2_multiply_conjugate_32fc(Ye.get(), A2, A1, nf);
        volk_32fc_x2_multiply_conjugate_32fc(Yo.get(), B2, B1, nf);
        const cf* we = Ye.get();
        const cf* wo = Yo.get();
        if (weighting == GCC_PHAT) {
            k.phat(reinterpret_cast<const float*>(Ye.get()),
                   reinterpret_cast<float*>(Ywe.get()),
                   nf);
            k.phat(reinterpret_cast<const float*>(Yo.get()),
                   reinterpret_cast<float*>(Ywo.get()),
                   nf);
            we = Ywe.get();
            wo = Ywo.get();
        }
        double psr = 0.0;
        double d = correlate(we, wo, psr);

        // spectra on the nf-point grid (the even bins), the signal delayed by d
        cf* z = in_e.get(); // free since the correlation
        double sr = 0.0, si = 0.0;
        k.rotate(reinterpret_cast<const float*>(Ye.get()),
                 nf,
                 d,
                 reinterpret_cast<float*>(z),
                 sr,
                 si);
        const double phi = std::atan2(si, sr);
        k.cross_values(
            reinterpret_cast<const float*>(z), nf, std::cos(phi), std::sin(phi), ps.get() + pad);
        extend_and_sum(ps.get());
        const double sum1 = s1.sum, sum2 = s2.sum;
        // The reference's floor, 1e-12 of the larger mean auto-spectrum, in its units; here
        // each channel is scaled by its gain, the cross-spectrum by g1 g2. The noise spectra
        // n1 = a1 - s of the SNR figure depend on the channels' relative scale, so they are
        // formed as the reference forms them, in the inputs' own units (a1 / g1^2 - s / (g1 g2)).
        const double floor_in =
            1e-12 * std::max({ sum1 / nf / (g1 * g1),
                               sum2 / nf / (g2 * g2),
                               std::numeric_limits<double>::min() });
        const double floor = g1 * g2 * floor_in;
        const phase_table& pt = phases();
        gcc_kernels::final_in fin{ ps.get(),
                                   s1.pa.get(),
                                   s2.pa.get(),
                                   nf,
                                   pad,
                                   L,
                                   wide,
                                   floor,
                                   g1 / g2,
                                   g2 / g1,
                                   g1 * g1 * floor_in,
                                   g2 * g2 * floor_in,
                                   int(weighting),
                                   { pt.cos_icpt, pt.cos_slope, pt.sin2_icpt, pt.sin2_slope,
                                     pt.rho[phase_table::NR - 1] },
                                   psi.get() };
        gcc_kernels::final_sums fs;
        k.final_pass(fin, fs);

        if (weighting == GCC_ML) {
            k.ml_weights(reinterpret_cast<const float*>(Ye.get()),
                         reinterpret_cast<const float*>(Yo.get()),
                         psi.get(),
                         nf,
                         reinterpret_cast<float*>(Ywe.get()),
                         reinterpret_cast<float*>(Ywo.get()));
            d = correlate(Ywe.get(), Ywo.get(), psr);
        }

        const bool centred = !real_input;
        const double dof = double(n) / nf * (real_input ? 0.5 : 1.0);
        const double inf = std::numeric_limits<double>::infinity();
        double var;
        if (weighting == GCC_PHAT) {
            const double c = centred && fs.a > 0 ? fs.a_w / fs.a : 0.0;
            const double den = fs.a_w2 - 2 * c * fs.a_w + c * c * fs.a;
            const double num = fs.b_w2 - 2 * c * fs.b_w + c * c * fs.b;
            var = den * den > 0 ? num / (den * den) : inf;
        } else {
            const double c = centred && std::abs(fs.a) > 0 ? fs.a_w / fs.a : 0.0;
            const double den = fs.a_w2 - 2 * c * fs.a_w + c * c * fs.a;
            const double num = fs.b_w2 - 2 * c * fs.b_w + c * c * fs.b;
            var = den * den > 0 ? 0.5 * num / (den * den) : inf;
        }
        var /= dof;
        double crb = inf;
        {
            const double c = centred && fs.info > 0 ? fs.info_w / fs.info : 0.0;
            const double fim = 2.0 * dof * (fs.info_w2 - 2 * c * fs.info_w + c * c * fs.info);
            if (fim > 0)
                crb = 1.0 / fim;
        }
        gcc_result res;
        res.delay_samples = d;
        res.std_samples = std::sqrt(std::max(var, 0.0));
        res.crb_std_samples = std::sqrt(crb);
        res.psr_db = psr;
        const double snr = std::max(fs.s, 0.0) / std::sqrt(fs.n1 * fs.n2);
        res.snr_db = 10 * std::log10(std::max(snr, 1e-30));
        if (fs.sp > 0) {
            const double fc = centred ? fs.spf / fs.sp : 0.0;
            const double m2 = (fs.spf2 - 2 * fc * fs.spf + fc * fc * fs.sp) / fs.sp;
            res.rms_bandwidth = std::sqrt(std::max(m2, 0.0));
        }
        res.n_samples = n;
        return res;
    }
};

gcc_estimator::gcc_estimator(
    int n, gcc_weighting weighting, int max_lag, int smooth_bins, bool real_input)
    : d_impl(std::make_unique<impl>(n, weighting, max_lag, smooth_bins, real_input))
{
}

gcc_estimator::~gcc_estimator() = default;

gcc_result gcc_estimator::estimate(const std::complex<float>* reference,
                                   const std::complex<float>* signal)
{
    return d_impl->estimate(reference, signal);
}

void gcc_estimator::transform(const std::complex<float>* input, gcc_spectrum& spectrum)
{
    if (!spectrum.d_impl)
        spectrum.d_impl = std::make_unique<gcc_spectrum::impl>(); // a moved-from spectrum
    d_impl->transform(input, *spectrum.d_impl);
}

gcc_result gcc_estimator::estimate(const gcc_spectrum& reference, const gcc_spectrum& signal)
{
    if (!reference.valid() || !signal.valid())
        throw std::invalid_argument("gcc_estimator: a spectrum not made by transform()");
    return d_impl->estimate(*reference.d_impl, *signal.d_impl);
}

int gcc_estimator::n() const { return d_impl->n; }
int gcc_estimator::fft_length() const { return d_impl->nf; }
int gcc_estimator::max_lag() const { return d_impl->max_lag; }
gcc_weighting gcc_estimator::weighting() const { return d_impl->weighting; }

gcc_result gcc_delay(const std::complex<float>* reference,
                     const std::complex<float>* signal,
                     int n,
                     gcc_weighting weighting,
                     int max_lag,
                     int smooth_bins,
                     bool real_input)
{
    // the last few estimators of this thread, most recent first (their buffers and plans
    // stay for the next call with the same settings)
    using key = std::tuple<int, int, int, int, bool>;
    thread_local std::list<std::pair<key, std::unique_ptr<gcc_estimator>>> recent;
    if (max_lag < 0 || max_lag > n - 1)
        max_lag = n - 1;
    const key kk{ n, int(weighting), max_lag, smooth_bins, real_input };
    auto it = std::find_if(recent.begin(), recent.end(), [&](const auto& e) {
        return e.first == kk;
    });
    if (it == recent.end()) {
        recent.emplace_front(
            kk,
            std::make_unique<gcc_estimator>(n, weighting, max_lag, smooth_bins, real_input));
        if (recent.size() > 4)
            recent.pop_back();
    } else if (it != recent.begin()) {
        recent.splice(recent.begin(), recent, it);
    }
    return recent.front().second->estimate(reference, signal);
}

namespace {
template <class F>
double best_seconds(F f, int repeat)
{
    using clock = std::chrono::steady_clock;
    f(); // warm
    int per = 1;
    for (;;) { // calls per round: at least 20 ms
        const auto t0 = clock::now();
        for (int i = 0; i < per; ++i)
            f();
        if (std::chrono::duration<double>(clock::now() - t0).count() > 0.02 || per > (1 << 24))
            break;
        per *= 2;
    }
    double best = std::numeric_limits<double>::infinity();
    for (int r = 0; r < std::max(repeat, 1); ++r) {
        const auto t0 = clock::now();
        for (int i = 0; i < per; ++i)
            f();
        best = std::min(best, std::chrono::duration<double>(clock::now() - t0).count() / per);
    }
    return best;
}
} // namespace

double fftw_seconds(int n, int repeat)
{
    if (n < 1 || n > MAX_N)
        throw std::invalid_argument("fftw_seconds: n must be 1.." + std::to_string(MAX_N));
    auto t = tables_for(n);
    auto in = volk_array<cf>(n), out = volk_array<cf>(n);
    for (int i = 0; i < n; ++i)
        in[i] = cf(float(i % 7) - 3.0f, float(i % 5) - 2.0f);
    auto* i = reinterpret_cast<fftwf_complex*>(in.get());
    auto* o = reinterpret_cast<fftwf_complex*>(out.get());
    return best_seconds([&] { fftwf_execute_dft(t->fwd, i, o); }, repeat);
}

double gcc_seconds(gcc_estimator& estimator,
                   const std::complex<float>* reference,
                   const std::complex<float>* signal,
                   int repeat)
{
    return best_seconds([&] { estimator.estimate(reference, signal); }, repeat);
}

} // namespace drift
} // namespace gr
