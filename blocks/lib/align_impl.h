/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_ALIGN_IMPL_H
#define INCLUDED_DRIFT_ALIGN_IMPL_H

#include <gnuradio/drift/align.h>
#include <cstdint>
#include <vector>

namespace gr {
namespace drift {

class align_impl : public align
{
private:
    enum class start_state { waiting, known, none };
    double d_fs;
    int d_n;
    uint64_t d_max_wait;
    std::vector<start_state> d_state;
    std::vector<int64_t> d_whole;  // each input's sample 0: whole seconds
    std::vector<double> d_frac;    // and the fraction in [0, 1)
    std::vector<uint64_t> d_drop;  // samples to drop per input, once planned
    std::vector<uint64_t> d_dropped;
    std::vector<double> d_offsets;
    bool d_planned = false;
    bool d_tagged = false;
    uint64_t d_breaks = 0;

    void plan();

public:
    align_impl(double samp_rate, int n_inputs, int max_wait);
    void forecast(int noutput_items, gr_vector_int& ninput_items_required) override;
    int general_work(int noutput_items,
                     gr_vector_int& ninput_items,
                     gr_vector_const_void_star& input_items,
                     gr_vector_void_star& output_items) override;
    uint64_t breaks() const override { return d_breaks; }
    std::vector<double> offsets_s() const override { return d_offsets; }
    std::vector<uint64_t> drops() const override { return d_planned ? d_drop : std::vector<uint64_t>(); }
};

} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_ALIGN_IMPL_H */
