/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "tdoa_impl.h"
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

gcc_weighting checked_weighting(int weighting)
{
    if (weighting != GCC_PHAT && weighting != GCC_PLAIN && weighting != GCC_ML)
        throw std::invalid_argument(
            "drift.tdoa: weighting must be 0 (PHAT), 1 (plain) or 2 (ML), got " +
            std::to_string(weighting));
    return gcc_weighting(weighting);
}

int checked_n(double samp_rate, int n)
{
    if (!(samp_rate > 0) || !std::isfinite(samp_rate))
        throw std::invalid_argument("drift.tdoa: samp_rate must be positive, got " +
                                    std::to_string(samp_rate));
    if (n < 16)
        throw std::invalid_argument("drift.tdoa: n must be at least 16 samples, got " +
                                    std::to_string(n));
    return n;
}

int max_lag(double samp_rate, int n, double max_delay_s)
{
    if (!std::isfinite(max_delay_s) || max_delay_s < 0)
        throw std::invalid_argument("drift.tdoa: max_delay_s must be >= 0");
    return max_delay_s > 0
               ? int(std::min<double>(n - 1, std::ceil(max_delay_s * samp_rate) + 1))
               : n - 1;
}
} // namespace

tdoa::sptr tdoa::make(double samp_rate, int n, int weighting, double max_delay_s)
{
    return gnuradio::make_block_sptr<tdoa_impl>(samp_rate, n, weighting, max_delay_s);
}

tdoa_impl::tdoa_impl(double samp_rate, int n, int weighting, double max_delay_s)
    : gr::sync_block("drift_tdoa",
                     gr::io_signature::make(2, 2, sizeof(cf)),
                     gr::io_signature::make(0, 0, 0)),
      d_samp_rate(samp_rate),
      d_n(checked_n(samp_rate, n)),
      d_weighting(checked_weighting(weighting)),
      d_estimator(n, d_weighting, max_lag(samp_rate, n, max_delay_s))
{
    d_buf[0].reserve(n);
    d_buf[1].reserve(n);
    message_port_register_out(pmt::mp("delays"));
}

void tdoa_impl::read_tags(uint64_t first, int count)
{
    for (int p = 0; p < 2; ++p) {
        std::vector<gr::tag_t> tags;
        get_tags_in_range(tags, p, first, first + count, pmt::mp("rx_time"));
        for (const auto& t : tags)
            if (time_anchor::is_rx_time(t.value))
                d_anchor[p].set(t.offset, t.value);
    }
}

int tdoa_impl::work(int noutput_items,
                    gr_vector_const_void_star& input_items,
                    gr_vector_void_star&)
{
    const cf* in[2] = { static_cast<const cf*>(input_items[0]),
                        static_cast<const cf*>(input_items[1]) };
    int done = 0;
    while (done < noutput_items) {
        const uint64_t first = nitems_read(0) + done;
        if (d_buf[0].empty() && noutput_items - done >= d_n) {
            // a whole block in the input buffers: estimated where it lies
            read_tags(first, d_n);
            estimate(in[0] + done, in[1] + done);
            done += d_n;
            d_block_start += d_n;
            continue;
        }
        const int take = std::min(noutput_items - done, d_n - int(d_buf[0].size()));
        read_tags(first, take);
        for (int p = 0; p < 2; ++p)
            d_buf[p].insert(d_buf[p].end(), in[p] + done, in[p] + done + take);
        done += take;
        if (int(d_buf[0].size()) == d_n) {
            estimate(d_buf[0].data(), d_buf[1].data());
            d_buf[0].clear();
            d_buf[1].clear();
            d_block_start += d_n;
        }
    }
    return noutput_items;
}

void tdoa_impl::estimate(const cf* ref, const cf* sig)
{
    const gcc_result r = d_estimator.estimate(ref, sig);
    message_port_pub(
        pmt::mp("delays"),
        tdoa_pdu(r, d_samp_rate, d_n, d_weighting, d_block_start, d_anchor[0], d_anchor[1]));
    ++d_estimates;
}

} // namespace drift
} // namespace gr
