/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_TDOA_IMPL_H
#define INCLUDED_DRIFT_TDOA_IMPL_H

#include "time_anchor.h"
#include <gnuradio/drift/tdoa.h>
#include <vector>

namespace gr {
namespace drift {

class tdoa_impl : public tdoa
{
private:
    double d_samp_rate;
    int d_n;
    gcc_weighting d_weighting;
    gcc_estimator d_estimator;
    std::vector<std::complex<float>> d_buf[2];
    time_anchor d_anchor[2];
    uint64_t d_block_start = 0; // absolute index of the first sample of the block (both inputs)
    uint64_t d_estimates = 0;

    void read_tags(uint64_t first, int count);
    void estimate(const std::complex<float>* ref, const std::complex<float>* sig);

public:
    tdoa_impl(double samp_rate, int n, int weighting, double max_delay_s);
    int work(int noutput_items,
             gr_vector_const_void_star& input_items,
             gr_vector_void_star& output_items) override;
    uint64_t estimates() const override { return d_estimates; }
};

} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_TDOA_IMPL_H */
