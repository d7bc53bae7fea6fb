/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_PSD_IMPL_H
#define INCLUDED_DRIFT_PSD_IMPL_H

#include "time_anchor.h"
#include <gnuradio/drift/psd.h>
#include <gnuradio/fft/fft.h>
#include <volk/volk_alloc.hh>
#include <mutex>

namespace gr {
namespace drift {

class psd_impl : public psd
{
private:
    const int d_fft_size;
    const int d_step;
    const gr::fft::window::win_type d_window_type;
    const bool d_db;
    int d_n_avg;
    double d_samp_rate;
    double d_cal_offset_db;
    mutable std::mutex d_mutex;

    gr::fft::fft_complex_fwd d_fft;
    volk::vector<float> d_window;
    volk::vector<float> d_acc; // running sum of |X|^2 over the frames so far
    volk::vector<float> d_mag; // |X|^2 of one frame
    double d_window_power;     // sum(w^2)

    uint64_t d_group_start; // absolute index of the current average's first sample
    uint64_t d_next_frame;  // absolute index of the next frame's first sample
    int d_frames_done;      // frames accumulated into d_acc
    uint64_t d_tags_done;   // tags with offset below this were handled
    time_anchor d_anchor;
    bool d_have_freq;
    double d_freq;
    std::vector<gr::tag_t> d_start_tags; // other tags at or after d_group_start

    void restart_at(uint64_t offset);
    void drop_start_tags_before(uint64_t offset);
    void handle_tags(const std::vector<gr::tag_t>& tags, uint64_t until);
    void accumulate_frame(const gr_complex* frame);
    void emit(float* out, uint64_t out_offset);

public:
    psd_impl(int fft_size,
             int n_avg,
             double samp_rate,
             double overlap,
             gr::fft::window::win_type window,
             bool db,
             double cal_offset_db);

    std::vector<float> window_taps() const override;
    int step() const override { return d_step; }
    double cal_offset_db() const override;
    void set_cal_offset_db(double cal_offset_db) override;
    double samp_rate() const override;
    void set_samp_rate(double samp_rate) override;
    int n_avg() const override;
    void set_n_avg(int n_avg) override;

    void forecast(int noutput_items, gr_vector_int& ninput_items_required) override;

    int general_work(int noutput_items,
                     gr_vector_int& ninput_items,
                     gr_vector_const_void_star& input_items,
                     gr_vector_void_star& output_items) override;
};

} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_PSD_IMPL_H */
