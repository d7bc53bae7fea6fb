/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "tdoa_multi_impl.h"
#include "tdoa_pdu.h"
#include <gnuradio/io_signature.h>
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace gr {
namespace drift {

namespace {
using cf = std::complex<float>;
const char* const WHO = "drift.tdoa_multi: ";
constexpr int WHOLE_BLOCKS_MAX = 1 << 18;

gcc_weighting checked_weighting(int weighting)
{
    if (weighting != GCC_PHAT && weighting != GCC_PLAIN && weighting != GCC_ML)
        throw std::invalid_argument(std::string(WHO) +
                                    "weighting must be 0 (PHAT), 1 (plain) or 2 (ML), got " +
                                    std::to_string(weighting));
    return gcc_weighting(weighting);
}

int checked_n(double samp_rate, int n, int n_inputs)
{
    if (!(samp_rate > 0) || !std::isfinite(samp_rate))
        throw std::invalid_argument(std::string(WHO) + "samp_rate must be positive, got " +
                                    std::to_string(samp_rate));
    if (n < 16)
        throw std::invalid_argument(std::string(WHO) + "n must be at least 16 samples, got " +
                                    std::to_string(n));
    if (n_inputs < 2)
        throw std::invalid_argument(std::string(WHO) + "n_inputs must be at least 2, got " +
                                    std::to_string(n_inputs));
    return n;
}

int max_lag(double samp_rate, int n, double max_delay_s)
{
    if (!std::isfinite(max_delay_s) || max_delay_s < 0)
        throw std::invalid_argument(std::string(WHO) + "max_delay_s must be >= 0");
    return max_delay_s > 0
               ? int(std::min<double>(n - 1, std::ceil(max_delay_s * samp_rate) + 1))
               : n - 1;
}

std::vector<std::array<int, 2>> checked_pairs(const std::vector<std::vector<int>>& pairs,
                                              int m)
{
    std::vector<std::array<int, 2>> out;
    if (pairs.empty()) {
        for (int i = 0; i < m; ++i)
            for (int j = i + 1; j < m; ++j)
                out.push_back({ i, j });
        return out;
    }
    for (const auto& p : pairs) {
        if (p.size() != 2 || p[0] < 0 || p[0] >= m || p[1] < 0 || p[1] >= m || p[0] == p[1])
            throw std::invalid_argument(std::string(WHO) + "each pair must name two different "
                                                           "inputs of 0.." +
                                        std::to_string(m - 1));
        out.push_back({ p[0], p[1] });
    }
    return out;
}
} // namespace

tdoa_multi::sptr tdoa_multi::make(double samp_rate,
                                  int n,
                                  int n_inputs,
                                  int weighting,
                                  double max_delay_s,
                                  const std::vector<std::vector<int>>& pairs)
{
    return gnuradio::make_block_sptr<tdoa_multi_impl>(
        samp_rate, n, n_inputs, weighting, max_delay_s, pairs);
}

tdoa_multi_impl::tdoa_multi_impl(double samp_rate,
                                 int n,
                                 int n_inputs,
                                 int weighting,
                                 double max_delay_s,
                                 const std::vector<std::vector<int>>& pairs)
    : gr::sync_block("drift_tdoa_multi",
                     gr::io_signature::make(std::max(n_inputs, 2), std::max(n_inputs, 2), sizeof(cf)),
                     gr::io_signature::make(0, 0, 0)),
      d_samp_rate(samp_rate),
      d_n(checked_n(samp_rate, n, n_inputs)),
      d_m(n_inputs),
      d_weighting(checked_weighting(weighting)),
      d_pairs(checked_pairs(pairs, n_inputs)),
      d_estimator(n, d_weighting, max_lag(samp_rate, n, max_delay_s)),
      d_spectra(n_inputs),
      d_buf(n_inputs),
      d_anchor(n_inputs)
{
    for (auto& b : d_buf)
        b.resize(n);
    // Whole blocks per call where the buffers allow it: the scheduler then hands work() n
    // samples at a time, transformed where they lie, and makes the upstream buffers hold
    // two blocks. Longer blocks are gathered here instead (their buffers would be large).
    if (n <= WHOLE_BLOCKS_MAX)
        set_output_multiple(n);
    for (size_t k = 0; k < d_pairs.size(); ++k) {
        d_ports.push_back(pmt::mp("pair" + std::to_string(k)));
        message_port_register_out(d_ports.back());
    }
}

std::vector<std::vector<int>> tdoa_multi_impl::pairs() const
{
    std::vector<std::vector<int>> out;
    for (const auto& p : d_pairs)
        out.push_back({ p[0], p[1] });
    return out;
}

void tdoa_multi_impl::read_tags(uint64_t first, int count)
{
    std::vector<gr::tag_t> tags;
    for (int p = 0; p < d_m; ++p) {
        get_tags_in_range(tags, p, first, first + count, pmt::mp("rx_time"));
        for (const auto& t : tags)
            if (time_anchor::is_rx_time(t.value))
                d_anchor[p].set(t.offset, t.value);
    }
}

int tdoa_multi_impl::work(int noutput_items,
                          gr_vector_const_void_star& input_items,
                          gr_vector_void_star&)
{
    std::vector<const cf*> in(d_m);
    int done = 0;
    while (done < noutput_items) {
        const uint64_t first = nitems_read(0) + done;
        if (d_filled == 0 && noutput_items - done >= d_n) {
            // a whole block in the input buffers: transformed where it lies
            read_tags(first, d_n);
            for (int p = 0; p < d_m; ++p)
                in[p] = static_cast<const cf*>(input_items[p]) + done;
            estimate(in);
            done += d_n;
            d_block_start += d_n;
            continue;
        }
        const int take = std::min(noutput_items - done, d_n - d_filled);
        read_tags(first, take);
        for (int p = 0; p < d_m; ++p) {
            const cf* x = static_cast<const cf*>(input_items[p]) + done;
            std::copy(x, x + take, d_buf[p].begin() + d_filled);
        }
        d_filled += take;
        done += take;
        if (d_filled == d_n) {
            for (int p = 0; p < d_m; ++p)
                in[p] = d_buf[p].data();
            estimate(in);
            d_filled = 0;
            d_block_start += d_n;
        }
    }
    return noutput_items;
}

void tdoa_multi_impl::estimate(const std::vector<const cf*>& in)
{
    // each input's transform once (only the inputs some pair uses)
    std::vector<bool> used(d_m, false);
    for (const auto& p : d_pairs)
        used[p[0]] = used[p[1]] = true;
    for (int p = 0; p < d_m; ++p)
        if (used[p])
            d_estimator.transform(in[p], d_spectra[p]);
    for (size_t k = 0; k < d_pairs.size(); ++k) {
        const int i = d_pairs[k][0], j = d_pairs[k][1];
        const gcc_result r = d_estimator.estimate(d_spectra[i], d_spectra[j]);
        message_port_pub(
            d_ports[k],
            tdoa_pdu(r, d_samp_rate, d_n, d_weighting, d_block_start, d_anchor[i], d_anchor[j]));
    }
    ++d_estimates;
}

} // namespace drift
} // namespace gr
