/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "align_impl.h"
#include "time_anchor.h"
#include <gnuradio/io_signature.h>
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <stdexcept>
#include <string>

namespace gr {
namespace drift {

namespace {
using cf = std::complex<float>;

double checked_rate(double samp_rate)
{
    if (!(std::isfinite(samp_rate) && samp_rate > 0))
        throw std::invalid_argument("drift.align: samp_rate must be positive, got " +
                                    std::to_string(samp_rate));
    return samp_rate;
}

int checked_inputs(int n_inputs)
{
    if (n_inputs < 2)
        throw std::invalid_argument("drift.align: n_inputs must be at least 2, got " +
                                    std::to_string(n_inputs));
    return n_inputs;
}

//! (whole, frac in [0, 1)) of an rx_time value; false when it is not one.
bool read_rx_time(const pmt::pmt_t& value, int64_t& whole, double& frac)
{
    if (!time_anchor::is_rx_time(value))
        return false;
    const pmt::pmt_t s = pmt::tuple_ref(value, 0);
    whole = pmt::is_uint64(s) ? int64_t(pmt::to_uint64(s)) : int64_t(pmt::to_long(s));
    frac = pmt::to_double(pmt::tuple_ref(value, 1));
    const double carry = std::floor(frac);
    whole += int64_t(carry);
    frac -= carry;
    return true;
}

pmt::pmt_t rx_time_value(int64_t whole, double frac)
{
    const double carry = std::floor(frac);
    return pmt::make_tuple(pmt::from_uint64(uint64_t(whole + int64_t(carry))),
                           pmt::from_double(frac - carry));
}
} // namespace

align::sptr align::make(double samp_rate, int n_inputs, int max_wait)
{
    return gnuradio::make_block_sptr<align_impl>(samp_rate, n_inputs, max_wait);
}

align_impl::align_impl(double samp_rate, int n_inputs, int max_wait)
    : gr::block("drift_align",
                gr::io_signature::make(std::max(n_inputs, 2), std::max(n_inputs, 2), sizeof(cf)),
                gr::io_signature::make(std::max(n_inputs, 2), std::max(n_inputs, 2), sizeof(cf))),
      d_fs(checked_rate(samp_rate)),
      d_n(checked_inputs(n_inputs)),
      d_max_wait(uint64_t(std::max(max_wait, 1))),
      d_state(n_inputs, start_state::waiting),
      d_whole(n_inputs, 0),
      d_frac(n_inputs, 0.0),
      d_drop(n_inputs, 0),
      d_dropped(n_inputs, 0)
{
    set_tag_propagation_policy(TPP_DONT);
    // long calls: each wakes the threads of every input and output once, whatever it moves
    set_min_output_buffer(1 << 16);
}

void align_impl::forecast(int noutput_items, gr_vector_int& ninput_items_required)
{
    std::fill(ninput_items_required.begin(), ninput_items_required.end(), noutput_items);
}

void align_impl::plan()
{
    d_offsets.assign(d_n, 0.0);
    int64_t w0 = 0;
    bool any = false;
    for (int k = 0; k < d_n; ++k)
        if (d_state[k] == start_state::known) {
            w0 = any ? std::min(w0, d_whole[k]) : d_whole[k];
            any = true;
        }
    if (!any)
        return; // every input unaligned: passed on as they come
    std::vector<double> rel(d_n, 0.0);
    double lo = -INFINITY;
    for (int k = 0; k < d_n; ++k)
        if (d_state[k] == start_state::known) {
            rel[k] = double(d_whole[k] - w0) + d_frac[k];
            lo = std::max(lo, rel[k]);
        }
    for (int k = 0; k < d_n; ++k)
        if (d_state[k] == start_state::known) {
            // to the nearest sample, halves to even (as Python's round)
            d_drop[k] = uint64_t(std::nearbyint((lo - rel[k]) * d_fs));
            d_offsets[k] = rel[k] + double(d_drop[k]) / d_fs - lo;
        }
}

int align_impl::general_work(int noutput_items,
                             gr_vector_int& ninput_items,
                             gr_vector_const_void_star& input_items,
                             gr_vector_void_star& output_items)
{
    static const pmt::pmt_t RX_TIME = pmt::mp("rx_time");
    static const pmt::pmt_t OFFSET = pmt::mp("align_offset_s");
    std::vector<gr::tag_t> tags;
    if (!d_planned) {
        bool waiting = false;
        for (int k = 0; k < d_n; ++k) {
            if (d_state[k] != start_state::waiting)
                continue;
            const uint64_t read = nitems_read(k);
            get_tags_in_range(tags, k, read, read + ninput_items[k], RX_TIME);
            for (const auto& t : tags) {
                int64_t w;
                double f;
                if (!read_rx_time(t.value, w, f))
                    continue;
                f -= double(t.offset - read) / d_fs; // the time of the input's sample 0
                const double carry = std::floor(f);
                d_whole[k] = w + int64_t(carry);
                d_frac[k] = f - carry;
                d_state[k] = start_state::known;
                break;
            }
            if (d_state[k] == start_state::waiting) {
                if (uint64_t(ninput_items[k]) >= d_max_wait) {
                    d_logger->error("input {:d}: no rx_time in its first {:d} samples; passed "
                                    "on unaligned",
                                    k,
                                    d_max_wait);
                    d_state[k] = start_state::none;
                } else {
                    waiting = true;
                }
            }
        }
        if (waiting)
            return 0; // waits for more samples (bounded by max_wait)
        plan();
        d_planned = true;
    }
    // drop the samples before the common start
    bool dropping = false;
    for (int k = 0; k < d_n; ++k) {
        const uint64_t left = d_drop[k] - d_dropped[k];
        if (left > 0) {
            const uint64_t take = std::min<uint64_t>(left, uint64_t(ninput_items[k]));
            consume(k, int(take));
            d_dropped[k] += take;
            dropping = true;
        }
    }
    if (dropping)
        return 0;
    int n = noutput_items;
    for (int k = 0; k < d_n; ++k)
        n = std::min(n, ninput_items[k]);
    if (n <= 0)
        return 0;
    for (int k = 0; k < d_n; ++k) {
        std::memcpy(output_items[k], input_items[k], size_t(n) * sizeof(cf));
        const uint64_t read = nitems_read(k);
        const uint64_t written = nitems_written(k);
        get_tags_in_range(tags, k, read, read + n);
        const bool known = d_state[k] == start_state::known;
        for (const auto& t : tags) {
            if (known && pmt::eqv(t.key, RX_TIME)) {
                if (t.offset == d_drop[k])
                    continue; // the first sample's: replaced by the block's own below
                int64_t w;
                double f;
                if (read_rx_time(t.value, w, f)) {
                    const double off = double(w - d_whole[k]) +
                                       (f - d_frac[k] - double(t.offset) / d_fs);
                    if (std::abs(off) > 1e-6) {
                        ++d_breaks;
                        d_logger->warn("input {:d}: rx_time jumps at sample {:d}; the streams "
                                       "are no longer aligned",
                                       k,
                                       t.offset);
                    }
                }
            }
            add_item_tag(k, t.offset - d_drop[k], t.key, t.value);
        }
        if (!d_tagged) {
            if (known)
                add_item_tag(
                    k, written, RX_TIME, rx_time_value(d_whole[k], d_frac[k] + d_drop[k] / d_fs));
            add_item_tag(k, written, OFFSET, pmt::from_double(d_offsets.empty() ? 0.0 : d_offsets[k]));
        }
        consume(k, n);
    }
    d_tagged = true;
    return n;
}

} // namespace drift
} // namespace gr
