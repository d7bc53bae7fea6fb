/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "tdoa_impl.h"
#include <gnuradio/fft/fft.h>
#include <gnuradio/io_signature.h>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace gr {
namespace drift {

namespace {

using cd = std::complex<double>;
using cf = std::complex<float>;
constexpr double PI = 3.14159265358979323846;

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

//! scipy.ndimage.uniform_filter1d(x, size, mode="wrap").
std::vector<double> uniform_wrap(const std::vector<double>& x, int size)
{
    const int n = int(x.size());
    std::vector<double> out(n);
    const int lo = size / 2;           // window: [i - lo, i - lo + size - 1]
    double acc = 0.0;
    auto at = [&](long k) { return x[((k % n) + n) % n]; };
    for (int k = 0; k < size; ++k)
        acc += at(long(k) - lo);
    for (int i = 0; i < n; ++i) {
        out[i] = acc / size;
        acc += at(long(i) - lo + size) - at(long(i) - lo);
    }
    return out;
}

//! Table of E[cos phi], E[sin^2 phi] of a cross-spectral bin's phase against coherence rho.
struct phase_table {
    std::vector<double> rho, e_cos, e_sin2;
    phase_table()
    {
        const int nr = 161, np = 20001;
        rho.resize(nr);
        e_cos.resize(nr);
        e_sin2.resize(nr);
        for (int k = 0; k < nr; ++k)
            rho[k] = 1.0 - std::pow(10.0, -4.0 * k / (nr - 1));
        rho[0] = 0.0;
        const double dphi = 2 * PI / (np - 1);
        for (int k = 0; k < nr; ++k) {
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
    }
    static double interp(const std::vector<double>& xp, const std::vector<double>& fp, double x)
    {
        if (x <= xp.front())
            return fp.front();
        if (x >= xp.back())
            return fp.back();
        const auto it = std::upper_bound(xp.begin(), xp.end(), x);
        const size_t i = size_t(it - xp.begin()) - 1;
        const double t = (x - xp[i]) / (xp[i + 1] - xp[i]);
        return fp[i] + t * (fp[i + 1] - fp[i]);
    }
    void moments(double r, double& c, double& s2) const
    {
        r = std::clamp(r, 0.0, 1.0 - 1e-15);
        if (r > rho.back()) {
            s2 = (1 - r * r) / (2 * r * r);
            c = 1 - s2 / 2;
            return;
        }
        c = interp(rho, e_cos, r);
        s2 = interp(rho, e_sin2, r);
    }
};

const phase_table& table()
{
    static const phase_table t;
    return t;
}

//! e[k] = exp(j omega[k] d) for omega linear in k on each half of the spectrum: a rotation
//! recurrence, re-anchored exactly every 128 bins and where the halves meet.
void phasors(const std::vector<double>& omega, double d, std::vector<cd>& e)
{
    const size_t n = omega.size();
    const size_t half = (n + 1) / 2;
    const cd z = std::polar(1.0, n > 1 ? (omega[1] - omega[0]) * d : 0.0);
    cd cur;
    for (size_t k = 0; k < n; ++k) {
        if (k % 128 == 0 || k == half)
            cur = std::polar(1.0, omega[k] * d);
        e[k] = cur;
        cur *= z;
    }
}

double psr_db(const std::vector<double>& mag, size_t i)
{
    const size_t n = mag.size();
    size_t hi = n - 1, lo = 0;
    for (size_t k = i; k + 1 < n; ++k)
        if (mag[k + 1] > mag[k]) {
            hi = k;
            break;
        }
    for (size_t k = i; k > 0; --k)
        if (mag[k - 1] > mag[k]) {
            lo = k;
            break;
        }
    double side = 0.0;
    bool any = false;
    for (size_t k = 0; k < lo; ++k) {
        side = std::max(side, mag[k]);
        any = true;
    }
    for (size_t k = hi + 1; k < n; ++k) {
        side = std::max(side, mag[k]);
        any = true;
    }
    if (!any || side <= 0)
        return std::numeric_limits<double>::infinity();
    return 20 * std::log10(mag[i] / side);
}

} // namespace

gcc_result gcc_delay(const cf* reference,
                     const cf* signal,
                     int n,
                     gcc_weighting weighting,
                     int max_lag,
                     int smooth_bins)
{
    if (n < 16)
        throw std::invalid_argument("gcc_delay: need at least 16 samples, got " +
                                    std::to_string(n));
    if (weighting != GCC_PHAT && weighting != GCC_PLAIN)
        throw std::invalid_argument("gcc_delay: weighting must be GCC_PHAT or GCC_PLAIN");
    if (max_lag < 0 || max_lag > n - 1)
        max_lag = n - 1;
    const int nf = next_fast_len(n);
    const int nfft = 2 * nf;
    thread_local std::unique_ptr<gr::fft::fft_complex_fwd> fwd;
    thread_local std::unique_ptr<gr::fft::fft_complex_rev> rev;
    if (!fwd || fwd->inbuf_length() != nfft) {
        fwd = std::make_unique<gr::fft::fft_complex_fwd>(nfft, 1);
        rev = std::make_unique<gr::fft::fft_complex_rev>(nfft, 1);
    }
    std::vector<cd> f1(nfft), f2(nfft);
    for (int which = 0; which < 2; ++which) {
        cf* in = fwd->get_inbuf();
        const cf* x = which == 0 ? reference : signal;
        std::copy(x, x + n, in);
        std::fill(in + n, in + nfft, cf(0));
        fwd->execute();
        const cf* out = fwd->get_outbuf();
        auto& f = which == 0 ? f1 : f2;
        for (int k = 0; k < nfft; ++k)
            f[k] = cd(out[k]);
    }
    std::vector<cd> y(nfft);
    std::vector<double> omega(nfft);
    double maxmag = 0;
    for (int k = 0; k < nfft; ++k) {
        y[k] = f2[k] * std::conj(f1[k]);
        maxmag = std::max(maxmag, std::abs(y[k]));
        const int kk = k < (nfft + 1) / 2 ? k : k - nfft;
        omega[k] = 2 * PI * kk / nfft;
    }
    if (weighting == GCC_PHAT) {
        const double floor = 1e-30 * std::max(maxmag, 1e-300);
        for (auto& v : y)
            v /= std::max(std::abs(v), floor);
    }
    // correlation over lags -max_lag..max_lag
    cf* rin = rev->get_inbuf();
    for (int k = 0; k < nfft; ++k)
        rin[k] = cf(y[k]);
    rev->execute();
    const cf* cc = rev->get_outbuf();
    const int w = 2 * max_lag + 1;
    std::vector<double> mag(w);
    for (int j = 0; j < w; ++j) {
        const int lag = j - max_lag;
        mag[j] = std::abs(cc[(lag + nfft) % nfft]) / nfft;
    }
    const size_t i = size_t(std::max_element(mag.begin(), mag.end()) - mag.begin());
    const int lag = int(i) - max_lag;
    // sub-sample refinement: parabolic start, Newton on |c(D)|^2
    double d = lag;
    if (i > 0 && i + 1 < mag.size()) {
        const double m0 = mag[i - 1] * mag[i - 1], m1 = mag[i] * mag[i],
                     m2 = mag[i + 1] * mag[i + 1];
        const double den = m0 - 2 * m1 + m2;
        if (den < 0)
            d += std::clamp(0.5 * (m0 - m2) / den, -0.5, 0.5);
    }
    std::vector<cd> e(nfft);
    for (int it = 0; it < 8; ++it) {
        cd c(0), c1(0), c2(0);
        phasors(omega, d, e);
        for (int k = 0; k < nfft; ++k) {
            const cd ye = y[k] * e[k];
            c += ye;
            c1 += omega[k] * ye;
            c2 += omega[k] * omega[k] * ye;
        }
        c1 *= cd(0, 1);
        c2 = -c2;
        const double g1 = 2 * std::real(std::conj(c) * c1);
        const double g2 = 2 * (std::norm(c1) + std::real(std::conj(c) * c2));
        if (!(g2 < 0))
            break;
        const double step = std::clamp(-g1 / g2, -0.5, 0.5);
        if (std::abs(d + step - lag) > 1.0)
            break;
        d += step;
        if (std::abs(step) < 1e-7)
            break;
    }
    // spectra from the nf-point DFTs (the even bins)
    int L = smooth_bins > 0 ? smooth_bins
                            : int(std::clamp(std::nearbyint(std::sqrt(double(nf)) / 2), 4.0,
                                             64.0));
    std::vector<cd> r(nf);
    std::vector<double> om(nf), a1(nf), a2(nf);
    cd rsum(0);
    for (int k = 0; k < nf; ++k) {
        const int kk = k < (nf + 1) / 2 ? k : k - nf;
        om[k] = 2 * PI * kk / nf;
    }
    e.resize(nf);
    phasors(om, d, e);
    for (int k = 0; k < nf; ++k) {
        r[k] = f2[2 * k] * std::conj(f1[2 * k]) * e[k];
        rsum += r[k];
        a1[k] = std::norm(f1[2 * k]);
        a2[k] = std::norm(f2[2 * k]);
    }
    const cd rot = std::polar(1.0, -std::arg(rsum));
    std::vector<double> s_raw(nf), d1(nf), d2(nf);
    double mean1 = 0, mean2 = 0;
    for (int k = 0; k < nf; ++k) {
        s_raw[k] = std::real(r[k] * rot);
        d1[k] = a1[k] - s_raw[k];
        d2[k] = a2[k] - s_raw[k];
        mean1 += a1[k];
        mean2 += a2[k];
    }
    mean1 /= nf;
    mean2 /= nf;
    const std::vector<double> s = uniform_wrap(s_raw, L);
    const int wide = std::max(L, nf / 16);
    std::vector<double> n1 = uniform_wrap(d1, wide), n2 = uniform_wrap(d2, wide);
    const double nfloor =
        1e-12 * std::max({ mean1, mean2, std::numeric_limits<double>::min() });
    // S and V = A1 A2 - S^2 need no equal-gain assumption; n_eff: the noise of two equal
    // channels with these S and V (as df.tdoa._spectra)
    const std::vector<double> a1s = uniform_wrap(a1, L), a2s = uniform_wrap(a2, L);
    std::vector<double> sc(nf), ne(nf);
    double ssum = 0, n1sum = 0, n2sum = 0, spsum = 0;
    for (int k = 0; k < nf; ++k) {
        n1[k] = std::max(n1[k], nfloor);
        n2[k] = std::max(n2[k], nfloor);
        const double sp = std::max(s[k], 0.0);
        const double prod = a1s[k] * a2s[k];
        const double s2 = s[k] * s[k] - (prod + s[k] * s[k]) / (2.0 * L);
        sc[k] = std::sqrt(std::max(s2, 0.0));
        const double v =
            std::max((prod - s[k] * s[k]) / (1.0 - 1.0 / (2.0 * L)), nfloor * nfloor);
        ne[k] = std::max(std::sqrt(std::max(s2, 0.0) + v) - sc[k], nfloor);
        ssum += s[k];
        spsum += sp;
        n1sum += n1[k];
        n2sum += n2[k];
    }
    const double dof = double(n) / nf; // complex data
    double var;
    if (weighting == GCC_PHAT) {
        std::vector<double> c(nf), s2(nf);
        double csum = 0, cw = 0;
        for (int k = 0; k < nf; ++k) {
            const double rho = sc[k] / (sc[k] + ne[k]);
            table().moments(rho, c[k], s2[k]);
            csum += c[k];
            cw += c[k] * om[k];
        }
        const double centre = csum > 0 ? cw / csum : 0.0;
        double num = 0, den = 0;
        for (int k = 0; k < nf; ++k) {
            const double wk = om[k] - centre;
            num += wk * wk * s2[k];
            den += wk * wk * c[k];
        }
        var = den > 0 ? num / (den * den) : std::numeric_limits<double>::infinity();
    } else {
        double sw = 0;
        for (int k = 0; k < nf; ++k)
            sw += s[k] * om[k];
        const double centre = std::abs(ssum) > 0 ? sw / ssum : 0.0;
        double num = 0, den = 0;
        for (int k = 0; k < nf; ++k) {
            const double wk = om[k] - centre;
            const double v = sc[k] * 2 * ne[k] + ne[k] * ne[k];
            num += wk * wk * v;
            den += wk * wk * s[k];
        }
        var = den > 0 ? 0.5 * num / (den * den) : std::numeric_limits<double>::infinity();
    }
    var /= dof;
    gcc_result res;
    res.delay_samples = d;
    res.std_samples = std::sqrt(var);
    res.psr_db = psr_db(mag, i);
    const double snr = std::max(ssum, 0.0) / std::sqrt(n1sum * n2sum);
    res.snr_db = 10 * std::log10(std::max(snr, 1e-30));
    if (spsum > 0) {
        double fc = 0;
        for (int k = 0; k < nf; ++k)
            fc += om[k] / (2 * PI) * std::max(s[k], 0.0);
        fc /= spsum;
        double m2 = 0;
        for (int k = 0; k < nf; ++k) {
            const double f = om[k] / (2 * PI) - fc;
            m2 += f * f * std::max(s[k], 0.0);
        }
        res.rms_bandwidth = std::sqrt(m2 / spsum);
    }
    res.n_samples = n;
    return res;
}

tdoa::sptr tdoa::make(double samp_rate, int n, int weighting, double max_delay_s)
{
    return gnuradio::make_block_sptr<tdoa_impl>(samp_rate, n, weighting, max_delay_s);
}

tdoa_impl::tdoa_impl(double samp_rate, int n, int weighting, double max_delay_s)
    : gr::sync_block("drift_tdoa",
                     gr::io_signature::make(2, 2, sizeof(cf)),
                     gr::io_signature::make(0, 0, 0)),
      d_samp_rate(samp_rate),
      d_n(n),
      d_weighting(gcc_weighting(weighting))
{
    if (!(samp_rate > 0) || !std::isfinite(samp_rate))
        throw std::invalid_argument("drift.tdoa: samp_rate must be positive, got " +
                                    std::to_string(samp_rate));
    if (n < 16)
        throw std::invalid_argument("drift.tdoa: n must be at least 16 samples, got " +
                                    std::to_string(n));
    if (weighting != GCC_PHAT && weighting != GCC_PLAIN)
        throw std::invalid_argument("drift.tdoa: weighting must be 0 (PHAT) or 1 (plain), got " +
                                    std::to_string(weighting));
    if (!std::isfinite(max_delay_s) || max_delay_s < 0)
        throw std::invalid_argument("drift.tdoa: max_delay_s must be >= 0");
    d_max_lag = max_delay_s > 0
                    ? int(std::min<double>(n - 1, std::ceil(max_delay_s * samp_rate) + 1))
                    : n - 1;
    d_buf[0].reserve(n);
    d_buf[1].reserve(n);
    message_port_register_out(pmt::mp("delays"));
    table(); // build the phase table now, not in the first work call
}

int tdoa_impl::work(int noutput_items,
                    gr_vector_const_void_star& input_items,
                    gr_vector_void_star&)
{
    int done = 0;
    while (done < noutput_items) {
        const int take = std::min(noutput_items - done, d_n - int(d_buf[0].size()));
        const uint64_t first = nitems_read(0) + done;
        for (int p = 0; p < 2; ++p) {
            std::vector<gr::tag_t> tags;
            get_tags_in_range(tags, p, first, first + take, pmt::mp("rx_time"));
            for (const auto& t : tags)
                if (time_anchor::is_rx_time(t.value))
                    d_anchor[p].set(t.offset, t.value);
            const cf* in = static_cast<const cf*>(input_items[p]) + done;
            d_buf[p].insert(d_buf[p].end(), in, in + take);
        }
        done += take;
        if (int(d_buf[0].size()) == d_n) {
            estimate();
            d_buf[0].clear();
            d_buf[1].clear();
            d_block_start += d_n;
        }
    }
    return noutput_items;
}

void tdoa_impl::estimate()
{
    const gcc_result r =
        gcc_delay(d_buf[0].data(), d_buf[1].data(), d_n, d_weighting, d_max_lag, 0);
    double start_offset = 0.0;
    pmt::pmt_t meta = pmt::make_dict();
    if (d_anchor[0].from_tag) {
        meta = pmt::dict_add(
            meta, pmt::mp("rx_time"), d_anchor[0].value(d_block_start, d_samp_rate));
        if (d_anchor[1].from_tag) {
            uint64_t s0, s1;
            double f0, f1;
            d_anchor[0].at(d_block_start, d_samp_rate, s0, f0);
            d_anchor[1].at(d_block_start, d_samp_rate, s1, f1);
            start_offset = double(int64_t(s1 - s0)) + (f1 - f0);
        }
    }
    const double delay_s = r.delay_samples / d_samp_rate + start_offset;
    meta = pmt::dict_add(meta, pmt::mp("delay_s"), pmt::from_double(delay_s));
    meta = pmt::dict_add(meta, pmt::mp("delay_samples"), pmt::from_double(r.delay_samples));
    meta = pmt::dict_add(meta, pmt::mp("std_s"), pmt::from_double(r.std_samples / d_samp_rate));
    meta = pmt::dict_add(meta, pmt::mp("psr_db"), pmt::from_double(r.psr_db));
    meta = pmt::dict_add(meta, pmt::mp("snr_db"), pmt::from_double(r.snr_db));
    meta = pmt::dict_add(
        meta, pmt::mp("rms_bandwidth_hz"), pmt::from_double(r.rms_bandwidth * d_samp_rate));
    meta = pmt::dict_add(meta, pmt::mp("n_samples"), pmt::from_long(d_n));
    meta = pmt::dict_add(
        meta, pmt::mp("weighting"), pmt::mp(d_weighting == GCC_PHAT ? "phat" : "plain"));
    meta = pmt::dict_add(meta, pmt::mp("offset"), pmt::from_uint64(d_block_start));
    meta = pmt::dict_add(meta, pmt::mp("start_offset_s"), pmt::from_double(start_offset));
    // |correlation| over the searched lags, for plots
    std::vector<float> none;
    message_port_pub(pmt::mp("delays"), pmt::cons(meta, pmt::init_f32vector(0, none)));
    ++d_estimates;
}

} // namespace drift
} // namespace gr
