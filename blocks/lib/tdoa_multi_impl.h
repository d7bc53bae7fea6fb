/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_TDOA_MULTI_IMPL_H
#define INCLUDED_DRIFT_TDOA_MULTI_IMPL_H

#include "time_anchor.h"
#include <gnuradio/drift/tdoa_multi.h>
#include <array>
#include <vector>

namespace gr {
namespace drift {

class tdoa_multi_impl : public tdoa_multi
{
private:
    double d_samp_rate;
    int d_n;
    int d_m;
    gcc_weighting d_weighting;
    std::vector<std::array<int, 2>> d_pairs;
    std::vector<pmt::pmt_t> d_ports;
    gcc_estimator d_estimator;
    std::vector<gcc_spectrum> d_spectra;           // one per input
    std::vector<std::vector<std::complex<float>>> d_buf; // a block split across calls
    int d_filled = 0;
    std::vector<time_anchor> d_anchor;
    uint64_t d_block_start = 0; // absolute index of the block's first sample (every input)
    uint64_t d_estimates = 0;

    void read_tags(uint64_t first, int count);
    void estimate(const std::vector<const std::complex<float>*>& in);

public:
    tdoa_multi_impl(double samp_rate,
                    int n,
                    int n_inputs,
                    int weighting,
                    double max_delay_s,
                    const std::vector<std::vector<int>>& pairs);
    int work(int noutput_items,
             gr_vector_const_void_star& input_items,
             gr_vector_void_star& output_items) override;
    uint64_t estimates() const override { return d_estimates; }
    std::vector<std::vector<int>> pairs() const override;
};

} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_TDOA_MULTI_IMPL_H */
